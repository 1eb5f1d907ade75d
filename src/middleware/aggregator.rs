//! The aggregation duty of the cluster's validators in the middleware.
//!
//! Once the cluster knows (from the combined selection proof) that one of
//! its validators aggregates for a committee, every aggregating operator's
//! VC must sign the same `AggregateAndProof`, but each beacon node's pool
//! holds a different aggregate. So:
//!
//! - **Agreement** ([`AggregateProposals`]): one instance per slot for all
//!   of the cluster's aggregations (the committees where one of its
//!   validators aggregates). Each node proposes, per committee, the
//!   aggregate its beacon node returns for the agreed attestation data; a
//!   proposal is accepted only if every aggregate is for a committee where
//!   the cluster attests, over exactly the agreed data, with bits of the
//!   committee's length, at least one participant, and a signature that
//!   verifies against its participants' keys.
//! - `GET /eth/v1|v2/validator/aggregate_attestation`: the agreed aggregate
//!   of the data root (and committee).
//! - `POST /eth/v1|v2/validator/aggregate_and_proofs`: partial signatures
//!   over `AggregateAndProof`s whose selection proof must be the combined
//!   one the cluster made for the duty and whose aggregate must be the
//!   agreed one; verified against the share, exchanged, combined, verified
//!   against the group key and published once ([`Aggregator::build`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tracing::debug;
use tree_hash::TreeHash;

use super::agreement::{Agreement, Proposals, ValueFuture};
use super::attester::{data_for_committee, AgreedData, AttesterDuties, ClusterAttesterDuty};
use super::chain::{ChainState, ChainView};
use super::duty::{DutyKey, DutyKind, Partial, Source};
use super::exchange::{to_item, DutyRoots, Exchange};
use super::store::PartialStore;
use crate::api::attestation::{AggregateAndProof, Attestation, SignedAggregateAndProof};
use crate::api::error::{ApiError, ItemError};
use crate::api::types::{SignatureBytes, StateId, ValidatorId};
use crate::api::BeaconNodeClient;
use crate::consensus::Value;
use crate::crypto::batch::decode_signatures;
use crate::crypto::{PublicKey, Signature};
use crate::spec::selection::is_aggregator;
use crate::spec::{AttestationData, CommitteeIndex, ForkName, Root, Slot, ValidatorIndex};

/// The label of the aggregates agreement.
pub const AGGREGATES: &str = "aggregates";
/// Most aggregates in one agreed value (one per committee of a slot).
const MAX_AGGREGATES: usize = 64;

/// One committee's aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitteeAggregate {
    /// The committee.
    #[serde(with = "serde_utils::quoted_u64::require_quotes")]
    pub committee_index: CommitteeIndex,
    /// Its aggregate.
    pub aggregate: Attestation,
}

/// What the cluster agrees on for a slot's aggregations: one aggregate per
/// committee where one of its validators aggregates, by committee index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotAggregates {
    /// The slot.
    #[serde(with = "serde_utils::quoted_u64::require_quotes")]
    pub slot: Slot,
    /// The aggregates, ascending by committee, one per committee.
    pub aggregates: Vec<CommitteeAggregate>,
}

impl Value for SlotAggregates {
    /// sha256 of the slot and each committee's index and aggregate SSZ
    /// (length-prefixed): canonical and preset-free.
    fn digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(b"dv-aggregator/aggregates/v1");
        hasher.update(self.slot.to_le_bytes());
        for entry in &self.aggregates {
            let ssz = entry.aggregate.as_ssz_bytes();
            hasher.update(entry.committee_index.to_le_bytes());
            hasher.update((ssz.len() as u64).to_le_bytes());
            hasher.update(&ssz);
        }
        hasher.finalize().into()
    }
}

impl SlotAggregates {
    /// The aggregate of `committee_index`.
    pub fn of_committee(&self, committee_index: CommitteeIndex) -> Option<&Attestation> {
        self.aggregates
            .iter()
            .find(|entry| entry.committee_index == committee_index)
            .map(|entry| &entry.aggregate)
    }
}

/// What the aggregation needs to know of the cluster and the chain,
/// shared by the proposals, the endpoints and the publisher.
pub struct AggregationContext {
    /// The beacon node.
    pub beacon: BeaconNodeClient,
    /// The chain view.
    pub chain: Arc<ChainState>,
    /// The partial store (combined selection proofs).
    pub store: Arc<PartialStore>,
    /// The agreed attestation data.
    pub attestation_data: Arc<dyn AgreedData>,
    /// The cluster's attester duties.
    pub duties: Arc<RwLock<AttesterDuties>>,
    /// Decompressed public keys of committee members, by registry index.
    keys: Mutex<HashMap<ValidatorIndex, PublicKey>>,
    /// Members of the committees where the cluster aggregates, by (slot,
    /// committee), loaded by [`AggregationContext::prepare`].
    members: Mutex<BTreeMap<(Slot, CommitteeIndex), Vec<ValidatorIndex>>>,
}

