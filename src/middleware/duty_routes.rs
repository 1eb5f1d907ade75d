//! The warp filters of the duty endpoints the middleware serves its
//! validator client itself: `GET /eth/v1/validator/attestation_data` (the
//! cluster's agreed data), `POST /eth/v1|v2/beacon/pool/attestations`
//! (partial attestations), `GET /eth/v1|v2/validator/aggregate_attestation`
//! (the agreed aggregate) and `POST /eth/v1|v2/validator/aggregate_and_proofs`
//! (partial `AggregateAndProof` signatures). They are mounted before the
//! selection routes, the key mapping and the proxy (see `service`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Buf;
use futures_util::Stream;
use serde::Deserialize;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::aggregator::Aggregator;
use super::attester::Attester;
use super::chain::ChainState;
use super::metrics::{Metrics, RequestOutcome};
use crate::api::attestation::{
    Attestation, AttestationPhase0, SignedAggregateAndProof, SingleAttestation,
};
use crate::api::client::CONSENSUS_VERSION_HEADER;
use crate::api::error::ApiError;
use crate::api::filters::{read_item_list, Limits};
use crate::api::types::GenericResponse;
use crate::spec::time::unix_now;
use crate::spec::{CommitteeIndex, ForkName, Root, Slot};

/// The endpoint names used in metrics.
pub const ATTESTATION_DATA: &str = "attestation_data";
/// See [`ATTESTATION_DATA`].
pub const POOL_ATTESTATIONS: &str = "pool_attestations";
/// See [`ATTESTATION_DATA`].
pub const AGGREGATE_ATTESTATION: &str = "aggregate_attestation";
/// See [`ATTESTATION_DATA`].
pub const AGGREGATE_AND_PROOFS: &str = "aggregate_and_proofs";

/// The query of `GET attestation_data`.
#[derive(Debug, Deserialize)]
struct AttestationDataQuery {
    slot: Slot,
    committee_index: CommitteeIndex,
}

/// Which pool endpoint a request is for.
#[derive(Debug, Clone, Copy)]
enum PoolVersion {
    V1,
    V2,
}

/// The request headers a pool endpoint reads.
struct PoolHeaders {
    content_type: Option<String>,
    content_length: Option<u64>,
    consensus_version: Option<String>,
}

/// The duty endpoints of one middleware node.
pub fn duty_routes(
    attester: Arc<Attester>,
    aggregator: Arc<Aggregator>,
    chain: Arc<ChainState>,
    metrics: Arc<Metrics>,
    limits: Limits,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let aggregates = aggregate_routes(aggregator, Arc::clone(&chain), Arc::clone(&metrics), limits);
    let data_attester = Arc::clone(&attester);
    let data_metrics = Arc::clone(&metrics);
    let attestation_data = warp::path!("eth" / "v1" / "validator" / "attestation_data")
        .and(warp::get())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .then(move |query: String| {
            let attester = Arc::clone(&data_attester);
            let chain = Arc::clone(&chain);
            let metrics = Arc::clone(&data_metrics);
            async move {
                let result = serve_attestation_data(&attester, &chain, &query).await;
                respond(
                    &metrics,
                    ATTESTATION_DATA,
                    result.map(|data| GenericResponse { data }),
                )
            }
        });
    let headers = warp::header::optional::<String>("content-type")
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::header::optional::<String>(CONSENSUS_VERSION_HEADER))
        .map(
            |content_type, content_length, consensus_version| PoolHeaders {
                content_type,
                content_length,
                consensus_version,
            },
        );
    let v1 = warp::path!("eth" / "v1" / "beacon" / "pool" / "attestations").map(|| PoolVersion::V1);
    let v2 = warp::path!("eth" / "v2" / "beacon" / "pool" / "attestations").map(|| PoolVersion::V2);
    let pool = v1
        .or(v2)
        .unify()
        .and(warp::post())
        .and(headers)
        .and(warp::body::stream())
        .then(move |version: PoolVersion, headers: PoolHeaders, body| {
            let attester = Arc::clone(&attester);
            let metrics = Arc::clone(&metrics);
            async move {
                let result = serve_pool(&attester, limits, version, headers, body).await;
                match result {
                    Ok(()) => {
                        metrics.request(POOL_ATTESTATIONS, RequestOutcome::Complete);
                        warp::reply().into_response()
                    }
                    Err(error) => {
                        metrics.request(POOL_ATTESTATIONS, RequestOutcome::Refused);
                        error.into_response()
                    }
                }
            }
        });
    attestation_data.or(pool).unify().or(aggregates).unify()
}

