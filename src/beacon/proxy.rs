//! Reverse proxy from the sidecar to an upstream beacon node.
//!
//! [`proxy_filter`] is a warp filter that accepts every request and forwards it
//! to the upstream node, so the sidecar mounts its own routes first:
//! `extension_routes.or(proxy_filter(config)?)`.
//!
//! What passes unchanged: method, path, query string, headers (except the
//! hop-by-hop ones of RFC 9110 §7.6.1, and `Host`, which names the upstream),
//! the request body (streamed, so chunked and SSZ bodies pass byte for byte),
//! and the response: status, headers (except hop-by-hop), body. Response bodies
//! are streamed without buffering, so `/eth/v1/events` reaches the client event
//! by event. The HTTP client adds `Accept: */*` to a request that has no
//! `Accept` header, which means the same to a server as having none.
//!
//! Failures answer with a Beacon API error body `{"code", "message"}`:
//! upstream unreachable 503, no response head within [`ProxyConfig::timeout`]
//! 504 (never for the event stream: Lodestar sends its headers only with the
//! first event), other upstream failures 502, a request body over
//! [`ProxyConfig::max_request_body`] 413.

use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use reqwest::header::{
    HeaderMap, HeaderName, ACCEPT, CONNECTION, CONTENT_LENGTH, HOST, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use reqwest::{Method, StatusCode, Url};
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// Default bound on a forwarded request body: 32 MiB. The largest request a
/// validator client sends is an SSZ block (`POST /eth/v2/beacon/blocks`), a
/// few MiB on mainnet with blobs; 32 MiB leaves room without letting one
/// client make the sidecar stream unbounded data.
pub const DEFAULT_MAX_REQUEST_BODY: u64 = 32 * 1024 * 1024;

/// Default time allowed for the upstream to answer with a response head.
/// Generous, since a mainnet `debug/beacon/states` download starts late; the
/// callers (validator clients) apply their own slot-based deadlines.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The Beacon API event stream: answered without a timeout.
const EVENTS_PATH: &str = "/eth/v1/events";

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1),
/// so a proxy must not forward them.
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Where and how the proxy forwards.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Base URL of the upstream beacon node (`http://127.0.0.1:5052`); a path
    /// prefix in it is kept in front of every forwarded path.
    pub upstream: Url,
    /// Time allowed for sending the request and receiving the response head
    /// (not the response body); none for the event stream.
    pub timeout: Duration,
    /// Largest request body forwarded, in bytes; larger ones get 413.
    pub max_request_body: u64,
}

impl ProxyConfig {
    /// A config with [`DEFAULT_TIMEOUT`] and [`DEFAULT_MAX_REQUEST_BODY`].
    pub fn new(upstream: Url) -> Self {
        Self {
            upstream,
            timeout: DEFAULT_TIMEOUT,
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
        }
    }
}

/// Why the proxy could not be built or could not forward a request.
///
/// `upstream` strings never hold the URL's user name or password.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The configured upstream is not an `http`/`https` URL with a host.
    #[error("upstream beacon node URL {upstream} is not an http(s) URL with a host")]
    InvalidUpstream {
        /// The upstream URL, without credentials.
        upstream: String,
    },
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("cannot build the HTTP client for upstream beacon node {upstream}: {reason}")]
    Client {
        /// The upstream URL, without credentials.
        upstream: String,
        /// The client builder's error chain.
        reason: String,
    },
    /// No connection to the upstream could be made.
    #[error("upstream beacon node {upstream} unreachable: {reason}")]
    Unreachable {
        /// The upstream URL, without credentials.
        upstream: String,
        /// The connection error chain.
        reason: String,
    },
    /// The upstream did not send a response head in time.
    #[error("upstream beacon node {upstream} did not answer within {timeout:?}")]
    Timeout {
        /// The upstream URL, without credentials.
        upstream: String,
        /// The configured [`ProxyConfig::timeout`].
        timeout: Duration,
    },
    /// The exchange with the upstream failed after connecting.
    #[error("upstream beacon node {upstream} failed: {reason}")]
    BadGateway {
        /// The upstream URL, without credentials.
        upstream: String,
        /// The client's error chain.
        reason: String,
    },
    /// The request body is larger than [`ProxyConfig::max_request_body`].
    #[error("request body of {received} bytes or more exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// Bytes announced by `Content-Length` or received before stopping.
        received: u64,
        /// The configured limit.
        limit: u64,
    },
}

