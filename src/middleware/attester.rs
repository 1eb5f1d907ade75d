//! The attester duty of the cluster's validators in the middleware.
//!
//! - [`AttesterDuties`]: which of the lock's validators attest where, from
//!   the beacon node's attester duties (fetched each epoch for the current
//!   and the next epoch, the previous one kept for late partials).
//! - [`Attester`]: what the VC-facing endpoints do. `GET
//!   /eth/v1/validator/attestation_data` answers only with the data the
//!   cluster agreed on for the slot ([`AgreedData`]), with the committee
//!   index set where the fork still keeps it in the data. `POST
//!   /eth/v1/beacon/pool/attestations` (phase0 .. deneb `Attestation`s with
//!   one aggregation bit) and `POST /eth/v2/beacon/pool/attestations`
//!   (electra's `SingleAttestation`s) carry this operator's partial
//!   signatures: each item must be a duty of the cluster over the agreed
//!   data; it is verified against the operator's public share, stored,
//!   shared with the peers and combined at threshold like a selection
//!   partial. The VC gets one answer per item (the Beacon API's indexed
//!   failures for the bad ones, the good ones kept).
//! - [`Attester::build`]: the attestation to publish once a duty combined,
//!   from the duty and the agreed data (not from what a VC posted, so a node
//!   whose own VC is down still publishes the cluster's attestation).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tracing::debug;

use tree_hash::TreeHash;

use super::agreement::{Agreement, Proposals, ValueFuture};
use super::chain::{ChainState, ChainView};
use super::duty::{DutyKey, DutyKind, Partial, Source};
use super::exchange::{to_item, DutyRoots, Exchange};
use super::store::PartialStore;
use crate::api::attestation::{AttestationPhase0, Bitfield, SingleAttestation};
use crate::api::error::{ApiError, ItemError};
use crate::api::types::{AttesterDuty, SignatureBytes};
use crate::api::{BeaconNodeClient, ClientError};
use crate::consensus::Value;
use crate::crypto::batch::decode_signatures;
use crate::crypto::{PublicKey, Signature};
use crate::spec::signing::compute_epoch_at_slot;
use crate::spec::{AttestationData, CommitteeIndex, Epoch, ForkName, Root, Slot, ValidatorIndex};

/// Most validator indices named in one attester-duties request.
const INDICES_PER_DUTIES_REQUEST: usize = 4_096;

/// One attester duty of a cluster validator, as the beacon node gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterAttesterDuty {
    /// The validator's group public key.
    pub validator: PublicKey,
    /// Its registry index.
    pub validator_index: ValidatorIndex,
    /// The slot it attests at.
    pub slot: Slot,
    /// Its committee.
    pub committee_index: CommitteeIndex,
    /// The committee's size.
    pub committee_length: u64,
    /// Its position in the committee.
    pub position: u64,
}

/// The cluster's attester duties of a few epochs, indexed for the lookups
/// of the endpoints and the publisher.
#[derive(Debug, Clone, Default)]
pub struct AttesterDuties {
    by_index: HashMap<(ValidatorIndex, Slot), ClusterAttesterDuty>,
    by_position: HashMap<(Slot, CommitteeIndex, u64), ValidatorIndex>,
    by_key: HashMap<([u8; 48], Slot), ValidatorIndex>,
    /// The slots of each epoch held, for pruning.
    epochs: BTreeMap<Epoch, Vec<(ValidatorIndex, Slot)>>,
}

impl AttesterDuties {
    /// The duty of `validator_index` at `slot`.
    pub fn of_index(
        &self,
        validator_index: ValidatorIndex,
        slot: Slot,
    ) -> Option<&ClusterAttesterDuty> {
        self.by_index.get(&(validator_index, slot))
    }

    /// The duty of the validator at `position` of committee `committee_index` at `slot`.
    pub fn at_position(
        &self,
        slot: Slot,
        committee_index: CommitteeIndex,
        position: u64,
    ) -> Option<&ClusterAttesterDuty> {
        let index = self.by_position.get(&(slot, committee_index, position))?;
        self.of_index(*index, slot)
    }

    /// The duty of the validator with group key `validator` at `slot`.
    pub fn of_validator(&self, validator: &PublicKey, slot: Slot) -> Option<&ClusterAttesterDuty> {
        let index = self.by_key.get(&(validator.to_bytes(), slot))?;
        self.of_index(*index, slot)
    }

