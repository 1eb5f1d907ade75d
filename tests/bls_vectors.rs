//! The official consensus-spec BLS vectors (v0.12.3: sign, verify, aggregate,
//! aggregate_verify, fast_aggregate_verify) and the interop keys of the oracle
//! states.

use std::path::{Path, PathBuf};

use dv_aggregator::crypto::interop::interop_secret_key;
use dv_aggregator::crypto::{aggregate_signatures, PublicKey, SecretKey, Signature};
use serde::Deserialize;
use serde_yaml::Value;

/// Since spec v1.0.0 the infinity public key is invalid, so this v0.12.3 case
/// must give `false` although its file says `true` (tests/fixtures/README.md).
const STALE_CASE: &str = "verify_infinity_pubkey_and_infinity_signature";

#[derive(Deserialize)]
struct Case {
    input: Value,
    output: Value,
}

fn bls_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/spec-tests-v0.12.3/tests/general/phase0/bls")
}

/// Every case of one handler as (case name, case), in name order.
fn cases(handler: &str) -> Vec<(String, Case)> {
    let dir = bls_dir().join(handler).join("small");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no cases in {}", dir.display());
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name).join("data.yaml");
            (
                name,
                serde_yaml::from_slice(&std::fs::read(&path).unwrap()).unwrap(),
            )
        })
        .collect()
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap()
}

fn bytes(value: &Value) -> Vec<u8> {
    hex::decode(text(value).trim_start_matches("0x")).unwrap()
}

fn pubkeys(value: &Value) -> Option<Vec<PublicKey>> {
    value
        .as_sequence()
        .unwrap()
        .iter()
        .map(|pk| text(pk).parse().ok())
        .collect()
}

fn expected_bool(name: &str, case: &Case) -> bool {
    name != STALE_CASE && case.output.as_bool().unwrap()
}

#[test]
fn sign() {
    for (name, case) in cases("sign") {
        let key = SecretKey::from_bytes(&bytes(&case.input["privkey"]));
        let signature = key.map(|key| key.sign(&bytes(&case.input["message"])).to_string());
        match &case.output {
            Value::Null => assert!(signature.is_err(), "{name}"),
            output => assert_eq!(signature.unwrap(), text(output), "{name}"),
        }
    }
}

#[test]
fn verify() {
    let mut saw_stale = false;
    for (name, case) in cases("verify") {
        let pubkey = text(&case.input["pubkey"]).parse::<PublicKey>();
        let signature = text(&case.input["signature"]).parse::<Signature>();
        let message = bytes(&case.input["message"]);
        let verifies = match (pubkey, signature) {
            (Ok(pubkey), Ok(signature)) => signature.verify(&pubkey, &message),
            _ => false,
        };
        saw_stale |= name == STALE_CASE;
        assert_eq!(verifies, expected_bool(&name, &case), "{name}");
    }
    assert!(saw_stale);
}

#[test]
fn aggregate() {
    for (name, case) in cases("aggregate") {
        let signatures: Vec<Signature> = case
            .input
            .as_sequence()
            .unwrap()
            .iter()
            .map(|s| text(s).parse().unwrap())
            .collect();
        match &case.output {
            Value::Null => assert!(aggregate_signatures(&signatures).is_err(), "{name}"),
            output => {
                assert_eq!(
                    aggregate_signatures(&signatures).unwrap().to_string(),
                    text(output),
                    "{name}"
                )
            }
        }
    }
}

#[test]
fn fast_aggregate_verify() {
    for (name, case) in cases("fast_aggregate_verify") {
        let verifies = match (
            pubkeys(&case.input["pubkeys"]),
            text(&case.input["signature"]).parse::<Signature>(),
        ) {
            (Some(pubkeys), Ok(signature)) => {
                signature.fast_aggregate_verify(&pubkeys, &bytes(&case.input["message"]))
            }
            _ => false,
        };
        assert_eq!(verifies, expected_bool(&name, &case), "{name}");
    }
}

#[test]
fn aggregate_verify() {
    for (name, case) in cases("aggregate_verify") {
        let messages: Vec<Vec<u8>> = case.input["messages"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(bytes)
            .collect();
        let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let verifies = match (
            pubkeys(&case.input["pubkeys"]),
            text(&case.input["signature"]).parse::<Signature>(),
        ) {
            (Some(pubkeys), Ok(signature)) => signature.aggregate_verify(&pubkeys, &messages),
            _ => false,
        };
        assert_eq!(verifies, expected_bool(&name, &case), "{name}");
    }
}

#[derive(Deserialize)]
struct OracleVectors {
    attestation_cases: Vec<AttestationCase>,
}

#[derive(Deserialize)]
struct AttestationCase {
    validator_index: u64,
    validator_pubkey: String,
    signing_root: String,
    selection_proof: String,
}

/// Interop key i against the `validator_pubkey` (and the selection proof it
/// signs) of every attestation case of every oracle state.
#[test]
fn interop_keys_match_the_oracle_states() {
    let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oracle");
    let mut checked = 0;
    for entry in std::fs::read_dir(oracle).unwrap() {
        let path = entry.unwrap().path().join("vectors.json");
        if !path.exists() {
            continue;
        }
        let vectors: OracleVectors =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        // Every case checks the public key; signing is slower, so every 16th also checks the proof.
        for (n, case) in vectors.attestation_cases.iter().enumerate() {
            let key = interop_secret_key(case.validator_index);
            assert_eq!(
                key.public_key().to_string(),
                case.validator_pubkey,
                "{}",
                path.display()
            );
            if n % 16 == 0 {
                let root = hex::decode(&case.signing_root[2..]).unwrap();
                assert_eq!(key.sign(&root).to_string(), case.selection_proof);
            }
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} interop keys checked");
}
