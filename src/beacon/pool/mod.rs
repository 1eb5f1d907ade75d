//! The state-backed node's attestation pool: what
//! `POST /eth/v1|v2/beacon/pool/attestations` and
//! `POST /eth/v1|v2/validator/aggregate_and_proofs` accept (after the
//! gossip checks of [`checks`]), what `GET .../aggregate_attestation`
//! aggregates, and a record of both that the devnet reads.
//!
//! - Unaggregated attestations are kept by slot, decoded, for aggregation.
//!   A validator votes once per target epoch: the same attestation again is
//!   a duplicate (ignored, counted, not an error), other data for the same
//!   target epoch is refused ([`PoolError::PriorAttestationKnown`]).
//! - An aggregator publishes once per target epoch (so once per slot and
//!   committee: a validator sits in one committee an epoch): the same
//!   `SignedAggregateAndProof` again is a duplicate, another one is refused
//!   ([`PoolError::AggregatorAlreadySeen`]).
//! - Bounds: only the head's previous and current epochs are accepted, and
//!   everything older is pruned as the head moves, so the pool holds at
//!   most two votes and two aggregates per validator. The records the devnet
//!   reads ([`AttestationPool::accepted_attestations`],
//!   [`AttestationPool::accepted_aggregates`]) outlive pruning but keep only
//!   the latest [`DEFAULT_RECORD_CAPACITY`] of each kind.

pub mod checks;
pub mod routes;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::api::attestation::Bitfield;
use crate::crypto::{aggregate_signatures, Signature};
use crate::spec::{AttestationData, CommitteeIndex, Epoch, Root, Slot, ValidatorIndex};

pub use checks::PoolError;
use checks::{verify_signatures, AggregateProof, Candidate, Head, SignatureCheck, Vote};

/// Accepted attestations and aggregates the record keeps by default, per
/// kind; older ones are dropped (and counted) first.
pub const DEFAULT_RECORD_CAPACITY: usize = 65_536;

/// An attestation the pool accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedAttestation {
    /// The attester.
    pub validator_index: ValidatorIndex,
    /// The slot.
    pub slot: Slot,
    /// The attester's committee.
    pub committee_index: CommitteeIndex,
    /// `hash_tree_root` of its data.
    pub data_root: Root,
}

/// An aggregate the pool accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedAggregate {
    /// The aggregator.
    pub aggregator_index: ValidatorIndex,
    /// The slot.
    pub slot: Slot,
    /// The aggregate's committee.
    pub committee_index: CommitteeIndex,
    /// `hash_tree_root` of its data.
    pub data_root: Root,
    /// The validators its bits name, in committee order.
    pub participants: Vec<ValidatorIndex>,
}

/// What the pool did with one kind of item, since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Items accepted.
    pub accepted: u64,
    /// Items sent again (ignored, not an error).
    pub duplicates: u64,
    /// Items refused, by [`PoolError::kind`].
    pub refused: BTreeMap<&'static str, u64>,
}

/// What the pool did with what it was sent, since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolCounts {
    /// Unaggregated attestations (either form).
    pub attestations: Tally,
    /// `SignedAggregateAndProof`s.
    pub aggregates: Tally,
    /// Records dropped to keep the record bounded.
    pub records_dropped: u64,
}

/// What became of one item of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Kept.
    Accepted,
    /// The pool already had it.
    Duplicate,
    /// Refused, for this reason.
    Refused(PoolError),
}

/// An aggregate of the pool's attestations of one data and committee.
#[derive(Debug, Clone)]
pub(crate) struct PoolAggregate {
    /// What they vote for.
    pub data: AttestationData,
    /// Their committee.
    pub committee_index: CommitteeIndex,
    /// The union of their bits.
    pub aggregation_bits: Bitfield,
    /// The aggregate of their signatures.
    pub signature: Signature,
}

/// The attestation pool and its record, shared by the routes.
#[derive(Debug)]
pub struct AttestationPool {
    record_capacity: usize,
    inner: Mutex<Inner>,
}