impl AggregationContext {
    /// The context over the middleware's parts.
    pub fn new(
        beacon: BeaconNodeClient,
        chain: Arc<ChainState>,
        store: Arc<PartialStore>,
        attestation_data: Arc<dyn AgreedData>,
        duties: Arc<RwLock<AttesterDuties>>,
    ) -> Self {
        Self {
            beacon,
            chain,
            store,
            attestation_data,
            duties,
            keys: Mutex::new(HashMap::new()),
            members: Mutex::new(BTreeMap::new()),
        }
    }

    /// Loads the members (and their keys) of every committee where one of
    /// the cluster's validators aggregates at `slot`, unless loaded already,
    /// and returns one aggregating duty per such committee. The follower
    /// runs it ahead of the aggregates agreement, so that the agreement's
    /// time-bounded fetch of this node's own value, when it is slow, does
    /// not leave this node unable to check its peers' proposals.
    pub async fn prepare(
        &self,
        slot: Slot,
    ) -> Result<BTreeMap<CommitteeIndex, ClusterAttesterDuty>, String> {
        let view = self.chain.view()?;
        let mut committees: BTreeMap<CommitteeIndex, ClusterAttesterDuty> = BTreeMap::new();
        for (duty, _) in self.aggregators(&view, slot) {
            committees.entry(duty.committee_index).or_insert(duty);
        }
        if committees.is_empty() {
            return Err(format!(
                "no validator of the cluster aggregates at slot {slot}"
            ));
        }
        for (committee_index, duty) in &committees {
            if self.members_of(slot, *committee_index).is_some() {
                continue;
            }
            let committee = self.committee_members(&view, duty).await?;
            self.fetch_keys(&committee).await?;
            let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
            members.insert((slot, *committee_index), committee);
            let keep_from = slot.saturating_sub(KEEP_MEMBERS_SLOTS);
            *members = members.split_off(&(keep_from, 0));
        }
        Ok(committees)
    }

