//! The receiving side of the peer protocol: `POST /dv/v1/partials`, which
//! authenticates the sender against the cluster lock before it parses the
//! body, hands the well-formed partials to a [`PartialSink`] and answers one
//! [`ItemOutcome`] per item, in request order; and `POST /dv/v1/resend`,
//! authenticated the same way, which passes a restarted peer's request for
//! a re-send to the sink; and `POST /dv/v1/consensus`, authenticated the
//! same way, which hands agreement messages to the sink.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Buf;
use futures_util::Stream;
use serde::de::{Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_utils::quoted_u64::require_quotes as quoted_u64;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::peer::{
    AuthError, ConsensusMessages, ItemOutcome, PartialSink, PeerCredentials, RawPartialItem,
    ResendRequest, MAX_BODY_BYTES, MAX_CONSENSUS_MESSAGES, MAX_PARTIALS_PER_MESSAGE,
    OPERATOR_HEADER, SIGNATURE_HEADER,
};
use crate::api::filters::{is_json_content_type, read_body_limited, BodyError};
use crate::api::types::{ErrorMessage, GenericResponse};
use crate::cluster::ClusterLock;
use crate::crypto::batch::decode_signatures;
use crate::crypto::PublicKey;

/// Why a whole peer request is refused; each variant has its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServeError {
    /// 415: the body is not JSON.
    #[error("unsupported content type {0:?}: the peer endpoint accepts application/json only")]
    UnsupportedMediaType(String),
    /// 413: the body is longer than [`MAX_BODY_BYTES`].
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// 400: the body could not be read.
    #[error("cannot read the request body: {0}")]
    BodyRead(String),
    /// 401 or 403: the sender is not an authenticated peer.
    #[error("peer request refused: {0}")]
    Auth(AuthError),
    /// 400: the authenticated body is not a partials message.
    #[error("invalid partials message from operator {operator}: {reason}")]
    Malformed {
        /// The authenticated sender.
        operator: u64,
        /// The parse error.
        reason: String,
    },
    /// 403: the body claims another sender than the signed header.
    #[error("message of operator {operator} claims to be from operator {claimed}")]
    SenderMismatch {
        /// The authenticated sender.
        operator: u64,
        /// `from_operator` of the body.
        claimed: u64,
    },
    /// 500: the sink broke its contract.
    #[error(
        "the partial store answered {answered} outcomes for {sent} partials of operator {operator}"
    )]
    OutcomeCount {
        /// The authenticated sender.
        operator: u64,
        /// Partials handed to the sink.
        sent: usize,
        /// Outcomes it returned.
        answered: usize,
    },
    /// 500: the blocking worker failed.
    #[error("peer request worker failed: {0}")]
    Worker(String),
    /// 503: the node cannot take partials yet.
    #[error("not ready for partials: {0}")]
    NotReady(String),
}

impl ServeError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ServeError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ServeError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ServeError::BodyRead(_) | ServeError::Malformed { .. } => StatusCode::BAD_REQUEST,
            ServeError::Auth(error) if error.is_unauthenticated() => StatusCode::UNAUTHORIZED,
            ServeError::Auth(_) | ServeError::SenderMismatch { .. } => StatusCode::FORBIDDEN,
            ServeError::OutcomeCount { .. } | ServeError::Worker(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ServeError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The operator the request came from or claimed to, when known.
    pub fn operator(&self) -> Option<u64> {
        match self {
            ServeError::Auth(error) => error.operator(),
            ServeError::Malformed { operator, .. }
            | ServeError::SenderMismatch { operator, .. }
            | ServeError::OutcomeCount { operator, .. } => Some(*operator),
            ServeError::UnsupportedMediaType(_)
            | ServeError::BodyTooLarge { .. }
            | ServeError::BodyRead(_)
            | ServeError::Worker(_)
            | ServeError::NotReady(_) => None,
        }
    }

    /// This error as a Beacon API error reply.
    pub fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorMessage {
            code: status.as_u16(),
            message: self.to_string(),
            failures: Vec::new(),
        };
        warp::reply::with_status(warp::reply::json(&body), status).into_response()
    }
}

/// The request headers the endpoint reads.
struct PeerHeaders {
    content_type: Option<String>,
    content_length: Option<u64>,
    operator: Option<String>,
    signature: Option<String>,
}

