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

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::duty_cluster::{on_operator_threads, DutyCluster, PartialsWork};
use criterion::{criterion_group, criterion_main, Criterion};
use dv_aggregator::spec::{AttestationData, ChainSpec};

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
struct CryptoWork(PartialsWork);

impl CryptoWork {
    fn new(bench: &mut DutyCluster) -> Self {
        let slot = bench.slot + 1;
        let data = AttestationData {
            slot,
            ..AttestationData::default()
        };
        let root = bench.info.attestation_signing_root(&data);
        let duties = bench
            .duties_at(slot)
            .iter()
            .map(|duty| {
                let index = duty.validator_index as usize;
                (root, bench.groups[index], bench.shares[index].clone())
            })
            .collect();
        CryptoWork(PartialsWork::new(duties))
    }

    /// The four operators at once, then the chain's verification.
    fn run(&self) -> Duration {
        let started = Instant::now();
        let combined = on_operator_threads(|operator| self.0.operator(operator));
        self.0.verify_combined(&combined);
        started.elapsed()
    }
}

fn bench(c: &mut Criterion) {
    let mut cluster = DutyCluster::start(ChainSpec::minimal(), VALIDATORS);
    let work = CryptoWork::new(&mut cluster);
    common::duty_cluster::bench_against_crypto(
        c,
        "attester_duty_1000",
        (
            "first request to last accepted / pure crypto of the same work",
            1.5,
        ),
        || work.run(),
        || cluster_slot(&mut cluster),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