    /// The loaded members of `committee_index` at `slot`.
    fn members_of(
        &self,
        slot: Slot,
        committee_index: CommitteeIndex,
    ) -> Option<Vec<ValidatorIndex>> {
        self.members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(slot, committee_index))
            .cloned()
    }

    fn duties(&self) -> std::sync::RwLockReadGuard<'_, AttesterDuties> {
        self.duties.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cluster's duties at `slot` whose combined selection proof makes
    /// them aggregators, with that proof.
    pub fn aggregators(
        &self,
        view: &ChainView,
        slot: Slot,
    ) -> Vec<(ClusterAttesterDuty, Signature)> {
        let preset = &view.info.spec.preset;
        let duties: Vec<ClusterAttesterDuty> = self.duties().at_slot(slot).copied().collect();
        duties
            .into_iter()
            .filter_map(|duty| {
                let proof = self
                    .store
                    .combined(&DutyKey::attestation(duty.validator, slot))?;
                is_aggregator(duty.committee_length, &proof.to_bytes(), preset)
                    .then_some((duty, proof))
            })
            .collect()
    }

    /// The agreed attestation data of `committee_index` at `slot`.
    fn agreed_data(
        &self,
        view: &ChainView,
        slot: Slot,
        committee_index: CommitteeIndex,
    ) -> Option<AttestationData> {
        let agreed = self.attestation_data.decided(slot)?;
        Some(data_for_committee(
            &agreed,
            committee_index,
            view.info.fork_at_slot(slot),
        ))
    }

    /// The registry indices of `duty`'s committee, from the beacon node's
    /// committees of the epoch, checked against the duty: its length and
    /// the cluster's validator at its position.
    ///
    /// Lodestar 1.5.1 answers the committees query with `index` and `slot`
    /// swapped and the slot counted from the epoch start (its loops name
    /// the outer, per-slot index `committeeIndex`); where the standard
    /// reading finds no committee consistent with the duty, that reading is
    /// tried.
    async fn committee_members(
        &self,
        view: &ChainView,
        duty: &ClusterAttesterDuty,
    ) -> Result<Vec<ValidatorIndex>, String> {
        let slots_per_epoch = view.info.spec.preset.SLOTS_PER_EPOCH.max(1);
        let epoch = duty.slot / slots_per_epoch;
        let committees = self
            .beacon
            .state_committees(StateId::Head, Some(epoch))
            .await
            .map_err(|error| error.to_string())?;
        let consistent = |members: &Vec<ValidatorIndex>| {
            members.len() as u64 == duty.committee_length
                && usize::try_from(duty.position)
                    .ok()
                    .and_then(|position| members.get(position))
                    == Some(&duty.validator_index)
        };
        let standard = committees.iter().find(|committee| {
            committee.slot == duty.slot && committee.index == duty.committee_index
        });
        let swapped = || {
            committees.iter().find(|committee| {
                committee.index == duty.slot % slots_per_epoch
                    && committee.slot == duty.committee_index
            })
        };
        standard
            .filter(|committee| consistent(&committee.validators))
            .or_else(|| swapped().filter(|committee| consistent(&committee.validators)))
            .map(|committee| committee.validators.clone())
            .ok_or_else(|| {
                format!(
                    "the beacon node has no committee {} at slot {} of length {} with validator {} at position {}",
                    duty.committee_index,
                    duty.slot,
                    duty.committee_length,
                    duty.validator_index,
                    duty.position
                )
            })
    }

    /// Fetches and caches the keys of `indices` not cached yet.
    async fn fetch_keys(&self, indices: &[ValidatorIndex]) -> Result<(), String> {
        let missing: Vec<ValidatorId> = {
            let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            indices
                .iter()
                .filter(|index| !keys.contains_key(index))
                .map(|index| ValidatorId::Index(*index))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let records = self
            .beacon
            .validators_by_ids(StateId::Head, &missing)
            .await
            .map_err(|error| error.to_string())?;
        let decoded: Vec<(ValidatorIndex, PublicKey)> = tokio::task::spawn_blocking(move || {
            records
                .into_iter()
                .filter_map(|record| {
                    PublicKey::from_bytes(&record.validator.pubkey.0)
                        .ok()
                        .map(|key| (record.index, key))
                })
                .collect()
        })
        .await
        .map_err(|error| error.to_string())?;
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(decoded);
        Ok(())
    }

    /// The item must be the `AggregateAndProof` of a cluster aggregator with
    /// the combined selection proof and the agreed aggregate (`agreed`: the
    /// slot's decision, if the agreement decided).
    fn check_aggregate_and_proof(
        &self,
        view: &ChainView,
        fork: Option<ForkName>,
        signed: &SignedAggregateAndProof,
        agreed: Option<SlotAggregates>,
    ) -> Result<CheckedAggregate, String> {
        let message = &signed.message;
        let slot = message.aggregate.data().slot;
        let slot_fork = view.info.fork_at_slot(slot);
        match fork {
            Some(fork) if fork != slot_fork => {
                return Err(format!(
                    "slot {slot} is in {}, not in {} as Eth-Consensus-Version says",
                    slot_fork.as_str(),
                    fork.as_str()
                ))
            }
            None if slot_fork >= ForkName::Electra => {
                return Err(format!(
                    "slot {slot} is in {}: post to /eth/v2/validator/aggregate_and_proofs",
                    slot_fork.as_str()
                ))
            }
            _ => {}
        }
        let duty = *self
            .duties()
            .of_index(message.aggregator_index, slot)
            .ok_or_else(|| {
                format!(
                    "validator {} has no attester duty of this cluster at slot {slot}",
                    message.aggregator_index
                )
            })?;
        let combined = self
            .store
            .combined(&DutyKey::attestation(duty.validator, slot))
            .ok_or_else(|| {
                format!(
                    "the cluster has no combined selection proof of validator {} at slot {slot}",
                    duty.validator_index
                )
            })?;
        if message.selection_proof.0 != combined.to_bytes() {
            return Err(format!(
                "the selection proof of validator {} at slot {slot} is not the cluster's combined one (a partial?)",
                duty.validator_index
            ));
        }
        if !is_aggregator(
            duty.committee_length,
            &combined.to_bytes(),
            &view.info.spec.preset,
        ) {
            return Err(format!(
                "validator {} does not aggregate at slot {slot}",
                duty.validator_index
            ));
        }
        let agreed = agreed.ok_or_else(|| {
            format!("the cluster has not agreed on the aggregates of slot {slot}: ask aggregate_attestation first")
        })?;
        let expected = agreed.of_committee(duty.committee_index).ok_or_else(|| {
            format!(
                "the cluster agreed on no aggregate of committee {} at slot {slot}",
                duty.committee_index
            )
        })?;
        if message.aggregate != *expected {
            return Err(format!(
                "the aggregate of validator {} at slot {slot} is not the one the cluster agreed on",
                duty.validator_index
            ));
        }
        Ok(CheckedAggregate {
            duty,
            signing_root: view.info.aggregate_and_proof_signing_root(message),
            signature: signed.signature.0,
        })
    }

    /// Checks one committee's aggregate against the agreed data, the
    /// committee and its participants' keys.
    fn check_aggregate(
        &self,
        view: &ChainView,
        slot: Slot,
        committee_index: CommitteeIndex,
        aggregate: &Attestation,
        members: Option<&[ValidatorIndex]>,
    ) -> Result<(), String> {
        let fork = view.info.fork_at_slot(slot);
        if aggregate.is_electra() != (fork >= ForkName::Electra) {
            return Err(format!(
                "the aggregate of committee {committee_index} has the wrong form for {}",
                fork.as_str()
            ));
        }
        if aggregate.committee_index() != Some(committee_index) {
            return Err(format!(
                "the aggregate for committee {committee_index} names committee {:?}",
                aggregate.committee_index()
            ));
        }
        aggregate
            .check_lengths(&view.info.spec.preset)
            .map_err(|error| error.to_string())?;
        let expected = self
            .agreed_data(view, slot, committee_index)
            .ok_or_else(|| format!("no agreed attestation data for slot {slot}"))?;
        if *aggregate.data() != expected {
            return Err(format!(
                "the aggregate of committee {committee_index} is for other data than the agreed (data root {}, agreed {})",
                aggregate.data().tree_hash_root(),
                expected.tree_hash_root()
            ));
        }
        let bits = aggregate.aggregation_bits();
        let members = members.ok_or_else(|| {
            format!("committee {committee_index} of slot {slot} is not known here")
        })?;
        if bits.len() != members.len() {
            return Err(format!(
                "the aggregate of committee {committee_index} has {} bits, the committee {} members",
                bits.len(),
                members.len()
            ));
        }
        if bits.count_ones() == 0 {
            return Err(format!(
                "the aggregate of committee {committee_index} has no participant"
            ));
        }
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let participants: Option<Vec<PublicKey>> = bits
            .ones()
            .map(|position| {
                members
                    .get(position)
                    .and_then(|index| keys.get(index))
                    .copied()
            })
            .collect();
        drop(keys);
        let participants = participants.ok_or_else(|| {
            format!("the keys of committee {committee_index}'s participants are not known here")
        })?;
        let signature = Signature::from_bytes(&aggregate.signature().0)
            .map_err(|error| format!("the aggregate's signature does not decode: {error}"))?;
        let root = view.info.attestation_signing_root(&expected);
        if !signature.fast_aggregate_verify(&participants, root.as_slice()) {
            return Err(format!(
                "the aggregate signature of committee {committee_index} does not verify against its {} participants",
                participants.len()
            ));
        }
        Ok(())
    }
}

