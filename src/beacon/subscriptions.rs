//! `POST /eth/v1/validator/beacon_committee_subscriptions` and
//! `POST /eth/v1/validator/sync_committee_subscriptions` on the state-backed
//! node: each item is checked against the loaded state where the state can
//! tell, and accepted items are kept in a bounded [`SubscriptionLog`] that
//! tests and the devnet read (this node has no gossip network to join).
//!
//! Checks, per item:
//! - beacon committee: the validator is in the registry; `committee_index <
//!   committees_at_slot`; and, when the slot's epoch is the state's previous,
//!   current or next epoch, `committees_at_slot` equals the state's committee
//!   count at that epoch;
//! - sync committee: the validator is in the registry; at least one and at
//!   most `SYNC_COMMITTEE_SIZE` positions, each below `SYNC_COMMITTEE_SIZE`;
//!   `until_epoch > 0`; and, when the last epoch the subscription covers
//!   (`until_epoch - 1`) is in the state's current or next sync committee
//!   period, the validator holds every named position in that committee.
//!
//! A request with bad items gets 400 with `failures` naming each by its
//! request index; its good items are still recorded, as the Beacon API's
//! pool endpoints do, so one bad item never loses the others.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::backend::{LoadedState, StateBackend};
use crate::api::error::error_response;
use crate::api::filters::{check_json_content_type, parse_item_list, read_body_limited, BodyError};
use crate::api::types::{
    BeaconCommitteeSubscription, ErrorMessage, IndexedFailure, SyncCommitteeSubscription,
};
use crate::api::{ApiError, BackendError};
use crate::spec::signing::compute_epoch_at_slot;
use crate::spec::{Epoch, ValidatorIndex};
use crate::state::sync_committee::SyncPeriod;

/// Most items one subscription request may hold (one per validator of a
/// large validator client).
pub const MAX_ITEMS: usize = 65_536;
/// Largest accepted body: [`MAX_ITEMS`] items of about 150 bytes, with room.
pub const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;
/// Accepted subscriptions the log keeps by default, per kind; older ones are
/// dropped (and counted) first.
pub const DEFAULT_LOG_CAPACITY: usize = 65_536;

/// Why one subscription item is refused; the message names the value and what
/// the state says instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// The item is not a well-formed subscription.
    #[error("invalid item: {0}")]
    Malformed(String),
    /// The registry has no validator with this index.
    #[error("unknown validator index {index}: the state has {count} validators")]
    UnknownValidator {
        /// The index of the item.
        index: ValidatorIndex,
        /// Size of the registry.
        count: usize,
    },
    /// `committee_index` is not below `committees_at_slot`.
    #[error(
        "committee_index {committee_index} is not below committees_at_slot {committees_at_slot}"
    )]
    CommitteeIndexOutOfRange {
        /// What the item says.
        committee_index: u64,
        /// What the item says.
        committees_at_slot: u64,
    },
    /// `committees_at_slot` disagrees with the state.
    #[error("committees_at_slot {given} does not match the state, which has {expected} committees per slot in epoch {epoch}")]
    WrongCommitteesAtSlot {
        /// The epoch of the item's slot.
        epoch: Epoch,
        /// What the item says.
        given: u64,
        /// What the state says.
        expected: u64,
    },
    /// No positions, or more than a sync committee has.
    #[error("sync_committee_indices holds {count} positions; expected 1..={max}")]
    PositionCount {
        /// How many were given.
        count: usize,
        /// `SYNC_COMMITTEE_SIZE`.
        max: u64,
    },
    /// A position outside the sync committee.
    #[error(
        "sync committee position {position} is out of range: the committee has {size} positions"
    )]
    PositionOutOfRange {
        /// The position given.
        position: u64,
        /// `SYNC_COMMITTEE_SIZE`.
        size: u64,
    },
    /// `until_epoch` 0 covers no epoch.
    #[error("until_epoch 0 covers no epoch")]
    EmptyPeriod,
    /// The validator does not sit at a named position.
    #[error("validator {validator_index} is not at sync committee position {position} in the sync committee of epoch {epoch}")]
    NotAtPosition {
        /// The validator of the item.
        validator_index: ValidatorIndex,
        /// The position given.
        position: u64,
        /// The last epoch the subscription covers.
        epoch: Epoch,
    },
    /// The state has no sync committees (phase0).
    #[error("the state has no sync committees (it is a phase0 state)")]
    NoSyncCommittees,
}

