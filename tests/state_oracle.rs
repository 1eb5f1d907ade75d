//! The `state` module against the oracle vectors (tests/fixtures/oracle):
//! every fork and preset decodes, re-encodes byte for byte, hashes to the
//! oracle's root and yields the oracle's active sets, seeds and
//! sync-committee positions; bad input is a clear error, never a panic.

use std::path::PathBuf;

use dv_aggregator::spec::{ChainSpec, ForkName, Root};
use dv_aggregator::state::forks::{BeaconStateBellatrix, ForkState};
use dv_aggregator::state::{
    containers::ExecutionPayloadHeaderBellatrix, decode_state, BeaconState, Minimal,
    PublicKeyBytes, SyncPeriod, MAX_STATE_SSZ_BYTES,
};
use serde_json::Value;
use ssz_types::{FixedVector, VariableList};

const FOLDERS: [&str; 8] = [
    "phase0-minimal-2048",
    "altair-minimal-2048",
    "altair-mainnet-1000",
    "capella-mainnet-1000",
    "deneb-minimal-2048",
    "electra-mainnet-1000",
    "fulu-minimal-2048",
    "fulu-mainnet-1024",
];

struct Oracle {
    folder: &'static str,
    ssz: Vec<u8>,
    vectors: Value,
}

impl Oracle {
    fn load(folder: &'static str) -> Self {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/oracle")
            .join(folder);
        let ssz = std::fs::read(dir.join("state.ssz")).unwrap();
        let vectors =
            serde_json::from_slice(&std::fs::read(dir.join("vectors.json")).unwrap()).unwrap();
        Oracle {
            folder,
            ssz,
            vectors,
        }
    }

    fn spec(&self) -> ChainSpec {
        match self.vectors["preset"].as_str().unwrap() {
            "mainnet" => ChainSpec::mainnet(),
            "minimal" => ChainSpec::minimal(),
            other => panic!("{}: unknown preset {other}", self.folder),
        }
    }

    fn fork(&self) -> ForkName {
        fork_name(self.vectors["fork"].as_str().unwrap())
    }

    fn state(&self) -> BeaconState {
        decode_state(&self.ssz, &self.spec(), None)
            .unwrap_or_else(|e| panic!("{}: {e}", self.folder))
    }
}

fn fork_name(name: &str) -> ForkName {
    match name {
        "phase0" => ForkName::Phase0,
        "altair" => ForkName::Altair,
        "bellatrix" => ForkName::Bellatrix,
        "capella" => ForkName::Capella,
        "deneb" => ForkName::Deneb,
        "electra" => ForkName::Electra,
        "fulu" => ForkName::Fulu,
        other => panic!("unknown fork {other}"),
    }
}

fn bytes(value: &Value) -> Vec<u8> {
    let s = value.as_str().unwrap();
    hex::decode(s.strip_prefix("0x").unwrap()).unwrap()
}

fn root(value: &Value) -> Root {
    Root::from_slice(&bytes(value))
}

fn u64s(value: &Value) -> Vec<u64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

