//! `dv-aggregator vc slashing-protection import|export` as a process: an
//! export after an import gives back the file's records as the database
//! keeps them (the highest slot, source and target of each validator), and a
//! bad file, another network or a database in use ends with one line on
//! stderr and a non-zero exit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use dv_aggregator::vc::slashing::SlashingDatabase;

fn dv_aggregator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dv-aggregator"))
        .args(args)
        .output()
        .expect("run dv-aggregator")
}

fn slashing_protection(args: &[&str]) -> Output {
    let mut all = vec!["vc", "slashing-protection"];
    all.extend_from_slice(args);
    dv_aggregator(&all)
}

/// Asserts a non-zero exit with one line on stderr containing `needle`.
fn assert_one_line_error(output: &Output, needle: &str) {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "{stderr}");
}

fn assert_success(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The interchange of the first step of an official test (three validators,
/// several blocks and attestations each).
fn official_interchange() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "tests/fixtures/slashing-protection-interchange-v5.3.0/generated/multiple_validators_multiple_blocks_and_attestations.json",
    );
    let test: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    test["steps"][0]["interchange"].clone()
}

/// Per key: (highest slot, highest source, highest target), read with
/// serde_json alone.
fn highest_per_key(interchange: &Value) -> BTreeMap<String, [Option<u64>; 3]> {
    let number = |value: &Value| value.as_str().unwrap().parse::<u64>().unwrap();
    let mut highest: BTreeMap<String, [Option<u64>; 3]> = BTreeMap::new();
    for entry in interchange["data"].as_array().unwrap() {
        let key = entry["pubkey"].as_str().unwrap().to_lowercase();
        let [slot, source, target] = highest.entry(key).or_default();
        for block in entry["signed_blocks"].as_array().unwrap() {
            *slot = (*slot).max(Some(number(&block["slot"])));
        }
        for attestation in entry["signed_attestations"].as_array().unwrap() {
            *source = (*source).max(Some(number(&attestation["source_epoch"])));
            *target = (*target).max(Some(number(&attestation["target_epoch"])));
        }
    }
    highest
}

fn write_json(path: &Path, value: &Value) -> String {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn export_after_import_gives_back_the_records_the_database_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir: PathBuf = dir.path().join("vc-data");
    let original = official_interchange();
    let import_file = write_json(&dir.path().join("in.json"), &original);
    let network = original["metadata"]["genesis_validators_root"]
        .as_str()
        .unwrap();
    let stdout = assert_success(&slashing_protection(&[
        "import",
        &import_file,
        "--data-dir",
        path_str(&data_dir),
        "--genesis-validators-root",
        network,
    ]));
    assert!(stdout.contains("imported 3 validators"), "{stdout}");
    assert!(stdout.contains("refuses blocks at slot <= 20"), "{stdout}");
    assert!(SlashingDatabase::path_in(&data_dir).exists());

    let export_file = dir.path().join("out.json");
    let stdout = assert_success(&slashing_protection(&[
        "export",
        path_str(&export_file),
        "--data-dir",
        path_str(&data_dir),
    ]));
    assert!(stdout.contains("exported 3 validators"), "{stdout}");
    let exported: Value = serde_json::from_slice(&std::fs::read(&export_file).unwrap()).unwrap();
    assert_eq!(exported["metadata"], original["metadata"]);
    assert_eq!(highest_per_key(&exported), highest_per_key(&original));

    // The export imports into a new database and exports unchanged.
    let other_dir = dir.path().join("other");
    assert_success(&slashing_protection(&[
        "import",
        path_str(&export_file),
        "--data-dir",
        path_str(&other_dir),
    ]));
    let again_file = dir.path().join("again.json");
    assert_success(&slashing_protection(&[
        "export",
        path_str(&again_file),
        "--data-dir",
        path_str(&other_dir),
    ]));
    let again: Value = serde_json::from_slice(&std::fs::read(&again_file).unwrap()).unwrap();
    assert_eq!(again, exported);
}

#[test]
fn bad_input_ends_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("vc-data");
    let data = path_str(&data_dir);
    let import = |file: &str| slashing_protection(&["import", file, "--data-dir", data]);

    let malformed = dir.path().join("malformed.json");
    std::fs::write(&malformed, "{\"metadata\": {").unwrap();
    assert_one_line_error(&import(path_str(&malformed)), "not an EIP-3076 interchange");

    let mut interchange = official_interchange();
    interchange["metadata"]["interchange_format_version"] = "4".into();
    let old = write_json(&dir.path().join("v4.json"), &interchange);
    assert_one_line_error(
        &import(&old),
        "unsupported interchange_format_version \"4\"",
    );

    let mut interchange = official_interchange();
    interchange["data"][1]["pubkey"] = "0xb845".into();
    let short_key = write_json(&dir.path().join("short-key.json"), &interchange);
    assert_one_line_error(&import(&short_key), "expected 48 bytes");

    assert_one_line_error(
        &import(path_str(&dir.path().join("missing.json"))),
        "missing.json",
    );

    // A file for another network than the flag says, then than the database's.
    let good = write_json(&dir.path().join("good.json"), &official_interchange());
    let other_network = format!("0x{}", "11".repeat(32));
    assert_one_line_error(
        &slashing_protection(&[
            "import",
            &good,
            "--data-dir",
            data,
            "--genesis-validators-root",
            &other_network,
        ]),
        "not the --genesis-validators-root",
    );
    assert_success(&import(&good));
    let mut interchange = official_interchange();
    interchange["metadata"]["genesis_validators_root"] = other_network.clone().into();
    let elsewhere = write_json(&dir.path().join("elsewhere.json"), &interchange);
    assert_one_line_error(&import(&elsewhere), "genesis_validators_root mismatch");
    assert_one_line_error(
        &slashing_protection(&[
            "import",
            &elsewhere,
            "--data-dir",
            data,
            "--genesis-validators-root",
            &other_network,
        ]),
        "--genesis-validators-root gives",
    );

    // The database of a running client is refused, not shared.
    let held = SlashingDatabase::open_or_create(&SlashingDatabase::path_in(&data_dir)).unwrap();
    assert_one_line_error(&import(&good), "in use by another process");
    drop(held);

    assert_one_line_error(
        &slashing_protection(&[
            "export",
            path_str(&dir.path().join("out.json")),
            "--data-dir",
            path_str(&dir.path().join("empty")),
        ]),
        "no slashing-protection database",
    );
}

#[test]
fn help_explains_the_commands() {
    let help = assert_success(&dv_aggregator(&["vc", "--help"]));
    for needle in [
        "slashing-protection",
        "--data-dir",
        "empty database allows anything",
    ] {
        assert!(help.contains(needle), "vc --help lacks {needle}:\n{help}");
    }
    let help = assert_success(&slashing_protection(&["import", "--help"]));
    for needle in [
        "minimal",
        "watermarks",
        "genesis_validators_root",
        "--data-dir",
        "whole",
    ] {
        assert!(
            help.contains(needle),
            "import --help lacks {needle}:\n{help}"
        );
    }
    let help = assert_success(&slashing_protection(&["export", "--help"]));
    assert!(help.contains("without signing root"), "{help}");
}
