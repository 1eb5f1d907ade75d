//! The sidecar's reverse proxy in front of a real beacon node: Lodestar 1.5.1
//! running a dev chain on loopback (see tests/lodestar/mod.rs; skipped with a
//! message when Lodestar is not installed and `CI` is not set).

mod lodestar;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use dv_aggregator::beacon::proxy::{proxy_filter, ProxyConfig};
use futures_util::StreamExt;
use lodestar::{DevChain, DevChainOptions};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;

/// Bound on waiting for a head event: a few 2-second slots.
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Byte ranges of the first, fixed-size fields of every fork's `BeaconState`
/// SSZ encoding: genesis_time (uint64), genesis_validators_root (Root), slot.
const GENESIS_TIME: std::ops::Range<usize> = 0..8;
const GENESIS_VALIDATORS_ROOT: std::ops::Range<usize> = 8..40;
const SLOT: std::ops::Range<usize> = 40..48;

async fn start_proxy(chain: &DevChain) -> SocketAddr {
    let config = ProxyConfig::new(chain.rest_url.parse().unwrap());
    let filter = proxy_filter(config).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(filter).incoming(listener).run());
    addr
}

/// The same request to the node directly and through the proxy.
struct Both {
    client: reqwest::Client,
    direct: String,
    proxied: String,
}

impl Both {
    async fn get(&self, path: &str, accept: &str) -> [(StatusCode, Option<String>, Bytes); 2] {
        let mut answers = Vec::new();
        for base in [&self.direct, &self.proxied] {
            let response = self
                .client
                .get(format!("{base}{path}"))
                .header("accept", accept)
                .send()
                .await
                .unwrap();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|value| value.to_str().unwrap().to_owned());
            answers.push((
                response.status(),
                content_type,
                response.bytes().await.unwrap(),
            ));
        }
        answers.try_into().unwrap()
    }

    /// A JSON `GET` through the proxy.
    async fn proxied_json(&self, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.proxied))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.json().await.unwrap()
    }
}

fn u64_le(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_in_front_of_lodestar() {
    let Some(chain) = DevChain::start(DevChainOptions::default()).await else {
        return;
    };
    let proxy = start_proxy(&chain).await;
    let both = Both {
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        direct: chain.rest_url.clone(),
        proxied: format!("http://{proxy}"),
    };

    // An ordinary JSON call answers the same both ways.
    let [direct, proxied] = both.get("/eth/v1/node/version", "application/json").await;
    assert_eq!(direct, proxied);
    assert_eq!(proxied.0, StatusCode::OK);
    let version: Value = serde_json::from_slice(&proxied.2).unwrap();
    let version = version["data"]["version"].as_str().unwrap();
    assert!(version.starts_with("Lodestar/v1.5.1"), "{version}");

    ssz_states_pass_byte_exact(&chain, &both).await;
    head_events_stream_through(&chain, &both).await;
}

/// SSZ states: a fixed state (genesis, and the one at the head's slot) is the
/// same bytes both ways; the moving `head` decodes to this chain's state.
async fn ssz_states_pass_byte_exact(chain: &DevChain, both: &Both) {
    let octets = "application/octet-stream";
    let header = both.proxied_json("/eth/v1/beacon/headers/head").await;
    let head_slot: u64 = header["data"]["header"]["message"]["slot"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for (id, slot) in [
        ("genesis".to_owned(), 0),
        (head_slot.to_string(), head_slot),
    ] {
        let [direct, proxied] = both
            .get(&format!("/eth/v2/debug/beacon/states/{id}"), octets)
            .await;
        assert_eq!(
            proxied.0,
            StatusCode::OK,
            "state {id}: {}",
            chain.log_tail()
        );
        assert_eq!(proxied.1.as_deref(), Some(octets), "state {id}");
        assert!(!proxied.2.is_empty(), "state {id}");
        assert!(direct == proxied, "state {id} differs through the proxy");
        assert_eq!(u64_le(&proxied.2[SLOT]), slot, "state {id}");
    }

    let [_, head] = both.get("/eth/v2/debug/beacon/states/head", octets).await;
    assert_eq!(head.0, StatusCode::OK);
    assert_eq!(head.1.as_deref(), Some(octets));
    let state = &head.2;
    assert_eq!(u64_le(&state[GENESIS_TIME]), chain.genesis.genesis_time);
    assert_eq!(
        format!("0x{}", hex::encode(&state[GENESIS_VALIDATORS_ROOT])),
        chain.genesis.genesis_validators_root
    );
    assert!(u64_le(&state[SLOT]) >= head_slot);
}

/// At least one `head` event arrives through the proxy, as the node sends it.
async fn head_events_stream_through(chain: &DevChain, both: &Both) {
    let response = both
        .client
        .get(format!("{}/eth/v1/events?topics=head", both.proxied))
        .header("accept", "text/event-stream")
        .send();
    let event = tokio::time::timeout(EVENT_WAIT, async {
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.bytes_stream();
        let mut received = Vec::new();
        loop {
            if let Some(end) = received.windows(2).position(|w| w == b"\n\n") {
                return String::from_utf8(received[..end].to_vec()).unwrap();
            }
            let chunk = body.next().await.expect("event stream ended").unwrap();
            received.extend_from_slice(&chunk);
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no head event within {EVENT_WAIT:?}; log:\n{}",
            chain.log_tail()
        )
    });

    let mut lines = event.lines();
    assert_eq!(lines.next(), Some("event: head"), "{event}");
    let data = lines.next().and_then(|line| line.strip_prefix("data: "));
    let data: Value = serde_json::from_str(data.unwrap_or_default()).unwrap();
    let slot: u64 = data["slot"].as_str().unwrap().parse().unwrap();
    // A new head of this chain: past genesis, not ahead of the clock.
    assert!(slot > 0 && slot <= chain.current_slot(), "{event}");
    assert!(data["block"].as_str().unwrap().starts_with("0x"), "{event}");
}
