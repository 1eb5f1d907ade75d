//! The public-key mapping between an operator's validator client and its
//! beacon node.
//!
//! A DV operator's validator client (VC) holds a key *share*: the public key
//! it knows is the operator's public share, while the beacon chain knows the
//! validator by its group public key. [`pubkey_mapping_routes`] forwards the
//! few Beacon API calls in which a VC sends or reads validator public keys and
//! rewrites them on the way: public share -> group key in requests, group key
//! -> this operator's public share in responses, so the VC finds its
//! validators and their duties. [`PubkeyMap`] holds the two directions for one
//! operator of a cluster lock.
//!
//! Mapped endpoints (shapes as in ethereum/beacon-APIs; SSZ as Lodestar
//! serves it, see [`ssz_keys`]):
//!
//! | endpoint | request ids | response keys (JSON) | SSZ answer |
//! |---|---|---|---|
//! | `GET .../states/{state_id}/validators` | query `id` | `data[].validator.pubkey` | none defined |
//! | `POST .../states/{state_id}/validators` | body `ids` | `data[].validator.pubkey` | none defined |
//! | `GET .../states/{state_id}/validators/{validator_id}` | path | `data.validator.pubkey` | none defined |
//! | `POST .../states/{state_id}/validator_identities` | body array | `data[].pubkey` | mapped |
//! | `GET .../states/{state_id}/validator_balances` | query `id` | none | passes |
//! | `POST .../states/{state_id}/validator_balances` | body array | none | passes |
//! | `POST /eth/v1/beacon/rewards/attestations/{epoch}` | body array | none | passes |
//! | `POST /eth/v1/beacon/rewards/sync_committee/{block_id}` | body array | none | passes |
//! | `POST /eth/v1/validator/duties/attester/{epoch}` | none | `data[].pubkey` | mapped |
//! | `POST /eth/v1/validator/duties/sync/{epoch}` | none | `data[].pubkey` | mapped |
//! | `GET /eth/v1/validator/duties/proposer/{epoch}` | none | `data[].pubkey` | mapped |
//! | `GET /eth/v2/validator/duties/proposer/{epoch}` | none | `data[].pubkey` | none known |
//! | `POST /eth/v1/validator/duties/ptc/{epoch}` | none | `data[].pubkey` | none known |
//! | `POST /eth/v1/validator/register_validator` | refused if it names a share | none | |
//!
//! Every other request is rejected as not found, for the reverse proxy
//! mounted behind (`beacon::proxy::proxy_filter`) to forward unchanged.
//!
//! No unmapped group key reaches the VC. A route with keys in its answer
//! forwards the VC's `Accept` where its SSZ answer is mapped too; where it is
//! not (no SSZ encoding is defined or known), it asks the beacon node for
//! JSON, and answers 406 to a VC that does not accept JSON. A success answer
//! in JSON has its key tokens replaced; one in SSZ is decoded, mapped and
//! encoded again ([`ssz_keys`]); any other success answer, or one whose key
//! fields are not keys, is 502 naming why (and logged), never passed on.
//! Error answers carry no validator record and pass unchanged and streamed.
//!
//! A JSON rewrite replaces only the string tokens of the key fields above:
//! the bodies are not re-serialized, so every other byte (field order,
//! envelope, whitespace) reaches the other side as sent. A mapped key is
//! written as lower-case `0x` hex; keys not in the lock, request ids that are
//! not keys and request bodies of another shape pass unchanged (the upstream
//! judges them).
//!
//! A validator registration signed by a key share cannot be turned into one
//! of the group key without the cluster combining it, which this middleware
//! does not do; passed on, the beacon node would drop it as naming no
//! validator. So a `register_validator` body (JSON or SSZ) naming one of this
//! operator's public shares is refused whole with 400 naming each such item.
//!
//! Forwarding is `beacon::proxy`'s: the same headers (hop-by-hop and `Host`
//! dropped), the same failure replies (503 upstream unreachable, 504 no
//! response head in time, 502 other failures, Beacon API error bodies).
//! Unlike the proxy, a mapped request's body is read whole (at most
//! [`MappingConfig::max_request_body`], [`MappingConfig::max_registrations_body`]
//! for registrations, else 413) and sent with its new `Content-Length`, and
//! a response to rewrite is read whole too (at most
//! [`MappingConfig::max_response_body`] within [`MappingConfig::timeout`],
//! else 502 or 504); its `Accept-Encoding` is dropped so that the upstream
//! answers with a body that can be read.

mod ssz_keys;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures_util::Stream;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, ACCEPT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::value::RawValue;
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::api::client::{read_body_within, BodyReadError};
use crate::api::error::{ApiError, ItemError};
use crate::api::filters::{read_body_limited, BodyError};
use crate::api::types::PublicKeyBytes;
use crate::api::wire::{Accept, MediaType};
use crate::beacon::proxy::{
    content_length, end_to_end, has_body, raw_query, streamed_response, Proxy, ProxyConfig,
    ProxyError, Target, DEFAULT_TIMEOUT,
};
use crate::cluster::ClusterLock;
use ssz_keys::{map_ssz_keys, registration_keys, SszKeys};

/// Default bound on a mapped request body: 1 MiB, room for the 65,536 ids
/// a beacon node accepts in one request.
pub const DEFAULT_MAX_REQUEST_BODY: u64 = 1024 * 1024;

