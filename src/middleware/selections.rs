//! What the middleware answers its validator client, without HTTP: the
//! standard `beacon_committee_selections` and `sync_committee_selections`
//! (the combined selection proofs) and the seed's `is_aggregator` (booleans
//! decided on the combined proof).
//!
//! Every item is handled on its own: its partial is verified against this
//! operator's public share and stored, new partials go to the peers, and the
//! item waits for its own duty only, until the request's deadline. Then the
//! request is answered with what reached the threshold; the log says what did
//! not. An item never waits for another item's peers, so a request for a
//! whole epoch returns the slots the cluster has combined by its deadline
//! while a request for one slot returns as soon as that slot is combined.
//!
//! The deadline is on the validator client's clock: the request's timeout
//! from its arrival, cut short to the earliest moment a VC stops waiting for
//! one of its duties still ahead ([`vc_cutoff`]: a third of the slot after
//! the slot's start for attestation selections, two thirds for sync ones),
//! less [`CUTOFF_MARGIN_DIVISOR`]'s margin. A VC drops the whole answer once
//! it stops waiting (Lodestar races the request against that moment), so an
//! answer is only useful before the earliest of its duties' cut-offs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::chain::{ChainState, ChainView};
use super::duty::{DutyKey, DutyKind, Partial, Source};
use super::exchange::{to_item, Exchange};
use super::listeners::Listeners;
use super::metrics::{ItemResult, Metrics, RequestOutcome};
use super::store::PartialStore;
use crate::api::error::{ApiError, ItemError};
use crate::api::types::{
    BeaconCommitteeSelection, CommitteeData, IsAggregatorRequestItem, SignatureBytes, StateId,
    SyncCommitteeSelection,
};
use crate::api::{BeaconNodeClient, ClientError};
use crate::crypto::batch::decode_signatures;
use crate::crypto::Signature;
use crate::spec::selection::is_aggregator;
use crate::spec::signing::compute_epoch_at_slot;
use crate::spec::time::{unix_now, SlotClock};
use crate::spec::{Epoch, Slot, ValidatorIndex};

/// The endpoint names used in logs and metrics.
pub const BEACON_COMMITTEE_SELECTIONS: &str = "beacon_committee_selections";
/// See [`BEACON_COMMITTEE_SELECTIONS`].
pub const SYNC_COMMITTEE_SELECTIONS: &str = "sync_committee_selections";
/// See [`BEACON_COMMITTEE_SELECTIONS`].
pub const IS_AGGREGATOR: &str = "is_aggregator";

/// An answer is due a slot's 1/32 (375 ms of a 12 s slot) before the VC's
/// cut-off: room for the answer's trip and parsing (a 32k-item JSON answer
/// is megabytes; late answers to Lodestar missed it by 3-32 ms), timer
/// lateness on a loaded host and the clock skew of two NTP-synced hosts
/// (tens of ms), while it takes less than a tenth of the third of a slot
/// the cluster has to combine attestation selections.
pub const CUTOFF_MARGIN_DIVISOR: u32 = 32;

/// When a validator client stops waiting for the combined selection proof
/// of a duty of `kind` at `slot` (Lodestar's cut-offs, which follow the
/// spec's timing): a third into the slot for attestation selections, since
/// an aggregator must subscribe to its subnet before the attestations of the
/// slot are made; two thirds for sync selections, when contributions are made.
/// (For the published duties: two thirds for an attestation, when the slot's
/// aggregates are made; the slot's end for an aggregate.)
pub fn vc_cutoff(clock: &SlotClock, kind: DutyKind, slot: Slot) -> Duration {
    match kind {
        DutyKind::AttestationSelection => clock.slot_fraction(slot, 1, 3),
        DutyKind::SyncSelection { .. } | DutyKind::Attestation => clock.slot_fraction(slot, 2, 3),
        DutyKind::AggregateAndProof => clock.slot_start(slot.saturating_add(1)),
    }
}