    /// The duties at `slot`.
    pub fn at_slot(&self, slot: Slot) -> impl Iterator<Item = &ClusterAttesterDuty> {
        self.by_index.values().filter(move |duty| duty.slot == slot)
    }

    /// Whether the duties of `epoch` are held.
    pub fn has_epoch(&self, epoch: Epoch) -> bool {
        self.epochs.contains_key(&epoch)
    }

    /// Replaces the duties of `epoch` with `duties`.
    pub fn set_epoch(&mut self, epoch: Epoch, duties: Vec<ClusterAttesterDuty>) {
        self.remove_epoch(epoch);
        let mut held = Vec::with_capacity(duties.len());
        for duty in duties {
            let at = (duty.validator_index, duty.slot);
            self.by_position.insert(
                (duty.slot, duty.committee_index, duty.position),
                duty.validator_index,
            );
            self.by_key
                .insert((duty.validator.to_bytes(), duty.slot), duty.validator_index);
            self.by_index.insert(at, duty);
            held.push(at);
        }
        self.epochs.insert(epoch, held);
    }

    /// Drops the duties of the epochs before `epoch`.
    pub fn prune_before(&mut self, epoch: Epoch) {
        let old: Vec<Epoch> = self.epochs.range(..epoch).map(|(e, _)| *e).collect();
        for epoch in old {
            self.remove_epoch(epoch);
        }
    }

    fn remove_epoch(&mut self, epoch: Epoch) {
        for at in self.epochs.remove(&epoch).unwrap_or_default() {
            if let Some(duty) = self.by_index.remove(&at) {
                self.by_position
                    .remove(&(duty.slot, duty.committee_index, duty.position));
                self.by_key.remove(&(duty.validator.to_bytes(), duty.slot));
            }
        }
    }
}

/// Fetches the attester duties of `epoch` of the cluster validators `view`
/// knows the indices of.
pub async fn fetch_attester_duties(
    beacon: &BeaconNodeClient,
    view: &ChainView,
    epoch: Epoch,
) -> Result<Vec<ClusterAttesterDuty>, ClientError> {
    let mut indices: Vec<ValidatorIndex> = view.validators.keys().copied().collect();
    indices.sort_unstable();
    let mut duties = Vec::with_capacity(indices.len());
    for chunk in indices.chunks(INDICES_PER_DUTIES_REQUEST) {
        let reply = beacon.attester_duties(epoch, chunk).await?;
        duties.extend(
            reply
                .data
                .iter()
                .filter_map(|duty| cluster_duty(view, duty)),
        );
    }
    Ok(duties)
}

fn cluster_duty(view: &ChainView, duty: &AttesterDuty) -> Option<ClusterAttesterDuty> {
    let validator = view.validator(duty.validator_index)?;
    // A reply naming another key for the index is not this validator's duty.
    (validator.to_bytes() == duty.pubkey.0).then_some(ClusterAttesterDuty {
        validator,
        validator_index: duty.validator_index,
        slot: duty.slot,
        committee_index: duty.committee_index,
        committee_length: duty.committee_length,
        position: duty.validator_committee_index,
    })
}

/// A future of the cluster's agreed attestation data.
pub type AgreedFuture = Pin<Box<dyn Future<Output = Result<AttestationData, String>> + Send>>;

/// Where the attester endpoints learn the attestation data the cluster
/// agreed on for a slot (one value per slot: `index` 0; the endpoints set
/// the committee index where the fork keeps it in the data).
pub trait AgreedData: Send + Sync {
    /// The agreed data of `slot`, if the agreement decided.
    fn decided(&self, slot: Slot) -> Option<AttestationData>;

    /// Starts the agreement of `slot` if it has not started, and resolves
    /// when it decides; the caller bounds the wait.
    fn agree(&self, slot: Slot) -> AgreedFuture;
}

/// The data the cluster agreed on, as one committee's attestation of
/// `fork` carries it.
pub fn data_for_committee(
    agreed: &AttestationData,
    committee_index: CommitteeIndex,
    fork: ForkName,
) -> AttestationData {
    AttestationData {
        index: if fork >= ForkName::Electra {
            0
        } else {
            committee_index
        },
        ..*agreed
    }
}

impl Value for AttestationData {
    /// The SSZ `hash_tree_root`: canonical, and what a spec reader expects.
    fn digest(&self) -> [u8; 32] {
        self.tree_hash_root().0
    }
}

