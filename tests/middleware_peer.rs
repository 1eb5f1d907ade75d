//! The middleware peer protocol over real loopback servers: a 4-operator
//! cluster made by `cluster create`, each operator serving `POST
//! /dv/v1/partials` into a recording test double of the partial store.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::CapturedLogs;
use dv_aggregator::cluster::{
    create_cluster, load_node_key, ClusterLock, CreateConfig, NodeIdentity, ValidatorKeys,
};
use dv_aggregator::crypto::keystore::Kdf;
use dv_aggregator::crypto::SecretKey;
use dv_aggregator::middleware::peer::{
    peer_signing_message, PartialsMessage, MAX_BODY_BYTES, OPERATOR_HEADER, SIGNATURE_HEADER,
};
use dv_aggregator::middleware::{
    peer_routes, DutyKind, ItemOutcome, PartialItem, PartialSink, PeerClient, PeerError,
    RetryPolicy,
};
use dv_aggregator::spec::Root;
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::time::Instant;

const OPERATORS: u64 = 4;

/// TEST DOUBLE of the middleware's partial store: records every delivery
/// with its sender and answers `Duplicate` for an item it already holds.
#[derive(Default)]
struct RecordingSink {
    received: Mutex<Vec<(u64, PartialItem)>>,
}

impl RecordingSink {
    fn received(&self) -> Vec<(u64, PartialItem)> {
        self.received.lock().unwrap().clone()
    }
}

impl PartialSink for RecordingSink {
    fn accept(&self, from_operator: u64, items: Vec<PartialItem>) -> Vec<ItemOutcome> {
        let mut received = self.received.lock().unwrap();
        items
            .into_iter()
            .map(|item| {
                let entry = (from_operator, item);
                if received.contains(&entry) {
                    ItemOutcome::Duplicate
                } else {
                    received.push(entry);
                    ItemOutcome::Accepted
                }
            })
            .collect()
    }
}

/// A cluster lock whose peer addresses are loopback listeners, with every
/// operator's node key.
struct Cluster {
    lock: ClusterLock,
    node_keys: Vec<SecretKey>,
    listeners: Vec<Option<TcpListener>>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn new() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let created = create_cluster(&CreateConfig {
            name: "peer-test".into(),
            operators: OPERATORS,
            threshold: Some(3),
            validator_keys: ValidatorKeys::Generate(1),
            out_dir: dir.path().join("cluster"),
            peer_host: "127.0.0.1".into(),
            peer_base_port: 9100,
            network: "minimal".into(),
            fork_version: [0, 0, 0, 1],
            kdf: Kdf::INSECURE_FAST,
        })
        .unwrap();
        let node_keys = created
            .operator_dirs
            .iter()
            .map(|dir| load_node_key(&dir.join("node-key")).unwrap())
            .collect();
        let mut lock = created.lock;
        let mut listeners = Vec::new();
        for operator in &mut lock.operators {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            operator.peer_address = Some(listener.local_addr().unwrap().to_string());
            listeners.push(Some(listener));
        }
        Cluster {
            lock,
            node_keys,
            listeners,
            _dir: dir,
        }
    }

    fn node_key(&self, operator: u64) -> SecretKey {
        self.node_keys[(operator - 1) as usize].clone()
    }

    fn addr(&self, operator: u64) -> SocketAddr {
        let address = self.lock.operator(operator).unwrap().peer_address.clone();
        address.unwrap().parse().unwrap()
    }

    /// Serves operator `operator`'s endpoint on its listener, over `lock`.
    fn serve_with(&mut self, operator: u64, lock: ClusterLock) -> Arc<RecordingSink> {
        let sink = Arc::new(RecordingSink::default());
        let listener = self.listeners[(operator - 1) as usize].take().unwrap();
        let routes = peer_routes(Arc::new(lock), operator, sink.clone());
        tokio::spawn(warp::serve(routes).incoming(listener).run());
        sink
    }

    fn serve(&mut self, operator: u64) -> Arc<RecordingSink> {
        self.serve_with(operator, self.lock.clone())
    }

    /// Closes operator `operator`'s listener: its port refuses connections.
    fn take_down(&mut self, operator: u64) {
        self.listeners[(operator - 1) as usize] = None;
    }

    fn client(&self, operator: u64, policy: RetryPolicy) -> PeerClient {
        PeerClient::new(&self.lock, operator, self.node_key(operator), policy).unwrap()
    }

    /// Partials of the cluster's validator made by share `share_index`: an
    /// attestation selection and two sync selections of the same slot (a
    /// validator can sit in two subcommittees).
    fn partials(&self, share_index: u64, slot: u64) -> Vec<PartialItem> {
        let signer = SecretKey::random();
        let validator_pubkey = self.lock.validators[0].pubkey;
        [
            DutyKind::AttestationSelection,
            DutyKind::SyncSelection {
                subcommittee_index: 0,
            },
            DutyKind::SyncSelection {
                subcommittee_index: 3,
            },
        ]
        .into_iter()
        .enumerate()
        .map(|(n, duty)| {
            let signing_root = Root::repeat_byte(n as u8 + 1);
            PartialItem {
                duty,
                slot,
                validator_pubkey,
                share_index,
                signing_root,
                signature: signer.sign(signing_root.as_slice()),
            }
        })
        .collect()
    }
}

