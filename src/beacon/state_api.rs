//! The read-only Beacon API that a validator client needs and that one loaded
//! state determines, as warp filters over a [`StateBackend`]: node version and
//! sync status, genesis, `config/spec`, the state's fork, validators (all,
//! filtered, or one by index or public key), committees, attester, sync and
//! proposer duties, the state itself as SSZ, and an accepting
//! `prepare_beacon_proposer` (the node never proposes, but validator clients
//! post it every epoch).
//!
//! The node holds exactly one state, so a `{state_id}` names it only as
//! `head`, its slot or its state root (and `genesis` when it is the genesis
//! state); anything else is 404 naming what is served. Proposer duties are
//! served for the state's current and next epoch: with no blocks to come, the
//! state determines both. The validator-client routes a chain without blocks
//! cannot serve answer 501 from [`super::not_served`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::backend::{LoadedState, StateBackend};
use crate::api::types::{
    AttesterDuty, CommitteeData, DutiesResponse, ForkResponseData, GenericResponse, GenesisData,
    ProposerDuty, PublicKeyBytes, StateId, StateResponse, SyncDuty, SyncingData, ValidatorData,
    ValidatorId, ValidatorRecord, ValidatorStatus, VersionData,
};
use crate::api::BackendError;
use crate::spec::hex::parse_hex_array;
use crate::spec::{ChainSpec, Epoch, Root, Slot, ValidatorIndex, FAR_FUTURE_EPOCH};
use crate::state::committee_cache::CommitteeCache;
use crate::state::{BeaconState, Validator};

/// Most validator ids (or statuses) one validators query or duties request
/// may name, and most items of one `prepare_beacon_proposer` body.
pub const MAX_IDS: usize = 65_536;
/// Largest accepted request body: 65,536 quoted indices fit with room to spare.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;
/// The version string of `GET /eth/v1/node/version`.
pub const NODE_VERSION: &str = concat!("dv-aggregator/", env!("CARGO_PKG_VERSION"));

/// Why a request to the state API fails; each variant has its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateApiError {
    /// 503: no state is loaded yet (the backend's message says why).
    #[error("{0}")]
    NotReady(String),
    /// 404: the state id names a state this node does not hold.
    #[error("state not found: {state_id}; this node serves one state: head, slot {slot} or state root {root}")]
    StateNotFound {
        /// The state id as given.
        state_id: String,
        /// The slot of the served state.
        slot: Slot,
        /// `0x` hex of the served state's root.
        root: String,
    },
    /// 400: a path, query or body value is malformed or out of range.
    #[error("invalid {what} {value:?}: {reason}")]
    BadValue {
        /// What the value is (e.g. `epoch`, `validator id`).
        what: &'static str,
        /// The value as given (shortened).
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// 400: the body is not what the endpoint accepts.
    #[error("invalid request body: {0}")]
    BadBody(String),
    /// 404: a single-validator query names a validator the state does not have.
    #[error("validator not found: {id}; the state has {count} validators")]
    ValidatorNotFound {
        /// The validator id as given (an index or a `0x` public key).
        id: String,
        /// Size of the registry.
        count: usize,
    },
    /// 400: one item of a list body is malformed.
    #[error("invalid item {index} of the request body: {reason}")]
    BadItem {
        /// Position of the item in the body's array.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// 400: a duties request names a validator the registry does not have.
    #[error("unknown validator index {index}: the state has {count} validators")]
    UnknownValidator {
        /// The index asked for.
        index: ValidatorIndex,
        /// Size of the registry.
        count: usize,
    },
    /// 400: more ids than [`MAX_IDS`].
    #[error("{count} {what} given, at most {MAX_IDS} are accepted")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// How many were given.
        count: usize,
    },
    /// 413: the body is longer than [`MAX_BODY_BYTES`].
    #[error("request body exceeds the limit of {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    /// 415: the body is not JSON.
    #[error("unsupported content type {0:?}: this endpoint accepts application/json only")]
    UnsupportedMediaType(String),
    /// 406: the state was asked for as JSON, which this node does not serve.
    #[error("this node serves the beacon state as SSZ only (Accept: application/octet-stream), not {0:?}")]
    NotAcceptable(String),
    /// 500: anything else.
    #[error("{0}")]
    Internal(String),
}

impl StateApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            StateApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            StateApiError::StateNotFound { .. } | StateApiError::ValidatorNotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            StateApiError::BadValue { .. }
            | StateApiError::BadBody(_)
            | StateApiError::BadItem { .. }
            | StateApiError::UnknownValidator { .. }
            | StateApiError::TooMany { .. } => StatusCode::BAD_REQUEST,
            StateApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            StateApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            StateApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            StateApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// This error as a Beacon API error reply (`{"code", "message"}`).
    pub fn into_response(self) -> Response {
        crate::api::error::error_reply(self.status(), self.to_string())
    }

    fn bad_value(what: &'static str, value: &str, reason: impl Into<String>) -> Self {
        StateApiError::BadValue {
            what,
            value: value.chars().take(100).collect(),
            reason: reason.into(),
        }
    }
}