fn error_message(result: Result<BeaconState, dv_aggregator::state::StateError>) -> String {
    match result {
        Ok(state) => panic!("expected an error, decoded {state:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_oracle_state_decodes_reencodes_and_hashes() {
    for folder in FOLDERS {
        let oracle = Oracle::load(folder);
        let expected = &oracle.vectors["state"];
        assert_eq!(
            oracle.ssz.len() as u64,
            expected["ssz_length"].as_u64().unwrap()
        );
        let state = oracle.state();
        assert_eq!(state.fork_name(), oracle.fork(), "{folder}");
        assert_eq!(state.preset_name(), oracle.spec().preset.name, "{folder}");
        assert_eq!(
            state.hash_tree_root(),
            root(&expected["hash_tree_root"]),
            "{folder}"
        );
        assert!(
            state.as_ssz_bytes() == oracle.ssz,
            "{folder}: re-encoding differs"
        );
        assert_eq!(state.slot(), expected["slot"].as_u64().unwrap(), "{folder}");
        assert_eq!(
            state.get_current_epoch(),
            expected["epoch"].as_u64().unwrap()
        );
        assert_eq!(
            state.genesis_time(),
            expected["genesis_time"].as_u64().unwrap()
        );
        assert_eq!(
            state.genesis_validators_root(),
            root(&expected["genesis_validators_root"])
        );
        let fork = state.fork();
        assert_eq!(
            fork.previous_version.to_vec(),
            bytes(&expected["fork"]["previous_version"])
        );
        assert_eq!(
            fork.current_version.to_vec(),
            bytes(&expected["fork"]["current_version"])
        );
        assert_eq!(fork.epoch, expected["fork"]["epoch"].as_u64().unwrap());
        assert_eq!(
            state.validators().len() as u64,
            expected["validator_count"].as_u64().unwrap()
        );
    }
}

#[test]
fn active_validators_seeds_and_mixes_match_every_epoch() {
    for folder in FOLDERS {
        let oracle = Oracle::load(folder);
        let state = oracle.state();
        let constants = &oracle.vectors["constants"];
        let domain: [u8; 4] = bytes(&constants["DOMAIN_BEACON_ATTESTER"])
            .try_into()
            .unwrap();
        let vector = constants["EPOCHS_PER_HISTORICAL_VECTOR"].as_u64().unwrap();
        for case in oracle.vectors["epochs"].as_array().unwrap() {
            let epoch = case["epoch"].as_u64().unwrap();
            assert_eq!(
                state.get_active_validator_indices(epoch).len() as u64,
                case["active_validator_count"].as_u64().unwrap(),
                "{folder} epoch {epoch}"
            );
            assert_eq!(
                state.get_seed(epoch, domain),
                root(&case["seed"]),
                "{folder} {epoch}"
            );
            let mix_index = case["randao_mix_index"].as_u64().unwrap();
            assert_eq!(
                state.randao_mixes()[mix_index as usize],
                root(&case["randao_mix"])
            );
            // Any epoch congruent to the index reads the same mix.
            assert_eq!(
                state.get_randao_mix(mix_index + 3 * vector),
                root(&case["randao_mix"])
            );
        }
    }
}

#[test]
fn validator_groups_have_the_activity_their_names_say() {
    for folder in FOLDERS {
        let oracle = Oracle::load(folder);
        let state = oracle.state();
        let groups = &oracle.vectors["state"]["validator_groups"];
        let current = state.get_current_epoch();
        let previous = state.get_previous_epoch();
        let active =
            |index: u64, epoch: u64| state.validators()[index as usize].is_active_validator(epoch);
        for i in u64s(&groups["pending_activation_next_epoch"]) {
            assert!(
                !active(i, current) && active(i, current + 1),
                "{folder} {i}"
            );
        }
        for i in u64s(&groups["exiting_next_epoch"]) {
            assert!(
                active(i, current) && !active(i, current + 1),
                "{folder} {i}"
            );
        }
        for i in u64s(&groups["never_activated"]) {
            assert!(
                !active(i, previous) && !active(i, current + 1),
                "{folder} {i}"
            );
        }
        for i in u64s(&groups["exited_before_previous_epoch"]) {
            assert!(!active(i, previous), "{folder} {i}");
        }
        for i in u64s(&groups["exited_at_current_epoch"]) {
            assert!(active(i, previous) && !active(i, current), "{folder} {i}");
        }
        for i in u64s(&groups["slashed_but_active"]) {
            assert!(active(i, current) && state.validators()[i as usize].slashed);
        }
    }
}

#[test]
fn sync_committee_members_and_positions_match() {
    for folder in FOLDERS {
        let oracle = Oracle::load(folder);
        let state = oracle.state();
        let sync = &oracle.vectors["sync_committee"];
        if oracle.fork() == ForkName::Phase0 {
            assert!(state.current_sync_committee().is_none());
            let error = state
                .sync_committee_positions(0, SyncPeriod::Current)
                .unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("Phase0 state has no sync committees"),
                "{error}"
            );
            continue;
        }
        let members = u64s(&sync["current_sync_committee_validator_indices"]);
        assert_eq!(
            state
                .sync_committee_validator_indices(SyncPeriod::Current)
                .unwrap(),
            members
        );
        let committee = state.current_sync_committee().unwrap();
        assert_eq!(
            committee.aggregate_pubkey().to_string(),
            sync["aggregate_pubkey"].as_str().unwrap()
        );
        assert!(state.next_sync_committee().is_some());
        let subcommittee_size = sync["subcommittee_size"].as_u64().unwrap();
        assert_eq!(state.sync_subcommittee_size(), subcommittee_size);

        // Every member's positions are where the oracle lists it, repeats included.
        for &member in &members {
            let expected: Vec<u64> = (0..)
                .zip(&members)
                .filter(|(_, m)| **m == member)
                .map(|(p, _)| p)
                .collect();
            assert_eq!(
                state
                    .sync_committee_positions(member, SyncPeriod::Current)
                    .unwrap(),
                expected
            );
            let mut subnets: Vec<u64> = expected.iter().map(|p| p / subcommittee_size).collect();
            subnets.dedup();
            assert_eq!(
                state
                    .sync_subcommittee_indices(member, SyncPeriod::Current)
                    .unwrap(),
                subnets
            );
        }

        for case in oracle.vectors["sync_cases"].as_array().unwrap() {
            let validator = case["validator_index"].as_u64().unwrap();
            let subcommittee = case["subcommittee_index"].as_u64().unwrap();
            let period = state
                .sync_period_of_epoch(case["epoch"].as_u64().unwrap())
                .unwrap();
            let pubkey = &state.validators()[validator as usize].pubkey;
            assert_eq!(
                pubkey.to_string(),
                case["validator_pubkey"].as_str().unwrap()
            );
            assert_eq!(state.validator_index_by_pubkey(pubkey), Some(validator));
            let in_subcommittee: Vec<u64> = state
                .sync_committee_positions(validator, period)
                .unwrap()
                .into_iter()
                .filter(|p| p / subcommittee_size == subcommittee)
                .map(|p| p % subcommittee_size)
                .collect();
            assert_eq!(
                in_subcommittee,
                u64s(&case["positions_in_subcommittee"]),
                "{folder} validator {validator} subcommittee {subcommittee}"
            );
            if !in_subcommittee.is_empty() {
                assert!(state
                    .sync_subcommittee_indices(validator, period)
                    .unwrap()
                    .contains(&subcommittee));
            }
        }
    }
}

#[test]
fn unknown_pubkeys_and_indices_are_absent_not_panics() {
    let state = Oracle::load("altair-minimal-2048").state();
    assert_eq!(
        state.validator_index_by_pubkey(&PublicKeyBytes([0x11; 48])),
        None
    );
    let error = state
        .sync_committee_positions(u64::MAX, SyncPeriod::Next)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("18446744073709551615 is not in the registry of 2048"),
        "{error}"
    );
    let far = state.sync_period_of_epoch(1_000_000).unwrap_err();
    assert!(far.to_string().contains("epoch 1000000"), "{far}");
}

