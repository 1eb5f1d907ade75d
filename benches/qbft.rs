//! The QBFT core's cost over its crypto: four nodes deciding one instance in
//! memory (messages handed from node to node in order, no network, no JSON)
//! with real BLS node keys, against the same number of BLS signatures and
//! verifications alone (the same `NodeKeys` calls: sign and encode; decode
//! and verify), measured in the same run. Printed: qbft / crypto alone.

#[path = "../tests/support/bls_node_keys.rs"]
mod bls_node_keys;
mod common;

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use dv_aggregator::consensus::{
    linear_round_timeout, Config, Instance, InstanceId, NodeKeys, Recipient, Value,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use bls_node_keys::{cluster_keys, BlsKeys};

const NODES: u64 = 4;

/// Stands for a slot's attestation data.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Data(String);

impl Value for Data {
    fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

/// Four nodes, all holding the input, decide one instance; every message is
/// delivered in the order sent.
fn decide(keys: &[Arc<BlsKeys>], slot: u64) -> Data {
    let id = InstanceId::derive("attester", slot);
    let mut nodes: Vec<Instance<Data>> = keys
        .iter()
        .zip(1..)
        .map(|(keys, index)| {
            let timeout = linear_round_timeout(Duration::from_secs(1), Duration::from_secs(1));
            let config = Config::new(NODES, index, keys.clone(), timeout).expect("valid config");
            Instance::new(
                config,
                id,
                slot,
                Box::new(|_: &Data| Ok(())),
                Duration::ZERO,
            )
        })
        .collect();
    let value = Data(format!("attestation data of slot {slot}"));
    let mut queue = VecDeque::new();
    for (node, index) in nodes.iter_mut().zip(1..) {
        let out = node.set_input(value.clone(), Duration::ZERO);
        queue.extend(out.messages.into_iter().map(|o| (index, o)));
    }
    while let Some((from, outgoing)) = queue.pop_front() {
        for to in 1..=NODES {
            let addressed = match outgoing.to {
                Recipient::All => to != from,
                Recipient::Node(node) => to == node,
            };
            if addressed {
                let out = nodes[to as usize - 1].receive(outgoing.message.clone(), Duration::ZERO);
                queue.extend(out.messages.into_iter().map(|o| (to, o)));
            }
        }
    }
    let decisions: Vec<_> = nodes.iter().filter_map(|n| n.decision()).collect();
    assert_eq!(decisions.len(), NODES as usize, "every node decides");
    decisions[0].value.clone()
}

/// `signs` signatures and `verifies` verifications through the same keys.
fn crypto_alone(keys: &[Arc<BlsKeys>], signs: u64, verifies: u64, digest: &[u8; 32]) {
    let signature = keys[0].sign(digest);
    for i in 0..signs {
        black_box(keys[(i % NODES) as usize].sign(digest));
    }
    for i in 0..verifies {
        assert!(keys[(i % NODES) as usize].verify(1, digest, &signature));
    }
}

fn bench_qbft(c: &mut Criterion) {
    let keys = cluster_keys(NODES);
    decide(&keys, 0);
    let count = |field: fn(&BlsKeys) -> &AtomicU64| {
        keys.iter()
            .map(|k| field(k).swap(0, Ordering::Relaxed))
            .sum::<u64>()
    };
    let (signs, verifies) = (count(|k| &k.signs), count(|k| &k.verifies));
    println!("one instance of {NODES} nodes: {signs} signatures, {verifies} verifications");

    let mut group = c.benchmark_group("qbft_4_nodes");
    let mut slot = 0;
    group.bench_function("decide", |b| {
        b.iter(|| {
            slot += 1;
            black_box(decide(&keys, slot))
        })
    });
    let digest = [0x5a; 32];
    group.bench_function("crypto_alone", |b| {
        b.iter(|| crypto_alone(&keys, signs, verifies, &digest))
    });
    group.finish();
}

fn report(_: &mut Criterion) {
    common::print_ratio(
        "qbft decide / its crypto alone",
        "qbft_4_nodes/decide",
        "qbft_4_nodes/crypto_alone",
    );
}

criterion_group!(benches, bench_qbft, report);
criterion_main!(benches);
