//! Bench (b) of the spec core: decode a mainnet-size fulu state (synthetic,
//! 1.1 million validators) and build the current epoch's committee cache,
//! against the whole-list shuffle of the same active set alone. Prints how much
//! decoding and the rest of the cache add, in units of the shuffle time
//! (target: at most 0.5x).

mod common;

use criterion::{criterion_group, Criterion};
use ssz::Encode;

use dv_aggregator::spec::{ChainSpec, Fork, Root};
use dv_aggregator::state::epoch_caches::committee_cache_at;
use dv_aggregator::state::shuffling::shuffle_list;
use dv_aggregator::state::{decode_state, ForkState, Mainnet};

const VALIDATORS: usize = 1_100_000;
const EPOCH: u64 = 400_000;

/// A fulu mainnet state whose validators are all active at `EPOCH`. Keys are
/// distinct byte strings, not curve points: decoding never parses them.
fn synthetic_state_ssz() -> Vec<u8> {
    let pubkeys = (0..VALIDATORS as u64).map(|i| {
        let mut pubkey = [0u8; 48];
        pubkey[..8].copy_from_slice(&i.to_le_bytes());
        pubkey
    });
    let mut state = common::fulu_state_with_validators::<Mainnet>("fulu-mainnet-1024", pubkeys);
    state.slot = EPOCH * 32 + 5;
    state.fork = Fork {
        previous_version: [5, 0, 0, 0],
        current_version: [6, 0, 0, 0],
        epoch: 411_392,
    };
    for (i, mix) in state.randao_mixes.iter_mut().enumerate() {
        *mix = Root::from(ethereum_hashing::hash_fixed(&(i as u64).to_le_bytes()));
    }
    ForkState::Fulu(state).as_ssz_bytes()
}

fn bench(c: &mut Criterion) {
    let spec = ChainSpec::mainnet();
    let bytes = synthetic_state_ssz();
    let state = decode_state(&bytes, &spec, None).expect("synthetic state decodes");
    let seed = state.get_seed(EPOCH, dv_aggregator::spec::config::DOMAIN_BEACON_ATTESTER);
    let active = state.get_active_validator_indices(EPOCH);
    assert_eq!(active.len(), VALIDATORS);
    drop(state);

    let mut group = c.benchmark_group("state_decode");
    group.sample_size(10);
    group.bench_function("shuffle_only", |b| {
        b.iter(|| {
            let mut list = active.clone();
            shuffle_list(&mut list, &seed.0, spec.preset.SHUFFLE_ROUND_COUNT).unwrap();
            list
        })
    });
    group.bench_function("decode_and_committee_cache", |b| {
        b.iter(|| {
            let state = decode_state(&bytes, &spec, None).unwrap();
            committee_cache_at(&state, EPOCH).unwrap()
        })
    });
    group.bench_function("decode_only", |b| {
        b.iter(|| decode_state(&bytes, &spec, None).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    common::print_overhead(
        "decode + committee cache over the shuffle of 1.1M validators",
        "state_decode/shuffle_only",
        "state_decode/decode_and_committee_cache",
    );
    common::print_ratio(
        "shuffle time / decode time",
        "state_decode/shuffle_only",
        "state_decode/decode_only",
    );
}