fn body_of(from_operator: u64, partials: &[PartialItem]) -> Vec<u8> {
    serde_json::to_vec(&PartialsMessage {
        from_operator,
        partials,
    })
    .unwrap()
}

fn signature_header(key: &SecretKey, to_operator: u64, body: &[u8]) -> String {
    key.sign(&peer_signing_message(to_operator, body))
        .to_string()
}

/// A raw POST to `addr`'s peer endpoint: the status and the JSON reply.
async fn post(
    addr: SocketAddr,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}/dv/v1/partials"))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// A request the endpoint must refuse: what it is, its operator and
/// signature headers, its body, the status and what the error message names.
type Refusal<'a> = (
    &'a str,
    Option<&'a str>,
    Option<&'a String>,
    &'a Vec<u8>,
    u16,
    &'a str,
);

/// `max_attempts` attempts, backoff from `initial_ms` doubling to `max_ms`,
/// all within `total_ms`; one attempt gets at most a second.
fn policy(max_attempts: u32, initial_ms: u64, max_ms: u64, total_ms: u64) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(initial_ms),
        max_backoff: Duration::from_millis(max_ms),
        request_timeout: Duration::from_secs(1),
        total_timeout: Duration::from_millis(total_ms),
    }
}

fn fast_policy() -> RetryPolicy {
    policy(4, 50, 200, 2_000)
}

#[tokio::test]
async fn signed_partials_are_recorded_with_their_sender_in_order() {
    let mut cluster = Cluster::new().await;
    let sinks: Vec<_> = (2..=OPERATORS).map(|i| cluster.serve(i)).collect();
    let client = cluster.client(1, fast_policy());
    let partials = cluster.partials(1, 17);

    let outcomes = client.send(2, &partials).await.unwrap();
    assert_eq!(outcomes, vec![ItemOutcome::Accepted; 3]);
    let expected: Vec<_> = partials.iter().map(|p| (1, p.clone())).collect();
    assert_eq!(sinks[0].received(), expected);
    assert!(sinks[1].received().is_empty() && sinks[2].received().is_empty());

    // Sending again changes nothing and says so, item by item.
    let again = client.send(2, &partials).await.unwrap();
    assert_eq!(again, vec![ItemOutcome::Duplicate; 3]);
    assert_eq!(sinks[0].received(), expected);
}