/// How long a request that arrives at `now` (time since the Unix epoch) may
/// wait: `timeout`, cut short to the earliest cut-off of `duties` still
/// ahead, less the margin. Cut-offs already passed (a VC asking late, or a
/// chain whose slots are not the wall clock's) do not shorten it.
pub fn wait_for(
    clock: &SlotClock,
    timeout: Duration,
    duties: impl IntoIterator<Item = (DutyKind, Slot)>,
    now: Duration,
) -> Duration {
    let margin = clock.slot_duration() / CUTOFF_MARGIN_DIVISOR;
    duties
        .into_iter()
        .filter_map(|(kind, slot)| vc_cutoff(clock, kind, slot).checked_sub(now))
        .filter(|until| !until.is_zero())
        .map(|until| until.saturating_sub(margin))
        .fold(timeout, Duration::min)
}

/// One VC item before its validator is resolved and its proof decoded.
struct RawDuty {
    validator_index: ValidatorIndex,
    kind: DutyKind,
    slot: Slot,
    proof: [u8; 96],
}

/// What became of one item by the deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// The combined selection proof, verified against the group key.
    Combined(Signature),
    /// Fewer than the threshold of partials by the deadline.
    NotCombined,
    /// Refused, for the reason given.
    Invalid(String),
}

/// One selection item a middleware answered its validator client, for an
/// observer that judges the answers (the devnet with external clients,
/// which cannot look inside those clients): the client decides on
/// `combined` as the undivided key would on its own proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnsweredSelection {
    /// The validator the item named.
    pub validator_index: ValidatorIndex,
    /// The duty's slot.
    pub slot: Slot,
    /// Attestation or sync (with its subcommittee) selection.
    pub kind: DutyKind,
    /// The combined proof answered, or why the item got none.
    pub combined: Result<Signature, String>,
    /// From the request's arrival to its answer.
    pub latency: Duration,
}

/// The VC-facing selection logic of one middleware node; shared by the routes.
pub struct Selections {
    store: Arc<PartialStore>,
    chain: Arc<ChainState>,
    exchange: Arc<Exchange>,
    metrics: Arc<Metrics>,
    beacon: BeaconNodeClient,
    share_index: u64,
    /// The time a request may wait; `None` is a third of the chain's slot.
    timeout: Option<Duration>,
    /// Who hears of every answered item ([`Selections::watch_answers`]).
    watchers: Listeners<Vec<AnsweredSelection>>,
}

impl Selections {
    /// The selection logic of operator `share_index`, answering each request
    /// within `timeout` of its arrival (`None`: a third of a slot).
    pub fn new(
        store: Arc<PartialStore>,
        chain: Arc<ChainState>,
        exchange: Arc<Exchange>,
        metrics: Arc<Metrics>,
        beacon: BeaconNodeClient,
        share_index: u64,
        timeout: Option<Duration>,
    ) -> Self {
        Self {
            store,
            chain,
            exchange,
            metrics,
            beacon,
            share_index,
            timeout,
            watchers: Listeners::new(),
        }
    }

    /// A channel that receives every selection request's items as answered
    /// (is_aggregator items with the combined proof its boolean was decided
    /// on). Nothing is recorded while nobody watches.
    pub fn watch_answers(&self) -> mpsc::UnboundedReceiver<Vec<AnsweredSelection>> {
        self.watchers.subscribe()
    }

    /// Tells the watchers what the items of one request got.
    fn tell_watchers(
        &self,
        duties: &[Option<(ValidatorIndex, DutyKind, Slot)>],
        answers: &[Answer],
        latency: Duration,
    ) {
        if self.watchers.is_empty() {
            return;
        }
        let answered: Vec<AnsweredSelection> = duties
            .iter()
            .zip(answers)
            .filter_map(|(duty, answer)| {
                let (validator_index, kind, slot) = (*duty)?;
                let combined = match answer {
                    Answer::Combined(proof) => Ok(*proof),
                    Answer::NotCombined => Err(format!(
                        "fewer than {} partials by the request's deadline",
                        self.store.threshold()
                    )),
                    Answer::Invalid(reason) => Err(reason.clone()),
                };
                Some(AnsweredSelection {
                    validator_index,
                    slot,
                    kind,
                    combined,
                    latency,
                })
            })
            .collect();
        self.watchers.send(answered);
    }

    /// The time a request may wait for its duties on the chain of `view`,
    /// from its arrival, before its duties' cut-offs shorten it ([`wait_for`]).
    pub fn timeout(&self, view: &ChainView) -> Duration {
        self.timeout
            .unwrap_or_else(|| Duration::from_secs(view.info.spec.seconds_per_slot.max(1)) / 3)
    }

