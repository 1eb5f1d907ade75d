//! The middleware's partial store with real crypto: interop validator keys of
//! an oracle state (`tests/fixtures/oracle/altair-minimal-2048`) split 3-of-4,
//! partials signed over the oracle's selection-proof signing roots, combined
//! proofs checked against the oracle's `selection_proof` of each validator.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{hex_bytes, oracle_vectors, split_interop_keys, u64_of};
use dv_aggregator::cluster::ClusterLock;
use dv_aggregator::crypto::interop::interop_secret_key;
use dv_aggregator::crypto::{PublicKey, SecretKey, Signature};
use dv_aggregator::middleware::{
    Clock, DutyKey, InsertOutcome, Partial, PartialStore, Source, StoreError, StoreLimits,
};
use dv_aggregator::spec::signing::{
    selection_proof_signing_root, sync_selection_proof_signing_root,
};
use dv_aggregator::spec::{ChainSpec, Fork, Root, Slot};
use serde_json::Value;

const FOLDER: &str = "altair-minimal-2048";
const THRESHOLD: u64 = 3;
const OPERATORS: u64 = 4;

/// One oracle selection case: the validator, its duty's signing root and the
/// selection proof the validator's own key gives.
#[derive(Clone, Copy)]
struct Case {
    validator_index: u64,
    slot: Slot,
    signing_root: Root,
    selection_proof: Signature,
    subcommittee_index: Option<u64>,
}

impl Case {
    fn from_json(case: &Value) -> Self {
        Self {
            validator_index: u64_of(&case["validator_index"]),
            slot: u64_of(&case["slot"]),
            signing_root: Root::from(hex_bytes::<32>(&case["signing_root"])),
            selection_proof: Signature::from_bytes(&hex_bytes::<96>(&case["selection_proof"]))
                .unwrap(),
            subcommittee_index: case["subcommittee_index"].as_u64(),
        }
    }
}

/// A 3-of-4 cluster whose validators are the interop keys of the oracle cases.
struct Cluster {
    vectors: Value,
    lock: ClusterLock,
    /// Key shares by validator index, then share index.
    shares: BTreeMap<u64, BTreeMap<u64, SecretKey>>,
    state_slot: Slot,
}

impl Cluster {
    fn new(validator_indices: &[u64]) -> Self {
        let vectors = oracle_vectors(FOLDER);
        let (split, shares) = split_interop_keys(validator_indices, THRESHOLD, OPERATORS);
        let lock = split.lock;
        let state_slot = u64_of(&vectors["state"]["slot"]);
        Self {
            vectors,
            lock,
            shares,
            state_slot,
        }
    }

    fn store(&self) -> PartialStore {
        PartialStore::new(&self.lock, self.limits(), self.state_slot)
    }

    /// Two epochs of the minimal preset either side of the state's slot.
    fn limits(&self) -> StoreLimits {
        StoreLimits::for_slots_per_epoch(u64_of(&self.vectors["constants"]["SLOTS_PER_EPOCH"]))
    }

    fn group_key(&self, validator_index: u64) -> PublicKey {
        interop_secret_key(validator_index).public_key()
    }

    fn key(&self, case: &Case) -> DutyKey {
        let validator = self.group_key(case.validator_index);
        match case.subcommittee_index {
            Some(subcommittee) => DutyKey::sync(validator, case.slot, subcommittee),
            None => DutyKey::attestation(validator, case.slot),
        }
    }

    /// The partial of `share_index` over `root`, signed by that share of the validator.
    fn partial(&self, validator_index: u64, share_index: u64, root: Root) -> Partial {
        Partial {
            share_index,
            signing_root: root,
            signature: self.shares[&validator_index][&share_index].sign(root.as_slice()),
        }
    }

    fn fork(&self) -> (Fork, Root) {
        let state = &self.vectors["state"];
        let fork = Fork {
            previous_version: hex_bytes(&state["fork"]["previous_version"]),
            current_version: hex_bytes(&state["fork"]["current_version"]),
            epoch: u64_of(&state["fork"]["epoch"]),
        };
        (
            fork,
            Root::from(hex_bytes::<32>(&state["genesis_validators_root"])),
        )
    }
}

