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

use criterion::{criterion_group, criterion_main, Criterion};
use dv_aggregator::api::attestation::SingleAttestation;
use dv_aggregator::api::client::BeaconNodeClient;
use dv_aggregator::api::types::{AttesterDuty, SignatureBytes};
use dv_aggregator::api::ChainInfo;
use dv_aggregator::cluster::SplitCluster;
use dv_aggregator::crypto::batch::{verify_signature_sets, SignatureSet};
use dv_aggregator::crypto::threshold::combine_signatures;
use dv_aggregator::crypto::{PublicKey, SecretKey, Signature};
use dv_aggregator::devnet::chain::DevnetChain;
use dv_aggregator::middleware::{Middleware, SlotSource};
use dv_aggregator::spec::time::{unix_now, SlotClock};
use dv_aggregator::spec::{AttestationData, ChainSpec, ForkName, Root, Slot};
use tokio::runtime::Runtime;

/// Every validator is a distributed validator: 1,000 attest in each slot.
const VALIDATORS: u64 = 8_000;
const PER_SLOT: usize = 1_000;
const OPERATORS: u64 = 4;
const THRESHOLD: u64 = 3;
const FORK: ForkName = ForkName::Fulu;
/// Long enough for a slot's work on a loaded 2-core machine.
const SECONDS_PER_SLOT: u64 = 6;

/// The running cluster and what its validator clients sign with.
struct Bench {
    runtime: Runtime,
    chain: DevnetChain,
    _nodes: Vec<Middleware>,
    clients: Vec<BeaconNodeClient>,
    /// Key shares by operator, by validator index.
    shares: Arc<Vec<BTreeMap<u64, SecretKey>>>,
    groups: Vec<PublicKey>,
    info: Arc<ChainInfo>,
    clock: SlotClock,
    /// Every validator's duty, by slot.
    duties: BTreeMap<Slot, Vec<AttesterDuty>>,
    slot: Slot,
}

async fn sleep_until(moment: Duration) {
    tokio::time::sleep(moment.saturating_sub(unix_now())).await;
}

impl Bench {
    fn new() -> Bench {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut spec = ChainSpec::minimal().with_genesis_fork(FORK);
        spec.seconds_per_slot = SECONDS_PER_SLOT;
        let SplitCluster {
            lock,
            shares,
            node_keys,
        } = common::interop_cluster(&spec, VALIDATORS, OPERATORS, THRESHOLD);
        let groups = lock.validators.iter().map(|v| v.pubkey).collect();
        let genesis_time = unix_now().as_secs() + 2;
        let clock = SlotClock::new(genesis_time, SECONDS_PER_SLOT).expect("clock");
        let (chain, nodes, info) = runtime.block_on(async {
            let chain = DevnetChain::start(spec.clone(), FORK, VALIDATORS, genesis_time)
                .await
                .expect("chain");
            let nodes = common::start_middlewares(&lock, &node_keys, &chain.url(), None, || {
                SlotSource::WallClock
            })
            .await;
            let client = BeaconNodeClient::new(&chain.url()).expect("client");
            let info = ChainInfo::fetch(&client).await.expect("chain info");
            (chain, nodes, info)
        });
        let clients = nodes
            .iter()
            .map(|node| {
                BeaconNodeClient::new(&format!("http://{}", node.http_addr())).expect("client")
            })
            .collect();
        Bench {
            runtime,
            chain,
            _nodes: nodes,
            clients,
            shares: Arc::new(shares),
            groups,
            info: Arc::new(info),
            clock,
            duties: BTreeMap::new(),
            slot: 0,
        }
    }