#[test]
fn truncated_garbage_and_empty_input_are_clear_errors() {
    let oracle = Oracle::load("fulu-mainnet-1024");
    let spec = oracle.spec();
    let truncated = error_message(decode_state(
        &oracle.ssz[..oracle.ssz.len() - 1],
        &spec,
        None,
    ));
    assert!(
        truncated.contains("as a Fulu BeaconState of the Mainnet preset"),
        "{truncated}"
    );
    assert!(truncated.contains("0x06000000"), "{truncated}");

    let empty = error_message(decode_state(&[], &spec, None));
    assert!(empty.contains("0 bytes is too short"), "{empty}");
    let short = error_message(decode_state(&oracle.ssz[..55], &spec, None));
    assert!(short.contains("55 bytes is too short"), "{short}");

    let garbage = error_message(decode_state(&[0xab; 4096], &spec, None));
    assert!(
        garbage.contains("0xabababab is not a fork version of config \"mainnet\""),
        "{garbage}"
    );

    // A genuine header followed by garbage gets as far as the decoder.
    let mut forged = oracle.ssz[..4096].to_vec();
    forged.extend_from_slice(&[0xff; 4096]);
    let forged = error_message(decode_state(&forged, &spec, None));
    assert!(forged.contains("cannot decode 8192 bytes"), "{forged}");
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    let huge = vec![0u8; MAX_STATE_SSZ_BYTES + 1];
    let error = error_message(decode_state(&huge, &ChainSpec::mainnet(), None));
    assert!(
        error.contains(&format!("exceeds the bound of {MAX_STATE_SSZ_BYTES} bytes")),
        "{error}"
    );
}

#[test]
fn a_minimal_state_with_the_mainnet_spec_is_refused() {
    let oracle = Oracle::load("fulu-minimal-2048");
    let error = error_message(decode_state(&oracle.ssz, &ChainSpec::mainnet(), None));
    assert!(
        error.contains("0x06000001 is not a fork version of config \"mainnet\""),
        "{error}"
    );
    // Forcing the fork does not force the preset's lengths.
    let forced = error_message(decode_state(
        &oracle.ssz,
        &ChainSpec::mainnet(),
        Some(ForkName::Fulu),
    ));
    assert!(
        forced.contains("as a Fulu BeaconState of the Mainnet preset"),
        "{forced}"
    );
}

