//! The attester duty of the validator client: at a third of the slot (or
//! when the head of the slot arrives, whichever is first) every attestation
//! duty of the slot fetches its `AttestationData`, passes the
//! slashing-protection database, is signed and is published, v1 (phase0 ..
//! deneb `Attestation`) or v2 (electra's `SingleAttestation`) by the fork
//! of its slot.
//!
//! The database records every attestation before it is signed (one
//! transaction, one fsync, for all of the slot's duties), so a crash between
//! record and publish can never lead to signing something conflicting after
//! a restart; a beacon node or middleware that offers slashable data gets
//! the duty refused, with a log line naming the validator and the conflict.
//! Without a database the client does not attest at all.
//!
//! In distributed mode the key is a share and the signature a partial: the
//! middleware answers `attestation_data` with what the cluster agreed and
//! combines the partials. Every duty ends in one [`AttestationRecord`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use futures_util::future::join_all;
use tracing::{info, warn};

use super::duties::AttestationDuty;
use super::service::{blocking, Vc};
use super::slashing::{AttestationToSign, NotSafe, Safe};
use crate::api::attestation::{AttestationPhase0, Bitfield, SingleAttestation};
use crate::api::types::{PublicKeyBytes, SignatureBytes};
use crate::api::ClientError;
use crate::spec::signing::attestation_signing_root;
use crate::spec::{AttestationData, CommitteeIndex, ForkName, Root, Slot, ValidatorIndex};

/// Records kept for [`Vc::take_attestations`].
pub const ATTESTATION_LOG_CAPACITY: usize = 65_536;

/// What became of one attestation duty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationRecord {
    /// The validator.
    pub validator_index: ValidatorIndex,
    /// The slot.
    pub slot: Slot,
    /// Its committee.
    pub committee_index: CommitteeIndex,
    /// What happened.
    pub outcome: AttestOutcome,
}

/// The end of one attestation duty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttestOutcome {
    /// Signed and accepted by the beacon node (or middleware): the data's
    /// `hash_tree_root` and signing root.
    Published {
        /// `hash_tree_root` of the attested data.
        data_root: Root,
        /// What was signed.
        signing_root: Root,
    },
    /// Refused by slashing protection: never signed.
    Slashable(String),
    /// Signed but the beacon node refused it, or never signed for another
    /// reason (no data, no database, ...).
    Failed(String),
}

/// A bounded log of attestation records.
#[derive(Default)]
pub(super) struct AttestationLog {
    records: Mutex<VecDeque<AttestationRecord>>,
}

impl AttestationLog {
    fn push(&self, record: AttestationRecord) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records.len() >= ATTESTATION_LOG_CAPACITY {
            records.pop_front();
        }
        records.push_back(record);
    }

    pub(super) fn take(&self) -> Vec<AttestationRecord> {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records.drain(..).collect()
    }
}

/// One duty on its way to a signature.
struct Pending {
    duty: AttestationDuty,
    key: usize,
    data: AttestationData,
    signing_root: Root,
}

impl Vc {
    /// Attests every duty of `slot` not attested yet; returns what became of
    /// each (also kept for [`Vc::take_attestations`]).
    pub async fn run_attestations(&self, slot: Slot) -> Vec<AttestationRecord> {
        let span = tracing::info_span!("vc", name = %self.name);
        let _entered = span.enter();
        let duties = self.claim_attestation_duties(slot);
        if duties.is_empty() {
            return Vec::new();
        }
        let fork = self.chain.fork_at_slot(slot);
        let (pending, mut records) = self.fetch_data(slot, fork, duties).await;
        let (pending, refused) = self.check_slashing(pending).await;
        records.extend(refused);
        records.extend(self.sign_and_publish(fork, pending).await);
        for record in &records {
            if let AttestOutcome::Published { data_root, .. } = &record.outcome {
                self.remember_attested(record.slot, record.validator_index, *data_root);
            }
            self.attestations.push(record.clone());
        }
        let published = records
            .iter()
            .filter(|r| matches!(r.outcome, AttestOutcome::Published { .. }))
            .count();
        info!(slot, duties = records.len(), published, "attested");
        records
    }

    /// Every attestation record since the last call, oldest first.
    pub fn take_attestations(&self) -> Vec<AttestationRecord> {
        self.attestations.take()
    }