impl From<BackendError> for StateApiError {
    fn from(error: BackendError) -> Self {
        match error {
            BackendError::NotReady(message) => StateApiError::NotReady(message),
            other => StateApiError::Internal(other.to_string()),
        }
    }
}

/// One loaded state with its SSZ (for the debug endpoint) and the proposers
/// of its current and next epoch, each computed on first use.
struct StateView {
    loaded: Arc<LoadedState>,
    ssz: OnceLock<Bytes>,
    /// Drawn proposers of the current (0) and next (1) epoch, for states
    /// without fulu's `proposer_lookahead`: validator clients ask every slot,
    /// and a draw over a mainnet registry costs tens of milliseconds.
    proposers: [OnceLock<Result<Vec<ValidatorIndex>, StateApiError>>; 2],
}

impl StateView {
    fn state(&self) -> &BeaconState {
        &self.loaded.state
    }

    /// The state's root (for `{state_id}` given as a root).
    fn root(&self) -> Root {
        self.loaded.state_root()
    }

    fn ssz(&self) -> &Bytes {
        self.ssz
            .get_or_init(|| Bytes::from(self.state().as_ssz_bytes()))
    }
}

/// The routes' shared view of the backend, re-derived when the state changes.
struct StateApi {
    backend: Arc<StateBackend>,
    view: Mutex<Option<Arc<StateView>>>,
}

impl StateApi {
    /// The view of the backend's current state, cached while it stays current.
    fn view(&self) -> Result<Arc<StateView>, StateApiError> {
        let loaded = self.backend.loaded()?;
        let mut cached = match self.view.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(view) = cached.as_ref().filter(|v| Arc::ptr_eq(&v.loaded, &loaded)) {
            return Ok(Arc::clone(view));
        }
        let view = Arc::new(StateView {
            loaded,
            ssz: OnceLock::new(),
            proposers: Default::default(),
        });
        *cached = Some(Arc::clone(&view));
        Ok(view)
    }

    /// The view, if `state_id` names the one loaded state.
    fn view_of(&self, state_id: &str) -> Result<Arc<StateView>, StateApiError> {
        let id: StateId = state_id
            .parse()
            .map_err(|reason: String| StateApiError::bad_value("state id", state_id, reason))?;
        let view = self.view()?;
        let state = view.state();
        let served = match id {
            StateId::Head => true,
            StateId::Genesis => state.slot() == 0,
            StateId::Slot(slot) => slot == state.slot(),
            StateId::Root(root) => root == view.root(),
            // This node follows no fork choice, so it knows neither checkpoint's state.
            StateId::Finalized | StateId::Justified => false,
        };
        if served {
            return Ok(view);
        }
        Err(StateApiError::StateNotFound {
            state_id: state_id.chars().take(100).collect(),
            slot: state.slot(),
            root: serde_utils::hex::encode(view.root()),
        })
    }
}

