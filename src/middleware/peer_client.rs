//! The sending side of the peer protocol: [`PeerClient`] posts partials to
//! the other operators of the lock, signed with this operator's node key,
//! retrying with exponential backoff within a bounded number of attempts and
//! a bounded total time. A broadcast talks to every peer concurrently, so a
//! peer that is down never delays the answers of the others.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, Stream, StreamExt};
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use tokio::time::Instant;

use super::peer::{
    peer_signing_message, ConsensusMessages, ItemOutcome, PartialItem, PartialsMessage,
    ResendRequest, CONSENSUS_PATH, MAX_BODY_BYTES, MAX_CONSENSUS_MESSAGES, OPERATOR_HEADER,
    PARTIALS_PATH, RESEND_PATH, SIGNATURE_HEADER,
};
use crate::api::client::{read_body_within, BodyReadError};
use crate::api::types::{ErrorMessage, GenericResponse};
use crate::cluster::{ClusterLock, NodeIdentity};
use crate::crypto::SecretKey;
use crate::spec::Slot;

/// Most partials in one request: at most about 512 bytes of JSON each, so
/// 4 MiB a request, well under [`MAX_BODY_BYTES`] and
/// [`super::peer::MAX_PARTIALS_PER_MESSAGE`], and a batch the peer checks in a fraction
/// of a second.
pub const PARTIALS_PER_REQUEST: usize = 8_192;
/// Longest error reply of a peer that is read, for its message.
const MAX_ERROR_REPLY_BYTES: u64 = 64 * 1024;
/// Upper bound of the JSON of one [`ItemOutcome`] a well-behaved peer sends
/// (a rejection message included), to bound the reply read.
const MAX_OUTCOME_REPLY_BYTES: u64 = 4 * 1024;

/// How hard a send tries: attempts are spaced by a backoff that doubles
/// from `initial_backoff` up to `max_backoff`, and the whole send, retries
/// included, ends after `total_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts per send (at least 1).
    pub max_attempts: u32,
    /// Wait before the first retry.
    pub initial_backoff: Duration,
    /// Longest wait between attempts (every duration at most an hour).
    pub max_backoff: Duration,
    /// Time limit of one attempt (connect, send, reply).
    pub request_timeout: Duration,
    /// Time limit of the whole send, retries included.
    pub total_timeout: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts within 4 s, a third of a mainnet slot, so a partial
    /// still arrives well before the aggregation deadline of its slot.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(4),
        }
    }
}

impl RetryPolicy {
    /// Longest duration a policy may set: a send is about one slot, and
    /// clock arithmetic stays far from overflow.
    const MAX_DURATION: Duration = Duration::from_secs(3600);

    /// Checks that the policy makes at least one attempt and that every
    /// duration is at most an hour.
    fn check(&self) -> Result<(), PeerError> {
        if self.max_attempts == 0 {
            return Err(PeerError::RetryPolicy("max_attempts is 0".into()));
        }
        let durations = [
            ("initial_backoff", self.initial_backoff),
            ("max_backoff", self.max_backoff),
            ("request_timeout", self.request_timeout),
            ("total_timeout", self.total_timeout),
        ];
        match durations.iter().find(|(_, d)| *d > Self::MAX_DURATION) {
            Some((name, duration)) => Err(PeerError::RetryPolicy(format!(
                "{name} of {duration:?} exceeds {:?}",
                Self::MAX_DURATION
            ))),
            None => Ok(()),
        }
    }