    /// How long a request of `raw` items arriving at `now` may wait: see
    /// [`wait_for`]; the plain timeout if the chain has no slot clock.
    fn wait_for(
        &self,
        view: &ChainView,
        raw: &[Result<RawDuty, String>],
        now: Duration,
    ) -> Duration {
        let timeout = self.timeout(view);
        let Ok(clock) = view.info.slot_clock() else {
            return timeout;
        };
        let duties = raw.iter().flatten().map(|duty| (duty.kind, duty.slot));
        wait_for(&clock, timeout, duties, now)
    }

    /// `Err(503)` while the middleware has not learnt the chain from its
    /// beacon node.
    pub fn ready(&self) -> Result<Arc<ChainView>, ApiError> {
        self.chain
            .view()
            .map_err(|reason| ApiError::NotReady(format!("the middleware is not ready: {reason}")))
    }

    /// `beacon_committee_selections`: the combined proof of every item that
    /// reached the threshold by the deadline, in request order.
    pub async fn beacon_committee_selections(
        &self,
        items: Vec<Result<BeaconCommitteeSelection, ItemError>>,
    ) -> Result<Vec<BeaconCommitteeSelection>, ApiError> {
        self.combined_items(BEACON_COMMITTEE_SELECTIONS, items)
            .await
    }

    /// `sync_committee_selections`: as [`Self::beacon_committee_selections`],
    /// one duty per (validator, slot, subcommittee).
    pub async fn sync_committee_selections(
        &self,
        items: Vec<Result<SyncCommitteeSelection, ItemError>>,
    ) -> Result<Vec<SyncCommitteeSelection>, ApiError> {
        self.combined_items(SYNC_COMMITTEE_SELECTIONS, items).await
    }

    /// The items whose duty combined by the deadline, each with the combined
    /// proof in place of its partial, in request order.
    async fn combined_items<T: SelectionItem>(
        &self,
        endpoint: &'static str,
        items: Vec<Result<T, ItemError>>,
    ) -> Result<Vec<T>, ApiError> {
        let answers = self.answer(&self.ready()?, endpoint, &items).await;
        self.count_request(endpoint, answers.as_ref().map(|a| outcome_of(a)));
        Ok(items
            .into_iter()
            .zip(answers?)
            .filter_map(|(item, answer)| match (item, answer) {
                (Ok(item), Answer::Combined(proof)) => Some(item.with_proof(proof)),
                _ => None,
            })
            .collect())
    }

    /// Counts a request once, as complete, partial or refused.
    fn count_request(&self, endpoint: &'static str, outcome: Result<RequestOutcome, &ApiError>) {
        self.metrics
            .request(endpoint, outcome.unwrap_or(RequestOutcome::Refused));
    }

    /// The seed's `is_aggregator`: the slot signatures are partials; the
    /// decision is taken on the combined one, with the committee size the
    /// beacon node resolves. One boolean per item in request order. Its
    /// answer is positional, so an item cannot be left out: items that are
    /// not valid selection requests get 400 naming each, and items whose
    /// partials did not reach the threshold by the deadline get 503 naming
    /// each (a `false` would tell the VC not to aggregate when nobody knows
    /// yet); their partials stay, so asking again answers them.
    pub async fn is_aggregator(
        &self,
        items: Vec<Result<IsAggregatorRequestItem, ItemError>>,
    ) -> Result<Vec<bool>, ApiError> {
        let view = self.ready()?;
        let decisions = self.decide_items(&view, items).await;
        self.count_request(
            IS_AGGREGATOR,
            decisions.as_ref().map(|_| RequestOutcome::Complete),
        );
        decisions
    }

