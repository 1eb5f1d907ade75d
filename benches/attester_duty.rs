//! The attester duty of 1,000 distributed validators in one slot through a
//! 4-operator middleware cluster (threshold 3) on loopback, against the pure
//! crypto of the same work, measured in the same run.
//!
//! The chain is the devnet's state-backed node (it verifies every attestation
//! it is sent): 8,000 interop validators on the minimal preset, so that each
//! slot has four committees of 250, and every validator is a distributed
//! validator of the cluster: each slot, 1,000 of them attest. Each iteration
//! is one slot: at its start the four operators' "validator clients" (this
//! bench, one task per operator) ask their middleware for the attestation
//! data (which starts the slot's agreement), sign their 1,000 partial
//! `SingleAttestation`s with their key shares and post them; the middlewares
//! verify, exchange, combine, verify against the group keys and publish.
//! Measured: from the first request to the last of the 1,000 attestations
//! accepted by the chain. The baseline is the crypto in that time without
//! anything else, on four threads as the four operators run: each signs
//! 1,000 partials, decodes and batch-verifies 4,000 (its own and its three
//! peers'), combines 1,000 from three partials each and batch-verifies them
//! against the group keys; then the chain batch-verifies 1,000. Printed:
//! cluster time / baseline time (target <= 1.5).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::duty_cluster::{DutyCluster, OPERATORS, THRESHOLD};
use criterion::{criterion_group, criterion_main, Criterion};
use dv_aggregator::crypto::batch::{verify_signature_sets, SignatureSet};
use dv_aggregator::crypto::threshold::combine_signatures;
use dv_aggregator::crypto::{PublicKey, SecretKey, Signature};
use dv_aggregator::spec::{AttestationData, ChainSpec, Root};

/// Four committees of 250 per slot on the minimal preset: 1,000 attest.
const VALIDATORS: u64 = 8_000;

/// One slot through the cluster: from the first request for the
/// attestation data to the last attestation the chain accepted.
fn cluster_slot(cluster: &mut DutyCluster) -> Duration {
    let (slot, duties) = cluster.next_slot(Duration::from_secs(1));
    let cluster = &*cluster;
    cluster.runtime.block_on(async {
        cluster.enter_slot(slot).await;
        let started = Instant::now();
        cluster.attest(slot, &Arc::new(duties)).await;
        started.elapsed()
    })
}

/// The crypto of one slot's attester duty, without anything else.
struct CryptoWork {
    /// Each duty's signing root, group key and key shares.
    duties: Vec<(Root, PublicKey, BTreeMap<u64, SecretKey>)>,
    /// Every operator's partials, encoded, in duty order.
    partials: BTreeMap<u64, Vec<[u8; 96]>>,
    /// Every operator's public shares, in duty order.
    publics: BTreeMap<u64, Vec<PublicKey>>,
}

impl CryptoWork {
    fn new(bench: &mut DutyCluster) -> Self {
        let slot = bench.slot + 1;
        let data = AttestationData {
            slot,
            ..AttestationData::default()
        };
        let root = bench.info.attestation_signing_root(&data);
        let duties: Vec<(Root, PublicKey, BTreeMap<u64, SecretKey>)> = bench
            .duties_at(slot)
            .iter()
            .map(|duty| {
                let index = duty.validator_index as usize;
                (root, bench.groups[index], bench.shares[index].clone())
            })
            .collect();
        let mut partials = BTreeMap::new();
        let mut publics = BTreeMap::new();
        for operator in 1..=OPERATORS {
            let signed: Vec<[u8; 96]> = duties
                .iter()
                .map(|(root, _, shares)| shares[&operator].sign(root.as_slice()).to_bytes())
                .collect();
            partials.insert(operator, signed);
            let keys: Vec<PublicKey> = duties
                .iter()
                .map(|(_, _, shares)| shares[&operator].public_key())
                .collect();
            publics.insert(operator, keys);
        }
        CryptoWork {
            duties,
            partials,
            publics,
        }
    }

    /// One operator's share of the work: its client signs its partials; its
    /// node decodes and batch-verifies everyone's, combines three per duty
    /// and batch-verifies the combined.
    fn operator(&self, operator: u64) -> Vec<Signature> {
        for (root, _, shares) in &self.duties {
            std::hint::black_box(shares[&operator].sign(root.as_slice()).to_bytes());
        }
        let mut received: BTreeMap<u64, Vec<Signature>> = BTreeMap::new();
        for from in 1..=OPERATORS {
            let decoded: Vec<Signature> = self.partials[&from]
                .iter()
                .map(|bytes| Signature::from_bytes(bytes).expect("a G2 point"))
                .collect();
            let sets: Vec<SignatureSet> = self
                .duties
                .iter()
                .zip(&decoded)
                .zip(&self.publics[&from])
                .map(|(((root, _, _), signature), pubkey)| SignatureSet {
                    pubkey,
                    message: root.0,
                    signature,
                })
                .collect();
            assert!(verify_signature_sets(&sets));
            received.insert(from, decoded);
        }
        let combined: Vec<Signature> = (0..self.duties.len())
            .map(|n| {
                let partials: Vec<(u64, Signature)> = (1..=THRESHOLD)
                    .map(|from| (from, received[&from][n]))
                    .collect();
                combine_signatures(&partials, THRESHOLD).expect("combine")
            })
            .collect();
        self.verify_combined(&combined);
        combined
    }

    fn verify_combined(&self, combined: &[Signature]) {
        let sets: Vec<SignatureSet> = self
            .duties
            .iter()
            .zip(combined)
            .map(|((root, group, _), signature)| SignatureSet {
                pubkey: group,
                message: root.0,
                signature,
            })
            .collect();
        assert!(verify_signature_sets(&sets));
    }

    /// The four operators at once, then the chain's verification.
    fn run(&self) -> Duration {
        let started = Instant::now();
        let combined = std::thread::scope(|scope| {
            let operators: Vec<_> = (1..=OPERATORS)
                .map(|operator| scope.spawn(move || self.operator(operator)))
                .collect();
            operators
                .into_iter()
                .map(|operator| operator.join().expect("operator"))
                .next_back()
                .expect("four operators")
        });
        self.verify_combined(&combined);
        started.elapsed()
    }
}

fn bench(c: &mut Criterion) {
    let mut cluster = DutyCluster::start(ChainSpec::minimal(), VALIDATORS);
    let work = CryptoWork::new(&mut cluster);
    let mut group = common::slot_group(c, "attester_duty_1000");
    group.bench_function("pure_crypto", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| work.run()).sum())
    });
    group.bench_function("first_request_to_last_accepted", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| cluster_slot(&mut cluster)).sum())
    });
    group.finish();
    common::print_cost_ratio(
        "first request to last accepted / pure crypto of the same work",
        "attester_duty_1000/pure_crypto",
        "attester_duty_1000/first_request_to_last_accepted",
        1.5,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