/// The query of `GET aggregate_attestation`.
struct AggregateQuery {
    data_root: Root,
    slot: Slot,
    committee_index: Option<CommitteeIndex>,
}

/// `GET /eth/v1|v2/validator/aggregate_attestation` and
/// `POST /eth/v1|v2/validator/aggregate_and_proofs`.
fn aggregate_routes(
    aggregator: Arc<Aggregator>,
    chain: Arc<ChainState>,
    metrics: Arc<Metrics>,
    limits: Limits,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let get_aggregator = Arc::clone(&aggregator);
    let get_chain = Arc::clone(&chain);
    let get_metrics = Arc::clone(&metrics);
    let v1 =
        warp::path!("eth" / "v1" / "validator" / "aggregate_attestation").map(|| PoolVersion::V1);
    let v2 =
        warp::path!("eth" / "v2" / "validator" / "aggregate_attestation").map(|| PoolVersion::V2);
    let get = v1
        .or(v2)
        .unify()
        .and(warp::get())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .then(move |version: PoolVersion, query: String| {
            let aggregator = Arc::clone(&get_aggregator);
            let chain = Arc::clone(&get_chain);
            let metrics = Arc::clone(&get_metrics);
            async move {
                let result = serve_aggregate(&aggregator, &chain, version, &query).await;
                match result {
                    Ok((fork, attestation)) => {
                        metrics.request(AGGREGATE_ATTESTATION, RequestOutcome::Complete);
                        versioned_reply(version, fork, attestation)
                    }
                    Err(error) => {
                        metrics.request(AGGREGATE_ATTESTATION, RequestOutcome::Refused);
                        error.into_response()
                    }
                }
            }
        });
    let headers = warp::header::optional::<String>("content-type")
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::header::optional::<String>(CONSENSUS_VERSION_HEADER))
        .map(
            |content_type, content_length, consensus_version| PoolHeaders {
                content_type,
                content_length,
                consensus_version,
            },
        );
    let v1 =
        warp::path!("eth" / "v1" / "validator" / "aggregate_and_proofs").map(|| PoolVersion::V1);
    let v2 =
        warp::path!("eth" / "v2" / "validator" / "aggregate_and_proofs").map(|| PoolVersion::V2);
    let post = v1
        .or(v2)
        .unify()
        .and(warp::post())
        .and(headers)
        .and(warp::body::stream())
        .then(move |version: PoolVersion, headers: PoolHeaders, body| {
            let aggregator = Arc::clone(&aggregator);
            let chain = Arc::clone(&chain);
            let metrics = Arc::clone(&metrics);
            async move {
                let result =
                    serve_aggregate_and_proofs(&aggregator, &chain, limits, version, headers, body)
                        .await;
                match result {
                    Ok(()) => {
                        metrics.request(AGGREGATE_AND_PROOFS, RequestOutcome::Complete);
                        warp::reply().into_response()
                    }
                    Err(error) => {
                        metrics.request(AGGREGATE_AND_PROOFS, RequestOutcome::Refused);
                        error.into_response()
                    }
                }
            }
        });
    get.or(post).unify()
}

/// `{"data": ...}` for v1; `{"version", "data"}` and the
/// `Eth-Consensus-Version` header for v2.
fn versioned_reply(version: PoolVersion, fork: ForkName, attestation: Attestation) -> Response {
    match version {
        PoolVersion::V1 => {
            warp::reply::json(&GenericResponse { data: attestation }).into_response()
        }
        PoolVersion::V2 => {
            let body = serde_json::json!({ "version": fork.as_str(), "data": attestation });
            warp::reply::with_header(
                warp::reply::json(&body),
                CONSENSUS_VERSION_HEADER,
                fork.as_str(),
            )
            .into_response()
        }
    }
}