/// Every route of the state API over `backend`, each answering with a
/// Beacon API body or error body:
///
/// - `GET /eth/v1/node/version`, `GET /eth/v1/node/syncing`
/// - `GET /eth/v1/beacon/genesis`, `GET /eth/v1/config/spec`
/// - `GET /eth/v1/beacon/states/{state_id}/fork`
/// - `GET|POST /eth/v1/beacon/states/{state_id}/validators`
/// - `GET /eth/v1/beacon/states/{state_id}/validators/{validator_id}` (an
///   index or a `0x` public key; 404 when the state has no such validator)
/// - `GET /eth/v1/beacon/states/{state_id}/committees`
/// - `POST /eth/v1/validator/duties/attester/{epoch}`, `.../duties/sync/{epoch}`
/// - `GET /eth/v1/validator/duties/proposer/{epoch}` (the state's current
///   and next epoch)
/// - `POST /eth/v1/validator/prepare_beacon_proposer` (checked, then
///   accepted with an empty 200: this node never proposes)
/// - `GET /eth/v2/debug/beacon/states/{state_id}` (SSZ only)
///
/// Other paths are rejected as not found, for the server's own routes,
/// [`super::not_served::empty_chain_not_implemented`] or
/// `api::filters::recover` to answer.
pub fn state_api_routes(
    backend: Arc<StateBackend>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let api = Arc::new(StateApi {
        backend,
        view: Mutex::new(None),
    });
    let with_api = warp::any().map(move || Arc::clone(&api));
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let body = warp::header::optional::<String>("content-type")
        .and(warp::body::stream())
        .then(read_json_body);

    let version = warp::path!("eth" / "v1" / "node" / "version")
        .and(warp::get())
        .map(|| {
            json(&GenericResponse {
                data: VersionData {
                    version: NODE_VERSION.to_string(),
                },
            })
        });
    let syncing = warp::path!("eth" / "v1" / "node" / "syncing")
        .and(warp::get())
        .and(with_api.clone())
        .then(|api: Arc<StateApi>| answer(api, |api| node_syncing(&*api.view()?)));
    let genesis = warp::path!("eth" / "v1" / "beacon" / "genesis")
        .and(warp::get())
        .and(with_api.clone())
        .then(|api: Arc<StateApi>| answer(api, |api| genesis(&*api.view()?, api.backend.spec())));
    let spec = warp::path!("eth" / "v1" / "config" / "spec")
        .and(warp::get())
        .and(with_api.clone())
        .map(|api: Arc<StateApi>| {
            json(&GenericResponse {
                data: api.backend.spec().to_served_config_map(),
            })
        });
    let fork = warp::path!("eth" / "v1" / "beacon" / "states" / String / "fork")
        .and(warp::get())
        .and(with_api.clone())
        .then(|state_id: String, api: Arc<StateApi>| {
            answer(api, move |api| {
                let view = api.view_of(&state_id)?;
                Ok(state_json(ForkResponseData::from(view.state().fork())))
            })
        });
    let validators_get = warp::path!("eth" / "v1" / "beacon" / "states" / String / "validators")
        .and(warp::get())
        .and(query)
        .and(with_api.clone())
        .then(|state_id: String, query: String, api: Arc<StateApi>| {
            answer(api, move |api| {
                let filter = ValidatorFilter::from_query(&query)?;
                validators(&*api.view_of(&state_id)?, &filter)
            })
        });
    let validators_post = warp::path!("eth" / "v1" / "beacon" / "states" / String / "validators")
        .and(warp::post())
        .and(body)
        .and(with_api.clone())
        .then(
            |state_id: String, body: Result<Bytes, StateApiError>, api: Arc<StateApi>| {
                answer(api, move |api| {
                    let filter = ValidatorFilter::from_body(&body?)?;
                    validators(&*api.view_of(&state_id)?, &filter)
                })
            },
        );
    let validator_one =
        warp::path!("eth" / "v1" / "beacon" / "states" / String / "validators" / String)
            .and(warp::get())
            .and(with_api.clone())
            .then(
                |state_id: String, validator_id: String, api: Arc<StateApi>| {
                    answer(api, move |api| {
                        let id: ValidatorId = validator_id.parse().map_err(|reason: String| {
                            StateApiError::bad_value("validator id", &validator_id, reason)
                        })?;
                        validator(&*api.view_of(&state_id)?, id, &validator_id)
                    })
                },
            );
    let committees = warp::path!("eth" / "v1" / "beacon" / "states" / String / "committees")
        .and(warp::get())
        .and(query)
        .and(with_api.clone())
        .then(|state_id: String, query: String, api: Arc<StateApi>| {
            answer(api, move |api| {
                committees(&*api.view_of(&state_id)?, &query)
            })
        });
    let proposer_duties = warp::path!("eth" / "v1" / "validator" / "duties" / "proposer" / String)
        .and(warp::get())
        .and(with_api.clone())
        .then(|epoch: String, api: Arc<StateApi>| {
            answer(api, move |api| {
                let epoch = parse_u64("epoch", &epoch)?;
                proposer_duties(&*api.view()?, epoch)
            })
        });
    let prepare_proposer = warp::path!("eth" / "v1" / "validator" / "prepare_beacon_proposer")
        .and(warp::post())
        .and(body)
        .then(|body: Result<Bytes, StateApiError>| async move {
            // Nothing to look up in the state, so no blocking task: parsing
            // at most MAX_BODY_BYTES of JSON is quick.
            match body.and_then(|body| check_proposer_preparations(&body)) {
                Ok(()) => warp::reply().into_response(),
                Err(error) => error.into_response(),
            }
        });
    let duties = warp::path!("eth" / "v1" / "validator" / "duties" / String / String)
        .and_then(|kind: String, epoch: String| async move {
            let handler: DutiesHandler = match kind.as_str() {
                "attester" => attester_duties,
                "sync" => sync_duties,
                _ => return Err(warp::reject::not_found()),
            };
            Ok((handler, epoch))
        })
        .untuple_one()
        .and(warp::post())
        .and(body)
        .and(with_api.clone())
        .then(
            |handler: DutiesHandler,
             epoch: String,
             body: Result<Bytes, StateApiError>,
             api: Arc<StateApi>| {
                answer(api, move |api| {
                    let epoch = parse_u64("epoch", &epoch)?;
                    handler(&*api.view()?, epoch, &parse_indices(&body?)?)
                })
            },
        );
    let debug_state = warp::path!("eth" / "v2" / "debug" / "beacon" / "states" / String)
        .and(warp::get())
        .and(warp::header::optional::<String>("accept"))
        .and(with_api)
        .then(
            |state_id: String, accept: Option<String>, api: Arc<StateApi>| {
                answer(api, move |api| {
                    debug_state_ssz(&*api.view_of(&state_id)?, accept.as_deref())
                })
            },
        );

    version
        .or(syncing)
        .unify()
        .or(genesis)
        .unify()
        .or(spec)
        .unify()
        .or(fork)
        .unify()
        .or(validators_get)
        .unify()
        .or(validators_post)
        .unify()
        .or(validator_one)
        .unify()
        .or(committees)
        .unify()
        .or(proposer_duties)
        .unify()
        .or(duties)
        .unify()
        .or(prepare_proposer)
        .unify()
        .or(debug_state)
        .unify()
}