#[tokio::test]
async fn a_malformed_partial_is_rejected_alone_and_in_place() {
    let mut cluster = Cluster::new().await;
    let sink = cluster.serve(2);
    let partials = cluster.partials(3, 40);
    let mut message: serde_json::Value = serde_json::from_slice(&body_of(3, &partials)).unwrap();
    // A sync selection must name its subcommittee.
    message["partials"][1]
        .as_object_mut()
        .unwrap()
        .remove("subcommittee_index");
    let body = serde_json::to_vec(&message).unwrap();
    let headers = [
        (OPERATOR_HEADER, "3".to_string()),
        (
            SIGNATURE_HEADER,
            signature_header(&cluster.node_key(3), 2, &body),
        ),
    ];

    let (status, reply) = post(cluster.addr(2), &headers, body).await;
    assert_eq!(status, 200, "{reply}");
    let statuses: Vec<&str> = reply["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|outcome| outcome["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["accepted", "rejected", "accepted"]);
    let message = reply["data"][1]["message"].as_str().unwrap();
    assert!(message.contains("subcommittee_index"), "{message}");
    let kept = [(3, partials[0].clone()), (3, partials[2].clone())];
    assert_eq!(sink.received(), kept);
}

#[tokio::test]
async fn requests_without_a_valid_node_key_signature_are_refused() {
    let mut cluster = Cluster::new().await;
    let sink = cluster.serve(2);
    let addr = cluster.addr(2);
    let body = body_of(1, &cluster.partials(1, 5));
    let own = signature_header(&cluster.node_key(1), 2, &body);
    let by_3 = signature_header(&cluster.node_key(3), 2, &body);
    let for_3 = signature_header(&cluster.node_key(1), 3, &body);
    let mut tampered = body.clone();
    let at = tampered.iter().position(|&b| b == b'5').unwrap();
    tampered[at] = b'6';
    let cases: [Refusal; 8] = [
        (
            "another operator's key",
            Some("1"),
            Some(&by_3),
            &body,
            401,
            "operator 1",
        ),
        (
            "signed for another peer",
            Some("1"),
            Some(&for_3),
            &body,
            401,
            "operator 1",
        ),
        (
            "tampered body",
            Some("1"),
            Some(&own),
            &tampered,
            401,
            "operator 1",
        ),
        ("no signature", Some("1"), None, &body, 401, "operator 1"),
        ("no operator", None, Some(&own), &body, 401, OPERATOR_HEADER),
        (
            "unknown operator",
            Some("9"),
            Some(&own),
            &body,
            403,
            "operator 9",
        ),
        (
            "this node's own index",
            Some("2"),
            Some(&own),
            &body,
            403,
            "operator 2",
        ),
        (
            "another sender's body",
            Some("3"),
            Some(&by_3),
            &body,
            403,
            "operator 3",
        ),
    ];
    for (case, operator, signature, body, status, named) in cases {
        let mut headers = Vec::new();
        headers.extend(operator.map(|index| (OPERATOR_HEADER, index.to_string())));
        headers.extend(signature.map(|sig| (SIGNATURE_HEADER, sig.clone())));
        let (got, reply) = post(addr, &headers, body.clone()).await;
        assert_eq!(got, status, "{case}: {reply}");
        assert_eq!(reply["code"], status, "{case}: {reply}");
        let message = reply["message"].as_str().unwrap();
        assert!(message.contains(named), "{case}: {message}");
    }
    // The control: the same body, rightly signed, is taken.
    let signed = [(OPERATOR_HEADER, "1".into()), (SIGNATURE_HEADER, own)];
    let (status, _) = post(addr, &signed, body).await;
    assert_eq!(status, 200);
    assert_eq!(sink.received().len(), 3);
    assert!(sink.received().iter().all(|(from, _)| *from == 1));
}