    /// [`Self::is_aggregator`] before its request is counted.
    async fn decide_items(
        &self,
        view: &Arc<ChainView>,
        items: Vec<Result<IsAggregatorRequestItem, ItemError>>,
    ) -> Result<Vec<bool>, ApiError> {
        let answers = self.answer(view, IS_AGGREGATOR, &items).await?;
        if answers
            .iter()
            .any(|answer| matches!(answer, Answer::Invalid(_)))
        {
            return Err(invalid_items(&answers));
        }
        let threshold = self.store.threshold();
        let not_combined = failures(&answers, |answer| {
            matches!(answer, Answer::NotCombined).then(|| {
                format!(
                    "fewer than {threshold} partials reached this node by the deadline; ask again"
                )
            })
        });
        if !not_combined.is_empty() {
            return Err(ApiError::ItemsNotReady {
                total: answers.len(),
                failures: not_combined,
            });
        }
        // Every item combined: each is answered, in request order.
        let combined: Vec<IsAggregatorRequestItem> = items
            .into_iter()
            .zip(answers)
            .filter_map(|(item, answer)| match (item, answer) {
                (Ok(item), Answer::Combined(proof)) => Some(item.with_proof(proof)),
                _ => None,
            })
            .collect();
        self.decide(view, &combined).await
    }

    /// Stores and shares the partials, then waits for each duty until the deadline.
    async fn answer<T: SelectionItem>(
        &self,
        view: &Arc<ChainView>,
        endpoint: &'static str,
        items: &[Result<T, ItemError>],
    ) -> Result<Vec<Answer>, ApiError> {
        let raw: Vec<Result<RawDuty, String>> = items
            .iter()
            .map(|item| item.as_ref().map(T::duty).map_err(ToString::to_string))
            .collect();
        let duties: Vec<Option<(ValidatorIndex, DutyKind, Slot)>> = raw
            .iter()
            .map(|duty| {
                duty.as_ref()
                    .ok()
                    .map(|d| (d.validator_index, d.kind, d.slot))
            })
            .collect();
        let slots: Vec<Option<Slot>> = duties.iter().map(|d| d.map(|(_, _, slot)| slot)).collect();
        let started = Instant::now();
        let deadline = started + self.wait_for(view, &raw, unix_now());
        let local = LocalBatch {
            view: Arc::clone(view),
            store: Arc::clone(&self.store),
            exchange: Arc::clone(&self.exchange),
            share_index: self.share_index,
        };
        let (mut answers, waits) = tokio::task::spawn_blocking(move || local.store(raw))
            .await
            .map_err(|error| ApiError::Internal(format!("partial store worker failed: {error}")))?;
        for (index, answer) in self.wait_all(waits, deadline).await {
            answers[index] = Some(answer);
        }
        let answers: Vec<Answer> = answers
            .into_iter()
            .map(|answer| answer.unwrap_or(Answer::NotCombined))
            .collect();
        let latency = started.elapsed();
        self.report(endpoint, &slots, &answers, latency);
        self.tell_watchers(&duties, &answers, latency);
        if !answers.is_empty() && answers.iter().all(|a| matches!(a, Answer::Invalid(_))) {
            return Err(invalid_items(&answers));
        }
        Ok(answers)
    }

    /// Waits for every duty at once, each until `deadline`.
    async fn wait_all(
        &self,
        waits: Vec<(usize, DutyKey)>,
        deadline: Instant,
    ) -> Vec<(usize, Answer)> {
        let futures = waits.into_iter().map(|(index, key)| {
            let wait = self.store.wait_combined(&key);
            async move {
                let answer = match wait {
                    Ok(wait) => match tokio::time::timeout_at(deadline, wait).await {
                        Ok(proof) => Answer::Combined(proof),
                        Err(_) => Answer::NotCombined,
                    },
                    Err(error) => Answer::Invalid(error.to_string()),
                };
                (index, answer)
            }
        });
        futures_util::future::join_all(futures).await
    }

