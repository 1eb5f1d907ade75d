//! The validator client service: `VcConfig` -> [`Vc::start`] -> [`VcHandle`].
//!
//! Once started it knows its keys, its beacon node and the chain (spec,
//! genesis, head fork). Its work comes in two steps, which the wall-clock loop
//! runs at each slot start and which tests and the devnet call directly:
//!
//! - [`Vc::run_epoch`] (epoch start): look up the validator index of every key
//!   not yet found, refresh the head fork, fetch attester and sync duties of
//!   the epoch and the next, select aggregators for both epochs (one request
//!   per epoch in distributed mode, as the Beacon API advises: the current
//!   epoch's, which every operator of a cluster sends, and the next epoch's,
//!   which may stay unanswered until the other operators ask), and post the
//!   beacon and sync committee subscriptions.
//! - [`Vc::run_slot`] (slot start): ask once more, in one request, for this
//!   slot's attestation duties that still have no answer (operators that ask
//!   slot by slot make epoch-wide requests come back without the later
//!   slots); fail what had its last chance; select sync aggregators for this
//!   slot's sync duties (one selection per validator, slot and subcommittee);
//!   prune state older than two epochs.
//!
//! An attestation duty therefore ends in exactly one [`SelectionDecision`]:
//! decided at the first verified answer, or failed at its slot. A missing or
//! bad answer fails that validator's duty alone, with a log line naming the
//! validator, the slot and what was wrong.
//!
//! Producing and publishing aggregates is not done here (the devnet's chain
//! carries no attestations): the kept selection proofs
//! ([`Vc::selection_proof`], [`Vc::sync_selection_proof`]) are what that duty
//! would put in its `AggregateAndProof` / `ContributionAndProof`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::{join, join_all};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn, Instrument};

use super::decision::{
    DecisionDuty, DecisionLog, Outcome, SelectionDecision, DEFAULT_DECISION_LOG_CAPACITY,
};
use super::duties::{sync_until_epoch, AttestationDuty, SyncCommitteeDuty};
use super::keys::{check_unique, group_keys, KeysError, ValidatorKey};
use super::selection::{match_answers, send_in_parts, Asked, SelectionEndpoint, SelectionStrategy};
use crate::api::client::ClientConfig;
use crate::api::types::{
    BeaconCommitteeSelection, BeaconCommitteeSubscription, IsAggregatorRequestItem, PublicKeyBytes,
    SignatureBytes, StateId, SyncCommitteeSelection, SyncCommitteeSubscription, ValidatorId,
};
use crate::api::{BeaconNodeClient, ChainInfo, ChainInfoError, ClientError};
use crate::cluster::ClusterLock;
use crate::crypto::{PublicKey, Signature};
use crate::spec::selection::{is_aggregator, is_sync_committee_aggregator};
use crate::spec::time::{unix_now, SlotClock, SlotClockError};
use crate::spec::{Epoch, Fork, ForkName, Preset, Root, Slot, ValidatorIndex};

/// Most items in one request to the beacon node; more are split into
/// requests of this size sent together.
pub const MAX_ITEMS_PER_REQUEST: usize = 8_192;
/// Epochs of duties, decisions and proofs kept behind the current slot.
const EPOCHS_KEPT: u64 = 2;

/// Why a validator client cannot start.
#[derive(Debug, thiserror::Error)]
pub enum VcError {
    /// No keys were given.
    #[error("no validator keys: a validator client needs at least one")]
    NoKeys,
    /// Distributed mode without a cluster lock.
    #[error("distributed mode needs the cluster lock: it gives each key share's validator (group) public key, which every combined selection proof is verified against")]
    LockRequired,
    /// The keys are unusable or not in the cluster lock.
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// The beacon node URL is unusable.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The chain could not be learnt from the beacon node.
    #[error("cannot learn the chain from the beacon node: {0}")]
    Chain(#[from] ChainInfoError),
    /// The chain's slot duration is zero.
    #[error("the beacon node's configuration is unusable: {0}")]
    SlotClock(#[from] SlotClockError),
}

/// Whether the service follows the wall clock or waits to be driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Drive {
    /// Run [`Vc::run_epoch`] / [`Vc::run_slot`] at every slot start.
    #[default]
    WallClock,
    /// Run nothing by itself; the caller calls the step functions.
    Manual,
}

/// Everything [`Vc::start`] needs.
#[derive(Debug)]
pub struct VcConfig {
    /// A name for log lines (the devnet runs several clients in one process).
    pub name: String,
    /// The beacon node (in a distributed validator: the middleware), e.g.
    /// `http://127.0.0.1:5052`.
    pub beacon_node: String,
    /// The keys (whole keys, or key shares in distributed mode).
    pub keys: Vec<ValidatorKey>,
    /// Local or distributed selection.
    pub strategy: SelectionStrategy,
    /// The cluster lock: required in distributed mode (every key must be a
    /// public share in it); in local mode it only names each key's validator.
    pub cluster_lock: Option<ClusterLock>,
    /// Wall clock or manual.
    pub drive: Drive,
    /// Deadline of an ordinary request (duties, indices, subscriptions).
    pub request_timeout: Duration,
    /// Deadline of a selections request; `None` is one slot, so that it
    /// outlives the middleware's own deadline.
    pub selection_timeout: Option<Duration>,
    /// Decisions kept for [`Vc::decisions`].
    pub decision_log_capacity: usize,
}

impl VcConfig {
    /// A local-mode client of `beacon_node` with `keys`, on the wall clock.
    pub fn new(beacon_node: impl Into<String>, keys: Vec<ValidatorKey>) -> Self {
        VcConfig {
            name: "vc".into(),
            beacon_node: beacon_node.into(),
            keys,
            strategy: SelectionStrategy::Local,
            cluster_lock: None,
            drive: Drive::WallClock,
            request_timeout: ClientConfig::default().timeout,
            selection_timeout: None,
            decision_log_capacity: DEFAULT_DECISION_LOG_CAPACITY,
        }
    }

    /// Sets the name used in log lines.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Distributed mode asking `endpoint`, with the cluster lock of the keys.
    pub fn distributed(mut self, endpoint: SelectionEndpoint, lock: ClusterLock) -> Self {
        self.strategy = SelectionStrategy::Distributed { endpoint };
        self.cluster_lock = Some(lock);
        self
    }