    /// The slot's duties not attested yet, marked as attested (so a second
    /// trigger for the slot, the head event after the timer, does nothing).
    fn claim_attestation_duties(&self, slot: Slot) -> Vec<(AttestationDuty, usize)> {
        let mut state = self.lock();
        let mut claimed = Vec::new();
        for ((_, _), entry) in state
            .attestations
            .range_mut((slot, 0)..(slot.saturating_add(1), 0))
        {
            if !entry.attest_claimed {
                entry.attest_claimed = true;
                claimed.push((entry.duty, entry.key));
            }
        }
        claimed
    }

    fn remember_attested(&self, slot: Slot, validator_index: ValidatorIndex, data_root: Root) {
        if let Some(entry) = self.lock().attestations.get_mut(&(slot, validator_index)) {
            entry.attested_data_root = Some(data_root);
        }
    }

    /// Fetches the data of each committee (one request from electra on,
    /// where every committee's data is the same) and checks it.
    async fn fetch_data(
        &self,
        slot: Slot,
        fork: ForkName,
        duties: Vec<(AttestationDuty, usize)>,
    ) -> (Vec<Pending>, Vec<AttestationRecord>) {
        let electra = fork >= ForkName::Electra;
        let mut committees: BTreeMap<CommitteeIndex, Vec<(AttestationDuty, usize)>> =
            BTreeMap::new();
        for (duty, key) in duties {
            let committee = if electra { 0 } else { duty.committee_index };
            committees.entry(committee).or_default().push((duty, key));
        }
        let requests = committees
            .keys()
            .map(|committee| self.client.attestation_data(slot, *committee));
        let answers: Vec<Result<AttestationData, ClientError>> = join_all(requests).await;
        let fork_info = self.lock().fork;
        let mut pending = Vec::new();
        let mut records = Vec::new();
        for ((committee, duties), answer) in committees.into_iter().zip(answers) {
            let checked = answer
                .map_err(|error| format!("no attestation data: {error}"))
                .and_then(|data| check_data(&data, slot, committee).map(|()| data));
            for (duty, key) in duties {
                match &checked {
                    Ok(data) => {
                        let data = AttestationData {
                            index: if electra { 0 } else { duty.committee_index },
                            ..*data
                        };
                        let signing_root = attestation_signing_root(
                            &data,
                            &fork_info,
                            self.chain.genesis_validators_root,
                        );
                        pending.push(Pending {
                            duty,
                            key,
                            data,
                            signing_root,
                        });
                    }
                    Err(reason) => {
                        warn!(validator = duty.validator_index, slot, %reason, "attestation duty failed");
                        records.push(record(&duty, AttestOutcome::Failed(reason.clone())));
                    }
                }
            }
        }
        (pending, records)
    }

    /// Records every attestation in the slashing-protection database before
    /// any is signed; returns those safe to sign and the refusals.
    async fn check_slashing(
        &self,
        pending: Vec<Pending>,
    ) -> (Vec<Pending>, Vec<AttestationRecord>) {
        let Some(database) = self.slashing_protection.clone() else {
            let reason = "no slashing-protection database (start the client with a data directory); not attesting";
            warn!(duties = pending.len(), reason, "attestation duties refused");
            let records = pending
                .iter()
                .map(|p| record(&p.duty, AttestOutcome::Failed(reason.into())))
                .collect();
            return (Vec::new(), records);
        };
        let requests: Vec<AttestationToSign> = pending
            .iter()
            .map(|p| AttestationToSign {
                pubkey: PublicKeyBytes(self.keys[p.key].key.pubkey().to_bytes()),
                source_epoch: p.data.source.epoch,
                target_epoch: p.data.target.epoch,
                signing_root: p.signing_root,
            })
            .collect();
        let checked = blocking(move || database.check_and_insert_attestations(&requests)).await;
        let verdicts: Vec<Result<Safe, String>> = match checked {
            Ok(Ok(verdicts)) => verdicts
                .into_iter()
                .map(|verdict| verdict.map_err(|not_safe: NotSafe| not_safe.to_string()))
                .collect(),
            Ok(Err(error)) => {
                vec![Err(format!("slashing protection failed: {error}")); pending.len()]
            }
            Err(error) => vec![Err(error); pending.len()],
        };
        let mut safe = Vec::new();
        let mut refused = Vec::new();
        for (p, verdict) in pending.into_iter().zip(verdicts) {
            match verdict {
                Ok(_) => safe.push(p),
                Err(reason) => {
                    warn!(
                        validator = p.duty.validator_index,
                        slot = p.duty.slot,
                        %reason,
                        "slashing protection refused an attestation; not signing it"
                    );
                    refused.push(record(&p.duty, AttestOutcome::Slashable(reason)));
                }
            }
        }
        (safe, refused)
    }

