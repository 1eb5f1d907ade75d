//! What the middleware knows of the chain from its beacon node: the chain
//! information that signing roots need ([`ChainInfo`]) and the registry
//! index of each of the cluster's validators, held as one [`ChainView`]
//! that is replaced whole when it is refreshed (each epoch), so a request
//! never sees half of two views.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::duty::{DutyKey, DutyKind};
use crate::api::types::{PublicKeyBytes, StateId, ValidatorId};
use crate::api::{BeaconNodeClient, ChainInfo, ClientError};
use crate::cluster::ClusterLock;
use crate::crypto::PublicKey;
use crate::spec::{Root, Slot, ValidatorIndex};

/// Most validator keys named in one lookup request (the Beacon API's POST
/// validators body stays small).
const KEYS_PER_LOOKUP: usize = 1_024;

/// The chain as the middleware answers from it.
#[derive(Debug, Clone)]
pub struct ChainView {
    /// Spec, genesis and the head state's fork.
    pub info: ChainInfo,
    /// Registry index -> group public key, for the lock's validators the
    /// beacon node knows.
    pub validators: HashMap<ValidatorIndex, PublicKey>,
}

impl ChainView {
    /// The group key of the cluster validator with registry index `index`.
    pub fn validator(&self, index: ValidatorIndex) -> Option<PublicKey> {
        self.validators.get(&index).copied()
    }

    /// The signing root of a selection proof duty; `None` for the kinds
    /// whose root depends on agreed data (attestations, aggregates), which
    /// their own components compute.
    pub fn selection_signing_root(&self, kind: DutyKind, slot: Slot) -> Option<Root> {
        match kind {
            DutyKind::AttestationSelection => Some(self.info.selection_proof_signing_root(slot)),
            DutyKind::SyncSelection { subcommittee_index } => Some(
                self.info
                    .sync_selection_proof_signing_root(slot, subcommittee_index),
            ),
            DutyKind::Attestation | DutyKind::AggregateAndProof => None,
        }
    }

    /// The signing root of `key`'s selection proof (`None` for other kinds).
    pub fn duty_signing_root(&self, key: &DutyKey) -> Option<Root> {
        self.selection_signing_root(key.kind, key.slot)
    }
}

/// The current [`ChainView`], or why there is none yet.
pub struct ChainState {
    view: RwLock<Result<Arc<ChainView>, String>>,
}

impl ChainState {
    /// No view yet; `waiting_for` says why (the 503 of VC requests until one is set).
    pub fn new(waiting_for: impl Into<String>) -> Self {
        Self {
            view: RwLock::new(Err(waiting_for.into())),
        }
    }

    /// The current view, or the reason there is none.
    pub fn view(&self) -> Result<Arc<ChainView>, String> {
        match self.view.read() {
            Ok(view) => view.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the view.
    pub fn set(&self, view: ChainView) {
        self.replace(Ok(Arc::new(view)));
    }

    /// Records why there is no view, unless one was already set.
    pub fn set_waiting_for(&self, reason: impl Into<String>) {
        if self.view().is_err() {
            self.replace(Err(reason.into()));
        }
    }

    fn replace(&self, value: Result<Arc<ChainView>, String>) {
        match self.view.write() {
            Ok(mut view) => *view = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }
}

/// Fetches the chain information and the registry indices of the lock's
/// validators from the beacon node.
pub async fn fetch_view(
    beacon: &BeaconNodeClient,
    lock: &ClusterLock,
) -> Result<ChainView, crate::api::ChainInfoError> {
    let info = ChainInfo::fetch(beacon).await?;
    let validators = validator_indices(beacon, lock).await?;
    Ok(ChainView { info, validators })
}

/// Registry index -> group key of the lock's validators that the head state holds.
async fn validator_indices(
    beacon: &BeaconNodeClient,
    lock: &ClusterLock,
) -> Result<HashMap<ValidatorIndex, PublicKey>, ClientError> {
    let keys: Vec<PublicKey> = lock.validators.iter().map(|v| v.pubkey).collect();
    let by_bytes: HashMap<[u8; 48], PublicKey> =
        keys.iter().map(|key| (key.to_bytes(), *key)).collect();
    let mut indices = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(KEYS_PER_LOOKUP) {
        let ids: Vec<ValidatorId> = chunk
            .iter()
            .map(|key| ValidatorId::PublicKey(PublicKeyBytes(key.to_bytes())))
            .collect();
        for record in beacon.validators_by_ids(StateId::Head, &ids).await? {
            if let Some(key) = by_bytes.get(&record.validator.pubkey.0) {
                indices.insert(record.index, *key);
            }
        }
    }
    Ok(indices)
}
