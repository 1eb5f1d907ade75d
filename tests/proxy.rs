//! The sidecar's reverse proxy (`beacon::proxy`) in front of a TEST UPSTREAM:
//! a small warp server written here as a test double for a beacon node. It
//! echoes what reached it, answers a 404 with its own body and header, stalls
//! on `/slow`, and serves an `/eth/v1/events` stream whose second event waits
//! for the test's go-ahead, which proves the proxy does not buffer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dv_aggregator::beacon::proxy::{proxy_filter, ProxyConfig, DEFAULT_MAX_REQUEST_BODY};
use futures_util::{stream, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Reply};

/// The proxy's head timeout in these tests; `/slow` stalls longer.
const PROXY_TIMEOUT: Duration = Duration::from_millis(1000);
/// The test upstream sends its event-stream headers only with the first
/// event, after this delay (longer than the timeout), as Lodestar does.
const EVENTS_HEADERS_DELAY: Duration = Duration::from_millis(1500);
/// Bound on every wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// What the test upstream shares with the test.
#[derive(Clone, Default)]
struct UpstreamState {
    /// Requests that reached the echo routes.
    echoed: Arc<AtomicUsize>,
    /// Lets the event stream send its second event.
    release_second_event: Arc<Notify>,
    /// Set just before the second event is sent.
    second_event_sent: Arc<AtomicBool>,
}

/// Serves `filter` on `listener` until the task is aborted.
fn serve(filter: BoxedFilter<(Response,)>, listener: TcpListener) -> JoinHandle<()> {
    tokio::spawn(warp::serve(filter).incoming(listener).run())
}

async fn loopback_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// TEST UPSTREAM (a test double for a beacon node).
fn test_upstream(state: UpstreamState) -> BoxedFilter<(Response,)> {
    let missing = warp::path!("missing").map(|| {
        let body = json!({"code": 404, "message": "test upstream: no such thing"});
        let reply = warp::reply::with_status(warp::reply::json(&body), StatusCode::NOT_FOUND);
        warp::reply::with_header(reply, "x-upstream", "test-double").into_response()
    });
    let slow = warp::path!("slow").then(|| async {
        tokio::time::sleep(WAIT).await;
        "late".into_response()
    });
    let events_state = state.clone();
    let events = warp::path!("eth" / "v1" / "events").then(move || {
        let state = events_state.clone();
        async move {
            tokio::time::sleep(EVENTS_HEADERS_DELAY).await;
            let reply = warp::reply::with_header(
                warp::reply::stream(two_events(state)),
                "content-type",
                "text/event-stream",
            );
            reply.into_response()
        }
    });
    let raw_state = state.clone();
    let raw = warp::path!("raw")
        .and(warp::body::bytes())
        .map(move |body: Bytes| {
            raw_state.echoed.fetch_add(1, Ordering::SeqCst);
            warp::reply::with_header(body.to_vec(), "content-type", "application/octet-stream")
                .into_response()
        });
    let echo = warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .map(
            move |method: Method,
                  path: FullPath,
                  query: String,
                  headers: HeaderMap,
                  body: Bytes| {
                state.echoed.fetch_add(1, Ordering::SeqCst);
                let headers: serde_json::Map<String, Value> = headers
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.to_string(),
                            json!(value.to_str().unwrap_or("<binary>")),
                        )
                    })
                    .collect();
                warp::reply::json(&json!({
                    "method": method.as_str(),
                    "path": path.as_str(),
                    "query": query,
                    "headers": headers,
                    "body": hex::encode(&body),
                }))
                .into_response()
            },
        );
    missing
        .or(slow)
        .unify()
        .or(events)
        .unify()
        .or(raw)
        .unify()
        .or(echo)
        .unify()
        .boxed()
}