/// How long an aggregation request may wait: until the end of the slot,
/// at least a quarter of a slot.
fn until_slot_end(chain: &ChainState, slot: Slot) -> Result<(ForkName, Duration), ApiError> {
    let view = chain
        .view()
        .map_err(|reason| ApiError::NotReady(format!("the middleware is not ready: {reason}")))?;
    let slot_duration = Duration::from_secs(view.info.spec.seconds_per_slot.max(1));
    let wait = match view.info.slot_clock() {
        Ok(clock) => clock
            .slot_start(slot.saturating_add(1))
            .saturating_sub(unix_now())
            .max(slot_duration / 4),
        Err(_) => slot_duration,
    };
    Ok((view.info.fork_at_slot(slot), wait))
}

async fn serve_aggregate(
    aggregator: &Aggregator,
    chain: &ChainState,
    version: PoolVersion,
    query: &str,
) -> Result<(ForkName, Attestation), ApiError> {
    let query = parse_aggregate_query(query, matches!(version, PoolVersion::V2))?;
    let (fork, wait) = until_slot_end(chain, query.slot)?;
    if matches!(version, PoolVersion::V1) && fork >= ForkName::Electra {
        return Err(ApiError::BadRequest(format!(
            "slot {} is in {}: use /eth/v2/validator/aggregate_attestation",
            query.slot,
            fork.as_str()
        )));
    }
    let attestation = aggregator
        .aggregate_attestation(query.data_root, query.slot, query.committee_index, wait)
        .await?;
    Ok((fork, attestation))
}

/// Parses `attestation_data_root=0x..&slot=..[&committee_index=..]`.
fn parse_aggregate_query(query: &str, needs_committee: bool) -> Result<AggregateQuery, ApiError> {
    let mut data_root = None;
    let mut slot = None;
    let mut committee_index = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let bad = |expected: &str| {
            ApiError::BadRequest(format!(
                "query parameter {key} must be {expected}, got {:?}",
                value.chars().take(24).collect::<String>()
            ))
        };
        match key.as_ref() {
            "attestation_data_root" => {
                let bytes = crate::spec::hex::parse_hex_array::<32>(&value)
                    .map_err(|_| bad("0x and 32 bytes of hex"))?;
                data_root = Some(Root::from(bytes));
            }
            "slot" => slot = Some(value.parse::<u64>().map_err(|_| bad("a decimal integer"))?),
            "committee_index" => {
                committee_index = Some(value.parse::<u64>().map_err(|_| bad("a decimal integer"))?)
            }
            _ => {}
        }
    }
    match (data_root, slot) {
        (Some(data_root), Some(slot)) if committee_index.is_some() || !needs_committee => {
            Ok(AggregateQuery {
                data_root,
                slot,
                committee_index,
            })
        }
        _ => Err(ApiError::BadRequest(format!(
            "query parameters attestation_data_root and slot{} are required",
            if needs_committee {
                " and committee_index"
            } else {
                ""
            }
        ))),
    }
}

async fn serve_aggregate_and_proofs<S, B>(
    aggregator: &Arc<Aggregator>,
    chain: &ChainState,
    limits: Limits,
    version: PoolVersion,
    headers: PoolHeaders,
    body: S,
) -> Result<(), ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let fork = match version {
        PoolVersion::V1 => None,
        PoolVersion::V2 => Some(consensus_version(headers.consensus_version.as_deref())?),
    };
    let items = read_item_list::<SignedAggregateAndProof, _, _>(
        limits,
        headers.content_type.as_deref(),
        headers.content_length,
        body,
    )
    .await?;
    // Aggregates are due by two thirds of the slot; each item waits for its
    // duty's combination until the end of the current slot at most.
    let slot = items
        .iter()
        .filter_map(|item| item.as_ref().ok())
        .map(|item| item.message.aggregate.data().slot)
        .max()
        .unwrap_or_default();
    let (_, wait) = until_slot_end(chain, slot)?;
    aggregator
        .post_aggregate_and_proofs(fork, items, wait)
        .await
}

