//! The partial-signature store of a middleware node: verifies each partial
//! signature (selection proof, attestation, `AggregateAndProof`) against its
//! public key share before keeping it, rejects conflicting partials,
//! combines a duty once `t` partials over the same signing root are in, and
//! wakes whoever waits for that duty and tells the listeners
//! ([`PartialStore::subscribe_combined`]), which publish what must be.
//!
//! The store owns no clock and no network: the caller tells it the current
//! slot ([`PartialStore::set_current_slot`]) and bounds each wait itself
//! (`tokio::time::timeout` around [`PartialStore::wait_combined`]). Each duty
//! has its own wake-up channel, so a waiter never waits for another duty.
//!
//! Crypto runs outside the store's lock, so other duties keep being served
//! meanwhile. A batch of partials ([`PartialStore::insert_batch`]) is verified
//! in one multi-pairing grouped by signing root, and the duties it completes
//! are combined (Lagrange interpolation) and their proofs verified against
//! the group keys in one more; item by item only when a batch fails, to name
//! the culprit. Partials are kept per share index; those over different
//! signing roots never mix, so a peer signing a wrong root cannot block the
//! honest partials of a duty.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::duty::{DutyKey, Partial, Source};
use super::listeners::Listeners;
use crate::cluster::ClusterLock;
use crate::crypto::batch::{find_invalid, verify_signature_sets, SignatureSet};
use crate::crypto::threshold::{combine_and_verify, combine_signatures, ThresholdError};
use crate::crypto::{PublicKey, Signature};
use crate::spec::{Root, Slot};

/// Why the store refused a partial, a wait or a combination; every variant
/// names the duty (validator and slot) and, for a partial, its share index
/// and sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The validator is not in the cluster lock.
    #[error("validator {validator} is not in the cluster lock")]
    UnknownValidator {
        /// The group public key that was asked for.
        validator: PublicKey,
    },
    /// The sender is not an operator of the cluster lock.
    #[error("operator {operator} is not in the cluster lock")]
    UnknownOperator {
        /// The operator index the partial came with.
        operator: u64,
    },
    /// The share index has no public key share for this validator.
    #[error("share index {share_index} from {sender} is not a share of the {key}")]
    UnknownShare {
        /// The duty.
        key: Box<DutyKey>,
        /// The unknown share index.
        share_index: u64,
        /// Who sent it.
        sender: Source,
    },
    /// The partial does not verify against its share's public key.
    #[error(
        "partial of share index {share_index} from {sender} for the {key} does not verify against that share's public key"
    )]
    InvalidPartial {
        /// The duty.
        key: Box<DutyKey>,
        /// The share index the partial claims.
        share_index: u64,
        /// Who sent it.
        sender: Source,
    },
    /// A different partial of the same share index is already stored for this
    /// duty; the stored one is kept.
    #[error(
        "partial of share index {share_index} from {sender} for the {key} conflicts with the stored one ({}); kept the stored one",
        conflict_detail(stored_root, received_root)
    )]
    Conflict {
        /// The duty.
        key: Box<DutyKey>,
        /// The share index both partials claim.
        share_index: u64,
        /// Who sent the conflicting partial.
        sender: Source,
        /// The signing root of the stored partial.
        stored_root: Root,
        /// The signing root of the refused partial (equal when only the signatures differ).
        received_root: Root,
    },
    /// The duty's slot lies too far after the current slot.
    #[error(
        "the {key} is more than {max_slots_ahead} slots ahead of the current slot {current_slot}"
    )]
    TooFarAhead {
        /// The duty.
        key: Box<DutyKey>,
        /// The store's current slot.
        current_slot: Slot,
        /// The configured bound.
        max_slots_ahead: u64,
    },
    /// The duty's slot lies too far before the current slot.
    #[error(
        "the {key} is more than {max_slots_behind} slots behind the current slot {current_slot}"
    )]
    TooOld {
        /// The duty.
        key: Box<DutyKey>,
        /// The store's current slot.
        current_slot: Slot,
        /// The configured bound.
        max_slots_behind: u64,
    },
    /// The store holds its maximum number of duties.
    #[error("the store already holds its maximum of {max_duties} duties; refused the {key}")]
    Full {
        /// The refused duty.
        key: Box<DutyKey>,
        /// The configured bound.
        max_duties: usize,
    },
    /// Combining verified partials failed, which means the lock's public
    /// shares do not belong to the validator's group key.
    #[error("combining the partials of the {key} failed: {source}")]
    Combine {
        /// The duty.
        key: Box<DutyKey>,
        /// What the threshold combination reported.
        source: Box<ThresholdError>,
    },
}