    /// The wait after failed attempt number `attempt` (1-based).
    fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

/// Why a send to a peer failed; every variant names the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The client's own operator is not in the lock.
    #[error("operator {operator} is not in the cluster lock")]
    SelfNotInLock {
        /// This operator's index.
        operator: u64,
    },
    /// The lock does not identify this operator by a BLS node key.
    #[error(
        "operator {operator} has no BLS node key in the lock, so it cannot sign peer requests"
    )]
    SelfNotBls {
        /// This operator's index.
        operator: u64,
    },
    /// The node key given is not the one the lock lists for this operator.
    #[error("the node key does not match the lock's node key of operator {operator}")]
    NodeKeyMismatch {
        /// This operator's index.
        operator: u64,
    },
    /// The retry policy is out of range.
    #[error("invalid retry policy: {0}")]
    RetryPolicy(String),
    /// The HTTP client could not be built.
    #[error("cannot build the peer HTTP client: {0}")]
    Client(String),
    /// The recipient is not another operator of the lock.
    #[error("operator {operator} is not a peer of operator {self_index} in the cluster lock")]
    UnknownPeer {
        /// The recipient.
        operator: u64,
        /// This operator's index.
        self_index: u64,
    },
    /// The lock has no usable peer address for the recipient.
    #[error("peer {operator} has no usable peer address in the lock ({reason})")]
    NoAddress {
        /// The recipient.
        operator: u64,
        /// Missing, or why it does not parse.
        reason: String,
    },
    /// The message exceeds what a peer accepts.
    #[error("a request of {items} partials encodes to {bytes} bytes, over the limit of {MAX_BODY_BYTES} bytes")]
    TooLarge {
        /// Partials in the message.
        items: usize,
        /// Encoded body length.
        bytes: usize,
    },
    /// The message could not be encoded.
    #[error("cannot encode the partials: {0}")]
    Encode(String),
    /// The peer refused the request with a status retrying cannot change.
    #[error("peer {operator} ({address}) answered HTTP {status}: {message}")]
    Refused {
        /// The recipient.
        operator: u64,
        /// Its address.
        address: String,
        /// The HTTP status.
        status: u16,
        /// The message of its error body.
        message: String,
    },
    /// The peer answered 2xx with a body that is not the outcomes of the
    /// partials sent.
    #[error("peer {operator} ({address}) sent an invalid reply: {reason}")]
    BadReply {
        /// The recipient.
        operator: u64,
        /// Its address.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Every attempt failed, or the time ran out, on errors that retrying
    /// might have fixed.
    #[error(
        "peer {operator} ({address}) unreachable after {attempts} attempts in {elapsed:?}: {last}"
    )]
    Unreachable {
        /// The recipient.
        operator: u64,
        /// Its address.
        address: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last failure.
        last: String,
    },
}

/// One peer's answer to a broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerReply {
    /// The peer's operator index.
    pub operator: u64,
    /// Its per-item outcomes, or why there are none.
    pub result: Result<Vec<ItemOutcome>, PeerError>,
}

/// A peer as the client reaches it.
#[derive(Debug, Clone)]
struct Peer {
    index: u64,
    address: String,
    url: Result<reqwest::Url, String>,
}

/// Sends partials to the other operators of a cluster lock.
#[derive(Debug, Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    self_index: u64,
    node_key: SecretKey,
    peers: BTreeMap<u64, Peer>,
    policy: RetryPolicy,
}

/// How one attempt failed.
enum AttemptError {
    /// Worth another attempt: the reason.
    Transient(String),
    /// Final.
    Permanent(PeerError),
}

impl PeerClient {
    /// A client for operator `self_index` of `lock`, signing with
    /// `node_key`, which must be the BLS node key the lock lists for it.
    pub fn new(
        lock: &ClusterLock,
        self_index: u64,
        node_key: SecretKey,
        policy: RetryPolicy,
    ) -> Result<PeerClient, PeerError> {
        policy.check()?;
        let own = lock.operator(self_index).ok_or(PeerError::SelfNotInLock {
            operator: self_index,
        })?;
        match &own.identity {
            NodeIdentity::Bls(key) if *key == node_key.public_key() => {}
            NodeIdentity::Bls(_) => {
                return Err(PeerError::NodeKeyMismatch {
                    operator: self_index,
                })
            }
            NodeIdentity::Enr(_) => {
                return Err(PeerError::SelfNotBls {
                    operator: self_index,
                })
            }
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(policy.request_timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|error| PeerError::Client(error.to_string()))?;
        let peers = lock
            .operators
            .iter()
            .filter(|operator| operator.index != self_index)
            .map(|operator| {
                let address = operator.peer_address.clone().unwrap_or_default();
                let url = peer_url(operator.peer_address.as_deref());
                (
                    operator.index,
                    Peer {
                        index: operator.index,
                        address,
                        url,
                    },
                )
            })
            .collect();
        Ok(PeerClient {
            http,
            self_index,
            node_key,
            peers,
            policy,
        })
    }

    /// The operator indices of every peer, ascending.
    pub fn peer_indices(&self) -> impl Iterator<Item = u64> + '_ {
        self.peers.keys().copied()
    }

