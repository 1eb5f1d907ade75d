//! `dv-aggregator vc` as a process: its help explains every flag, bad
//! arguments exit non-zero with one line, and it runs against the sidecar,
//! logging its start and the validator indices it found.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{oracle_beacon_node, oracle_vectors, u64_of};
use dv_aggregator::api::types::PublicKeyBytes;
use dv_aggregator::cluster::create::write_keystore_with_password;
use dv_aggregator::crypto::interop::interop_secret_key;
use dv_aggregator::crypto::keystore::Kdf;
use dv_aggregator::vc::slashing::SlashingDatabase;

fn vc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dv-aggregator"))
        .arg("vc")
        .args(args)
        .output()
        .expect("run dv-aggregator vc")
}

/// Asserts a non-zero exit with one line on stderr containing `needle`.
fn assert_one_line_error(output: &Output, needle: &str) {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "{stderr}");
}

#[test]
fn help_explains_every_flag() {
    let output = vc(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--beacon-node",
        "--keystores",
        "--secrets",
        "--distributed-mode",
        "--selection-endpoint",
        "--cluster-lock",
        "--data-dir",
        "slashing-protection",
        "is-aggregator",
        "0x<pubkey>",
        "group) public key",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn bad_arguments_exit_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let missing = missing.to_str().unwrap();
    let data_dir = dir.path().join("vc-data");
    let data_dir = data_dir.to_str().unwrap();
    assert_one_line_error(
        &vc(&[
            "--beacon-node",
            "http://127.0.0.1:1",
            "--data-dir",
            data_dir,
            "--keystores",
            missing,
        ]),
        "no-such-dir",
    );
    assert_one_line_error(
        &vc(&[
            "--beacon-node",
            "http://127.0.0.1:1",
            "--data-dir",
            data_dir,
            "--keystores",
            missing,
            "--distributed-mode",
        ]),
        "--distributed-mode needs --cluster-lock",
    );
    assert_one_line_error(
        &vc(&[
            "--beacon-node",
            "http://127.0.0.1:1",
            "--data-dir",
            data_dir,
            "--keystores",
            missing,
            "--selection-endpoint",
            "is-aggregator",
        ]),
        "--distributed-mode only",
    );
    // An empty keystore directory.
    assert_one_line_error(
        &vc(&[
            "--beacon-node",
            "http://127.0.0.1:1",
            "--data-dir",
            data_dir,
            "--keystores",
            dir.path().to_str().unwrap(),
        ]),
        "no keystore",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_against_the_sidecar_until_stopped() {
    let folder = "deneb-minimal-2048";
    let vectors = oracle_vectors(folder);
    let sidecar = oracle_beacon_node(folder).await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let index = u64_of(&vectors["attestation_cases"][0]["validator_index"]);
    write_keystore_with_password(
        &interop_secret_key(index),
        &dir.path().join("keystore-0.json"),
        None,
        Kdf::INSECURE_FAST,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dv-aggregator"))
        .args(["vc", "--beacon-node", &format!("http://{}", sidecar.addr())])
        .args(["--keystores", dir.path().to_str().unwrap()])
        .args(["--data-dir", data_dir.path().to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    // The wall clock is far past the state's epoch, so only the start, the
    // key lookup and the first epoch's summary are meaningful here.
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline
        && !seen.iter().any(|l: &String| l.contains("epoch started"))
    {
        if let Ok(line) = receiver.recv_timeout(Duration::from_secs(1)) {
            seen.push(line);
        }
    }
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(still_running, "{seen:#?}");
    assert!(
        seen.iter().any(|l| l.contains("validator client started")),
        "{seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("found the validator index of every key")),
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(|l| l.contains("epoch started")),
        "the slot-clock loop ran an epoch: {seen:#?}"
    );
    // The slashing-protection database was created for the node's network
    // with the key registered.
    let db = SlashingDatabase::open_or_create(&SlashingDatabase::path_in(data_dir.path())).unwrap();
    assert_eq!(
        db.genesis_validators_root().unwrap(),
        Some(
            vectors["state"]["genesis_validators_root"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        )
    );
    assert_eq!(
        db.registered_validators().unwrap(),
        vec![PublicKeyBytes(
            interop_secret_key(index).public_key().to_bytes()
        )]
    );
}