/// Default bound on a `register_validator` body: the reverse proxy's bound
/// on any request body (32 MiB, some 75,000 JSON registrations).
pub const DEFAULT_MAX_REGISTRATIONS_BODY: u64 = crate::beacon::proxy::DEFAULT_MAX_REQUEST_BODY;

/// Default bound on a response body to rewrite: 256 MiB, about 570,000
/// validator records of 471 bytes (measured on this project's node). A VC
/// asks for its own validators by id; the whole mainnet registry (about 2
/// million records) would not fit and is not something it fetches.
pub const DEFAULT_MAX_RESPONSE_BODY: u64 = 256 * 1024 * 1024;

/// Bounds and deadline of [`pubkey_mapping_routes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappingConfig {
    /// Time allowed for the upstream's response head, and again for the
    /// body of a response that is rewritten.
    pub timeout: Duration,
    /// Largest request body forwarded, in bytes; larger ones get 413.
    pub max_request_body: u64,
    /// Largest `register_validator` body checked and forwarded, in bytes;
    /// larger ones get 413. A VC registers all its validators at once (about
    /// 430 JSON bytes each), so this is the proxy's own bound.
    pub max_registrations_body: u64,
    /// Largest response body rewritten, in bytes; larger ones get 502.
    pub max_response_body: u64,
}

impl Default for MappingConfig {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            max_registrations_body: DEFAULT_MAX_REGISTRATIONS_BODY,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
        }
    }
}

/// Why the mapping cannot be built, or why a mapped request fails.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// The operator index names no operator of the lock.
    #[error("operator {operator_index} is not an operator of cluster {cluster:?}, whose operators are 1..={operators}")]
    UnknownOperator {
        /// The index asked for.
        operator_index: u64,
        /// The lock's cluster name.
        cluster: String,
        /// How many operators the lock has.
        operators: usize,
    },
    /// A validator of the lock has no share of this operator.
    #[error("validator {validator}: the cluster lock has no public share {share_index}")]
    MissingShare {
        /// The group key (0x-hex).
        validator: String,
        /// The operator's share index.
        share_index: u64,
    },
    /// Two validators give this operator one public share, so a request
    /// naming it could not say which validator it means.
    #[error("public share {share} of operator {operator_index} belongs to both validators {first} and {second}")]
    DuplicateShare {
        /// The share (0x-hex).
        share: String,
        /// The operator.
        operator_index: u64,
        /// One group key (0x-hex).
        first: String,
        /// The other group key (0x-hex).
        second: String,
    },
    /// The request body could not be read from the client.
    #[error("cannot read the request body: {0}")]
    RequestBody(String),
    /// Forwarding failed (see [`ProxyError`] for the statuses).
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// The request is refused before it is forwarded (406 for an `Accept`
    /// the mapping cannot answer, 400 for registrations of public shares).
    #[error(transparent)]
    Refused(ApiError),
}

