//! Threshold combination and batch verification against their naive
//! baselines, each also expressed in units of one blst verification measured
//! in the same run and group (the target: the fast path costs at most 1.5 verifications
//! per validator at 3-of-4).

mod common;

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use dv_aggregator::crypto::batch::{verify_signature_sets, SignatureSet};
use dv_aggregator::crypto::threshold::{
    combine_and_verify, combine_signatures, split_secret, verify_partial,
};
use dv_aggregator::crypto::{PublicKey, SecretKey, Signature};

const MESSAGE: [u8; 32] = [0x5a; 32];
const BATCH_SIZE: usize = 1_000;

/// One distributed validator: its group key, every public key share and every partial of `MESSAGE`.
struct Cluster {
    group_pubkey: PublicKey,
    pubshares: HashMap<u64, PublicKey>,
    partials: Vec<(u64, Signature)>,
    threshold: u64,
}

impl Cluster {
    fn new(threshold: u64, total: u64) -> Self {
        let group = SecretKey::random();
        let shares = split_secret(&group, threshold, total).expect("valid t and n");
        Self {
            group_pubkey: group.public_key(),
            pubshares: shares.iter().map(|(i, s)| (*i, s.public_key())).collect(),
            partials: shares.iter().map(|(i, s)| (*i, s.sign(&MESSAGE))).collect(),
            threshold,
        }
    }

    /// What a middleware without the fast path does: verify every partial on
    /// arrival, combine, verify the combination.
    fn naive(&self) -> Signature {
        for (index, partial) in &self.partials {
            assert!(verify_partial(&self.pubshares[index], &MESSAGE, partial));
        }
        let combined = combine_signatures(&self.partials, self.threshold).expect("enough partials");
        assert!(combined.verify(&self.group_pubkey, &MESSAGE));
        combined
    }

    fn fast(&self) -> Signature {
        combine_and_verify(
            &self.group_pubkey,
            &MESSAGE,
            &self.partials,
            &self.pubshares,
            self.threshold,
        )
        .expect("honest partials")
    }
}

fn bench_threshold(c: &mut Criterion) {
    let key = SecretKey::random();
    let (pubkey, signature) = (key.public_key(), key.sign(&MESSAGE));
    for (threshold, total) in [(3, 4), (7, 10)] {
        let cluster = Cluster::new(threshold, total);
        let mut group = c.benchmark_group(format!("threshold_{threshold}of{total}"));
        // The unit, measured beside the candidates because the machine's load drifts.
        group.bench_function("verify", |b| {
            b.iter(|| assert!(black_box(&signature).verify(&pubkey, &MESSAGE)))
        });
        group.bench_function("combine", |b| {
            b.iter(|| combine_signatures(black_box(&cluster.partials), threshold))
        });
        group.bench_function("naive", |b| b.iter(|| black_box(cluster.naive())));
        group.bench_function("fast", |b| b.iter(|| black_box(cluster.fast())));
        group.finish();
    }
}

/// `BATCH_SIZE` signatures, over distinct messages or all over `MESSAGE`.
fn signed_items(distinct_messages: bool) -> Vec<(PublicKey, [u8; 32], Signature)> {
    (0..BATCH_SIZE)
        .map(|n| {
            let key = SecretKey::random();
            let mut message = MESSAGE;
            if distinct_messages {
                message[..8].copy_from_slice(&(n as u64).to_le_bytes());
            }
            (key.public_key(), message, key.sign(&message))
        })
        .collect()
}

fn bench_batch(c: &mut Criterion) {
    for (name, distinct) in [("batch_distinct", true), ("batch_same_message", false)] {
        let items = signed_items(distinct);
        let sets: Vec<SignatureSet> = items
            .iter()
            .map(|(pubkey, message, signature)| SignatureSet {
                pubkey,
                message: *message,
                signature,
            })
            .collect();
        let mut group = c.benchmark_group(name);
        // One-by-one takes seconds per iteration: flat sampling keeps the run short.
        group.sampling_mode(SamplingMode::Flat);
        group.bench_function("one_by_one", |b| {
            b.iter(|| {
                assert!(sets
                    .iter()
                    .all(|s| s.signature.verify(s.pubkey, &s.message)))
            })
        });
        group.bench_function("batch", |b| {
            b.iter(|| assert!(verify_signature_sets(black_box(&sets))))
        });
        group.finish();
    }
}

/// Prints the mean of `id`, divided by `items`, in units of the verification
/// measured as `unit_id` (`unit_items` verifications).
fn print_in_verifications(id: &str, items: usize, unit_id: &str, unit_items: usize) {
    match (
        common::mean_ns(id),
        common::mean_ns(unit_id).map(|unit| unit / unit_items as f64),
    ) {
        (Some(mean), Some(verify)) if verify > 0.0 => {
            println!(
                "  {id}: {:.3} verifications per item",
                mean / verify / items as f64
            )
        }
        _ => println!("  {id}: not measured"),
    }
}

fn report(_: &mut Criterion) {
    for group in ["threshold_3of4", "threshold_7of10"] {
        let (baseline, candidate) = (format!("{group}/naive"), format!("{group}/fast"));
        common::print_ratio(&format!("{group} naive/fast"), &baseline, &candidate);
        let unit = format!("{group}/verify");
        print_in_verifications(&baseline, 1, &unit, 1);
        print_in_verifications(&candidate, 1, &unit, 1);
        print_in_verifications(&format!("{group}/combine"), 1, &unit, 1);
    }
    for group in ["batch_distinct", "batch_same_message"] {
        let (baseline, candidate) = (format!("{group}/one_by_one"), format!("{group}/batch"));
        common::print_ratio(&format!("{group} one-by-one/batch"), &baseline, &candidate);
        // One by one is BATCH_SIZE verifications by definition.
        print_in_verifications(&candidate, BATCH_SIZE, &baseline, BATCH_SIZE);
    }
}

criterion_group!(benches, bench_threshold, bench_batch, report);
criterion_main!(benches);