#[tokio::test]
async fn an_operator_known_only_by_enr_cannot_authenticate() {
    let mut cluster = Cluster::new().await;
    let mut charon_like = cluster.lock.clone();
    charon_like.operators[0].identity = NodeIdentity::Enr("enr:-test".into());
    let sink = cluster.serve_with(2, charon_like);
    let policy = policy(4, 2_000, 2_000, 5_000);
    let client = cluster.client(1, policy);

    let started = Instant::now();
    let error = client.send(2, &cluster.partials(1, 5)).await.unwrap_err();
    match &error {
        PeerError::Refused {
            operator,
            status,
            message,
            ..
        } => {
            assert_eq!((*operator, *status), (2, 403));
            assert!(
                message.contains("operator 1") && message.contains("ENR"),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A refusal is final: no retries.
    assert!(started.elapsed() < policy.initial_backoff, "{error}");
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_without_being_recorded() {
    let mut cluster = Cluster::new().await;
    let sink = cluster.serve(2);
    let url = format!("http://{}/dv/v1/partials", cluster.addr(2));
    let oversize = vec![b' '; MAX_BODY_BYTES as usize + 1];
    let http = reqwest::Client::new();

    let with_length = http.post(&url).body(oversize.clone()).send().await.unwrap();
    assert_eq!(with_length.status(), 413);
    let reply: serde_json::Value = with_length.json().await.unwrap();
    assert_eq!(reply["code"], 413);

    let chunks = oversize
        .chunks(1 << 20)
        .map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec()))
        .collect::<Vec<_>>();
    let chunked = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    // A peer's credentials, so that the refusal is about the size.
    let signature = signature_header(&cluster.node_key(1), 2, b"");
    let response = http
        .post(&url)
        .header(OPERATOR_HEADER, "1")
        .header(SIGNATURE_HEADER, signature)
        .body(chunked)
        .send()
        .await;
    // The server may answer before the upload ends and close the connection.
    if let Ok(response) = response {
        assert_eq!(response.status(), 413);
    }
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn a_down_peer_delays_no_other_and_is_named() {
    let mut cluster = Cluster::new().await;
    let sinks: Vec<_> = (2..=3).map(|i| cluster.serve(i)).collect();
    cluster.take_down(4);
    // Retries of the down peer take 250 + 500 + 500 ms.
    let policy = policy(4, 250, 500, 3_000);
    let client = cluster.client(1, policy);
    let partials = cluster.partials(1, 8);

    let started = Instant::now();
    let mut arrivals = Vec::new();
    let mut replies = client.broadcast_each(&partials);
    while let Some(reply) = replies.next().await {
        arrivals.push((reply, started.elapsed()));
    }
    let order: Vec<u64> = arrivals.iter().map(|(reply, _)| reply.operator).collect();
    assert_eq!(order.last(), Some(&4), "{order:?}");
    for (reply, at) in &arrivals[..2] {
        assert_eq!(reply.result, Ok(vec![ItemOutcome::Accepted; 3]));
        // The live peers answer before the first retry of the down one.
        assert!(
            *at < policy.initial_backoff * 4,
            "peer {} at {at:?}",
            reply.operator
        );
    }
    let (down, at) = &arrivals[2];
    assert!(
        *at <= policy.total_timeout + Duration::from_millis(500),
        "{at:?}"
    );
    let error = down.result.clone().unwrap_err();
    let address = cluster
        .lock
        .operator(4)
        .unwrap()
        .peer_address
        .clone()
        .unwrap();
    match &error {
        PeerError::Unreachable {
            operator,
            address: named,
            attempts,
            ..
        } => {
            assert_eq!((*operator, named), (4, &address));
            assert_eq!(*attempts, policy.max_attempts);
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    assert!(
        error.to_string().contains(&format!("peer 4 ({address})")),
        "{error}"
    );
    for sink in &sinks {
        assert_eq!(sink.received().len(), 3);
    }

    // The collecting form: one reply per peer, by index, within the bound.
    let started = Instant::now();
    let replies = client.broadcast(&partials).await;
    assert!(started.elapsed() <= policy.total_timeout + Duration::from_millis(500));
    let operators: Vec<u64> = replies.iter().map(|r| r.operator).collect();
    assert_eq!(operators, [2, 3, 4]);
    assert_eq!(replies[0].result, Ok(vec![ItemOutcome::Duplicate; 3]));
    assert!(replies[2].result.is_err());
}

#[tokio::test]
async fn a_peer_that_comes_up_during_the_backoff_gets_the_partials() {
    let mut cluster = Cluster::new().await;
    let addr = cluster.addr(2);
    cluster.take_down(2);
    let policy = policy(20, 50, 100, 5_000);
    let client = cluster.client(1, policy);
    let partials = cluster.partials(1, 9);
    let lock = cluster.lock.clone();
    let sink = Arc::new(RecordingSink::default());
    let server_sink = sink.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let listener = TcpListener::bind(addr).await.unwrap();
        let routes = peer_routes(Arc::new(lock), 2, server_sink);
        warp::serve(routes).incoming(listener).run().await;
    });

    let started = Instant::now();
    let outcomes = client.send(2, &partials).await.unwrap();
    assert_eq!(outcomes, vec![ItemOutcome::Accepted; 3]);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let expected: Vec<_> = partials.into_iter().map(|p| (1, p)).collect();
    assert_eq!(sink.received(), expected);
}

#[tokio::test]
async fn a_client_needs_its_own_node_key() {
    let cluster = Cluster::new().await;
    let wrong = PeerClient::new(&cluster.lock, 1, cluster.node_key(2), fast_policy());
    assert!(matches!(
        wrong,
        Err(PeerError::NodeKeyMismatch { operator: 1 })
    ));
    let stranger = PeerClient::new(&cluster.lock, 7, cluster.node_key(1), fast_policy());
    assert!(matches!(
        stranger,
        Err(PeerError::SelfNotInLock { operator: 7 })
    ));
    let client = cluster.client(1, fast_policy());
    assert_eq!(client.peer_indices().collect::<Vec<_>>(), [2, 3, 4]);
    let to_self = client.send(1, &[]).await;
    assert!(matches!(
        to_self,
        Err(PeerError::UnknownPeer { operator: 1, .. })
    ));
}

#[tokio::test]
async fn a_refusal_is_logged_at_warn_with_the_operator_and_no_secret() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The test runtime is single-threaded, so the server logs on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut cluster = Cluster::new().await;
    cluster.serve(2);
    let body = body_of(3, &cluster.partials(3, 5));
    let forged = signature_header(&cluster.node_key(1), 2, &body);
    let headers = [
        (OPERATOR_HEADER, "3".to_string()),
        (SIGNATURE_HEADER, forged.clone()),
    ];

    let (status, _) = post(cluster.addr(2), &headers, body).await;
    assert_eq!(status, 401);
    let text = logs.text();
    let refusal = text
        .lines()
        .find(|line| line.contains("refused a peer request"))
        .unwrap_or_else(|| panic!("no refusal logged: {text}"));
    assert!(
        refusal.contains("WARN") && refusal.contains("operator=Some(3)"),
        "{refusal}"
    );
    for key in &cluster.node_keys {
        let secret = hex::encode(key.to_bytes().as_ref());
        assert!(!text.contains(&secret), "a node key was logged");
    }
    assert!(!text.contains(&forged[2..]), "the signature was logged");
}

/// TEST DOUBLE of a broken store: answers one outcome fewer than it got.
struct ShortSink;

impl PartialSink for ShortSink {
    fn accept(&self, _from_operator: u64, items: Vec<PartialItem>) -> Vec<ItemOutcome> {
        vec![ItemOutcome::Accepted; items.len().saturating_sub(1)]
    }
}

#[tokio::test]
async fn a_store_that_breaks_its_contract_is_a_server_error_the_client_reports() {
    let mut cluster = Cluster::new().await;
    let listener = cluster.listeners[1].take().unwrap();
    let routes = peer_routes(Arc::new(cluster.lock.clone()), 2, Arc::new(ShortSink));
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    let policy = policy(2, 50, 50, 2_000);
    let client = cluster.client(1, policy);

    let error = client.send(2, &cluster.partials(1, 5)).await.unwrap_err();
    match &error {
        PeerError::Unreachable {
            operator,
            attempts,
            last,
            ..
        } => {
            assert_eq!((*operator, *attempts), (2, 2));
            assert!(
                last.contains("500") && last.contains("2 outcomes for 3"),
                "{last}"
            );
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn only_json_bodies_are_read() {
    let mut cluster = Cluster::new().await;
    let sink = cluster.serve(2);
    let response = reqwest::Client::new()
        .post(format!("http://{}/dv/v1/partials", cluster.addr(2)))
        .header("content-type", "application/octet-stream")
        .body(body_of(1, &cluster.partials(1, 5)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert!(sink.received().is_empty());
}
