//! Short devnets, in process and as the binary: a 1,024-validator minimal
//! chain (committees of 32, so both decisions occur), 8 distributed
//! validators split 3-of-4, two-second slots (one-second slots leave a loaded
//! 2-core CI machine too little time to agree, sign, combine and publish). Every duty must be decided by
//! every operator exactly as the undivided key decides, through both
//! selection endpoints, and the subscriptions must carry those decisions.

mod common;

use std::process::Command;

use dv_aggregator::devnet::{run, DevnetConfig};
use dv_aggregator::vc::SelectionEndpoint;

fn short(endpoint: SelectionEndpoint, epochs: u64) -> DevnetConfig {
    DevnetConfig {
        validators: 1024,
        distributed_validators: 8,
        epochs,
        seconds_per_slot: 2,
        selection_endpoint: endpoint,
        ..DevnetConfig::default()
    }
}

/// One devnet at a time: each runs on one-second slots, and several at once
/// on a 2-core machine would test the machine, not the devnet.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The services' warnings, printed with a failing test's output (the
/// runtime's threads inherit the test's output capture).
fn log_warnings() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_ansi(false)
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .try_init();
    });
}

fn check_devnet(config: DevnetConfig) {
    let epochs = config.epochs;
    let running = config.operators - config.operators_down.len() as u64;
    let aggregates_due = config.selection_endpoint == SelectionEndpoint::Selections;
    let _one = one_at_a_time();
    log_warnings();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut table = Vec::new();
    let report = runtime.block_on(run(config, &mut table)).unwrap();
    let table = String::from_utf8(table).unwrap();
    let summary = &report.summary;
    let failures: Vec<_> = report.records.iter().flat_map(|r| &r.failures).collect();
    assert!(summary.is_ok(), "{summary:?}\n{table}\n{failures:#?}");
    // Every distributed validator has one attestation duty per epoch.
    assert_eq!(summary.attestation_duties, 8 * epochs, "{table}");
    assert_eq!(summary.correct, summary.duties);
    // Every attestation, and with combined selection proofs every aggregate
    // the undivided keys select, is on the chain; nothing else is.
    assert_eq!(summary.attestations_accepted, summary.attestation_duties);
    let expected = if aggregates_due {
        summary.attestation_aggregators
    } else {
        0
    };
    assert_eq!(summary.aggregates_expected, expected);
    assert_eq!(summary.aggregates_accepted, expected, "{table}");
    assert_eq!(summary.aggregates_unexpected, 0, "{table}");
    let attestations: Vec<_> = report
        .records
        .iter()
        .filter(|r| r.duty == "attestation")
        .collect();
    assert!(
        attestations.iter().any(|r| r.ground_truth),
        "no aggregator:\n{table}"
    );
    assert!(
        attestations.iter().any(|r| !r.ground_truth),
        "no non-aggregator:\n{table}"
    );
    for record in &report.records {
        assert_eq!(record.operators_agreeing, running, "{record:?}");
        assert_eq!(
            record.cluster_decision,
            Some(record.ground_truth),
            "{record:?}"
        );
        assert!(record.latency_ms.is_some(), "{record:?}");
    }
    assert_eq!(summary.subscriptions_checked, summary.attestation_duties);
    let rows = table
        .lines()
        .filter(|line| line.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .count();
    assert_eq!(rows, report.records.len(), "{table}");
}

#[test]
fn a_short_devnet_decides_every_duty_as_the_undivided_key_through_selections() {
    check_devnet(short(SelectionEndpoint::Selections, 2));
}

#[test]
fn a_short_devnet_decides_every_duty_as_the_undivided_key_through_is_aggregator() {
    check_devnet(short(SelectionEndpoint::IsAggregator, 1));
}

#[test]
fn a_short_devnet_with_one_operator_down_attests_and_aggregates_every_duty() {
    // Operator 1 leads some slots' agreements: those cost a round change.
    check_devnet(DevnetConfig {
        operators_down: vec![1],
        ..short(SelectionEndpoint::Selections, 1)
    });
}

#[test]
fn a_short_devnet_of_clients_on_their_own_clocks_decides_every_duty_as_the_undivided_key() {
    check_devnet(DevnetConfig {
        clients_follow_clock: true,
        ..short(SelectionEndpoint::Selections, 2)
    });
}

#[test]
fn the_command_prints_the_table_writes_the_report_and_exits_zero() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_dv-aggregator"))
        .args([
            "devnet",
            "--validators",
            "1024",
            "--distributed-validators",
            "8",
        ])
        .args(["--epochs", "1", "--seconds-per-slot", "2", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("the chain has no blocks"), "{stdout}");
    assert!(stdout.contains("result: OK"), "{stdout}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let records = json["records"].as_array().unwrap();
    assert!(records.len() >= 8, "{json}");
    for record in records {
        for field in [
            "epoch",
            "slot",
            "validator_index",
            "duty",
            "cluster_decision",
            "ground_truth",
            "operators_agreeing",
            "latency_ms",
        ] {
            assert!(record.get(field).is_some(), "{field} missing in {record}");
        }
        assert_eq!(record["cluster_decision"], record["ground_truth"]);
    }
    assert_eq!(json["summary"]["incorrect"], 0);
}

#[test]
fn the_command_explains_itself_and_refuses_a_bad_configuration() {
    let help = Command::new(env!("CARGO_BIN_EXE_dv-aggregator"))
        .args(["devnet", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--validators",
        "--distributed-validators",
        "--operators",
        "--threshold",
        "--epochs",
        "--seconds-per-slot",
        "--preset",
        "--report",
        "empty slots",
    ] {
        assert!(text.contains(flag), "{flag} not in\n{text}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_dv-aggregator"))
        .args([
            "devnet",
            "--validators",
            "64",
            "--distributed-validators",
            "65",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("--distributed-validators 65 must be between 1 and --validators 64"),
        "{stderr}"
    );
}