/// What differs between two partials of one share for one duty.
fn conflict_detail(stored_root: &Root, received_root: &Root) -> String {
    if stored_root == received_root {
        format!("another signature over the same signing root {stored_root}")
    } else {
        format!("it signs root {received_root}, the stored one {stored_root}")
    }
}

impl StoreError {
    /// Whether the sender of the partial is to blame (counted as a rejected
    /// partial of that sender), as opposed to the store's own bounds or lock.
    pub fn blames_sender(&self) -> bool {
        !matches!(self, StoreError::Full { .. } | StoreError::Combine { .. })
    }
}

/// What [`PartialStore::insert`] did with a valid partial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored; `have` partials over its signing root are in, `need` are needed.
    Stored {
        /// Partials over this partial's signing root, this one included.
        have: usize,
        /// The threshold t.
        need: u64,
    },
    /// Already stored, or the duty was already combined (the partial is kept
    /// for re-sending but not combined again).
    Duplicate,
    /// This partial completed the threshold: the combined selection proof,
    /// verified against the validator's group key.
    Combined(Signature),
}

/// A duty the store combined: the signature over `signing_root` verified
/// against the validator's group key. Attestation and aggregation duties
/// are published to the beacon node from these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CombinedDuty {
    /// The duty.
    pub key: DutyKey,
    /// The root the partials (and so the combined signature) sign.
    pub signing_root: Root,
    /// The combined signature.
    pub signature: Signature,
}

/// Bounds on what the store accepts and holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Duties more than this many slots after the current slot are refused.
    pub max_slots_ahead: u64,
    /// Duties more than this many slots before the current slot are refused (and pruned).
    pub max_slots_behind: u64,
    /// The most duties held at once.
    pub max_duties: usize,
}

impl StoreLimits {
    /// The default bound on duties held: 64 validators' attestation and sync
    /// selections over five epochs of 32 slots, or many more validators'
    /// attestation selections alone.
    pub const DEFAULT_MAX_DUTIES: usize = 65_536;

    /// Two epochs either side of the current slot (a VC asks for the next
    /// epoch's selections at the start of the current one) and
    /// [`Self::DEFAULT_MAX_DUTIES`].
    pub fn for_slots_per_epoch(slots_per_epoch: u64) -> Self {
        let two_epochs = slots_per_epoch.saturating_mul(2);
        Self {
            max_slots_ahead: two_epochs,
            max_slots_behind: two_epochs,
            max_duties: Self::DEFAULT_MAX_DUTIES,
        }
    }
}

/// Where the store reads the time of a partial's arrival, for the combine latency.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// [`Clock`] over `std::time::Instant::now`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Summary of the time from a duty's first stored partial to its combination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencyStats {
    /// Combinations measured.
    pub count: u64,
    /// Sum of their latencies.
    pub total: Duration,
    /// The largest latency seen.
    pub max: Duration,
}

impl LatencyStats {
    fn record(&mut self, latency: Duration) {
        self.count = self.count.saturating_add(1);
        self.total = self.total.saturating_add(latency);
        self.max = self.max.max(latency);
    }
}

/// Counters for the middleware's `/metrics`, as a snapshot ([`PartialStore::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Partials handed to [`PartialStore::insert`], by sender.
    pub received: BTreeMap<Source, u64>,
    /// Partials refused for the sender's fault ([`StoreError::blames_sender`]),
    /// by sender; an unknown operator is refused without being counted.
    pub rejected: BTreeMap<Source, u64>,
    /// Duties combined.
    pub combined: u64,
    /// Combinations that failed ([`StoreError::Combine`]).
    pub combine_failures: u64,
    /// Time from a duty's first stored partial to its combination.
    pub combine_latency: LatencyStats,
    /// Duties held when the snapshot was taken.
    pub duties: usize,
}