/// Slots of committee members kept.
const KEEP_MEMBERS_SLOTS: u64 = 64;

/// The aggregates agreement's proposals: this node's beacon node's
/// aggregate of each committee where the cluster aggregates.
pub struct AggregateProposals {
    context: Arc<AggregationContext>,
}

impl AggregateProposals {
    /// Proposals over `context`.
    pub fn new(context: Arc<AggregationContext>) -> Self {
        Self { context }
    }
}

/// This node's value for `slot`: its beacon node's aggregate of every
/// committee where the cluster aggregates (whose members it loads first).
async fn fetch_aggregates(
    context: Arc<AggregationContext>,
    slot: Slot,
) -> Result<SlotAggregates, String> {
    let committees = context.prepare(slot).await?;
    let view = context.chain.view()?;
    let fork = view.info.fork_at_slot(slot);
    let mut aggregates = Vec::new();
    for committee_index in committees.into_keys() {
        let data = context
            .agreed_data(&view, slot, committee_index)
            .ok_or_else(|| format!("no agreed attestation data for slot {slot}"))?;
        let data_root = data.tree_hash_root();
        let aggregate = if fork >= ForkName::Electra {
            context
                .beacon
                .aggregate_attestation_v2(data_root, slot, committee_index)
                .await
        } else {
            context
                .beacon
                .aggregate_attestation_v1(data_root, slot)
                .await
                .map(Attestation::Phase0)
        };
        match aggregate {
            Ok(aggregate) => aggregates.push(CommitteeAggregate {
                committee_index,
                aggregate,
            }),
            Err(error) => {
                debug!(slot, committee_index, %error, "no aggregate from the beacon node")
            }
        }
    }
    if aggregates.is_empty() {
        return Err(format!(
            "the beacon node has no aggregate for the cluster's committees at slot {slot}"
        ));
    }
    Ok(SlotAggregates { slot, aggregates })
}

impl Proposals<SlotAggregates> for AggregateProposals {
    fn label(&self) -> &'static str {
        AGGREGATES
    }

    fn leader_seed(&self, slot: Slot) -> u64 {
        // Another first leader than the attestation data's of the same slot.
        slot.wrapping_add(1)
    }

    fn agreed_duties(&self, value: &SlotAggregates) -> Option<(&'static str, usize)> {
        Some((super::publisher::AGGREGATE, value.aggregates.len()))
    }

    fn prefers_best(&self) -> bool {
        true
    }

    /// Per committee, the aggregate with the most participants among this
    /// node's own and its peers' offers that pass the proposal checks
    /// (this node's own first among equals).
    fn improve(
        &self,
        slot: Slot,
        own: SlotAggregates,
        offers: Vec<SlotAggregates>,
    ) -> SlotAggregates {
        let Ok(view) = self.context.chain.view() else {
            return own;
        };
        let mut best: BTreeMap<CommitteeIndex, Attestation> = BTreeMap::new();
        let offered = offers
            .into_iter()
            .filter(|offer| offer.slot == slot)
            .flat_map(|offer| offer.aggregates);
        for entry in own.aggregates.iter().cloned().chain(offered) {
            let participants = entry.aggregate.aggregation_bits().count_ones();
            let better = best
                .get(&entry.committee_index)
                .is_none_or(|held| participants > held.aggregation_bits().count_ones());
            if !better {
                continue;
            }
            let members = self.context.members_of(slot, entry.committee_index);
            match self.context.check_aggregate(
                &view,
                slot,
                entry.committee_index,
                &entry.aggregate,
                members.as_deref(),
            ) {
                Ok(()) => {
                    best.insert(entry.committee_index, entry.aggregate);
                }
                Err(reason) => {
                    debug!(slot, committee_index = entry.committee_index, %reason, "an offered aggregate is not valid here")
                }
            }
        }
        if best.is_empty() {
            return own;
        }
        SlotAggregates {
            slot,
            aggregates: best
                .into_iter()
                .take(MAX_AGGREGATES)
                .map(|(committee_index, aggregate)| CommitteeAggregate {
                    committee_index,
                    aggregate,
                })
                .collect(),
        }
    }

    fn fetch(&self, slot: Slot) -> ValueFuture<SlotAggregates> {
        Box::pin(fetch_aggregates(Arc::clone(&self.context), slot))
    }

    fn check(
        &self,
        slot: Slot,
        value: &SlotAggregates,
        _own: Option<&SlotAggregates>,
    ) -> Result<(), String> {
        let view = self.context.chain.view()?;
        if value.slot != slot {
            return Err(format!(
                "aggregates of slot {} proposed for slot {slot}",
                value.slot
            ));
        }
        if value.aggregates.is_empty() || value.aggregates.len() > MAX_AGGREGATES {
            return Err(format!("{} aggregates proposed", value.aggregates.len()));
        }
        let mut previous = None;
        for entry in &value.aggregates {
            if previous.is_some_and(|previous| previous >= entry.committee_index) {
                return Err("aggregates must be one per committee, ascending".into());
            }
            previous = Some(entry.committee_index);
            self.context.check_aggregate(
                &view,
                slot,
                entry.committee_index,
                &entry.aggregate,
                self.context
                    .members_of(slot, entry.committee_index)
                    .as_deref(),
            )?;
        }
        Ok(())
    }
}

