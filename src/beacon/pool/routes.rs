//! The attestation routes of the state-backed node, as warp filters over a
//! [`StateBackend`] and an [`AttestationPool`]:
//!
//! - `GET /eth/v1/validator/attestation_data?slot&committee_index`: the data
//!   an honest validator signs at `slot`, from the head state.
//!   `beacon_block_root` is the chain's block root at `slot` (the head root
//!   for the head's slot, `get_block_root_at_slot` before it); `target` is
//!   `(epoch of slot, the block root at the epoch's start slot)` (the head
//!   root when the head is at that start slot); `source` is the justified
//!   checkpoint `process_attestation` requires for that epoch (the state's
//!   current one for the current epoch, its previous one for the previous
//!   epoch); `index` is `committee_index` before electra and 0 from electra
//!   on. `slot` must not be after the head's nor before the head's previous
//!   epoch (the Beacon API: "data for the block at the specified
//!   non-finalized slot"; the pool takes nothing older). `committee_index`
//!   must be below the slot's committee count; before electra it is
//!   required, from electra on it may be left out (the Beacon API deprecates
//!   it: "MAY always be set to 0").
//! - `POST /eth/v1/beacon/pool/attestations` (phase0 .. deneb
//!   `Attestation`s) and `POST /eth/v2/beacon/pool/attestations`
//!   (`Eth-Consensus-Version` required and equal to the chain's fork;
//!   `Attestation`s before electra, `SingleAttestation`s from electra on);
//!   JSON or SSZ (`application/octet-stream`) bodies.
//! - `GET /eth/v1/validator/aggregate_attestation?attestation_data_root&slot`
//!   (phase0 form) and `GET /eth/v2/validator/aggregate_attestation?
//!   attestation_data_root&slot&committee_index` (`{"version", "data"}` and
//!   the `Eth-Consensus-Version` header; electra form from electra on): the
//!   aggregate of the pool's attestations with that data (and committee);
//!   404 when there is none.
//! - `POST /eth/v1/validator/aggregate_and_proofs` and
//!   `POST /eth/v2/validator/aggregate_and_proofs` (`Eth-Consensus-Version`),
//!   JSON or SSZ.
//!
//! The v1 routes take phase0 .. deneb objects only; on an electra chain they
//! answer 400 naming the v2 route. A POST whose items all pass (or are
//! duplicates) is answered 200; otherwise 400 with `failures` naming each
//! refused item by its index and reason, the others being kept all the same.
//! Bodies are bounded (413), and so are item counts (400) at the spec's list
//! limits.

use std::str::FromStr;
use std::sync::Arc;

use bytes::Buf;
use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::debug;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::checks::{Head, PoolError};
use super::{AttestationPool, Outcome, PoolAggregate};
use crate::api::attestation::{
    electra_aggregation_bits_limit, Attestation, AttestationElectra, AttestationError,
    AttestationPhase0, Bitfield, SignedAggregateAndProof, SingleAttestation,
    SINGLE_ATTESTATION_SSZ_LEN,
};
use crate::api::client::CONSENSUS_VERSION_HEADER;
use crate::api::error::{error_reply, error_response};
use crate::api::filters::{parse_item_list, read_body_limited, BodyError};
use crate::api::ssz_list::{decode_fixed, decode_variable};
use crate::api::types::{ErrorMessage, GenericResponse, IndexedFailure, SignatureBytes};
use crate::api::{ApiError, BackendError};
use crate::beacon::backend::{LoadedState, StateBackend};
use crate::spec::signing::compute_epoch_at_slot;
use crate::spec::{AttestationData, Checkpoint, CommitteeIndex, ForkName, Root};

/// Largest accepted POST body (about 45,000 JSON attestations).
pub const MAX_BODY_BYTES: u64 = 32 * 1024 * 1024;

