//! warp filters that a Lighthouse-style node mounts next to its own routes:
//! `POST /eth/v1/validator/is_aggregator` over a [`SelectionBackend`], the two
//! standard selection endpoints answered 501 (only distributed-validator
//! middleware serves them), and [`recover`] for Beacon API error bodies.
//!
//! Every error of these routes is already a JSON reply, so they work behind a
//! node's own `recover`; [`recover`] is for servers made of these routes alone.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Buf, BufMut};
use futures_util::{Stream, StreamExt};
use serde::de::{Error as _, SeqAccess, Visitor};
use serde::Deserializer as _;
use serde_json::value::RawValue;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::backend::{BackendError, SelectionBackend};
use super::error::{error_response, ApiError, ItemError};
use super::selection::answer_parsed;
use super::types::{ErrorMessage, GenericResponse, IsAggregatorRequestItem};

/// Bounds on one `is_aggregator` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted body, in bytes; a longer one gets 413.
    pub max_body_bytes: u64,
    /// Most items in one request; more get 400.
    pub max_items: usize,
}

impl Limits {
    /// 16 MiB: room for [`Self::DEFAULT_MAX_ITEMS`] items of about 330 bytes each,
    /// pretty-printed.
    pub const DEFAULT_MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;
    /// 32,768 items: one per validator for a validator client of 32k keys.
    /// A 10,000-item request took about 1.7 s on a loaded 2-core machine,
    /// mostly the subgroup checks of the signatures.
    pub const DEFAULT_MAX_ITEMS: usize = 32_768;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_items: Self::DEFAULT_MAX_ITEMS,
        }
    }
}

/// `POST /eth/v1/validator/is_aggregator` with the default [`Limits`].
pub fn is_aggregator_routes(
    backend: Arc<dyn SelectionBackend>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    is_aggregator_routes_with_limits(backend, Limits::default())
}

/// `POST /eth/v1/validator/is_aggregator` with the given [`Limits`].
pub fn is_aggregator_routes_with_limits(
    backend: Arc<dyn SelectionBackend>,
    limits: Limits,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("eth" / "v1" / "validator" / "is_aggregator")
        .and(warp::post())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .then(
            move |content_type: Option<String>, content_length: Option<u64>, body| {
                let backend = backend.clone();
                async move {
                    match is_aggregator(backend, limits, content_type, content_length, body).await {
                        Ok(answers) => {
                            warp::reply::json(&GenericResponse { data: answers }).into_response()
                        }
                        Err(error) => error.into_response(),
                    }
                }
            },
        )
}

/// `POST /eth/v1/validator/beacon_committee_selections` and
/// `.../sync_committee_selections` on a beacon node: 501, as the Beacon API
/// allows, because only distributed-validator middleware can combine the
/// partial selection proofs of a cluster.
pub fn selections_not_implemented() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone
{
    let beacon = warp::path!("eth" / "v1" / "validator" / "beacon_committee_selections")
        .map(|| "beacon_committee_selections");
    let sync = warp::path!("eth" / "v1" / "validator" / "sync_committee_selections")
        .map(|| "sync_committee_selections");
    beacon
        .or(sync)
        .unify()
        .and(warp::post())
        .map(|endpoint: &str| {
            ApiError::NotImplemented(format!(
            "{endpoint} is only served by distributed validator middleware, which combines the \
             partial selection proofs of a cluster; this beacon node does not implement it"
        ))
            .into_response()
        })
}

/// A server future, ready to be spawned.
pub type ServerFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Binds `listen` and returns the bound address (port 0 picks a free one)
/// and the server future: it serves `routes`, with rejections turned into
/// Beacon API error bodies by [`recover`], until `shutdown` resolves or the
/// future is dropped; then it closes the listener and idle connections and
/// lets requests in flight finish.
pub async fn bind_server<F, G>(
    routes: F,
    listen: std::net::SocketAddr,
    shutdown: G,
) -> std::io::Result<(std::net::SocketAddr, ServerFuture)>
where
    F: Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static,
    G: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let routes = routes.recover(recover);
    let server = warp::serve(routes)
        .incoming(listener)
        .graceful(shutdown)
        .run();
    Ok((addr, Box::pin(server)))
}