/// The first `count` attestation cases of distinct validators.
fn attestation_cases(count: usize) -> Vec<Case> {
    let vectors = oracle_vectors(FOLDER);
    let mut seen = Vec::new();
    let mut cases = Vec::new();
    for case in vectors["attestation_cases"].as_array().unwrap() {
        let case = Case::from_json(case);
        if !seen.contains(&case.validator_index) {
            seen.push(case.validator_index);
            cases.push(case);
        }
        if cases.len() == count {
            break;
        }
    }
    assert_eq!(cases.len(), count, "{FOLDER} has too few attestation cases");
    cases
}

fn cluster_of(cases: &[Case]) -> Cluster {
    let indices: Vec<u64> = cases.iter().map(|c| c.validator_index).collect();
    Cluster::new(&indices)
}

/// One validator's cluster, a fresh store, the first attestation case and its duty.
fn one() -> (Case, Cluster, PartialStore, DutyKey) {
    let cases = attestation_cases(1);
    let cluster = cluster_of(&cases);
    let (store, key) = (cluster.store(), cluster.key(&cases[0]));
    (cases[0], cluster, store, key)
}

/// Inserts the partials of `share_indices` as if each came from its own operator.
fn insert_all(
    cluster: &Cluster,
    store: &PartialStore,
    case: &Case,
    share_indices: &[u64],
) -> Vec<InsertOutcome> {
    share_indices
        .iter()
        .map(|&share| {
            let partial = cluster.partial(case.validator_index, share, case.signing_root);
            store
                .insert(&cluster.key(case), partial, Source::Peer(share))
                .unwrap()
        })
        .collect()
}

#[test]
fn interop_keys_are_the_oracle_validators() {
    let vectors = oracle_vectors(FOLDER);
    for case in vectors["attestation_cases"]
        .as_array()
        .unwrap()
        .iter()
        .take(8)
    {
        let index = u64_of(&case["validator_index"]);
        assert_eq!(
            interop_secret_key(index).public_key().to_bytes(),
            hex_bytes::<48>(&case["validator_pubkey"]),
            "validator {index}"
        );
    }
}

#[test]
fn threshold_partials_combine_to_the_oracle_selection_proof() {
    let (case, cluster, store, key) = one();
    let outcomes = insert_all(&cluster, &store, &case, &[1, 2, 3]);
    assert_eq!(outcomes[0], InsertOutcome::Stored { have: 1, need: 3 });
    assert_eq!(outcomes[1], InsertOutcome::Stored { have: 2, need: 3 });
    assert_eq!(outcomes[2], InsertOutcome::Combined(case.selection_proof));
    assert_eq!(store.combined(&key), Some(case.selection_proof));
    assert!(case
        .selection_proof
        .verify(&key.validator, case.signing_root.as_slice()));
    // The oracle's root is the one spec::signing computes for the state's fork.
    let (fork, gvr) = cluster.fork();
    let spec = ChainSpec::from_preset_name("minimal").unwrap();
    assert_eq!(
        selection_proof_signing_root(case.slot, &fork, gvr, &spec.preset),
        case.signing_root
    );
}

#[test]
fn any_three_of_four_partials_give_the_same_proof() {
    let (case, cluster, _, _) = one();
    for left_out in 1..=OPERATORS {
        let store = cluster.store();
        let chosen: Vec<u64> = (1..=OPERATORS).filter(|&s| s != left_out).collect();
        let outcomes = insert_all(&cluster, &store, &case, &chosen);
        assert_eq!(
            outcomes.last(),
            Some(&InsertOutcome::Combined(case.selection_proof)),
            "shares {chosen:?}"
        );
    }
}

