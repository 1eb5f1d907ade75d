//! Aggregator decisions as data: every duty's final outcome is a
//! [`SelectionDecision`], kept in a bounded [`DecisionLog`] that callers (the
//! devnet, tests, an operator's tooling) read from the running validator
//! client and compare across operators.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::crypto::{PublicKey, Signature};
use crate::spec::{CommitteeIndex, Epoch, Slot, ValidatorIndex};

/// Decisions a log keeps by default; older ones are dropped (and counted).
pub const DEFAULT_DECISION_LOG_CAPACITY: usize = 65_536;

/// What a selection was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionDuty {
    /// Attestation aggregation in committee `committee_index` of the slot.
    Attestation {
        /// The committee within the slot.
        committee_index: CommitteeIndex,
        /// Its length, which `is_aggregator` takes.
        committee_length: u64,
    },
    /// Sync committee contribution aggregation in one subcommittee.
    Sync {
        /// The sync subcommittee.
        subcommittee_index: u64,
    },
}

/// How a selection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Decided. `selection_proof` is the proof the aggregation duty would put
    /// into its `AggregateAndProof` or `ContributionAndProof`: the validator's
    /// own in local mode, the verified combined one in distributed mode, none
    /// when the beacon node only answered a boolean (`is_aggregator`).
    Decided {
        /// Whether the validator aggregates.
        is_aggregator: bool,
        /// The selection proof, when the validator client has it.
        selection_proof: Option<Signature>,
    },
    /// No usable answer by the duty's last chance; `reason` says why.
    Failed {
        /// What was missing or wrong.
        reason: String,
    },
}

/// One validator's aggregator decision for one duty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectionDecision {
    /// The slot's epoch.
    pub epoch: Epoch,
    /// The duty's slot.
    pub slot: Slot,
    /// The validator.
    pub validator_index: ValidatorIndex,
    /// The validator's public key: the group key in distributed mode, the
    /// validator client's own key otherwise.
    pub validator: PublicKey,
    /// Attestation (with its committee) or sync (with its subcommittee).
    pub duty: DecisionDuty,
    /// The decision or why there is none.
    pub outcome: Outcome,
    /// From sending the request that gave this outcome to its reply (in local
    /// mode: the time to sign); zero for a failure found without a request.
    pub latency: Duration,
}

impl SelectionDecision {
    /// Whether the validator aggregates (false for a failed selection).
    pub fn is_aggregator(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Decided {
                is_aggregator: true,
                ..
            }
        )
    }
}

/// The latest decisions, oldest first, bounded; shared by the service's tasks.
#[derive(Debug)]
pub struct DecisionLog {
    capacity: usize,
    inner: Mutex<LogInner>,
}

#[derive(Debug, Default)]
struct LogInner {
    decisions: VecDeque<SelectionDecision>,
    dropped: u64,
}

impl DecisionLog {
    /// A log keeping the latest `capacity` decisions.
    pub fn new(capacity: usize) -> Self {
        DecisionLog {
            capacity,
            inner: Mutex::new(LogInner::default()),
        }
    }

    /// Appends a decision, dropping the oldest when full.
    pub fn push(&self, decision: SelectionDecision) {
        let mut inner = self.lock();
        if inner.decisions.len() >= self.capacity {
            inner.decisions.pop_front();
            inner.dropped = inner.dropped.saturating_add(1);
        }
        if self.capacity > 0 {
            inner.decisions.push_back(decision);
        }
    }

    /// Every decision in the log, oldest first.
    pub fn snapshot(&self) -> Vec<SelectionDecision> {
        self.lock().decisions.iter().cloned().collect()
    }

    /// Removes and returns every decision in the log, oldest first: a caller
    /// that drains regularly sees each decision exactly once.
    pub fn take(&self) -> Vec<SelectionDecision> {
        self.lock().decisions.drain(..).collect()
    }

    /// How many decisions were dropped to keep the log bounded.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;

    fn decision(slot: Slot) -> SelectionDecision {
        SelectionDecision {
            epoch: 0,
            slot,
            validator_index: 1,
            validator: SecretKey::random().public_key(),
            duty: DecisionDuty::Sync {
                subcommittee_index: 0,
            },
            outcome: Outcome::Failed {
                reason: "no answer".into(),
            },
            latency: Duration::ZERO,
        }
    }

    #[test]
    fn the_log_is_bounded_and_drains_once() {
        let log = DecisionLog::new(3);
        for slot in 0..5 {
            log.push(decision(slot));
        }
        let slots = |decisions: Vec<SelectionDecision>| -> Vec<Slot> {
            decisions.iter().map(|d| d.slot).collect()
        };
        assert_eq!(slots(log.snapshot()), vec![2, 3, 4]);
        assert_eq!(log.dropped(), 2);
        assert_eq!(slots(log.take()), vec![2, 3, 4]);
        assert!(log.take().is_empty());
        assert!(!decision(0).is_aggregator());
    }
}