/// The state of one duty.
struct DutyEntry {
    /// One partial per share index, with the root it signs.
    partials: BTreeMap<u64, (Root, Signature)>,
    first_partial_at: Option<Instant>,
    /// A combination of this duty runs outside the lock.
    combining: bool,
    combined: watch::Sender<Option<Signature>>,
}

impl DutyEntry {
    fn new() -> Self {
        Self {
            partials: BTreeMap::new(),
            first_partial_at: None,
            combining: false,
            combined: watch::Sender::new(None),
        }
    }

    fn combined(&self) -> Option<Signature> {
        *self.combined.borrow()
    }

    /// `Some(Duplicate)` for a partial already stored, an error for one that
    /// conflicts with the stored partial of its share, `None` for a new share.
    fn existing(
        &self,
        key: &DutyKey,
        partial: &Partial,
        sender: Source,
    ) -> Result<Option<InsertOutcome>, StoreError> {
        match self.partials.get(&partial.share_index) {
            None => Ok(None),
            Some((root, signature))
                if *root == partial.signing_root && *signature == partial.signature =>
            {
                Ok(Some(InsertOutcome::Duplicate))
            }
            Some((root, _)) => Err(StoreError::Conflict {
                key: Box::new(*key),
                share_index: partial.share_index,
                sender,
                stored_root: *root,
                received_root: partial.signing_root,
            }),
        }
    }

    /// Every stored partial, by share index.
    fn stored_partials(&self) -> impl Iterator<Item = Partial> + '_ {
        self.partials
            .iter()
            .map(|(share_index, (signing_root, signature))| Partial {
                share_index: *share_index,
                signing_root: *signing_root,
                signature: *signature,
            })
    }

    /// The stored partials over `root`.
    fn partials_over(&self, root: &Root) -> Vec<(u64, Signature)> {
        self.partials
            .iter()
            .filter(|(_, (signed, _))| signed == root)
            .map(|(index, (_, signature))| (*index, *signature))
            .collect()
    }
}

/// A duty whose partials over one signing root reached the threshold.
struct ReadyDuty {
    /// Position, in the batch, of the partial that completed it.
    position: usize,
    key: DutyKey,
    signing_root: Root,
    partials: Vec<(u64, Signature)>,
}

struct Inner {
    duties: HashMap<DutyKey, DutyEntry>,
    current_slot: Slot,
    limits: StoreLimits,
    stats: StoreStats,
}

impl Inner {
    fn check_window(&self, key: &DutyKey) -> Result<(), StoreError> {
        let limits = &self.limits;
        let current_slot = self.current_slot;
        if key.slot > current_slot.saturating_add(limits.max_slots_ahead) {
            return Err(StoreError::TooFarAhead {
                key: Box::new(*key),
                current_slot,
                max_slots_ahead: limits.max_slots_ahead,
            });
        }
        if key.slot < current_slot.saturating_sub(limits.max_slots_behind) {
            return Err(StoreError::TooOld {
                key: Box::new(*key),
                current_slot,
                max_slots_behind: limits.max_slots_behind,
            });
        }
        Ok(())
    }

    /// What [`Inner::admit`] and [`DutyEntry::existing`] would say, without
    /// creating the duty: a partial that then fails verification leaves no
    /// empty duty behind to fill the store.
    fn precheck(
        &self,
        key: &DutyKey,
        partial: &Partial,
        sender: Source,
    ) -> Result<Option<InsertOutcome>, StoreError> {
        self.check_window(key)?;
        match self.duties.get(key) {
            Some(entry) => entry.existing(key, partial, sender),
            None if self.duties.len() >= self.limits.max_duties => Err(StoreError::Full {
                key: Box::new(*key),
                max_duties: self.limits.max_duties,
            }),
            None => Ok(None),
        }
    }