/// One `SignedAggregateAndProof` item of a VC request, checked.
struct CheckedAggregate {
    duty: ClusterAttesterDuty,
    signing_root: Root,
    signature: [u8; 96],
}

/// The aggregation endpoints' logic of one middleware node.
pub struct Aggregator {
    context: Arc<AggregationContext>,
    agreement: Arc<Agreement<SlotAggregates>>,
    exchange: Arc<Exchange>,
    share_index: u64,
}

impl Aggregator {
    /// The aggregation logic of operator `share_index`.
    pub fn new(
        context: Arc<AggregationContext>,
        agreement: Arc<Agreement<SlotAggregates>>,
        exchange: Arc<Exchange>,
        share_index: u64,
    ) -> Self {
        Self {
            context,
            agreement,
            exchange,
            share_index,
        }
    }

    /// The context.
    pub fn context(&self) -> &Arc<AggregationContext> {
        &self.context
    }

    /// The aggregates agreement.
    pub fn agreement(&self) -> &Arc<Agreement<SlotAggregates>> {
        &self.agreement
    }

    fn view(&self) -> Result<Arc<ChainView>, ApiError> {
        self.context
            .chain
            .view()
            .map_err(|reason| ApiError::NotReady(format!("the middleware is not ready: {reason}")))
    }