impl Default for AttestationPool {
    fn default() -> Self {
        Self::new(DEFAULT_RECORD_CAPACITY)
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Accepted votes by slot.
    votes: BTreeMap<Slot, Vec<PooledVote>>,
    /// The vote of each (validator, target epoch).
    voted: HashMap<(ValidatorIndex, Epoch), Seen>,
    /// The aggregate of each (aggregator, target epoch).
    aggregated: HashMap<(ValidatorIndex, Epoch), Seen>,
    attestations: VecDeque<AcceptedAttestation>,
    aggregates: VecDeque<AcceptedAggregate>,
    counts: PoolCounts,
}

#[derive(Debug, Clone)]
struct PooledVote {
    committee_index: CommitteeIndex,
    position: usize,
    committee_length: usize,
    data: AttestationData,
    data_root: Root,
    signature: Signature,
}

/// What the one-per-epoch rule remembers of the item it kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    /// `hash_tree_root` of the object kept.
    identity: Root,
    /// Its data's root.
    data_root: Root,
    /// Its slot.
    slot: Slot,
    /// Its committee.
    committee_index: CommitteeIndex,
}

impl AttestationPool {
    /// A pool whose record keeps the latest `record_capacity` items of each kind.
    pub fn new(record_capacity: usize) -> Self {
        AttestationPool {
            record_capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Every attestation in the record, oldest first.
    pub fn accepted_attestations(&self) -> Vec<AcceptedAttestation> {
        self.lock().attestations.iter().cloned().collect()
    }

    /// Every aggregate in the record, oldest first.
    pub fn accepted_aggregates(&self) -> Vec<AcceptedAggregate> {
        self.lock().aggregates.iter().cloned().collect()
    }

    /// What the pool did with what it was sent.
    pub fn counts(&self) -> PoolCounts {
        self.lock().counts.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the votes of one request (a refusal where a rule failed): the
    /// same vote again is a duplicate, another vote of a validator for a
    /// target epoch it voted for is refused, and the others are kept if
    /// their later rules passed and their signatures verify. One outcome
    /// per item, in order.
    pub(crate) fn submit_votes(
        &self,
        head: &Head,
        items: Vec<Result<Candidate<Vote>, PoolError>>,
    ) -> Vec<Outcome> {
        self.submit(head, items)
    }

    /// Takes the aggregates of one request, as [`Self::submit_votes`] does
    /// votes, with one aggregate per aggregator and target epoch.
    pub(crate) fn submit_aggregates(
        &self,
        head: &Head,
        items: Vec<Result<Candidate<AggregateProof>, PoolError>>,
    ) -> Vec<Outcome> {
        self.submit(head, items)
    }

    /// The path of both kinds. The one-per-epoch rule is applied first (the
    /// spec applies it before the rules that follow it); the signatures of
    /// what passes every rule are verified in one batch, off the lock; then
    /// each is added in order, the rule applied again for requests that
    /// raced.
    fn submit<T: Pooled>(
        &self,
        head: &Head,
        items: Vec<Result<Candidate<T>, PoolError>>,
    ) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = {
            let mut inner = self.lock();
            inner.prune(head);
            items
                .iter()
                .map(|item| match item {
                    Err(error) => Some(Outcome::Refused(error.clone())),
                    Ok(candidate) => match inner.seen_by::<T>(candidate) {
                        Some(outcome) => Some(outcome),
                        None => candidate
                            .rest
                            .as_ref()
                            .err()
                            .map(|error| Outcome::Refused(error.clone())),
                    },
                })
                .collect()
        };
        let pending: Vec<(usize, &Candidate<T>, &T)> = items
            .iter()
            .enumerate()
            .filter(|(index, _)| outcomes[*index].is_none())
            .filter_map(|(index, item)| {
                let candidate = item.as_ref().ok()?;
                Some((index, candidate, candidate.rest.as_ref().ok()?))
            })
            .collect();
        let checks: Vec<&[SignatureCheck]> = pending
            .iter()
            .map(|(_, _, item)| item.signatures())
            .collect();
        let verified = verify_signatures(&checks);
        let mut inner = self.lock();
        for ((index, candidate, item), result) in pending.into_iter().zip(verified) {
            outcomes[index] = Some(match (inner.seen_by::<T>(candidate), result) {
                (Some(outcome), _) => outcome,
                (None, Err(error)) => Outcome::Refused(error),
                (None, Ok(signatures)) => {
                    T::seen(&mut inner).insert(candidate.key(), Seen::of(candidate));
                    item.add(&mut inner, candidate, signatures);
                    Outcome::Accepted
                }
            });
        }
        // Every pending item got its verification's outcome above.
        let outcomes: Vec<Outcome> = outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or(Outcome::Duplicate))
            .collect();
        let tally = T::tally(&mut inner.counts);
        for outcome in &outcomes {
            match outcome {
                Outcome::Accepted => tally.accepted += 1,
                Outcome::Duplicate => tally.duplicates += 1,
                Outcome::Refused(error) => *tally.refused.entry(error.kind()).or_default() += 1,
            }
        }
        inner.trim(self.record_capacity);
        outcomes
    }

    /// The aggregate of every kept vote of `slot` whose data has root
    /// `data_root` (and, when given, of committee `committee_index`);
    /// `None` when there is none.
    pub(crate) fn aggregate(
        &self,
        head: &Head,
        slot: Slot,
        data_root: Root,
        committee_index: Option<CommitteeIndex>,
    ) -> Option<PoolAggregate> {
        let votes: Vec<PooledVote> = {
            let mut inner = self.lock();
            inner.prune(head);
            inner
                .votes
                .get(&slot)?
                .iter()
                .filter(|vote| vote.data_root == data_root)
                .filter(|vote| committee_index.is_none_or(|index| vote.committee_index == index))
                .cloned()
                .collect()
        };
        // Phase0 data names its committee; electra's data (index 0) does
        // not, so without a committee the first vote's is taken.
        let first = votes.first()?;
        let votes: Vec<&PooledVote> = votes
            .iter()
            .filter(|vote| vote.committee_index == first.committee_index)
            .collect();
        let mut bits = Bitfield::zeros(first.committee_length);
        for vote in &votes {
            bits.set(vote.position).ok()?;
        }
        let signatures: Vec<Signature> = votes.iter().map(|vote| vote.signature).collect();
        Some(PoolAggregate {
            data: first.data,
            committee_index: first.committee_index,
            aggregation_bits: bits,
            signature: aggregate_signatures(&signatures).ok()?,
        })
    }
}

/// An item kind the pool keeps: what it signs, where it goes and how a
/// second one of its publisher is refused.
trait Pooled {
    /// The signatures to verify.
    fn signatures(&self) -> &[SignatureCheck];
    /// Adds the verified item (`signatures` decoded, in order of
    /// [`Pooled::signatures`]).
    fn add(&self, inner: &mut Inner, candidate: &Candidate<Self>, signatures: Vec<Signature>)
    where
        Self: Sized;
    /// The refusal of another item of a publisher who has `seen` for the epoch.
    fn conflict(candidate: &Candidate<Self>, seen: &Seen) -> PoolError
    where
        Self: Sized;
    /// The kind's one-per-epoch map.
    fn seen(inner: &mut Inner) -> &mut HashMap<(ValidatorIndex, Epoch), Seen>;
    /// The kind's counters.
    fn tally(counts: &mut PoolCounts) -> &mut Tally;
}

impl Seen {
    fn of<T>(candidate: &Candidate<T>) -> Self {
        Seen {
            identity: candidate.identity,
            data_root: candidate.data_root,
            slot: candidate.data.slot,
            committee_index: candidate.committee_index,
        }
    }
}

impl Pooled for Vote {
    fn signatures(&self) -> &[SignatureCheck] {
        std::slice::from_ref(&self.signature)
    }

