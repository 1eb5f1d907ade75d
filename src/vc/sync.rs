//! Sync committee aggregator selection: one per validator, slot and
//! subcommittee, asked at the slot through `sync_committee_selections` in
//! distributed mode (with either endpoint: the seed's `is_aggregator` has no
//! sync form).

use std::time::{Duration, Instant};

use tracing::warn;

use super::decision::{DecisionDuty, Outcome, SelectionDecision};
use super::selection::{ask_selections, Asked, SelectionStrategy};
use super::service::Vc;
use crate::api::types::{SignatureBytes, SyncCommitteeSelection};
use crate::crypto::Signature;
use crate::spec::selection::is_sync_committee_aggregator;
use crate::spec::signing::sync_selection_proof_signing_root;
use crate::spec::{Root, Slot, ValidatorIndex};

/// A sync selection about to be asked about.
struct SyncCandidate {
    validator_index: ValidatorIndex,
    slot: Slot,
    subcommittee_index: u64,
    key: usize,
    signing_root: Root,
}

impl Vc {
    /// Sync aggregator selection for every sync duty at `slot`, once per
    /// (validator, subcommittee). Each has one chance: the slot.
    pub(super) async fn select_sync(&self, slot: Slot) {
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
                    signing_root: sync_selection_proof_signing_root(
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
        ask_selections(
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
}
