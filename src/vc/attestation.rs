//! Attestation aggregator selection: which duties a round asks about, the
//! client's own selection proofs, asking the beacon node (local, standard
//! selections or the seed's `is_aggregator`), and recording each duty's one
//! decision.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tracing::{debug, warn};

use super::decision::{DecisionDuty, Outcome, SelectionDecision};
use super::duties::AttestationDuty;
use super::selection::{
    ask_selections, send_in_parts, Asked, SelectionEndpoint, SelectionStrategy,
};
use super::service::{State, Status, Vc, MAX_ITEMS_PER_REQUEST};
use crate::api::types::{BeaconCommitteeSelection, IsAggregatorRequestItem, SignatureBytes};
use crate::crypto::Signature;
use crate::spec::selection::is_aggregator;
use crate::spec::{Epoch, Fork, Root, Slot, ValidatorIndex};

/// Which attestation duties a selection round asks for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Round {
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

/// Per item: `(is_aggregator, selection proof to keep)` or why there is none,
/// with the latency of the request that gave it.
pub(super) type ItemResult = (Result<(bool, Option<Signature>), String>, Duration);

impl Vc {
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
            .map(|(_, entry)| {
                let signing_root = self.chain_root(&state.fork, entry.duty.slot);
                Candidate {
                    duty: entry.duty,
                    key: entry.key,
                    signing_root,
                    // A proof over another root (signed before a fork) is stale.
                    own_proof: entry
                        .own_proof
                        .filter(|(root, _)| *root == signing_root)
                        .map(|(_, proof)| proof),
                }
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

    pub(super) async fn select_attestations(&self, round: Round) {
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
                entry.own_proof = Some((candidate.signing_root, *proof));
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
        let results = ask_selections(
            &items,
            &asked,
            "beacon_committee_selections",
            |items: Vec<BeaconCommitteeSelection>| async move {
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
    pub(super) fn fail_passed(&self, slot: Slot) {
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
}