    fn add(&self, inner: &mut Inner, candidate: &Candidate<Self>, signatures: Vec<Signature>) {
        // One signature was checked, so one was decoded.
        if let Some(signature) = signatures.into_iter().next() {
            inner
                .votes
                .entry(candidate.data.slot)
                .or_default()
                .push(PooledVote {
                    committee_index: candidate.committee_index,
                    position: self.position,
                    committee_length: self.committee_length,
                    data: candidate.data,
                    data_root: candidate.data_root,
                    signature,
                });
        }
        inner.attestations.push_back(AcceptedAttestation {
            validator_index: candidate.publisher,
            slot: candidate.data.slot,
            committee_index: candidate.committee_index,
            data_root: candidate.data_root,
        });
    }

    fn conflict(candidate: &Candidate<Self>, seen: &Seen) -> PoolError {
        PoolError::PriorAttestationKnown {
            validator_index: candidate.publisher,
            epoch: candidate.data.target.epoch,
            known: seen.data_root,
            given: candidate.data_root,
        }
    }

    fn seen(inner: &mut Inner) -> &mut HashMap<(ValidatorIndex, Epoch), Seen> {
        &mut inner.voted
    }

    fn tally(counts: &mut PoolCounts) -> &mut Tally {
        &mut counts.attestations
    }
}

impl Pooled for AggregateProof {
    fn signatures(&self) -> &[SignatureCheck] {
        &self.signatures
    }