#[test]
fn a_partial_by_the_wrong_share_is_rejected_and_names_the_share() {
    let (case, cluster, store, key) = one();
    // Share 2's signature presented as share 1's, sent by operator 3.
    let mut forged = cluster.partial(case.validator_index, 2, case.signing_root);
    forged.share_index = 1;
    let error = store.insert(&key, forged, Source::Peer(3)).unwrap_err();
    assert_eq!(
        error,
        StoreError::InvalidPartial {
            key: Box::new(key),
            share_index: 1,
            sender: Source::Peer(3)
        }
    );
    let message = error.to_string();
    for needle in [
        "share index 1",
        "operator 3",
        &key.validator.to_string(),
        &format!("slot {}", case.slot),
    ] {
        assert!(message.contains(needle), "{message} lacks {needle}");
    }
    assert!(store.partials_of(&key).is_empty());
    assert!(
        store.duties().is_empty(),
        "a refused partial leaves no duty"
    );
    let stats = store.stats();
    assert_eq!(stats.rejected.get(&Source::Peer(3)), Some(&1));
    assert_eq!(stats.received.get(&Source::Peer(3)), Some(&1));
    // The honest partials still combine.
    let outcomes = insert_all(&cluster, &store, &case, &[1, 2, 4]);
    assert_eq!(
        outcomes.last(),
        Some(&InsertOutcome::Combined(case.selection_proof))
    );
}

#[test]
fn a_conflicting_partial_is_rejected_and_the_stored_one_stays() {
    let (case, cluster, store, key) = one();
    let honest = cluster.partial(case.validator_index, 1, case.signing_root);
    store.insert(&key, honest, Source::Local).unwrap();

    // Same share, another root (the next slot's), validly signed by share 1.
    let other_root = Root::from([0x5a; 32]);
    let other = cluster.partial(case.validator_index, 1, other_root);
    let error = store.insert(&key, other, Source::Peer(1)).unwrap_err();
    assert!(
        matches!(error, StoreError::Conflict { share_index: 1, sender: Source::Peer(1), stored_root, received_root, .. }
            if stored_root == case.signing_root && received_root == other_root),
        "{error}"
    );
    // Same share and root, another signature.
    let mut swapped = honest;
    swapped.signature = cluster
        .partial(case.validator_index, 2, case.signing_root)
        .signature;
    let error = store.insert(&key, swapped, Source::Peer(2)).unwrap_err();
    assert!(error.to_string().contains("operator 2"), "{error}");
    assert!(matches!(error, StoreError::Conflict { share_index: 1, .. }));

    assert_eq!(store.partials_of(&key), vec![honest]);
    let outcomes = insert_all(&cluster, &store, &case, &[2, 3]);
    assert_eq!(outcomes[1], InsertOutcome::Combined(case.selection_proof));
    assert_eq!(store.stats().rejected.get(&Source::Peer(1)), Some(&1));
}

#[test]
fn duplicates_are_idempotent_before_and_after_combination() {
    let (case, cluster, store, key) = one();
    let first = cluster.partial(case.validator_index, 1, case.signing_root);
    assert_eq!(
        store.insert(&key, first, Source::Local).unwrap(),
        InsertOutcome::Stored { have: 1, need: 3 }
    );
    assert_eq!(
        store.insert(&key, first, Source::Peer(2)).unwrap(),
        InsertOutcome::Duplicate
    );
    assert_eq!(store.partials_of(&key).len(), 1);

    insert_all(&cluster, &store, &case, &[2, 3]);
    // The fourth share after combination: kept for re-sending, not recombined.
    let late = insert_all(&cluster, &store, &case, &[4, 3]);
    assert_eq!(late, vec![InsertOutcome::Duplicate; 2]);
    assert_eq!(store.partials_of(&key).len(), 4);
    assert_eq!(store.combined(&key), Some(case.selection_proof));
    let stats = store.stats();
    assert_eq!(stats.combined, 1);
    assert!(stats.rejected.is_empty());
}

#[test]
fn a_wrong_root_partial_does_not_block_the_honest_ones() {
    let (case, cluster, store, key) = one();
    // Share 4 signs another root (a misconfigured fork, say) first.
    let stray = cluster.partial(case.validator_index, 4, Root::from([7; 32]));
    store.insert(&key, stray, Source::Peer(4)).unwrap();
    let outcomes = insert_all(&cluster, &store, &case, &[1, 2, 3]);
    assert_eq!(outcomes[1], InsertOutcome::Stored { have: 2, need: 3 });
    assert_eq!(outcomes[2], InsertOutcome::Combined(case.selection_proof));
}

