//! A 4-operator middleware cluster (threshold 3) on loopback answering the
//! attestation selections of 1,000 validators, against the pure crypto of
//! the same work, measured in the same run.
//!
//! Each iteration is one epoch of fresh duties (1,000 validators spread over
//! its slots). Operators 1 and 2 ask first and wait; once every node holds
//! their partials, operator 3 asks. Measured: from operator 3's request (the
//! last partials' arrival) to the last of the three answers. In that time
//! every node does the same crypto: decode operator 3's 1,000 partials
//! (subgroup checks), verify them in a batch, combine each duty from three
//! partials and verify the combined proofs in a batch. The baseline does
//! exactly that, on four threads at once as the four nodes do, without HTTP,
//! JSON or the store. Printed: cluster time / baseline time (target <= 1.2).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use dv_aggregator::api::client::BeaconNodeClient;
use dv_aggregator::api::filters::Limits;
use dv_aggregator::api::types::{BeaconCommitteeSelection, SignatureBytes};
use dv_aggregator::api::ChainInfo;
use dv_aggregator::beacon::sidecar::{Sidecar, SidecarConfig, SidecarSource};
use dv_aggregator::cluster::SplitCluster;
use dv_aggregator::crypto::batch::{verify_signature_sets, SignatureSet};
use dv_aggregator::crypto::threshold::combine_signatures;
use dv_aggregator::crypto::{PublicKey, SecretKey, Signature};
use dv_aggregator::middleware::{Middleware, SlotSource, Source};
use dv_aggregator::spec::{ChainSpec, ForkName, Root, Slot};
use dv_aggregator::state::interop_genesis_state;
use tokio::runtime::Runtime;
use tokio::sync::watch;

const VALIDATORS: u64 = 1_000;
const OPERATORS: u64 = 4;
const THRESHOLD: u64 = 3;
const FORK: ForkName = ForkName::Deneb;

/// One validator of the cluster: its group key and its key shares.
struct Validator {
    index: u64,
    group: PublicKey,
    shares: BTreeMap<u64, SecretKey>,
}

/// The running cluster and what its validator clients sign with.
struct Bench {
    runtime: Runtime,
    _beacon: Sidecar,
    nodes: Vec<Middleware>,
    clients: Vec<BeaconNodeClient>,
    validators: Vec<Validator>,
    chain: ChainInfo,
    slot: watch::Sender<Slot>,
    epoch: u64,
}

/// One epoch's duties: each validator's slot and every operator's partial.
struct Duties {
    /// (validator position, slot, signing root).
    duties: Vec<(usize, Slot, Root)>,
    /// Partials by operator, in duty order.
    partials: BTreeMap<u64, Vec<Signature>>,
}

impl Bench {
    fn new() -> Bench {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let spec = ChainSpec::minimal().with_genesis_fork(FORK);
        let state = interop_genesis_state(&spec, FORK, VALIDATORS + 24, 0).expect("genesis");
        let SplitCluster {
            lock,
            shares,
            node_keys,
        } = common::interop_cluster(&spec, VALIDATORS, OPERATORS, THRESHOLD);
        let validators: Vec<Validator> = (0..VALIDATORS)
            .zip(shares)
            .map(|(index, shares)| Validator {
                index,
                group: lock.validators[index as usize].pubkey,
                shares,
            })
            .collect();
        let (slot, _) = watch::channel(0);
        let (beacon, nodes, chain) = runtime.block_on(async {
            let beacon = Sidecar::start(SidecarConfig {
                listen: "127.0.0.1:0".parse().expect("address"),
                source: SidecarSource::State(Box::new(state)),
                spec: spec.clone(),
                limits: Limits::default(),
            })
            .await
            .expect("beacon node");
            let url = format!("http://{}", beacon.addr());
            let nodes = common::start_middlewares(
                &lock,
                &node_keys,
                &url,
                Some(Duration::from_secs(60)),
                || SlotSource::Manual(slot.subscribe()),
            )
            .await;
            let chain = BeaconNodeClient::new(&url).expect("client");
            let chain = ChainInfo::fetch(&chain).await.expect("chain info");
            (beacon, nodes, chain)
        });
        let clients = nodes
            .iter()
            .map(|node| {
                BeaconNodeClient::new(&format!("http://{}", node.http_addr())).expect("client")
            })
            .collect();
        Bench {
            runtime,
            _beacon: beacon,
            nodes,
            clients,
            validators,
            chain,
            slot,
            epoch: 0,
        }
    }