impl MappingError {
    /// The HTTP status this error answers a request with.
    pub fn status(&self) -> reqwest::StatusCode {
        match self {
            Self::RequestBody(_) => reqwest::StatusCode::BAD_REQUEST,
            Self::Proxy(error) => error.status(),
            Self::Refused(error) => error.status(),
            Self::UnknownOperator { .. }
            | Self::MissingShare { .. }
            | Self::DuplicateShare { .. } => reqwest::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn into_response(self) -> Response {
        match self {
            Self::Refused(error) => error.into_response(),
            other => crate::api::error::error_reply(other.status(), other.to_string()),
        }
    }
}

/// One operator's view of a cluster lock's keys: each validator's group
/// public key and this operator's public share of it, both ways.
#[derive(Debug, Clone)]
pub struct PubkeyMap {
    operator_index: u64,
    group_by_share: HashMap<PublicKeyBytes, PublicKeyBytes>,
    share_by_group: HashMap<PublicKeyBytes, PublicKeyBytes>,
}

impl PubkeyMap {
    /// The map of operator `operator_index`, who holds share index
    /// `operator_index` of every validator of `lock`.
    pub fn new(lock: &ClusterLock, operator_index: u64) -> Result<PubkeyMap, MappingError> {
        if !lock.operators.iter().any(|o| o.index == operator_index) {
            return Err(MappingError::UnknownOperator {
                operator_index,
                cluster: lock.name.clone(),
                operators: lock.operators.len(),
            });
        }
        let mut map = PubkeyMap {
            operator_index,
            group_by_share: HashMap::with_capacity(lock.validators.len()),
            share_by_group: HashMap::with_capacity(lock.validators.len()),
        };
        for validator in &lock.validators {
            let group = PublicKeyBytes(validator.pubkey.to_bytes());
            let share = validator
                .public_share(operator_index)
                .map(|share| PublicKeyBytes(share.to_bytes()))
                .ok_or_else(|| MappingError::MissingShare {
                    validator: hex_key(&group),
                    share_index: operator_index,
                })?;
            if let Some(first) = map.group_by_share.insert(share, group) {
                return Err(MappingError::DuplicateShare {
                    share: hex_key(&share),
                    operator_index,
                    first: hex_key(&first),
                    second: hex_key(&group),
                });
            }
            // The lock refuses repeated group keys, so this never replaces.
            map.share_by_group.insert(group, share);
        }
        Ok(map)
    }

    /// The operator whose shares this map holds.
    pub fn operator_index(&self) -> u64 {
        self.operator_index
    }

    /// Number of validators mapped.
    pub fn len(&self) -> usize {
        self.share_by_group.len()
    }

    /// Whether the map holds no validator (a lock always has one).
    pub fn is_empty(&self) -> bool {
        self.share_by_group.is_empty()
    }

    /// The group key of the validator of which `share` is this operator's public share.
    pub fn group_key_of(&self, share: &PublicKeyBytes) -> Option<&PublicKeyBytes> {
        self.group_by_share.get(share)
    }

    /// This operator's public share of the validator with group key `group`.
    pub fn public_share_of(&self, group: &PublicKeyBytes) -> Option<&PublicKeyBytes> {
        self.share_by_group.get(group)
    }
}

/// `0x` + lower-case hex of a key.
fn hex_key(key: &PublicKeyBytes) -> String {
    serde_utils::hex::encode(key.0)
}

/// A warp filter that serves the mapped endpoints (see the module docs) by
/// forwarding them to `upstream` with the keys of `map` rewritten, and
/// rejects every other request as not found without reading its body, so
/// that a server mounts it in front of its reverse proxy:
/// `own_routes.or(pubkey_mapping_routes(map, url, config)?).or(proxy_filter(..)?)`.
pub fn pubkey_mapping_routes(
    map: Arc<PubkeyMap>,
    upstream: Url,
    config: MappingConfig,
) -> Result<impl Filter<Extract = (Response,), Error = Rejection> + Clone, MappingError> {
    let proxy = Proxy::new(ProxyConfig {
        upstream,
        timeout: config.timeout,
        max_request_body: config.max_request_body,
    })?;
    let mapper = Arc::new(Mapper { map, proxy, config });
    let with_mapper = warp::any().map(move || Arc::clone(&mapper));
    Ok(warp::method()
        .and(warp::path::full())
        .and_then(select)
        .and(warp::method())
        .and(warp::path::full())
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and(with_mapper)
        .then(handle))
}

/// The endpoint a request names, or not found for every other request.
async fn select(method: Method, path: FullPath) -> Result<Endpoint, Rejection> {
    Endpoint::of(&method, path.as_str()).ok_or_else(warp::reject::not_found)
}

/// The request handler of [`pubkey_mapping_routes`].
async fn handle<S, B>(
    endpoint: Endpoint,
    method: Method,
    path: FullPath,
    query: Option<String>,
    headers: HeaderMap,
    body: S,
    mapper: Arc<Mapper>,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    let started = Instant::now();
    let path = path.as_str().to_owned();
    let target = Target {
        method,
        path: path.clone(),
        query,
    };
    let result = mapper.exchange(endpoint, target, headers, body).await;
    let (status, counts) = match &result {
        Ok((response, counts)) => (response.status(), *counts),
        Err(error) => (error.status(), MappedCounts::default()),
    };
    let elapsed_ms = started.elapsed().as_millis();
    match &result {
        Ok(_) => tracing::debug!(
            path = %path,
            status = status.as_u16(),
            request_keys_mapped = counts.request,
            response_keys_mapped = counts.response,
            elapsed_ms,
            "mapped public keys between validator client and beacon node"
        ),
        // The VC sees the error too; the log says it was the mapping's.
        Err(error) => tracing::warn!(
            path = %path,
            status = status.as_u16(),
            elapsed_ms,
            %error,
            "could not map public keys between validator client and beacon node"
        ),
    }
    match result {
        Ok((response, _)) => response,
        Err(error) => error.into_response(),
    }
}

/// How many keys one exchange rewrote, for the log.
#[derive(Debug, Clone, Copy, Default)]
struct MappedCounts {
    request: usize,
    response: usize,
}

/// Where a request names validators (public keys to map to group keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestIds {
    /// Nowhere (duties requests name validators by index).
    None,
    /// `?id=` values, comma-separated and/or repeated.
    Query,
    /// The last path segment.
    Path,
    /// The `ids` array of a JSON object body.
    BodyObject,
    /// A JSON array body.
    BodyArray,
    /// A `register_validator` body (JSON or SSZ): checked, not mapped.
    Registrations,
}

/// Where a response names validators by public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseKeys {
    /// Nowhere: the response is streamed unchanged.
    None,
    /// `data[].validator.pubkey`.
    ValidatorList,
    /// `data.validator.pubkey`.
    Validator,
    /// `data[].pubkey`: duties, validator identities.
    Duties,
}

/// What to rewrite in one mapped endpoint's request and response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Endpoint {
    ids: RequestIds,
    keys: ResponseKeys,
    /// Where the keys of an SSZ answer lie; `None` where the answer can
    /// only be mapped as JSON (so JSON is asked for).
    ssz: Option<SszKeys>,
}