    /// Counts the items and logs what was not combined, and why.
    fn report(
        &self,
        endpoint: &'static str,
        slots: &[Option<Slot>],
        answers: &[Answer],
        elapsed: Duration,
    ) {
        let mut counts: HashMap<ItemResult, usize> = HashMap::new();
        for answer in answers {
            let result = match answer {
                Answer::Combined(_) => ItemResult::Combined,
                Answer::NotCombined => ItemResult::NotCombined,
                Answer::Invalid(_) => ItemResult::Invalid,
            };
            *counts.entry(result).or_default() += 1;
        }
        for (result, count) in &counts {
            self.metrics.items(endpoint, *result, *count);
        }
        let combined = counts.get(&ItemResult::Combined).copied().unwrap_or(0);
        let not_combined = counts.get(&ItemResult::NotCombined).copied().unwrap_or(0);
        let invalid = counts.get(&ItemResult::Invalid).copied().unwrap_or(0);
        let elapsed_ms = elapsed.as_millis();
        info!(
            endpoint,
            items = answers.len(),
            combined,
            not_combined,
            invalid,
            elapsed_ms,
            "answered a selection request"
        );
        let late: Vec<Slot> = answers
            .iter()
            .zip(slots)
            .filter(|(answer, _)| matches!(answer, Answer::NotCombined))
            .filter_map(|(_, slot)| *slot)
            .collect();
        if let (Some(first), Some(last)) = (late.iter().min(), late.iter().max()) {
            warn!(
                endpoint,
                not_combined,
                first_slot = first,
                last_slot = last,
                threshold = self.store.threshold(),
                "some duties had too few partials by the request's deadline; they are answered as soon as the other operators' partials arrive"
            );
        }
        for (index, answer) in answers.iter().enumerate() {
            if let Answer::Invalid(reason) = answer {
                warn!(
                    endpoint,
                    index,
                    reason = reason.as_str(),
                    "refused a selection item"
                );
            }
        }
    }

    /// The decisions of combined `is_aggregator` items: the beacon node's own
    /// `is_aggregator` when it serves one, else the spec rule on the
    /// committee length from its committees endpoint.
    async fn decide(
        &self,
        view: &ChainView,
        items: &[IsAggregatorRequestItem],
    ) -> Result<Vec<bool>, ApiError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        match self.beacon.is_aggregator(items).await {
            Ok(answers) if answers.len() == items.len() => Ok(answers),
            Ok(answers) => Err(ApiError::Internal(format!(
                "the beacon node answered {} decisions for {} items",
                answers.len(),
                items.len()
            ))),
            Err(ClientError::Status {
                status: 404 | 405 | 501,
                ..
            }) => self.decide_from_committees(view, items).await,
            Err(ClientError::Status {
                status: 400,
                message,
                failures,
                ..
            }) => {
                let failures: Vec<(usize, ItemError)> = failures
                    .into_iter()
                    .filter(|failure| failure.index < items.len())
                    .map(|failure| (failure.index, ItemError::Refused(failure.message)))
                    .collect();
                Err(if failures.is_empty() {
                    ApiError::BadRequest(format!("the beacon node refused the items: {message}"))
                } else {
                    ApiError::InvalidItems {
                        total: items.len(),
                        failures,
                    }
                })
            }
            Err(error) => Err(ApiError::NotReady(format!(
                "the beacon node could not decide: {error}"
            ))),
        }
    }

    /// The spec rule on committee lengths from `GET .../committees?epoch=`,
    /// checking membership as the beacon node's endpoint would.
    async fn decide_from_committees(
        &self,
        view: &ChainView,
        items: &[IsAggregatorRequestItem],
    ) -> Result<Vec<bool>, ApiError> {
        let preset = &view.info.spec.preset;
        let mut committees: HashMap<Epoch, Vec<CommitteeData>> = HashMap::new();
        let mut decisions = Vec::with_capacity(items.len());
        let mut failures = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let epoch = compute_epoch_at_slot(item.slot, preset);
            let list = match committees.entry(epoch) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    let fetched = self
                        .beacon
                        .state_committees(StateId::Head, Some(epoch))
                        .await
                        .map_err(|error| {
                            ApiError::NotReady(format!(
                                "the beacon node has no committees of epoch {epoch}: {error}"
                            ))
                        })?;
                    entry.insert(fetched)
                }
            };
            let members = list
                .iter()
                .find(|c| c.slot == item.slot && c.index == item.committee_index);
            match members {
                Some(committee) if committee.validators.contains(&item.validator_index) => {
                    let length = committee.validators.len() as u64;
                    decisions.push(is_aggregator(length, &item.slot_signature.0, preset));
                }
                _ => {
                    failures.push((
                        index,
                        ItemError::NotInCommittee {
                            validator_index: item.validator_index,
                            slot: item.slot,
                            committee_index: item.committee_index,
                        },
                    ));
                    decisions.push(false);
                }
            }
        }
        if failures.is_empty() {
            Ok(decisions)
        } else {
            Err(ApiError::InvalidItems {
                total: items.len(),
                failures,
            })
        }
    }
}