fn respond<T: serde::Serialize>(
    metrics: &Metrics,
    endpoint: &'static str,
    result: Result<T, ApiError>,
) -> Response {
    match result {
        Ok(body) => {
            metrics.request(endpoint, RequestOutcome::Complete);
            warp::reply::json(&body).into_response()
        }
        Err(error) => {
            metrics.request(endpoint, RequestOutcome::Refused);
            error.into_response()
        }
    }
}

/// The agreed data for the query's slot and committee, waiting for the
/// agreement until the end of the slot (at least a quarter of a slot).
async fn serve_attestation_data(
    attester: &Attester,
    chain: &ChainState,
    query: &str,
) -> Result<crate::spec::AttestationData, ApiError> {
    let query: AttestationDataQuery = serde_urlencoded_query(query)?;
    let view = chain
        .view()
        .map_err(|reason| ApiError::NotReady(format!("the middleware is not ready: {reason}")))?;
    let slot_duration = Duration::from_secs(view.info.spec.seconds_per_slot.max(1));
    let wait = match view.info.slot_clock() {
        Ok(clock) => clock
            .slot_start(query.slot.saturating_add(1))
            .saturating_sub(unix_now())
            .max(slot_duration / 4),
        Err(_) => slot_duration,
    };
    attester
        .attestation_data(query.slot, query.committee_index, wait)
        .await
}

/// Parses `slot=..&committee_index=..` (both required, decimal).
fn serde_urlencoded_query(query: &str) -> Result<AttestationDataQuery, ApiError> {
    let mut slot = None;
    let mut committee_index = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let parsed = value.parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!(
                "query parameter {key} must be a decimal integer, got {:?}",
                value.chars().take(24).collect::<String>()
            ))
        });
        match key.as_ref() {
            "slot" => slot = Some(parsed?),
            "committee_index" => committee_index = Some(parsed?),
            _ => {}
        }
    }
    match (slot, committee_index) {
        (Some(slot), Some(committee_index)) => Ok(AttestationDataQuery {
            slot,
            committee_index,
        }),
        _ => Err(ApiError::BadRequest(
            "query parameters slot and committee_index are required".into(),
        )),
    }
}

/// `POST /eth/{v1,v2}/beacon/pool/attestations`.
async fn serve_pool<S, B>(
    attester: &Arc<Attester>,
    limits: Limits,
    version: PoolVersion,
    headers: PoolHeaders,
    body: S,
) -> Result<(), ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let (content_type, length) = (headers.content_type.as_deref(), headers.content_length);
    match version {
        PoolVersion::V1 => {
            let items =
                read_item_list::<AttestationPhase0, _, _>(limits, content_type, length, body)
                    .await?;
            attester.post_attestations_v1(items).await
        }
        PoolVersion::V2 => {
            let fork = consensus_version(headers.consensus_version.as_deref())?;
            if fork >= ForkName::Electra {
                let items =
                    read_item_list::<SingleAttestation, _, _>(limits, content_type, length, body)
                        .await?;
                attester.post_attestations_v2(fork, items).await
            } else {
                let items =
                    read_item_list::<AttestationPhase0, _, _>(limits, content_type, length, body)
                        .await?;
                attester.post_attestations_v1(items).await
            }
        }
    }
}

/// The fork an `Eth-Consensus-Version` header names.
pub fn consensus_version(header: Option<&str>) -> Result<ForkName, ApiError> {
    let name = header.ok_or_else(|| {
        ApiError::BadRequest(format!("the {CONSENSUS_VERSION_HEADER} header is required"))
    })?;
    ForkName::parse(&name.trim().to_ascii_lowercase()).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{CONSENSUS_VERSION_HEADER} {:?} names no fork",
            name.chars().take(16).collect::<String>()
        ))
    })
}