impl Endpoint {
    /// The mapped endpoint `method` and `path` name, if any.
    fn of(method: &Method, path: &str) -> Option<Endpoint> {
        use RequestIds as I;
        use ResponseKeys as K;
        use SszKeys as S;
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        if segments.iter().any(|segment| segment.is_empty()) {
            return None;
        }
        let (ids, keys, ssz) = match (method.as_str(), segments.as_slice()) {
            ("GET", ["eth", "v1", "beacon", "states", _, "validators"]) => {
                (I::Query, K::ValidatorList, None)
            }
            ("POST", ["eth", "v1", "beacon", "states", _, "validators"]) => {
                (I::BodyObject, K::ValidatorList, None)
            }
            ("GET", ["eth", "v1", "beacon", "states", _, "validators", _]) => {
                (I::Path, K::Validator, None)
            }
            ("POST", ["eth", "v1", "beacon", "states", _, "validator_identities"]) => {
                (I::BodyArray, K::Duties, Some(S::ValidatorIdentities))
            }
            ("GET", ["eth", "v1", "beacon", "states", _, "validator_balances"]) => {
                (I::Query, K::None, None)
            }
            ("POST", ["eth", "v1", "beacon", "states", _, "validator_balances"])
            | ("POST", ["eth", "v1", "beacon", "rewards", "attestations" | "sync_committee", _]) => {
                (I::BodyArray, K::None, None)
            }
            ("POST", ["eth", "v1", "validator", "duties", "attester", _]) => {
                (I::None, K::Duties, Some(S::AttesterDuties))
            }
            ("POST", ["eth", "v1", "validator", "duties", "sync", _]) => {
                (I::None, K::Duties, Some(S::SyncDuties))
            }
            ("GET", ["eth", "v1", "validator", "duties", "proposer", _]) => {
                (I::None, K::Duties, Some(S::ProposerDuties))
            }
            ("GET", ["eth", "v2", "validator", "duties", "proposer", _])
            | ("POST", ["eth", "v1", "validator", "duties", "ptc", _]) => {
                (I::None, K::Duties, None)
            }
            ("POST", ["eth", "v1", "validator", "register_validator"]) => {
                (I::Registrations, K::None, None)
            }
            _ => return None,
        };
        Some(Endpoint { ids, keys, ssz })
    }
}

/// The shared state behind [`pubkey_mapping_routes`].
struct Mapper {
    map: Arc<PubkeyMap>,
    proxy: Proxy,
    config: MappingConfig,
}

impl Mapper {
    /// Forwards one request with its ids mapped and answers with the
    /// upstream's response, its keys mapped.
    async fn exchange<S, B>(
        &self,
        endpoint: Endpoint,
        mut target: Target,
        mut headers: HeaderMap,
        body: S,
    ) -> Result<(Response, MappedCounts), MappingError>
    where
        S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
        B: Buf,
    {
        if endpoint.keys != ResponseKeys::None {
            // Before anything is read or mapped: the path named is the VC's own.
            ask_for_mappable(endpoint, &target, &mut headers)?;
            // The body is read here, so it must come in a form this can read.
            headers.remove(ACCEPT_ENCODING);
        }
        // Messages name the request as the VC sent it, with its own keys.
        let asked = format!("{} {}", target.method, target.display());
        let mut counts = MappedCounts::default();
        let mut request_body = None;
        if has_body(&headers) {
            let bytes = self.read_request_body(endpoint.ids, &headers, body).await?;
            let bytes = match endpoint.ids {
                RequestIds::Registrations => {
                    self.check_registrations(&headers, &bytes)?;
                    bytes
                }
                ids => {
                    let (bytes, mapped) = map_body_ids(&self.map, ids, bytes);
                    counts.request = mapped;
                    bytes
                }
            };
            headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            request_body = Some(reqwest::Body::from(bytes));
        }
        counts.request += match endpoint.ids {
            RequestIds::Query => self.map_query(&mut target),
            RequestIds::Path => self.map_path(&mut target),
            RequestIds::None
            | RequestIds::BodyObject
            | RequestIds::BodyArray
            | RequestIds::Registrations => 0,
        };
        let upstream = self.proxy.send(&target, headers, request_body).await?;
        if endpoint.keys == ResponseKeys::None || !upstream.status().is_success() {
            return Ok((streamed_response(upstream), counts));
        }
        let (response, mapped) = self.map_response(endpoint, &asked, upstream).await?;
        counts.response = mapped;
        Ok((response, counts))
    }

    /// The whole request body, refused past [`MappingConfig::max_request_body`]
    /// ([`MappingConfig::max_registrations_body`] for registrations).
    async fn read_request_body<S, B>(
        &self,
        ids: RequestIds,
        headers: &HeaderMap,
        body: S,
    ) -> Result<Bytes, MappingError>
    where
        S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
        B: Buf,
    {
        let limit = match ids {
            RequestIds::Registrations => self.config.max_registrations_body,
            _ => self.config.max_request_body,
        };
        if let Some(received) = content_length(headers).filter(|&length| length > limit) {
            return Err(ProxyError::BodyTooLarge { received, limit }.into());
        }
        match read_body_limited(body, limit).await {
            Ok(bytes) => Ok(Bytes::from(bytes)),
            Err(BodyError::Read(reason)) => Err(MappingError::RequestBody(reason)),
            Err(BodyError::TooLarge) => Err(ProxyError::BodyTooLarge {
                received: limit.saturating_add(1),
                limit,
            }
            .into()),
        }
    }

    /// Refuses a `register_validator` body that names one of this
    /// operator's public shares, naming each such registration; a body of
    /// another shape passes (the upstream judges it).
    fn check_registrations(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), MappingError> {
        let is_ssz = headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(MediaType::of_content_type)
            == Some(MediaType::Ssz);
        let keys = if is_ssz {
            registration_keys(body).map(|keys| keys.into_iter().map(Some).collect())
        } else {
            json_registration_keys(body)
        };
        let keys = keys.unwrap_or_default();
        let failures: Vec<(usize, ItemError)> = keys
            .iter()
            .enumerate()
            .filter_map(|(index, key)| {
                let key = key.as_ref()?;
                let group = self.map.group_key_of(key)?;
                let reason = format!(
                    "pubkey {} is operator {}'s public share of distributed validator {}: this \
                     middleware does not combine validator registrations, and a registration \
                     signed by a key share names no validator the beacon node or a builder knows",
                    hex_key(key),
                    self.map.operator_index(),
                    hex_key(group)
                );
                Some((index, ItemError::Refused(reason)))
            })
            .collect();
        if failures.is_empty() {
            return Ok(());
        }
        Err(MappingError::Refused(ApiError::InvalidItems {
            total: keys.len(),
            failures,
        }))
    }