    /// The next epoch's duties, signed by every operator (on all cores).
    fn next_duties(&mut self) -> Duties {
        self.epoch += 1;
        let slots_per_epoch = self.chain.spec.preset.SLOTS_PER_EPOCH;
        let start = self.epoch * slots_per_epoch;
        let duties: Vec<(usize, Slot, Root)> = self
            .validators
            .iter()
            .enumerate()
            .map(|(position, v)| {
                let slot = start + v.index % slots_per_epoch;
                (
                    position,
                    slot,
                    self.chain.selection_proof_signing_root(slot),
                )
            })
            .collect();
        let validators = &self.validators;
        let partials = std::thread::scope(|scope| {
            let signers: Vec<_> = (1..=OPERATORS)
                .map(|operator| {
                    let duties = &duties;
                    scope.spawn(move || {
                        let signed: Vec<Signature> = duties
                            .iter()
                            .map(|(p, _, root)| {
                                validators[*p].shares[&operator].sign(root.as_slice())
                            })
                            .collect();
                        (operator, signed)
                    })
                })
                .collect();
            signers
                .into_iter()
                .map(|s| s.join().expect("signer"))
                .collect()
        });
        Duties { duties, partials }
    }

    fn selections(&self, duties: &Duties, operator: u64) -> Vec<BeaconCommitteeSelection> {
        duties
            .duties
            .iter()
            .zip(&duties.partials[&operator])
            .map(|((position, slot, _), partial)| BeaconCommitteeSelection {
                validator_index: self.validators[*position].index,
                slot: *slot,
                selection_proof: SignatureBytes(partial.to_bytes()),
            })
            .collect()
    }

    /// Peer partials each node has received from `operator` so far.
    fn received_from(&self, operator: u64) -> Vec<u64> {
        self.nodes
            .iter()
            .map(|node| {
                node.store()
                    .stats()
                    .received
                    .get(&Source::Peer(operator))
                    .copied()
                    .unwrap_or(0)
            })
            .collect()
    }