/// `attester_duties` or `sync_duties`: the duties of some validators at an epoch.
type DutiesHandler = fn(&StateView, Epoch, &[ValidatorIndex]) -> Result<Response, StateApiError>;

/// Runs `handler` off the async executor (hashing or encoding a mainnet
/// state takes seconds) and turns its error into a Beacon API error reply.
async fn answer<F>(api: Arc<StateApi>, handler: F) -> Response
where
    F: FnOnce(&StateApi) -> Result<Response, StateApiError> + Send + 'static,
{
    match tokio::task::spawn_blocking(move || handler(&api)).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error.into_response(),
        Err(join_error) => {
            StateApiError::Internal(format!("state API handler failed: {join_error}"))
                .into_response()
        }
    }
}

fn json<T: serde::Serialize>(body: &T) -> Response {
    warp::reply::json(body).into_response()
}

/// A state query's reply: this node neither imports blocks optimistically
/// nor knows finality.
fn state_json<T: serde::Serialize>(data: T) -> Response {
    json(&StateResponse {
        execution_optimistic: Some(false),
        finalized: Some(false),
        data,
    })
}

/// Reads a JSON request body of at most [`MAX_BODY_BYTES`] (chunked or not).
async fn read_json_body(
    content_type: Option<String>,
    body: impl Stream<Item = Result<impl Buf, warp::Error>> + Unpin,
) -> Result<Bytes, StateApiError> {
    if let Some(content_type) = content_type {
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if !media_type.eq_ignore_ascii_case("application/json") {
            return Err(StateApiError::UnsupportedMediaType(
                content_type.chars().take(100).collect(),
            ));
        }
    }
    let mut body = body;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| StateApiError::BadBody(e.to_string()))?;
        if (bytes.len() as u64).saturating_add(chunk.remaining() as u64) > MAX_BODY_BYTES {
            return Err(StateApiError::BodyTooLarge);
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            bytes.extend_from_slice(part);
            let len = part.len();
            chunk.advance(len);
        }
    }
    Ok(Bytes::from(bytes))
}

fn parse_u64(what: &'static str, text: &str) -> Result<u64, StateApiError> {
    text.parse()
        .map_err(|_| StateApiError::bad_value(what, text, "not an unsigned 64-bit integer"))
}

/// The body of a duties request: a JSON array of quoted validator indices.
fn parse_indices(body: &[u8]) -> Result<Vec<ValidatorIndex>, StateApiError> {
    let texts: Vec<String> = serde_json::from_slice(body).map_err(|e| {
        StateApiError::BadBody(format!(
            "expected a JSON array of quoted validator indices: {e}"
        ))
    })?;
    check_count("validator indices", texts.len())?;
    texts
        .iter()
        .map(|text| parse_u64("validator index", text))
        .collect()
}

fn check_count(what: &'static str, count: usize) -> Result<(), StateApiError> {
    if count > MAX_IDS {
        return Err(StateApiError::TooMany { what, count });
    }
    Ok(())
}

fn node_syncing(view: &StateView) -> Result<Response, StateApiError> {
    Ok(json(&GenericResponse {
        data: SyncingData {
            head_slot: view.state().slot(),
            sync_distance: 0,
            is_syncing: false,
            is_optimistic: Some(false),
            el_offline: Some(false),
        },
    }))
}

fn genesis(view: &StateView, spec: &ChainSpec) -> Result<Response, StateApiError> {
    Ok(json(&GenericResponse {
        data: GenesisData {
            genesis_time: view.state().genesis_time(),
            genesis_validators_root: view.state().genesis_validators_root(),
            genesis_fork_version: spec.genesis_fork_version(),
        },
    }))
}

/// The config keys of a fork's version and (after phase0) its epoch.
/// The Beacon API status of `validator` with `balance` at `epoch`.
pub fn validator_status(validator: &Validator, balance: u64, epoch: Epoch) -> ValidatorStatus {
    if epoch < validator.activation_epoch {
        if validator.activation_eligibility_epoch == FAR_FUTURE_EPOCH {
            ValidatorStatus::PendingInitialized
        } else {
            ValidatorStatus::PendingQueued
        }
    } else if epoch < validator.exit_epoch {
        if validator.slashed {
            ValidatorStatus::ActiveSlashed
        } else if validator.exit_epoch == FAR_FUTURE_EPOCH {
            ValidatorStatus::ActiveOngoing
        } else {
            ValidatorStatus::ActiveExiting
        }
    } else if epoch < validator.withdrawable_epoch {
        if validator.slashed {
            ValidatorStatus::ExitedSlashed
        } else {
            ValidatorStatus::ExitedUnslashed
        }
    } else if balance == 0 {
        ValidatorStatus::WithdrawalDone
    } else {
        ValidatorStatus::WithdrawalPossible
    }
}