/// `event: head` with data `one`, then (after the test's go-ahead) `two`.
fn two_events(
    state: UpstreamState,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + Sync {
    stream::unfold(0u8, move |sent| {
        let state = state.clone();
        async move {
            match sent {
                0 => Some((Ok(Bytes::from_static(b"event: head\ndata: one\n\n")), 1)),
                1 => {
                    let _ = tokio::time::timeout(WAIT, state.release_second_event.notified()).await;
                    state.second_event_sent.store(true, Ordering::SeqCst);
                    Some((Ok(Bytes::from_static(b"event: head\ndata: two\n\n")), 2))
                }
                _ => None,
            }
        }
    })
}

/// A proxy to the `upstream` URL on a loopback port, with `max_request_body`.
async fn start_proxy(upstream: &str, max_request_body: u64) -> (SocketAddr, JoinHandle<()>) {
    let mut config = ProxyConfig::new(upstream.parse().unwrap());
    config.timeout = PROXY_TIMEOUT;
    config.max_request_body = max_request_body;
    let filter = proxy_filter(config).unwrap().boxed();
    let (listener, addr) = loopback_listener().await;
    (addr, serve(filter, listener))
}

/// A test upstream and a default-bounded proxy in front of it.
struct Setup {
    upstream: SocketAddr,
    proxy: SocketAddr,
    state: UpstreamState,
    client: reqwest::Client,
    _tasks: [JoinHandle<()>; 2],
}

impl Setup {
    async fn start() -> Self {
        Self::with_limit(DEFAULT_MAX_REQUEST_BODY).await
    }

    async fn with_limit(max_request_body: u64) -> Self {
        let state = UpstreamState::default();
        let (listener, upstream) = loopback_listener().await;
        let upstream_task = serve(test_upstream(state.clone()), listener);
        let (proxy, proxy_task) =
            start_proxy(&format!("http://{upstream}"), max_request_body).await;
        Self {
            upstream,
            proxy,
            state,
            client: client(),
            _tasks: [upstream_task, proxy_task],
        }
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.proxy)
    }

    /// `GET path_and_query` through the proxy.
    async fn get(&self, path_and_query: &str) -> reqwest::Response {
        let request = self.client.get(self.url(path_and_query));
        request.send().await.unwrap()
    }

    /// `POST path` with `content_type` through the proxy; the upstream's echo.
    async fn post_echo(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Value {
        let request = self.client.post(self.url(path));
        self.echo(request.header("content-type", content_type).body(body))
            .await
    }

    /// `POST /raw` (the upstream answers with the body it received).
    async fn post_raw(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        let request = self.client.post(self.url("/raw"));
        let request = request.header("content-type", "application/octet-stream");
        request.body(body).send().await.unwrap()
    }

    /// Sends `request` through the proxy and returns the upstream's echo.
    async fn echo(&self, request: reqwest::RequestBuilder) -> Value {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .build()
        .unwrap()
}

/// A body sent chunked: `chunks` pieces with a pause between them.
fn chunked_body(chunks: Vec<Vec<u8>>) -> reqwest::Body {
    reqwest::Body::wrap_stream(stream::iter(chunks).then(|chunk| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok::<_, std::io::Error>(chunk)
    }))
}

fn all_byte_values() -> Vec<u8> {
    (0..=u8::MAX).collect()
}

#[tokio::test]
async fn get_passes_method_path_query_and_headers_unchanged() {
    let setup = Setup::start().await;
    let path = "/eth/v1/beacon/states/head/validators";
    let query = "id=0x%2Fab&id=7&status=active_ongoing";
    let echo = setup
        .echo(
            setup
                .client
                .get(setup.url(&format!("{path}?{query}")))
                .header("x-custom", "kept")
                .header("accept", "application/json")
                // Hop-by-hop: `connection` names `x-hop`, so neither passes.
                .header("connection", "x-hop")
                .header("x-hop", "dropped"),
        )
        .await;
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], path);
    assert_eq!(echo["query"], query);
    assert_eq!(echo["headers"]["x-custom"], "kept");
    assert_eq!(echo["headers"]["accept"], "application/json");
    assert_eq!(echo["headers"]["host"], setup.upstream.to_string());
    assert!(echo["headers"].get("x-hop").is_none(), "{echo}");
    assert!(echo["headers"].get("content-length").is_none(), "{echo}");
    assert!(echo["headers"].get("transfer-encoding").is_none(), "{echo}");
    assert_eq!(echo["body"], "");
}

#[tokio::test]
async fn post_json_passes_unchanged() {
    let setup = Setup::start().await;
    let body = r#"[{"validator_index":"1","slot":"32"}]"#;
    let echo = setup
        .post_echo(
            "/eth/v1/validator/duties/attester/1",
            "application/json",
            body,
        )
        .await;
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/eth/v1/validator/duties/attester/1");
    assert_eq!(echo["headers"]["content-type"], "application/json");
    assert_eq!(echo["headers"]["content-length"], body.len().to_string());
    assert_eq!(echo["body"], hex::encode(body));
}

#[tokio::test]
async fn octet_stream_bodies_pass_byte_exact_both_ways() {
    let setup = Setup::start().await;
    // Every byte value, then a body large enough to arrive in many chunks.
    let large: Vec<u8> = all_byte_values()
        .into_iter()
        .cycle()
        .take(4 << 20)
        .collect();
    for body in [all_byte_values(), large] {
        let response = setup.post_raw(body.clone()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "application/octet-stream"
        );
        assert_eq!(response.bytes().await.unwrap().as_ref(), body.as_slice());
    }
}