/// The agreement on attestation data: each node proposes what its beacon
/// node returns for the slot (committee 0; the index is set per committee
/// when answering), and accepts a proposal for the slot, with `index` 0,
/// whose target is the slot's epoch, whose source is not after its target
/// (before it, but at genesis) and, once this node has its own data, whose
/// source and target epoch equal its own: an attestation with another
/// source could not be included, and a leader on another target epoch is
/// on another chain. The head and target roots may differ from this node's
/// (a late block, fork choice): that is what agreeing settles.
pub struct AttestationDataProposals {
    beacon: BeaconNodeClient,
    chain: Arc<ChainState>,
}

/// The label of the attestation-data agreement.
pub const ATTESTATION_DATA: &str = "attestation_data";

impl AttestationDataProposals {
    /// Proposals fetched from `beacon`.
    pub fn new(beacon: BeaconNodeClient, chain: Arc<ChainState>) -> Self {
        Self { beacon, chain }
    }
}

impl Proposals<AttestationData> for AttestationDataProposals {
    fn label(&self) -> &'static str {
        ATTESTATION_DATA
    }

    fn fetch(&self, slot: Slot) -> ValueFuture<AttestationData> {
        let beacon = self.beacon.clone();
        Box::pin(async move {
            let data = beacon
                .attestation_data(slot, 0)
                .await
                .map_err(|error| error.to_string())?;
            Ok(AttestationData { index: 0, ..data })
        })
    }

    fn check(
        &self,
        slot: Slot,
        value: &AttestationData,
        own: Option<&AttestationData>,
    ) -> Result<(), String> {
        let view = self.chain.view()?;
        let epoch = compute_epoch_at_slot(slot, &view.info.spec.preset);
        if value.slot != slot || value.index != 0 {
            return Err(format!(
                "proposal for slot {} committee {}, expected slot {slot} committee 0",
                value.slot, value.index
            ));
        }
        if value.target.epoch != epoch {
            return Err(format!(
                "proposal's target epoch {} is not slot {slot}'s epoch {epoch}",
                value.target.epoch
            ));
        }
        let source_ok = value.source.epoch < value.target.epoch
            || (value.source.epoch == 0 && value.target.epoch == 0);
        if !source_ok {
            return Err(format!(
                "proposal's source epoch {} is not before its target epoch {}",
                value.source.epoch, value.target.epoch
            ));
        }
        if let Some(own) = own {
            if value.source != own.source {
                return Err(format!(
                    "proposal's source {}/{} differs from this node's {}/{}",
                    value.source.epoch, value.source.root, own.source.epoch, own.source.root
                ));
            }
        }
        Ok(())
    }
}

impl AgreedData for Agreement<AttestationData> {
    fn decided(&self, slot: Slot) -> Option<AttestationData> {
        Agreement::decided(self, slot)
    }

    fn agree(&self, slot: Slot) -> AgreedFuture {
        match self.self_arc() {
            Some(agreement) => agreement.agree(slot),
            None => Box::pin(async { Err("the agreement stopped".to_string()) }),
        }
    }
}

/// One attestation item of a VC request, with what the checks found.
struct Checked {
    duty: ClusterAttesterDuty,
    signing_root: Root,
    signature: [u8; 96],
}

/// The attester endpoints' logic of one middleware node.
pub struct Attester {
    store: Arc<PartialStore>,
    chain: Arc<ChainState>,
    exchange: Arc<Exchange>,
    agreed: Arc<dyn AgreedData>,
    duties: Arc<RwLock<AttesterDuties>>,
    share_index: u64,
}

impl Attester {
    /// The attester logic of operator `share_index`.
    pub fn new(
        store: Arc<PartialStore>,
        chain: Arc<ChainState>,
        exchange: Arc<Exchange>,
        agreed: Arc<dyn AgreedData>,
        duties: Arc<RwLock<AttesterDuties>>,
        share_index: u64,
    ) -> Self {
        Self {
            store,
            chain,
            exchange,
            agreed,
            duties,
            share_index,
        }
    }

    fn view(&self) -> Result<Arc<ChainView>, ApiError> {
        self.chain
            .view()
            .map_err(|reason| ApiError::NotReady(format!("the middleware is not ready: {reason}")))
    }