/// `POST /dv/v1/partials` and `POST /dv/v1/resend` for operator
/// `self_index` of `lock`, delivering authenticated requests to `sink`.
pub fn peer_routes(
    lock: Arc<ClusterLock>,
    self_index: u64,
    sink: Arc<dyn PartialSink>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let headers = warp::header::optional::<String>("content-type")
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::header::optional::<String>(OPERATOR_HEADER))
        .and(warp::header::optional::<String>(SIGNATURE_HEADER))
        .map(
            |content_type, content_length, operator, signature| PeerHeaders {
                content_type,
                content_length,
                operator,
                signature,
            },
        );
    let keys: Arc<LockKeys> = Arc::new(
        lock.validators
            .iter()
            .map(|validator| (validator.pubkey.to_bytes(), validator.pubkey))
            .collect(),
    );
    let partials = warp::path!("dv" / "v1" / "partials").map(|| PeerRequest::Partials);
    let resend = warp::path!("dv" / "v1" / "resend").map(|| PeerRequest::Resend);
    let consensus = warp::path!("dv" / "v1" / "consensus").map(|| PeerRequest::Consensus);
    partials
        .or(resend)
        .unify()
        .or(consensus)
        .unify()
        .and(warp::post())
        .and(headers)
        .and(warp::body::stream())
        .then(move |request: PeerRequest, headers: PeerHeaders, body| {
            let lock = Arc::clone(&lock);
            let sink = Arc::clone(&sink);
            let keys = Arc::clone(&keys);
            async move {
                match receive(lock, keys, self_index, sink, request, headers, body).await {
                    Ok(outcomes) => {
                        warp::reply::json(&GenericResponse { data: outcomes }).into_response()
                    }
                    Err(ServeError::NotReady(reason)) => {
                        // Transient (the node is starting); the sender retries.
                        tracing::debug!(%reason, "asked a peer to retry: not ready yet");
                        ServeError::NotReady(reason).into_response()
                    }
                    Err(error) => {
                        tracing::warn!(operator = ?error.operator(), %error, "refused a peer request");
                        error.into_response()
                    }
                }
            }
        })
}

/// Which peer endpoint a request is for.
#[derive(Debug, Clone, Copy)]
enum PeerRequest {
    Partials,
    Resend,
    Consensus,
}

/// The group keys of the lock's validators, by their compressed bytes.
type LockKeys = HashMap<[u8; 48], PublicKey>;

async fn receive<S, B>(
    lock: Arc<ClusterLock>,
    keys: Arc<LockKeys>,
    self_index: u64,
    sink: Arc<dyn PartialSink>,
    request: PeerRequest,
    headers: PeerHeaders,
    body: S,
) -> Result<Vec<ItemOutcome>, ServeError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    check_content_type(headers.content_type.as_deref())?;
    if headers
        .content_length
        .is_some_and(|length| length > MAX_BODY_BYTES)
    {
        return Err(ServeError::BodyTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let credentials = PeerCredentials::from_headers(
        &lock,
        self_index,
        headers.operator.as_deref(),
        headers.signature.as_deref(),
    )
    .map_err(ServeError::Auth)?;
    sink.ready().map_err(ServeError::NotReady)?;
    let body = read_limited(body, MAX_BODY_BYTES).await?;
    // Signature verification, parsing and the sink are CPU-bound.
    tokio::task::spawn_blocking(move || {
        let operator = credentials
            .verify(self_index, &body)
            .map_err(ServeError::Auth)?;
        match request {
            PeerRequest::Partials => deliver(sink.as_ref(), &keys, operator, &body),
            PeerRequest::Resend => {
                let resend = parse_resend(operator, &body)?;
                sink.resend_requested(operator, resend.min_slot);
                Ok(Vec::new())
            }
            PeerRequest::Consensus => {
                let messages = parse_consensus(operator, &body)?;
                let sent = messages.len();
                let outcomes = sink.consensus(operator, messages);
                if outcomes.len() != sent {
                    return Err(ServeError::OutcomeCount {
                        operator,
                        sent,
                        answered: outcomes.len(),
                    });
                }
                Ok(outcomes)
            }
        }
    })
    .await
    .map_err(|error| ServeError::Worker(error.to_string()))?
}

/// The authenticated body of `operator`'s re-send request.
fn parse_resend(operator: u64, body: &[u8]) -> Result<ResendRequest, ServeError> {
    let resend: ResendRequest =
        serde_json::from_slice(body).map_err(|error| ServeError::Malformed {
            operator,
            reason: error.to_string(),
        })?;
    if resend.from_operator != operator {
        return Err(ServeError::SenderMismatch {
            operator,
            claimed: resend.from_operator,
        });
    }
    Ok(resend)
}

/// The authenticated body of `operator`'s agreement messages.
fn parse_consensus(
    operator: u64,
    body: &[u8],
) -> Result<Vec<Box<serde_json::value::RawValue>>, ServeError> {
    let malformed = |reason: String| ServeError::Malformed { operator, reason };
    let message: ConsensusMessages =
        serde_json::from_slice(body).map_err(|error| malformed(error.to_string()))?;
    if message.from_operator != operator {
        return Err(ServeError::SenderMismatch {
            operator,
            claimed: message.from_operator,
        });
    }
    if message.messages.len() > MAX_CONSENSUS_MESSAGES {
        return Err(malformed(format!(
            "{} agreement messages, at most {MAX_CONSENSUS_MESSAGES} are taken at once",
            message.messages.len()
        )));
    }
    Ok(message.messages)
}

/// Accepts `application/json` (any parameters, any case) or none.
fn check_content_type(content_type: Option<&str>) -> Result<(), ServeError> {
    match content_type {
        Some(text) if !is_json_content_type(text) => Err(ServeError::UnsupportedMediaType(
            text.chars().take(100).collect(),
        )),
        _ => Ok(()),
    }
}

/// Collects a (possibly chunked) body, refusing it once it passes `limit`.
async fn read_limited<S, B>(body: S, limit: u64) -> Result<Vec<u8>, ServeError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    read_body_limited(body, limit)
        .await
        .map_err(|error| match error {
            BodyError::Read(error) => ServeError::BodyRead(error),
            BodyError::TooLarge => ServeError::BodyTooLarge { limit },
        })
}