#[tokio::test]
async fn a_waiter_is_not_blocked_by_another_duty() {
    let cases = attestation_cases(2);
    let cluster = Arc::new(cluster_of(&cases));
    let store = Arc::new(cluster.store());
    let (ready, stuck) = (&cases[0], &cases[1]);
    let wait_ready = store.wait_combined(&cluster.key(ready)).unwrap();
    let wait_stuck = store.wait_combined(&cluster.key(stuck)).unwrap();
    let waiter = tokio::spawn(wait_ready);

    // The stuck duty only ever gets two partials; the ready one three, later.
    insert_all(&cluster, &store, stuck, &[1, 2]);
    let feeder = {
        let (cluster, store) = (Arc::clone(&cluster), Arc::clone(&store));
        let ready = *ready;
        tokio::task::spawn_blocking(move || insert_all(&cluster, &store, &ready, &[4, 2, 3]))
    };
    let combined = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the ready duty's waiter completes")
        .unwrap();
    assert_eq!(combined, ready.selection_proof);
    feeder.await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), wait_stuck)
            .await
            .is_err(),
        "the duty with two partials never completes"
    );
    assert_eq!(store.combined(&cluster.key(stuck)), None);
}

#[tokio::test]
async fn a_waiter_registered_after_combination_completes_at_once() {
    let (case, cluster, store, _) = one();
    insert_all(&cluster, &store, &case, &[1, 2, 3]);
    let wait = store.wait_combined(&cluster.key(&case)).unwrap();
    let combined = tokio::time::timeout(Duration::from_secs(1), wait)
        .await
        .unwrap();
    assert_eq!(combined, case.selection_proof);
}

#[test]
fn a_validator_in_two_sync_subcommittees_gets_two_proofs() {
    let vectors = oracle_vectors(FOLDER);
    let case = Case::from_json(&vectors["sync_cases"][0]);
    let cluster = Cluster::new(&[case.validator_index]);
    let subcommittee = case.subcommittee_index.unwrap();
    let other = Case {
        subcommittee_index: Some((subcommittee + 1) % 4),
        ..case
    };
    let (fork, gvr) = cluster.fork();
    let spec = ChainSpec::from_preset_name("minimal").unwrap();
    let root_of = |c: &Case| {
        sync_selection_proof_signing_root(
            c.slot,
            c.subcommittee_index.unwrap(),
            &fork,
            gvr,
            &spec.preset,
        )
    };
    assert_eq!(root_of(&case), case.signing_root);
    let other = Case {
        signing_root: root_of(&other),
        selection_proof: interop_secret_key(case.validator_index).sign(root_of(&other).as_slice()),
        ..other
    };
    assert_ne!(cluster.key(&case), cluster.key(&other));

    let store = cluster.store();
    // Interleaved: neither duty's partials count towards the other.
    for share in [1, 2] {
        insert_all(&cluster, &store, &case, &[share]);
        insert_all(&cluster, &store, &other, &[share]);
    }
    assert_eq!(store.combined(&cluster.key(&case)), None);
    let first = insert_all(&cluster, &store, &case, &[3]);
    let second = insert_all(&cluster, &store, &other, &[4]);
    assert_eq!(first, vec![InsertOutcome::Combined(case.selection_proof)]);
    assert_eq!(second, vec![InsertOutcome::Combined(other.selection_proof)]);
    assert_ne!(case.selection_proof, other.selection_proof);
}