    /// `GET attestation_data`: the agreed data of `slot` for
    /// `committee_index`, waiting for the agreement until `wait` has passed.
    pub async fn attestation_data(
        &self,
        slot: Slot,
        committee_index: CommitteeIndex,
        wait: Duration,
    ) -> Result<AttestationData, ApiError> {
        let view = self.view()?;
        let preset = &view.info.spec.preset;
        if committee_index >= preset.MAX_COMMITTEES_PER_SLOT {
            return Err(ApiError::BadRequest(format!(
                "committee_index {committee_index} is not below MAX_COMMITTEES_PER_SLOT {}",
                preset.MAX_COMMITTEES_PER_SLOT
            )));
        }
        let agreed = match self.agreed.decided(slot) {
            Some(agreed) => agreed,
            None => tokio::time::timeout(wait, self.agreed.agree(slot))
                .await
                .map_err(|_| {
                    ApiError::NotReady(format!(
                        "the cluster has not agreed on the attestation data of slot {slot} within {} ms",
                        wait.as_millis()
                    ))
                })?
                .map_err(|reason| {
                    ApiError::NotReady(format!(
                        "no agreed attestation data for slot {slot}: {reason}"
                    ))
                })?,
        };
        Ok(data_for_committee(
            &agreed,
            committee_index,
            view.info.fork_at_slot(slot),
        ))
    }

    /// `POST /eth/v1/beacon/pool/attestations`: phase0 .. deneb attestations
    /// carrying this operator's partial signatures.
    pub async fn post_attestations_v1(
        self: &Arc<Self>,
        items: Vec<Result<AttestationPhase0, ItemError>>,
    ) -> Result<(), ApiError> {
        let view = self.view()?;
        let total = items.len();
        let checked: Vec<Result<Checked, String>> = {
            let duties = self.duties();
            items
                .into_iter()
                .map(|item| {
                    item.map_err(|error| error.to_string())
                        .and_then(|attestation| self.check_v1(&view, &duties, &attestation))
                })
                .collect()
        };
        self.store_partials(view, checked, total).await
    }

    /// `POST /eth/v2/beacon/pool/attestations` from electra on:
    /// `SingleAttestation`s carrying this operator's partial signatures.
    pub async fn post_attestations_v2(
        self: &Arc<Self>,
        fork: ForkName,
        items: Vec<Result<SingleAttestation, ItemError>>,
    ) -> Result<(), ApiError> {
        let view = self.view()?;
        if fork < ForkName::Electra {
            return Err(ApiError::BadRequest(format!(
                "Eth-Consensus-Version {} carries phase0 attestations: post them to /eth/v1/beacon/pool/attestations",
                fork.as_str()
            )));
        }
        let total = items.len();
        let checked: Vec<Result<Checked, String>> = {
            let duties = self.duties();
            items
                .into_iter()
                .map(|item| {
                    item.map_err(|error| error.to_string())
                        .and_then(|single| self.check_single(&view, &duties, fork, &single))
                })
                .collect()
        };
        self.store_partials(view, checked, total).await
    }

    fn check_v1(
        &self,
        view: &ChainView,
        duties: &AttesterDuties,
        attestation: &AttestationPhase0,
    ) -> Result<Checked, String> {
        let data = &attestation.data;
        let fork = view.info.fork_at_slot(data.slot);
        if fork >= ForkName::Electra {
            return Err(format!(
                "slot {} is in {}: post a SingleAttestation to /eth/v2/beacon/pool/attestations",
                data.slot,
                fork.as_str()
            ));
        }
        let bits = &attestation.aggregation_bits;
        let position = match (bits.count_ones(), bits.ones().next()) {
            (1, Some(position)) => position as u64,
            (count, _) => {
                return Err(format!(
                "an attestation of one validator has exactly one aggregation bit, this one {count}"
            ))
            }
        };
        let duty = *duties
            .at_position(data.slot, data.index, position)
            .ok_or_else(|| {
                format!(
                    "no validator of this cluster attests at position {position} of committee {} at slot {}",
                    data.index, data.slot
                )
            })?;
        if bits.len() as u64 != duty.committee_length {
            return Err(format!(
                "aggregation_bits has {} bits, committee {} of slot {} has {} members",
                bits.len(),
                duty.committee_index,
                duty.slot,
                duty.committee_length
            ));
        }
        self.check_data(view, duty, data, fork, attestation.signature.0)
    }

