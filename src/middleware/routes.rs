//! The routes the middleware serves its validator client itself, as warp
//! filters: `POST /eth/v1/validator/beacon_committee_selections`,
//! `.../sync_committee_selections`, `.../is_aggregator` and `GET /metrics`.
//! Everything else the VC sends goes to the public-key mapping and the
//! reverse proxy mounted behind these (see `service`).
//!
//! The two selection routes take their items as JSON or as SSZ (a list of
//! fixed-size records, `Content-Type: application/octet-stream`, as
//! Lodestar's validator client posts them) and answer in the encoding the
//! request's `Accept` prefers (JSON on a tie; 406 if it allows neither).
//! `is_aggregator` has no SSZ form. Errors are always JSON bodies.

use std::future::Future;
use std::sync::Arc;

use bytes::Buf;
use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::metrics::{Metrics, RequestOutcome, CONTENT_TYPE};
use super::selections::{
    Selections, BEACON_COMMITTEE_SELECTIONS, IS_AGGREGATOR, SYNC_COMMITTEE_SELECTIONS,
};
use super::store::PartialStore;
use crate::api::error::{ApiError, ItemError};
use crate::api::filters::{read_body, read_item_list, Limits};
use crate::api::types::GenericResponse;
use crate::api::wire::{decode_ssz_records, encode_ssz_records, Accept, MediaType, SszRecord};

/// The request headers a list endpoint reads.
struct ListHeaders {
    content_type: Option<String>,
    content_length: Option<u64>,
    accept: Option<String>,
}

fn list_headers() -> impl Filter<Extract = (ListHeaders,), Error = Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::header::optional::<String>("accept"))
        .map(|content_type, content_length, accept| ListHeaders {
            content_type,
            content_length,
            accept,
        })
}

/// The middleware's own VC-facing routes.
pub fn middleware_routes(
    selections: Arc<Selections>,
    metrics: Arc<Metrics>,
    store: Arc<PartialStore>,
    limits: Limits,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let context = Context {
        selections,
        metrics: Arc::clone(&metrics),
        limits,
    };
    let beacon = list_route(
        warp::path!("eth" / "v1" / "validator" / "beacon_committee_selections"),
        BEACON_COMMITTEE_SELECTIONS,
        context.clone(),
        Some(SszCodec::records()),
        |s: Arc<Selections>, items| async move { s.beacon_committee_selections(items).await },
    );
    let sync = list_route(
        warp::path!("eth" / "v1" / "validator" / "sync_committee_selections"),
        SYNC_COMMITTEE_SELECTIONS,
        context.clone(),
        Some(SszCodec::records()),
        |s: Arc<Selections>, items| async move { s.sync_committee_selections(items).await },
    );
    let is_aggregator = list_route(
        warp::path!("eth" / "v1" / "validator" / "is_aggregator"),
        IS_AGGREGATOR,
        context,
        None,
        |s: Arc<Selections>, items| async move { s.is_aggregator(items).await },
    );
    let metrics_route = warp::path!("metrics").and(warp::get()).map(move || {
        let text = metrics.render(&store.stats());
        warp::reply::with_header(text, "content-type", CONTENT_TYPE).into_response()
    });
    beacon
        .or(sync)
        .unify()
        .or(is_aggregator)
        .unify()
        .or(metrics_route)
        .unify()
}

/// What every list route shares.
#[derive(Clone)]
struct Context {
    selections: Arc<Selections>,
    metrics: Arc<Metrics>,
    limits: Limits,
}

/// The SSZ form of a list route: how it reads a request of SSZ records and
/// writes its answer as SSZ.
struct SszCodec<T, R> {
    decode: fn(&[u8], usize) -> Result<Vec<T>, ApiError>,
    encode: fn(R) -> Vec<u8>,
}

// Function pointers are `Copy` whatever `T` and `R` are; a derive would ask it of them.
impl<T, R> Clone for SszCodec<T, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, R> Copy for SszCodec<T, R> {}

impl<T: SszRecord> SszCodec<T, Vec<T>> {
    /// A list of fixed-size records both ways.
    fn records() -> Self {
        fn encode<T: SszRecord>(items: Vec<T>) -> Vec<u8> {
            encode_ssz_records(&items)
        }
        SszCodec {
            decode: decode_ssz_records::<T>,
            encode: encode::<T>,
        }
    }
}