    /// Sends `items` to peer `to_operator`, retrying per the policy; the
    /// outcomes are in the order of `items`. More than
    /// [`PARTIALS_PER_REQUEST`] items go in several requests, one after the
    /// other, each with the policy's retries and time limit.
    pub async fn send(
        &self,
        to_operator: u64,
        items: &[PartialItem],
    ) -> Result<Vec<ItemOutcome>, PeerError> {
        let requests = encode_requests(self.self_index, items, PARTIALS_PER_REQUEST)?;
        self.send_requests(to_operator, &requests).await
    }

    /// Asks peer `to_operator` to send again every partial it holds for
    /// duties at or after `min_slot` (this node restarted), retrying per the
    /// policy. The peer answers at once and sends the partials afterwards,
    /// through its own client.
    pub async fn request_resend(&self, to_operator: u64, min_slot: Slot) -> Result<(), PeerError> {
        let (peer, partials_url) = self.reachable_peer(to_operator)?;
        let mut url = partials_url.clone();
        url.set_path(RESEND_PATH);
        let request = ResendRequest {
            from_operator: self.self_index,
            min_slot,
        };
        let body = serde_json::to_vec(&request).map_err(|e| PeerError::Encode(e.to_string()))?;
        let request = EncodedRequest {
            body: Bytes::from(body),
            items: 0,
        };
        self.send_body(peer, &url, &request).await.map(|_| ())
    }

    /// Sends agreement messages to peer `to_operator` (at most
    /// [`MAX_CONSENSUS_MESSAGES`]), retrying per the policy; one outcome per
    /// message.
    pub async fn send_consensus(
        &self,
        to_operator: u64,
        messages: &[Box<serde_json::value::RawValue>],
    ) -> Result<Vec<ItemOutcome>, PeerError> {
        let (peer, partials_url) = self.reachable_peer(to_operator)?;
        let mut url = partials_url.clone();
        url.set_path(CONSENSUS_PATH);
        let request = ConsensusMessages {
            from_operator: self.self_index,
            messages: messages
                .iter()
                .take(MAX_CONSENSUS_MESSAGES)
                .cloned()
                .collect(),
        };
        let body = serde_json::to_vec(&request).map_err(|e| PeerError::Encode(e.to_string()))?;
        if body.len() as u64 > MAX_BODY_BYTES {
            return Err(PeerError::TooLarge {
                items: request.messages.len(),
                bytes: body.len(),
            });
        }
        let request = EncodedRequest {
            body: Bytes::from(body),
            items: request.messages.len(),
        };
        self.send_body(peer, &url, &request).await
    }