    fn check_single(
        &self,
        view: &ChainView,
        duties: &AttesterDuties,
        fork: ForkName,
        single: &SingleAttestation,
    ) -> Result<Checked, String> {
        let data = &single.data;
        let slot_fork = view.info.fork_at_slot(data.slot);
        if slot_fork != fork {
            return Err(format!(
                "slot {} is in {}, not in {} as Eth-Consensus-Version says",
                data.slot,
                slot_fork.as_str(),
                fork.as_str()
            ));
        }
        let duty = *duties
            .of_index(single.attester_index, data.slot)
            .ok_or_else(|| {
                format!(
                    "validator {} has no attester duty of this cluster at slot {}",
                    single.attester_index, data.slot
                )
            })?;
        if duty.committee_index != single.committee_index {
            return Err(format!(
                "validator {} attests in committee {} at slot {}, not in committee {}",
                duty.validator_index, duty.committee_index, duty.slot, single.committee_index
            ));
        }
        self.check_data(view, duty, data, fork, single.signature.0)
    }

    /// The item's data must be what the cluster agreed for its committee.
    fn check_data(
        &self,
        view: &ChainView,
        duty: ClusterAttesterDuty,
        data: &AttestationData,
        fork: ForkName,
        signature: [u8; 96],
    ) -> Result<Checked, String> {
        let agreed = self.agreed.decided(duty.slot).ok_or_else(|| {
            format!(
                "the cluster has not agreed on the attestation data of slot {}: ask attestation_data first",
                duty.slot
            )
        })?;
        let expected = data_for_committee(&agreed, duty.committee_index, fork);
        if *data != expected {
            return Err(format!(
                "attestation data of validator {} at slot {} differs from what the cluster agreed \
                 (beacon_block_root {} source {}/{} target {}/{}, agreed {} {}/{} {}/{})",
                duty.validator_index,
                duty.slot,
                data.beacon_block_root,
                data.source.epoch,
                data.source.root,
                data.target.epoch,
                data.target.root,
                expected.beacon_block_root,
                expected.source.epoch,
                expected.source.root,
                expected.target.epoch,
                expected.target.root,
            ));
        }
        Ok(Checked {
            duty,
            signing_root: view.info.attestation_signing_root(&expected),
            signature,
        })
    }