/// The statuses a `status` filter value names: one status, or one of the
/// four groups `pending`, `active`, `exited`, `withdrawal`.
fn statuses_named(name: &str) -> Result<Vec<ValidatorStatus>, StateApiError> {
    use ValidatorStatus::*;
    Ok(match name {
        "pending" => vec![PendingInitialized, PendingQueued],
        "active" => vec![ActiveOngoing, ActiveExiting, ActiveSlashed],
        "exited" => vec![ExitedUnslashed, ExitedSlashed],
        "withdrawal" => vec![WithdrawalPossible, WithdrawalDone],
        _ => vec![
            serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|_| {
                StateApiError::bad_value(
                    "validator status",
                    name,
                    "expected a Beacon API validator status or pending, active, exited, withdrawal",
                )
            })?,
        ],
    })
}

/// The `id` and `status` filters of a validators query; empty means all.
#[derive(Debug, Default)]
struct ValidatorFilter {
    ids: Vec<ValidatorId>,
    statuses: HashSet<ValidatorStatus>,
}

impl ValidatorFilter {
    /// From `?id=1,0xab..&id=2&status=active_ongoing,...`.
    fn from_query(query: &str) -> Result<Self, StateApiError> {
        let mut ids = Vec::new();
        let mut statuses = Vec::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let list = match key.as_ref() {
                "id" => &mut ids,
                "status" => &mut statuses,
                _ => continue,
            };
            for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                list.push(item.to_string());
                check_count("validator ids or statuses", list.len())?;
            }
        }
        Self::from_lists(&ids, &statuses)
    }

    /// From the POST body `{"ids": [...], "statuses": [...]}` (both optional).
    fn from_body(body: &[u8]) -> Result<Self, StateApiError> {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            ids: Option<Vec<String>>,
            #[serde(default)]
            statuses: Option<Vec<String>>,
        }
        let body: Body = if body.is_empty() {
            Body {
                ids: None,
                statuses: None,
            }
        } else {
            serde_json::from_slice(body).map_err(|e| {
                StateApiError::BadBody(format!(
                    "expected {{\"ids\": [...], \"statuses\": [...]}}: {e}"
                ))
            })?
        };
        Self::from_lists(
            &body.ids.unwrap_or_default(),
            &body.statuses.unwrap_or_default(),
        )
    }

    fn from_lists(ids: &[String], statuses: &[String]) -> Result<Self, StateApiError> {
        check_count("validator ids", ids.len())?;
        check_count("validator statuses", statuses.len())?;
        let ids = ids
            .iter()
            .map(|id| {
                id.parse()
                    .map_err(|reason: String| StateApiError::bad_value("validator id", id, reason))
            })
            .collect::<Result<_, _>>()?;
        let mut named = HashSet::new();
        for status in statuses {
            named.extend(statuses_named(status)?);
        }
        Ok(ValidatorFilter {
            ids,
            statuses: named,
        })
    }
}

/// The registry indices `ids` name in `state`, in request order, without
/// duplicates; ids the state does not know are left out, as the Beacon API says.
fn resolve_ids(state: &BeaconState, ids: &[ValidatorId]) -> Vec<ValidatorIndex> {
    let count = state.validators().len() as u64;
    let mut seen = HashSet::new();
    ids.iter()
        .filter_map(|id| match id {
            ValidatorId::Index(index) => (*index < count).then_some(*index),
            ValidatorId::PublicKey(pubkey) => {
                state.validator_index_by_pubkey(&crate::state::PublicKeyBytes(pubkey.0))
            }
        })
        .filter(|index| seen.insert(*index))
        .collect()
}

fn validators(view: &StateView, filter: &ValidatorFilter) -> Result<Response, StateApiError> {
    let state = view.state();
    let indices: Vec<ValidatorIndex> = if filter.ids.is_empty() {
        (0..state.validators().len() as u64).collect()
    } else {
        resolve_ids(state, &filter.ids)
    };
    let mut data = Vec::with_capacity(indices.len());
    for index in indices {
        let entry = validator_entry(state, index)?;
        if filter.statuses.is_empty() || filter.statuses.contains(&entry.status) {
            data.push(entry);
        }
    }
    Ok(state_json(data))
}

/// One validator, named by `id` (given as `text`): its entry as the
/// validators list has it, or 404 naming the id.
fn validator(view: &StateView, id: ValidatorId, text: &str) -> Result<Response, StateApiError> {
    let state = view.state();
    let Some(&index) = resolve_ids(state, &[id]).first() else {
        return Err(StateApiError::ValidatorNotFound {
            id: text.chars().take(100).collect(),
            count: state.validators().len(),
        });
    };
    Ok(state_json(validator_entry(state, index)?))
}

/// The validators-list entry of the validator at `index` (a registry
/// index), with its status at the state's epoch.
fn validator_entry(
    state: &BeaconState,
    index: ValidatorIndex,
) -> Result<ValidatorData, StateApiError> {
    let (Some(validator), Some(&balance)) = (
        state.validator(index),
        usize::try_from(index)
            .ok()
            .and_then(|i| state.balances().get(i)),
    ) else {
        return Err(StateApiError::Internal(format!(
            "validator {index} has no record or no balance in the state"
        )));
    };
    let status = validator_status(validator, balance, state.get_current_epoch());
    Ok(validator_data(index, validator, balance, status))
}

