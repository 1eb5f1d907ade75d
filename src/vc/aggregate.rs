//! The aggregation duty of the validator client: at two thirds of the slot,
//! every duty of the slot whose selection made it an aggregator (decided on
//! the key's own selection proof, or in distributed mode on the combined
//! proof the middleware returned and this client verified) fetches the
//! aggregate of the data it attested, builds the `AggregateAndProof` with
//! that selection proof, signs it and publishes it, v1 or v2 by the fork of
//! its slot. Every such duty ends in one [`AggregateRecord`].
//!
//! An `AggregateAndProof` is not slashable, so it does not go through the
//! slashing-protection database. A duty whose validator did not attest this
//! slot (refused, failed) has no data to aggregate and fails with the reason.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use futures_util::future::join_all;
use tracing::{info, warn};

use super::service::{Status, Vc};
use crate::api::attestation::{AggregateAndProof, Attestation, SignedAggregateAndProof};
use crate::api::types::SignatureBytes;
use crate::api::ClientError;
use crate::crypto::Signature;
use crate::spec::{CommitteeIndex, ForkName, Root, Slot, ValidatorIndex};

/// Records kept for [`Vc::take_aggregates`].
pub const AGGREGATE_LOG_CAPACITY: usize = 65_536;

/// What became of one aggregation duty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateRecord {
    /// The aggregating validator.
    pub validator_index: ValidatorIndex,
    /// The slot.
    pub slot: Slot,
    /// Its committee.
    pub committee_index: CommitteeIndex,
    /// What happened.
    pub outcome: AggregateOutcome,
}

/// The end of one aggregation duty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AggregateOutcome {
    /// Signed and accepted by the beacon node (or middleware), with the
    /// number of the aggregate's participants.
    Published {
        /// Set bits of the aggregate.
        participants: usize,
    },
    /// Not published, for the reason given.
    Failed(String),
}

/// A bounded log of aggregate records.
#[derive(Default)]
pub(super) struct AggregateLog {
    records: Mutex<VecDeque<AggregateRecord>>,
}

impl AggregateLog {
    fn push(&self, record: AggregateRecord) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records.len() >= AGGREGATE_LOG_CAPACITY {
            records.pop_front();
        }
        records.push_back(record);
    }

    pub(super) fn take(&self) -> Vec<AggregateRecord> {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records.drain(..).collect()
    }
}

/// One aggregation duty on its way.
struct Aggregation {
    validator_index: ValidatorIndex,
    slot: Slot,
    committee_index: CommitteeIndex,
    key: usize,
    selection_proof: Signature,
    data_root: Option<Root>,
}

impl Vc {
    /// Aggregates for every duty of `slot` that the selection made an
    /// aggregator; returns what became of each (also kept for
    /// [`Vc::take_aggregates`]).
    pub async fn run_aggregations(&self, slot: Slot) -> Vec<AggregateRecord> {
        let span = tracing::info_span!("vc", name = %self.name);
        let _entered = span.enter();
        let duties = self.claim_aggregations(slot);
        if duties.is_empty() {
            return Vec::new();
        }
        let fork = self.chain.fork_at_slot(slot);
        let fetches = duties.iter().map(|duty| self.fetch_aggregate(fork, duty));
        let fetched: Vec<Result<Attestation, String>> = join_all(fetches).await;
        let mut records = Vec::new();
        let mut ready = Vec::new();
        for (duty, aggregate) in duties.into_iter().zip(fetched) {
            match aggregate {
                Ok(aggregate) => ready.push((duty, aggregate)),
                Err(reason) => records.push(failed(&duty, reason)),
            }
        }
        records.extend(self.sign_and_publish_aggregates(fork, ready).await);
        for record in &records {
            if let AggregateOutcome::Failed(reason) = &record.outcome {
                warn!(validator = record.validator_index, slot, %reason, "aggregation duty failed");
            }
            self.aggregates.push(record.clone());
        }
        let published = records
            .iter()
            .filter(|r| matches!(r.outcome, AggregateOutcome::Published { .. }))
            .count();
        info!(slot, aggregators = records.len(), published, "aggregated");
        records
    }

    /// Every aggregate record since the last call, oldest first.
    pub fn take_aggregates(&self) -> Vec<AggregateRecord> {
        self.aggregates.take()
    }