    fn map_query(&self, target: &mut Target) -> usize {
        let Some(query) = target.query.as_deref() else {
            return 0;
        };
        let (query, mapped) = map_query_ids(&self.map, query);
        target.query = Some(query);
        mapped
    }

    fn map_path(&self, target: &mut Target) -> usize {
        let Some((parent, id)) = target.path.rsplit_once('/') else {
            return 0;
        };
        let Some(group) = id.parse().ok().and_then(|key| self.map.group_key_of(&key)) else {
            return 0;
        };
        target.path = format!("{parent}/{}", hex_key(group));
        1
    }

    /// The upstream's success response with its keys mapped, in its own
    /// encoding; 502 if it is in neither or not of the endpoint's shape.
    async fn map_response(
        &self,
        endpoint: Endpoint,
        asked: &str,
        upstream: reqwest::Response,
    ) -> Result<(Response, usize), MappingError> {
        let status = upstream.status();
        let mut headers = end_to_end(upstream.headers().clone(), false);
        let content_type = headers
            .get(CONTENT_TYPE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let encoding = content_type.as_deref().and_then(MediaType::of_content_type);
        let ssz = match (encoding, endpoint.ssz) {
            (Some(MediaType::Json), _) => None,
            (Some(MediaType::Ssz), Some(layout)) => Some(layout),
            _ => {
                let what = match &content_type {
                    Some(text) => format!("of content type {:?}", shown(text)),
                    None => "without a content type".to_string(),
                };
                return Err(self
                    .proxy
                    .bad_gateway(format!(
                        "the answer to {asked} is {what}, in which the middleware cannot map \
                         the validator public keys to this operator's public shares"
                    ))
                    .into());
            }
        };
        let body = self.read_response_body(upstream).await?;
        let map = Arc::clone(&self.map);
        let keys = endpoint.keys;
        // Parsing a large validator list is CPU work: keep it off the async workers.
        let rewritten = tokio::task::spawn_blocking(move || match ssz {
            Some(layout) => map_ssz_keys(&map, layout, &body),
            None => map_response_keys(&map, keys, &body),
        })
        .await
        .map_err(|error| {
            self.proxy
                .bad_gateway(format!("mapping the response failed: {error}"))
        })?;
        let (body, mapped) = rewritten.map_err(|reason| {
            self.proxy.bad_gateway(format!(
                "the answer to {asked} is not the Beacon API's shape: {reason}"
            ))
        })?;
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        let mut response = warp::http::Response::new(Bytes::from(body)).into_response();
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok((response, mapped))
    }

    /// The whole response body, within [`MappingConfig::max_response_body`]
    /// and [`MappingConfig::timeout`].
    async fn read_response_body(
        &self,
        mut upstream: reqwest::Response,
    ) -> Result<Vec<u8>, MappingError> {
        let limit = self.config.max_response_body;
        let too_large = |length: u64| {
            self.proxy.bad_gateway(format!(
                "response body of {length} bytes or more exceeds the limit of {limit} bytes"
            ))
        };
        let read = read_body_within(&mut upstream, limit);
        match tokio::time::timeout(self.config.timeout, read).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(BodyReadError::TooLarge { length })) => Err(too_large(length).into()),
            Ok(Err(BodyReadError::Read(error))) => Err(self.proxy.classify(error).into()),
            Err(_) => Err(self.proxy.timeout().into()),
        }
    }
}

/// Sets the `Accept` the upstream gets for an endpoint whose answer is
/// mapped: the VC's own where the SSZ answer is mapped too, else JSON, or
/// 406 if the VC does not accept JSON.
fn ask_for_mappable(
    endpoint: Endpoint,
    target: &Target,
    headers: &mut HeaderMap,
) -> Result<(), MappingError> {
    if endpoint.ssz.is_some() {
        return Ok(());
    }
    let accept = headers
        .get(ACCEPT)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    if !Accept::parse(accept.as_deref()).accepts(MediaType::Json) {
        return Err(MappingError::Refused(ApiError::NotAcceptable(format!(
            "{} {} is answered in application/json only: the middleware rewrites the \
             validator public keys in it, and no SSZ encoding of this answer is defined; \
             the request's Accept ({:?}) does not allow JSON",
            target.method,
            target.path,
            shown(accept.as_deref().unwrap_or_default())
        ))));
    }
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    Ok(())
}

/// The start of an untrusted header value, short enough for a message.
fn shown(text: &str) -> String {
    text.chars().take(100).collect()
}

/// `query` with every `id` value that is a public share replaced by its
/// group key, and how many were. Pairs without a mapped id stay as written.
fn map_query_ids(map: &PubkeyMap, query: &str) -> (String, usize) {
    let mut mapped = 0;
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let Some((key, value)) = form_urlencoded::parse(pair.as_bytes()).next() else {
                return pair.to_string();
            };
            if key != "id" {
                return pair.to_string();
            }
            let mut mapped_here = 0;
            let items: Vec<String> = value
                .split(',')
                .map(
                    |item| match item.trim().parse().ok().and_then(|k| map.group_key_of(&k)) {
                        Some(group) => {
                            mapped_here += 1;
                            hex_key(group)
                        }
                        None => form_urlencoded::byte_serialize(item.as_bytes()).collect(),
                    },
                )
                .collect();
            if mapped_here == 0 {
                return pair.to_string();
            }
            mapped += mapped_here;
            format!("id={}", items.join(","))
        })
        .collect();
    (pairs.join("&"), mapped)
}

