//! What the validator client learns from its beacon node each epoch: the
//! validator index of each key (by public key), the head fork its signing
//! roots use, and the attester and sync duties of its validators, each
//! checked before it is kept.

use std::collections::HashMap;

use tracing::{debug, info, warn};

use super::duties::{AttestationDuty, SyncCommitteeDuty};
use super::service::{AttestationEntry, Status, Vc, MAX_ITEMS_PER_REQUEST};
use crate::api::types::{PublicKeyBytes, StateId, ValidatorData, ValidatorId};
use crate::spec::{Epoch, ForkName, Slot, ValidatorIndex};

impl Vc {
    /// Looks up the validator index of every key not yet found, by public key.
    pub(super) async fn resolve_indices(&self) {
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
            match self.client.validators_by_ids(StateId::Head, &ids).await {
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

    fn record_indices(&self, found: &[ValidatorData]) {
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

    pub(super) async fn refresh_fork(&self) {
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

    pub(super) async fn fetch_attester_duties(&self, epoch: Epoch) {
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
                    attest_claimed: false,
                    attested_data_root: None,
                    aggregate_claimed: false,
                });
        }
    }

    pub(super) async fn fetch_sync_duties(&self, epoch: Epoch) {
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
}