    /// Sends `items` to every peer at once and yields each peer's reply as
    /// soon as it has one, so a slow or down peer holds back no other.
    pub fn broadcast_each<'a>(
        &'a self,
        items: &'a [PartialItem],
    ) -> impl Stream<Item = PeerReply> + 'a {
        let requests = encode_requests(self.self_index, items, PARTIALS_PER_REQUEST);
        self.peers
            .keys()
            .map(move |&operator| {
                let requests = requests.clone();
                async move {
                    let result = match requests {
                        Ok(requests) => self.send_requests(operator, &requests).await,
                        Err(error) => Err(error),
                    };
                    PeerReply { operator, result }
                }
            })
            .collect::<FuturesUnordered<_>>()
    }

    /// Sends `items` to every peer at once; one reply per peer, by operator
    /// index, when the last peer has answered or run out of retries (for a
    /// single request, at most the policy's `total_timeout` after the call).
    pub async fn broadcast(&self, items: &[PartialItem]) -> Vec<PeerReply> {
        let mut replies: Vec<PeerReply> = self.broadcast_each(items).collect().await;
        replies.sort_by_key(|reply| reply.operator);
        replies
    }

    async fn send_requests(
        &self,
        to_operator: u64,
        requests: &[EncodedRequest],
    ) -> Result<Vec<ItemOutcome>, PeerError> {
        let (peer, url) = self.reachable_peer(to_operator)?;
        let mut outcomes = Vec::new();
        for request in requests {
            outcomes.extend(self.send_body(peer, url, request).await?);
        }
        Ok(outcomes)
    }

    /// Peer `to_operator` and its endpoint.
    fn reachable_peer(&self, to_operator: u64) -> Result<(&Peer, &reqwest::Url), PeerError> {
        let peer = self.peers.get(&to_operator).ok_or(PeerError::UnknownPeer {
            operator: to_operator,
            self_index: self.self_index,
        })?;
        let url = peer.url.as_ref().map_err(|reason| PeerError::NoAddress {
            operator: to_operator,
            reason: reason.clone(),
        })?;
        Ok((peer, url))
    }

    /// One request, retried per the policy.
    async fn send_body(
        &self,
        peer: &Peer,
        url: &reqwest::Url,
        request: &EncodedRequest,
    ) -> Result<Vec<ItemOutcome>, PeerError> {
        let signature = self
            .node_key
            .sign(&peer_signing_message(peer.index, &request.body))
            .to_string();
        let started = Instant::now();
        let deadline = started + self.policy.total_timeout;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let attempt = self.post(peer, url, request, &signature);
            let last = match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(outcomes)) => return Ok(outcomes),
                Ok(Err(AttemptError::Permanent(error))) => return Err(error),
                Ok(Err(AttemptError::Transient(reason))) => reason,
                Err(_) => "the time for this send ran out during a request".to_string(),
            };
            let retry_at = Instant::now() + self.policy.backoff(attempts);
            if attempts >= self.policy.max_attempts || retry_at >= deadline {
                let error = PeerError::Unreachable {
                    operator: peer.index,
                    address: peer.address.clone(),
                    attempts,
                    elapsed: started.elapsed(),
                    last,
                };
                tracing::warn!(%error, "giving up on a peer");
                return Err(error);
            }
            tracing::debug!(peer = peer.index, attempts, %last, "retrying a peer");
            tokio::time::sleep_until(retry_at).await;
        }
    }

    /// One POST of a signed body.
    async fn post(
        &self,
        peer: &Peer,
        url: &reqwest::Url,
        request: &EncodedRequest,
        signature: &str,
    ) -> Result<Vec<ItemOutcome>, AttemptError> {
        let items = request.items;
        let mut response = self
            .http
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(OPERATOR_HEADER, self.self_index)
            .header(SIGNATURE_HEADER, signature)
            .timeout(self.policy.request_timeout)
            .body(request.body.clone())
            .send()
            .await
            .map_err(|error| AttemptError::Transient(error_chain(&error)))?;
        let status = response.status();
        let limit = if status.is_success() {
            (items as u64)
                .saturating_add(1)
                .saturating_mul(MAX_OUTCOME_REPLY_BYTES)
        } else {
            MAX_ERROR_REPLY_BYTES
        };
        let reply = read_reply(&mut response, limit)
            .await
            .map_err(AttemptError::Transient)?;
        if status.is_success() {
            return decode_outcomes(&reply, items)
                .map_err(|reason| AttemptError::Permanent(peer.bad_reply(reason)));
        }
        let message = serde_json::from_slice::<ErrorMessage>(&reply)
            .map(|body| body.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&reply).chars().take(200).collect());
        if is_transient(status) {
            Err(AttemptError::Transient(format!("HTTP {status}: {message}")))
        } else {
            Err(AttemptError::Permanent(PeerError::Refused {
                operator: peer.index,
                address: peer.address.clone(),
                status: status.as_u16(),
                message,
            }))
        }
    }
}

impl Peer {
    fn bad_reply(&self, reason: String) -> PeerError {
        PeerError::BadReply {
            operator: self.index,
            address: self.address.clone(),
            reason,
        }
    }
}

/// One request body and the number of partials it holds.
#[derive(Debug, Clone)]
struct EncodedRequest {
    body: Bytes,
    items: usize,
}

/// The bodies that carry `items` from `from_operator`, at most
/// `per_request` partials each.
fn encode_requests(
    from_operator: u64,
    items: &[PartialItem],
    per_request: usize,
) -> Result<Vec<EncodedRequest>, PeerError> {
    items
        .chunks(per_request.max(1))
        .map(|partials| {
            let message = PartialsMessage {
                from_operator,
                partials,
            };
            let body =
                serde_json::to_vec(&message).map_err(|e| PeerError::Encode(e.to_string()))?;
            if body.len() as u64 > MAX_BODY_BYTES {
                return Err(PeerError::TooLarge {
                    items: partials.len(),
                    bytes: body.len(),
                });
            }
            Ok(EncodedRequest {
                body: Bytes::from(body),
                items: partials.len(),
            })
        })
        .collect()
}