/// The public keys of a JSON `register_validator` body (an array of
/// `{"message": {"pubkey", ...}, "signature"}`) in order, `None` for one
/// that is not a key; `None` if the body is not such an array.
fn json_registration_keys(body: &[u8]) -> Option<Vec<Option<PublicKeyBytes>>> {
    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(borrow)]
        pubkey: &'a RawValue,
    }
    #[derive(Deserialize)]
    struct Registration<'a> {
        #[serde(borrow)]
        message: Message<'a>,
    }
    let registrations: Vec<Registration> = serde_json::from_slice(body).ok()?;
    Some(
        registrations
            .iter()
            .map(|r| serde_json::from_str(r.message.pubkey.get()).ok())
            .collect(),
    )
}

/// A mapped request body: its ids that are public shares replaced by their
/// group keys. A body of another shape is forwarded as it came, for the
/// upstream to judge.
fn map_body_ids(map: &PubkeyMap, ids: RequestIds, body: Bytes) -> (Bytes, usize) {
    #[derive(Deserialize)]
    struct IdsObject<'a> {
        #[serde(borrow, default)]
        ids: Option<Vec<&'a RawValue>>,
    }
    let tokens = match ids {
        RequestIds::BodyObject => serde_json::from_slice::<IdsObject>(&body)
            .ok()
            .and_then(|object| object.ids),
        RequestIds::BodyArray => serde_json::from_slice::<Vec<&RawValue>>(&body).ok(),
        RequestIds::None | RequestIds::Query | RequestIds::Path | RequestIds::Registrations => None,
    };
    let replacements: Vec<Replacement> = tokens
        .unwrap_or_default()
        .into_iter()
        .filter_map(|token| {
            let key = serde_json::from_str::<PublicKeyBytes>(token.get()).ok()?;
            let group = map.group_key_of(&key)?;
            Replacement::new(&body, token, group)
        })
        .collect();
    if replacements.is_empty() {
        return (body, 0);
    }
    (
        Bytes::from(splice(&body, &replacements)),
        replacements.len(),
    )
}

/// The key fields of each response shape, as they lie in the body.
mod shapes {
    use serde::Deserialize;
    use serde_json::value::RawValue;

    /// An object with a `pubkey` field (a duty, a validator record).
    #[derive(Deserialize)]
    pub struct Keyed<'a> {
        #[serde(borrow)]
        pub pubkey: &'a RawValue,
    }

    /// One `ValidatorResponse`: `{index, balance, status, validator: {pubkey, ...}}`.
    #[derive(Deserialize)]
    pub struct ValidatorEntry<'a> {
        #[serde(borrow)]
        pub validator: Keyed<'a>,
    }

    /// `{"data": [ValidatorResponse, ...]}`.
    #[derive(Deserialize)]
    pub struct ValidatorList<'a> {
        #[serde(borrow)]
        pub data: Vec<ValidatorEntry<'a>>,
    }

    /// `{"data": ValidatorResponse}`.
    #[derive(Deserialize)]
    pub struct OneValidator<'a> {
        #[serde(borrow)]
        pub data: ValidatorEntry<'a>,
    }

    /// `{"data": [duty, ...]}` of attester, sync and proposer duties.
    #[derive(Deserialize)]
    pub struct Duties<'a> {
        #[serde(borrow)]
        pub data: Vec<Keyed<'a>>,
    }
}

/// A response body with its group keys replaced by this operator's public
/// shares, and how many were; or why the body is not of the shape `keys`.
fn map_response_keys(
    map: &PubkeyMap,
    keys: ResponseKeys,
    body: &[u8],
) -> Result<(Vec<u8>, usize), String> {
    let tokens: Vec<&RawValue> = match keys {
        ResponseKeys::None => Vec::new(),
        ResponseKeys::ValidatorList => serde_json::from_slice::<shapes::ValidatorList>(body)
            .map_err(|e| e.to_string())?
            .data
            .into_iter()
            .map(|entry| entry.validator.pubkey)
            .collect(),
        ResponseKeys::Validator => vec![
            serde_json::from_slice::<shapes::OneValidator>(body)
                .map_err(|e| e.to_string())?
                .data
                .validator
                .pubkey,
        ],
        ResponseKeys::Duties => serde_json::from_slice::<shapes::Duties>(body)
            .map_err(|e| e.to_string())?
            .data
            .into_iter()
            .map(|duty| duty.pubkey)
            .collect(),
    };
    let mut replacements = Vec::new();
    for token in tokens {
        let key: PublicKeyBytes = serde_json::from_str(token.get()).map_err(|e| {
            let shown: String = token.get().chars().take(100).collect();
            format!("pubkey {shown}: {e}")
        })?;
        if let Some(share) = map.public_share_of(&key) {
            let replacement = Replacement::new(body, token, share)
                .ok_or_else(|| "a pubkey lies outside the body".to_string())?;
            replacements.push(replacement);
        }
    }
    let mapped = replacements.len();
    Ok((splice(body, &replacements), mapped))
}

/// One JSON string token of a body and the key to write in its place.
struct Replacement {
    span: Range<usize>,
    key: PublicKeyBytes,
}

