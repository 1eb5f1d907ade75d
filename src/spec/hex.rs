//! `0x` hex in the Beacon API's JSON conventions, for the consensus types
//! that travel as JSON: fixed-size byte arrays and roots, lower case out,
//! either case in.

use serde::de::Error;
use serde::{Deserialize, Deserializer, Serializer};

use super::primitives::Root;

/// Parses `0x`-prefixed hex of exactly `N` bytes (either letter case).
pub fn parse_hex_array<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| format!("hex must start with 0x, got {:?}", truncated(text)))?;
    if digits.len() != 2 * N {
        return Err(format!(
            "expected {N} bytes ({} hex digits) after 0x, got {} hex digits",
            2 * N,
            digits.len()
        ));
    }
    let mut bytes = [0u8; N];
    hex::decode_to_slice(digits, &mut bytes).map_err(|e| format!("invalid hex: {e}"))?;
    Ok(bytes)
}

/// Parses `0x`-prefixed hex of any length up to `max_bytes` (either letter case).
pub fn parse_hex_vec(text: &str, max_bytes: usize) -> Result<Vec<u8>, String> {
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| format!("hex must start with 0x, got {:?}", truncated(text)))?;
    if digits.len() > max_bytes.saturating_mul(2) {
        return Err(format!(
            "expected at most {max_bytes} bytes after 0x, got {} hex digits",
            digits.len()
        ));
    }
    hex::decode(digits).map_err(|e| format!("invalid hex: {e}"))
}

/// The start of an untrusted string, short enough for an error message.
pub fn truncated(text: &str) -> String {
    text.chars().take(16).collect()
}

/// Serde of `[u8; N]` as `0x` hex.
pub mod array {
    use super::*;

    /// Writes `0x` followed by lower-case hex.
    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&serde_utils::hex::encode(bytes))
    }

    /// Reads `0x` hex of exactly `N` bytes.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        // Owned, since a JSON string with escapes cannot be borrowed.
        let text = String::deserialize(deserializer)?;
        parse_hex_array(&text).map_err(D::Error::custom)
    }
}

/// Serde of a 32-byte [`Root`] as `0x` hex.
pub mod root {
    use super::*;

    /// Writes `0x` followed by 64 lower-case hex digits.
    pub fn serialize<S: Serializer>(root: &Root, serializer: S) -> Result<S::Ok, S::Error> {
        array::serialize(&root.0, serializer)
    }

    /// Reads `0x` hex of exactly 32 bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Root, D::Error> {
        array::deserialize::<D, 32>(deserializer).map(Root::from)
    }
}

/// Serde of an optional [`Root`]: `0x` hex, or absent / `null` when unknown
/// (pair it with `#[serde(default, skip_serializing_if = "Option::is_none")]`).
pub mod root_option {
    use super::*;

    /// Writes the root as `0x` hex, `None` as `null`.
    pub fn serialize<S: Serializer>(root: &Option<Root>, serializer: S) -> Result<S::Ok, S::Error> {
        match root {
            Some(root) => super::root::serialize(root, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads `0x` hex of exactly 32 bytes, or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Root>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::root")] Root);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_arrays_need_the_prefix_and_the_exact_length() {
        assert_eq!(parse_hex_array::<2>("0xABcd"), Ok([0xab, 0xcd]));
        assert!(parse_hex_array::<2>("abcd").unwrap_err().contains("0x"));
        assert!(parse_hex_array::<2>("0xabcdef")
            .unwrap_err()
            .contains("expected 2 bytes"));
        assert_eq!(parse_hex_vec("0x0102", 2), Ok(vec![1, 2]));
        assert!(parse_hex_vec("0x010203", 2)
            .unwrap_err()
            .contains("at most 2 bytes"));
    }
}
