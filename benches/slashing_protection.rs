//! Slashing protection at a slot's attestation deadline: checking and
//! recording the attestations of 1,000 validators in one transaction (one
//! fsync) against one transaction per attestation (1,000 fsyncs), on a real
//! disk. Prints how many times faster the batch is.

mod common;

use std::cell::Cell;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use dv_aggregator::api::types::PublicKeyBytes;
use dv_aggregator::spec::Root;
use dv_aggregator::vc::slashing::{AttestationToSign, Safe, SlashingDatabase};

const VALIDATORS: usize = 1_000;

fn pubkey(index: usize) -> PublicKeyBytes {
    let mut bytes = [0u8; 48];
    bytes[..8].copy_from_slice(&(index as u64).to_be_bytes());
    PublicKeyBytes(bytes)
}

/// Every validator's attestation of one epoch (source the epoch before).
fn attestations(target_epoch: u64) -> Vec<AttestationToSign> {
    (0..VALIDATORS)
        .map(|index| AttestationToSign {
            pubkey: pubkey(index),
            source_epoch: target_epoch - 1,
            target_epoch,
            signing_root: Root::repeat_byte(target_epoch as u8),
        })
        .collect()
}

fn bench_slashing_protection(c: &mut Criterion) {
    // Under target/, not /tmp, which may be a tmpfs where fsync costs nothing.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory");
    let db =
        SlashingDatabase::open_or_create(&SlashingDatabase::path_in(dir.path())).expect("database");
    let keys: Vec<_> = (0..VALIDATORS).map(pubkey).collect();
    db.register_validators(&keys).expect("registration");
    // Every iteration signs a new epoch, so every check ends in an insert.
    let epoch = Cell::new(0u64);
    let next_epoch = || {
        epoch.set(epoch.get() + 1);
        epoch.get()
    };

    let mut group = c.benchmark_group("slashing_protection");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("batch_1000", |b| {
        b.iter(|| {
            let outcomes = db
                .check_and_insert_attestations(&attestations(next_epoch()))
                .expect("batch");
            assert!(outcomes.iter().all(|o| matches!(o, Ok(Safe::New))));
        })
    });
    group.bench_function("one_transaction_each_1000", |b| {
        b.iter(|| {
            for a in attestations(next_epoch()) {
                let outcome = db.check_and_insert_attestation(
                    &a.pubkey,
                    a.source_epoch,
                    a.target_epoch,
                    a.signing_root,
                );
                assert!(matches!(outcome, Ok(Safe::New)));
            }
        })
    });
    group.finish();
    common::print_ratio(
        "slashing protection, one transaction per attestation / one batch transaction (1,000 attestations)",
        "slashing_protection/one_transaction_each_1000",
        "slashing_protection/batch_1000",
    );
}

criterion_group!(benches, bench_slashing_protection);
criterion_main!(benches);