    /// The duty's entry, created if the window and the capacity allow.
    fn admit(&mut self, key: &DutyKey) -> Result<&mut DutyEntry, StoreError> {
        self.check_window(key)?;
        let max_duties = self.limits.max_duties;
        if !self.duties.contains_key(key) && self.duties.len() >= max_duties {
            return Err(StoreError::Full {
                key: Box::new(*key),
                max_duties,
            });
        }
        Ok(self.duties.entry(*key).or_insert_with(DutyEntry::new))
    }
}

/// The partial selection proofs of a cluster's duties and their combinations;
/// `Send + Sync`, shared behind an `Arc` by the VC-facing routes and the peer
/// exchange.
pub struct PartialStore {
    /// Public key share by share index, by validator group key.
    pubshares: HashMap<PublicKey, HashMap<u64, PublicKey>>,
    /// Operator indices of the lock: the only peers partials come from, which
    /// also bounds the per-sender counters.
    operators: BTreeSet<u64>,
    threshold: u64,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
    /// Who hears of every combination ([`PartialStore::subscribe_combined`]).
    listeners: Listeners<Vec<CombinedDuty>>,
}

impl PartialStore {
    /// A store for the validators of `lock` (its public shares and threshold),
    /// accepting duties around `current_slot`, timed by the system clock.
    pub fn new(lock: &ClusterLock, limits: StoreLimits, current_slot: Slot) -> Self {
        Self::with_clock(lock, limits, current_slot, Arc::new(SystemClock))
    }

    /// As [`Self::new`], with the clock that times the combine latency.
    pub fn with_clock(
        lock: &ClusterLock,
        limits: StoreLimits,
        current_slot: Slot,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let pubshares = lock
            .validators
            .iter()
            .map(|validator| {
                let shares = validator
                    .public_shares
                    .iter()
                    .map(|(index, key)| (*index, *key))
                    .collect();
                (validator.pubkey, shares)
            })
            .collect();
        Self {
            pubshares,
            operators: lock
                .operators
                .iter()
                .map(|operator| operator.index)
                .collect(),
            threshold: lock.threshold,
            clock,
            inner: Mutex::new(Inner {
                duties: HashMap::new(),
                current_slot,
                limits,
                stats: StoreStats::default(),
            }),
            listeners: Listeners::new(),
        }
    }

    /// Every later combination, one message per batch that combined
    /// something (whether the batch came from this node's VC or a peer).
    pub fn subscribe_combined(&self) -> mpsc::UnboundedReceiver<Vec<CombinedDuty>> {
        self.listeners.subscribe()
    }

    fn announce_combined(&self, combined: Vec<CombinedDuty>) {
        if combined.is_empty() {
            return;
        }
        self.listeners.send(combined);
    }

    /// The threshold t.
    pub fn threshold(&self) -> u64 {
        self.threshold
    }

    /// The bounds the store enforces.
    pub fn limits(&self) -> StoreLimits {
        self.lock().limits
    }

    /// Replaces the bounds (a middleware learns `SLOTS_PER_EPOCH` from its
    /// beacon node after the store exists); duties already held stay until
    /// the next [`Self::set_current_slot`] prunes them.
    pub fn set_limits(&self, limits: StoreLimits) {
        self.lock().limits = limits;
    }

    /// Verifies `partial` against its share's public key and stores it for
    /// `key`; combines the duty when this partial completes the threshold.
    ///
    /// Runs up to two BLS verifications (the partial, then the combination
    /// against the group key) on the calling thread; async callers should use
    /// `spawn_blocking`, and callers with many partials [`Self::insert_batch`].
    pub fn insert(
        &self,
        key: &DutyKey,
        partial: Partial,
        sender: Source,
    ) -> Result<InsertOutcome, StoreError> {
        let mut outcomes = self.insert_batch(&[(*key, partial)], sender);
        // insert_batch answers one outcome per item.
        outcomes.pop().unwrap_or(Err(StoreError::UnknownValidator {
            validator: key.validator,
        }))
    }

    /// [`Self::insert`] for many partials of one sender: one outcome per
    /// item, in order. The partials are verified in one batch (grouped by
    /// signing root, so the partials of one slot cost about one
    /// verification), and the duties they complete are combined and their
    /// combined signatures verified against the group keys in one batch too.
    /// Only a batch that fails is checked item by item, to name the culprits.
    pub fn insert_batch(
        &self,
        items: &[(DutyKey, Partial)],
        sender: Source,
    ) -> Vec<Result<InsertOutcome, StoreError>> {
        self.insert_batch_announcing(items, sender, |_| {})
    }