/// Turns a rejection into a Beacon API error body (`{"code", "message"}`).
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    if let Some(error) = rejection.find::<ApiError>() {
        return Ok(error.clone().into_response());
    }
    let (status, message) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "no such endpoint".to_string())
    } else {
        use warp::filters::body::BodyDeserializeError;
        use warp::reject::{
            InvalidHeader, InvalidQuery, LengthRequired, MethodNotAllowed, MissingHeader,
            PayloadTooLarge, UnsupportedMediaType,
        };
        let r = &rejection;
        found::<MethodNotAllowed>(r, StatusCode::METHOD_NOT_ALLOWED)
            .or_else(|| found::<PayloadTooLarge>(r, StatusCode::PAYLOAD_TOO_LARGE))
            .or_else(|| found::<UnsupportedMediaType>(r, StatusCode::UNSUPPORTED_MEDIA_TYPE))
            .or_else(|| found::<LengthRequired>(r, StatusCode::LENGTH_REQUIRED))
            .or_else(|| found::<BodyDeserializeError>(r, StatusCode::BAD_REQUEST))
            .or_else(|| found::<InvalidHeader>(r, StatusCode::BAD_REQUEST))
            .or_else(|| found::<MissingHeader>(r, StatusCode::BAD_REQUEST))
            .or_else(|| found::<InvalidQuery>(r, StatusCode::BAD_REQUEST))
            .unwrap_or_else(|| {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("unhandled rejection: {r:?}"),
                )
            })
    };
    let body = ErrorMessage {
        code: status.as_u16(),
        message,
        failures: Vec::new(),
    };
    Ok(error_response(status, &body))
}

/// The status and message of a warp rejection of type `T`, if it is one.
fn found<T: std::fmt::Display + 'static>(
    rejection: &Rejection,
    status: StatusCode,
) -> Option<(StatusCode, String)> {
    rejection
        .find::<T>()
        .map(|error| (status, error.to_string()))
}

async fn is_aggregator<S, B>(
    backend: Arc<dyn SelectionBackend>,
    limits: Limits,
    content_type: Option<String>,
    content_length: Option<u64>,
    body: S,
) -> Result<Vec<bool>, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    // Cheap refusals first, before a large body is read.
    if let Err(error) = backend.current_slot() {
        return Err(match error {
            BackendError::NotReady(message) => ApiError::NotReady(message),
            other => ApiError::Internal(other.to_string()),
        });
    }
    let parsed: Vec<Result<IsAggregatorRequestItem, ItemError>> =
        read_item_list(limits, content_type.as_deref(), content_length, body).await?;
    // BLS verification is CPU-bound: keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        let borrowed: Vec<Result<&IsAggregatorRequestItem, ItemError>> = parsed
            .iter()
            .map(|item| item.as_ref().map_err(Clone::clone))
            .collect();
        answer_parsed(backend.as_ref(), &borrowed)
    })
    .await
    .map_err(|error| ApiError::Internal(format!("is_aggregator worker failed: {error}")))?
}

/// Reads a request body that is a JSON array of `T` within `limits`: the
/// content type must be JSON (or absent), the body at most
/// `limits.max_body_bytes` (chunked or not) and the array at most
/// `limits.max_items` long. Each item is parsed on its own, so that a bad
/// one is named by its index while the others keep their answer.
pub(crate) async fn read_item_list<T, S, B>(
    limits: Limits,
    content_type: Option<&str>,
    content_length: Option<u64>,
    body: S,
) -> Result<Vec<Result<T, ItemError>>, ApiError>
where
    T: serde::de::DeserializeOwned + Send + 'static,
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    check_json_content_type(content_type)?;
    if content_length.is_some_and(|length| length > limits.max_body_bytes) {
        return Err(ApiError::BodyTooLarge {
            limit: limits.max_body_bytes,
        });
    }
    let body = read_body(body, limits.max_body_bytes).await?;
    // Parsing up to 16 MiB of JSON takes tens of milliseconds.
    tokio::task::spawn_blocking(move || {
        let raw_items = parse_item_list(&body, limits.max_items)?;
        Ok(raw_items.iter().map(|raw| parse_item(raw)).collect())
    })
    .await
    .map_err(|error| ApiError::Internal(format!("request parser failed: {error}")))?
}