impl ProxyError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidUpstream { .. } | Self::Client { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unreachable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// The Beacon API error reply `{"code": status, "message": ...}`.
    fn into_response(self) -> Response {
        crate::api::error::error_reply(self.status(), self.to_string())
    }
}

/// A warp filter that forwards every request to `config.upstream` and replies
/// with the upstream's response (or a Beacon API error, see the module docs).
///
/// It rejects only when an earlier filter already consumed the request body.
pub fn proxy_filter(
    config: ProxyConfig,
) -> Result<impl Filter<Extract = (Response,), Error = Rejection> + Clone, ProxyError> {
    let proxy = Arc::new(Proxy::new(config)?);
    let proxy = warp::any().map(move || Arc::clone(&proxy));
    Ok(proxy
        .and(warp::method())
        .and(warp::path::full())
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(forward))
}

/// The request handler of [`proxy_filter`].
async fn forward<S, B>(
    proxy: Arc<Proxy>,
    method: Method,
    path: FullPath,
    query: Option<String>,
    headers: HeaderMap,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    let target = Target {
        method,
        path: path.as_str().to_owned(),
        query,
    };
    proxy.forward(target, headers, body).await
}

/// The query string, `None` when the request target has no `?`.
pub(crate) fn raw_query(
) -> impl Filter<Extract = (Option<String>,), Error = std::convert::Infallible> + Clone {
    warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
}

/// What a request asks for: method, path and query as received.
pub(crate) struct Target {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
}

impl Target {
    /// `path?query`, for logs and error messages.
    pub(crate) fn display(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        }
    }
}

/// The shared state behind [`proxy_filter`]: the HTTP client of one
/// upstream and how to reach it. `middleware::mapping` forwards through it too.
pub(crate) struct Proxy {
    client: reqwest::Client,
    config: ProxyConfig,
    /// `config.upstream` without credentials, for messages.
    upstream: String,
}

impl Proxy {
    pub(crate) fn new(config: ProxyConfig) -> Result<Self, ProxyError> {
        let upstream = redacted(&config.upstream);
        let url = &config.upstream;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ProxyError::InvalidUpstream { upstream });
        }
        // Redirects pass to the client unchanged, and a system HTTP proxy must
        // not sit between the sidecar and its own beacon node.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(config.timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ProxyError::Client {
                upstream: upstream.clone(),
                reason: error_chain(&e),
            })?;
        Ok(Self {
            client,
            config,
            upstream,
        })
    }

    /// Forwards one request and turns any failure into its error reply.
    async fn forward<S, B>(&self, target: Target, headers: HeaderMap, body: S) -> Response
    where
        S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
        B: Buf,
    {
        let started = Instant::now();
        let result = self.exchange(&target, headers, body).await;
        let status = match &result {
            Ok(response) => response.status(),
            Err(error) => error.status(),
        };
        // Response time to the head: a streamed body may go on for long.
        tracing::debug!(
            method = %target.method,
            target = %target.display(),
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis(),
            error = result.as_ref().err().map(tracing::field::display),
            "proxied to upstream beacon node"
        );
        result.unwrap_or_else(ProxyError::into_response)
    }

    async fn exchange<S, B>(
        &self,
        target: &Target,
        headers: HeaderMap,
        body: S,
    ) -> Result<Response, ProxyError>
    where
        S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
        B: Buf,
    {
        let limit = self.config.max_request_body;
        let announced = content_length(&headers);
        if let Some(received) = announced.filter(|&length| length > limit) {
            return Err(ProxyError::BodyTooLarge { received, limit });
        }
        let overflow = Arc::new(AtomicBool::new(false));
        let body = has_body(&headers)
            .then(|| reqwest::Body::wrap_stream(bounded(body, limit, Arc::clone(&overflow))));
        let upstream_response = self.send(target, headers, body).await.map_err(|error| {
            // The aborted body is the cause, whatever the client made of it.
            if overflow.load(Ordering::Relaxed) {
                ProxyError::BodyTooLarge {
                    received: limit.saturating_add(1),
                    limit,
                }
            } else {
                error
            }
        })?;
        Ok(streamed_response(upstream_response))
    }

    /// Sends `target` upstream with the end-to-end part of `headers` and
    /// `body`, and waits for the response head (within
    /// [`ProxyConfig::timeout`], except for the event stream).
    pub(crate) async fn send(
        &self,
        target: &Target,
        headers: HeaderMap,
        body: Option<reqwest::Body>,
    ) -> Result<reqwest::Response, ProxyError> {
        let url = self.target_url(target);
        let is_event_stream = target.path == EVENTS_PATH || accepts_event_stream(&headers);
        let mut request = self
            .client
            .request(target.method.clone(), url)
            .headers(end_to_end(headers, true));
        if let Some(body) = body {
            request = request.body(body);
        }
        let sent = request.send();
        let outcome = if is_event_stream {
            sent.await
        } else {
            tokio::time::timeout(self.config.timeout, sent)
                .await
                .map_err(|_| self.timeout())?
        };
        outcome.map_err(|e| self.classify(e))
    }

    /// The upstream URL for `target`: upstream path prefix + request path,
    /// and the request's query.
    fn target_url(&self, target: &Target) -> Url {
        let mut url = self.config.upstream.clone();
        let prefix = url.path().trim_end_matches('/');
        let path = format!("{prefix}{}", target.path);
        url.set_path(&path);
        url.set_query(target.query.as_deref());
        url
    }

    /// The error of an upstream that did not answer within the timeout.
    pub(crate) fn timeout(&self) -> ProxyError {
        ProxyError::Timeout {
            upstream: self.upstream.clone(),
            timeout: self.config.timeout,
        }
    }

    /// The error a failed exchange with the upstream answers with.
    pub(crate) fn classify(&self, error: reqwest::Error) -> ProxyError {
        if error.is_timeout() {
            return self.timeout();
        }
        let upstream = self.upstream.clone();
        let is_connect = error.is_connect();
        let reason = error_chain(&error.without_url());
        if is_connect {
            ProxyError::Unreachable { upstream, reason }
        } else {
            ProxyError::BadGateway { upstream, reason }
        }
    }

    /// A 502 for an upstream answer the caller cannot use, saying why.
    pub(crate) fn bad_gateway(&self, reason: String) -> ProxyError {
        ProxyError::BadGateway {
            upstream: self.upstream.clone(),
            reason,
        }
    }
}