    /// [`Self::insert_batch`], calling `announce` with the positions of the
    /// partials that were verified and newly stored, before the duties they
    /// complete are combined: a node forwards its VC's partials to its peers
    /// there, so that the peers' work overlaps its own combination.
    pub fn insert_batch_announcing(
        &self,
        items: &[(DutyKey, Partial)],
        sender: Source,
        announce: impl FnOnce(Vec<usize>),
    ) -> Vec<Result<InsertOutcome, StoreError>> {
        let outcomes = self.verify_and_store(items, sender, announce);
        let mut inner = self.lock();
        let stats = &mut inner.stats;
        for outcome in &outcomes {
            if matches!(outcome, Err(StoreError::UnknownOperator { .. })) {
                continue;
            }
            count(&mut stats.received, sender);
            if outcome.as_ref().is_err_and(StoreError::blames_sender) {
                count(&mut stats.rejected, sender);
            }
        }
        outcomes
    }

    fn verify_and_store(
        &self,
        items: &[(DutyKey, Partial)],
        sender: Source,
        announce: impl FnOnce(Vec<usize>),
    ) -> Vec<Result<InsertOutcome, StoreError>> {
        if let Source::Peer(operator) = sender {
            if !self.operators.contains(&operator) {
                let unknown = StoreError::UnknownOperator { operator };
                return items.iter().map(|_| Err(unknown.clone())).collect();
            }
        }
        // `None` until decided; cheap refusals first: a duplicate or a
        // conflict needs no pairing.
        let mut outcomes: Vec<Option<Result<InsertOutcome, StoreError>>> =
            items.iter().map(|_| None).collect();
        let mut to_verify = Vec::new();
        {
            let inner = self.lock();
            for (position, (key, partial)) in items.iter().enumerate() {
                let checked =
                    self.pubshare(key, partial.share_index, sender)
                        .and_then(|pubshare| {
                            inner
                                .precheck(key, partial, sender)
                                .map(|decided| (pubshare, decided))
                        });
                match checked {
                    Ok((_, Some(decided))) => outcomes[position] = Some(Ok(decided)),
                    Ok((pubshare, None)) => to_verify.push((position, pubshare)),
                    Err(error) => outcomes[position] = Some(Err(error)),
                }
            }
        }
        for position in self.invalid_partials(items, &to_verify) {
            let (key, partial) = &items[position];
            outcomes[position] = Some(Err(StoreError::InvalidPartial {
                key: Box::new(*key),
                share_index: partial.share_index,
                sender,
            }));
        }
        let ready = self.store_verified(items, sender, &mut outcomes);
        let mut stored: Vec<usize> = ready.iter().map(|duty| duty.position).collect();
        stored.extend(
            outcomes
                .iter()
                .enumerate()
                .filter_map(|(position, outcome)| {
                    matches!(outcome, Some(Ok(InsertOutcome::Stored { .. }))).then_some(position)
                }),
        );
        stored.sort_unstable();
        announce(stored);
        for (position, result) in self.combine(&ready) {
            outcomes[position] = Some(result);
        }
        outcomes
            .into_iter()
            .zip(items)
            .map(|(outcome, (key, _))| {
                // Every position is decided above; this is unreachable.
                outcome.unwrap_or(Err(StoreError::UnknownValidator {
                    validator: key.validator,
                }))
            })
            .collect()
    }

    /// The positions among `to_verify` whose partial does not verify against
    /// its public share.
    fn invalid_partials(
        &self,
        items: &[(DutyKey, Partial)],
        to_verify: &[(usize, &PublicKey)],
    ) -> Vec<usize> {
        let sets: Vec<SignatureSet> = to_verify
            .iter()
            .map(|(position, pubshare)| {
                let partial = &items[*position].1;
                SignatureSet {
                    pubkey: pubshare,
                    message: partial.signing_root.0,
                    signature: &partial.signature,
                }
            })
            .collect();
        if verify_signature_sets(&sets) {
            return Vec::new();
        }
        find_invalid(&sets)
            .into_iter()
            .filter_map(|index| to_verify.get(index).map(|(position, _)| *position))
            .collect()
    }

