//! Whole-list shuffle against the per-index `compute_shuffled_index` for a
//! 2^20-validator active set with mainnet's 90 rounds.
//!
//! The per-index form needs 2 * 90 SHA-256 per validator, about 17 s of CPU
//! for the whole 2^20 list here, too long for ten criterion samples. Its cost
//! per index does not depend on the index, so criterion measures it on 2^14
//! indices at a time (each iteration takes the next of the 64 slices of the
//! same 2^20 list) and reports the time multiplied by 64: an estimate of the
//! full per-index pass. One real full per-index pass is then timed once and
//! printed beside it, as a check on that scaling.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode};
use dv_aggregator::state::shuffling::{compute_shuffled_index, shuffle_list};

const VALIDATORS: u64 = 1 << 20;
const SLICE: u64 = 1 << 14;
const SLICES: u64 = VALIDATORS / SLICE;
const ROUNDS: u8 = 90;
const SEED: [u8; 32] = [0x5a; 32];
const GROUP: &str = "shuffle_1048576_validators_90_rounds";
const WHOLE_LIST: &str = "whole_list";
const PER_INDEX: &str = "per_index_scaled_from_16384_index_slices";

/// `shuffled[i] = list[compute_shuffled_index(i)]` for `i` in `indices`.
fn per_index_into(list: &[u64], indices: std::ops::Range<u64>, shuffled: &mut Vec<u64>) {
    for i in indices {
        let source = compute_shuffled_index(i, VALIDATORS, &SEED, ROUNDS).unwrap();
        shuffled.push(list[source as usize]);
    }
}

fn shuffle(c: &mut Criterion) {
    let list: Vec<u64> = (0..VALIDATORS).map(|i| i * 3 + 1).collect();
    let mut group = c.benchmark_group(GROUP);
    group.sample_size(10);

    group.bench_function(WHOLE_LIST, |b| {
        b.iter_batched_ref(
            || list.clone(),
            |shuffled| shuffle_list(black_box(shuffled), &SEED, ROUNDS).unwrap(),
            BatchSize::LargeInput,
        )
    });

    group.sampling_mode(SamplingMode::Flat);
    let mut next_slice = 0;
    group.bench_function(PER_INDEX, |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let start = next_slice * SLICE;
                next_slice = (next_slice + 1) % SLICES;
                let mut shuffled = Vec::with_capacity(SLICE as usize);
                let began = Instant::now();
                per_index_into(&list, start..start + SLICE, &mut shuffled);
                total += began.elapsed();
                black_box(shuffled);
            }
            total * SLICES as u32
        })
    });
    group.finish();

    // Only after real measurements: criterion's test mode (`cargo test
    // --benches`) runs each routine once and writes no estimates, so a ratio
    // would come from an older run, and the full pass would add half a minute.
    if std::env::args().any(|arg| arg == "--bench") {
        common::print_ratio(
            "whole-list shuffle vs per-index, 2^20 validators, 90 rounds \
             (per-index estimated from 2^14-index slices x 64)",
            &format!("{GROUP}/{PER_INDEX}"),
            &format!("{GROUP}/{WHOLE_LIST}"),
        );
        full_per_index_pass(&list);
    }
}

/// Times one real per-index pass over all 2^20 indices, checks it against the
/// whole-list result, and prints its ratio to criterion's whole-list mean.
fn full_per_index_pass(list: &[u64]) {
    let mut expected = list.to_vec();
    shuffle_list(&mut expected, &SEED, ROUNDS).unwrap();
    let mut shuffled = Vec::with_capacity(list.len());
    let began = Instant::now();
    per_index_into(list, 0..VALIDATORS, &mut shuffled);
    let per_index_ns = began.elapsed().as_nanos() as f64;
    assert_eq!(shuffled, expected, "per-index and whole-list disagree");
    match common::mean_ns(&format!("{GROUP}/{WHOLE_LIST}")) {
        Some(whole_list_ns) => println!(
            "ratio whole-list shuffle vs one real full per-index pass, 2^20 validators, 90 rounds: \
             {:.2} (per-index {:.3} s, timed once / whole-list {:.3} ms, criterion mean)",
            per_index_ns / whole_list_ns,
            per_index_ns / 1e9,
            whole_list_ns / 1e6
        ),
        None => println!("ratio whole-list vs one real per-index pass: not measured"),
    }
}

criterion_group!(benches, shuffle);
criterion_main!(benches);