/// Whether a request has a body: a request with neither `Content-Length`
/// nor `Transfer-Encoding` has none (RFC 9112 §6.3), and sending an empty
/// chunked one instead would change the request.
pub(crate) fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(CONTENT_LENGTH) || headers.contains_key(TRANSFER_ENCODING)
}

/// The upstream's response with its body streamed as it arrives.
pub(crate) fn streamed_response(upstream: reqwest::Response) -> Response {
    let status = upstream.status();
    let headers = end_to_end(upstream.headers().clone(), false);
    let mut response = warp::reply::stream(upstream.bytes_stream()).into_response();
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// `headers` without the hop-by-hop ones (those of [`HOP_BY_HOP`] and those
/// that `Connection` names) and, for a request, without `Host`,
/// which the client sets to the upstream's authority.
pub(crate) fn end_to_end(mut headers: HeaderMap, is_request: bool) -> HeaderMap {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(named.iter()) {
        headers.remove(name);
    }
    if is_request {
        headers.remove(HOST);
    }
    headers
}

/// The `Content-Length` of a request, if present and a number (hyper has
/// already rejected a malformed one).
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}

fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("text/event-stream"))
}

/// The request body as `Bytes` chunks, failing (and setting `overflow`) once
/// more than `limit` bytes have arrived, which aborts the upstream request.
fn bounded<S, B>(
    body: S,
    limit: u64,
    overflow: Arc<AtomicBool>,
) -> impl Stream<Item = Result<Bytes, Box<dyn StdError + Send + Sync>>> + Send + 'static
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    let mut received: u64 = 0;
    body.map(move |chunk| {
        let mut chunk = chunk?;
        let bytes = chunk.copy_to_bytes(chunk.remaining());
        received = received.saturating_add(bytes.len() as u64);
        if received > limit {
            overflow.store(true, Ordering::Relaxed);
            return Err(ProxyError::BodyTooLarge { received, limit }.into());
        }
        Ok(bytes)
    })
}

/// `url` without user name and password.
fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    // Both fail only for URLs that cannot carry credentials anyway.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// An error and its sources, joined by ": ", since reqwest's own message
/// names only the outermost layer.
fn error_chain(error: &dyn StdError) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
