//! The official EIP-3076 interchange tests (v5.3.0, every file of
//! `tests/fixtures/slashing-protection-interchange-v5.3.0`) against the
//! slashing-protection database.
//!
//! Each file starts from a new database for its `genesis_validators_root`;
//! each step imports its interchange (which must succeed iff
//! `should_succeed`) and then attempts its blocks and attestations in order.
//! The database answers with the minimal strategy at or below a validator's
//! imported watermarks and with the complete strategy above them (see
//! `dv_aggregator::vc::slashing`), so each attempt is judged by the
//! expectation of the strategy that applies to it: `should_succeed` (minimal)
//! when the attempt is at or below the highest slot / source / target the
//! test imported for its key so far, `should_succeed_complete` otherwise.
//! Those highest values are computed here from the test's own interchange
//! files, not read from the database. The two expectations differ only for
//! some attempts; the line printed per step counts which one judged each.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use dv_aggregator::api::types::PublicKeyBytes;
use dv_aggregator::spec::Root;
use dv_aggregator::vc::slashing::{Interchange, SlashingDatabase};

#[derive(Deserialize)]
struct TestFile {
    name: String,
    #[serde(with = "dv_aggregator::spec::hex::root")]
    genesis_validators_root: Root,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
struct Step {
    should_succeed: bool,
    contains_slashable_data: bool,
    /// Kept as JSON: the database's own parser reads it.
    interchange: Value,
    blocks: Vec<BlockAttempt>,
    attestations: Vec<AttestationAttempt>,
}

#[derive(Deserialize)]
struct BlockAttempt {
    pubkey: PublicKeyBytes,
    #[serde(with = "serde_utils::quoted_u64::require_quotes")]
    slot: u64,
    #[serde(with = "dv_aggregator::spec::hex::root")]
    signing_root: Root,
    should_succeed: bool,
    should_succeed_complete: bool,
}

#[derive(Deserialize)]
struct AttestationAttempt {
    pubkey: PublicKeyBytes,
    #[serde(with = "serde_utils::quoted_u64::require_quotes")]
    source_epoch: u64,
    #[serde(with = "serde_utils::quoted_u64::require_quotes")]
    target_epoch: u64,
    #[serde(with = "dv_aggregator::spec::hex::root")]
    signing_root: Root,
    should_succeed: bool,
    should_succeed_complete: bool,
}

/// The highest slot, source and target a test imported for one key.
#[derive(Default, Clone, Copy)]
struct Imported {
    slot: Option<u64>,
    source: Option<u64>,
    target: Option<u64>,
}

/// Raises `imported` by every record of an interchange's JSON (read here with
/// serde_json alone, independently of the database's parser).
fn note_imported(imported: &mut HashMap<String, Imported>, interchange: &Value) {
    let number = |value: &Value| value.as_str().unwrap().parse::<u64>().unwrap();
    for entry in interchange["data"].as_array().unwrap() {
        let key = entry["pubkey"].as_str().unwrap().to_lowercase();
        let highest = imported.entry(key).or_default();
        for block in entry["signed_blocks"].as_array().unwrap() {
            highest.slot = highest.slot.max(Some(number(&block["slot"])));
        }
        for attestation in entry["signed_attestations"].as_array().unwrap() {
            highest.source = highest
                .source
                .max(Some(number(&attestation["source_epoch"])));
            highest.target = highest
                .target
                .max(Some(number(&attestation["target_epoch"])));
        }
    }
}

fn hex_key(pubkey: &PublicKeyBytes) -> String {
    format!("{pubkey:?}").to_lowercase()
}

/// Counts of attempts per strategy in one step, for the printed line.
#[derive(Default)]
struct Judged {
    minimal: usize,
    complete: usize,
}

impl Judged {
    fn pick(&mut self, minimal: bool, should_succeed: bool, should_succeed_complete: bool) -> bool {
        if minimal {
            self.minimal += 1;
            should_succeed
        } else {
            self.complete += 1;
            should_succeed_complete
        }
    }
}

/// Runs one test file; returns its failures (empty when it passes).
fn run_file(path: &Path) -> Vec<String> {
    let test: TestFile = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = SlashingDatabase::open_or_create(&SlashingDatabase::path_in(dir.path())).unwrap();
    db.ensure_genesis_validators_root(test.genesis_validators_root, "the test")
        .unwrap();
    let mut failures = Vec::new();
    let mut imported: HashMap<String, Imported> = HashMap::new();
    for (index, step) in test.steps.iter().enumerate() {
        let label = format!("{} step {index}", test.name);
        let outcome = Interchange::from_json_str(&step.interchange.to_string())
            .map_err(|e| e.to_string())
            .and_then(|interchange| {
                db.import_interchange(&interchange)
                    .map_err(|e| e.to_string())
            });
        let import_line = match (&outcome, step.should_succeed) {
            (Ok(_), true) => {
                note_imported(&mut imported, &step.interchange);
                "imported".to_string()
            }
            (Err(error), false) => format!("refused as expected ({error})"),
            (Err(error), true) if step.contains_slashable_data => {
                // The EIP lets a client refuse slashable data; the rest of
                // the test then does not apply.
                println!("{label}: refused slashable data ({error}); later steps skipped");
                break;
            }
            (Err(error), true) => {
                failures.push(format!("{label}: import failed: {error}"));
                break;
            }
            (Ok(_), false) => {
                failures.push(format!("{label}: import succeeded but should fail"));
                break;
            }
        };
        let mut judged = Judged::default();
        for (i, block) in step.blocks.iter().enumerate() {
            let highest = imported
                .get(&hex_key(&block.pubkey))
                .copied()
                .unwrap_or_default();
            let minimal = highest.slot.is_some_and(|slot| block.slot <= slot);
            let expected =
                judged.pick(minimal, block.should_succeed, block.should_succeed_complete);
            let outcome =
                db.check_and_insert_block_proposal(&block.pubkey, block.slot, block.signing_root);
            if outcome.is_ok() != expected {
                failures.push(format!(
                    "{label}: block {i} at slot {} ({} strategy) should {}: {outcome:?}",
                    block.slot,
                    strategy(minimal),
                    if expected { "succeed" } else { "fail" },
                ));
            }
        }
        for (i, attestation) in step.attestations.iter().enumerate() {
            let highest = imported
                .get(&hex_key(&attestation.pubkey))
                .copied()
                .unwrap_or_default();
            let minimal = highest.source.is_some_and(|s| attestation.source_epoch < s)
                || highest
                    .target
                    .is_some_and(|t| attestation.target_epoch <= t);
            let expected = judged.pick(
                minimal,
                attestation.should_succeed,
                attestation.should_succeed_complete,
            );
            let outcome = db.check_and_insert_attestation(
                &attestation.pubkey,
                attestation.source_epoch,
                attestation.target_epoch,
                attestation.signing_root,
            );
            if outcome.is_ok() != expected {
                failures.push(format!(
                    "{label}: attestation {i} ({}, {}) ({} strategy) should {}: {outcome:?}",
                    attestation.source_epoch,
                    attestation.target_epoch,
                    strategy(minimal),
                    if expected { "succeed" } else { "fail" },
                ));
            }
        }
        println!(
            "{label}: {import_line}; attempts judged by the minimal strategy: {}, by the complete: {}",
            judged.minimal, judged.complete
        );
    }
    failures
}

fn strategy(minimal: bool) -> &'static str {
    if minimal {
        "minimal"
    } else {
        "complete"
    }
}

fn fixture_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/slashing-protection-interchange-v5.3.0/generated");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_official_interchange_test_passes() {
    let files = fixture_files();
    // The v5.3.0 release has 38 tests; fewer means a lost fixture.
    assert_eq!(files.len(), 38, "{files:?}");
    let mut failures = Vec::new();
    let mut passed = 0;
    for path in &files {
        let file_failures = run_file(path);
        passed += usize::from(file_failures.is_empty());
        failures.extend(file_failures);
    }
    println!("{passed} of {} interchange test files pass", files.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
