//! The sidecar over real HTTP on 127.0.0.1:0, driven through the typed client:
//! in `--state` mode it answers every oracle attestation case from the real
//! decoded state; in `--beacon-node` mode it answers 503 while its upstream is
//! down, recovers when it comes up, proxies other requests, and moves to the
//! next epoch's state when the upstream's head does.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{fixture, hex_bytes, oracle_state_bytes, oracle_vectors, u64_of};
use dv_aggregator::api::client::BeaconNodeClient;
use dv_aggregator::api::filters::Limits;
use dv_aggregator::api::types::{IsAggregatorRequestItem, SignatureBytes};
use dv_aggregator::beacon::sidecar::{Sidecar, SidecarConfig, SidecarSource};
use dv_aggregator::spec::{ChainSpec, ForkName};
use dv_aggregator::state::{ForkState, Minimal};
use serde_json::Value;
use ssz::Encode;
use warp::Filter;

fn spec_of(vectors: &Value) -> ChainSpec {
    ChainSpec::from_preset_name(vectors["preset"].as_str().unwrap()).unwrap()
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn state_sidecar(folder: &str) -> (Sidecar, BeaconNodeClient, Value) {
    let vectors = oracle_vectors(folder);
    let config = SidecarConfig {
        listen: loopback(),
        source: SidecarSource::StateFile {
            path: fixture(&format!("oracle/{folder}/state.ssz")),
            fork: None,
        },
        spec: spec_of(&vectors),
        limits: Limits::default(),
    };
    let sidecar = Sidecar::start(config).await.expect("sidecar starts");
    let client = BeaconNodeClient::new(&format!("http://{}", sidecar.addr())).unwrap();
    (sidecar, client, vectors)
}

fn item_of(case: &Value) -> IsAggregatorRequestItem {
    IsAggregatorRequestItem {
        validator_index: u64_of(&case["validator_index"]),
        committee_index: u64_of(&case["committee_index"]),
        committees_at_slot: u64_of(&case["committees_at_slot"]),
        slot: u64_of(&case["slot"]),
        slot_signature: SignatureBytes(hex_bytes(&case["selection_proof"])),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_mode_answers_every_attestation_case_as_the_spec() {
    for folder in [
        "fulu-mainnet-1024",
        "deneb-minimal-2048",
        "phase0-minimal-2048",
    ] {
        let (_sidecar, client, vectors) = state_sidecar(folder).await;
        let cases = vectors["attestation_cases"].as_array().unwrap();
        // Reversed, so that request order differs from slot order.
        let items: Vec<_> = cases.iter().rev().map(item_of).collect();
        let expected: Vec<bool> = cases
            .iter()
            .rev()
            .map(|c| c["is_aggregator"].as_bool().unwrap())
            .collect();
        assert!(
            expected.contains(&true) && expected.contains(&false),
            "{folder}"
        );
        let answers = client.is_aggregator(&items).await.expect("answers");
        assert_eq!(answers, expected, "{folder}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_mode_names_bad_items_and_keeps_serving() {
    let (_sidecar, client, vectors) = state_sidecar("fulu-mainnet-1024").await;
    let cases = vectors["attestation_cases"].as_array().unwrap();
    let good = item_of(&cases[0]);
    let mut not_member = good.clone();
    not_member.validator_index = u64_of(&cases[cases.len() - 1]["validator_index"]);
    let mut unknown = good.clone();
    unknown.validator_index = 1_000_000;
    let mut far_slot = good.clone();
    far_slot.slot += 10 * 32;
    let mut wrong_count = good.clone();
    wrong_count.committees_at_slot = 2;
    let mut other_signature = good.clone();
    other_signature.slot_signature = item_of(&cases[1]).slot_signature;

    let request = vec![
        good.clone(),
        not_member,
        unknown,
        far_slot,
        wrong_count,
        other_signature,
    ];
    let error = client.is_aggregator(&request).await.unwrap_err();
    assert_eq!(error.status(), Some(400), "{error}");
    let failures: Vec<usize> = error.failures().iter().map(|f| f.index).collect();
    assert_eq!(failures, vec![1, 2, 3, 4, 5], "{error}");
    let messages: Vec<&str> = error
        .failures()
        .iter()
        .map(|f| f.message.as_str())
        .collect();
    assert!(messages[1].contains("1000000"), "{messages:?}");
    assert!(
        messages[2].contains(&format!("slot {}", request[3].slot)),
        "{messages:?}"
    );

    let answers = client.is_aggregator(&[good]).await.expect("still serving");
    assert_eq!(answers, vec![cases[0]["is_aggregator"].as_bool().unwrap()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_selection_routes_are_501_on_a_beacon_node() {
    let (_sidecar, client, _) = state_sidecar("deneb-minimal-2048").await;
    let error = client.beacon_committee_selections(&[]).await.unwrap_err();
    assert_eq!(error.status(), Some(501), "{error}");
    let error = client.sync_committee_selections(&[]).await.unwrap_err();
    assert_eq!(error.status(), Some(501), "{error}");
}

/// A free loopback port, released for the caller to bind later.
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_503_then_recovers_and_proxies() {
    let folder = "deneb-minimal-2048";
    let vectors = oracle_vectors(folder);
    let upstream_addr = free_port();
    let upstream_url = format!("http://{upstream_addr}");
    let mut spec = spec_of(&vectors);
    // Fast retries: the follower backs off from a quarter slot.
    spec.seconds_per_slot = 1;
    let sidecar = Sidecar::start(SidecarConfig {
        listen: loopback(),
        source: SidecarSource::BeaconNode {
            url: upstream_url.clone(),
        },
        spec: spec.clone(),
        limits: Limits::default(),
    })
    .await
    .unwrap();
    let client = BeaconNodeClient::new(&format!("http://{}", sidecar.addr())).unwrap();
    let case = &vectors["attestation_cases"][0];

    let error = client.is_aggregator(&[item_of(case)]).await.unwrap_err();
    assert_eq!(error.status(), Some(503), "{error}");
    assert!(error.to_string().contains(&upstream_url), "{error}");
    let error = client.node_version().await.unwrap_err();
    assert_eq!(error.status(), Some(503), "{error}");

    // The upstream comes up: a state-mode sidecar serving the same state.
    let upstream = Sidecar::start(SidecarConfig {
        listen: upstream_addr,
        source: SidecarSource::StateFile {
            path: fixture(&format!("oracle/{folder}/state.ssz")),
            fork: None,
        },
        spec,
        limits: Limits::default(),
    })
    .await
    .unwrap();
    let answers = eventually("recovery", Duration::from_secs(20), || {
        let client = client.clone();
        let item = item_of(case);
        async move { client.is_aggregator(&[item]).await.ok() }
    })
    .await;
    assert_eq!(answers, vec![case["is_aggregator"].as_bool().unwrap()]);
    // Ordinary requests pass through to the upstream.
    let genesis = client.genesis().await.unwrap();
    assert_eq!(
        genesis.genesis_validators_root.0,
        hex_bytes::<32>(&vectors["state"]["genesis_validators_root"])
    );
    drop(upstream);
}

/// A TEST DOUBLE of an upstream beacon node: serves a head state as SSZ and a
/// head event stream, and can advance to a second state one epoch later.
struct MovingUpstream {
    states: [Vec<u8>; 2],
    head: Mutex<usize>,
    fetches: Mutex<usize>,
}

fn moving_upstream_routes(
    upstream: Arc<MovingUpstream>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    use warp::Reply;
    let states = {
        let upstream = Arc::clone(&upstream);
        warp::path!("eth" / "v2" / "debug" / "beacon" / "states" / "head").map(move || {
            *upstream.fetches.lock().unwrap() += 1;
            let head = *upstream.head.lock().unwrap();
            warp::http::Response::builder()
                .header("content-type", "application/octet-stream")
                .body(upstream.states[head].clone().into())
                .unwrap()
        })
    };
    let events = warp::path!("eth" / "v1" / "events").map(move || {
        let upstream = Arc::clone(&upstream);
        // One head event a second, with the slot of the current head state.
        let stream = futures_util::stream::unfold(upstream, |upstream| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let slot = if *upstream.head.lock().unwrap() == 0 {
                43
            } else {
                51
            };
            let event = warp::sse::Event::default()
                .event("head")
                .data(format!("{{\"slot\":\"{slot}\",\"block\":\"0x00\"}}"));
            Some((Ok::<_, std::convert::Infallible>(event), upstream))
        });
        warp::sse::reply(stream).into_response()
    });
    states.or(events).unify()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_upstream_head_into_the_next_epoch() {
    let folder = "altair-minimal-2048";
    let vectors = oracle_vectors(folder);
    let first = oracle_state_bytes(folder);
    // The same state one epoch later (slot 43 -> 51): the next epoch's shuffling.
    let ForkState::Altair(mut later) =
        ForkState::<Minimal>::from_ssz_bytes(ForkName::Altair, &first).unwrap()
    else {
        panic!("altair folder")
    };
    later.slot += 8;
    let second = ForkState::Altair(later).as_ssz_bytes();
    let upstream = Arc::new(MovingUpstream {
        states: [first, second],
        head: Mutex::new(0),
        fetches: Mutex::new(0),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(
        warp::serve(moving_upstream_routes(Arc::clone(&upstream)))
            .incoming(listener)
            .run(),
    );
    let mut spec = spec_of(&vectors);
    spec.seconds_per_slot = 1;
    let sidecar = Sidecar::start(SidecarConfig {
        listen: loopback(),
        source: SidecarSource::BeaconNode { url: upstream_url },
        spec,
        limits: Limits::default(),
    })
    .await
    .unwrap();
    let backend = Arc::clone(sidecar.backend());
    let slot_of = |backend: &Arc<dv_aggregator::beacon::backend::StateBackend>| {
        backend.loaded().ok().map(|loaded| loaded.state.slot())
    };
    eventually("the first head state", Duration::from_secs(10), || {
        let slot = slot_of(&backend);
        async move { (slot == Some(43)).then_some(()) }
    })
    .await;
    // Head events of the same epoch do not refetch.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        *upstream.fetches.lock().unwrap(),
        1,
        "refetched within the epoch"
    );

    *upstream.head.lock().unwrap() = 1;
    eventually("the next epoch's state", Duration::from_secs(10), || {
        let slot = slot_of(&backend);
        async move { (slot == Some(51)).then_some(()) }
    })
    .await;
    let loaded = backend.loaded().unwrap();
    assert_eq!(loaded.state.get_current_epoch(), 6);
    assert!(loaded.committees.for_epoch(7).is_ok());
    server.abort();
}
