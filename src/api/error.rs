//! Errors of the served endpoints and their Beacon API error bodies: why a
//! whole request fails (`ApiError`, with its HTTP status) and why one item of
//! a list request fails (`ItemError`, reported by request index).

use warp::http::StatusCode;

use super::types::{ErrorMessage, IndexedFailure};
use crate::spec::{CommitteeIndex, Slot, ValidatorIndex};

/// Why one item of a list request (`is_aggregator`, the selections) is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// The item is not a well-formed `IsAggregatorRequestItem`.
    #[error("invalid item: {0}")]
    Malformed(String),
    /// The slot's committees are not known to the node.
    #[error("{0}")]
    SlotOutOfRange(String),
    /// `committees_at_slot` disagrees with the state.
    #[error("committees_at_slot {given} does not match the state, which has {expected} committees at slot {slot}")]
    WrongCommitteesAtSlot {
        /// The slot of the item.
        slot: Slot,
        /// What the item says.
        given: u64,
        /// What the state says.
        expected: u64,
    },
    /// `committee_index` is not below the slot's committee count.
    #[error("committee_index {committee_index} is out of range: slot {slot} has {committees_per_slot} committees")]
    CommitteeIndexOutOfRange {
        /// The slot of the item.
        slot: Slot,
        /// What the item says.
        committee_index: CommitteeIndex,
        /// What the state says.
        committees_per_slot: u64,
    },
    /// The registry has no validator with this index.
    #[error("unknown validator index {0}")]
    UnknownValidator(ValidatorIndex),
    /// The validator is not a member of the named committee.
    #[error("validator {validator_index} is not in committee {committee_index} at slot {slot}")]
    NotInCommittee {
        /// The validator of the item.
        validator_index: ValidatorIndex,
        /// The slot of the item.
        slot: Slot,
        /// The committee of the item.
        committee_index: CommitteeIndex,
    },
    /// `slot_signature` is not a valid G2 point.
    #[error("slot_signature does not decode: {0}")]
    BadSignatureEncoding(String),
    /// A distributed-validator middleware refused the item, for the reason given.
    #[error("{0}")]
    Refused(String),
    /// `slot_signature` is a valid point but does not verify.
    #[error("slot_signature is not a valid selection proof of validator {validator_index} for slot {slot}")]
    InvalidSignature {
        /// The validator of the item.
        validator_index: ValidatorIndex,
        /// The slot of the item.
        slot: Slot,
    },
}

/// Why a whole request fails; each variant has its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 415: the body is not JSON.
    #[error("unsupported content type {0:?}: this endpoint accepts application/json only")]
    UnsupportedMediaType(String),
    /// 415: the body is neither JSON nor SSZ, on an endpoint that takes both.
    #[error("unsupported content type {0:?}: this endpoint accepts application/json or application/octet-stream (SSZ)")]
    UnsupportedEncoding(String),
    /// 406: the client accepts none of the encodings the endpoint answers in.
    #[error("{0}")]
    NotAcceptable(String),
    /// 413: the body is longer than the endpoint accepts.
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// 400: the body is not a JSON array of at most the allowed length.
    #[error("invalid request body: {0}")]
    BadRequest(String),
    /// 400: some items are invalid; each is named by its request index.
    #[error("{} of {total} items are invalid", failures.len())]
    InvalidItems {
        /// Number of items in the request.
        total: usize,
        /// Every invalid item, in request order.
        failures: Vec<(usize, ItemError)>,
    },
    /// 503: some items cannot be answered yet (a distributed-validator
    /// middleware has not combined their partials); each is named by its
    /// request index, and asking again later answers them.
    #[error("{} of {total} items cannot be answered yet; ask again", failures.len())]
    ItemsNotReady {
        /// Number of items in the request.
        total: usize,
        /// Every item not answerable yet, in request order.
        failures: Vec<(usize, ItemError)>,
    },
    /// 501: this node does not serve the endpoint.
    #[error("{0}")]
    NotImplemented(String),
    /// 404: what the request names does not exist here.
    #[error("{0}")]
    NotFound(String),
    /// 503: the node cannot answer yet.
    #[error("{0}")]
    NotReady(String),
    /// 500: anything else.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::UnsupportedMediaType(_) | ApiError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadRequest(_) | ApiError::InvalidItems { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::NotReady(_) | ApiError::ItemsNotReady { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The Beacon API error body of this error.
    pub fn to_message(&self) -> ErrorMessage {
        let failures = match self {
            ApiError::InvalidItems { failures, .. } | ApiError::ItemsNotReady { failures, .. } => {
                failures
                    .iter()
                    .map(|(index, error)| IndexedFailure {
                        index: *index,
                        message: error.to_string(),
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        ErrorMessage {
            code: self.status().as_u16(),
            message: self.to_string(),
            failures,
        }
    }

    /// This error as an HTTP reply with its status and JSON body.
    pub fn into_response(self) -> warp::reply::Response {
        error_response(self.status(), &self.to_message())
    }
}

impl warp::reject::Reject for ApiError {}

/// A Beacon API error reply `{"code": status, "message": message}`, for
/// routes whose errors carry no per-item failures.
pub fn error_reply(status: StatusCode, message: String) -> warp::reply::Response {
    let body = ErrorMessage {
        code: status.as_u16(),
        message,
        failures: Vec::new(),
    };
    error_response(status, &body)
}

/// A JSON error reply with `body` (plain or with indexed `failures`).
pub fn error_response(status: StatusCode, body: &ErrorMessage) -> warp::reply::Response {
    use warp::Reply;
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}