    /// The slot's aggregating duties not taken up yet, marked taken.
    fn claim_aggregations(&self, slot: Slot) -> Vec<Aggregation> {
        let mut state = self.lock();
        let mut claimed = Vec::new();
        for (_, entry) in state
            .attestations
            .range_mut((slot, 0)..(slot.saturating_add(1), 0))
        {
            let Status::Decided {
                is_aggregator: true,
                selection_proof,
            } = entry.status
            else {
                continue;
            };
            if entry.aggregate_claimed {
                continue;
            }
            entry.aggregate_claimed = true;
            let Some(selection_proof) = selection_proof else {
                // `is_aggregator` answers a boolean: an `AggregateAndProof`
                // needs the cluster's combined selection proof, which only
                // `beacon_committee_selections` returns.
                warn!(
                    validator_index = entry.duty.validator_index,
                    slot,
                    "selected to aggregate, but is_aggregator gave no combined selection proof to aggregate with; use the beacon_committee_selections endpoint"
                );
                continue;
            };
            claimed.push(Aggregation {
                validator_index: entry.duty.validator_index,
                slot,
                committee_index: entry.duty.committee_index,
                key: entry.key,
                selection_proof,
                data_root: entry.attested_data_root,
            });
        }
        claimed
    }

    /// The beacon node's (or middleware's) aggregate of the attested data.
    async fn fetch_aggregate(
        &self,
        fork: ForkName,
        duty: &Aggregation,
    ) -> Result<Attestation, String> {
        let data_root = duty.data_root.ok_or_else(|| {
            format!(
                "validator {} published no attestation at slot {}: nothing to aggregate",
                duty.validator_index, duty.slot
            )
        })?;
        let aggregate = if fork >= ForkName::Electra {
            self.client
                .aggregate_attestation_v2(data_root, duty.slot, duty.committee_index)
                .await
        } else {
            self.client
                .aggregate_attestation_v1(data_root, duty.slot)
                .await
                .map(Attestation::Phase0)
        };
        let aggregate = aggregate.map_err(|error| format!("no aggregate: {error}"))?;
        if tree_hash::TreeHash::tree_hash_root(aggregate.data()) != data_root {
            return Err(format!(
                "the aggregate returned is for other data than the attested {data_root}"
            ));
        }
        if aggregate.committee_index() != Some(duty.committee_index) {
            return Err(format!(
                "the aggregate returned is for committee {:?}, not {}",
                aggregate.committee_index(),
                duty.committee_index
            ));
        }
        Ok(aggregate)
    }

    async fn sign_and_publish_aggregates(
        &self,
        fork: ForkName,
        ready: Vec<(Aggregation, Attestation)>,
    ) -> Vec<AggregateRecord> {
        if ready.is_empty() {
            return Vec::new();
        }
        let fork_info = self.lock().fork;
        let chain = crate::api::ChainInfo {
            fork: fork_info,
            ..self.chain.clone()
        };
        let messages: Vec<AggregateAndProof> = ready
            .iter()
            .map(|(duty, aggregate)| AggregateAndProof {
                aggregator_index: duty.validator_index,
                aggregate: aggregate.clone(),
                selection_proof: SignatureBytes(duty.selection_proof.to_bytes()),
            })
            .collect();
        let jobs = ready
            .iter()
            .zip(&messages)
            .map(|((duty, _), message)| (duty.key, chain.aggregate_and_proof_signing_root(message)))
            .collect();
        let signatures = match self.sign(jobs).await {
            Ok(signatures) => signatures,
            Err(reason) => {
                return ready
                    .iter()
                    .map(|(duty, _)| failed(duty, reason.clone()))
                    .collect()
            }
        };
        let signed: Vec<SignedAggregateAndProof> = messages
            .into_iter()
            .zip(signatures)
            .map(|(message, signature)| SignedAggregateAndProof {
                message,
                signature: SignatureBytes(signature.to_bytes()),
            })
            .collect();
        let result = if fork >= ForkName::Electra {
            self.client
                .post_aggregate_and_proofs_v2(fork, &signed)
                .await
        } else {
            self.client.post_aggregate_and_proofs_v1(&signed).await
        };
        let failures: BTreeMap<usize, String> = match &result {
            Ok(()) => BTreeMap::new(),
            Err(ClientError::Status { failures, .. }) if !failures.is_empty() => failures
                .iter()
                .map(|failure| (failure.index, failure.message.clone()))
                .collect(),
            Err(error) => (0..signed.len())
                .map(|index| (index, error.to_string()))
                .collect(),
        };
        ready
            .iter()
            .zip(&signed)
            .enumerate()
            .map(|(index, ((duty, _), signed))| match failures.get(&index) {
                None => record(
                    duty,
                    AggregateOutcome::Published {
                        participants: signed.message.aggregate.aggregation_bits().count_ones(),
                    },
                ),
                Some(reason) => failed(duty, format!("the beacon node refused it: {reason}")),
            })
            .collect()
    }
}

fn record(duty: &Aggregation, outcome: AggregateOutcome) -> AggregateRecord {
    AggregateRecord {
        validator_index: duty.validator_index,
        slot: duty.slot,
        committee_index: duty.committee_index,
        outcome,
    }
}

fn failed(duty: &Aggregation, reason: String) -> AggregateRecord {
    record(duty, AggregateOutcome::Failed(reason))
}