/// Subscriptions the node accepted, oldest first, bounded per kind.
#[derive(Debug)]
pub struct SubscriptionLog {
    capacity: usize,
    inner: Mutex<LogInner>,
}

#[derive(Debug, Default)]
struct LogInner {
    beacon: VecDeque<BeaconCommitteeSubscription>,
    sync: VecDeque<SyncCommitteeSubscription>,
    dropped: u64,
}

impl Default for SubscriptionLog {
    fn default() -> Self {
        Self::new(DEFAULT_LOG_CAPACITY)
    }
}

impl SubscriptionLog {
    /// A log keeping the latest `capacity` subscriptions of each kind.
    pub fn new(capacity: usize) -> Self {
        SubscriptionLog {
            capacity,
            inner: Mutex::new(LogInner::default()),
        }
    }

    /// Every beacon committee subscription still in the log, oldest first.
    pub fn beacon_committee(&self) -> Vec<BeaconCommitteeSubscription> {
        self.lock().beacon.iter().cloned().collect()
    }

    /// Every sync committee subscription still in the log, oldest first.
    pub fn sync_committee(&self) -> Vec<SyncCommitteeSubscription> {
        self.lock().sync.iter().cloned().collect()
    }

    /// How many accepted subscriptions were dropped to keep the log bounded.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    fn record_beacon(&self, items: impl IntoIterator<Item = BeaconCommitteeSubscription>) {
        let capacity = self.capacity;
        let mut inner = self.lock();
        let LogInner {
            beacon, dropped, ..
        } = &mut *inner;
        push_bounded(beacon, items, capacity, dropped);
    }

    fn record_sync(&self, items: impl IntoIterator<Item = SyncCommitteeSubscription>) {
        let capacity = self.capacity;
        let mut inner = self.lock();
        let LogInner { sync, dropped, .. } = &mut *inner;
        push_bounded(sync, items, capacity, dropped);
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn push_bounded<T>(
    queue: &mut VecDeque<T>,
    items: impl IntoIterator<Item = T>,
    capacity: usize,
    dropped: &mut u64,
) {
    for item in items {
        if queue.len() >= capacity {
            queue.pop_front();
            *dropped = dropped.saturating_add(1);
        }
        if capacity > 0 {
            queue.push_back(item);
        }
    }
}

/// Both subscription routes over `backend`, recording accepted items in `log`.
pub fn subscription_routes(
    backend: Arc<StateBackend>,
    log: Arc<SubscriptionLog>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let beacon = warp::path!("eth" / "v1" / "validator" / "beacon_committee_subscriptions")
        .map(|| Kind::Beacon);
    let sync =
        warp::path!("eth" / "v1" / "validator" / "sync_committee_subscriptions").map(|| Kind::Sync);
    beacon
        .or(sync)
        .unify()
        .and(warp::post())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::stream())
        .then(move |kind: Kind, content_type: Option<String>, body| {
            let (backend, log) = (Arc::clone(&backend), Arc::clone(&log));
            async move {
                match subscribe(kind, &backend, log, content_type, body).await {
                    Ok(()) => StatusCode::OK.into_response(),
                    Err(Refusal::Request(error)) => error.into_response(),
                    Err(Refusal::Items(failures)) => {
                        let body = ErrorMessage {
                            code: StatusCode::BAD_REQUEST.as_u16(),
                            message: format!(
                                "{} subscriptions are invalid; the others were accepted",
                                failures.len()
                            ),
                            failures,
                        };
                        error_response(StatusCode::BAD_REQUEST, &body)
                    }
                }
            }
        })
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Beacon,
    Sync,
}

