//! The attester and aggregator duties' objects against the executable spec's
//! vectors (tests/fixtures/duties, generated with eth-consensus-specs
//! 1.7.0a13): JSON and SSZ decode and re-encode, every root, the signing
//! roots and the interop keys' signatures.

use serde_json::Value;
use tree_hash::TreeHash;

use dv_aggregator::api::attestation::{
    AggregateAndProof, Attestation, SignedAggregateAndProof, SingleAttestation,
};
use dv_aggregator::api::types::SignatureBytes;
use dv_aggregator::crypto::interop::interop_secret_key;
use dv_aggregator::spec::signing::attestation_signing_root;
use dv_aggregator::spec::{AttestationData, Fork, Preset, Root};
use ssz::{Decode, Encode};

fn vectors() -> Vec<Value> {
    let text = std::fs::read_to_string("tests/fixtures/duties/vectors.json").unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    file["cases"].as_array().unwrap().clone()
}

fn bytes(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

fn root(value: &Value) -> Root {
    Root::from_slice(&bytes(value))
}

fn preset(case: &Value) -> Preset {
    match case["preset"].as_str().unwrap() {
        "mainnet" => Preset::mainnet(),
        _ => Preset::minimal(),
    }
}

fn is_electra(case: &Value) -> bool {
    matches!(case["fork"].as_str().unwrap(), "electra" | "fulu")
}

/// The vectors sign with one fork version for every epoch.
fn fork(case: &Value) -> Fork {
    let version: [u8; 4] = bytes(&case["fork_version"]).try_into().unwrap();
    Fork {
        previous_version: version,
        current_version: version,
        epoch: 0,
    }
}

#[test]
fn attestation_data_matches_the_spec() {
    for case in vectors() {
        let vector = &case["attestation_data"];
        let data: AttestationData = serde_json::from_value(vector["json"].clone()).unwrap();
        assert_eq!(data.as_ssz_bytes(), bytes(&vector["ssz"]));
        assert_eq!(
            AttestationData::from_ssz_bytes(&bytes(&vector["ssz"])).unwrap(),
            data
        );
        assert_eq!(serde_json::to_value(data).unwrap(), vector["json"]);
        assert_eq!(data.tree_hash_root(), root(&vector["hash_tree_root"]));
        let gvr = root(&case["genesis_validators_root"]);
        let signing_root = attestation_signing_root(&data, &fork(&case), gvr);
        assert_eq!(signing_root, root(&vector["signing_root"]));
        let key = interop_secret_key(case["attester_index"].as_u64().unwrap());
        let signature = key.sign(signing_root.as_slice());
        assert_eq!(signature.to_bytes().to_vec(), bytes(&vector["signature"]));
    }
}

#[test]
fn attestations_match_the_spec() {
    for case in vectors() {
        let vector = &case["attestation"];
        let ssz = bytes(&vector["ssz"]);
        let preset = preset(&case);
        let attestation = Attestation::from_ssz_bytes(&ssz, is_electra(&case), &preset).unwrap();
        assert_eq!(attestation.as_ssz_bytes(), ssz, "{}", case["fork"]);
        assert_eq!(
            attestation.tree_hash_root(&preset),
            root(&vector["hash_tree_root"]),
            "{} {}",
            case["fork"],
            case["preset"]
        );
        assert_eq!(
            attestation.committee_index(),
            vector["committee_index"].as_u64()
        );
        let json = serde_json::to_value(&attestation).unwrap();
        assert_eq!(json["aggregation_bits"], vector["aggregation_bits"]);
        if is_electra(&case) {
            assert_eq!(json["committee_bits"], vector["committee_bits"]);
        }
        let back: Attestation = serde_json::from_value(json).unwrap();
        back.check_lengths(&preset).unwrap();
        assert_eq!(
            back.tree_hash_root(&preset),
            attestation.tree_hash_root(&preset)
        );
        // The wrong form or the wrong preset does not decode.
        assert!(Attestation::from_ssz_bytes(&ssz, !is_electra(&case), &preset).is_err());
    }
}

#[test]
fn single_attestations_match_the_spec() {
    let mut seen = 0;
    for case in vectors().iter().filter(|case| is_electra(case)) {
        let vector = &case["single_attestation"];
        let ssz = bytes(&vector["ssz"]);
        let single = SingleAttestation::from_ssz_bytes(&ssz).unwrap();
        assert_eq!(single.as_ssz_bytes(), ssz);
        assert_eq!(single.tree_hash_root(), root(&vector["hash_tree_root"]));
        assert_eq!(
            single.attester_index,
            case["attester_index"].as_u64().unwrap()
        );
        seen += 1;
    }
    assert_eq!(seen, 3);
}

#[test]
fn aggregate_and_proofs_match_the_spec() {
    for case in vectors() {
        let vector = &case["aggregate_and_proof"];
        let preset = preset(&case);
        let electra = is_electra(&case);
        let message =
            AggregateAndProof::from_ssz_bytes(&bytes(&vector["ssz"]), electra, &preset).unwrap();
        assert_eq!(message.as_ssz_bytes(), bytes(&vector["ssz"]));
        assert_eq!(
            message.tree_hash_root(&preset),
            root(&vector["hash_tree_root"])
        );
        let gvr = root(&case["genesis_validators_root"]);
        let signing_root = message.signing_root(&fork(&case), gvr, &preset);
        assert_eq!(signing_root, root(&vector["signing_root"]));
        let key = interop_secret_key(vector["aggregator_index"].as_u64().unwrap());
        assert_eq!(
            key.sign(signing_root.as_slice()).to_bytes().to_vec(),
            bytes(&vector["signature"])
        );
        let signed_ssz = bytes(&vector["signed_ssz"]);
        let signed =
            SignedAggregateAndProof::from_ssz_bytes(&signed_ssz, electra, &preset).unwrap();
        assert_eq!(signed.as_ssz_bytes(), signed_ssz);
        assert_eq!(
            signed.tree_hash_root(&preset),
            root(&vector["signed_hash_tree_root"])
        );
        let signature: [u8; 96] = bytes(&vector["signature"]).try_into().unwrap();
        assert_eq!(signed.signature, SignatureBytes(signature));
        let json = serde_json::to_string(&signed).unwrap();
        let back: SignedAggregateAndProof = serde_json::from_str(&json).unwrap();
        assert_eq!(back.tree_hash_root(&preset), signed.tree_hash_root(&preset));
        // Cut inside the fixed parts: refused, never a panic.
        for cut in [0, 1, 50, 99, 100, 107, 108, 207] {
            assert!(
                SignedAggregateAndProof::from_ssz_bytes(&signed_ssz[..cut], electra, &preset)
                    .is_err(),
                "cut at {cut}"
            );
        }
    }
}