/// Why a request to the attestation routes fails as a whole; each variant
/// has its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolApiError {
    /// 503: no state is loaded yet.
    #[error("{0}")]
    NotReady(String),
    /// 400: a query value is malformed or out of range.
    #[error("invalid {what} {value:?}: {reason}")]
    BadValue {
        /// What the value is.
        what: &'static str,
        /// The value as given (shortened).
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// 400: a required query parameter is missing.
    #[error("missing query parameter {0}")]
    MissingParameter(&'static str),
    /// 400: a v2 POST without `Eth-Consensus-Version`.
    #[error("the Eth-Consensus-Version header is required")]
    MissingVersion,
    /// 400: `Eth-Consensus-Version` is not the chain's fork.
    #[error("Eth-Consensus-Version {given:?} is not the chain's fork {fork}")]
    WrongVersion {
        /// The header's value (shortened).
        given: String,
        /// The chain's fork.
        fork: ForkName,
    },
    /// 400: a v1 route on a chain at electra or later.
    #[error("{path} takes phase0 .. deneb objects; the chain is at {fork}: use {replacement}")]
    Retired {
        /// The route asked.
        path: &'static str,
        /// The chain's fork.
        fork: ForkName,
        /// The route to use.
        replacement: &'static str,
    },
    /// 400: the body is not a list of items.
    #[error("invalid request body: {0}")]
    BadBody(String),
    /// 413: the body is longer than [`MAX_BODY_BYTES`].
    #[error("request body exceeds the limit of {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    /// 415: neither JSON nor SSZ.
    #[error("unsupported content type {0:?}: this endpoint accepts application/json or application/octet-stream")]
    UnsupportedMediaType(String),
    /// 404: the pool has no such attestation.
    #[error("{0}")]
    NotFound(String),
    /// 500: anything else.
    #[error("{0}")]
    Internal(String),
}

impl PoolApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            PoolApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            PoolApiError::BadValue { .. }
            | PoolApiError::MissingParameter(_)
            | PoolApiError::MissingVersion
            | PoolApiError::WrongVersion { .. }
            | PoolApiError::Retired { .. }
            | PoolApiError::BadBody(_) => StatusCode::BAD_REQUEST,
            PoolApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            PoolApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PoolApiError::NotFound(_) => StatusCode::NOT_FOUND,
            PoolApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// This error as a Beacon API error reply.
    pub fn into_response(self) -> Response {
        error_reply(self.status(), self.to_string())
    }

    fn bad_value(what: &'static str, value: &str, reason: impl Into<String>) -> Self {
        PoolApiError::BadValue {
            what,
            value: value.chars().take(100).collect(),
            reason: reason.into(),
        }
    }
}

impl From<BackendError> for PoolApiError {
    fn from(error: BackendError) -> Self {
        match error {
            BackendError::NotReady(message) => PoolApiError::NotReady(message),
            other => PoolApiError::Internal(other.to_string()),
        }
    }
}

/// The route's version: `v1` or `v2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

impl FromStr for Version {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "v1" => Ok(Version::V1),
            "v2" => Ok(Version::V2),
            _ => Err(()),
        }
    }
}

/// The shared state of the routes.
struct PoolApi {
    backend: Arc<StateBackend>,
    pool: Arc<AttestationPool>,
}

impl PoolApi {
    fn head<'a>(&'a self, loaded: &'a LoadedState) -> Head<'a> {
        Head {
            loaded,
            backend: &self.backend,
        }
    }
}

