//! Test-only readers of the oracle vectors in `tests/fixtures/oracle`.

use serde_json::Value;

/// Path of `file` in the oracle folder `folder`.
pub(crate) fn fixture_path(folder: &str, file: &str) -> String {
    format!(
        "{}/tests/fixtures/oracle/{folder}/{file}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The parsed `vectors.json` of `folder`.
pub(crate) fn vectors(folder: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(folder, "vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A `0x` hex string of exactly `N` bytes.
pub(crate) fn hex_bytes<const N: usize>(value: &Value) -> [u8; N] {
    let mut bytes = [0u8; N];
    hex::decode_to_slice(&value.as_str().unwrap()[2..], &mut bytes).unwrap();
    bytes
}

/// A JSON list of unsigned integers, e.g. a committee's `members`.
pub(crate) fn u64_list(value: &Value) -> Vec<u64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_u64().unwrap())
        .collect()
}