/// Why a subscription request is answered with an error.
#[derive(Debug)]
enum Refusal {
    /// The whole request (not ready, not JSON, too large, not a list).
    Request(ApiError),
    /// Some items; the others were recorded.
    Items(Vec<IndexedFailure>),
}

async fn subscribe<S, B>(
    kind: Kind,
    backend: &StateBackend,
    log: Arc<SubscriptionLog>,
    content_type: Option<String>,
    body: S,
) -> Result<(), Refusal>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    let loaded = backend.loaded().map_err(|error| {
        Refusal::Request(match error {
            BackendError::NotReady(message) => ApiError::NotReady(message),
            other => ApiError::Internal(other.to_string()),
        })
    })?;
    check_json_content_type(content_type.as_deref()).map_err(Refusal::Request)?;
    let body = read_body_limited(body, MAX_BODY_BYTES)
        .await
        .map_err(|error| {
            Refusal::Request(match error {
                BodyError::Read(reason) => {
                    ApiError::BadRequest(format!("cannot read the body: {reason}"))
                }
                BodyError::TooLarge => ApiError::BodyTooLarge {
                    limit: MAX_BODY_BYTES,
                },
            })
        })?;
    // The sync checks scan the committee; keep them off the async workers.
    tokio::task::spawn_blocking(move || {
        let failures = match kind {
            Kind::Beacon => {
                let (accepted, failures) = check_items(&body, |item| check_beacon(&loaded, item))?;
                log.record_beacon(accepted);
                failures
            }
            Kind::Sync => {
                let mut positions = SyncPositions::default();
                let (accepted, failures) =
                    check_items(&body, |item| check_sync(&loaded, &mut positions, item))?;
                log.record_sync(accepted);
                failures
            }
        };
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Refusal::Items(failures))
        }
    })
    .await
    .map_err(|error| {
        Refusal::Request(ApiError::Internal(format!(
            "subscription worker failed: {error}"
        )))
    })?
}

/// Parses every item of `body` and checks it: the accepted items, and a
/// failure naming each refused one by request index.
fn check_items<T: DeserializeOwned>(
    body: &[u8],
    mut check: impl FnMut(&T) -> Result<(), SubscriptionError>,
) -> Result<(Vec<T>, Vec<IndexedFailure>), Refusal> {
    let raw_items = parse_item_list(body, MAX_ITEMS).map_err(Refusal::Request)?;
    let mut accepted = Vec::with_capacity(raw_items.len());
    let mut failures = Vec::new();
    for (index, raw) in raw_items.iter().enumerate() {
        let checked = serde_json::from_str::<T>(raw.get())
            .map_err(|error| SubscriptionError::Malformed(error.to_string()))
            .and_then(|item| check(&item).map(|()| item));
        match checked {
            Ok(item) => accepted.push(item),
            Err(error) => failures.push(IndexedFailure {
                index,
                message: error.to_string(),
            }),
        }
    }
    Ok((accepted, failures))
}

fn known_validator(loaded: &LoadedState, index: ValidatorIndex) -> Result<(), SubscriptionError> {
    match loaded.state.validator(index) {
        Some(_) => Ok(()),
        None => Err(SubscriptionError::UnknownValidator {
            index,
            count: loaded.state.validators().len(),
        }),
    }
}

fn check_beacon(
    loaded: &LoadedState,
    item: &BeaconCommitteeSubscription,
) -> Result<(), SubscriptionError> {
    known_validator(loaded, item.validator_index)?;
    if item.committee_index >= item.committees_at_slot {
        return Err(SubscriptionError::CommitteeIndexOutOfRange {
            committee_index: item.committee_index,
            committees_at_slot: item.committees_at_slot,
        });
    }
    // Outside previous..next epoch the state does not know the count: accept.
    if let Ok(cache) = loaded.committees.for_slot(item.slot) {
        let expected = cache.committees_per_slot();
        if item.committees_at_slot != expected {
            return Err(SubscriptionError::WrongCommitteesAtSlot {
                epoch: compute_epoch_at_slot(item.slot, loaded.state.preset()),
                given: item.committees_at_slot,
                expected,
            });
        }
    }
    Ok(())
}