/// Every attestation route over `backend`, keeping what is accepted in
/// `pool`. Other paths are rejected as not found.
pub fn pool_routes(
    backend: Arc<StateBackend>,
    pool: Arc<AttestationPool>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let api = Arc::new(PoolApi { backend, pool });
    let with_api = warp::any().map(move || Arc::clone(&api));
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let post_body = warp::header::optional::<String>(CONSENSUS_VERSION_HEADER)
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::stream());

    let attestation_data = warp::path!("eth" / "v1" / "validator" / "attestation_data")
        .and(warp::get())
        .and(query)
        .and(with_api.clone())
        .then(|query: String, api: Arc<PoolApi>| async move {
            answer(blocking(move || {
                // A genesis state's head root is a whole-state hash away.
                let loaded = api.backend.loaded()?;
                let data = attestation_data(&loaded, &query)?;
                Ok(warp::reply::json(&GenericResponse { data }).into_response())
            }))
            .await
        });
    let attestations = warp::path!("eth" / Version / "beacon" / "pool" / "attestations")
        .and(warp::post())
        .and(post_body)
        .and(with_api.clone())
        .then(
            |version, consensus_version, content_type, body, api: Arc<PoolApi>| {
                answer(post(
                    api,
                    ATTESTATIONS,
                    version,
                    consensus_version,
                    content_type,
                    body,
                    submit_attestations,
                ))
            },
        );
    let aggregate_attestation =
        warp::path!("eth" / Version / "validator" / "aggregate_attestation")
            .and(warp::get())
            .and(query)
            .and(with_api.clone())
            .then(|version, query: String, api: Arc<PoolApi>| {
                answer(blocking(move || {
                    aggregate_attestation(&api, version, &query)
                }))
            });
    let aggregates = warp::path!("eth" / Version / "validator" / "aggregate_and_proofs")
        .and(warp::post())
        .and(post_body)
        .and(with_api)
        .then(
            |version, consensus_version, content_type, body, api: Arc<PoolApi>| {
                answer(post(
                    api,
                    AGGREGATES,
                    version,
                    consensus_version,
                    content_type,
                    body,
                    submit_aggregates,
                ))
            },
        );
    attestation_data
        .or(attestations)
        .unify()
        .or(aggregate_attestation)
        .unify()
        .or(aggregates)
        .unify()
}

async fn answer(
    handler: impl std::future::Future<Output = Result<Response, PoolApiError>>,
) -> Response {
    handler.await.unwrap_or_else(PoolApiError::into_response)
}

/// Runs CPU-bound work (decoding, verification) off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PoolApiError> + Send + 'static,
) -> Result<T, PoolApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| PoolApiError::Internal(format!("pool worker failed: {error}")))?
}

// ---- attestation_data ----

fn parse_u64(what: &'static str, text: &str) -> Result<u64, PoolApiError> {
    text.parse()
        .map_err(|_| PoolApiError::bad_value(what, text, "not an unsigned 64-bit integer"))
}

/// The value of query parameter `name`, if given (the last one if repeated).
fn query_value(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .last()
}

fn query_u64(query: &str, name: &'static str) -> Result<Option<u64>, PoolApiError> {
    query_value(query, name)
        .map(|value| parse_u64(name, &value))
        .transpose()
}

fn required<T>(value: Option<T>, name: &'static str) -> Result<T, PoolApiError> {
    value.ok_or(PoolApiError::MissingParameter(name))
}

/// The `AttestationData` of `slot` and `committee_index` (the module doc
/// gives the rules).
fn attestation_data(loaded: &LoadedState, query: &str) -> Result<AttestationData, PoolApiError> {
    let state = &loaded.state;
    let slot = required(query_u64(query, "slot")?, "slot")?;
    let committee_index = query_u64(query, "committee_index")?;
    let electra = state.fork_name() >= ForkName::Electra;
    let head_slot = state.slot();
    if slot > head_slot {
        return Err(PoolApiError::bad_value(
            "slot",
            &slot.to_string(),
            format!("the head is at slot {head_slot}"),
        ));
    }
    let epoch = compute_epoch_at_slot(slot, state.preset());
    let cache = loaded.committees.for_slot(slot).map_err(|_| {
        PoolApiError::bad_value(
            "slot",
            &slot.to_string(),
            format!(
                "epoch {epoch} is before the head's previous epoch {}",
                state.get_previous_epoch()
            ),
        )
    })?;
    let index = match committee_index {
        Some(index) if index >= cache.committees_per_slot() => {
            return Err(PoolApiError::bad_value(
                "committee_index",
                &index.to_string(),
                format!("slot {slot} has {} committees", cache.committees_per_slot()),
            ))
        }
        Some(_) if electra => 0,
        Some(index) => index,
        None if electra => 0,
        None => return Err(PoolApiError::MissingParameter("committee_index")),
    };
    let root = |what: &str, root: Option<Root>| {
        root.ok_or_else(|| {
            PoolApiError::Internal(format!("the head state does not record the {what}"))
        })
    };
    Ok(AttestationData {
        slot,
        index,
        beacon_block_root: root("block root at the slot", loaded.block_root_at_slot(slot))?,
        source: loaded.justified_checkpoint_for(epoch),
        target: Checkpoint {
            epoch,
            root: root("epoch's checkpoint block", loaded.checkpoint_root(epoch))?,
        },
    })
}