/// The body of an authenticated request, with each partial left raw so that
/// a bad one is answered on its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceivedMessage<'a> {
    #[serde(with = "quoted_u64")]
    from_operator: u64,
    #[serde(borrow, deserialize_with = "bounded_partials")]
    partials: Vec<&'a RawValue>,
}

fn bounded_partials<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<&'de RawValue>, D::Error> {
    deserializer.deserialize_seq(BoundedPartials)
}

/// A JSON array of at most [`MAX_PARTIALS_PER_MESSAGE`] raw values.
struct BoundedPartials;

impl<'de> Visitor<'de> for BoundedPartials {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            formatter,
            "an array of at most {MAX_PARTIALS_PER_MESSAGE} partials"
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut partials = Vec::new();
        while let Some(partial) = seq.next_element::<&'de RawValue>()? {
            if partials.len() == MAX_PARTIALS_PER_MESSAGE {
                return Err(A::Error::custom(format!(
                    "more than {MAX_PARTIALS_PER_MESSAGE} partials in one message"
                )));
            }
            partials.push(partial);
        }
        Ok(partials)
    }
}

/// Parses the body of `operator`'s authenticated request, gives the
/// well-formed partials of the lock's validators to the sink and merges its
/// outcomes with the rejections of the others, in request order. Keys are
/// looked up among the lock's validators rather than decompressed, and the
/// signatures are decoded on all cores.
fn deliver(
    sink: &dyn PartialSink,
    keys: &LockKeys,
    operator: u64,
    body: &[u8],
) -> Result<Vec<ItemOutcome>, ServeError> {
    let message: ReceivedMessage =
        serde_json::from_slice(body).map_err(|error| ServeError::Malformed {
            operator,
            reason: error.to_string(),
        })?;
    if message.from_operator != operator {
        return Err(ServeError::SenderMismatch {
            operator,
            claimed: message.from_operator,
        });
    }
    // `Err` marks a partial refused here; `Ok` one with its group key.
    let mut parsed: Vec<Result<(RawPartialItem, PublicKey), String>> =
        Vec::with_capacity(message.partials.len());
    for (index, raw) in message.partials.iter().enumerate() {
        let item = serde_json::from_str::<RawPartialItem>(raw.get())
            .map_err(|error| format!("malformed partial: {error}"))
            .and_then(|item| match keys.get(&item.validator_pubkey.0) {
                Some(key) => Ok((item, *key)),
                None => Err(format!(
                    "validator {:?} is not in the cluster lock",
                    item.validator_pubkey
                )),
            });
        if let Err(reason) = &item {
            tracing::warn!(
                operator,
                index,
                reason = reason.as_str(),
                "refused a partial from a peer"
            );
        }
        parsed.push(item);
    }
    let encoded: Vec<[u8; 96]> = parsed
        .iter()
        .filter_map(|item| item.as_ref().ok().map(|(raw, _)| raw.signature.0))
        .collect();
    let mut decoded = decode_signatures(&encoded).into_iter();
    let mut valid = Vec::with_capacity(encoded.len());
    let mut refused: Vec<Option<String>> = Vec::with_capacity(parsed.len());
    for item in parsed {
        let checked = item.and_then(|(raw, key)| match decoded.next() {
            Some(Ok(signature)) => Ok(raw.decoded(key, signature)),
            Some(Err(error)) => Err(format!(
                "malformed partial: signature does not decode: {error}"
            )),
            None => Err("malformed partial: no signature".to_string()),
        });
        match checked {
            Ok(item) => {
                valid.push(item);
                refused.push(None);
            }
            Err(reason) => refused.push(Some(reason)),
        }
    }
    let sent = valid.len();
    let refused_count = refused.iter().filter(|reason| reason.is_some()).count();
    if refused_count > 0 {
        sink.refused(operator, refused_count);
    }
    let answers = sink.accept(operator, valid);
    let answered = answers.len();
    let count_error = ServeError::OutcomeCount {
        operator,
        sent,
        answered,
    };
    if answered != sent {
        return Err(count_error);
    }
    let mut answers = answers.into_iter();
    let outcomes: Option<Vec<ItemOutcome>> = refused
        .into_iter()
        .map(|reason| match reason {
            None => answers.next(),
            Some(message) => Some(ItemOutcome::Rejected { message }),
        })
        .collect();
    outcomes.ok_or(count_error)
}