    /// Signs the safe attestations and posts them in one request.
    async fn sign_and_publish(
        &self,
        fork: ForkName,
        pending: Vec<Pending>,
    ) -> Vec<AttestationRecord> {
        if pending.is_empty() {
            return Vec::new();
        }
        let jobs = pending.iter().map(|p| (p.key, p.signing_root)).collect();
        let signatures = match self.sign(jobs).await {
            Ok(signatures) => signatures,
            Err(reason) => {
                return pending
                    .iter()
                    .map(|p| record(&p.duty, AttestOutcome::Failed(reason.clone())))
                    .collect()
            }
        };
        let signatures: Vec<SignatureBytes> = signatures
            .iter()
            .map(|signature| SignatureBytes(signature.to_bytes()))
            .collect();
        let result = if fork >= ForkName::Electra {
            let items: Vec<SingleAttestation> = pending
                .iter()
                .zip(&signatures)
                .map(|(p, signature)| SingleAttestation {
                    committee_index: p.duty.committee_index,
                    attester_index: p.duty.validator_index,
                    data: p.data,
                    signature: *signature,
                })
                .collect();
            self.client.post_attestations_v2(fork, &items).await
        } else {
            let mut items = Vec::with_capacity(pending.len());
            for (p, signature) in pending.iter().zip(&signatures) {
                let length = usize::try_from(p.duty.committee_length).unwrap_or(usize::MAX);
                let position =
                    usize::try_from(p.duty.validator_committee_index).unwrap_or(usize::MAX);
                // The duty's position was checked against its length on arrival.
                let Ok(aggregation_bits) = Bitfield::with_bit(length, position) else {
                    continue;
                };
                items.push(AttestationPhase0 {
                    aggregation_bits,
                    data: p.data,
                    signature: *signature,
                });
            }
            self.client.post_attestations_v1(&items).await
        };
        published_records(&pending, result)
    }
}

/// The outcome of each of `pending` after a post that ended with `result`.
fn published_records(
    pending: &[Pending],
    result: Result<(), ClientError>,
) -> Vec<AttestationRecord> {
    let failures: BTreeMap<usize, String> = match &result {
        Ok(()) => BTreeMap::new(),
        Err(ClientError::Status { failures, .. }) if !failures.is_empty() => failures
            .iter()
            .map(|failure| (failure.index, failure.message.clone()))
            .collect(),
        Err(error) => (0..pending.len())
            .map(|index| (index, error.to_string()))
            .collect(),
    };
    pending
        .iter()
        .enumerate()
        .map(|(index, p)| match failures.get(&index) {
            None => record(
                &p.duty,
                AttestOutcome::Published {
                    data_root: tree_hash::TreeHash::tree_hash_root(&p.data),
                    signing_root: p.signing_root,
                },
            ),
            Some(reason) => {
                warn!(validator = p.duty.validator_index, slot = p.duty.slot, %reason, "the beacon node refused an attestation");
                record(&p.duty, AttestOutcome::Failed(reason.clone()))
            }
        })
        .collect()
}

fn record(duty: &AttestationDuty, outcome: AttestOutcome) -> AttestationRecord {
    AttestationRecord {
        validator_index: duty.validator_index,
        slot: duty.slot,
        committee_index: duty.committee_index,
        outcome,
    }
}

/// The data must be for the slot and, before electra, for the committee
/// asked for; the checkpoints must be in order.
fn check_data(data: &AttestationData, slot: Slot, committee: CommitteeIndex) -> Result<(), String> {
    if data.slot != slot || data.index != committee {
        return Err(format!(
            "the attestation data is for slot {} committee {}, asked for slot {slot} committee {committee}",
            data.slot, data.index
        ));
    }
    if data.source.epoch > data.target.epoch {
        return Err(format!(
            "the attestation data's source epoch {} is after its target epoch {}",
            data.source.epoch, data.target.epoch
        ));
    }
    Ok(())
}