    /// One epoch through the cluster: the time from operator 3's request to the last answer.
    fn cluster_epoch(&mut self) -> Duration {
        let duties = self.next_duties();
        let start_slot = self.epoch * self.chain.spec.preset.SLOTS_PER_EPOCH;
        self.slot.send_replace(start_slot);
        let early: Vec<Vec<BeaconCommitteeSelection>> = (1..=2)
            .map(|operator| self.selections(&duties, operator))
            .collect();
        let last = self.selections(&duties, 3);
        let before: Vec<Vec<u64>> = (1..=2)
            .map(|operator| self.received_from(operator))
            .collect();
        let clients = self.clients.clone();
        self.runtime.block_on(async {
            for node in &self.nodes {
                while node.store().current_slot() != start_slot {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            let waiting: Vec<_> = early
                .into_iter()
                .zip(&clients)
                .map(|(items, client)| {
                    let client = client.clone();
                    tokio::spawn(async move {
                        let answer = client.beacon_committee_selections(&items).await;
                        (answer.map(|a| a.len()), Instant::now())
                    })
                })
                .collect();
            // Every node but the sender holds operators 1 and 2's partials.
            for (operator, before) in (1..=2u64).zip(&before) {
                loop {
                    let now = self.received_from(operator);
                    let done =
                        now.iter().zip(before).enumerate().all(|(node, (n, b))| {
                            node as u64 + 1 == operator || *n >= b + VALIDATORS
                        });
                    if done {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            let started = Instant::now();
            let answer = clients[2]
                .beacon_committee_selections(&last)
                .await
                .expect("operator 3's answer");
            let mut finished = Instant::now();
            assert_eq!(answer.len() as u64, VALIDATORS);
            for task in waiting {
                let (answer, at) = task.await.expect("request task");
                assert_eq!(answer.expect("early answer") as u64, VALIDATORS);
                finished = finished.max(at);
            }
            finished - started
        })
    }
}

/// The crypto of one node after the last partials arrive, without anything else.
struct CryptoWork {
    /// Operator 3's partials as bytes, with the public share and root each must verify against.
    last: Vec<([u8; 96], PublicKey, Root)>,
    /// Operators 1 and 2's partials (already decoded and verified on their arrival).
    earlier: Vec<[(u64, Signature); 2]>,
    /// Group key of each duty.
    groups: Vec<PublicKey>,
}

impl CryptoWork {
    fn new(bench: &Bench, duties: &Duties) -> Self {
        let mut last = Vec::new();
        let mut earlier = Vec::new();
        let mut groups = Vec::new();
        for (n, (position, _, root)) in duties.duties.iter().enumerate() {
            let validator = &bench.validators[*position];
            let partial = &duties.partials[&3][n];
            last.push((partial.to_bytes(), validator.shares[&3].public_key(), *root));
            earlier.push([(1, duties.partials[&1][n]), (2, duties.partials[&2][n])]);
            groups.push(validator.group);
        }
        CryptoWork {
            last,
            earlier,
            groups,
        }
    }

    /// Decode, batch-verify, combine, batch-verify the combined: one node's work.
    fn run(&self) {
        let decoded: Vec<Signature> = self
            .last
            .iter()
            .map(|(bytes, _, _)| Signature::from_bytes(bytes).expect("a G2 point"))
            .collect();
        let sets: Vec<SignatureSet> = self
            .last
            .iter()
            .zip(&decoded)
            .map(|((_, pubshare, root), signature)| SignatureSet {
                pubkey: pubshare,
                message: root.0,
                signature,
            })
            .collect();
        assert!(verify_signature_sets(&sets));
        let combined: Vec<Signature> = self
            .earlier
            .iter()
            .zip(&decoded)
            .map(|(earlier, third)| {
                let partials = [earlier[0], earlier[1], (3, *third)];
                combine_signatures(&partials, THRESHOLD).expect("combine")
            })
            .collect();
        let sets: Vec<SignatureSet> = combined
            .iter()
            .zip(&self.groups)
            .zip(&self.last)
            .map(|((signature, group), (_, _, root))| SignatureSet {
                pubkey: group,
                message: root.0,
                signature,
            })
            .collect();
        assert!(verify_signature_sets(&sets));
    }

    /// The four nodes' work at once.
    fn run_four(&self) -> Duration {
        let started = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..OPERATORS {
                scope.spawn(|| self.run());
            }
        });
        started.elapsed()
    }
}

fn bench(c: &mut Criterion) {
    let mut bench = Bench::new();
    let work = {
        let duties = bench.next_duties();
        CryptoWork::new(&bench, &duties)
    };
    let mut group = common::slot_group(c, "middleware_cluster_1000");
    group.bench_function("pure_crypto_4_nodes", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| work.run_four()).sum())
    });
    group.bench_function("last_partial_to_last_answer", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| bench.cluster_epoch()).sum())
    });
    group.finish();
    common::print_cost_ratio(
        "last partial to last answer / pure crypto of the same work",
        "middleware_cluster_1000/pure_crypto_4_nodes",
        "middleware_cluster_1000/last_partial_to_last_answer",
        1.2,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
