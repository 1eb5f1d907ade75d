//! Shared by the integration tests: the copied vector folders and hex helpers.
#![allow(dead_code)]

use std::path::PathBuf;

/// Every oracle folder in tests/fixtures/oracle.
pub const ORACLE_FOLDERS: [&str; 8] = [
    "phase0-minimal-2048",
    "altair-minimal-2048",
    "altair-mainnet-1000",
    "capella-mainnet-1000",
    "deneb-minimal-2048",
    "electra-mainnet-1000",
    "fulu-minimal-2048",
    "fulu-mainnet-1024",
];

/// `tests/fixtures/<relative>`.
pub fn fixture(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}

/// The parsed `vectors.json` of an oracle folder.
pub fn oracle_vectors(folder: &str) -> serde_json::Value {
    let path = fixture(&format!("oracle/{folder}/vectors.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The raw SSZ `state.ssz` of an oracle folder.
pub fn oracle_state_bytes(folder: &str) -> Vec<u8> {
    let path = fixture(&format!("oracle/{folder}/state.ssz"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// Decodes `0x`-hex into exactly `N` bytes.
pub fn hex_bytes<const N: usize>(value: &serde_json::Value) -> [u8; N] {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    let bytes = hex::decode(text.trim_start_matches("0x")).expect("hex");
    bytes
        .try_into()
        .unwrap_or_else(|_| panic!("{text} is not {N} bytes"))
}

/// A JSON number as u64.
pub fn u64_of(value: &serde_json::Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a u64: {value}"))
}

/// `0x` + lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}