    /// Stores every verified partial still undecided in `outcomes` and
    /// returns the duties that reached the threshold, with the position of
    /// the partial that completed each.
    fn store_verified(
        &self,
        items: &[(DutyKey, Partial)],
        sender: Source,
        outcomes: &mut [Option<Result<InsertOutcome, StoreError>>],
    ) -> Vec<ReadyDuty> {
        let arrived = self.clock.now();
        let mut ready = Vec::new();
        let mut inner = self.lock();
        for (position, (key, partial)) in items.iter().enumerate() {
            if outcomes[position].is_some() {
                continue;
            }
            // The lock was released for the verification: look again.
            let stored = inner.admit(key).and_then(|entry| {
                if let Some(outcome) = entry.existing(key, partial, sender)? {
                    return Ok(Err(outcome));
                }
                entry.partials.insert(
                    partial.share_index,
                    (partial.signing_root, partial.signature),
                );
                entry.first_partial_at.get_or_insert(arrived);
                if entry.combined().is_some() {
                    return Ok(Err(InsertOutcome::Duplicate));
                }
                let partials = entry.partials_over(&partial.signing_root);
                let have = partials.len();
                if entry.combining || (have as u64) < self.threshold {
                    return Ok(Err(InsertOutcome::Stored {
                        have,
                        need: self.threshold,
                    }));
                }
                entry.combining = true;
                Ok(Ok(partials))
            });
            match stored {
                Ok(Ok(partials)) => ready.push(ReadyDuty {
                    position,
                    key: *key,
                    signing_root: partial.signing_root,
                    partials,
                }),
                Ok(Err(outcome)) => outcomes[position] = Some(Ok(outcome)),
                Err(error) => outcomes[position] = Some(Err(error)),
            }
        }
        ready
    }

    /// Combines the ready duties outside the lock, verifies every combined
    /// signature against its group key in one batch (one by one, with the
    /// partials, only if the batch fails) and publishes the results.
    fn combine(&self, ready: &[ReadyDuty]) -> Vec<(usize, Result<InsertOutcome, StoreError>)> {
        let combined: Vec<Result<Signature, ThresholdError>> = ready
            .iter()
            .map(|duty| combine_signatures(&duty.partials, self.threshold))
            .collect();
        let sets: Vec<SignatureSet> = ready
            .iter()
            .zip(&combined)
            .filter_map(|(duty, signature)| {
                signature.as_ref().ok().map(|signature| SignatureSet {
                    pubkey: &duty.key.validator,
                    message: duty.signing_root.0,
                    signature,
                })
            })
            .collect();
        let all_verified = combined.iter().all(Result::is_ok) && verify_signature_sets(&sets);
        let results: Vec<Result<Signature, StoreError>> = ready
            .iter()
            .zip(combined)
            .map(|(duty, signature)| match signature {
                Ok(signature) if all_verified => Ok(signature),
                // Every partial was verified on arrival, so this path means
                // the lock's public shares disagree with the group key: let
                // the full check say which.
                _ => self.combine_one(duty),
            })
            .collect();
        self.publish(ready, results)
    }

    /// Combines one duty with the full check of [`combine_and_verify`].
    fn combine_one(&self, duty: &ReadyDuty) -> Result<Signature, StoreError> {
        let pubshares = self.known_validator(&duty.key.validator)?;
        combine_and_verify(
            &duty.key.validator,
            duty.signing_root.as_slice(),
            &duty.partials,
            pubshares,
            self.threshold,
        )
        .map_err(|source| StoreError::Combine {
            key: Box::new(duty.key),
            source: Box::new(source),
        })
    }