/// What storing one VC request's partials needs, off the async workers.
struct LocalBatch {
    view: Arc<ChainView>,
    store: Arc<PartialStore>,
    exchange: Arc<Exchange>,
    share_index: u64,
}

/// Each item's answer where it is already known, and the duties to wait for
/// (item index, duty).
type Stored = (Vec<Option<Answer>>, Vec<(usize, DutyKey)>);

impl LocalBatch {
    /// Resolves each item's validator, decodes the proofs on all cores,
    /// verifies and stores the partials, and forwards the new ones to the
    /// peers as soon as they are verified (before this node combines).
    fn store(self, raw: Vec<Result<RawDuty, String>>) -> Stored {
        let mut answers: Vec<Option<Answer>> = Vec::with_capacity(raw.len());
        let mut resolved: Vec<(usize, DutyKey, [u8; 96])> = Vec::new();
        for (index, item) in raw.into_iter().enumerate() {
            match item.and_then(|duty| self.resolve(duty)) {
                Ok((key, proof)) => {
                    resolved.push((index, key, proof));
                    answers.push(None);
                }
                Err(reason) => answers.push(Some(Answer::Invalid(reason))),
            }
        }
        let encoded: Vec<[u8; 96]> = resolved.iter().map(|(_, _, proof)| *proof).collect();
        let mut batch: Vec<(usize, (DutyKey, Partial))> = Vec::with_capacity(resolved.len());
        for ((index, key, _), decoded) in resolved.into_iter().zip(decode_signatures(&encoded)) {
            match (decoded, self.view.duty_signing_root(&key)) {
                (Ok(signature), Some(signing_root)) => {
                    let partial = Partial {
                        share_index: self.share_index,
                        signing_root,
                        signature,
                    };
                    batch.push((index, (key, partial)));
                }
                (Ok(_), None) => {
                    answers[index] = Some(Answer::Invalid(format!("the {key} is no selection")));
                }
                (Err(error), _) => {
                    answers[index] = Some(Answer::Invalid(format!(
                        "selection proof does not decode: {error}"
                    )));
                }
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
        let mut waits = Vec::with_capacity(batch.len());
        for ((index, (key, _)), outcome) in batch.into_iter().zip(outcomes) {
            match outcome {
                Ok(_) => waits.push((index, key)),
                Err(error) => answers[index] = Some(Answer::Invalid(error.to_string())),
            }
        }
        (answers, waits)
    }

    /// The item's duty (its validator's group key) and proof bytes, or why it
    /// is not a duty of this cluster.
    fn resolve(&self, duty: RawDuty) -> Result<(DutyKey, [u8; 96]), String> {
        let validator = self.view.validator(duty.validator_index).ok_or_else(|| {
            format!(
                "validator index {} is not a validator of this cluster known to the beacon node",
                duty.validator_index
            )
        })?;
        let key = DutyKey {
            kind: duty.kind,
            validator,
            slot: duty.slot,
        };
        Ok((key, duty.proof))
    }
}

/// A VC request item the middleware answers: its duty, and the item again
/// with the combined proof in place of the partial.
trait SelectionItem {
    /// The duty and the partial proof the item carries.
    fn duty(&self) -> RawDuty;
    /// The item with `proof` as its proof.
    fn with_proof(self, proof: Signature) -> Self;
}

impl SelectionItem for BeaconCommitteeSelection {
    fn duty(&self) -> RawDuty {
        RawDuty {
            validator_index: self.validator_index,
            kind: DutyKind::AttestationSelection,
            slot: self.slot,
            proof: self.selection_proof.0,
        }
    }

    fn with_proof(self, proof: Signature) -> Self {
        let selection_proof = SignatureBytes(proof.to_bytes());
        BeaconCommitteeSelection {
            selection_proof,
            ..self
        }
    }
}

impl SelectionItem for SyncCommitteeSelection {
    fn duty(&self) -> RawDuty {
        RawDuty {
            validator_index: self.validator_index,
            kind: DutyKind::SyncSelection {
                subcommittee_index: self.subcommittee_index,
            },
            slot: self.slot,
            proof: self.selection_proof.0,
        }
    }

    fn with_proof(self, proof: Signature) -> Self {
        let selection_proof = SignatureBytes(proof.to_bytes());
        SyncCommitteeSelection {
            selection_proof,
            ..self
        }
    }
}

impl SelectionItem for IsAggregatorRequestItem {
    fn duty(&self) -> RawDuty {
        RawDuty {
            validator_index: self.validator_index,
            kind: DutyKind::AttestationSelection,
            slot: self.slot,
            proof: self.slot_signature.0,
        }
    }

    fn with_proof(self, proof: Signature) -> Self {
        let slot_signature = SignatureBytes(proof.to_bytes());
        IsAggregatorRequestItem {
            slot_signature,
            ..self
        }
    }
}

/// 400 naming every refused item.
fn invalid_items(answers: &[Answer]) -> ApiError {
    ApiError::InvalidItems {
        total: answers.len(),
        failures: failures(answers, |answer| match answer {
            Answer::Invalid(reason) => Some(reason.clone()),
            _ => None,
        }),
    }
}

/// The items `reason` gives a reason for, by request index.
fn failures(
    answers: &[Answer],
    reason: impl Fn(&Answer) -> Option<String>,
) -> Vec<(usize, ItemError)> {
    answers
        .iter()
        .enumerate()
        .filter_map(|(index, answer)| Some((index, ItemError::Refused(reason(answer)?))))
        .collect()
}

/// How a request whose items got `answers` ended.
fn outcome_of(answers: &[Answer]) -> RequestOutcome {
    if answers.iter().all(|a| matches!(a, Answer::Combined(_))) {
        RequestOutcome::Complete
    } else {
        RequestOutcome::Partial
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYNC: DutyKind = DutyKind::SyncSelection {
        subcommittee_index: 1,
    };

    /// 12 s slots from genesis at 1000 s.
    fn clock() -> SlotClock {
        SlotClock::new(1000, 12).unwrap()
    }

    fn at(seconds: f64) -> Duration {
        Duration::from_secs_f64(1000.0 + seconds)
    }

    #[test]
    fn the_earliest_cut_off_ahead_less_the_margin_bounds_the_wait() {
        let timeout = Duration::from_secs(4);
        let margin = Duration::from_millis(375);
        let attestation = DutyKind::AttestationSelection;
        // Asked 0.5 s into slot 10: its attestation cut-off is 4 s into the
        // slot, so 3.5 s less the margin, not the 4 s timeout.
        let now = at(10.0 * 12.0 + 0.5);
        assert_eq!(
            wait_for(&clock(), timeout, [(attestation, 10)], now),
            Duration::from_millis(3500) - margin
        );
        // A sync duty of the slot waits until two thirds: the timeout first.
        assert_eq!(wait_for(&clock(), timeout, [(SYNC, 10)], now), timeout);
        let long = Duration::from_secs(10);
        assert_eq!(
            wait_for(&clock(), long, [(SYNC, 10)], now),
            Duration::from_millis(7500) - margin
        );
        // The earliest of a request's cut-offs bounds the whole request.
        assert_eq!(
            wait_for(
                &clock(),
                long,
                [(SYNC, 10), (attestation, 11), (attestation, 10)],
                now
            ),
            Duration::from_millis(3500) - margin
        );
    }

    #[test]
    fn cut_offs_already_passed_leave_the_timeout() {
        let timeout = Duration::from_secs(4);
        let attestation = DutyKind::AttestationSelection;
        // Slot 10's attestation cut-off passed 1 s ago; slot 12's is far ahead.
        let now = at(10.0 * 12.0 + 5.0);
        assert_eq!(
            wait_for(
                &clock(),
                timeout,
                [(attestation, 10), (attestation, 12)],
                now
            ),
            timeout
        );
        // Inside the margin of a cut-off ahead: answer at once.
        let now = at(10.0 * 12.0 + 3.9);
        assert_eq!(
            wait_for(&clock(), timeout, [(attestation, 10)], now),
            Duration::ZERO
        );
        assert_eq!(wait_for(&clock(), timeout, [], now), timeout);
    }
}