// ---- POST bodies ----

/// How a POST body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Ssz,
}

impl Format {
    /// JSON when the content type says so or says nothing; SSZ for
    /// `application/octet-stream`; 415 otherwise.
    fn of(content_type: Option<&str>) -> Result<Self, PoolApiError> {
        let Some(text) = content_type else {
            return Ok(Format::Json);
        };
        let media_type = text.split(';').next().unwrap_or_default().trim();
        if media_type.eq_ignore_ascii_case("application/json") {
            Ok(Format::Json)
        } else if media_type.eq_ignore_ascii_case("application/octet-stream") {
            Ok(Format::Ssz)
        } else {
            Err(PoolApiError::UnsupportedMediaType(
                text.chars().take(100).collect(),
            ))
        }
    }
}

/// A read POST body.
struct Body {
    format: Format,
    bytes: Vec<u8>,
}

async fn read_body<S, B>(content_type: Option<String>, body: S) -> Result<Body, PoolApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let format = Format::of(content_type.as_deref())?;
    let bytes = read_body_limited(body, MAX_BODY_BYTES)
        .await
        .map_err(|error| match error {
            BodyError::Read(reason) => PoolApiError::BadBody(format!("cannot read it: {reason}")),
            BodyError::TooLarge => PoolApiError::BodyTooLarge,
        })?;
    Ok(Body { format, bytes })
}

/// Each item of `body` decoded (JSON, or SSZ of `ssz_len` bytes each, or of
/// variable size when `None`) and then checked; at most `max_items`.
fn parse_items<T: DeserializeOwned, U>(
    body: &Body,
    max_items: usize,
    ssz_len: Option<usize>,
    decode_ssz: impl Fn(&[u8]) -> Result<T, AttestationError>,
    check: impl Fn(T) -> Result<U, PoolError>,
) -> Result<Vec<Result<U, PoolError>>, PoolApiError> {
    let malformed = |error: &dyn std::fmt::Display| PoolError::Malformed(error.to_string());
    let decoded: Vec<Result<T, PoolError>> = match body.format {
        Format::Json => parse_item_list(&body.bytes, max_items)
            .map_err(|error| match error {
                ApiError::BadRequest(reason) => PoolApiError::BadBody(reason),
                other => PoolApiError::BadBody(other.to_string()),
            })?
            .iter()
            .map(|raw| serde_json::from_str(raw.get()).map_err(|error| malformed(&error)))
            .collect(),
        Format::Ssz => match ssz_len {
            Some(len) => decode_fixed(&body.bytes, len, max_items),
            None => decode_variable(&body.bytes, max_items),
        }
        .map_err(|error| PoolApiError::BadBody(error.to_string()))?
        .into_iter()
        .map(|bytes| decode_ssz(bytes).map_err(|error| malformed(&error)))
        .collect(),
    };
    Ok(decoded
        .into_iter()
        .map(|item| item.and_then(&check))
        .collect())
}

/// 200 when nothing was refused, else 400 naming each refused item.
fn items_reply(outcomes: &[Outcome], noun: &str) -> Response {
    let failures: Vec<IndexedFailure> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(index, outcome)| match outcome {
            Outcome::Refused(error) => Some(IndexedFailure {
                index,
                message: error.to_string(),
            }),
            _ => None,
        })
        .collect();
    if failures.is_empty() {
        return StatusCode::OK.into_response();
    }
    debug!(
        refused = failures.len(),
        of = outcomes.len(),
        "refused {noun}"
    );
    error_response(
        StatusCode::BAD_REQUEST,
        &ErrorMessage {
            code: StatusCode::BAD_REQUEST.as_u16(),
            message: format!(
                "{} of {} {noun} were refused; the others were accepted",
                failures.len(),
                outcomes.len()
            ),
            failures,
        },
    )
}