fn validator_data(
    index: ValidatorIndex,
    validator: &Validator,
    balance: u64,
    status: ValidatorStatus,
) -> ValidatorData {
    ValidatorData {
        index,
        balance,
        status,
        validator: ValidatorRecord {
            pubkey: PublicKeyBytes(validator.pubkey.0),
            withdrawal_credentials: validator.withdrawal_credentials,
            effective_balance: validator.effective_balance,
            slashed: validator.slashed,
            activation_eligibility_epoch: validator.activation_eligibility_epoch,
            activation_epoch: validator.activation_epoch,
            exit_epoch: validator.exit_epoch,
            withdrawable_epoch: validator.withdrawable_epoch,
        },
    }
}

/// The committee cache of `epoch`, or 400 naming the epochs that are served.
fn committee_cache(view: &StateView, epoch: Epoch) -> Result<&Arc<CommitteeCache>, StateApiError> {
    view.loaded
        .committees
        .for_epoch(epoch)
        .map_err(|error| StateApiError::bad_value("epoch", &epoch.to_string(), error.to_string()))
}

fn committees(view: &StateView, query: &str) -> Result<Response, StateApiError> {
    let mut epoch = None;
    let mut index = None;
    let mut slot = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "epoch" => epoch = Some(parse_u64("epoch", &value)?),
            "index" => index = Some(parse_u64("committee index", &value)?),
            "slot" => slot = Some(parse_u64("slot", &value)?),
            _ => {}
        }
    }
    let epoch = epoch.unwrap_or_else(|| view.state().get_current_epoch());
    let cache = committee_cache(view, epoch)?;
    if let Some(slot) = slot {
        let slots_per_epoch = view.state().preset().SLOTS_PER_EPOCH.max(1);
        if slot / slots_per_epoch != epoch {
            return Err(StateApiError::bad_value(
                "slot",
                &slot.to_string(),
                format!("not in epoch {epoch}"),
            ));
        }
    }
    if let Some(index) = index.filter(|index| *index >= cache.committees_per_slot()) {
        return Err(StateApiError::bad_value(
            "committee index",
            &index.to_string(),
            format!(
                "epoch {epoch} has {} committees per slot",
                cache.committees_per_slot()
            ),
        ));
    }
    let data: Vec<CommitteeData> = cache
        .committees()
        .filter(|c| slot.is_none_or(|slot| c.slot == slot) && index.is_none_or(|i| c.index == i))
        .map(|c| CommitteeData {
            index: c.index,
            slot: c.slot,
            validators: c.members.to_vec(),
        })
        .collect();
    Ok(state_json(data))
}

/// The validator at `index`, or 400 naming it, as Lighthouse answers duties.
fn known_validator(
    state: &BeaconState,
    index: ValidatorIndex,
) -> Result<&Validator, StateApiError> {
    state
        .validator(index)
        .ok_or(StateApiError::UnknownValidator {
            index,
            count: state.validators().len(),
        })
}

/// The attester duties of `indices` at `epoch` (previous, current or next
/// epoch of the state); validators without a duty that epoch are left out.
///
/// `dependent_root` is the block root at the last slot of epoch `epoch - 2`
/// (`get_block_root_at_slot(state, compute_start_slot_at_epoch(epoch - 1) - 1)`,
/// the genesis block's for epochs 0 and 1; [`dependent_root`]), as the
/// `head` event's `previous_duty_dependent_root` has it.
fn attester_duties(
    view: &StateView,
    epoch: Epoch,
    indices: &[ValidatorIndex],
) -> Result<Response, StateApiError> {
    let state = view.state();
    let cache = committee_cache(view, epoch)?;
    let mut data = Vec::new();
    for &index in indices {
        let validator = known_validator(state, index)?;
        if let Some(position) = cache.attester_position(index) {
            data.push(AttesterDuty {
                pubkey: PublicKeyBytes(validator.pubkey.0),
                validator_index: index,
                committee_index: position.committee_index,
                committee_length: position.committee_length,
                committees_at_slot: position.committees_at_slot,
                validator_committee_index: position.position_in_committee,
                slot: position.slot,
            });
        }
    }
    let slots_per_epoch = state.preset().SLOTS_PER_EPOCH;
    let decision_slot = epoch
        .saturating_sub(1)
        .saturating_mul(slots_per_epoch)
        .saturating_sub(1);
    Ok(json(&DutiesResponse {
        dependent_root: Some(dependent_root(view, decision_slot)?),
        execution_optimistic: Some(false),
        data,
    }))
}

/// The root of the block at `decision_slot` (`LoadedState::block_root_at_slot`);
/// a slot the state has not reached yet has the head block's root: this
/// node's chain takes no more blocks.
fn dependent_root(view: &StateView, decision_slot: Slot) -> Result<Root, StateApiError> {
    let state_slot = view.state().slot();
    view.loaded
        .block_root_at_slot(decision_slot.min(state_slot))
        .ok_or_else(|| {
            StateApiError::Internal(format!(
                "the state (slot {state_slot}) records no block root at slot {decision_slot}"
            ))
        })
}