    /// Wakes the waiters of every combined duty and counts the outcomes.
    fn publish(
        &self,
        ready: &[ReadyDuty],
        results: Vec<Result<Signature, StoreError>>,
    ) -> Vec<(usize, Result<InsertOutcome, StoreError>)> {
        let finished = self.clock.now();
        let mut combined = Vec::new();
        let mut inner = self.lock();
        let mut published = Vec::with_capacity(ready.len());
        for (duty, result) in ready.iter().zip(results) {
            let mut latency = None;
            if let Some(entry) = inner.duties.get_mut(&duty.key) {
                entry.combining = false;
                if let Ok(signature) = &result {
                    entry.combined.send_replace(Some(*signature));
                    combined.push(CombinedDuty {
                        key: duty.key,
                        signing_root: duty.signing_root,
                        signature: *signature,
                    });
                    latency = entry
                        .first_partial_at
                        .map(|first| finished.saturating_duration_since(first));
                }
            }
            let stats = &mut inner.stats;
            match &result {
                Ok(_) => {
                    stats.combined = stats.combined.saturating_add(1);
                    if let Some(latency) = latency {
                        stats.combine_latency.record(latency);
                    }
                }
                Err(_) => stats.combine_failures = stats.combine_failures.saturating_add(1),
            }
            published.push((duty.position, result.map(InsertOutcome::Combined)));
        }
        drop(inner);
        self.announce_combined(combined);
        published
    }

    /// Waits for the duty's combined selection proof. The duty is registered
    /// now (refused like a partial when its validator is unknown, its slot out
    /// of the window or the store full), so the wait sees a combination that
    /// happens at any later time. If the duty is pruned first, the future
    /// never completes: bound it with `tokio::time::timeout`.
    pub fn wait_combined(
        &self,
        key: &DutyKey,
    ) -> Result<impl Future<Output = Signature> + Send + 'static, StoreError> {
        self.known_validator(&key.validator)?;
        let mut inner = self.lock();
        let mut receiver = inner.admit(key)?.combined.subscribe();
        drop(inner);
        Ok(async move {
            let combined = receiver
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|value| *value);
            match combined {
                Some(signature) => signature,
                None => std::future::pending().await,
            }
        })
    }

    /// The duty's combined selection proof, if it reached the threshold.
    pub fn combined(&self, key: &DutyKey) -> Option<Signature> {
        self.lock().duties.get(key).and_then(DutyEntry::combined)
    }

    /// Every verified partial stored for the duty, by share index: what a node
    /// re-sends to a peer that restarted.
    pub fn partials_of(&self, key: &DutyKey) -> Vec<Partial> {
        self.lock()
            .duties
            .get(key)
            .map(|entry| entry.stored_partials().collect())
            .unwrap_or_default()
    }

    /// Every stored partial of the duties at or after `min_slot`, with its
    /// duty: what a node sends again to a peer that restarted or was cut off.
    pub fn partials_since(&self, min_slot: Slot) -> Vec<(DutyKey, Partial)> {
        self.lock()
            .duties
            .iter()
            .filter(|(key, _)| key.slot >= min_slot)
            .flat_map(|(key, entry)| entry.stored_partials().map(|partial| (*key, partial)))
            .collect()
    }

    /// Counts a partial that the caller refused before it reached the store
    /// (e.g. a peer's partial over another signing root than the duty's) as
    /// received and rejected for `sender`, `partials` times.
    pub fn record_refused(&self, sender: Source, partials: usize) {
        let partials = u64::try_from(partials).unwrap_or(u64::MAX);
        let mut inner = self.lock();
        add(&mut inner.stats.received, sender, partials);
        add(&mut inner.stats.rejected, sender, partials);
    }

    /// The duties held, in no particular order.
    pub fn duties(&self) -> Vec<DutyKey> {
        self.lock().duties.keys().copied().collect()
    }

    /// Moves the window to `current_slot` and prunes the duties that fell
    /// behind it; returns how many were pruned.
    pub fn set_current_slot(&self, current_slot: Slot) -> usize {
        let behind = {
            let mut inner = self.lock();
            inner.current_slot = current_slot;
            inner.limits.max_slots_behind
        };
        self.prune(current_slot.saturating_sub(behind))
    }

    /// The slot the window is centred on.
    pub fn current_slot(&self) -> Slot {
        self.lock().current_slot
    }

    /// Drops every duty whose slot is before `before_slot` (their waiters stay
    /// pending); returns how many were dropped.
    pub fn prune(&self, before_slot: Slot) -> usize {
        let mut inner = self.lock();
        let held = inner.duties.len();
        inner.duties.retain(|key, _| key.slot >= before_slot);
        held.saturating_sub(inner.duties.len())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> StoreStats {
        let inner = self.lock();
        StoreStats {
            duties: inner.duties.len(),
            ..inner.stats.clone()
        }
    }

    fn known_validator(
        &self,
        validator: &PublicKey,
    ) -> Result<&HashMap<u64, PublicKey>, StoreError> {
        self.pubshares
            .get(validator)
            .ok_or(StoreError::UnknownValidator {
                validator: *validator,
            })
    }

    fn pubshare(
        &self,
        key: &DutyKey,
        share_index: u64,
        sender: Source,
    ) -> Result<&PublicKey, StoreError> {
        self.known_validator(&key.validator)?
            .get(&share_index)
            .ok_or(StoreError::UnknownShare {
                key: Box::new(*key),
                share_index,
                sender,
            })
    }

    /// A panic elsewhere cannot leave the maps half-updated (every update is
    /// a single insert or assignment), so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn count(counters: &mut BTreeMap<Source, u64>, sender: Source) {
    add(counters, sender, 1);
}