    /// `GET aggregate_attestation`: the agreed aggregate of `data_root` at
    /// `slot` (of `committee_index` when the v2 endpoint names it), waiting
    /// for the agreement until `wait` has passed.
    pub async fn aggregate_attestation(
        &self,
        data_root: Root,
        slot: Slot,
        committee_index: Option<CommitteeIndex>,
        wait: Duration,
    ) -> Result<Attestation, ApiError> {
        // Before the chain is known, say so rather than wait for an agreement
        // that cannot start.
        self.view()?;
        let agreed = match self.agreement.decided(slot) {
            Some(agreed) => agreed,
            None => tokio::time::timeout(wait, self.agreement.agree(slot))
                .await
                .map_err(|_| {
                    ApiError::NotReady(format!(
                        "the cluster has not agreed on the aggregates of slot {slot} within {} ms",
                        wait.as_millis()
                    ))
                })?
                .map_err(|reason| {
                    ApiError::NotReady(format!("no agreed aggregates for slot {slot}: {reason}"))
                })?,
        };
        agreed
            .aggregates
            .iter()
            .find(|entry| {
                committee_index.is_none_or(|index| index == entry.committee_index)
                    && entry.aggregate.data().tree_hash_root() == data_root
            })
            .map(|entry| entry.aggregate.clone())
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "the cluster agreed on no aggregate of attestation data {data_root} at slot {slot}{}",
                    committee_index
                        .map(|index| format!(" for committee {index}"))
                        .unwrap_or_default()
                ))
            })
    }

    /// `POST aggregate_and_proofs`: partial signatures over the cluster's
    /// `AggregateAndProof`s; `fork` is the header's (v2) or none (v1).
    pub async fn post_aggregate_and_proofs(
        self: &Arc<Self>,
        fork: Option<ForkName>,
        items: Vec<Result<SignedAggregateAndProof, ItemError>>,
        wait: Duration,
    ) -> Result<(), ApiError> {
        let view = self.view()?;
        let total = items.len();
        let checked: Vec<Result<CheckedAggregate, String>> = items
            .into_iter()
            .map(|item| {
                item.map_err(|error| error.to_string())
                    .and_then(|signed| self.check(&view, fork, &signed))
            })
            .collect();
        let aggregator = Arc::clone(self);
        let (mut failures, waits) =
            tokio::task::spawn_blocking(move || aggregator.store_blocking(checked))
                .await
                .map_err(|error| ApiError::Internal(format!("aggregate worker failed: {error}")))?;
        // Each stored partial waits for its duty's combination until `wait`.
        let waiting = waits.into_iter().map(|(index, key)| {
            let store = Arc::clone(&self.context.store);
            async move {
                let combined = match store.wait_combined(&key) {
                    Ok(combined) => tokio::time::timeout(wait, combined).await.is_ok(),
                    Err(_) => false,
                };
                (!combined).then(|| {
                    (
                        index,
                        ItemError::Refused(format!(
                            "the {key} did not combine within {} ms: fewer than the threshold of operators signed it",
                            wait.as_millis()
                        )),
                    )
                })
            }
        });
        failures.extend(
            futures_util::future::join_all(waiting)
                .await
                .into_iter()
                .flatten(),
        );
        failures.sort_by_key(|(index, _)| *index);
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ApiError::InvalidItems { total, failures })
        }
    }

    /// The item must be the `AggregateAndProof` of a cluster aggregator with
    /// the combined selection proof and the agreed aggregate.
    fn check(
        &self,
        view: &ChainView,
        fork: Option<ForkName>,
        signed: &SignedAggregateAndProof,
    ) -> Result<CheckedAggregate, String> {
        let slot = signed.message.aggregate.data().slot;
        self.context
            .check_aggregate_and_proof(view, fork, signed, self.agreement.decided(slot))
    }

    /// Verifies and stores the checked partials (forwarding new ones to the
    /// peers); the refused items, and the duties the others wait for.
    #[allow(clippy::type_complexity)]
    fn store_blocking(
        &self,
        checked: Vec<Result<CheckedAggregate, String>>,
    ) -> (Vec<(usize, ItemError)>, Vec<(usize, DutyKey)>) {
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
        let mut batch: Vec<(usize, (DutyKey, Partial))> = Vec::new();
        for (index, decoded) in positions.into_iter().zip(decode_signatures(&encoded)) {
            let Ok(item) = &checked[index] else { continue };
            match decoded {
                Ok(signature) => batch.push((
                    index,
                    (
                        DutyKey::aggregate_and_proof(item.duty.validator, item.duty.slot),
                        Partial {
                            share_index: self.share_index,
                            signing_root: item.signing_root,
                            signature,
                        },
                    ),
                )),
                Err(error) => failures.push((
                    index,
                    ItemError::Refused(format!("signature does not decode: {error}")),
                )),
            }
        }
        let items: Vec<(DutyKey, Partial)> = batch.iter().map(|(_, item)| *item).collect();
        let outcomes =
            self.context
                .store
                .insert_batch_announcing(&items, Source::Local, |stored| {
                    let fresh = stored
                        .iter()
                        .filter_map(|position| items.get(*position))
                        .map(|(key, partial)| to_item(key, partial))
                        .collect();
                    self.exchange.broadcast(fresh);
                });
        let mut waits = Vec::new();
        for ((index, (key, _)), outcome) in batch.into_iter().zip(outcomes) {
            match outcome {
                Ok(_) => waits.push((index, key)),
                Err(error) => failures.push((index, ItemError::Refused(error.to_string()))),
            }
        }
        (failures, waits)
    }

    /// The `AggregateAndProof` the cluster signs for `key`, once its
    /// aggregates agreed and its selection proof combined.
    pub fn message(&self, view: &ChainView, key: &DutyKey) -> Option<AggregateAndProof> {
        let duty = *self
            .context
            .duties()
            .of_validator(&key.validator, key.slot)?;
        let selection_proof = self
            .context
            .store
            .combined(&DutyKey::attestation(key.validator, key.slot))?;
        let agreed = self.agreement.decided(key.slot)?;
        let aggregate = agreed.of_committee(duty.committee_index)?.clone();
        let _ = view;
        Some(AggregateAndProof {
            aggregator_index: duty.validator_index,
            aggregate,
            selection_proof: SignatureBytes(selection_proof.to_bytes()),
        })
    }

    /// The `SignedAggregateAndProof` to publish for a combined duty, or why
    /// there is none.
    pub fn build(
        &self,
        view: &ChainView,
        key: &DutyKey,
        signing_root: Root,
        signature: &Signature,
    ) -> Result<SignedAggregateAndProof, super::attester::BuildError> {
        use super::attester::BuildError;
        let message = self.message(view, key).ok_or_else(|| {
            BuildError::Missing(format!(
                "no agreed aggregate or combined selection proof for the {key}"
            ))
        })?;
        let expected = view.info.aggregate_and_proof_signing_root(&message);
        if expected != signing_root {
            return Err(BuildError::RootMismatch {
                combined: signing_root,
                agreed: expected,
            });
        }
        Ok(SignedAggregateAndProof {
            message,
            signature: SignatureBytes(signature.to_bytes()),
        })
    }
}