    /// Sets how the service is driven.
    pub fn with_drive(mut self, drive: Drive) -> Self {
        self.drive = drive;
        self
    }
}

/// What [`Vc::run_epoch`] left behind for its epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EpochSummary {
    /// The epoch.
    pub epoch: Epoch,
    /// Attestation duties of the epoch.
    pub attestation_duties: usize,
    /// Of those, decided aggregators.
    pub aggregators: usize,
    /// Of those, still without an answer (asked again at their slot).
    pub undecided: usize,
    /// Attestation duties of the next epoch.
    pub next_epoch_duties: usize,
    /// Validators with a sync committee duty in the epoch.
    pub sync_duties: usize,
    /// Failed decisions recorded since the previous summary.
    pub failures: usize,
}

/// A running validator client; dropping it stops the wall-clock loop.
pub struct VcHandle {
    vc: Arc<Vc>,
    task: Option<JoinHandle<()>>,
}

impl VcHandle {
    /// The client, shareable with other tasks.
    pub fn vc(&self) -> Arc<Vc> {
        Arc::clone(&self.vc)
    }

    /// Runs until the process is stopped (returns at once in manual mode).
    pub async fn run_until_stopped(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Deref for VcHandle {
    type Target = Vc;

    fn deref(&self) -> &Vc {
        &self.vc
    }
}

impl Drop for VcHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// One key and the validator it signs for.
struct KeyEntry {
    key: ValidatorKey,
    /// The group key in a distributed validator, else the key's own.
    validator: PublicKey,
}

/// The validator client: keys, beacon node, chain and what it learnt of its
/// duties. Its methods may run concurrently; state is locked only briefly.
pub struct Vc {
    name: String,
    client: BeaconNodeClient,
    selections_client: BeaconNodeClient,
    strategy: SelectionStrategy,
    chain: ChainInfo,
    clock: SlotClock,
    keys: Arc<[KeyEntry]>,
    /// Own and group public keys to key positions (a middleware may answer
    /// with either).
    key_by_pubkey: HashMap<[u8; 48], usize>,
    state: Mutex<State>,
    decisions: DecisionLog,
}

#[derive(Default)]
struct State {
    fork: Fork,
    index_of_key: Vec<Option<ValidatorIndex>>,
    key_of_index: HashMap<ValidatorIndex, usize>,
    unknown_keys_reported: Option<usize>,
    attestations: BTreeMap<(Slot, ValidatorIndex), AttestationEntry>,
    sync_duties: BTreeMap<Epoch, Vec<SyncCommitteeDuty>>,
    /// Every sync selection done, with the proof kept when there is one.
    sync_selections: BTreeMap<(Slot, ValidatorIndex, u64), Option<Signature>>,
    sync_subscribed: BTreeSet<(Epoch, ValidatorIndex)>,
    failures_since_summary: usize,
}

struct AttestationEntry {
    duty: AttestationDuty,
    key: usize,
    /// The client's own selection proof (partial in distributed mode), signed once.
    own_proof: Option<Signature>,
    status: Status,
    /// The `is_aggregator` last posted in a subscription.
    subscribed: Option<bool>,
}

enum Status {
    Pending {
        last_failure: Option<String>,
    },
    Decided {
        is_aggregator: bool,
        selection_proof: Option<Signature>,
    },
    Failed,
}

/// Which attestation duties a selection round asks for.
#[derive(Debug, Clone, Copy)]
enum Round {
    /// Epoch start, the epoch's own duties: all of them (every operator of a
    /// cluster sends this request, and a middleware combines across them).
    Current(Epoch),
    /// Epoch start, the next epoch's undecided duties; may stay unanswered.
    Next(Epoch),
    /// Slot start, the slot's undecided duties: their last chance.
    Slot(Slot),
}

/// An attestation duty about to be asked about.
struct Candidate {
    duty: AttestationDuty,
    key: usize,
    signing_root: Root,
    own_proof: Option<Signature>,
}

/// A sync selection about to be asked about.
struct SyncCandidate {
    validator_index: ValidatorIndex,
    slot: Slot,
    subcommittee_index: u64,
    key: usize,
    signing_root: Root,
}

/// Per item: `(is_aggregator, selection proof to keep)` or why there is none,
/// with the latency of the request that gave it.
type ItemResult = (Result<(bool, Option<Signature>), String>, Duration);

impl Vc {
    /// Checks the keys against the lock, learns the chain from the beacon node
    /// and, on the wall clock, starts the loop. Must run inside a tokio runtime.
    pub async fn start(config: VcConfig) -> Result<VcHandle, VcError> {
        if config.keys.is_empty() {
            return Err(VcError::NoKeys);
        }
        check_unique(&config.keys)?;
        let validators = match (&config.strategy, &config.cluster_lock) {
            (SelectionStrategy::Distributed { .. }, None) => return Err(VcError::LockRequired),
            (_, Some(lock)) => group_keys(&config.keys, lock)?,
            (SelectionStrategy::Local, None) => config.keys.iter().map(|k| k.pubkey()).collect(),
        };
        let client = BeaconNodeClient::with_config(
            &config.beacon_node,
            ClientConfig {
                timeout: config.request_timeout,
                ..ClientConfig::default()
            },
        )?;
        let chain = ChainInfo::fetch(&client).await?;
        let clock = chain.slot_clock()?;
        let selections_client = BeaconNodeClient::with_config(
            &config.beacon_node,
            ClientConfig {
                timeout: config.selection_timeout.unwrap_or(clock.slot_duration()),
                ..ClientConfig::default()
            },
        )?;
        let keys: Arc<[KeyEntry]> = config
            .keys
            .into_iter()
            .zip(validators)
            .map(|(key, validator)| KeyEntry { key, validator })
            .collect();
        let mut key_by_pubkey = HashMap::with_capacity(keys.len() * 2);
        for (position, entry) in keys.iter().enumerate() {
            key_by_pubkey.insert(entry.validator.to_bytes(), position);
            key_by_pubkey.insert(entry.key.pubkey().to_bytes(), position);
        }
        let state = State {
            fork: chain.fork,
            index_of_key: vec![None; keys.len()],
            ..State::default()
        };
        tracing::info_span!("vc", name = %config.name).in_scope(|| {
            info!(
                keys = keys.len(),
                mode = ?config.strategy,
                beacon_node = %client.base_url(),
                "validator client started"
            )
        });
        let vc = Arc::new(Vc {
            name: config.name,
            client,
            selections_client,
            strategy: config.strategy,
            chain,
            clock,
            keys,
            key_by_pubkey,
            state: Mutex::new(state),
            decisions: DecisionLog::new(config.decision_log_capacity),
        });
        let task = match config.drive {
            Drive::WallClock => Some(tokio::spawn(run_clock(Arc::clone(&vc)))),
            Drive::Manual => None,
        };
        Ok(VcHandle { vc, task })
    }

    /// The name in log lines.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The chain as learnt at start (the fork is refreshed every epoch).
    pub fn chain(&self) -> &ChainInfo {
        &self.chain
    }

    /// Local or distributed selection.
    pub fn strategy(&self) -> SelectionStrategy {
        self.strategy
    }

    /// Every key whose validator index is known: (the key's public key, its
    /// validator's index).
    pub fn validator_indices(&self) -> Vec<(PublicKey, ValidatorIndex)> {
        let state = self.lock();
        self.keys
            .iter()
            .zip(&state.index_of_key)
            .filter_map(|(entry, index)| index.map(|index| (entry.key.pubkey(), index)))
            .collect()
    }

    /// Every decision in the log, oldest first.
    pub fn decisions(&self) -> Vec<SelectionDecision> {
        self.decisions.snapshot()
    }

    /// Removes and returns the decisions in the log (each is returned once).
    pub fn take_decisions(&self) -> Vec<SelectionDecision> {
        self.decisions.take()
    }

    /// Decisions dropped to keep the log bounded.
    pub fn dropped_decisions(&self) -> u64 {
        self.decisions.dropped()
    }

    /// The selection proof kept for the attestation aggregation duty of
    /// `validator_index` at `slot` (none in is-aggregator mode).
    pub fn selection_proof(
        &self,
        slot: Slot,
        validator_index: ValidatorIndex,
    ) -> Option<Signature> {
        match self
            .lock()
            .attestations
            .get(&(slot, validator_index))?
            .status
        {
            Status::Decided {
                selection_proof, ..
            } => selection_proof,
            _ => None,
        }
    }

    /// The selection proof kept for the sync contribution duty of
    /// `validator_index` at `slot` in `subcommittee_index`.
    pub fn sync_selection_proof(
        &self,
        slot: Slot,
        validator_index: ValidatorIndex,
        subcommittee_index: u64,
    ) -> Option<Signature> {
        *self
            .lock()
            .sync_selections
            .get(&(slot, validator_index, subcommittee_index))?
    }

    /// Epoch start: indices, fork, duties of `epoch` and the next, aggregator
    /// selection for both, subscriptions. Logs and returns a summary.
    pub async fn run_epoch(&self, epoch: Epoch) -> EpochSummary {
        let span = tracing::info_span!("vc", name = %self.name);
        async {
            self.prepare_epoch(epoch).await;
            join(
                self.select_epoch(Round::Current(epoch)),
                self.select_epoch(Round::Next(epoch.saturating_add(1))),
            )
            .await;
            self.summarize(epoch)
        }
        .instrument(span)
        .await
    }

    /// Slot start: the last ask for the slot's undecided attestation duties,
    /// failures for duties whose chance has passed, sync selections, pruning.
    pub async fn run_slot(&self, slot: Slot) {
        let span = tracing::info_span!("vc", name = %self.name);
        async {
            join(
                self.select_attestations(Round::Slot(slot)),
                self.select_sync(slot),
            )
            .await;
            self.subscribe_attestations(|duty| duty.slot == slot).await;
            self.fail_passed(slot);
            self.prune(slot);
        }
        .instrument(span)
        .await
    }

    /// The wall-clock loop's work at a slot start.
    async fn on_slot(&self, slot: Slot, epoch_start: bool) {
        if !epoch_start {
            return self.run_slot(slot).await;
        }
        let epoch = self.epoch_of(slot);
        let span = tracing::info_span!("vc", name = %self.name);
        self.prepare_epoch(epoch).instrument(span.clone()).await;
        // The slot's own work waits for the current epoch's answers only, never
        // for the next epoch's request, which may wait for other operators.
        let current = async {
            self.select_epoch(Round::Current(epoch))
                .instrument(span.clone())
                .await;
            self.run_slot(slot).await;
        };
        join(
            current,
            self.select_epoch(Round::Next(epoch.saturating_add(1)))
                .instrument(span.clone()),
        )
        .await;
        span.in_scope(|| self.summarize(epoch));
    }

    fn preset(&self) -> &Preset {
        &self.chain.spec.preset
    }

    fn epoch_of(&self, slot: Slot) -> Epoch {
        slot / self.preset().SLOTS_PER_EPOCH.max(1)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn prepare_epoch(&self, epoch: Epoch) {
        // Bounds memory when only epochs are run (slots prune as well).
        self.prune(epoch.saturating_mul(self.preset().SLOTS_PER_EPOCH.max(1)));
        self.resolve_indices().await;
        self.refresh_fork().await;
        let next = epoch.saturating_add(1);
        join(
            join(
                self.fetch_attester_duties(epoch),
                self.fetch_attester_duties(next),
            ),
            join(self.fetch_sync_duties(epoch), self.fetch_sync_duties(next)),
        )
        .await;
    }

    async fn select_epoch(&self, round: Round) {
        self.select_attestations(round).await;
        let epoch = match round {
            Round::Current(epoch) | Round::Next(epoch) => epoch,
            Round::Slot(slot) => self.epoch_of(slot),
        };
        join(
            self.subscribe_attestations(|duty| self.epoch_of(duty.slot) == epoch),
            self.subscribe_sync(epoch),
        )
        .await;
    }

    /// Looks up the validator index of every key not yet found, by public key.
    async fn resolve_indices(&self) {
        let unknown: Vec<usize> = {
            let state = self.lock();
            (0..self.keys.len())
                .filter(|&p| state.index_of_key[p].is_none())
                .collect()
        };
        for chunk in unknown.chunks(MAX_ITEMS_PER_REQUEST) {
            let ids: Vec<ValidatorId> = chunk
                .iter()
                .map(|&p| {
                    ValidatorId::PublicKey(PublicKeyBytes(self.keys[p].key.pubkey().to_bytes()))
                })
                .collect();
            match self.client.post_state_validators(StateId::Head, &ids).await {
                Ok(found) => self.record_indices(&found),
                Err(error) => {
                    warn!(%error, "cannot look up validator indices; asking again next epoch");
                    return;
                }
            }
        }
        let mut state = self.lock();
        let missing: Vec<String> = self
            .keys
            .iter()
            .zip(&state.index_of_key)
            .filter(|(_, index)| index.is_none())
            .map(|(entry, _)| entry.key.describe())
            .collect();
        if state.unknown_keys_reported != Some(missing.len()) {
            state.unknown_keys_reported = Some(missing.len());
            let known = self.keys.len() - missing.len();
            if missing.is_empty() {
                info!(known, "found the validator index of every key");
            } else {
                info!(
                    known,
                    unknown = missing.len(),
                    first_unknown = %missing[0],
                    "keys not on the beacon chain (not deposited yet?) are skipped; looking again every epoch"
                );
            }
        }
    }

    fn record_indices(&self, found: &[crate::api::types::ValidatorData]) {
        let mut state = self.lock();
        for validator in found {
            let Some(&position) = self.key_by_pubkey.get(&validator.validator.pubkey.0) else {
                warn!(
                    validator_index = validator.index,
                    pubkey = ?validator.validator.pubkey,
                    "the beacon node returned a validator that was not asked for; ignored"
                );
                continue;
            };
            match state.key_of_index.get(&validator.index) {
                Some(&other) if other != position => {
                    warn!(
                        validator_index = validator.index,
                        key = %self.keys[position].key.describe(),
                        "the beacon node gave this index to another key as well; ignored"
                    );
                }
                _ => {
                    state.index_of_key[position] = Some(validator.index);
                    state.key_of_index.insert(validator.index, position);
                }
            }
        }
    }

    async fn refresh_fork(&self) {
        match self.client.state_fork(StateId::Head).await {
            Ok(fork) => {
                let mut state = self.lock();
                if state.fork != fork {
                    info!(?fork, "the head state's fork changed");
                    state.fork = fork;
                }
            }
            Err(error) => warn!(%error, "cannot refresh the head fork; signing with the last one"),
        }
    }

    fn known_indices(&self) -> Vec<ValidatorIndex> {
        let mut indices: Vec<ValidatorIndex> = self.lock().key_of_index.keys().copied().collect();
        indices.sort_unstable();
        indices
    }

    /// The key position of `validator_index` if `pubkey` is its key or its
    /// group key (a middleware may map either way); logs and skips otherwise.
    fn own_key(
        &self,
        validator_index: ValidatorIndex,
        pubkey: &PublicKeyBytes,
        what: &str,
    ) -> Option<usize> {
        let position = self.lock().key_of_index.get(&validator_index).copied();
        let matches = position.filter(|&p| {
            let entry = &self.keys[p];
            pubkey.0 == entry.key.pubkey().to_bytes() || pubkey.0 == entry.validator.to_bytes()
        });
        if matches.is_none() {
            warn!(
                validator_index,
                ?pubkey,
                "the beacon node sent a {what} for a validator or key that is not ours; ignored"
            );
        }
        matches
    }

    async fn fetch_attester_duties(&self, epoch: Epoch) {
        let indices = self.known_indices();
        let mut duties: HashMap<ValidatorIndex, (AttestationDuty, usize)> = HashMap::new();
        for chunk in indices.chunks(MAX_ITEMS_PER_REQUEST) {
            let reply = match self.client.attester_duties(epoch, chunk).await {
                Ok(reply) => reply,
                Err(error) => {
                    warn!(epoch, %error, "cannot fetch attester duties; keeping what was known");
                    return;
                }
            };
            for wire in &reply.data {
                let Some(key) = self.own_key(wire.validator_index, &wire.pubkey, "attester duty")
                else {
                    continue;
                };
                match AttestationDuty::from_wire(wire, epoch, self.preset()) {
                    Ok(duty) => {
                        if duties.insert(duty.validator_index, (duty, key)).is_some() {
                            warn!(
                                epoch,
                                validator_index = duty.validator_index,
                                "two attester duties in one epoch; kept the last"
                            );
                        }
                    }
                    Err(error) => warn!(%error, "refused an attester duty"),
                }
            }
        }
        self.store_attestation_duties(epoch, duties);
    }

    /// Replaces the duties of `epoch`, keeping the state of unchanged ones.
    fn store_attestation_duties(
        &self,
        epoch: Epoch,
        duties: HashMap<ValidatorIndex, (AttestationDuty, usize)>,
    ) {
        let slots_per_epoch = self.preset().SLOTS_PER_EPOCH.max(1);
        let first = epoch.saturating_mul(slots_per_epoch);
        let end = first.saturating_add(slots_per_epoch);
        let mut state = self.lock();
        let stale: Vec<(Slot, ValidatorIndex)> = state
            .attestations
            .range((first, 0)..(end, 0))
            .filter(|(key, entry)| duties.get(&key.1).map(|(duty, _)| duty) != Some(&entry.duty))
            .map(|(key, _)| *key)
            .collect();
        for key in stale {
            debug!(
                slot = key.0,
                validator_index = key.1,
                "attester duty changed; the new one replaces it"
            );
            state.attestations.remove(&key);
        }
        for (validator_index, (duty, key)) in duties {
            state
                .attestations
                .entry((duty.slot, validator_index))
                .or_insert(AttestationEntry {
                    duty,
                    key,
                    own_proof: None,
                    status: Status::Pending { last_failure: None },
                    subscribed: None,
                });
        }
    }

    async fn fetch_sync_duties(&self, epoch: Epoch) {
        let fork = self.lock().fork;
        // A phase0 head has no sync committee to ask about.
        if self.chain.spec.fork_name_of_version(&fork.current_version) == Some(ForkName::Phase0) {
            return;
        }
        let indices = self.known_indices();
        let mut duties = Vec::new();
        for chunk in indices.chunks(MAX_ITEMS_PER_REQUEST) {
            let reply = match self.client.sync_duties(epoch, chunk).await {
                Ok(reply) => reply,
                Err(error) => {
                    warn!(epoch, %error, "cannot fetch sync committee duties; keeping what was known");
                    return;
                }
            };
            for wire in &reply.data {
                if self
                    .own_key(wire.validator_index, &wire.pubkey, "sync duty")
                    .is_none()
                {
                    continue;
                }
                match SyncCommitteeDuty::from_wire(wire, self.preset()) {
                    Ok(duty)
                        if !duties.iter().any(|d: &SyncCommitteeDuty| {
                            d.validator_index == duty.validator_index
                        }) =>
                    {
                        duties.push(duty)
                    }
                    Ok(duty) => warn!(
                        epoch,
                        validator_index = duty.validator_index,
                        "two sync duties for one validator; kept the first"
                    ),
                    Err(error) => warn!(%error, "refused a sync committee duty"),
                }
            }
        }
        self.lock().sync_duties.insert(epoch, duties);
    }

    /// The attestation duties `round` asks about, with their signing roots.
    fn candidates(&self, round: Round) -> Vec<Candidate> {
        let slots_per_epoch = self.preset().SLOTS_PER_EPOCH.max(1);
        let (first, end) = match round {
            Round::Current(epoch) | Round::Next(epoch) => {
                let first = epoch.saturating_mul(slots_per_epoch);
                (first, first.saturating_add(slots_per_epoch))
            }
            Round::Slot(slot) => (slot, slot.saturating_add(1)),
        };
        let local = self.strategy == SelectionStrategy::Local;
        let state = self.lock();
        state
            .attestations
            .range((first, 0)..(end, 0))
            .filter(|(_, entry)| match entry.status {
                Status::Pending { .. } => true,
                Status::Decided { .. } => matches!(round, Round::Current(_)) && !local,
                Status::Failed => false,
            })
            .map(|(_, entry)| Candidate {
                duty: entry.duty,
                key: entry.key,
                signing_root: self.chain_root(&state.fork, entry.duty.slot),
                own_proof: entry.own_proof,
            })
            .collect()
    }

    fn chain_root(&self, fork: &Fork, slot: Slot) -> Root {
        crate::spec::signing::selection_proof_signing_root(
            slot,
            fork,
            self.chain.genesis_validators_root,
            self.preset(),
        )
    }

    /// Signs `roots` with the keys at the given positions, off the async workers.
    async fn sign(&self, jobs: Vec<(usize, Root)>) -> Result<Vec<Signature>, String> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let keys = Arc::clone(&self.keys);
        blocking(move || {
            jobs.iter()
                .map(|&(key, root)| keys[key].key.sign(root))
                .collect()
        })
        .await
    }

    /// The client's own proof for every candidate, in order: the cached ones,
    /// and the rest signed now.
    async fn own_proofs(&self, candidates: &[Candidate]) -> Result<Vec<Signature>, String> {
        let jobs = candidates
            .iter()
            .filter(|c| c.own_proof.is_none())
            .map(|c| (c.key, c.signing_root))
            .collect();
        let mut signed = self.sign(jobs).await?.into_iter();
        candidates
            .iter()
            .map(|c| c.own_proof.or_else(|| signed.next()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| "signing returned fewer proofs than asked".to_string())
    }

    async fn select_attestations(&self, round: Round) {
        let candidates = self.candidates(round);
        if candidates.is_empty() {
            return;
        }
        let started = Instant::now();
        let proofs = match self.own_proofs(&candidates).await {
            Ok(proofs) => proofs,
            Err(reason) => {
                warn!(%reason, "signing selection proofs failed");
                return;
            }
        };
        self.cache_own_proofs(&candidates, &proofs);
        let results = match self.strategy {
            SelectionStrategy::Local => {
                let latency = started.elapsed();
                candidates
                    .iter()
                    .zip(&proofs)
                    .map(|(c, proof)| {
                        let decided = is_aggregator(
                            c.duty.committee_length,
                            &proof.to_bytes(),
                            self.preset(),
                        );
                        (Ok((decided, Some(*proof))), latency)
                    })
                    .collect()
            }
            SelectionStrategy::Distributed {
                endpoint: SelectionEndpoint::Selections,
            } => {
                self.ask_beacon_committee_selections(&candidates, &proofs)
                    .await
            }
            SelectionStrategy::Distributed {
                endpoint: SelectionEndpoint::IsAggregator,
            } => self.ask_is_aggregator(&candidates, &proofs).await,
        };
        self.apply_attestation_results(round, &candidates, results);
    }

    fn cache_own_proofs(&self, candidates: &[Candidate], proofs: &[Signature]) {
        let mut state = self.lock();
        for (candidate, proof) in candidates.iter().zip(proofs) {
            if let Some(entry) = state
                .attestations
                .get_mut(&(candidate.duty.slot, candidate.duty.validator_index))
                .filter(|entry| entry.duty == candidate.duty)
            {
                entry.own_proof = Some(*proof);
            }
        }
    }

    async fn ask_beacon_committee_selections(
        &self,
        candidates: &[Candidate],
        proofs: &[Signature],
    ) -> Vec<ItemResult> {
        let client = &self.selections_client;
        let items: Vec<BeaconCommitteeSelection> = candidates
            .iter()
            .zip(proofs)
            .map(|(c, proof)| BeaconCommitteeSelection {
                validator_index: c.duty.validator_index,
                slot: c.duty.slot,
                selection_proof: SignatureBytes(proof.to_bytes()),
            })
            .collect();
        let asked: Vec<Asked<(ValidatorIndex, Slot)>> = candidates
            .iter()
            .map(|c| Asked {
                key: (c.duty.validator_index, c.duty.slot),
                group_pubkey: self.keys[c.key].validator,
                signing_root: c.signing_root,
            })
            .collect();
        let results = self
            .ask_selections(
                &items,
                &asked,
                "beacon_committee_selections",
                |items| async move {
                    client
                        .beacon_committee_selections(&items)
                        .await
                        .map(|reply| {
                            reply
                                .into_iter()
                                .map(|r| ((r.validator_index, r.slot), r.selection_proof))
                                .collect()
                        })
                },
            )
            .await;
        results
            .into_iter()
            .zip(candidates)
            .map(|((answer, latency), c)| {
                let decided = answer.map(|proof| {
                    (
                        is_aggregator(c.duty.committee_length, &proof.to_bytes(), self.preset()),
                        Some(proof),
                    )
                });
                (decided, latency)
            })
            .collect()
    }

    /// Sends `items` (in requests of at most [`MAX_ITEMS_PER_REQUEST`], all at
    /// once) and matches each reply to `asked` by key, verifying every proof.
    async fn ask_selections<T, K, F, Fut>(
        &self,
        items: &[T],
        asked: &[Asked<K>],
        endpoint: &'static str,
        send: F,
    ) -> Vec<(Result<Signature, String>, Duration)>
    where
        T: Clone,
        K: Copy + Eq + std::hash::Hash + std::fmt::Debug + Send + 'static,
        F: Fn(Vec<T>) -> Fut + Copy,
        Fut: std::future::Future<Output = Result<Vec<(K, SignatureBytes)>, ClientError>>,
    {
        let chunks = (0..items.len())
            .step_by(MAX_ITEMS_PER_REQUEST)
            .map(|start| {
                let end = items.len().min(start + MAX_ITEMS_PER_REQUEST);
                async move {
                    let started = Instant::now();
                    let sent = send_in_parts(&items[start..end], send).await;
                    (start, started.elapsed(), sent)
                }
            });
        let mut results: Vec<(Result<Signature, String>, Duration)> =
            vec![(Err("not asked".into()), Duration::ZERO); items.len()];
        for (start, latency, sent) in join_all(chunks).await {
            for (position, message) in sent.refused {
                results[start + position] = (
                    Err(format!("{endpoint}: the beacon node refused it: {message}")),
                    latency,
                );
            }
            let reply = match sent.reply {
                Ok(reply) => reply,
                Err(error) => {
                    for &position in &sent.positions {
                        results[start + position] = (Err(format!("{error}")), latency);
                    }
                    continue;
                }
            };
            let chunk_asked: Vec<Asked<K>> =
                sent.positions.iter().map(|&p| asked[start + p]).collect();
            let matched = match blocking(move || match_answers(&chunk_asked, reply)).await {
                Ok(matched) => matched,
                Err(reason) => {
                    warn!(%reason, "verifying combined selection proofs failed");
                    continue;
                }
            };
            if matched.unrequested_count > 0 {
                warn!(
                    endpoint,
                    count = matched.unrequested_count,
                    first = ?matched.unrequested,
                    "the beacon node answered for (validator_index, slot[, subcommittee_index]) that were not asked, or twice; ignored"
                );
            }
            for (&position, answer) in sent.positions.iter().zip(matched.answers) {
                results[start + position] = (answer, latency);
            }
        }
        results
    }

    async fn ask_is_aggregator(
        &self,
        candidates: &[Candidate],
        proofs: &[Signature],
    ) -> Vec<ItemResult> {
        let items: Vec<IsAggregatorRequestItem> = candidates
            .iter()
            .zip(proofs)
            .map(|(c, proof)| IsAggregatorRequestItem {
                validator_index: c.duty.validator_index,
                committee_index: c.duty.committee_index,
                committees_at_slot: c.duty.committees_at_slot,
                slot: c.duty.slot,
                slot_signature: SignatureBytes(proof.to_bytes()),
            })
            .collect();
        let client = &self.selections_client;
        let chunks =
            (0..items.len())
                .step_by(MAX_ITEMS_PER_REQUEST)
                .map(|start| {
                    let end = items.len().min(start + MAX_ITEMS_PER_REQUEST);
                    let chunk = &items[start..end];
                    async move {
                        let started = Instant::now();
                        let sent = send_in_parts(chunk, |items| async move {
                            client.is_aggregator(&items).await
                        })
                        .await;
                        (start, started.elapsed(), sent)
                    }
                });
        let mut results: Vec<ItemResult> =
            vec![(Err("not asked".into()), Duration::ZERO); items.len()];
        for (start, latency, sent) in join_all(chunks).await {
            for (position, message) in sent.refused {
                results[start + position] = (
                    Err(format!(
                        "is_aggregator: the beacon node refused it: {message}"
                    )),
                    latency,
                );
            }
            let answers = match sent.reply {
                Ok(answers) if answers.len() == sent.positions.len() => answers,
                Ok(answers) => {
                    let reason = format!(
                        "is_aggregator answered {} booleans for {} items; the answers cannot be matched to the items",
                        answers.len(),
                        sent.positions.len()
                    );
                    for &position in &sent.positions {
                        results[start + position] = (Err(reason.clone()), latency);
                    }
                    continue;
                }
                Err(error) => {
                    for &position in &sent.positions {
                        results[start + position] = (Err(format!("{error}")), latency);
                    }
                    continue;
                }
            };
            for (&position, answer) in sent.positions.iter().zip(answers) {
                results[start + position] = (Ok((answer, None)), latency);
            }
        }
        results
    }

    fn apply_attestation_results(
        &self,
        round: Round,
        candidates: &[Candidate],
        results: Vec<ItemResult>,
    ) {
        let last_chance = matches!(round, Round::Slot(_));
        let mut unanswered = 0usize;
        let mut first_reason = None;
        let mut state = self.lock();
        let State {
            attestations,
            failures_since_summary,
            ..
        } = &mut *state;
        for (candidate, (result, latency)) in candidates.iter().zip(results) {
            let duty = candidate.duty;
            let Some(entry) = attestations
                .get_mut(&(duty.slot, duty.validator_index))
                .filter(|entry| entry.duty == duty)
            else {
                continue;
            };
            let outcome = match (&mut entry.status, result) {
                (Status::Pending { .. }, Ok((is_aggregator, selection_proof))) => {
                    entry.status = Status::Decided {
                        is_aggregator,
                        selection_proof,
                    };
                    Outcome::Decided {
                        is_aggregator,
                        selection_proof,
                    }
                }
                (Status::Decided { is_aggregator, .. }, Ok((again, _))) => {
                    if *is_aggregator != again {
                        warn!(
                            validator_index = duty.validator_index,
                            slot = duty.slot,
                            first = *is_aggregator,
                            now = again,
                            "the beacon node changed its answer; keeping the first"
                        );
                    }
                    continue;
                }
                (Status::Pending { last_failure }, Err(reason)) if !last_chance => {
                    debug!(validator_index = duty.validator_index, slot = duty.slot, %reason, "no usable answer yet; asking again at the duty's slot");
                    unanswered += 1;
                    first_reason.get_or_insert_with(|| reason.clone());
                    *last_failure = Some(reason);
                    continue;
                }
                (Status::Pending { .. }, Err(reason)) => {
                    warn!(validator_index = duty.validator_index, slot = duty.slot, %reason, "attestation aggregator selection failed");
                    entry.status = Status::Failed;
                    *failures_since_summary += 1;
                    Outcome::Failed { reason }
                }
                (Status::Decided { .. } | Status::Failed, _) => continue,
            };
            let validator = self.keys[entry.key].validator;
            self.decisions.push(SelectionDecision {
                epoch: self.epoch_of(duty.slot),
                slot: duty.slot,
                validator_index: duty.validator_index,
                validator,
                duty: DecisionDuty::Attestation {
                    committee_index: duty.committee_index,
                    committee_length: duty.committee_length,
                },
                outcome,
                latency,
            });
        }
        if let Some(reason) = first_reason {
            warn!(round = ?round, unanswered, %reason, "some selections have no usable answer yet; asking again at their slots");
        }
    }

    /// Records a failure for every undecided duty whose slot is before `slot`.
    fn fail_passed(&self, slot: Slot) {
        let mut state = self.lock();
        let State {
            attestations,
            failures_since_summary,
            ..
        } = &mut *state;
        for ((duty_slot, validator_index), entry) in attestations.range_mut(..(slot, 0)) {
            let Status::Pending { last_failure } = &entry.status else {
                continue;
            };
            let reason = format!(
                "no usable answer before slot {duty_slot} passed{}",
                last_failure
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            warn!(validator_index, slot = duty_slot, %reason, "attestation aggregator selection failed");
            self.decisions.push(SelectionDecision {
                epoch: self.epoch_of(*duty_slot),
                slot: *duty_slot,
                validator_index: *validator_index,
                validator: self.keys[entry.key].validator,
                duty: DecisionDuty::Attestation {
                    committee_index: entry.duty.committee_index,
                    committee_length: entry.duty.committee_length,
                },
                outcome: Outcome::Failed { reason },
                latency: Duration::ZERO,
            });
            entry.status = Status::Failed;
            *failures_since_summary += 1;
        }
    }

    /// Posts a beacon committee subscription for each duty `select`ed whose
    /// `is_aggregator` was not posted yet or turned true since (an undecided
    /// duty is posted with false). Duties are marked before the request, so
    /// concurrent rounds never post one twice, and unmarked if it fails.
    async fn subscribe_attestations(&self, select: impl Fn(&AttestationDuty) -> bool) {
        let items: Vec<(BeaconCommitteeSubscription, Option<bool>)> = {
            let mut state = self.lock();
            state
                .attestations
                .values_mut()
                .filter(|entry| select(&entry.duty))
                .filter_map(|entry| {
                    let is_aggregator = matches!(
                        entry.status,
                        Status::Decided {
                            is_aggregator: true,
                            ..
                        }
                    );
                    let due = match entry.subscribed {
                        None => true,
                        Some(posted) => !posted && is_aggregator,
                    };
                    if !due {
                        return None;
                    }
                    let before = entry.subscribed.replace(is_aggregator);
                    let item = BeaconCommitteeSubscription {
                        validator_index: entry.duty.validator_index,
                        committee_index: entry.duty.committee_index,
                        committees_at_slot: entry.duty.committees_at_slot,
                        slot: entry.duty.slot,
                        is_aggregator,
                    };
                    Some((item, before))
                })
                .collect()
        };
        for chunk in items.chunks(MAX_ITEMS_PER_REQUEST) {
            let subscriptions: Vec<BeaconCommitteeSubscription> =
                chunk.iter().map(|(item, _)| item.clone()).collect();
            let result = self
                .client
                .beacon_committee_subscriptions(&subscriptions)
                .await;
            let unposted = self.refused_positions(result, chunk.len(), |position, reason| {
                let item = &subscriptions[position];
                warn!(validator_index = item.validator_index, slot = item.slot, %reason, "the beacon node refused a beacon committee subscription");
            });
            let mut state = self.lock();
            for position in unposted {
                let (item, before) = &chunk[position];
                if let Some(entry) = state
                    .attestations
                    .get_mut(&(item.slot, item.validator_index))
                {
                    entry.subscribed = *before;
                }
            }
        }
    }

    /// The positions of a subscription request that were not accepted: those
    /// a 400 names (each passed to `refused` with the node's message), or all
    /// of them when the request failed otherwise (logged, posted again later).
    fn refused_positions(
        &self,
        result: Result<(), ClientError>,
        count: usize,
        refused: impl Fn(usize, &str),
    ) -> Vec<usize> {
        match result {
            Ok(()) => Vec::new(),
            Err(error) if error.status() == Some(400) && !error.failures().is_empty() => error
                .failures()
                .iter()
                .filter(|failure| failure.index < count)
                .map(|failure| {
                    refused(failure.index, &failure.message);
                    failure.index
                })
                .collect(),
            Err(error) => {
                warn!(%error, count, "cannot post subscriptions; trying again later");
                (0..count).collect()
            }
        }
    }

    /// Posts the sync committee subscription of every sync duty of `epoch`
    /// not yet posted for its period (marked first, as for beacon committees).
    async fn subscribe_sync(&self, epoch: Epoch) {
        let until_epoch = sync_until_epoch(epoch, self.preset());
        let items: Vec<SyncCommitteeSubscription> = {
            let mut state = self.lock();
            let State {
                sync_duties,
                sync_subscribed,
                ..
            } = &mut *state;
            let Some(duties) = sync_duties.get(&epoch) else {
                return;
            };
            duties
                .iter()
                .filter(|duty| sync_subscribed.insert((until_epoch, duty.validator_index)))
                .map(|duty| SyncCommitteeSubscription {
                    validator_index: duty.validator_index,
                    sync_committee_indices: duty.positions.clone(),
                    until_epoch,
                })
                .collect()
        };
        for chunk in items.chunks(MAX_ITEMS_PER_REQUEST) {
            let result = self.client.sync_committee_subscriptions(chunk).await;
            let unposted = self.refused_positions(result, chunk.len(), |position, reason| {
                warn!(validator_index = chunk[position].validator_index, until_epoch, %reason, "the beacon node refused a sync committee subscription");
            });
            let mut state = self.lock();
            for position in unposted {
                state
                    .sync_subscribed
                    .remove(&(until_epoch, chunk[position].validator_index));
            }
        }
    }

    /// Sync aggregator selection for every sync duty at `slot`, once per
    /// (validator, subcommittee). Each has one chance: the slot.
    async fn select_sync(&self, slot: Slot) {
        let candidates = self.sync_candidates(slot);
        if candidates.is_empty() {
            return;
        }
        let started = Instant::now();
        let jobs = candidates.iter().map(|c| (c.key, c.signing_root)).collect();
        let proofs = match self.sign(jobs).await {
            Ok(proofs) => proofs,
            Err(reason) => {
                warn!(%reason, "signing sync selection proofs failed");
                return;
            }
        };
        let results: Vec<(Result<Signature, String>, Duration)> = match self.strategy {
            SelectionStrategy::Local => {
                let latency = started.elapsed();
                proofs
                    .into_iter()
                    .map(|proof| (Ok(proof), latency))
                    .collect()
            }
            // The seed's is_aggregator has no sync form: both endpoints ask
            // sync_committee_selections.
            SelectionStrategy::Distributed { .. } => {
                self.ask_sync_committee_selections(&candidates, &proofs)
                    .await
            }
        };
        self.apply_sync_results(&candidates, results);
    }

    fn sync_candidates(&self, slot: Slot) -> Vec<SyncCandidate> {
        let epoch = self.epoch_of(slot);
        let state = self.lock();
        let Some(duties) = state.sync_duties.get(&epoch) else {
            return Vec::new();
        };
        let mut candidates = Vec::new();
        for duty in duties {
            let Some(&key) = state.key_of_index.get(&duty.validator_index) else {
                continue;
            };
            for &subcommittee_index in &duty.subcommittees {
                if state.sync_selections.contains_key(&(
                    slot,
                    duty.validator_index,
                    subcommittee_index,
                )) {
                    continue;
                }
                candidates.push(SyncCandidate {
                    validator_index: duty.validator_index,
                    slot,
                    subcommittee_index,
                    key,
                    signing_root: crate::spec::signing::sync_selection_proof_signing_root(
                        slot,
                        subcommittee_index,
                        &state.fork,
                        self.chain.genesis_validators_root,
                        self.preset(),
                    ),
                });
            }
        }
        candidates
    }

    async fn ask_sync_committee_selections(
        &self,
        candidates: &[SyncCandidate],
        proofs: &[Signature],
    ) -> Vec<(Result<Signature, String>, Duration)> {
        let client = &self.selections_client;
        let items: Vec<SyncCommitteeSelection> = candidates
            .iter()
            .zip(proofs)
            .map(|(c, proof)| SyncCommitteeSelection {
                validator_index: c.validator_index,
                slot: c.slot,
                subcommittee_index: c.subcommittee_index,
                selection_proof: SignatureBytes(proof.to_bytes()),
            })
            .collect();
        let asked: Vec<Asked<(ValidatorIndex, Slot, u64)>> = candidates
            .iter()
            .map(|c| Asked {
                key: (c.validator_index, c.slot, c.subcommittee_index),
                group_pubkey: self.keys[c.key].validator,
                signing_root: c.signing_root,
            })
            .collect();
        self.ask_selections(
            &items,
            &asked,
            "sync_committee_selections",
            |items| async move {
                client.sync_committee_selections(&items).await.map(|reply| {
                    reply
                        .into_iter()
                        .map(|r| {
                            (
                                (r.validator_index, r.slot, r.subcommittee_index),
                                r.selection_proof,
                            )
                        })
                        .collect()
                })
            },
        )
        .await
    }

    fn apply_sync_results(
        &self,
        candidates: &[SyncCandidate],
        results: Vec<(Result<Signature, String>, Duration)>,
    ) {
        let mut state = self.lock();
        for (candidate, (result, latency)) in candidates.iter().zip(results) {
            let key = (
                candidate.slot,
                candidate.validator_index,
                candidate.subcommittee_index,
            );
            if state.sync_selections.contains_key(&key) {
                continue;
            }
            let outcome = match result {
                Ok(proof) => {
                    state.sync_selections.insert(key, Some(proof));
                    Outcome::Decided {
                        is_aggregator: is_sync_committee_aggregator(
                            &proof.to_bytes(),
                            self.preset(),
                        ),
                        selection_proof: Some(proof),
                    }
                }
                Err(reason) => {
                    warn!(validator_index = candidate.validator_index, slot = candidate.slot, subcommittee_index = candidate.subcommittee_index, %reason, "sync aggregator selection failed");
                    state.sync_selections.insert(key, None);
                    state.failures_since_summary += 1;
                    Outcome::Failed { reason }
                }
            };
            self.decisions.push(SelectionDecision {
                epoch: self.epoch_of(candidate.slot),
                slot: candidate.slot,
                validator_index: candidate.validator_index,
                validator: self.keys[candidate.key].validator,
                duty: DecisionDuty::Sync {
                    subcommittee_index: candidate.subcommittee_index,
                },
                outcome,
                latency,
            });
        }
    }

    /// Drops what is older than [`EPOCHS_KEPT`] epochs before `slot`.
    fn prune(&self, slot: Slot) {
        let slots_per_epoch = self.preset().SLOTS_PER_EPOCH.max(1);
        let horizon = slot.saturating_sub(EPOCHS_KEPT.saturating_mul(slots_per_epoch));
        let epoch = self.epoch_of(slot);
        let mut state = self.lock();
        state.attestations = state.attestations.split_off(&(horizon, 0));
        state.sync_selections = state.sync_selections.split_off(&(horizon, 0, 0));
        let first_epoch = self.epoch_of(horizon);
        state.sync_duties = state.sync_duties.split_off(&first_epoch);
        state.sync_subscribed = state
            .sync_subscribed
            .split_off(&(epoch.saturating_add(1), 0));
    }

    fn summarize(&self, epoch: Epoch) -> EpochSummary {
        let slots_per_epoch = self.preset().SLOTS_PER_EPOCH.max(1);
        let first = epoch.saturating_mul(slots_per_epoch);
        let end = first.saturating_add(slots_per_epoch);
        let next_end = end.saturating_add(slots_per_epoch);
        let mut state = self.lock();
        let mut summary = EpochSummary {
            epoch,
            next_epoch_duties: state.attestations.range((end, 0)..(next_end, 0)).count(),
            sync_duties: state.sync_duties.get(&epoch).map_or(0, Vec::len),
            failures: std::mem::take(&mut state.failures_since_summary),
            ..EpochSummary::default()
        };
        for entry in state
            .attestations
            .range((first, 0)..(end, 0))
            .map(|(_, e)| e)
        {
            summary.attestation_duties += 1;
            match entry.status {
                Status::Decided {
                    is_aggregator: true,
                    ..
                } => summary.aggregators += 1,
                Status::Pending { .. } => summary.undecided += 1,
                Status::Decided { .. } | Status::Failed => {}
            }
        }
        info!(
            epoch,
            duties = summary.attestation_duties,
            aggregators = summary.aggregators,
            undecided = summary.undecided,
            failures = summary.failures,
            next_epoch_duties = summary.next_epoch_duties,
            sync_duties = summary.sync_duties,
            "epoch started: attestation duties and aggregators"
        );
        summary
    }
}

/// The wall-clock loop: at every slot start, the slot's work (and at an epoch's
/// first slot, or the first slot seen, the epoch's), each in its own task so a
/// slow request never delays the next slot. Aborting the loop aborts them.
async fn run_clock(vc: Arc<Vc>) {
    let mut tasks = JoinSet::new();
    let mut epoch_done: Option<Epoch> = None;
    loop {
        let now = unix_now();
        let Some(slot) = vc.clock.slot_at(now) else {
            tokio::time::sleep(vc.clock.until_slot(0, now)).await;
            continue;
        };
        let epoch = vc.epoch_of(slot);
        let epoch_start = epoch_done != Some(epoch);
        epoch_done = Some(epoch);
        let worker = Arc::clone(&vc);
        tasks.spawn(async move { worker.on_slot(slot, epoch_start).await });
        while tasks.try_join_next().is_some() {}
        tokio::time::sleep(vc.clock.until_slot(slot.saturating_add(1), unix_now())).await;
    }
}

/// Runs CPU-bound work (signing, verification) off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| format!("worker task failed: {error}"))
}
