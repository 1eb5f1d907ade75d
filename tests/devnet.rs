//! Short devnets, in process and as the binary: a 1,024-validator minimal
//! chain (committees of 32, so both decisions occur), 8 distributed
//! validators split 3-of-4, two-second slots (one-second slots leave a loaded
//! 2-core CI machine too little time to agree, sign, combine and publish). Every duty must be decided by
//! every operator exactly as the undivided key decides, through both
//! selection endpoints, and the subscriptions must carry those decisions.

mod common;

use std::process::Command;

use dv_aggregator::devnet::report::DevnetReport;
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

/// Runs `config` in this process on two worker threads; its report and
/// printed table. The caller holds [`one_at_a_time`].
fn run_in_process(config: DevnetConfig) -> (DevnetReport, String) {
    common::log_warnings();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut table = Vec::new();
    let report = runtime.block_on(run(config, &mut table)).unwrap();
    (report, String::from_utf8(table).unwrap())
}

fn check_devnet(config: DevnetConfig) {
    let epochs = config.epochs;
    let running = config.operators - config.operators_down.len() as u64;
    let aggregates_due = config.selection_endpoint == SelectionEndpoint::Selections;
    let _one = one_at_a_time();
    let (report, table) = run_in_process(config);
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
        "--external-vcs",
        "--genesis-delay",
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
    let late = Command::new(env!("CARGO_BIN_EXE_dv-aggregator"))
        .args(["devnet", "--external-vcs", "--genesis-delay", "601"])
        .output()
        .unwrap();
    assert!(!late.status.success());
    let stderr = String::from_utf8_lossy(&late.stderr);
    assert!(
        stderr.contains("--genesis-delay must be at most 600 seconds"),
        "{stderr}"
    );
}

/// Waits for `child` to exit, at most `limit`.
fn wait_at_most(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < limit, "still running after {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The harness mode driven the way a user drives it with any validator
/// client: the binary runs the chain and the middlewares only, and four
/// `dv-aggregator vc` processes find their beacon node and keys through what
/// it wrote (two read the EIP-2335 files, two the
/// `keystores/0x<pubkey>/voting-keystore.json` + `secrets/` layout). Its
/// verdicts must be the ones the default devnet reaches for the same duties.
#[test]
fn the_harness_judges_external_clients_as_the_default_devnet_judges_its_own() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    let report = dir.path().join("report.json");
    let binary = env!("CARGO_BIN_EXE_dv-aggregator");
    let mut devnet = common::Running(
        Command::new(binary)
            .args(["devnet", "--external-vcs", "--validators", "1024"])
            .args(["--distributed-validators", "8", "--epochs", "1"])
            .args(["--seconds-per-slot", "2", "--genesis-delay", "8"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--report")
            .arg(&report)
            .stdout(std::fs::File::create(dir.path().join("devnet.out")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("devnet.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    let setup_file = data.join("external-vcs.json");
    let start = std::time::Instant::now();
    while !setup_file.exists() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "no {setup_file:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let setup: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&setup_file).unwrap()).unwrap();
    let operators = setup["operators"].as_array().unwrap();
    assert_eq!(operators.len(), 4, "{setup}");
    let mut vcs = Vec::new();
    for (i, operator) in operators.iter().enumerate() {
        let mut vc = Command::new(binary);
        vc.args(["vc", "--distributed-mode", "--beacon-node"])
            .arg(operator["beacon_node"].as_str().unwrap())
            .arg("--cluster-lock")
            .arg(operator["cluster_lock"].as_str().unwrap())
            .arg("--data-dir")
            .arg(dir.path().join(format!("vc-{i}")));
        if i % 2 == 0 {
            vc.arg("--keystores")
                .arg(operator["keystores"].as_str().unwrap());
        } else {
            vc.arg("--keystores")
                .arg(operator["keystores_by_pubkey"].as_str().unwrap())
                .arg("--secrets")
                .arg(operator["secrets"].as_str().unwrap());
        }
        let log = std::fs::File::create(dir.path().join(format!("vc-{i}.log"))).unwrap();
        vcs.push(common::Running(
            vc.stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        ));
    }
    let status = wait_at_most(&mut devnet.0, std::time::Duration::from_secs(180));
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    let stdout = read("devnet.out");
    assert!(
        status.success(),
        "{stdout}\n{}\n{}",
        read("devnet.err"),
        read("vc-0.log")
    );
    assert!(
        stdout.contains("operator 4: beacon node http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("result: OK"), "{stdout}");
    let external: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let summary = &external["summary"];
    assert_eq!(summary["attestation_duties"], 8, "{stdout}");
    assert_eq!(summary["incorrect"], 0, "{stdout}");
    assert_eq!(summary["subscriptions_checked"], 8, "{stdout}");
    assert_eq!(summary["subscriptions_wrong"], 0, "{stdout}");
    assert_eq!(summary["attestations_accepted"], 8, "{stdout}");

    // The default devnet of the same chain, over epoch 0 and the judged epoch 1.
    let (default, _) = run_in_process(short(SelectionEndpoint::Selections, 2));
    let key = |slot: u64, validator: u64, duty: &str| (slot, validator, duty.to_string());
    let default_verdicts: std::collections::BTreeMap<_, _> = default
        .records
        .iter()
        .map(|r| {
            (
                key(r.slot, r.validator_index, r.duty),
                (r.cluster_decision, r.ground_truth),
            )
        })
        .collect();
    let records = external["records"].as_array().unwrap();
    for record in records {
        assert_eq!(record["epoch"], 1, "{record}");
        assert_eq!(record["operators_agreeing"], 4, "{record}");
        let verdict = (
            record["cluster_decision"].as_bool(),
            record["ground_truth"].as_bool().unwrap(),
        );
        let slot = record["slot"].as_u64().unwrap();
        let validator = record["validator_index"].as_u64().unwrap();
        let duty = record["duty"].as_str().unwrap();
        assert_eq!(
            default_verdicts.get(&key(slot, validator, duty)),
            Some(&verdict),
            "{record}"
        );
    }
    let in_epoch_one = default.records.iter().filter(|r| r.epoch == 1).count();
    assert_eq!(records.len(), in_epoch_one, "{stdout}");
}