/// `http://host:port/dv/v1/partials` of a lock's `host:port`.
fn peer_url(address: Option<&str>) -> Result<reqwest::Url, String> {
    let address = address.ok_or_else(|| "missing".to_string())?;
    let url = reqwest::Url::parse(&format!("http://{address}{PARTIALS_PATH}"))
        .map_err(|error| format!("{address:?}: {error}"))?;
    // A host:port with a path, query or credentials would parse into another
    // URL than the one meant.
    if url.path() != PARTIALS_PATH || url.query().is_some() || !url.username().is_empty() {
        return Err(format!("{address:?} is not host:port"));
    }
    Ok(url)
}

/// Statuses after which the same request may succeed.
fn is_transient(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// Reads a reply body of at most `limit` bytes.
async fn read_reply(response: &mut reqwest::Response, limit: u64) -> Result<Vec<u8>, String> {
    read_body_within(response, limit)
        .await
        .map_err(|error| match error {
            BodyReadError::TooLarge { .. } => format!("the reply exceeds {limit} bytes"),
            BodyReadError::Read(error) => {
                format!("cannot read the reply: {}", error_chain(&error))
            }
        })
}

/// The outcomes of a 2xx reply, one per partial sent.
fn decode_outcomes(reply: &[u8], sent: usize) -> Result<Vec<ItemOutcome>, String> {
    let outcomes = serde_json::from_slice::<GenericResponse<Vec<ItemOutcome>>>(reply)
        .map_err(|error| error.to_string())?
        .data;
    if outcomes.len() == sent {
        Ok(outcomes)
    } else {
        Err(format!("{} outcomes for {sent} partials", outcomes.len()))
    }
}

/// An error with its causes ("error sending request: connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(700),
            ..RetryPolicy::default()
        };
        let waits: Vec<u128> = (1..=5).map(|a| policy.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 700, 700]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_millis(700));
        assert_eq!(policy.check(), Ok(()));
        let endless = RetryPolicy {
            total_timeout: Duration::MAX,
            ..policy
        };
        assert!(
            matches!(endless.check(), Err(PeerError::RetryPolicy(m)) if m.contains("total_timeout"))
        );
        let none = RetryPolicy {
            max_attempts: 0,
            ..policy
        };
        assert!(none.check().is_err());
    }

    #[test]
    fn peer_addresses_must_be_host_and_port() {
        assert_eq!(
            peer_url(Some("127.0.0.1:3610")).unwrap().as_str(),
            "http://127.0.0.1:3610/dv/v1/partials"
        );
        assert!(peer_url(Some("node-2.example:9000")).is_ok());
        for bad in ["127.0.0.1:3610/x", "user@host:1", "host:1?q", "host:99999"] {
            assert!(peer_url(Some(bad)).is_err(), "{bad}");
        }
        assert!(peer_url(None).is_err());
    }

    #[test]
    fn large_batches_are_split_into_requests_in_order() {
        let signer = SecretKey::random();
        let items: Vec<PartialItem> = (0..5u64)
            .map(|slot| PartialItem {
                duty: super::super::duty::DutyKind::AttestationSelection,
                slot,
                validator_pubkey: signer.public_key(),
                share_index: 2,
                signing_root: crate::spec::Root::repeat_byte(7),
                signature: signer.sign(b"partial"),
            })
            .collect();
        let requests = encode_requests(2, &items, 2).unwrap();
        assert_eq!(
            requests.iter().map(|r| r.items).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        let slots: Vec<String> = requests
            .iter()
            .flat_map(|request| {
                let message: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
                assert_eq!(message["from_operator"], "2");
                let partials = message["partials"].as_array().unwrap().clone();
                partials
                    .into_iter()
                    .map(|p| p["slot"].as_str().unwrap().to_owned())
            })
            .collect();
        assert_eq!(slots, ["0", "1", "2", "3", "4"]);
        assert!(encode_requests(2, &[], 2).unwrap().is_empty());
    }
}