#[test]
fn duties_outside_the_slot_window_are_refused() {
    let (case, cluster, store, _) = one();
    let limits = store.limits();
    let current = store.current_slot();
    let validator = cluster.group_key(case.validator_index);
    let partial = cluster.partial(case.validator_index, 1, case.signing_root);

    let ahead = DutyKey::attestation(validator, current + limits.max_slots_ahead + 1);
    let error = store.insert(&ahead, partial, Source::Peer(1)).unwrap_err();
    assert!(
        matches!(error, StoreError::TooFarAhead { current_slot, .. } if current_slot == current)
    );
    assert!(
        error
            .to_string()
            .contains(&format!("current slot {current}")),
        "{error}"
    );
    let behind = DutyKey::attestation(validator, current - limits.max_slots_behind - 1);
    let error = store.insert(&behind, partial, Source::Peer(1)).unwrap_err();
    assert!(matches!(error, StoreError::TooOld { .. }), "{error}");
    assert!(matches!(
        store.wait_combined(&ahead).err(),
        Some(StoreError::TooFarAhead { .. })
    ));
    // The edges are inside.
    let edge = DutyKey::attestation(validator, current + limits.max_slots_ahead);
    store.insert(&edge, partial, Source::Peer(1)).unwrap();
    assert_eq!(store.stats().rejected.get(&Source::Peer(1)), Some(&2));

    // Moving the window prunes what fell behind.
    let key = cluster.key(&case);
    store.insert(&key, partial, Source::Local).unwrap();
    assert_eq!(
        store.set_current_slot(case.slot + limits.max_slots_behind + 1),
        1
    );
    assert!(store.partials_of(&key).is_empty());
    assert_eq!(store.duties(), vec![edge]);
}

#[test]
fn the_store_refuses_duties_beyond_its_capacity() {
    let cases = attestation_cases(2);
    let cluster = cluster_of(&cases);
    let limits = StoreLimits {
        max_duties: 1,
        ..cluster.limits()
    };
    let store = PartialStore::new(&cluster.lock, limits, cluster.state_slot);
    insert_all(&cluster, &store, &cases[0], &[1]);
    let second = cluster.key(&cases[1]);
    let partial = cluster.partial(cases[1].validator_index, 1, cases[1].signing_root);
    let error = store.insert(&second, partial, Source::Peer(1)).unwrap_err();
    assert_eq!(
        error,
        StoreError::Full {
            key: Box::new(second),
            max_duties: 1
        }
    );
    assert!(error.to_string().contains("maximum of 1 duties"), "{error}");
    assert!(!error.blames_sender());
    assert!(store.stats().rejected.is_empty());
    // The held duty still takes partials; pruning it makes room.
    insert_all(&cluster, &store, &cases[0], &[2]);
    assert_eq!(store.prune(cases[0].slot.max(cases[1].slot) + 1), 1);
    store.insert(&second, partial, Source::Peer(1)).unwrap();
}

#[test]
fn unknown_validators_and_shares_are_named() {
    let (case, cluster, store, _) = one();
    let stranger = SecretKey::random().public_key();
    let key = DutyKey::attestation(stranger, case.slot);
    let partial = cluster.partial(case.validator_index, 1, case.signing_root);
    let error = store.insert(&key, partial, Source::Peer(2)).unwrap_err();
    assert_eq!(
        error,
        StoreError::UnknownValidator {
            validator: stranger
        }
    );
    assert!(error.to_string().contains(&stranger.to_string()));
    assert!(store.wait_combined(&key).is_err());

    let key = cluster.key(&case);
    let error = store
        .insert(
            &key,
            Partial {
                share_index: 5,
                ..partial
            },
            Source::Peer(2),
        )
        .unwrap_err();
    assert!(
        error.to_string().contains("share index 5 from operator 2"),
        "{error}"
    );
}

/// A clock the test moves by hand.
struct ManualClock(Mutex<Instant>);

impl ManualClock {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}

#[test]
fn combine_latency_runs_from_the_first_partial() {
    let (case, cluster, _, _) = one();
    let clock = Arc::new(ManualClock(Mutex::new(Instant::now())));
    let store = PartialStore::with_clock(
        &cluster.lock,
        cluster.limits(),
        cluster.state_slot,
        clock.clone(),
    );
    insert_all(&cluster, &store, &case, &[1]);
    clock.advance(Duration::from_millis(40));
    insert_all(&cluster, &store, &case, &[2]);
    clock.advance(Duration::from_millis(60));
    insert_all(&cluster, &store, &case, &[3]);
    let stats = store.stats();
    assert_eq!(stats.combine_latency.count, 1);
    assert_eq!(stats.combine_latency.total, Duration::from_millis(100));
    assert_eq!(stats.combine_latency.max, Duration::from_millis(100));
    assert_eq!(stats.duties, 1);
    assert_eq!(
        stats.received.values().sum::<u64>(),
        3,
        "one partial from each of three operators"
    );
}

