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

/// A `dv-aggregator` process, killed when the test ends however it ends.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `dv-aggregator <subcommand> <args>` and reads its log until a line
/// holds `field=`; returns the process and that field's value (e.g. the
/// address it listens on).
pub fn start_binary(subcommand: &str, args: &[&str], field: &str) -> (Running, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_dv-aggregator"))
        .arg(subcommand)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start dv-aggregator {subcommand}: {e}"));
    let stderr = child.stderr.take().unwrap();
    let running = Running(child);
    let (sender, receiver) = std::sync::mpsc::channel();
    let marker = format!("{field}=");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(value) = line.split(&marker).nth(1) {
                let _ = sender.send(value.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let value = receiver
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("dv-aggregator {subcommand} never logged {field}="));
    (running, value)
}