/// The positions of each sync committee member per period, computed once per
/// request and only for the periods items name.
#[derive(Default)]
struct SyncPositions {
    by_period: HashMap<SyncPeriod, HashMap<ValidatorIndex, Vec<u64>>>,
}

impl SyncPositions {
    /// The positions of every member in `period`, or `None` when the state
    /// cannot tell (no sync committees, or a member missing from the registry).
    fn of(
        &mut self,
        loaded: &LoadedState,
        period: SyncPeriod,
    ) -> Option<&HashMap<ValidatorIndex, Vec<u64>>> {
        match self.by_period.entry(period) {
            Entry::Occupied(known) => Some(known.into_mut()),
            Entry::Vacant(vacant) => {
                let members = loaded.state.sync_committee_validator_indices(period).ok()?;
                let mut positions: HashMap<ValidatorIndex, Vec<u64>> = HashMap::new();
                for (position, member) in (0u64..).zip(members) {
                    positions.entry(member).or_default().push(position);
                }
                Some(vacant.insert(positions))
            }
        }
    }
}

fn check_sync(
    loaded: &LoadedState,
    positions: &mut SyncPositions,
    item: &SyncCommitteeSubscription,
) -> Result<(), SubscriptionError> {
    let state = &loaded.state;
    if state.current_sync_committee().is_none() {
        return Err(SubscriptionError::NoSyncCommittees);
    }
    known_validator(loaded, item.validator_index)?;
    let size = state.preset().SYNC_COMMITTEE_SIZE;
    let count = item.sync_committee_indices.len();
    if count == 0 || count as u64 > size {
        return Err(SubscriptionError::PositionCount { count, max: size });
    }
    if let Some(&position) = item.sync_committee_indices.iter().find(|&&p| p >= size) {
        return Err(SubscriptionError::PositionOutOfRange { position, size });
    }
    let last_epoch = item
        .until_epoch
        .checked_sub(1)
        .ok_or(SubscriptionError::EmptyPeriod)?;
    // A period the state does not hold cannot be checked: accept.
    let Ok(period) = state.sync_period_of_epoch(last_epoch) else {
        return Ok(());
    };
    let Some(members) = positions.of(loaded, period) else {
        return Ok(());
    };
    let held = members
        .get(&item.validator_index)
        .map(Vec::as_slice)
        .unwrap_or_default();
    match item
        .sync_committee_indices
        .iter()
        .find(|p| !held.contains(p))
    {
        Some(&position) => Err(SubscriptionError::NotAtPosition {
            validator_index: item.validator_index,
            position,
            epoch: last_epoch,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beacon(slot: u64) -> BeaconCommitteeSubscription {
        BeaconCommitteeSubscription {
            validator_index: 1,
            committee_index: 0,
            committees_at_slot: 1,
            slot,
            is_aggregator: false,
        }
    }

    #[test]
    fn the_log_keeps_the_latest_and_counts_what_it_dropped() {
        let log = SubscriptionLog::new(2);
        log.record_beacon((0..5).map(beacon));
        let slots: Vec<u64> = log.beacon_committee().iter().map(|s| s.slot).collect();
        assert_eq!(slots, vec![3, 4]);
        assert_eq!(log.dropped(), 3);
        assert!(log.sync_committee().is_empty());
    }

    #[test]
    fn malformed_items_are_named_by_index_and_the_rest_accepted() {
        let body = br#"[{"validator_index":"1","committee_index":"0","committees_at_slot":"1","slot":"9","is_aggregator":true},{"validator_index":1}]"#;
        let (accepted, failures) =
            check_items::<BeaconCommitteeSubscription>(body, |_| Ok(())).unwrap();
        assert_eq!(accepted.len(), 1);
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].index, 1);
        assert!(
            failures[0].message.starts_with("invalid item"),
            "{failures:?}"
        );
        assert!(check_items::<BeaconCommitteeSubscription>(b"{}", |_| Ok(())).is_err());
    }
}