    fn add(&self, inner: &mut Inner, candidate: &Candidate<Self>, _signatures: Vec<Signature>) {
        inner.aggregates.push_back(AcceptedAggregate {
            aggregator_index: candidate.publisher,
            slot: candidate.data.slot,
            committee_index: candidate.committee_index,
            data_root: candidate.data_root,
            participants: self.participants.clone(),
        });
    }

    fn conflict(candidate: &Candidate<Self>, seen: &Seen) -> PoolError {
        PoolError::AggregatorAlreadySeen {
            aggregator_index: candidate.publisher,
            epoch: candidate.data.target.epoch,
            slot: seen.slot,
            committee_index: seen.committee_index,
        }
    }

    fn seen(inner: &mut Inner) -> &mut HashMap<(ValidatorIndex, Epoch), Seen> {
        &mut inner.aggregated
    }

    fn tally(counts: &mut PoolCounts) -> &mut Tally {
        &mut counts.aggregates
    }
}

impl Inner {
    /// The one-per-epoch rule: a duplicate, a refusal, or `None` when the
    /// publisher has nothing for the target epoch yet.
    fn seen_by<T: Pooled>(&mut self, candidate: &Candidate<T>) -> Option<Outcome> {
        let seen = T::seen(self).get(&candidate.key())?;
        Some(if seen.identity == candidate.identity {
            Outcome::Duplicate
        } else {
            Outcome::Refused(T::conflict(candidate, seen))
        })
    }

    /// Drops what is older than the head's previous epoch: nothing of it
    /// can be accepted or asked for any more.
    fn prune(&mut self, head: &Head) {
        let state = &head.loaded.state;
        let previous = state.get_previous_epoch();
        let start = previous.saturating_mul(state.preset().SLOTS_PER_EPOCH);
        self.votes = self.votes.split_off(&start);
        self.voted.retain(|(_, epoch), _| *epoch >= previous);
        self.aggregated.retain(|(_, epoch), _| *epoch >= previous);
    }

    /// Keeps the latest `capacity` records of each kind.
    fn trim(&mut self, capacity: usize) {
        for excess in [
            drop_front(&mut self.attestations, capacity),
            drop_front(&mut self.aggregates, capacity),
        ] {
            self.counts.records_dropped = self.counts.records_dropped.saturating_add(excess);
        }
    }
}

/// Drops the oldest items past `capacity`; how many.
fn drop_front<T>(queue: &mut VecDeque<T>, capacity: usize) -> u64 {
    let excess = queue.len().saturating_sub(capacity);
    queue.drain(..excess);
    excess as u64
}