/// The proposer of every slot of `epoch`, which must be the state's current
/// or next epoch (400 naming the epoch and those two otherwise).
///
/// A fulu state records both epochs' proposers in `proposer_lookahead` (the
/// next epoch's drawn at the last epoch transition, with the effective
/// balances of then), which is authoritative; an earlier state has them
/// drawn by `get_beacon_proposer_indices`, once per state. For the next
/// epoch that draw is a prediction: it holds if the epoch transition changes
/// no effective balance or activation, as on the devnet's empty chain, whose
/// epoch transitions change neither.
fn epoch_proposers(view: &StateView, epoch: Epoch) -> Result<&[ValidatorIndex], StateApiError> {
    let state = view.state();
    let current = state.get_current_epoch();
    // 0 for the current epoch, 1 for the next.
    let which: usize = match epoch.checked_sub(current) {
        Some(0) => 0,
        Some(1) => 1,
        _ => {
            return Err(StateApiError::bad_value(
                "epoch",
                &epoch.to_string(),
                format!(
                    "this node serves the proposer duties of the state's current and next \
                     epoch only: {current} and {}",
                    current.saturating_add(1)
                ),
            ))
        }
    };
    if let Some(lookahead) = state.proposer_lookahead() {
        let per_epoch = usize::try_from(state.preset().SLOTS_PER_EPOCH)
            .map_err(|e| StateApiError::Internal(format!("SLOTS_PER_EPOCH: {e}")))?;
        let start = which.saturating_mul(per_epoch);
        return lookahead
            .get(start..start.saturating_add(per_epoch))
            .ok_or_else(|| {
                StateApiError::Internal(format!(
                    "the state's proposer_lookahead has {} entries, too few for epoch {epoch}",
                    lookahead.len()
                ))
            });
    }
    view.proposers[which]
        .get_or_init(|| {
            state.get_beacon_proposer_indices(epoch).map_err(|e| {
                StateApiError::Internal(format!("cannot draw the proposers of epoch {epoch}: {e}"))
            })
        })
        .as_deref()
        .map_err(Clone::clone)
}

/// The proposer duties of `epoch` (the state's current or next epoch).
///
/// `dependent_root` is the block root at the last slot of epoch `epoch - 1`
/// (the genesis block's for epoch 0; [`dependent_root`]), as the Beacon API
/// defines it and as the `head` event's `current_duty_dependent_root` of
/// that epoch has it.
fn proposer_duties(view: &StateView, epoch: Epoch) -> Result<Response, StateApiError> {
    let state = view.state();
    let proposers = epoch_proposers(view, epoch)?;
    let start_slot = epoch.saturating_mul(state.preset().SLOTS_PER_EPOCH);
    let mut data = Vec::with_capacity(proposers.len());
    for (slot, &index) in (start_slot..).zip(proposers) {
        let validator = state.validator(index).ok_or_else(|| {
            StateApiError::Internal(format!(
                "the proposer of slot {slot}, validator {index}, is not in the registry"
            ))
        })?;
        data.push(ProposerDuty {
            pubkey: PublicKeyBytes(validator.pubkey.0),
            validator_index: index,
            slot,
        });
    }
    // Epoch 0 gives slot 0: the genesis block's.
    let decision_slot = start_slot.saturating_sub(1);
    Ok(json(&DutiesResponse {
        dependent_root: Some(dependent_root(view, decision_slot)?),
        execution_optimistic: Some(false),
        data,
    }))
}

/// Checks a `prepare_beacon_proposer` body: a JSON array of at most
/// [`MAX_IDS`] items `{"validator_index": "<u64>", "fee_recipient":
/// "0x<20 bytes>"}`; a bad item is 400 naming its position. The indices are
/// not looked up: the node proposes nothing, so it keeps nothing of them.
fn check_proposer_preparations(body: &[u8]) -> Result<(), StateApiError> {
    #[derive(Deserialize)]
    struct Preparation {
        validator_index: String,
        fee_recipient: String,
    }
    let items: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|e| {
        StateApiError::BadBody(format!(
            "expected a JSON array of {{\"validator_index\", \"fee_recipient\"}}: {e}"
        ))
    })?;
    check_count("proposer preparations", items.len())?;
    for (index, item) in items.into_iter().enumerate() {
        let bad = |reason: String| StateApiError::BadItem { index, reason };
        let item: Preparation = serde_json::from_value(item).map_err(|e| {
            bad(format!(
                "expected {{\"validator_index\": quoted integer, \"fee_recipient\": 0x address}}: {e}"
            ))
        })?;
        item.validator_index.parse::<u64>().map_err(|_| {
            bad(format!(
                "validator_index {:?} is not an unsigned 64-bit integer",
                item.validator_index.chars().take(100).collect::<String>()
            ))
        })?;
        parse_hex_array::<20>(&item.fee_recipient)
            .map_err(|reason| bad(format!("fee_recipient: {reason}")))?;
    }
    Ok(())
}