    /// The duties of `slot`, fetched from the chain once per epoch.
    fn duties_at(&mut self, slot: Slot) -> Vec<AttesterDuty> {
        let slots_per_epoch = self.info.spec.preset.SLOTS_PER_EPOCH;
        if !self.duties.contains_key(&slot) {
            let epoch = slot / slots_per_epoch;
            let client = BeaconNodeClient::new(&self.chain.url()).expect("client");
            let indices: Vec<u64> = (0..VALIDATORS).collect();
            let duties: Vec<AttesterDuty> = self.runtime.block_on(async {
                let mut duties = Vec::new();
                for chunk in indices.chunks(2_000) {
                    duties.extend(
                        client
                            .attester_duties(epoch, chunk)
                            .await
                            .expect("duties")
                            .data,
                    );
                }
                duties
            });
            for duty in duties {
                self.duties.entry(duty.slot).or_default().push(duty);
            }
        }
        self.duties.get(&slot).cloned().unwrap_or_default()
    }

    /// One slot through the cluster: from the first request for the
    /// attestation data to the last attestation the chain accepted.
    fn cluster_slot(&mut self) -> Duration {
        // The next slot that starts at least a second from now.
        let now = self
            .clock
            .slot_at(unix_now() + Duration::from_secs(1))
            .unwrap_or(0);
        self.slot = self.slot.max(now) + 1;
        let slot = self.slot;
        let duties = self.duties_at(slot);
        assert_eq!(duties.len(), PER_SLOT, "duties at slot {slot}");
        let this = &*self;
        this.runtime.block_on(async {
            sleep_until(
                this.clock
                    .slot_start(slot)
                    .saturating_sub(Duration::from_millis(500)),
            )
            .await;
            this.chain.advance_to(slot).await.expect("advance");
            sleep_until(this.clock.slot_start(slot)).await;
            let started = Instant::now();
            let duties = Arc::new(duties);
            let clients: Vec<_> = (1..=OPERATORS)
                .zip(&this.clients)
                .map(|(operator, client)| {
                    let (info, shares, duties) =
                        (this.info.clone(), this.shares.clone(), duties.clone());
                    async move {
                        let data = client.attestation_data(slot, 0).await.expect("agreed data");
                        // Each client signs on its own thread, as separate processes would.
                        let signed = tokio::task::spawn_blocking(move || {
                            sign(&info, &shares, operator, &duties, &data)
                        })
                        .await
                        .expect("signer");
                        client
                            .post_attestations_v2(FORK, &signed)
                            .await
                            .expect("partials taken");
                    }
                })
                .collect();
            futures_util::future::join_all(clients).await;
            let pool = this.chain.node().pool();
            loop {
                let accepted = pool
                    .accepted_attestations()
                    .iter()
                    .filter(|a| a.slot == slot)
                    .count();
                if accepted >= PER_SLOT {
                    break;
                }
                assert!(
                    unix_now() < this.clock.slot_start(slot + 1),
                    "slot {slot} ended with {accepted} of {PER_SLOT} attestations on the chain"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            started.elapsed()
        })
    }
}

/// One operator's partial attestations of `duties` over `data`.
fn sign(
    info: &ChainInfo,
    shares: &[BTreeMap<u64, SecretKey>],
    operator: u64,
    duties: &[AttesterDuty],
    data: &AttestationData,
) -> Vec<SingleAttestation> {
    let root = info.attestation_signing_root(data);
    duties
        .iter()
        .map(|duty| SingleAttestation {
            committee_index: duty.committee_index,
            attester_index: duty.validator_index,
            data: *data,
            signature: SignatureBytes(
                shares[duty.validator_index as usize][&operator]
                    .sign(root.as_slice())
                    .to_bytes(),
            ),
        })
        .collect()
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
    fn new(bench: &mut Bench) -> Self {
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
    let mut bench = Bench::new();
    let work = CryptoWork::new(&mut bench);
    let mut group = common::slot_group(c, "attester_duty_1000");
    group.bench_function("pure_crypto", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| work.run()).sum())
    });
    group.bench_function("first_request_to_last_accepted", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| bench.cluster_slot()).sum())
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