#[tokio::test]
async fn chunked_request_body_passes_unchanged() {
    let setup = Setup::start().await;
    let chunks = vec![b"first ".to_vec(), all_byte_values(), b" last".to_vec()];
    let expected: Vec<u8> = chunks.concat();
    let echo = setup
        .post_echo(
            "/eth/v2/beacon/blocks",
            "application/octet-stream",
            chunked_body(chunks),
        )
        .await;
    assert_eq!(echo["body"], hex::encode(&expected));
    // Forwarded as it came: streamed, without a length made up by the proxy.
    assert_eq!(echo["headers"]["transfer-encoding"], "chunked");
    assert!(echo["headers"].get("content-length").is_none(), "{echo}");
}

#[tokio::test]
async fn upstream_status_headers_and_body_come_back() {
    let setup = Setup::start().await;
    let response = setup.get("/missing").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.headers()["x-upstream"], "test-double");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": 404, "message": "test upstream: no such thing"})
    );
}

#[tokio::test]
async fn event_stream_is_not_buffered_and_not_timed_out() {
    let setup = Setup::start().await;
    let response = setup
        .client
        .get(setup.url("/eth/v1/events?topics=head"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    // The upstream's headers came after the proxy's timeout: no 504.
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    let mut received = Vec::new();
    let first = next_event(&mut body, &mut received).await;
    assert_eq!(first, "event: head\ndata: one");
    // The upstream has not sent the second event yet, so the first one was
    // forwarded on its own.
    assert!(!setup.state.second_event_sent.load(Ordering::SeqCst));
    setup.state.release_second_event.notify_one();
    let second = next_event(&mut body, &mut received).await;
    assert_eq!(second, "event: head\ndata: two");
}

/// The next `\n\n`-terminated event of an SSE body, within [`WAIT`].
async fn next_event(
    body: &mut (impl futures_util::Stream<Item = reqwest::Result<Bytes>> + Unpin),
    received: &mut Vec<u8>,
) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(end) = received.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = received.drain(..end + 2).collect();
                return String::from_utf8(event[..end].to_vec()).unwrap();
            }
            let chunk = body.next().await.expect("stream ended").unwrap();
            received.extend_from_slice(&chunk);
        }
    })
    .await
    .expect("no event within the wait")
}

#[tokio::test]
async fn stalled_upstream_gives_504() {
    let setup = Setup::start().await;
    let response = setup.get("/slow").await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 504);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(&setup.upstream.to_string()), "{message}");
}

#[tokio::test]
async fn request_bodies_over_the_limit_get_413() {
    let limit = 1024;
    let setup = Setup::with_limit(limit).await;
    let at_limit = vec![7u8; limit as usize];
    let over = vec![7u8; limit as usize + 1];

    let response = setup.post_raw(over.clone()).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 413);
    // Refused from `Content-Length` alone, before reaching the upstream.
    assert_eq!(setup.state.echoed.load(Ordering::SeqCst), 0);

    let chunks = |body: Vec<u8>| chunked_body(body.chunks(300).map(<[u8]>::to_vec).collect());
    let response = setup.post_raw(chunks(over)).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let response = setup.post_raw(chunks(at_limit.clone())).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        at_limit.as_slice()
    );
}

#[tokio::test]
async fn upstream_down_gives_503_naming_it_then_recovers() {
    // A port that nothing listens on until the upstream starts below.
    let (listener, upstream) = loopback_listener().await;
    drop(listener);
    let (proxy, _proxy_task) =
        start_proxy(&format!("http://{upstream}"), DEFAULT_MAX_REQUEST_BODY).await;
    let client = client();
    let url = format!("http://{proxy}/eth/v1/node/version");

    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 503);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "upstream beacon node http://{upstream}/ unreachable: "
        )),
        "{message}"
    );

    let listener = TcpListener::bind(upstream).await.unwrap();
    let _upstream_task = serve(test_upstream(UpstreamState::default()), listener);
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["path"], "/eth/v1/node/version");
}

#[tokio::test]
async fn upstream_path_prefix_is_kept() {
    let state = UpstreamState::default();
    let (listener, upstream) = loopback_listener().await;
    let _upstream_task = serve(test_upstream(state), listener);
    let upstream_url = format!("http://{upstream}/node-a/");
    let (proxy, _proxy_task) = start_proxy(&upstream_url, DEFAULT_MAX_REQUEST_BODY).await;
    let url = format!("http://{proxy}/eth/v1/node/version?x=1");
    let echo: Value = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["path"], "/node-a/eth/v1/node/version");
    assert_eq!(echo["query"], "x=1");
}
