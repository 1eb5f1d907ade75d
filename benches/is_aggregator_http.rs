//! Bench of the beacon-node extension: one 10,000-item
//! `POST /eth/v1/validator/is_aggregator` to the sidecar over loopback HTTP,
//! against verifying the same signatures one by one with blst (decode with
//! the subgroup check, then verify), measured in the same run.
//!
//! The baseline is measured per signature and multiplied by 10,000: a
//! one-by-one pass over all of them takes about 17 s, too long for criterion's
//! ten samples, and verifications are independent, so the product is the cost.
//! The request batches by message: every selection proof of one slot signs the
//! same root, so a slot costs two pairings instead of two per item.

mod common;

use std::sync::Arc;

use criterion::{criterion_group, Criterion};
use ssz::Encode;

use dv_aggregator::api::client::BeaconNodeClient;
use dv_aggregator::api::filters::Limits;
use dv_aggregator::api::types::{IsAggregatorRequestItem, SignatureBytes};
use dv_aggregator::beacon::sidecar::{Sidecar, SidecarConfig, SidecarSource};
use dv_aggregator::crypto::interop::interop_secret_key;
use dv_aggregator::crypto::{PublicKey, SecretKey, Signature};
use dv_aggregator::spec::signing::selection_proof_signing_root;
use dv_aggregator::spec::ChainSpec;
use dv_aggregator::state::epoch_caches::EpochCommittees;
use dv_aggregator::state::{decode_state, ForkState, Minimal};

const VALIDATORS: usize = 16_384;
const ITEMS: usize = 10_000;

/// A minimal-preset fulu state whose 16,384 validators hold interop keys:
/// committees of 512, so the decision is not trivially true.
fn synthetic_state(keys: &[SecretKey]) -> Vec<u8> {
    let pubkeys = keys.iter().map(|key| key.public_key().to_bytes());
    let state = common::fulu_state_with_validators::<Minimal>("fulu-minimal-2048", pubkeys);
    ForkState::Fulu(state).as_ssz_bytes()
}

/// The first 10,000 members of the state's current-epoch committees, each
/// with its real selection proof.
fn request_items(
    bytes: &[u8],
    spec: &ChainSpec,
    keys: &[SecretKey],
) -> Vec<IsAggregatorRequestItem> {
    let state = decode_state(bytes, spec, None).unwrap();
    let committees = EpochCommittees::from_state(&state).unwrap();
    let cache = committees.for_epoch(state.get_current_epoch()).unwrap();
    let mut items = Vec::with_capacity(ITEMS);
    for committee in cache.committees() {
        let root = selection_proof_signing_root(
            committee.slot,
            &state.fork(),
            state.genesis_validators_root(),
            &spec.preset,
        );
        for &validator in committee.members {
            if items.len() == ITEMS {
                return items;
            }
            let proof = keys[validator as usize].sign(root.as_slice());
            items.push(IsAggregatorRequestItem {
                validator_index: validator,
                committee_index: committee.index,
                committees_at_slot: cache.committees_per_slot(),
                slot: committee.slot,
                slot_signature: SignatureBytes(proof.to_bytes()),
            });
        }
    }
    items
}

fn bench(c: &mut Criterion) {
    let spec = ChainSpec::minimal();
    let keys: Vec<SecretKey> = (0..VALIDATORS as u64).map(interop_secret_key).collect();
    let bytes = synthetic_state(&keys);
    let items = request_items(&bytes, &spec, &keys);
    assert_eq!(items.len(), ITEMS);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.ssz");
    std::fs::write(&path, &bytes).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sidecar = runtime
        .block_on(Sidecar::start(SidecarConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            source: SidecarSource::StateFile { path, fork: None },
            spec: spec.clone(),
            limits: Limits::default(),
        }))
        .unwrap();
    let client = Arc::new(BeaconNodeClient::new(&format!("http://{}", sidecar.addr())).unwrap());
    // One request first, so that both sides run with warm key caches.
    let answers = runtime.block_on(client.is_aggregator(&items)).unwrap();
    let aggregators = answers.iter().filter(|a| **a).count();
    println!("{ITEMS} items, {aggregators} aggregators");

    let pubkeys: Vec<PublicKey> = items
        .iter()
        .map(|item| keys[item.validator_index as usize].public_key())
        .collect();
    let state = decode_state(&bytes, &spec, None).unwrap();
    let roots: Vec<_> = items
        .iter()
        .map(|item| {
            selection_proof_signing_root(
                item.slot,
                &state.fork(),
                state.genesis_validators_root(),
                &spec.preset,
            )
        })
        .collect();
    drop(state);

    let mut group = c.benchmark_group("is_aggregator");
    group.sample_size(10);
    group.bench_function("http_request_10000", |b| {
        b.iter(|| runtime.block_on(client.is_aggregator(&items)).unwrap())
    });
    let mut next = 0usize;
    group.bench_function("verify_one", |b| {
        b.iter(|| {
            let i = next % ITEMS;
            next += 1;
            let signature = Signature::from_bytes(&items[i].slot_signature.0).unwrap();
            assert!(signature.verify(&pubkeys[i], roots[i].as_slice()));
        })
    });
    group.finish();
    drop(sidecar);
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    match (
        common::mean_ns("is_aggregator/verify_one"),
        common::mean_ns("is_aggregator/http_request_10000"),
    ) {
        (Some(one), Some(request)) if request > 0.0 => println!(
            "ratio 10,000 one-by-one verifications / one 10,000-item request: {:.2} \
             (one verification {:.3} ms x 10,000 = {:.0} ms; request {:.0} ms)",
            one * ITEMS as f64 / request,
            one / 1e6,
            one * ITEMS as f64 / 1e6,
            request / 1e6
        ),
        _ => println!("ratio: not measured (run with cargo bench)"),
    }
}