#[test]
fn concurrent_operators_combine_each_duty_once() {
    let cases = attestation_cases(4);
    let cluster = Arc::new(cluster_of(&cases));
    let store = Arc::new(cluster.store());
    let cases = Arc::new(cases);
    let threads: Vec<_> = (1..=OPERATORS)
        .map(|share| {
            let (cluster, store, cases) = (cluster.clone(), store.clone(), cases.clone());
            std::thread::spawn(move || {
                cases
                    .iter()
                    .map(|case| insert_all(&cluster, &store, case, &[share]))
                    .filter(|outcome| matches!(outcome[0], InsertOutcome::Combined(_)))
                    .count()
            })
        })
        .collect();
    let combined: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(combined, cases.len());
    for case in cases.iter() {
        assert_eq!(
            store.combined(&cluster.key(case)),
            Some(case.selection_proof)
        );
    }
    assert_eq!(store.stats().combined, cases.len() as u64);
}

#[test]
fn a_batch_is_answered_per_item_and_completes_every_duty_it_fills() {
    let cases = attestation_cases(6);
    let cluster = cluster_of(&cases);
    let store = cluster.store();
    // Shares 1 and 2 of every duty arrive one by one first.
    for case in &cases {
        insert_all(&cluster, &store, case, &[1, 2]);
    }
    // Then one batch from operator 3: its partial of each duty (completing
    // all six), a forged one, a duplicate, a conflicting one and a partial
    // of a validator outside the lock.
    let mut batch: Vec<(DutyKey, Partial)> = cases
        .iter()
        .map(|case| {
            let partial = cluster.partial(case.validator_index, 3, case.signing_root);
            (cluster.key(case), partial)
        })
        .collect();
    let forged = Partial {
        signature: SecretKey::random().sign(cases[0].signing_root.as_slice()),
        ..cluster.partial(cases[0].validator_index, 4, cases[0].signing_root)
    };
    batch.push((cluster.key(&cases[0]), forged));
    batch.push(batch[1]);
    let conflicting = cluster.partial(cases[2].validator_index, 3, Root::repeat_byte(9));
    batch.push((cluster.key(&cases[2]), conflicting));
    let stranger = DutyKey::attestation(SecretKey::random().public_key(), cases[0].slot);
    batch.push((stranger, batch[0].1));

    let outcomes = store.insert_batch(&batch, Source::Peer(3));
    assert_eq!(outcomes.len(), batch.len());
    for (case, outcome) in cases.iter().zip(&outcomes) {
        match outcome {
            Ok(InsertOutcome::Combined(proof)) => assert_eq!(*proof, case.selection_proof),
            other => panic!("{other:?} for validator {}", case.validator_index),
        }
        assert_eq!(
            store.combined(&cluster.key(case)),
            Some(case.selection_proof)
        );
    }
    let rest = &outcomes[cases.len()..];
    assert!(
        matches!(
            &rest[0],
            Err(StoreError::InvalidPartial { share_index: 4, .. })
        ),
        "{:?}",
        rest[0]
    );
    assert_eq!(rest[1], Ok(InsertOutcome::Duplicate));
    assert!(
        matches!(&rest[2], Err(StoreError::Conflict { .. })),
        "{:?}",
        rest[2]
    );
    assert!(
        matches!(&rest[3], Err(StoreError::UnknownValidator { .. })),
        "{:?}",
        rest[3]
    );
    let stats = store.stats();
    assert_eq!(stats.combined, cases.len() as u64);
    assert_eq!(stats.received[&Source::Peer(3)], batch.len() as u64);
    assert_eq!(stats.rejected[&Source::Peer(3)], 3);
}