fn add(counters: &mut BTreeMap<Source, u64>, sender: Source, by: u64) {
    let counter = counters.entry(sender).or_default();
    *counter = counter.saturating_add(by);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;

    fn inner_at(current_slot: Slot, limits: StoreLimits) -> Inner {
        Inner {
            duties: HashMap::new(),
            current_slot,
            limits,
            stats: StoreStats::default(),
        }
    }

    fn key_at(slot: Slot) -> DutyKey {
        DutyKey::attestation(SecretKey::random().public_key(), slot)
    }

    #[test]
    fn the_window_saturates_at_both_ends_of_the_slot_range() {
        let limits = StoreLimits::for_slots_per_epoch(32);
        assert_eq!((limits.max_slots_ahead, limits.max_slots_behind), (64, 64));
        assert!(inner_at(0, limits).check_window(&key_at(0)).is_ok());
        assert!(inner_at(0, limits).check_window(&key_at(64)).is_ok());
        assert!(matches!(
            inner_at(0, limits).check_window(&key_at(65)),
            Err(StoreError::TooFarAhead {
                current_slot: 0,
                max_slots_ahead: 64,
                ..
            })
        ));
        assert!(inner_at(u64::MAX, limits)
            .check_window(&key_at(u64::MAX))
            .is_ok());
        assert!(matches!(
            inner_at(u64::MAX, limits).check_window(&key_at(u64::MAX - 65)),
            Err(StoreError::TooOld {
                max_slots_behind: 64,
                ..
            })
        ));
    }

    #[test]
    fn admit_refuses_a_new_duty_when_full_but_not_a_held_one() {
        let limits = StoreLimits {
            max_duties: 1,
            ..StoreLimits::for_slots_per_epoch(8)
        };
        let mut inner = inner_at(10, limits);
        let held = key_at(10);
        inner.admit(&held).unwrap();
        inner.admit(&held).unwrap();
        assert!(matches!(
            inner.admit(&key_at(11)),
            Err(StoreError::Full { max_duties: 1, .. })
        ));
    }

    #[test]
    fn latency_stats_keep_count_sum_and_max() {
        let mut stats = LatencyStats::default();
        stats.record(Duration::from_millis(30));
        stats.record(Duration::from_millis(10));
        assert_eq!(
            stats,
            LatencyStats {
                count: 2,
                total: Duration::from_millis(40),
                max: Duration::from_millis(30),
            }
        );
    }

    #[test]
    fn only_the_stores_own_limits_do_not_blame_the_sender() {
        let key = Box::new(key_at(1));
        let full = StoreError::Full {
            key: key.clone(),
            max_duties: 1,
        };
        let invalid = StoreError::InvalidPartial {
            key,
            share_index: 2,
            sender: Source::Peer(2),
        };
        assert!(!full.blames_sender());
        assert!(invalid.blames_sender());
    }
}
