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
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::join;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{info, Instrument};

use super::aggregate::AggregateLog;
use super::attest::AttestationLog;
use super::attestation::Round;
use super::decision::{DecisionLog, SelectionDecision, DEFAULT_DECISION_LOG_CAPACITY};
use super::duties::{AttestationDuty, SyncCommitteeDuty};
use super::events::follow_head;
use super::keys::{check_unique, group_keys, KeysError, ValidatorKey};
use super::selection::{SelectionEndpoint, SelectionStrategy};
use super::slashing::{SlashingDatabase, SlashingError};
use crate::api::client::ClientConfig;
use crate::api::types::PublicKeyBytes;
use crate::api::{BeaconNodeClient, ChainInfo, ChainInfoError, ClientError};
use crate::cluster::ClusterLock;
use crate::crypto::{PublicKey, Signature};
use crate::spec::signing::compute_epoch_at_slot;
use crate::spec::time::{unix_now, SlotClock, SlotClockError};
use crate::spec::{Epoch, Fork, Preset, Root, Slot, ValidatorIndex};

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
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The slashing-protection database could not be opened or is for
    /// another network.
    #[error("slashing protection: {0}")]
    SlashingProtection(#[from] SlashingError),
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
    /// The client's data directory (created if missing). At start the
    /// slashing-protection database in it
    /// ([`SLASHING_PROTECTION_FILENAME`](super::slashing::SLASHING_PROTECTION_FILENAME))
    /// is opened or created for the beacon node's network, and every key's
    /// own public key (the key share in distributed mode: what this client
    /// signs with) is registered; [`Vc::slashing_protection`] gives it.
    /// `None`: no database, which suits a client that signs only selection
    /// proofs (they cannot be slashed), as this one does today.
    pub data_dir: Option<PathBuf>,
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
            data_dir: None,
        }
    }

    /// Sets the data directory (see [`VcConfig::data_dir`]).
    pub fn with_data_dir(mut self, data_dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(data_dir.into());
        self
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

/// Opens or creates the slashing-protection database of `data_dir` for the
/// network `genesis_validators_root` and registers `keys`. It blocks (SQLite,
/// one fsync) once, at start.
fn open_slashing_protection(
    data_dir: &Path,
    genesis_validators_root: Root,
    keys: &[ValidatorKey],
) -> Result<SlashingDatabase, VcError> {
    std::fs::create_dir_all(data_dir).map_err(|source| VcError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let database = SlashingDatabase::open_or_create(&SlashingDatabase::path_in(data_dir))?;
    database.ensure_genesis_validators_root(genesis_validators_root, "the beacon node")?;
    let pubkeys: Vec<PublicKeyBytes> = keys
        .iter()
        .map(|key| PublicKeyBytes(key.pubkey().to_bytes()))
        .collect();
    database.register_validators(&pubkeys)?;
    Ok(database)
}

impl Drop for VcHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// One key and the validator it signs for.
pub(super) struct KeyEntry {
    pub(super) key: ValidatorKey,
    /// The group key in a distributed validator, else the key's own.
    pub(super) validator: PublicKey,
}

/// The validator client: keys, beacon node, chain and what it learnt of its
/// duties. Its methods may run concurrently; state is locked only briefly.
pub struct Vc {
    pub(super) name: String,
    pub(super) client: BeaconNodeClient,
    pub(super) selections_client: BeaconNodeClient,
    pub(super) strategy: SelectionStrategy,
    pub(super) chain: ChainInfo,
    pub(super) clock: SlotClock,
    pub(super) keys: Arc<[KeyEntry]>,
    /// Own and group public keys to key positions (a middleware may answer
    /// with either).
    pub(super) key_by_pubkey: HashMap<[u8; 48], usize>,
    pub(super) state: Mutex<State>,
    pub(super) decisions: DecisionLog,
    pub(super) slashing_protection: Option<SlashingDatabase>,
    pub(super) attestations: AttestationLog,
    pub(super) aggregates: AggregateLog,
}

/// What the client learnt and decided, behind one lock that is never held
/// across an await.
#[derive(Default)]
pub(super) struct State {
    pub(super) fork: Fork,
    pub(super) index_of_key: Vec<Option<ValidatorIndex>>,
    pub(super) key_of_index: HashMap<ValidatorIndex, usize>,
    pub(super) unknown_keys_reported: Option<usize>,
    pub(super) attestations: BTreeMap<(Slot, ValidatorIndex), AttestationEntry>,
    pub(super) sync_duties: BTreeMap<Epoch, Vec<SyncCommitteeDuty>>,
    /// Every sync selection done, with the proof kept when there is one.
    pub(super) sync_selections: BTreeMap<(Slot, ValidatorIndex, u64), Option<Signature>>,
    pub(super) sync_subscribed: BTreeSet<(Epoch, ValidatorIndex)>,
    pub(super) failures_since_summary: usize,
}

/// One attestation duty and how far its aggregator selection got.
pub(super) struct AttestationEntry {
    pub(super) duty: AttestationDuty,
    pub(super) key: usize,
    /// The client's own selection proof (partial in distributed mode) and the
    /// signing root it signs: signed once, reused while the root (the head
    /// fork) stays the same.
    pub(super) own_proof: Option<(Root, Signature)>,
    pub(super) status: Status,
    /// The `is_aggregator` last posted in a subscription.
    pub(super) subscribed: Option<bool>,
    /// The attester duty was taken up (once per duty).
    pub(super) attest_claimed: bool,
    /// The `hash_tree_root` of the data attested, once published: what the
    /// aggregate must be for.
    pub(super) attested_data_root: Option<Root>,
    /// The aggregation duty was taken up (once per duty).
    pub(super) aggregate_claimed: bool,
}

/// Where an attestation duty's selection stands.
pub(super) enum Status {
    /// No usable answer yet; asked again until its slot.
    Pending {
        /// Why the last attempt gave none.
        last_failure: Option<String>,
    },
    /// Decided (and recorded).
    Decided {
        is_aggregator: bool,
        selection_proof: Option<Signature>,
    },
    /// No usable answer by its slot (and recorded).
    Failed,
}

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
        let slashing_protection = match &config.data_dir {
            Some(data_dir) => Some(open_slashing_protection(
                data_dir,
                chain.genesis_validators_root,
                &config.keys,
            )?),
            None => None,
        };
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
            slashing_protection,
            attestations: AttestationLog::default(),
            aggregates: AggregateLog::default(),
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

    /// The slashing-protection database of [`VcConfig::data_dir`], every key
    /// registered, bound to the chain's `genesis_validators_root`. Every
    /// block and attestation signature must pass it first.
    pub fn slashing_protection(&self) -> Option<&SlashingDatabase> {
        self.slashing_protection.as_ref()
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

    /// Signs `roots` with the keys at the given positions, off the async workers.
    pub(super) async fn sign(&self, jobs: Vec<(usize, Root)>) -> Result<Vec<Signature>, String> {
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

    pub(super) fn preset(&self) -> &Preset {
        &self.chain.spec.preset
    }

    pub(super) fn epoch_of(&self, slot: Slot) -> Epoch {
        compute_epoch_at_slot(slot, self.preset())
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
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
/// first slot, or the first slot seen, the epoch's); at a third of the slot
/// or when the slot's head arrives, whichever is first, the attestations;
/// at two thirds, the aggregates. Each in its own task so a slow request
/// never delays the next slot. Aborting the loop aborts them.
async fn run_clock(vc: Arc<Vc>) {
    let mut tasks = JoinSet::new();
    let (heads, head) = watch::channel(0);
    tasks.spawn(follow_head(
        vc.client.base_url().to_string(),
        vc.clock.slot_duration(),
        heads,
    ));
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
        let worker = Arc::clone(&vc);
        let mut head = head.clone();
        tasks.spawn(async move {
            let third = worker.clock.slot_fraction(slot, 1, 3);
            tokio::select! {
                _ = tokio::time::sleep(third.saturating_sub(unix_now())) => {}
                _ = head.wait_for(|head| *head >= slot) => {}
            }
            worker.run_attestations(slot).await;
            let two_thirds = worker.clock.slot_fraction(slot, 2, 3);
            tokio::time::sleep(two_thirds.saturating_sub(unix_now())).await;
            worker.run_aggregations(slot).await;
        });
        while tasks.try_join_next().is_some() {}
        tokio::time::sleep(vc.clock.until_slot(slot.saturating_add(1), unix_now())).await;
    }
}

/// Runs CPU-bound work (signing, verification) off the async workers.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| format!("worker task failed: {error}"))
}