    /// Decodes, verifies and stores the checked partials off the async
    /// workers, forwards the new ones to the peers, and answers 200 or the
    /// indexed failures.
    async fn store_partials(
        self: &Arc<Self>,
        _view: Arc<ChainView>,
        checked: Vec<Result<Checked, String>>,
        total: usize,
    ) -> Result<(), ApiError> {
        let attester = Arc::clone(self);
        let failures = tokio::task::spawn_blocking(move || attester.store_blocking(checked))
            .await
            .map_err(|error| ApiError::Internal(format!("attestation worker failed: {error}")))?;
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ApiError::InvalidItems { total, failures })
        }
    }

    fn store_blocking(&self, checked: Vec<Result<Checked, String>>) -> Vec<(usize, ItemError)> {
        let mut failures = Vec::new();
        let mut positions = Vec::new();
        let mut encoded = Vec::new();
        for (index, item) in checked.iter().enumerate() {
            match item {
                Ok(item) => {
                    positions.push(index);
                    encoded.push(item.signature);
                }
                Err(reason) => failures.push((index, ItemError::Refused(reason.clone()))),
            }
        }
        let mut batch: Vec<(usize, (DutyKey, Partial))> = Vec::with_capacity(positions.len());
        for (index, decoded) in positions.into_iter().zip(decode_signatures(&encoded)) {
            let Ok(item) = &checked[index] else { continue };
            match decoded {
                Ok(signature) => batch.push((index, self.partial(item, signature))),
                Err(error) => failures.push((
                    index,
                    ItemError::Refused(format!("signature does not decode: {error}")),
                )),
            }
        }
        let items: Vec<(DutyKey, Partial)> = batch.iter().map(|(_, item)| *item).collect();
        let outcomes = self
            .store
            .insert_batch_announcing(&items, Source::Local, |stored| {
                let fresh = stored
                    .iter()
                    .filter_map(|position| items.get(*position))
                    .map(|(key, partial)| to_item(key, partial))
                    .collect();
                self.exchange.broadcast(fresh);
            });
        for ((index, (key, _)), outcome) in batch.into_iter().zip(outcomes) {
            match outcome {
                Ok(outcome) => debug!(%key, ?outcome, "partial attestation stored"),
                Err(error) => failures.push((index, ItemError::Refused(error.to_string()))),
            }
        }
        failures.sort_by_key(|(index, _)| *index);
        failures
    }

    fn partial(&self, item: &Checked, signature: Signature) -> (DutyKey, Partial) {
        (
            DutyKey::attestation_signature(item.duty.validator, item.duty.slot),
            Partial {
                share_index: self.share_index,
                signing_root: item.signing_root,
                signature,
            },
        )
    }

    /// The signing root this node expects for an attestation duty, once the
    /// cluster agreed on its slot's data; `None` before (a peer's partial is
    /// then stored, and the combination is checked against the agreed root
    /// before anything is published).
    pub fn attestation_root(&self, view: &ChainView, key: &DutyKey) -> Option<Root> {
        let duty = *self.duties().of_validator(&key.validator, key.slot)?;
        let agreed = self.agreed.decided(key.slot)?;
        let data = data_for_committee(
            &agreed,
            duty.committee_index,
            view.info.fork_at_slot(key.slot),
        );
        Some(view.info.attestation_signing_root(&data))
    }

    /// The attestation to publish for a combined duty: the phase0 form
    /// before electra, a `SingleAttestation` after, or why there is none.
    pub fn build(
        &self,
        view: &ChainView,
        key: &DutyKey,
        signing_root: Root,
        signature: &Signature,
    ) -> Result<BuiltAttestation, BuildError> {
        let duty = *self
            .duties()
            .of_validator(&key.validator, key.slot)
            .ok_or_else(|| BuildError::Missing(format!("no attester duty known for the {key}")))?;
        let agreed = self.agreed.decided(key.slot).ok_or_else(|| {
            BuildError::Missing(format!("no agreed attestation data for slot {}", key.slot))
        })?;
        let fork = view.info.fork_at_slot(key.slot);
        let data = data_for_committee(&agreed, duty.committee_index, fork);
        let expected = view.info.attestation_signing_root(&data);
        if expected != signing_root {
            return Err(BuildError::RootMismatch {
                combined: signing_root,
                agreed: expected,
            });
        }
        let signature = SignatureBytes(signature.to_bytes());
        if fork >= ForkName::Electra {
            return Ok(BuiltAttestation::Single(SingleAttestation {
                committee_index: duty.committee_index,
                attester_index: duty.validator_index,
                data,
                signature,
            }));
        }
        let length = usize::try_from(duty.committee_length).unwrap_or(usize::MAX);
        let position = usize::try_from(duty.position).unwrap_or(usize::MAX);
        let aggregation_bits = Bitfield::with_bit(length, position)
            .map_err(|error| BuildError::Missing(format!("the duty's position: {error}")))?;
        Ok(BuiltAttestation::Phase0(AttestationPhase0 {
            aggregation_bits,
            data,
            signature,
        }))
    }

    /// The duties, read-locked.
    pub fn duties(&self) -> std::sync::RwLockReadGuard<'_, AttesterDuties> {
        self.duties
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The epoch of `slot` on the chain of `view`.
    pub fn epoch_of(view: &ChainView, slot: Slot) -> Epoch {
        compute_epoch_at_slot(slot, &view.info.spec.preset)
    }
}

impl DutyRoots for Attester {
    fn expected_root(&self, view: &ChainView, key: &DutyKey) -> Option<Root> {
        match key.kind {
            DutyKind::Attestation => self.attestation_root(view, key),
            _ => None,
        }
    }
}

/// Why a combined attestation cannot be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// This node lacks the duty or the agreed data to build it from.
    #[error("{0}")]
    Missing(String),
    /// The partials signed another root than the agreed data's.
    #[error("the combined signature signs {combined}, the agreed data's root is {agreed}")]
    RootMismatch {
        /// The root the combination signs.
        combined: Root,
        /// The agreed data's signing root.
        agreed: Root,
    },
}

/// A combined attestation ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuiltAttestation {
    /// phase0 .. deneb: `POST /eth/v1/beacon/pool/attestations`.
    Phase0(AttestationPhase0),
    /// electra and later: `POST /eth/v2/beacon/pool/attestations`.
    Single(SingleAttestation),
}