impl Replacement {
    /// Where `token`, parsed from `body` with borrowing, lies in `body`:
    /// a borrowed `RawValue` is a slice of the input, so its address less
    /// the body's is its offset. `None` if it is not in `body` after all.
    fn new(body: &[u8], token: &RawValue, key: &PublicKeyBytes) -> Option<Replacement> {
        let text = token.get().as_bytes();
        let start = (text.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
        let end = start.checked_add(text.len())?;
        (end <= body.len()).then_some(Replacement {
            span: start..end,
            key: *key,
        })
    }
}

/// `body` with each replacement's span replaced by its key as a JSON
/// string. Replacements are in body order, as a parse visits them.
fn splice(body: &[u8], replacements: &[Replacement]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut copied = 0;
    for replacement in replacements {
        // An out-of-order span would be a parser bug; skipping it only leaves a key unmapped.
        if replacement.span.start < copied {
            continue;
        }
        out.extend_from_slice(&body[copied..replacement.span.start]);
        out.push(b'"');
        out.extend_from_slice(hex_key(&replacement.key).as_bytes());
        out.push(b'"');
        copied = replacement.span.end;
    }
    out.extend_from_slice(&body[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{split_cluster, CreateConfig};
    use crate::crypto::SecretKey;

    const OPERATORS: u64 = 4;

    /// A 3-of-4 lock of `count` random validators.
    fn lock(count: usize) -> ClusterLock {
        let secrets: Vec<SecretKey> = (0..count).map(|_| SecretKey::random()).collect();
        split_cluster(&CreateConfig::in_memory(OPERATORS, Some(3)), &secrets)
            .unwrap()
            .lock
    }

    fn key_bytes(key: &crate::crypto::PublicKey) -> PublicKeyBytes {
        PublicKeyBytes(key.to_bytes())
    }

    #[test]
    fn map_holds_each_operators_own_shares_both_ways() {
        let lock = lock(3);
        for operator in 1..=OPERATORS {
            let map = PubkeyMap::new(&lock, operator).unwrap();
            assert_eq!((map.operator_index(), map.len()), (operator, 3));
            for validator in &lock.validators {
                let group = key_bytes(&validator.pubkey);
                let share = key_bytes(validator.public_share(operator).unwrap());
                assert_eq!(map.public_share_of(&group), Some(&share));
                assert_eq!(map.group_key_of(&share), Some(&group));
                assert_eq!(map.group_key_of(&group), None);
            }
        }
        let error = PubkeyMap::new(&lock, 5).unwrap_err();
        assert!(error.to_string().contains("operator 5"), "{error}");
    }

    #[test]
    fn a_share_of_two_validators_is_refused() {
        let mut lock = lock(2);
        let share = lock.validators[0].public_shares[&2];
        lock.validators[1].public_shares.insert(2, share);
        let error = PubkeyMap::new(&lock, 2).unwrap_err();
        assert!(
            matches!(
                error,
                MappingError::DuplicateShare {
                    operator_index: 2,
                    ..
                }
            ),
            "{error}"
        );
        // Operator 1's shares are still distinct.
        assert!(PubkeyMap::new(&lock, 1).is_ok());
    }

    #[test]
    fn endpoints_are_recognised_by_method_and_path() {
        let of = |method: Method, path: &str| Endpoint::of(&method, path);
        let states = "/eth/v1/beacon/states/head";
        let duties = "/eth/v1/validator/duties";
        assert_eq!(
            of(Method::GET, &format!("{states}/validators"))
                .unwrap()
                .ids,
            RequestIds::Query
        );
        assert_eq!(
            of(Method::POST, &format!("{states}/validators"))
                .unwrap()
                .ids,
            RequestIds::BodyObject
        );
        assert_eq!(
            of(Method::GET, &format!("{states}/validators/7"))
                .unwrap()
                .keys,
            ResponseKeys::Validator
        );
        assert_eq!(
            of(Method::POST, &format!("{states}/validator_balances")).unwrap(),
            Endpoint {
                ids: RequestIds::BodyArray,
                keys: ResponseKeys::None,
                ssz: None,
            }
        );
        assert_eq!(
            of(Method::POST, &format!("{states}/validator_identities")).unwrap(),
            Endpoint {
                ids: RequestIds::BodyArray,
                keys: ResponseKeys::Duties,
                ssz: Some(SszKeys::ValidatorIdentities),
            }
        );
        // Routes whose SSZ answer has no known encoding are mapped as JSON only.
        for (method, path) in [
            (Method::GET, format!("{states}/validators")),
            (
                Method::GET,
                "/eth/v2/validator/duties/proposer/5".to_string(),
            ),
            (Method::POST, format!("{duties}/ptc/5")),
        ] {
            let endpoint = of(method, &path).unwrap();
            assert_ne!(endpoint.keys, ResponseKeys::None, "{path}");
            assert_eq!(endpoint.ssz, None, "{path}");
        }
        assert_eq!(
            of(Method::POST, "/eth/v1/validator/register_validator")
                .unwrap()
                .ids,
            RequestIds::Registrations
        );
        for (path, ssz) in [
            (format!("{duties}/attester/5"), SszKeys::AttesterDuties),
            (format!("{duties}/sync/5"), SszKeys::SyncDuties),
        ] {
            let endpoint = of(Method::POST, &path).unwrap();
            assert_eq!(
                (endpoint.keys, endpoint.ssz),
                (ResponseKeys::Duties, Some(ssz))
            );
            assert_eq!(of(Method::GET, &path), None);
        }
        let proposer = of(Method::GET, &format!("{duties}/proposer/5")).unwrap();
        assert_eq!(
            (proposer.keys, proposer.ssz),
            (ResponseKeys::Duties, Some(SszKeys::ProposerDuties))
        );
        for (method, path) in [
            (Method::POST, format!("{states}/validators/7")),
            (Method::GET, format!("{states}/validators/")),
            (Method::GET, "/eth/v1/beacon/states//validators".to_string()),
            (Method::GET, format!("{states}/committees")),
            (Method::GET, "/eth/v1/node/version".to_string()),
            (Method::POST, format!("{duties}/proposer/5")),
            (Method::DELETE, format!("{states}/validators")),
        ] {
            assert_eq!(of(method.clone(), &path), None, "{method} {path}");
        }
    }

    #[test]
    fn query_ids_are_mapped_in_lists_and_repeats_and_the_rest_kept() {
        let lock = lock(2);
        let map = PubkeyMap::new(&lock, 1).unwrap();
        let [(g0, s0), (g1, s1)] = [0, 1].map(|i| {
            let v = &lock.validators[i];
            (
                hex_key(&key_bytes(&v.pubkey)),
                hex_key(&key_bytes(&v.public_shares[&1])),
            )
        });
        let upper = format!("0x{}", s1[2..].to_uppercase());
        let query = format!("status=active%2Cexited&id=3,{s0}&id={upper}&id=0xzz&x=1");
        let (mapped_query, mapped) = map_query_ids(&map, &query);
        assert_eq!(mapped, 2);
        assert_eq!(
            mapped_query,
            format!("status=active%2Cexited&id=3,{g0}&id={g1}&id=0xzz&x=1")
        );
        // Group keys and unknown keys are not shares: nothing changes.
        let untouched = format!("id={g0},{g1}");
        assert_eq!(map_query_ids(&map, &untouched), (untouched.clone(), 0));
    }

    #[test]
    fn body_ids_are_mapped_in_place_and_other_bodies_pass() {
        let lock = lock(1);
        let map = PubkeyMap::new(&lock, 3).unwrap();
        let group = hex_key(&key_bytes(&lock.validators[0].pubkey));
        let share = hex_key(&key_bytes(&lock.validators[0].public_shares[&3]));
        let body = format!(r#"{{ "statuses": ["active"], "ids" : [ "1",  "{share}" ] }}"#);
        let (mapped, count) = map_body_ids(&map, RequestIds::BodyObject, Bytes::from(body.clone()));
        assert_eq!(count, 1);
        assert_eq!(mapped, body.replace(&share, &group).as_bytes());
        let array = format!(r#"["{share}","2"]"#);
        let (mapped, count) = map_body_ids(&map, RequestIds::BodyArray, Bytes::from(array.clone()));
        assert_eq!(
            (mapped, count),
            (Bytes::from(array.replace(&share, &group)), 1)
        );
        for junk in ["", "{", r#"{"ids": "x"}"#, &array] {
            let (passed, count) =
                map_body_ids(&map, RequestIds::BodyObject, Bytes::from(junk.to_string()));
            assert_eq!((passed.as_ref(), count), (junk.as_bytes(), 0));
        }
    }

    #[test]
    fn response_keys_are_replaced_and_nothing_else_moves() {
        let lock = lock(1);
        let map = PubkeyMap::new(&lock, 2).unwrap();
        let group = hex_key(&key_bytes(&lock.validators[0].pubkey));
        let share = hex_key(&key_bytes(&lock.validators[0].public_shares[&2]));
        let other = format!("0x{}", "a1".repeat(48));
        let upper_group = format!("0x{}", group[2..].to_uppercase());
        let body = format!(
            r#"{{"execution_optimistic":false,"data":[ {{"slot":"1","pubkey": "{upper_group}","note":"{group}"}},{{"pubkey":"{other}"}}],"dependent_root":"0x00"}}"#
        );
        let (mapped, count) =
            map_response_keys(&map, ResponseKeys::Duties, body.as_bytes()).unwrap();
        assert_eq!(count, 1);
        // Only the key field changes; the same key elsewhere is left alone.
        let expected = body.replacen(&upper_group, &share, 1);
        assert_eq!(String::from_utf8(mapped).unwrap(), expected);

        let one = format!(r#"{{"data":{{"index":"0","validator":{{"pubkey":"{group}"}}}}}}"#);
        let (mapped, _) = map_response_keys(&map, ResponseKeys::Validator, one.as_bytes()).unwrap();
        assert_eq!(mapped, one.replace(&group, &share).as_bytes());
    }

    #[test]
    fn malformed_response_keys_are_named() {
        let map = PubkeyMap::new(&lock(1), 1).unwrap();
        let error = map_response_keys(
            &map,
            ResponseKeys::Duties,
            br#"{"data":[{"pubkey":"0x12"}]}"#,
        )
        .unwrap_err();
        assert!(error.contains("pubkey \"0x12\""), "{error}");
        let error = map_response_keys(
            &map,
            ResponseKeys::ValidatorList,
            br#"{"data":[{"pubkey":"0x12"}]}"#,
        )
        .unwrap_err();
        assert!(error.contains("missing field `validator`"), "{error}");
        assert!(
            map_response_keys(&map, ResponseKeys::Duties, br#"{"data":[], "data":[]}"#).is_err()
        );
    }
}
