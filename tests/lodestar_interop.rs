//! The sidecar in front of a real beacon node: Lodestar 1.5.1 running a dev
//! chain on loopback (see tests/lodestar/mod.rs; skipped with a message when
//! Lodestar is not installed and `CI` is not set). The sidecar loads the
//! node's head state, moves to the next epoch's state when the head does,
//! proxies ordinary calls and the event stream unchanged, and answers
//! `is_aggregator` for the chain's interop validators as the spec does.

mod lodestar;

use std::time::Duration;

use bytes::Bytes;
use dv_aggregator::api::client::BeaconNodeClient;
use dv_aggregator::api::filters::Limits;
use dv_aggregator::api::types::{IsAggregatorRequestItem, SignatureBytes};
use dv_aggregator::beacon::sidecar::{Sidecar, SidecarConfig, SidecarSource};
use dv_aggregator::crypto::interop::interop_secret_key;
use dv_aggregator::spec::selection::is_aggregator;
use dv_aggregator::spec::signing::selection_proof_signing_root;
use dv_aggregator::spec::ChainSpec;
use futures_util::StreamExt;
use lodestar::{DevChain, DevChainOptions};
use reqwest::StatusCode;
use serde_json::Value;

/// Bound on waiting for a head event: a few 2-second slots.
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Byte ranges of the first, fixed-size fields of every fork's `BeaconState`
/// SSZ encoding: genesis_time (uint64), genesis_validators_root (Root), slot.
const GENESIS_TIME: std::ops::Range<usize> = 0..8;
const GENESIS_VALIDATORS_ROOT: std::ops::Range<usize> = 8..40;
const SLOT: std::ops::Range<usize> = 40..48;

/// The sidecar in front of the chain, configured from the node's own
/// `GET /eth/v1/config/spec`.
async fn start_sidecar(chain: &DevChain) -> Sidecar {
    let node = BeaconNodeClient::new(&chain.rest_url).unwrap();
    let config = serde_json::json!({ "data": node.config_spec().await.unwrap() });
    let spec = ChainSpec::from_config_spec_json(&config.to_string()).expect("Lodestar's config");
    assert_eq!(spec.seconds_per_slot, chain.options.seconds_per_slot);
    Sidecar::start(SidecarConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        source: SidecarSource::BeaconNode {
            url: chain.rest_url.clone(),
        },
        spec,
        limits: Limits::default(),
    })
    .await
    .unwrap()
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
    let sidecar = start_sidecar(&chain).await;
    let both = Both {
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        direct: chain.rest_url.clone(),
        proxied: format!("http://{}", sidecar.addr()),
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
    let epoch = loads_the_head_state(&chain, &sidecar).await;
    answers_is_aggregator_as_the_spec(&chain, &sidecar, epoch).await;
    follows_the_head_into_the_next_epoch(&chain, &sidecar, epoch).await;
}

/// Bound on waiting for the sidecar's state: two epochs of 8 two-second slots.
const STATE_WAIT: Duration = Duration::from_secs(40);

async fn wait_for_state(sidecar: &Sidecar, chain: &DevChain, after_epoch: Option<u64>) -> u64 {
    let deadline = tokio::time::Instant::now() + STATE_WAIT;
    loop {
        if let Ok(loaded) = sidecar.backend().loaded() {
            let epoch = loaded.state.get_current_epoch();
            if after_epoch.is_none_or(|after| epoch > after) {
                return epoch;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sidecar state not loaded (after epoch {after_epoch:?}) within {STATE_WAIT:?}; log:\n{}",
            chain.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The sidecar decodes the node's head state: this chain's genesis, 64 validators.
async fn loads_the_head_state(chain: &DevChain, sidecar: &Sidecar) -> u64 {
    let epoch = wait_for_state(sidecar, chain, None).await;
    let loaded = sidecar.backend().loaded().unwrap();
    assert_eq!(loaded.state.genesis_time(), chain.genesis.genesis_time);
    assert_eq!(
        format!("{:#x}", loaded.state.genesis_validators_root()),
        chain.genesis.genesis_validators_root
    );
    assert_eq!(
        loaded.state.validators().len() as u64,
        chain.options.genesis_validators
    );
    epoch
}

/// Every validator's duty of the state's current epoch, asked with its real
/// selection proof: the sidecar's answer equals the spec's decision on the
/// committee length that Lodestar itself reports in the duty.
async fn answers_is_aggregator_as_the_spec(chain: &DevChain, sidecar: &Sidecar, epoch: u64) {
    let client = BeaconNodeClient::new(&format!("http://{}", sidecar.addr())).unwrap();
    let indices: Vec<u64> = (0..chain.options.genesis_validators).collect();
    // Through the sidecar's proxy: Lodestar answers the duties.
    let duties = client.attester_duties(epoch, &indices).await.unwrap();
    assert_eq!(duties.data.len(), indices.len());
    let loaded = sidecar.backend().loaded().unwrap();
    let preset = loaded.state.preset().clone();
    let mut items = Vec::new();
    let mut expected = Vec::new();
    for duty in &duties.data {
        let root = selection_proof_signing_root(
            duty.slot,
            &loaded.state.fork(),
            loaded.state.genesis_validators_root(),
            &preset,
        );
        let proof = interop_secret_key(duty.validator_index).sign(root.as_slice());
        expected.push(is_aggregator(
            duty.committee_length,
            &proof.to_bytes(),
            &preset,
        ));
        items.push(IsAggregatorRequestItem {
            validator_index: duty.validator_index,
            committee_index: duty.committee_index,
            committees_at_slot: duty.committees_at_slot,
            slot: duty.slot,
            slot_signature: SignatureBytes(proof.to_bytes()),
        });
    }
    let answers = client.is_aggregator(&items).await.unwrap();
    assert_eq!(answers, expected);
    // A proof by the wrong key is refused, naming the item.
    let mut forged = items[..2].to_vec();
    forged[1].slot_signature = forged[0].slot_signature;
    let error = client.is_aggregator(&forged).await.unwrap_err();
    assert_eq!(error.status(), Some(400), "{error}");
    assert_eq!(error.failures().len(), 1, "{error}");
    assert_eq!(error.failures()[0].index, 1, "{error}");
}

/// When the head enters the next epoch, the sidecar fetches the new state.
async fn follows_the_head_into_the_next_epoch(chain: &DevChain, sidecar: &Sidecar, epoch: u64) {
    let next = wait_for_state(sidecar, chain, Some(epoch)).await;
    assert!(next > epoch);
    let loaded = sidecar.backend().loaded().unwrap();
    assert!(loaded.committees.for_epoch(next + 1).is_ok());
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
