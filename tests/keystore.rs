//! EIP-2335 keystores: the EIP's own test vectors, wrong passwords, hostile
//! parameters and the encrypt/save/load round trip.

use std::path::PathBuf;

use dv_aggregator::crypto::keystore::{Kdf, Keystore, KeystoreError};

/// Password and secret of both vectors (tests/fixtures/eip2335/README.md).
const VECTOR_PASSWORD: &str = "𝔱𝔢𝔰𝔱𝔭𝔞𝔰𝔰𝔴𝔬𝔯𝔡🔑";
const VECTOR_SECRET: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/eip2335")
        .join(name)
}

fn vector_json(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture(name)).expect("fixture");
    serde_json::from_str(&text).expect("fixture json")
}

fn from_value(value: &serde_json::Value) -> Result<Keystore, KeystoreError> {
    Keystore::from_json(&value.to_string())
}

#[test]
fn scrypt_vector_decrypts() {
    let keystore = Keystore::load(&fixture("scrypt.json")).expect("load");
    let secret = keystore.decrypt(VECTOR_PASSWORD).expect("decrypt");
    assert_eq!(hex::encode(secret.as_ref()), VECTOR_SECRET);
}

#[test]
fn pbkdf2_vector_decrypts() {
    let keystore = Keystore::load(&fixture("pbkdf2.json")).expect("load");
    let secret = keystore.decrypt(VECTOR_PASSWORD).expect("decrypt");
    assert_eq!(hex::encode(secret.as_ref()), VECTOR_SECRET);
}

#[test]
fn wrong_password_names_the_keystore_but_not_the_password() {
    let keystore = Keystore::load(&fixture("pbkdf2.json")).expect("load");
    let error = keystore
        .decrypt("hunter2-wrong")
        .expect_err("wrong password");
    assert!(matches!(error, KeystoreError::WrongPassword { .. }));
    let message = error.to_string();
    assert!(message.contains("wrong password"), "{message}");
    assert!(
        message.contains("64625def-3331-4eea-ab6f-782f3ed16a83"),
        "{message}"
    );
    assert!(message.contains("0x9612d7a727c9d0a2"), "{message}");
    assert!(message.contains("pbkdf2.json"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn encrypt_then_decrypt_round_trips_through_a_0600_file() {
    let secret = [7u8; 32];
    let pubkey = format!("0x{}", "ab".repeat(48));
    let dir = tempfile::tempdir().expect("tempdir");
    for kdf in [Kdf::INSECURE_FAST, Kdf::Pbkdf2 { c: 16 }] {
        let keystore =
            Keystore::encrypt(&secret, "pässword\u{7}", &pubkey, "m/12381/3600/0/0/0", kdf)
                .expect("encrypt");
        assert_eq!(keystore.pubkey, "ab".repeat(48));
        let path = dir.path().join("keystore-0.json");
        keystore.save(&path).expect("save");
        let loaded = Keystore::load(&path).expect("load");
        assert_eq!(loaded.crypto, keystore.crypto);
        // The bell is a control code and NFKD folds the composed "ä".
        let decrypted = loaded.decrypt("pa\u{308}ssword").expect("decrypt");
        assert_eq!(*decrypted, secret);
        assert!(matches!(
            loaded.decrypt("password"),
            Err(KeystoreError::WrongPassword { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}

#[test]
fn two_encryptions_use_fresh_salt_iv_and_uuid() {
    let first = Keystore::encrypt(&[1; 32], "pw", "00", "", Kdf::INSECURE_FAST).expect("a");
    let second = Keystore::encrypt(&[1; 32], "pw", "00", "", Kdf::INSECURE_FAST).expect("b");
    assert_ne!(
        first.crypto.kdf.params["salt"],
        second.crypto.kdf.params["salt"]
    );
    assert_ne!(
        first.crypto.cipher.params["iv"],
        second.crypto.cipher.params["iv"]
    );
    assert_ne!(first.uuid, second.uuid);
}

/// Each hostile edit must be refused at parse time, before any kdf work,
/// with a message naming the parameter.
#[test]
fn hostile_parameters_are_refused_before_key_derivation() {
    let cases: [(&str, &str, serde_json::Value, &str); 9] = [
        ("scrypt.json", "n", (1u64 << 40).into(), "scrypt n"),
        ("scrypt.json", "n", 262_143.into(), "power of two"),
        ("scrypt.json", "r", 4_000_000_000u64.into(), "scrypt r"),
        ("scrypt.json", "p", 1_000_000.into(), "scrypt p"),
        ("scrypt.json", "dklen", (1u64 << 30).into(), "dklen"),
        ("pbkdf2.json", "c", 4_000_000_000u64.into(), "pbkdf2 c"),
        ("pbkdf2.json", "c", 0.into(), "pbkdf2 c"),
        ("pbkdf2.json", "prf", "hmac-sha512".into(), "hmac-sha512"),
        ("pbkdf2.json", "salt", "00".repeat(100_000).into(), "salt"),
    ];
    for (file, param, value, expected) in cases {
        let mut json = vector_json(file);
        json["crypto"]["kdf"]["params"][param] = value;
        let error = from_value(&json).expect_err(param);
        let message = error.to_string();
        assert!(message.contains(expected), "{param}: {message}");
    }
}

#[test]
fn scrypt_memory_bound_holds_for_allowed_n_and_r() {
    // n = 2^20 and r = 8 are each allowed alone, but need 1 GiB together.
    let mut json = vector_json("scrypt.json");
    json["crypto"]["kdf"]["params"]["n"] = (1u64 << 20).into();
    let message = from_value(&json).expect_err("1 GiB").to_string();
    assert!(message.contains("512 MiB"), "{message}");
}

#[test]
fn malformed_modules_are_named() {
    let mut json = vector_json("pbkdf2.json");
    json["version"] = 3.into();
    assert!(from_value(&json)
        .expect_err("v3")
        .to_string()
        .contains("version 3"));

    let mut json = vector_json("pbkdf2.json");
    json["crypto"]["cipher"]["function"] = "aes-256-gcm".into();
    assert!(from_value(&json)
        .expect_err("gcm")
        .to_string()
        .contains("aes-256-gcm"));

    let mut json = vector_json("pbkdf2.json");
    json["crypto"]["cipher"]["params"]["iv"] = "264daa3f".into();
    let message = from_value(&json).expect_err("iv").to_string();
    assert!(message.contains("crypto.cipher.params.iv"), "{message}");

    let mut json = vector_json("pbkdf2.json");
    json["crypto"]["cipher"]["message"] = "zz".into();
    let message = from_value(&json).expect_err("hex").to_string();
    assert!(message.contains("crypto.cipher.message"), "{message}");
}
