//! `dv-aggregator inspect` run as a process on the oracle states: its output
//! against the oracle, and one-line errors with a non-zero exit on bad input.

mod common;

use std::process::{Command, Output};

use common::{fixture, oracle_vectors, u64_of, ORACLE_FOLDERS};
use serde_json::Value;

fn inspect(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dv-aggregator"))
        .arg("inspect")
        .args(args)
        .output()
        .expect("run dv-aggregator")
}

fn state_args(folder: &str, vectors: &Value) -> Vec<String> {
    let state = fixture(&format!("oracle/{folder}/state.ssz"));
    vec![
        "--state".into(),
        state.display().to_string(),
        "--preset".into(),
        vectors["preset"].as_str().unwrap().into(),
    ]
}

fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// Runs a failing command and returns its one-line error.
fn failure(args: &[&str]) -> String {
    let output = inspect(args);
    assert!(!output.status.success(), "{args:?} succeeded");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

/// `subcommand`, then the state arguments, then `extra`.
fn command<'a>(subcommand: &'a str, base: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
    std::iter::once(subcommand)
        .chain(base.iter().map(String::as_str))
        .chain(extra.iter().copied())
        .collect()
}

#[test]
fn state_root_and_committees_of_every_folder() {
    for folder in ORACLE_FOLDERS {
        let vectors = oracle_vectors(folder);
        let base = state_args(folder, &vectors);
        let args = command("state-root", &base, &[]);
        let root = inspect(&args);
        assert!(root.status.success(), "{folder}");
        assert_eq!(
            String::from_utf8(root.stdout).unwrap().trim(),
            vectors["state"]["hash_tree_root"].as_str().unwrap(),
            "{folder}"
        );
        for epoch in vectors["epochs"].as_array().unwrap() {
            let e = epoch["epoch"].to_string();
            let args = command("committees", &base, &["--epoch", &e]);
            let body = stdout_json(&inspect(&args));
            let expected: Vec<Value> = epoch["committees"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "index": c["committee_index"].to_string(),
                        "slot": c["slot"].to_string(),
                        "validators": c["members"].as_array().unwrap().iter()
                            .map(|m| m.to_string()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            assert_eq!(
                body,
                serde_json::json!({ "data": expected }),
                "{folder} epoch {e}"
            );
        }
    }
}

#[test]
fn is_aggregator_with_validator_checks_matches_the_oracle() {
    for folder in [
        "fulu-mainnet-1024",
        "deneb-minimal-2048",
        "phase0-minimal-2048",
    ] {
        let vectors = oracle_vectors(folder);
        let base = state_args(folder, &vectors);
        // Every 7th case keeps the process count small while crossing all epochs.
        for case in vectors["attestation_cases"]
            .as_array()
            .unwrap()
            .iter()
            .step_by(7)
        {
            let (slot, index, validator) = (
                case["slot"].to_string(),
                case["committee_index"].to_string(),
                case["validator_index"].to_string(),
            );
            let args = command(
                "is-aggregator",
                &base,
                &[
                    "--slot",
                    &slot,
                    "--committee-index",
                    &index,
                    "--validator-index",
                    &validator,
                    "--selection-proof",
                    case["selection_proof"].as_str().unwrap(),
                ],
            );
            let body = stdout_json(&inspect(&args));
            assert_eq!(
                body,
                serde_json::json!({
                    "is_aggregator": case["is_aggregator"],
                    "committee_length": case["committee_length"].to_string(),
                    "modulo": case["modulo"].to_string(),
                }),
                "{folder} slot {slot} validator {validator}"
            );
        }
    }
}

#[test]
fn sync_aggregator_matches_the_oracle() {
    let folder = "electra-mainnet-1000";
    let vectors = oracle_vectors(folder);
    let base = state_args(folder, &vectors);
    for case in vectors["sync_cases"].as_array().unwrap().iter().step_by(3) {
        let proof = case["selection_proof"].as_str().unwrap();
        let expected = serde_json::json!({
            "is_aggregator": case["is_aggregator"],
            "modulo": case["modulo"].to_string(),
        });
        // Without a state: the rule needs only the preset.
        let plain = stdout_json(&inspect(&[
            "sync-aggregator",
            "--preset",
            "mainnet",
            "--selection-proof",
            proof,
        ]));
        assert_eq!(plain, expected);
        let (slot, sub, validator) = (
            case["slot"].to_string(),
            case["subcommittee_index"].to_string(),
            case["validator_index"].to_string(),
        );
        let args = command(
            "sync-aggregator",
            &base,
            &[
                "--selection-proof",
                proof,
                "--validator-index",
                &validator,
                "--slot",
                &slot,
                "--subcommittee-index",
                &sub,
            ],
        );
        assert_eq!(
            stdout_json(&inspect(&args)),
            expected,
            "slot {slot} validator {validator}"
        );
    }
}

#[test]
fn bad_input_is_one_clear_line_and_a_non_zero_exit() {
    let folder = "fulu-mainnet-1024";
    let vectors = oracle_vectors(folder);
    let base = state_args(folder, &vectors);
    let case = &vectors["attestation_cases"][0];
    let other = vectors["attestation_cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["slot"] == case["slot"] && c["validator_index"] != case["validator_index"])
        .expect("two cases of one slot");
    let slot = case["slot"].to_string();
    let proof = case["selection_proof"].as_str().unwrap();
    let run = |extra: &[&str]| {
        let args = command("is-aggregator", &base, extra);
        failure(&args)
    };

    let out_of_range = run(&[
        "--slot",
        &slot,
        "--committee-index",
        "1",
        "--selection-proof",
        proof,
    ]);
    assert!(
        out_of_range.contains("committees_per_slot 1"),
        "{out_of_range}"
    );

    let far = (u64_of(&vectors["state"]["epoch"]) + 3) * 32;
    let far = far.to_string();
    let epoch = run(&[
        "--slot",
        &far,
        "--committee-index",
        "0",
        "--selection-proof",
        proof,
    ]);
    assert!(epoch.contains("outside the epochs 4..=6"), "{epoch}");

    let short = run(&[
        "--slot",
        &slot,
        "--committee-index",
        "0",
        "--selection-proof",
        "0xabcd",
    ]);
    assert!(short.contains("2 bytes"), "{short}");
    let not_hex = run(&[
        "--slot",
        &slot,
        "--committee-index",
        "0",
        "--selection-proof",
        "0xzz",
    ]);
    assert!(not_hex.contains("not hex"), "{not_hex}");
    let off_curve = format!("0x{}", "ff".repeat(96));
    let off_curve = run(&[
        "--slot",
        &slot,
        "--committee-index",
        "0",
        "--selection-proof",
        &off_curve,
    ]);
    assert!(
        off_curve.contains("not a valid BLS signature"),
        "{off_curve}"
    );

    let stranger = (0..1024u64)
        .find(|v| {
            let committee: Vec<u64> = vectors["epochs"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|e| e["committees"].as_array().unwrap().iter())
                .find(|c| {
                    c["slot"] == case["slot"] && c["committee_index"] == case["committee_index"]
                })
                .unwrap()["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(u64_of)
                .collect();
            !committee.contains(v)
        })
        .unwrap()
        .to_string();
    let not_member = run(&[
        "--slot",
        &slot,
        "--committee-index",
        "0",
        "--selection-proof",
        proof,
        "--validator-index",
        &stranger,
    ]);
    assert!(
        not_member.contains(&format!("validator {stranger} is not in committee 0")),
        "{not_member}"
    );

    // The proof of another member of the same committee does not verify.
    let wrong_signer = other["validator_index"].to_string();
    let bad_proof = run(&[
        "--slot",
        &slot,
        "--committee-index",
        "0",
        "--selection-proof",
        proof,
        "--validator-index",
        &wrong_signer,
    ]);
    assert!(bad_proof.contains("does not verify"), "{bad_proof}");

    // State errors: wrong preset, truncated file, garbage, missing file.
    let minimal = failure(&["state-root", "--state", &base[1], "--preset", "minimal"]);
    assert!(
        minimal.contains("not a fork version of config \"minimal\""),
        "{minimal}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(&base[1]).unwrap();
    let truncated = dir.path().join("truncated.ssz");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let truncated = failure(&["state-root", "--state", truncated.to_str().unwrap()]);
    assert!(truncated.contains("cannot decode"), "{truncated}");
    let garbage = dir.path().join("garbage.ssz");
    std::fs::write(&garbage, b"not a beacon state").unwrap();
    let garbage = failure(&["state-root", "--state", garbage.to_str().unwrap()]);
    assert!(garbage.contains("too short"), "{garbage}");
    let missing = failure(&["state-root", "--state", "/nonexistent/state.ssz"]);
    assert!(
        missing.contains("reading state /nonexistent/state.ssz"),
        "{missing}"
    );
    let fork = failure(&["state-root", "--state", &base[1], "--fork", "electra"]);
    assert!(
        fork.contains("found fork version 0x06000000 which is fulu"),
        "{fork}"
    );
    let unknown_fork = failure(&["state-root", "--state", &base[1], "--fork", "gloas"]);
    assert!(
        unknown_fork.contains("unknown fork \"gloas\""),
        "{unknown_fork}"
    );
}