impl DutyRoots for Aggregator {
    fn expected_root(&self, view: &ChainView, key: &DutyKey) -> Option<Root> {
        match key.kind {
            DutyKind::AggregateAndProof => self
                .message(view, key)
                .map(|message| view.info.aggregate_and_proof_signing_root(&message)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::attestation::{AttestationPhase0, Bitfield};
    use crate::api::ChainInfo;
    use crate::cluster::{split_cluster, CreateConfig};
    use crate::crypto::bls::aggregate_signatures;
    use crate::crypto::interop::interop_secret_key;
    use crate::middleware::attester::AgreedFuture;
    use crate::middleware::store::StoreLimits;
    use crate::spec::{ChainSpec, Checkpoint, Fork};

    const SLOT: Slot = 9;
    const COMMITTEE: CommitteeIndex = 1;
    /// The committee's members, by registry index, in committee order.
    const MEMBERS: [ValidatorIndex; 4] = [40, 12, 7, 33];

    /// The agreement's decision, fixed (a test double of the agreement).
    struct Agreed(AttestationData);

    impl AgreedData for Agreed {
        fn decided(&self, slot: Slot) -> Option<AttestationData> {
            (slot == self.0.slot).then_some(self.0)
        }

        fn agree(&self, _slot: Slot) -> AgreedFuture {
            let data = self.0;
            Box::pin(async move { Ok(data) })
        }
    }

    fn view() -> ChainView {
        let spec = ChainSpec::minimal().with_genesis_fork(ForkName::Deneb);
        let version = spec.genesis_fork_version();
        ChainView {
            info: ChainInfo {
                spec,
                genesis_time: 0,
                genesis_validators_root: Root::repeat_byte(7),
                fork: Fork {
                    previous_version: version,
                    current_version: version,
                    epoch: 0,
                },
            },
            validators: HashMap::new(),
        }
    }

    /// The agreed data, as electra and the agreement carry it (index 0).
    fn agreed() -> AttestationData {
        AttestationData {
            slot: SLOT,
            index: 0,
            beacon_block_root: Root::repeat_byte(1),
            source: Checkpoint {
                epoch: 0,
                root: Root::repeat_byte(2),
            },
            target: Checkpoint {
                epoch: 1,
                root: Root::repeat_byte(3),
            },
        }
    }

    /// A context of one distributed validator (interop key 0), whose key
    /// shares are returned beside it.
    fn context_and_shares() -> (AggregationContext, BTreeMap<u64, crate::crypto::SecretKey>) {
        let secrets = [interop_secret_key(0)];
        let split = split_cluster(&CreateConfig::in_memory(4, Some(3)), &secrets).expect("cluster");
        let lock = split.lock;
        let context = AggregationContext::new(
            BeaconNodeClient::new("http://127.0.0.1:9").expect("client"),
            Arc::new(ChainState::new("a test")),
            Arc::new(PartialStore::new(
                &lock,
                StoreLimits::for_slots_per_epoch(8),
                SLOT,
            )),
            Arc::new(Agreed(agreed())),
            Arc::new(RwLock::new(AttesterDuties::default())),
        );
        context.keys.lock().expect("keys").extend(
            MEMBERS
                .iter()
                .map(|index| (*index, interop_secret_key(*index).public_key())),
        );
        let shares = split.shares.into_iter().next().expect("one validator");
        (context, shares)
    }

    fn context() -> AggregationContext {
        context_and_shares().0
    }

    /// The committee's aggregate of `data` signed by the members at
    /// `positions` (each over `signed_data`'s root where given).
    fn aggregate(
        view: &ChainView,
        data: AttestationData,
        positions: &[usize],
        signed_data: Option<AttestationData>,
    ) -> Attestation {
        let root = view
            .info
            .attestation_signing_root(&signed_data.unwrap_or(data));
        let mut bits = Bitfield::zeros(MEMBERS.len());
        let signatures: Vec<Signature> = positions
            .iter()
            .map(|position| {
                bits.set(*position).expect("in the committee");
                interop_secret_key(MEMBERS[*position]).sign(root.as_slice())
            })
            .collect();
        let signature = if signatures.is_empty() {
            SignatureBytes([0xc0; 96])
        } else {
            SignatureBytes(
                aggregate_signatures(&signatures)
                    .expect("aggregate")
                    .to_bytes(),
            )
        };
        Attestation::Phase0(AttestationPhase0 {
            aggregation_bits: bits,
            data,
            signature,
        })
    }

    fn check(context: &AggregationContext, aggregate: &Attestation) -> Result<(), String> {
        context.check_aggregate(&view(), SLOT, COMMITTEE, aggregate, Some(&MEMBERS))
    }

    #[test]
    fn a_proposed_aggregate_is_checked_against_data_committee_and_signature() {
        let context = context();
        let view = view();
        let data = data_for_committee(&agreed(), COMMITTEE, ForkName::Deneb);
        assert_eq!(
            check(&context, &aggregate(&view, data, &[0, 2, 3], None)),
            Ok(())
        );

        let refusals = [
            (
                aggregate(&view, data, &[0, 2, 3], Some(agreed())),
                "does not verify against its 3 participants",
            ),
            (
                aggregate(
                    &view,
                    AttestationData {
                        beacon_block_root: Root::repeat_byte(9),
                        ..data
                    },
                    &[0, 1],
                    None,
                ),
                "is for other data than the agreed",
            ),
            (
                aggregate(&view, AttestationData { index: 0, ..data }, &[0], None),
                "names committee Some(0)",
            ),
            (aggregate(&view, data, &[], None), "has no participant"),
        ];
        for (aggregate, expected) in refusals {
            let refused = check(&context, &aggregate).expect_err(expected);
            assert!(
                refused.contains(expected),
                "{refused:?} should say {expected:?}"
            );
        }
        let Attestation::Phase0(mut short) = aggregate(&view, data, &[1], None) else {
            unreachable!("deneb aggregates are phase0 attestations");
        };
        short.aggregation_bits = Bitfield::with_bit(3, 1).expect("bit");
        let refused = check(&context, &Attestation::Phase0(short)).expect_err("3 bits");
        assert!(
            refused.contains("has 3 bits, the committee 4 members"),
            "{refused}"
        );
        let unknown = context.check_aggregate(
            &view,
            SLOT,
            COMMITTEE,
            &aggregate(&view, data, &[0], None),
            None,
        );
        assert!(unknown
            .expect_err("no committee")
            .contains("is not known here"));
    }

    #[test]
    fn the_leader_proposes_the_valid_aggregate_with_the_most_participants() {
        let context = Arc::new(context());
        context.chain.set(view());
        context
            .members
            .lock()
            .expect("members")
            .insert((SLOT, COMMITTEE), MEMBERS.to_vec());
        let view = view();
        let data = data_for_committee(&agreed(), COMMITTEE, ForkName::Deneb);
        let value = |aggregate: Attestation| SlotAggregates {
            slot: SLOT,
            aggregates: vec![CommitteeAggregate {
                committee_index: COMMITTEE,
                aggregate,
            }],
        };
        let own = value(aggregate(&view, data, &[0], None));
        let larger = aggregate(&view, data, &[0, 2, 3], None);
        // Every member, but signed over other data: not valid, not taken.
        let forged = aggregate(&view, data, &[0, 1, 2, 3], Some(agreed()));
        let proposals = AggregateProposals::new(Arc::clone(&context));
        assert!(proposals.prefers_best());
        let offers = vec![
            value(forged.clone()),
            value(larger.clone()),
            value(aggregate(&view, data, &[1], None)),
        ];
        let best = proposals.improve(SLOT, own.clone(), offers);
        assert_eq!(best, value(larger));
        assert_eq!(proposals.check(SLOT, &best, Some(&own)), Ok(()));
        // Without better offers, this node's own.
        assert_eq!(
            proposals.improve(SLOT, own.clone(), vec![value(forged)]),
            own
        );
    }

    #[test]
    fn an_aggregate_and_proof_needs_the_combined_proof_and_the_agreed_aggregate() {
        let (context, shares) = context_and_shares();
        let view = view();
        let group = interop_secret_key(0).public_key();
        // The distributed validator is member 12 at position 1 of the committee.
        let duty = ClusterAttesterDuty {
            validator: group,
            validator_index: MEMBERS[1],
            slot: SLOT,
            committee_index: COMMITTEE,
            committee_length: MEMBERS.len() as u64,
            position: 1,
        };
        context
            .duties
            .write()
            .expect("duties")
            .set_epoch(1, vec![duty]);
        let selection_root = view.info.selection_proof_signing_root(SLOT);
        let partial = |share: u64| shares[&share].sign(selection_root.as_slice());
        for share in 1..=3 {
            let outcome = context.store.insert(
                &DutyKey::attestation(group, SLOT),
                Partial {
                    share_index: share,
                    signing_root: selection_root,
                    signature: partial(share),
                },
                Source::Peer(share),
            );
            assert!(outcome.is_ok(), "{outcome:?}");
        }
        let combined = context
            .store
            .combined(&DutyKey::attestation(group, SLOT))
            .expect("combined at the threshold");
        let data = data_for_committee(&agreed(), COMMITTEE, ForkName::Deneb);
        let agreed_aggregate = aggregate(&view, data, &[0, 2], None);
        let decision = SlotAggregates {
            slot: SLOT,
            aggregates: vec![CommitteeAggregate {
                committee_index: COMMITTEE,
                aggregate: agreed_aggregate.clone(),
            }],
        };
        let signed = |aggregator_index, aggregate: &Attestation, proof: &Signature| {
            SignedAggregateAndProof {
                message: AggregateAndProof {
                    aggregator_index,
                    aggregate: aggregate.clone(),
                    selection_proof: SignatureBytes(proof.to_bytes()),
                },
                signature: SignatureBytes(partial(1).to_bytes()),
            }
        };
        let check = |item: &SignedAggregateAndProof, agreed: Option<SlotAggregates>| {
            context
                .check_aggregate_and_proof(&view, None, item, agreed)
                .map(|checked| checked.duty)
        };
        let good = signed(MEMBERS[1], &agreed_aggregate, &combined);
        assert_eq!(check(&good, Some(decision.clone())), Ok(duty));

        let refusals = [
            (
                signed(MEMBERS[1], &agreed_aggregate, &partial(1)),
                Some(decision.clone()),
                "is not the cluster's combined one",
            ),
            (
                signed(
                    MEMBERS[1],
                    &aggregate(&view, data, &[0, 2, 3], None),
                    &combined,
                ),
                Some(decision.clone()),
                "is not the one the cluster agreed on",
            ),
            (
                good.clone(),
                None,
                "has not agreed on the aggregates of slot 9",
            ),
            (
                signed(MEMBERS[0], &agreed_aggregate, &combined),
                Some(decision),
                "validator 40 has no attester duty of this cluster at slot 9",
            ),
        ];
        for (item, agreed, expected) in refusals {
            let refused = check(&item, agreed).expect_err(expected);
            assert!(
                refused.contains(expected),
                "{refused:?} should say {expected:?}"
            );
        }
    }
}