#[test]
fn a_fork_override_must_agree_with_a_known_version() {
    let oracle = Oracle::load("electra-mainnet-1000");
    let spec = oracle.spec();
    let error = error_message(decode_state(&oracle.ssz, &spec, Some(ForkName::Fulu)));
    assert!(
        error.contains("expected a Fulu state, found fork version 0x05000000 which is Electra"),
        "{error}"
    );
    let agreeing = decode_state(&oracle.ssz, &spec, Some(ForkName::Electra)).unwrap();
    assert_eq!(agreeing.fork_name(), ForkName::Electra);

    // A version the config does not know (a devnet) trusts the override,
    // and the override's schema still has to fit.
    let mut devnet = oracle.ssz.clone();
    devnet[52..56].copy_from_slice(&[0x05, 0, 0, 0x99]);
    let state = decode_state(&devnet, &spec, Some(ForkName::Electra)).unwrap();
    assert_eq!(state.fork().current_version, [0x05, 0, 0, 0x99]);
    let wrong = error_message(decode_state(&devnet, &spec, Some(ForkName::Fulu)));
    assert!(
        wrong.contains("cannot decode") && wrong.contains("as a Fulu BeaconState"),
        "{wrong}"
    );
}

#[test]
fn bellatrix_state_round_trips() {
    let oracle = Oracle::load("altair-minimal-2048");
    let spec = ChainSpec::minimal();
    let ForkState::Altair(altair) =
        ForkState::<Minimal>::from_ssz_bytes(ForkName::Altair, &oracle.ssz).unwrap()
    else {
        panic!("not altair");
    };
    let mut fork = altair.fork;
    fork.previous_version = fork.current_version;
    fork.current_version = spec.fork_version(ForkName::Bellatrix);
    let header = ExecutionPayloadHeaderBellatrix {
        parent_hash: Root::repeat_byte(1),
        fee_recipient: [2; 20],
        state_root: Root::repeat_byte(3),
        receipts_root: Root::repeat_byte(4),
        logs_bloom: FixedVector::new(vec![5; 256]).unwrap(),
        prev_randao: Root::repeat_byte(6),
        block_number: 7,
        gas_limit: 30_000_000,
        gas_used: 9,
        timestamp: 10,
        extra_data: VariableList::new(b"dv-aggregator".to_vec()).unwrap(),
        base_fee_per_gas: alloy_primitives::U256::from(1_000_000_007u64) << 200,
        block_hash: Root::repeat_byte(11),
        transactions_root: Root::repeat_byte(12),
    };
    let bellatrix = BeaconStateBellatrix::<Minimal> {
        genesis_time: altair.genesis_time,
        genesis_validators_root: altair.genesis_validators_root,
        slot: altair.slot,
        fork,
        latest_block_header: altair.latest_block_header,
        block_roots: altair.block_roots,
        state_roots: altair.state_roots,
        historical_roots: altair.historical_roots,
        eth1_data: altair.eth1_data,
        eth1_data_votes: altair.eth1_data_votes,
        eth1_deposit_index: altair.eth1_deposit_index,
        validators: altair.validators,
        balances: altair.balances,
        randao_mixes: altair.randao_mixes,
        slashings: altair.slashings,
        previous_epoch_participation: altair.previous_epoch_participation,
        current_epoch_participation: altair.current_epoch_participation,
        justification_bits: altair.justification_bits,
        previous_justified_checkpoint: altair.previous_justified_checkpoint,
        current_justified_checkpoint: altair.current_justified_checkpoint,
        finalized_checkpoint: altair.finalized_checkpoint,
        inactivity_scores: altair.inactivity_scores,
        current_sync_committee: altair.current_sync_committee,
        next_sync_committee: altair.next_sync_committee,
        latest_execution_payload_header: header,
    };
    let built = BeaconState::from(ForkState::Bellatrix(bellatrix));
    let encoded = built.as_ssz_bytes();
    // Altair's bytes, one more offset, the header's fixed part and its extra data.
    let header_fixed = 32 + 20 + 32 + 32 + 256 + 32 + 8 * 4 + 4 + 32 + 32 + 32;
    assert_eq!(encoded.len(), oracle.ssz.len() + 4 + header_fixed + 13);
    let decoded = decode_state(&encoded, &spec, None).unwrap();
    assert_eq!(decoded.fork_name(), ForkName::Bellatrix);
    assert_eq!(decoded.hash_tree_root(), built.hash_tree_root());
    assert!(decoded.as_ssz_bytes() == encoded);
    assert_ne!(
        decoded.hash_tree_root(),
        root(&oracle.vectors["state"]["hash_tree_root"])
    );
    let error = error_message(decode_state(&encoded, &spec, Some(ForkName::Altair)));
    assert!(error.contains("expected a Altair state"), "{error}");
}