/// Refuses a v1 route on an electra chain: v1 carries phase0 forms only.
fn check_not_retired(
    loaded: &LoadedState,
    version: Version,
    path: &'static str,
    replacement: &'static str,
) -> Result<(), PoolApiError> {
    let fork = loaded.state.fork_name();
    if version == Version::V1 && fork >= ForkName::Electra {
        return Err(PoolApiError::Retired {
            path,
            fork,
            replacement,
        });
    }
    Ok(())
}

/// Refuses a v1 POST on an electra chain, and a v2 POST whose
/// `Eth-Consensus-Version` is missing or not the chain's fork.
fn check_post_version(
    loaded: &LoadedState,
    version: Version,
    consensus_version: Option<&str>,
    path: &'static str,
    replacement: &'static str,
) -> Result<(), PoolApiError> {
    check_not_retired(loaded, version, path, replacement)?;
    if version == Version::V1 {
        return Ok(());
    }
    let fork = loaded.state.fork_name();
    let given = consensus_version.ok_or(PoolApiError::MissingVersion)?;
    if ForkName::parse(given.trim()) != Some(fork) {
        return Err(PoolApiError::WrongVersion {
            given: given.chars().take(100).collect(),
            fork,
        });
    }
    Ok(())
}

fn usize_limit(limit: u64) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// The routes of a POST: its v1 path, and the v2 path v1 gives way to at electra.
struct PostRoute {
    v1: &'static str,
    v2: &'static str,
}

const ATTESTATIONS: PostRoute = PostRoute {
    v1: "/eth/v1/beacon/pool/attestations",
    v2: "/eth/v2/beacon/pool/attestations",
};

const AGGREGATES: PostRoute = PostRoute {
    v1: "/eth/v1/validator/aggregate_and_proofs",
    v2: "/eth/v2/validator/aggregate_and_proofs",
};

/// What a POST does with its body once read: checks and keeps its items.
type Submit = fn(&PoolApi, &Head, &Body) -> Result<Response, PoolApiError>;

/// Both POSTs: the refusals that need no body first, then the body, then
/// `submit` off the async workers.
async fn post<S, B>(
    api: Arc<PoolApi>,
    route: PostRoute,
    version: Version,
    consensus_version: Option<String>,
    content_type: Option<String>,
    body: S,
    submit: Submit,
) -> Result<Response, PoolApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let loaded = api.backend.loaded()?;
    check_post_version(
        &loaded,
        version,
        consensus_version.as_deref(),
        route.v1,
        route.v2,
    )?;
    let body = read_body(content_type, body).await?;
    blocking(move || submit(&api, &api.head(&loaded), &body)).await
}

fn submit_attestations(api: &PoolApi, head: &Head, body: &Body) -> Result<Response, PoolApiError> {
    // The spec's list limit of both forms.
    let max_items = usize_limit(electra_aggregation_bits_limit(head.loaded.state.preset()));
    let items = if head.is_electra() {
        parse_items(
            body,
            max_items,
            Some(SINGLE_ATTESTATION_SSZ_LEN),
            SingleAttestation::from_ssz_bytes,
            |attestation| head.check_single_attestation(&attestation),
        )?
    } else {
        parse_items(
            body,
            max_items,
            None,
            AttestationPhase0::from_ssz_bytes,
            |attestation| head.check_attestation(&attestation),
        )?
    };
    let outcomes = api.pool.submit_votes(head, items);
    Ok(items_reply(&outcomes, "attestations"))
}

fn submit_aggregates(api: &PoolApi, head: &Head, body: &Body) -> Result<Response, PoolApiError> {
    let preset = head.loaded.state.preset();
    // The Beacon API sets no limit. Selection is random, so committees times
    // TARGET_AGGREGATORS_PER_COMMITTEE is only the expected count of a slot's
    // aggregators; every attester of a slot can aggregate (all do where
    // committees are no larger than that target), which bounds the request.
    let max_items = usize_limit(electra_aggregation_bits_limit(preset));
    let electra = head.is_electra();
    let items = parse_items(
        body,
        max_items,
        None,
        |bytes| SignedAggregateAndProof::from_ssz_bytes(bytes, electra, preset),
        |signed: SignedAggregateAndProof| head.check_aggregate(&signed),
    )?;
    let outcomes = api.pool.submit_aggregates(head, items);
    Ok(items_reply(&outcomes, "aggregates"))
}

