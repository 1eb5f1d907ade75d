//! `dv-aggregator sidecar` run as a process: it starts on a state file, logs
//! where it listens, answers the Beacon API and `is_aggregator`, and refuses
//! bad arguments with one line.

mod common;

use std::process::Command;

use common::{fixture, hex_bytes, oracle_vectors, start_binary, u64_of, Running};
use dv_aggregator::api::client::BeaconNodeClient;
use dv_aggregator::api::types::{IsAggregatorRequestItem, SignatureBytes};

/// Starts the sidecar and reads its log until it says where it listens.
fn start(args: &[&str]) -> (Running, String) {
    start_binary("sidecar", args, "addr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_state_file_on_loopback() {
    let folder = "deneb-minimal-2048";
    let vectors = oracle_vectors(folder);
    let state = fixture(&format!("oracle/{folder}/state.ssz"));
    let (_sidecar, addr) = start(&[
        "--preset",
        "minimal",
        "--state",
        state.to_str().unwrap(),
        "--http-port",
        "0",
    ]);
    assert!(
        addr.starts_with("127.0.0.1:"),
        "binds loopback by default: {addr}"
    );
    let client = BeaconNodeClient::new(&format!("http://{addr}")).unwrap();
    let genesis = client.genesis().await.unwrap();
    assert_eq!(
        genesis.genesis_validators_root.0,
        hex_bytes::<32>(&vectors["state"]["genesis_validators_root"])
    );
    let cases = vectors["attestation_cases"].as_array().unwrap();
    let items: Vec<IsAggregatorRequestItem> = cases
        .iter()
        .map(|case| IsAggregatorRequestItem {
            validator_index: u64_of(&case["validator_index"]),
            committee_index: u64_of(&case["committee_index"]),
            committees_at_slot: u64_of(&case["committees_at_slot"]),
            slot: u64_of(&case["slot"]),
            slot_signature: SignatureBytes(hex_bytes(&case["selection_proof"])),
        })
        .collect();
    let expected: Vec<bool> = cases
        .iter()
        .map(|c| c["is_aggregator"].as_bool().unwrap())
        .collect();
    assert_eq!(client.is_aggregator(&items).await.unwrap(), expected);
}

#[test]
fn bad_arguments_are_refused() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_dv-aggregator"))
            .arg("sidecar")
            .args(args)
            .output()
            .unwrap()
    };
    let neither = run(&["--preset", "minimal"]);
    assert!(!neither.status.success());
    let stderr = String::from_utf8_lossy(&neither.stderr);
    assert!(
        stderr.contains("--beacon-node") && stderr.contains("--state"),
        "{stderr}"
    );

    let missing = run(&["--state", "/nonexistent/state.ssz", "--http-port", "0"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("error: cannot read state file /nonexistent/state.ssz"),
        "{stderr}"
    );

    let wrong_preset = run(&[
        "--state",
        fixture("oracle/deneb-minimal-2048/state.ssz")
            .to_str()
            .unwrap(),
        "--http-port",
        "0",
    ]);
    assert!(!wrong_preset.status.success());
    let stderr = String::from_utf8_lossy(&wrong_preset.stderr);
    assert!(
        stderr.contains("not a fork version of config \"mainnet\""),
        "{stderr}"
    );
}
