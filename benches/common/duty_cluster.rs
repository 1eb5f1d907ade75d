//! A 4-operator middleware cluster (threshold 3) on loopback in front of the
//! devnet's state-backed node, for the benches of whole duties: interop
//! validators, every one of them a distributed validator of the cluster, so
//! that an epoch's share of them attests in each slot. The bench plays the
//! four operators' validator clients (one task each, signing on its own
//! thread as separate processes would).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

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

pub const OPERATORS: u64 = 4;
pub const THRESHOLD: u64 = 3;
pub const FORK: ForkName = ForkName::Fulu;

/// The running cluster and what its validator clients sign with.
pub struct DutyCluster {
    pub runtime: Runtime,
    pub chain: DevnetChain,
    _nodes: Vec<Middleware>,
    /// Each operator's validator client's view: its middleware.
    pub clients: Vec<BeaconNodeClient>,
    /// Key shares by validator index, by operator.
    pub shares: Arc<Vec<BTreeMap<u64, SecretKey>>>,
    /// Group keys by validator index.
    pub groups: Vec<PublicKey>,
    pub info: Arc<ChainInfo>,
    pub clock: SlotClock,
    /// The number of validators.
    validators: u64,
    /// Every validator's duty, by slot.
    duties: BTreeMap<Slot, Vec<AttesterDuty>>,
    /// The last slot a bench iteration used.
    pub slot: Slot,
}

pub async fn sleep_until(moment: Duration) {
    tokio::time::sleep(moment.saturating_sub(unix_now())).await;
}