/// The sync duties of `indices` in the sync committee period of `epoch`
/// (the state's period or the next); members only, each with every
/// position it holds.
fn sync_duties(
    view: &StateView,
    epoch: Epoch,
    indices: &[ValidatorIndex],
) -> Result<Response, StateApiError> {
    let state = view.state();
    let period = state
        .sync_period_of_epoch(epoch)
        .map_err(|e| StateApiError::bad_value("epoch", &epoch.to_string(), e.to_string()))?;
    let members = state
        .sync_committee_validator_indices(period)
        .map_err(|e| StateApiError::bad_value("epoch", &epoch.to_string(), e.to_string()))?;
    let mut positions: HashMap<ValidatorIndex, Vec<u64>> = HashMap::new();
    for (position, member) in (0u64..).zip(members) {
        positions.entry(member).or_default().push(position);
    }
    let mut data = Vec::new();
    for &index in indices {
        let validator = known_validator(state, index)?;
        if let Some(positions) = positions.get(&index) {
            data.push(SyncDuty {
                pubkey: PublicKeyBytes(validator.pubkey.0),
                validator_index: index,
                validator_sync_committee_indices: positions.clone(),
            });
        }
    }
    Ok(json(&DutiesResponse {
        dependent_root: None,
        execution_optimistic: Some(false),
        data,
    }))
}

/// The state as SSZ with its `Eth-Consensus-Version`; JSON is not served.
fn debug_state_ssz(view: &StateView, accept: Option<&str>) -> Result<Response, StateApiError> {
    let wants_ssz = accept.is_some_and(|accept| {
        accept.split(',').any(|media| {
            media
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/octet-stream"))
        })
    });
    if !wants_ssz {
        return Err(StateApiError::NotAcceptable(
            accept
                .unwrap_or("application/json")
                .chars()
                .take(100)
                .collect(),
        ));
    }
    warp::http::Response::builder()
        .header("content-type", "application/octet-stream")
        .header("eth-consensus-version", view.state().fork_name().as_str())
        .body(view.ssz().clone())
        .map(Reply::into_response)
        .map_err(|e| StateApiError::Internal(format!("cannot build the SSZ reply: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validator(
        activation_eligibility: Epoch,
        activation: Epoch,
        exit: Epoch,
        withdrawable: Epoch,
        slashed: bool,
    ) -> Validator {
        Validator {
            activation_eligibility_epoch: activation_eligibility,
            activation_epoch: activation,
            exit_epoch: exit,
            withdrawable_epoch: withdrawable,
            slashed,
            ..Validator::pending(crate::state::PublicKeyBytes([0; 48]))
        }
    }

    #[test]
    fn statuses_follow_the_lifecycle() {
        use ValidatorStatus::*;
        let far = FAR_FUTURE_EPOCH;
        let cases = [
            (validator(far, far, far, far, false), 1, PendingInitialized),
            (validator(3, far, far, far, false), 1, PendingQueued),
            (validator(3, 6, far, far, false), 1, PendingQueued),
            (validator(0, 0, far, far, false), 1, ActiveOngoing),
            (validator(0, 0, 9, far, false), 1, ActiveExiting),
            (validator(0, 0, 9, 20, true), 1, ActiveSlashed),
            (validator(0, 0, 5, 9, false), 1, ExitedUnslashed),
            (validator(0, 0, 5, 9, true), 1, ExitedSlashed),
            (validator(0, 0, 3, 5, false), 1, WithdrawalPossible),
            (validator(0, 0, 3, 5, false), 0, WithdrawalDone),
        ];
        for (validator, balance, expected) in cases {
            assert_eq!(
                validator_status(&validator, balance, 5),
                expected,
                "{validator:?}"
            );
        }
    }

    #[test]
    fn status_filter_groups_and_names() {
        assert_eq!(statuses_named("exited").unwrap().len(), 2);
        assert_eq!(
            statuses_named("active_exiting").unwrap(),
            vec![ValidatorStatus::ActiveExiting]
        );
        let err = statuses_named("retired").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains("\"retired\""), "{err}");
    }

    #[test]
    fn validator_query_takes_comma_lists_and_repeated_keys() {
        let pubkey = format!("0x{}", "ab".repeat(48));
        let filter = ValidatorFilter::from_query(&format!(
            "id=1,{pubkey}&id=7&status=active,exited_slashed"
        ))
        .unwrap();
        assert_eq!(filter.ids.len(), 3);
        assert_eq!(filter.ids[2], ValidatorId::Index(7));
        assert_eq!(filter.statuses.len(), 4);
        let err = ValidatorFilter::from_query("id=12x").unwrap_err();
        assert!(err.to_string().contains("12x"), "{err}");
        let too_many = vec!["1"; MAX_IDS + 1].join(",");
        assert!(matches!(
            ValidatorFilter::from_query(&format!("id={too_many}")),
            Err(StateApiError::TooMany { .. })
        ));
    }

    #[test]
    fn duties_body_names_a_bad_index() {
        assert_eq!(parse_indices(br#"["1","22"]"#).unwrap(), vec![1, 22]);
        let err = parse_indices(br#"["1","-2"]"#).unwrap_err();
        assert!(err.to_string().contains("\"-2\""), "{err}");
        assert!(parse_indices(b"[1]").is_err());
    }
}