/// `POST path`: a list of `T` (JSON, or SSZ where `ssz` is given) answered
/// by `handler`.
fn list_route<P, T, R, F, Fut>(
    path: P,
    endpoint: &'static str,
    context: Context,
    ssz: Option<SszCodec<T, R>>,
    handler: F,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone
where
    P: Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static,
    T: DeserializeOwned + Send + 'static,
    R: Serialize + 'static,
    F: Fn(Arc<Selections>, Vec<Result<T, ItemError>>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R, ApiError>> + Send,
{
    path.and(warp::post())
        .and(list_headers())
        .and(warp::body::stream())
        .then(move |headers, body| {
            let context = context.clone();
            let handler = handler.clone();
            async move { serve_list(context, headers, body, endpoint, ssz, handler).await }
        })
}

/// Reads a list request and answers it with `handler`'s data in the
/// encoding the request prefers, or the Beacon API error body.
async fn serve_list<T, R, S, B, F, Fut>(
    context: Context,
    headers: ListHeaders,
    body: S,
    endpoint: &'static str,
    ssz: Option<SszCodec<T, R>>,
    handler: F,
) -> Response
where
    T: DeserializeOwned + Send + 'static,
    R: Serialize,
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
    F: FnOnce(Arc<Selections>, Vec<Result<T, ItemError>>) -> Fut,
    Fut: Future<Output = Result<R, ApiError>>,
{
    let Context {
        selections,
        metrics,
        limits,
    } = context;
    // Cheap refusals first, before a large body is read or a partial stored.
    let request = match selections.ready() {
        Ok(_) => match answer_encoding(headers.accept.as_deref(), ssz.is_some()) {
            Ok(encoding) => read_items(limits, &headers, body, ssz)
                .await
                .map(|items| (encoding, items)),
            Err(error) => Err(error),
        },
        Err(error) => Err(error),
    };
    let (encoding, items) = match request {
        Ok(request) => request,
        Err(error) => {
            metrics.request(endpoint, RequestOutcome::Refused);
            return error.into_response();
        }
    };
    match (handler(selections, items).await, ssz) {
        (Ok(data), Some(ssz)) if encoding == MediaType::Ssz => {
            warp::reply::with_header((ssz.encode)(data), "content-type", encoding.content_type())
                .into_response()
        }
        (Ok(data), _) => warp::reply::json(&GenericResponse { data }).into_response(),
        (Err(error), _) => error.into_response(),
    }
}

/// The encoding to answer in: SSZ where the route has it and the request
/// prefers it, JSON otherwise; 406 if the request accepts neither.
fn answer_encoding(accept: Option<&str>, has_ssz: bool) -> Result<MediaType, ApiError> {
    let offered: &[MediaType] = if has_ssz {
        &[MediaType::Json, MediaType::Ssz]
    } else {
        &[MediaType::Json]
    };
    Accept::parse(accept).preferred(offered).ok_or_else(|| {
        let names: Vec<&str> = offered.iter().map(|m| m.content_type()).collect();
        ApiError::NotAcceptable(format!(
            "this endpoint answers in {}; the request's Accept ({:?}) allows none of them",
            names.join(" or "),
            accept
                .unwrap_or_default()
                .chars()
                .take(100)
                .collect::<String>()
        ))
    })
}

/// The request's items: SSZ records when the route has an SSZ form and the
/// body says it is SSZ, else a JSON list (which refuses other content types).
async fn read_items<T, R, S, B>(
    limits: Limits,
    headers: &ListHeaders,
    body: S,
    ssz: Option<SszCodec<T, R>>,
) -> Result<Vec<Result<T, ItemError>>, ApiError>
where
    T: DeserializeOwned + Send + 'static,
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let content_type = headers.content_type.as_deref();
    let Some(ssz) = ssz else {
        return read_item_list(limits, content_type, headers.content_length, body).await;
    };
    match content_type.map(|text| (text, MediaType::of_content_type(text))) {
        None | Some((_, Some(MediaType::Json))) => {
            read_item_list(limits, content_type, headers.content_length, body).await
        }
        Some((_, Some(MediaType::Ssz))) => {
            if headers
                .content_length
                .is_some_and(|length| length > limits.max_body_bytes)
            {
                return Err(ApiError::BodyTooLarge {
                    limit: limits.max_body_bytes,
                });
            }
            let bytes = read_body(body, limits.max_body_bytes).await?;
            let items = (ssz.decode)(&bytes, limits.max_items)?;
            Ok(items.into_iter().map(Ok).collect())
        }
        Some((text, None)) => Err(ApiError::UnsupportedEncoding(
            text.chars().take(100).collect(),
        )),
    }
}