/// Accepts `application/json` (any parameters, any case) or no content type.
pub(crate) fn check_json_content_type(content_type: Option<&str>) -> Result<(), ApiError> {
    match content_type {
        Some(text) if !is_json_content_type(text) => Err(ApiError::UnsupportedMediaType(
            text.chars().take(100).collect(),
        )),
        _ => Ok(()),
    }
}

/// Whether a `Content-Type` names JSON (any parameters, any case).
pub(crate) fn is_json_content_type(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    media_type.eq_ignore_ascii_case("application/json")
}

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// The connection failed mid-body.
    Read(String),
    /// The body passed the limit.
    TooLarge,
}

/// Reads a (possibly chunked) body, refusing it as soon as it passes `limit`.
pub(crate) async fn read_body<S, B>(body: S, limit: u64) -> Result<Vec<u8>, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    read_body_limited(body, limit)
        .await
        .map_err(|error| match error {
            BodyError::Read(error) => {
                ApiError::BadRequest(format!("cannot read the body: {error}"))
            }
            BodyError::TooLarge => ApiError::BodyTooLarge { limit },
        })
}

/// Collects a (possibly chunked) body, refusing it once it passes `limit`.
pub(crate) async fn read_body_limited<S, B>(body: S, limit: u64) -> Result<Vec<u8>, BodyError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut collected = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|error| BodyError::Read(error.to_string()))?;
        if (collected.len() as u64).saturating_add(chunk.remaining() as u64) > limit {
            return Err(BodyError::TooLarge);
        }
        collected.put(chunk);
    }
    Ok(collected)
}

/// Splits a JSON array into its raw items, refusing more than `max_items`,
/// so that each item can be parsed (and named when bad) on its own.
pub(crate) fn parse_item_list(body: &[u8], max_items: usize) -> Result<Vec<&RawValue>, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let items = deserializer
        .deserialize_seq(BoundedList { max_items })
        .and_then(|items| deserializer.end().map(|()| items))
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    Ok(items)
}

fn parse_item<T: serde::de::DeserializeOwned>(raw: &RawValue) -> Result<T, ItemError> {
    serde_json::from_str(raw.get()).map_err(|error| ItemError::Malformed(error.to_string()))
}

/// A JSON array of at most `max_items` raw values.
struct BoundedList {
    max_items: usize,
}

impl<'de> Visitor<'de> for BoundedList {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            formatter,
            "a JSON array of at most {} items",
            self.max_items
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            if items.len() == self.max_items {
                return Err(A::Error::custom(format!(
                    "the request holds more than {} items, the most this endpoint accepts",
                    self.max_items
                )));
            }
            items.push(item);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised() {
        for accepted in [
            None,
            Some("application/json"),
            Some("Application/JSON; charset=utf-8"),
        ] {
            assert_eq!(check_json_content_type(accepted), Ok(()), "{accepted:?}");
        }
        for refused in [
            "application/octet-stream",
            "text/plain",
            "application/jsonx",
            "",
        ] {
            assert!(matches!(
                check_json_content_type(Some(refused)),
                Err(ApiError::UnsupportedMediaType(_))
            ));
        }
    }

    #[test]
    fn item_list_is_bounded_and_must_be_a_whole_array() {
        assert_eq!(parse_item_list(b"[1, {\"a\":2}]", 2).unwrap().len(), 2);
        let too_many = parse_item_list(b"[1,2,3]", 2).unwrap_err();
        assert!(
            too_many.to_string().contains("more than 2 items"),
            "{too_many}"
        );
        for bad in [&b"{}"[..], b"[1,2", b"[1] 2", b"not json"] {
            assert!(
                matches!(parse_item_list(bad, 10), Err(ApiError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn body_reading_stops_at_the_limit() {
        let chunks = |sizes: Vec<usize>| {
            futures_util::stream::iter(
                sizes
                    .into_iter()
                    .map(|n| Ok::<_, warp::Error>(bytes::Bytes::from(vec![b'x'; n]))),
            )
        };
        assert_eq!(read_body(chunks(vec![3, 4]), 7).await.unwrap().len(), 7);
        assert_eq!(
            read_body(chunks(vec![3, 5]), 7).await,
            Err(ApiError::BodyTooLarge { limit: 7 })
        );
    }
}