// ---- aggregate_attestation ----

/// A v2 reply: `{"version", "data"}`.
#[derive(Serialize)]
struct VersionedResponse<T> {
    version: &'static str,
    data: T,
}

fn aggregate_attestation(
    api: &PoolApi,
    version: Version,
    query: &str,
) -> Result<Response, PoolApiError> {
    let loaded = api.backend.loaded()?;
    check_not_retired(
        &loaded,
        version,
        "/eth/v1/validator/aggregate_attestation",
        "/eth/v2/validator/aggregate_attestation",
    )?;
    let root_text = required(
        query_value(query, "attestation_data_root"),
        "attestation_data_root",
    )?;
    let data_root = Root::from_str(&root_text).map_err(|_| {
        PoolApiError::bad_value(
            "attestation_data_root",
            &root_text,
            "not a 0x-hex 32-byte root",
        )
    })?;
    let slot = required(query_u64(query, "slot")?, "slot")?;
    let committee_index = match version {
        Version::V1 => None,
        Version::V2 => Some(required(
            query_u64(query, "committee_index")?,
            "committee_index",
        )?),
    };
    let head = api.head(&loaded);
    let aggregate = api
        .pool
        .aggregate(&head, slot, data_root, committee_index)
        .ok_or_else(|| {
            PoolApiError::NotFound(format!(
                "no attestation in the pool has data root {data_root} at slot {slot}{}",
                committee_index
                    .map(|index| format!(" in committee {index}"))
                    .unwrap_or_default()
            ))
        })?;
    let fork = loaded.state.fork_name();
    match version {
        Version::V1 => Ok(warp::reply::json(&GenericResponse {
            data: phase0_form(aggregate),
        })
        .into_response()),
        Version::V2 => {
            let data = if head.is_electra() {
                Attestation::Electra(electra_form(aggregate, &loaded)?)
            } else {
                Attestation::Phase0(phase0_form(aggregate))
            };
            let reply = warp::reply::json(&VersionedResponse {
                version: fork.as_str(),
                data,
            });
            Ok(
                warp::reply::with_header(reply, CONSENSUS_VERSION_HEADER, fork.as_str())
                    .into_response(),
            )
        }
    }
}

fn phase0_form(aggregate: PoolAggregate) -> AttestationPhase0 {
    AttestationPhase0 {
        aggregation_bits: aggregate.aggregation_bits,
        data: aggregate.data,
        signature: SignatureBytes(aggregate.signature.to_bytes()),
    }
}

fn electra_form(
    aggregate: PoolAggregate,
    loaded: &LoadedState,
) -> Result<AttestationElectra, PoolApiError> {
    let committees = usize_limit(loaded.state.preset().MAX_COMMITTEES_PER_SLOT);
    let committee: CommitteeIndex = aggregate.committee_index;
    let committee_bits = Bitfield::with_bit(committees, usize_limit(committee))
        .map_err(|error| PoolApiError::Internal(format!("committee {committee}: {error}")))?;
    Ok(AttestationElectra {
        aggregation_bits: aggregate.aggregation_bits,
        data: aggregate.data,
        signature: SignatureBytes(aggregate.signature.to_bytes()),
        committee_bits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_choose_the_format() {
        assert_eq!(Format::of(None), Ok(Format::Json));
        assert_eq!(
            Format::of(Some("Application/JSON; charset=utf-8")),
            Ok(Format::Json)
        );
        assert_eq!(
            Format::of(Some("application/octet-stream")),
            Ok(Format::Ssz)
        );
        assert!(matches!(
            Format::of(Some("text/plain")),
            Err(PoolApiError::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn query_values_are_parsed_and_named() {
        assert_eq!(
            query_u64("slot=12&committee_index=3", "committee_index"),
            Ok(Some(3))
        );
        assert_eq!(query_u64("slot=12", "committee_index"), Ok(None));
        let error = query_u64("slot=-1", "slot").unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(error.to_string().contains("\"-1\""), "{error}");
        assert_eq!(
            required::<u64>(None, "slot").unwrap_err().to_string(),
            "missing query parameter slot"
        );
    }
}