impl DutyCluster {
    /// The chain of `spec` (its genesis fork set here; its slots must be
    /// long enough for a slot's work on a loaded 2-core machine) with
    /// `validators`, and the cluster in front of it.
    pub fn start(mut spec: ChainSpec, validators: u64) -> DutyCluster {
        // The services' logs, on stderr, when RUST_LOG asks for them.
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .try_init();
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        spec = spec.with_genesis_fork(FORK);
        let seconds_per_slot = spec.seconds_per_slot;
        let SplitCluster {
            lock,
            shares,
            node_keys,
        } = super::interop_cluster(&spec, validators, OPERATORS, THRESHOLD);
        let groups = lock.validators.iter().map(|v| v.pubkey).collect();
        let genesis_time = unix_now().as_secs() + 2;
        let clock = SlotClock::new(genesis_time, seconds_per_slot).expect("clock");
        let (chain, nodes, info) = runtime.block_on(async {
            let chain = DevnetChain::start(spec.clone(), FORK, validators, genesis_time)
                .await
                .expect("chain");
            // Selection requests may wait a slot (the default is a third):
            // the benches post a whole slot's partial proofs a few seconds
            // ahead, and the middleware still cuts the wait short at the
            // VC's cut-off for the duty.
            let selection_timeout = Some(Duration::from_secs(seconds_per_slot));
            let nodes = super::start_middlewares(
                &lock,
                &node_keys,
                &chain.url(),
                selection_timeout,
                || SlotSource::WallClock,
            )
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
        DutyCluster {
            runtime,
            chain,
            _nodes: nodes,
            clients,
            shares: Arc::new(shares),
            groups,
            info: Arc::new(info),
            clock,
            validators,
            duties: BTreeMap::new(),
            slot: 0,
        }
    }

    /// The duties of `slot`, fetched from the chain once per epoch.
    pub fn duties_at(&mut self, slot: Slot) -> Vec<AttesterDuty> {
        let slots_per_epoch = self.info.spec.preset.SLOTS_PER_EPOCH;
        if !self.duties.contains_key(&slot) {
            let epoch = slot / slots_per_epoch;
            let client = BeaconNodeClient::new(&self.chain.url()).expect("client");
            let indices: Vec<u64> = (0..self.validators).collect();
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

    /// The validators that attest in each slot.
    pub fn per_slot(&self) -> usize {
        (self.validators / self.info.spec.preset.SLOTS_PER_EPOCH) as usize
    }

    /// The next slot that starts at least `ahead` from now (and after the
    /// last one used), with its duties.
    pub fn next_slot(&mut self, ahead: Duration) -> (Slot, Vec<AttesterDuty>) {
        let now = self.clock.slot_at(unix_now() + ahead).unwrap_or(0);
        self.slot = self.slot.max(now) + 1;
        let slot = self.slot;
        let duties = self.duties_at(slot);
        assert_eq!(duties.len(), self.per_slot(), "duties at slot {slot}");
        (slot, duties)
    }

    /// Half a second before `slot` starts, the chain advances to it; then
    /// waits for its start.
    pub async fn enter_slot(&self, slot: Slot) {
        sleep_until(
            self.clock
                .slot_start(slot)
                .saturating_sub(Duration::from_millis(500)),
        )
        .await;
        self.chain.advance_to(slot).await.expect("advance");
        sleep_until(self.clock.slot_start(slot)).await;
    }

    /// The attester duty of `duties` at `slot`: every operator's client
    /// asks its middleware for the attestation data, signs its partials and
    /// posts them; returns the agreed data once the chain has all of them.
    pub async fn attest(&self, slot: Slot, duties: &Arc<Vec<AttesterDuty>>) -> AttestationData {
        let clients: Vec<_> = (1..=OPERATORS)
            .zip(&self.clients)
            .map(|(operator, client)| {
                let (info, shares, duties) =
                    (self.info.clone(), self.shares.clone(), duties.clone());
                async move {
                    let data = client.attestation_data(slot, 0).await.expect("agreed data");
                    let signed = tokio::task::spawn_blocking(move || {
                        sign_attestations(&info, &shares, operator, &duties, &data)
                    })
                    .await
                    .expect("signer");
                    client
                        .post_attestations_v2(FORK, &signed)
                        .await
                        .expect("partials taken");
                    data
                }
            })
            .collect();
        let data = futures_util::future::join_all(clients).await;
        self.wait_until(slot, "attestations", duties.len(), || {
            self.chain
                .node()
                .pool()
                .accepted_attestations()
                .iter()
                .filter(|a| a.slot == slot)
                .count()
        })
        .await;
        data[0]
    }

    /// Polls `accepted` until it reaches `expected`; the slot must not end first.
    pub async fn wait_until(
        &self,
        slot: Slot,
        what: &str,
        expected: usize,
        accepted: impl Fn() -> usize,
    ) {
        loop {
            let accepted = accepted();
            if accepted >= expected {
                return;
            }
            assert!(
                unix_now() < self.clock.slot_start(slot + 1),
                "slot {slot} ended with {accepted} of {expected} {what} on the chain; the pool: {:?}",
                self.chain.node().pool().counts()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// One operator's partial attestations of `duties` over `data`.
pub fn sign_attestations(
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

/// The threshold crypto of a batch of duties alone, as the cluster does it:
/// the baseline of the whole-duty benches.
pub struct PartialsWork {
    /// Each duty's signing root, group key and key shares.
    duties: Vec<(Root, PublicKey, BTreeMap<u64, SecretKey>)>,
    /// Every operator's partials, encoded, in duty order.
    partials: BTreeMap<u64, Vec<[u8; 96]>>,
    /// Every operator's public shares, in duty order.
    publics: BTreeMap<u64, Vec<PublicKey>>,
}

impl PartialsWork {
    /// The work of `duties` (signing root, group key, key shares), with
    /// every operator's partials signed and public shares derived ahead.
    pub fn new(duties: Vec<(Root, PublicKey, BTreeMap<u64, SecretKey>)>) -> Self {
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
        PartialsWork {
            duties,
            partials,
            publics,
        }
    }

    /// Each duty's signing root and group key.
    pub fn duties(&self) -> impl Iterator<Item = (&Root, &PublicKey)> {
        self.duties.iter().map(|(root, group, _)| (root, group))
    }

    /// One operator's share of the work: its client signs its partials; its
    /// node decodes and batch-verifies everyone's, combines three per duty
    /// and batch-verifies the combined.
    pub fn operator(&self, operator: u64) -> Vec<Signature> {
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

    /// Batch-verifies `combined` (in duty order) against the group keys.
    pub fn verify_combined(&self, combined: &[Signature]) {
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
}

/// Runs `work` for every operator at once, each on its own thread as the
/// operators' machines would; the last operator's result.
pub fn on_operator_threads<T: Send>(work: impl Fn(u64) -> T + Sync) -> T {
    std::thread::scope(|scope| {
        let work = &work;
        let operators: Vec<_> = (1..=OPERATORS)
            .map(|operator| scope.spawn(move || work(operator)))
            .collect();
        operators
            .into_iter()
            .map(|operator| operator.join().expect("operator"))
            .next_back()
            .expect("four operators")
    })
}

/// Measures, in the whole-slot group `name`, `crypto` (the baseline) and
/// `cluster` (the duty through the cluster), each returning one
/// iteration's time, and prints the cost ratio `label` with its `target`.
pub fn bench_against_crypto(
    c: &mut criterion::Criterion,
    name: &str,
    (label, target): (&str, f64),
    mut crypto: impl FnMut() -> Duration,
    mut cluster: impl FnMut() -> Duration,
) {
    let mut group = super::slot_group(c, name);
    group.bench_function("pure_crypto", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| crypto()).sum())
    });
    group.bench_function("first_request_to_last_accepted", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| cluster()).sum())
    });
    group.finish();
    super::print_cost_ratio(
        label,
        &format!("{name}/pure_crypto"),
        &format!("{name}/first_request_to_last_accepted"),
        target,
    );
}
