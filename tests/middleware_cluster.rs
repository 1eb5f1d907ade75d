//! Middleware clusters in one process: 4 operators, threshold 3, each a real
//! middleware node on loopback with its own validator API and peer API, all
//! in front of the project's state-backed beacon node serving the oracle
//! state `tests/fixtures/oracle/deneb-minimal-2048`. The cluster's validators
//! are interop keys of that state split 3-of-4, so the group signature of
//! every duty is the oracle's own selection proof. The "validator clients"
//! here are the test itself, signing partials with each operator's shares
//! and calling its node through the typed client.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{
    free_port, hex_bytes, oracle_beacon_node, oracle_vectors, split_interop_keys, u64_of,
    CapturedLogs,
};
use dv_aggregator::api::client::BeaconNodeClient;
use dv_aggregator::api::filters::Limits;
use dv_aggregator::api::types::{
    BeaconCommitteeSelection, IsAggregatorRequestItem, SignatureBytes, SyncCommitteeSelection,
};
use dv_aggregator::beacon::sidecar::Sidecar;
use dv_aggregator::cluster::ClusterLock;
use dv_aggregator::crypto::interop::interop_secret_key;
use dv_aggregator::crypto::{SecretKey, Signature};
use dv_aggregator::middleware::peer::{
    peer_signing_message, PartialsMessage, OPERATOR_HEADER, SIGNATURE_HEADER,
};
use dv_aggregator::middleware::{
    DutyKey, DutyKind, Middleware, MiddlewareConfig, PartialItem, PeerClient, RetryPolicy,
    SlotSource,
};
use dv_aggregator::spec::signing::sync_selection_proof_signing_root;
use dv_aggregator::spec::{ChainSpec, Root, Slot};
use serde_json::Value;
use tokio::sync::watch;
use warp::Filter;

const FOLDER: &str = "deneb-minimal-2048";
const OPERATORS: u64 = 4;
const THRESHOLD: u64 = 3;
/// The oracle state's current epoch (slot 43 on the minimal preset).
const EPOCH: u64 = 5;

/// One oracle attestation case: a committee member and its group selection proof.
#[derive(Clone, Debug)]
struct Case {
    validator_index: u64,
    slot: Slot,
    committee_index: u64,
    committees_at_slot: u64,
    epoch: u64,
    signing_root: Root,
    selection_proof: [u8; 96],
    is_aggregator: bool,
}

impl Case {
    fn from_json(case: &Value) -> Self {
        Case {
            validator_index: u64_of(&case["validator_index"]),
            slot: u64_of(&case["slot"]),
            committee_index: u64_of(&case["committee_index"]),
            committees_at_slot: u64_of(&case["committees_at_slot"]),
            epoch: u64_of(&case["epoch"]),
            signing_root: Root::from(hex_bytes::<32>(&case["signing_root"])),
            selection_proof: hex_bytes::<96>(&case["selection_proof"]),
            is_aggregator: case["is_aggregator"].as_bool().unwrap(),
        }
    }
}

/// Logs of the whole test binary, kept for the tests that check what was logged.
fn logs() -> &'static CapturedLogs {
    static LOGS: OnceLock<CapturedLogs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = CapturedLogs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
}

/// Retries that give up within a few seconds, so a node that is down
/// (connection refused at once) costs little, while a loaded machine (every
/// test of this file runs a cluster at once) still gets its answers.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        request_timeout: Duration::from_secs(3),
        total_timeout: Duration::from_secs(4),
    }
}

/// Four operators' nodes in front of one beacon node, and the key shares
/// their validator clients sign with.
struct Cluster {
    vectors: Value,
    _beacon: Sidecar,
    lock: ClusterLock,
    node_keys: Vec<SecretKey>,
    http_ports: Vec<u16>,
    /// Key shares by validator index, then share index.
    shares: BTreeMap<u64, BTreeMap<u64, SecretKey>>,
    nodes: BTreeMap<u64, Middleware>,
    slot: watch::Sender<Slot>,
    timeout: Duration,
    beacon_url: String,
}

impl Cluster {
    /// The cluster of every validator in the oracle's cases, no node started.
    async fn new(timeout: Duration) -> Cluster {
        logs();
        let vectors = oracle_vectors(FOLDER);
        let beacon = oracle_beacon_node(FOLDER).await;
        let beacon_url = format!("http://{}", beacon.addr());
        Self::with_beacon(vectors, beacon, beacon_url, timeout)
    }

    fn with_beacon(
        vectors: Value,
        beacon: Sidecar,
        beacon_url: String,
        timeout: Duration,
    ) -> Cluster {
        let mut indices: Vec<u64> = vectors["attestation_cases"]
            .as_array()
            .unwrap()
            .iter()
            .chain(vectors["sync_cases"].as_array().unwrap())
            .map(|case| u64_of(&case["validator_index"]))
            .collect();
        indices.sort_unstable();
        indices.dedup();
        let (split, shares) = split_interop_keys(&indices, THRESHOLD, OPERATORS);
        let mut lock = split.lock;
        for operator in &mut lock.operators {
            operator.peer_address = Some(format!("127.0.0.1:{}", free_port()));
        }
        let node_keys = split.node_keys;
        let (slot, _) = watch::channel(vectors["state"]["slot"].as_u64().unwrap());
        Cluster {
            vectors,
            _beacon: beacon,
            lock,
            node_keys,
            http_ports: (0..OPERATORS).map(|_| free_port()).collect(),
            shares,
            nodes: BTreeMap::new(),
            slot,
            timeout,
            beacon_url,
        }
    }

    fn config(&self, operator: u64) -> MiddlewareConfig {
        let peer: SocketAddr = self
            .lock
            .operator(operator)
            .unwrap()
            .peer_address
            .clone()
            .unwrap()
            .parse()
            .unwrap();
        MiddlewareConfig {
            lock: self.lock.clone(),
            operator_index: operator,
            node_key: self.node_keys[(operator - 1) as usize].clone(),
            beacon_node: self.beacon_url.clone(),
            http_listen: SocketAddr::from((
                [127, 0, 0, 1],
                self.http_ports[(operator - 1) as usize],
            )),
            peer_listen: peer,
            selection_timeout: Some(self.timeout),
            peer_retry: fast_retry(),
            slot_source: SlotSource::Manual(self.slot.subscribe()),
            limits: Limits::default(),
        }
    }

    /// Starts `operator`'s node and waits until it knows the chain.
    async fn start(&mut self, operator: u64) {
        let node = Middleware::start(self.config(operator)).await.unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while node.chain_view().is_err() {
            assert!(
                Instant::now() < until,
                "node {operator} never learnt the chain"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.nodes.insert(operator, node);
    }

    async fn start_all(&mut self) {
        for operator in 1..=OPERATORS {
            self.start(operator).await;
        }
    }

    async fn stop(&mut self, operator: u64) {
        if let Some(node) = self.nodes.remove(&operator) {
            node.stop().await;
        }
    }

    fn node(&self, operator: u64) -> &Middleware {
        &self.nodes[&operator]
    }

    /// The typed client a validator client of `operator` uses.
    fn client(&self, operator: u64) -> BeaconNodeClient {
        BeaconNodeClient::new(&format!("http://{}", self.node(operator).http_addr())).unwrap()
    }

    fn share(&self, validator: u64, operator: u64) -> &SecretKey {
        &self.shares[&validator][&operator]
    }

    /// The attestation cases of `epoch`.
    fn cases(&self, epoch: u64) -> Vec<Case> {
        self.vectors["attestation_cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(Case::from_json)
            .filter(|case| case.epoch == epoch)
            .collect()
    }

    /// What `operator`'s VC sends for `cases`: partials of its share.
    fn selections(&self, operator: u64, cases: &[Case]) -> Vec<BeaconCommitteeSelection> {
        cases
            .iter()
            .map(|case| BeaconCommitteeSelection {
                validator_index: case.validator_index,
                slot: case.slot,
                selection_proof: partial(
                    self.share(case.validator_index, operator),
                    case.signing_root,
                ),
            })
            .collect()
    }

    fn is_aggregator_items(&self, operator: u64, cases: &[Case]) -> Vec<IsAggregatorRequestItem> {
        cases
            .iter()
            .map(|case| IsAggregatorRequestItem {
                validator_index: case.validator_index,
                committee_index: case.committee_index,
                committees_at_slot: case.committees_at_slot,
                slot: case.slot,
                slot_signature: partial(
                    self.share(case.validator_index, operator),
                    case.signing_root,
                ),
            })
            .collect()
    }

    /// `operator`'s VC asks for `cases`; returns the answer and how long it took.
    async fn ask(
        &self,
        operator: u64,
        cases: &[Case],
    ) -> (Vec<BeaconCommitteeSelection>, Duration) {
        let started = Instant::now();
        let answer = self
            .client(operator)
            .beacon_committee_selections(&self.selections(operator, cases))
            .await
            .unwrap();
        (answer, started.elapsed())
    }
}

fn partial(share: &SecretKey, root: Root) -> SignatureBytes {
    SignatureBytes(share.sign(root.as_slice()).to_bytes())
}

/// Every answer is the oracle's group selection proof of its case, and every
/// case is answered.
fn assert_group_proofs(answer: &[BeaconCommitteeSelection], cases: &[Case]) {
    let by_duty: BTreeMap<(u64, Slot), [u8; 96]> = answer
        .iter()
        .map(|s| ((s.validator_index, s.slot), s.selection_proof.0))
        .collect();
    assert_eq!(by_duty.len(), answer.len(), "an answer repeats a duty");
    for case in cases {
        let proof = by_duty
            .get(&(case.validator_index, case.slot))
            .unwrap_or_else(|| panic!("no answer for {case:?}"));
        assert_eq!(proof, &case.selection_proof, "proof of {case:?}");
    }
    assert_eq!(answer.len(), cases.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_validator_client_gets_the_group_proof_and_the_same_decision() {
    let mut cluster = Cluster::new(Duration::from_secs(5)).await;
    cluster.start_all().await;
    let current = cluster.cases(EPOCH);
    let next = cluster.cases(EPOCH + 1);
    assert!(current.len() > 20 && next.len() > 20);
    // Every VC asks at once, for the current and the next epoch in two requests.
    let asks = (1..=OPERATORS).flat_map(|operator| {
        let cluster = &cluster;
        [current.clone(), next.clone()]
            .into_iter()
            .map(move |cases| async move { (cases.clone(), cluster.ask(operator, &cases).await.0) })
    });
    for (cases, answer) in futures_util::future::join_all(asks).await {
        assert_group_proofs(&answer, &cases);
    }

    // The seed's endpoint: every VC gets the oracle's decisions, through the
    // beacon node's own is_aggregator on the combined proof.
    let decide = (1..=OPERATORS).map(|operator| {
        let cluster = &cluster;
        let cases = current.clone();
        async move {
            let items = cluster.is_aggregator_items(operator, &cases);
            cluster
                .client(operator)
                .is_aggregator(&items)
                .await
                .unwrap()
        }
    });
    let expected: Vec<bool> = current.iter().map(|case| case.is_aggregator).collect();
    assert!(expected.contains(&true) && expected.contains(&false));
    for decisions in futures_util::future::join_all(decide).await {
        assert_eq!(decisions, expected);
    }

    let metrics = cluster.node(1).metrics_text();
    let count = |line: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {line} in\n{metrics}"))
    };
    let asked = (current.len() * 2 + next.len()) as u64;
    assert_eq!(count("dv_partials_received_total{source=\"local\"}"), asked);
    assert_eq!(
        count("dv_selection_items_total{endpoint=\"beacon_committee_selections\",outcome=\"combined\"}"),
        (current.len() + next.len()) as u64
    );
    assert_eq!(count("dv_peer_up{operator=\"2\"}"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_in_two_subcommittees_gets_two_sync_proofs() {
    let mut cluster = Cluster::new(Duration::from_secs(5)).await;
    cluster.start_all().await;
    let case = &cluster.vectors["sync_cases"][0];
    let validator = u64_of(&case["validator_index"]);
    let slot = u64_of(&case["slot"]);
    let state = &cluster.vectors["state"];
    let fork = dv_aggregator::spec::Fork {
        previous_version: hex_bytes::<4>(&state["fork"]["previous_version"]),
        current_version: hex_bytes::<4>(&state["fork"]["current_version"]),
        epoch: u64_of(&state["fork"]["epoch"]),
    };
    let gvr = Root::from(hex_bytes::<32>(&state["genesis_validators_root"]));
    let preset = ChainSpec::minimal().preset;
    let root = |sub: u64| sync_selection_proof_signing_root(slot, sub, &fork, gvr, &preset);
    assert_eq!(
        root(u64_of(&case["subcommittee_index"])),
        Root::from(hex_bytes::<32>(&case["signing_root"]))
    );
    let asks = (1..=OPERATORS).map(|operator| {
        let cluster = &cluster;
        let items: Vec<SyncCommitteeSelection> = [0, 2]
            .into_iter()
            .map(|sub| SyncCommitteeSelection {
                validator_index: validator,
                slot,
                subcommittee_index: sub,
                selection_proof: partial(cluster.share(validator, operator), root(sub)),
            })
            .collect();
        async move {
            cluster
                .client(operator)
                .sync_committee_selections(&items)
                .await
                .unwrap()
        }
    });
    let group = interop_secret_key(validator);
    for answer in futures_util::future::join_all(asks).await {
        let mut subcommittees: Vec<u64> = answer.iter().map(|s| s.subcommittee_index).collect();
        subcommittees.sort_unstable();
        assert_eq!(subcommittees, [0, 2]);
        for selection in answer {
            let expected = group.sign(root(selection.subcommittee_index).as_slice());
            assert_eq!(selection.selection_proof.0, expected.to_bytes());
            assert_eq!(
                (selection.validator_index, selection.slot),
                (validator, slot)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_node_down_every_item_is_answered() {
    let mut cluster = Cluster::new(Duration::from_secs(5)).await;
    for operator in 1..=3 {
        cluster.start(operator).await;
    }
    let cases = cluster.cases(EPOCH);
    let asks = (1..=3).map(|operator| {
        let cluster = &cluster;
        let cases = cases.clone();
        async move { cluster.ask(operator, &cases).await.0 }
    });
    for answer in futures_util::future::join_all(asks).await {
        assert_group_proofs(&answer, &cases);
    }
    // The failed sends to node 4 show in the metrics.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics = cluster.node(1).metrics_text();
    assert!(
        metrics.contains("dv_peer_up{operator=\"4\"} 0"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_sending_invalid_partials_is_named_and_the_honest_ones_answer() {
    let mut cluster = Cluster::new(Duration::from_secs(5)).await;
    for operator in 1..=3 {
        cluster.start(operator).await;
    }
    let cases = cluster.cases(EPOCH);
    // Operator 4 is faulty: it sends, with its real node key, partials that
    // sign the right root with the wrong key, and partials over a wrong root.
    let faulty =
        PeerClient::new(&cluster.lock, 4, cluster.node_keys[3].clone(), fast_retry()).unwrap();
    let stranger = SecretKey::random();
    let bad: Vec<PartialItem> = cases
        .iter()
        .enumerate()
        .map(|(n, case)| {
            let share = cluster.share(case.validator_index, 4);
            let (root, signer) = if n % 2 == 0 {
                (case.signing_root, &stranger)
            } else {
                (Root::repeat_byte(0x5a), share)
            };
            PartialItem {
                duty: DutyKind::AttestationSelection,
                slot: case.slot,
                validator_pubkey: interop_secret_key(case.validator_index).public_key(),
                share_index: 4,
                signing_root: root,
                signature: signer.sign(root.as_slice()),
            }
        })
        .collect();
    // And one of a validator outside the lock.
    let mut bad = bad;
    let stranger_key = SecretKey::random();
    bad.push(PartialItem {
        validator_pubkey: stranger_key.public_key(),
        signature: stranger_key.sign(cases[0].signing_root.as_slice()),
        ..bad[0].clone()
    });
    for reply in faulty.broadcast(&bad).await {
        let outcomes = reply.result.unwrap();
        assert!(outcomes
            .iter()
            .all(|o| matches!(o, dv_aggregator::middleware::ItemOutcome::Rejected { .. })));
    }
    let asks = (1..=3).map(|operator| {
        let cluster = &cluster;
        let cases = cases.clone();
        async move { cluster.ask(operator, &cases).await.0 }
    });
    for answer in futures_util::future::join_all(asks).await {
        assert_group_proofs(&answer, &cases);
    }
    // A retried request counts its refusals again, so at least every bad one.
    let rejected = "dv_partials_rejected_total{source=\"peer\",operator=\"4\"} ";
    for operator in 1..=3 {
        let metrics = cluster.node(operator).metrics_text();
        let count: usize = metrics
            .lines()
            .find_map(|line| line.strip_prefix(rejected))
            .and_then(|count| count.parse().ok())
            .unwrap_or_else(|| panic!("no {rejected} in\n{metrics}"));
        assert!(count >= bad.len(), "{count} < {}", bad.len());
    }
    let text = logs().text();
    let named = text
        .lines()
        .filter(|line| line.contains("refused partials from a peer") && line.contains("operator=4"))
        .count();
    assert!(
        named >= 3,
        "the faulty operator is not named in the logs:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_timing_answers_every_request_by_its_deadline_without_head_of_line_blocking() {
    let timeout = Duration::from_millis(800);
    let mut cluster = Cluster::new(timeout).await;
    cluster.start_all().await;
    let cases = cluster.cases(EPOCH);
    // Operators 1 and 2 ask for the whole epoch at its start: with only two
    // partials per duty nothing combines, and both answers come by the deadline.
    let early = (1..=2).map(|operator| {
        let cluster = &cluster;
        let cases = cases.clone();
        async move { cluster.ask(operator, &cases).await }
    });
    for (answer, elapsed) in futures_util::future::join_all(early).await {
        assert!(answer.is_empty(), "{answer:?}");
        assert!(
            elapsed >= timeout && elapsed < timeout + Duration::from_secs(2),
            "{elapsed:?}"
        );
    }
    // Operators 3 and 4 ask slot by slot: each slot's request is answered in
    // full, without waiting for the later slots.
    let mut slots: Vec<Slot> = cases.iter().map(|c| c.slot).collect();
    slots.dedup();
    for slot in slots {
        let of_slot: Vec<Case> = cases.iter().filter(|c| c.slot == slot).cloned().collect();
        for operator in 3..=4 {
            let (answer, elapsed) = cluster.ask(operator, &of_slot).await;
            assert_group_proofs(&answer, &of_slot);
            assert!(elapsed < timeout, "slot {slot} waited {elapsed:?}");
        }
    }
    // Asked again, the epoch-wide requests now get every proof at once.
    for operator in 1..=2 {
        let (answer, elapsed) = cluster.ask(operator, &cases).await;
        assert_group_proofs(&answer, &cases);
        assert!(elapsed < timeout, "{elapsed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_and_answers() {
    let mut cluster = Cluster::new(Duration::from_secs(5)).await;
    cluster.start_all().await;
    let cases = cluster.cases(EPOCH);
    // Node 4 goes down; the others' VCs ask meanwhile.
    cluster.stop(4).await;
    let asks = (1..=3).map(|operator| {
        let cluster = &cluster;
        let cases = cases.clone();
        async move { cluster.ask(operator, &cases).await.0 }
    });
    for answer in futures_util::future::join_all(asks).await {
        assert_group_proofs(&answer, &cases);
    }
    // Node 4 restarts with an empty store and asks its peers to re-send:
    // their partials arrive before its VC asks, which is then answered at once.
    cluster.start(4).await;
    let store = Arc::clone(cluster.node(4).store());
    let until = Instant::now() + Duration::from_secs(10);
    for case in &cases {
        let key = DutyKey::attestation(
            interop_secret_key(case.validator_index).public_key(),
            case.slot,
        );
        while store.combined(&key).is_none() {
            assert!(
                Instant::now() < until,
                "node 4 did not catch up on {case:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(store.partials_of(&key).len(), 3);
    }
    let (answer, elapsed) = cluster.ask(4, &cases).await;
    assert_group_proofs(&answer, &cases);
    assert!(elapsed < cluster.timeout, "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_requests_without_a_valid_node_key_signature_are_refused() {
    let mut cluster = Cluster::new(Duration::from_secs(5)).await;
    cluster.start(1).await;
    let case = cluster.cases(EPOCH)[0].clone();
    let item = PartialItem {
        duty: DutyKind::AttestationSelection,
        slot: case.slot,
        validator_pubkey: interop_secret_key(case.validator_index).public_key(),
        share_index: 2,
        signing_root: case.signing_root,
        signature: cluster
            .share(case.validator_index, 2)
            .sign(case.signing_root.as_slice()),
    };
    let body = serde_json::to_vec(&PartialsMessage {
        from_operator: 2,
        partials: std::slice::from_ref(&item),
    })
    .unwrap();
    let peer = cluster.node(1).peer_addr();
    let http = reqwest::Client::new();
    let post = |path: &'static str, signer: Option<SecretKey>, body: Vec<u8>| {
        let http = http.clone();
        async move {
            let mut request = http
                .post(format!("http://{peer}{path}"))
                .header("content-type", "application/json")
                .header(OPERATOR_HEADER, "2");
            if let Some(signer) = signer {
                let signature = signer.sign(&peer_signing_message(1, &body));
                request = request.header(SIGNATURE_HEADER, signature.to_string());
            }
            request.body(body).send().await.unwrap().status().as_u16()
        }
    };
    let resend = br#"{"from_operator":"2","min_slot":"0"}"#.to_vec();
    assert_eq!(
        post("/dv/v1/partials", Some(SecretKey::random()), body.clone()).await,
        401
    );
    assert_eq!(post("/dv/v1/partials", None, body.clone()).await, 401);
    assert_eq!(
        post("/dv/v1/resend", Some(SecretKey::random()), resend.clone()).await,
        401
    );
    assert!(cluster
        .node(1)
        .store()
        .partials_of(&DutyKey::attestation(item.validator_pubkey, item.slot))
        .is_empty());
    // The same request with operator 2's node key is taken.
    let key = cluster.node_keys[1].clone();
    assert_eq!(post("/dv/v1/partials", Some(key.clone()), body).await, 200);
    assert_eq!(post("/dv/v1/resend", Some(key), resend).await, 200);
    assert_eq!(
        cluster
            .node(1)
            .store()
            .partials_of(&DutyKey::attestation(item.validator_pubkey, item.slot))
            .len(),
        1
    );
    let _ = Signature::from_bytes(&case.selection_proof).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_aggregator_falls_back_to_the_committees_of_a_node_without_the_endpoint() {
    // TEST DOUBLE of a beacon node without the seed's endpoint (404, as a
    // node that never heard of it answers), serving everything else from the
    // state-backed node.
    let vectors = oracle_vectors(FOLDER);
    let beacon = oracle_beacon_node(FOLDER).await;
    let upstream = reqwest::Url::parse(&format!("http://{}", beacon.addr())).unwrap();
    let without_endpoint = warp::path!("eth" / "v1" / "validator" / "is_aggregator")
        .map(|| {
            dv_aggregator::api::error::error_reply(
                warp::http::StatusCode::NOT_FOUND,
                "no such endpoint".into(),
            )
        })
        .or(dv_aggregator::beacon::proxy::proxy_filter(
            dv_aggregator::beacon::proxy::ProxyConfig::new(upstream),
        )
        .unwrap())
        .unify();
    let (addr, server) = dv_aggregator::api::filters::bind_server(
        without_endpoint,
        "127.0.0.1:0".parse().unwrap(),
        std::future::pending(),
    )
    .await
    .unwrap();
    let _server = tokio::spawn(server);
    let mut cluster = Cluster::with_beacon(
        vectors,
        beacon,
        format!("http://{addr}"),
        Duration::from_secs(5),
    );
    cluster.start_all().await;
    let cases = cluster.cases(EPOCH);
    let expected: Vec<bool> = cases.iter().map(|case| case.is_aggregator).collect();
    let decide = (1..=OPERATORS).map(|operator| {
        let cluster = &cluster;
        let items = cluster.is_aggregator_items(operator, &cases);
        async move {
            cluster
                .client(operator)
                .is_aggregator(&items)
                .await
                .unwrap()
        }
    });
    for decisions in futures_util::future::join_all(decide).await {
        assert_eq!(decisions, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_validator_client_input_gets_beacon_api_errors_naming_each_item() {
    let mut cluster = Cluster::new(Duration::from_millis(300)).await;
    cluster.start(1).await;
    let cases = cluster.cases(EPOCH);
    let url = format!(
        "http://{}/eth/v1/validator/beacon_committee_selections",
        cluster.node(1).http_addr()
    );
    let http = reqwest::Client::new();
    let post = |content_type: &'static str, body: String| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let reply = http
                .post(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = reply.status().as_u16();
            (status, reply.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = post("application/json", "[{\"validator_index\":".into()).await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(400)), "{body}");
    let (status, _) = post("text/plain", "[]".into()).await;
    assert_eq!(status, 415);

    // One good item, one of a validator outside the cluster, one signed by
    // another operator's share: the good one is kept (not combined here, as
    // the other nodes are down), the two bad ones are refused and counted.
    let mut items = cluster.selections(1, &cases[..1]);
    items.push(BeaconCommitteeSelection {
        validator_index: 2047,
        ..items[0].clone()
    });
    items.push(cluster.selections(2, &cases[..1]).remove(0));
    let (status, body) = post("application/json", serde_json::to_string(&items).unwrap()).await;
    assert_eq!(
        (status, body["data"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{body}"
    );
    let metrics = cluster.node(1).metrics_text();
    for line in [
        "dv_selection_items_total{endpoint=\"beacon_committee_selections\",outcome=\"invalid\"} 2",
        "dv_selection_items_total{endpoint=\"beacon_committee_selections\",outcome=\"not_combined\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} not in\n{metrics}");
    }

    // Only bad items: 400 naming each with its reason. A second partial of
    // this operator for a duty it already signed is a conflict.
    let mut bad = cluster.selections(2, &cases[1..2]);
    bad.insert(
        0,
        BeaconCommitteeSelection {
            validator_index: 2047,
            ..bad[0].clone()
        },
    );
    bad.push(items[2].clone());
    let (status, body) = post("application/json", serde_json::to_string(&bad).unwrap()).await;
    assert_eq!(status, 400, "{body}");
    let failures = body["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 3, "{body}");
    let reasons = [
        "validator index 2047 is not a validator of this cluster",
        "does not verify against that share's public key",
        "conflicts with the stored one (another signature over the same signing root",
    ];
    for (index, (failure, reason)) in failures.iter().zip(reasons).enumerate() {
        assert_eq!(failure["index"], index);
        assert!(
            failure["message"].as_str().unwrap().contains(reason),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_beacon_node_is_down_answers_503_saying_so() {
    let mut cluster = Cluster::new(Duration::from_secs(1)).await;
    let down = format!("http://127.0.0.1:{}", free_port());
    cluster.beacon_url = down.clone();
    let node = Middleware::start(cluster.config(1)).await.unwrap();
    let client = BeaconNodeClient::new(&format!("http://{}", node.http_addr())).unwrap();
    let cases = cluster.cases(EPOCH);
    let error = client
        .beacon_committee_selections(&cluster.selections(1, &cases[..1]))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(503), "{error}");
    assert!(error.to_string().contains("not ready"), "{error}");
    // Ordinary calls go to the (unreachable) beacon node through the proxy.
    let error = client.node_version().await.unwrap_err();
    assert_eq!(error.status(), Some(503), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_client_with_a_share_keystore_finds_its_validator_and_duties() {
    let mut cluster = Cluster::new(Duration::from_secs(5)).await;
    cluster.start(2).await;
    let case = cluster.cases(EPOCH)[0].clone();
    let share = cluster.share(case.validator_index, 2).public_key();
    let id = dv_aggregator::api::types::ValidatorId::PublicKey(
        dv_aggregator::api::types::PublicKeyBytes(share.to_bytes()),
    );
    let client = cluster.client(2);
    let found = client
        .post_state_validators(dv_aggregator::api::types::StateId::Head, &[id], &[])
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].index, case.validator_index);
    assert_eq!(found[0].validator.pubkey.0, share.to_bytes());
    let duties = client
        .attester_duties(EPOCH, &[case.validator_index])
        .await
        .unwrap();
    assert_eq!(duties.data.len(), 1);
    assert_eq!(duties.data[0].pubkey.0, share.to_bytes());
    assert_eq!(duties.data[0].slot, case.slot);
}

/// Four validator clients in distributed mode, each with its operator's key
/// shares, against the four nodes: every decision of the epoch equals the
/// oracle's, through both endpoints.
async fn validator_clients_decide_as_the_oracle(endpoint: dv_aggregator::vc::SelectionEndpoint) {
    use dv_aggregator::vc::{Drive, Outcome, ValidatorKey, Vc, VcConfig};
    let mut cluster = Cluster::new(Duration::from_secs(5)).await;
    cluster.start_all().await;
    let mut vcs = Vec::new();
    for operator in 1..=OPERATORS {
        let keys = cluster
            .shares
            .values()
            .map(|shares| ValidatorKey::new(shares[&operator].clone(), None))
            .collect();
        let config = VcConfig::new(
            format!("http://{}", cluster.node(operator).http_addr()),
            keys,
        )
        .with_name(format!("operator-{operator}"))
        .distributed(endpoint, cluster.lock.clone())
        .with_drive(Drive::Manual);
        vcs.push(Vc::start(config).await.unwrap());
    }
    futures_util::future::join_all(vcs.iter().map(|vc| vc.run_epoch(EPOCH))).await;
    let expected: BTreeMap<(u64, Slot), bool> = cluster
        .cases(EPOCH)
        .iter()
        .map(|case| ((case.validator_index, case.slot), case.is_aggregator))
        .collect();
    assert!(expected.values().any(|a| *a) && expected.values().any(|a| !*a));
    for vc in &vcs {
        let decided: BTreeMap<(u64, Slot), bool> = vc
            .decisions()
            .into_iter()
            .filter(|d| {
                d.epoch == EPOCH
                    && matches!(d.duty, dv_aggregator::vc::DecisionDuty::Attestation { .. })
            })
            .map(|d| match d.outcome {
                Outcome::Decided { is_aggregator, .. } => {
                    ((d.validator_index, d.slot), is_aggregator)
                }
                Outcome::Failed { reason } => panic!("{} failed: {reason}", vc.name()),
            })
            .collect();
        for (duty, aggregates) in &expected {
            assert_eq!(
                decided.get(duty),
                Some(aggregates),
                "{} at {duty:?}",
                vc.name()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_clients_in_distributed_mode_decide_as_the_oracle_through_selections() {
    validator_clients_decide_as_the_oracle(dv_aggregator::vc::SelectionEndpoint::Selections).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_clients_in_distributed_mode_decide_as_the_oracle_through_is_aggregator() {
    validator_clients_decide_as_the_oracle(dv_aggregator::vc::SelectionEndpoint::IsAggregator)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_aggregator_names_the_items_not_combined_yet_instead_of_answering_false() {
    let mut cluster = Cluster::new(Duration::from_millis(500)).await;
    cluster.start_all().await;
    let cases = cluster.cases(EPOCH);
    let items = |operator| cluster.is_aggregator_items(operator, &cases);
    // Two operators' partials are not enough: 503 naming every item.
    let early = (1..=2).map(|operator| {
        let cluster = &cluster;
        let items = items(operator);
        async move { cluster.client(operator).is_aggregator(&items).await }
    });
    for answer in futures_util::future::join_all(early).await {
        let error = answer.unwrap_err();
        assert_eq!(error.status(), Some(503), "{error}");
        assert_eq!(error.failures().len(), cases.len(), "{error}");
        assert!(error.failures()[0].message.contains("ask again"), "{error}");
    }
    // With a third operator's, everyone gets the oracle's decisions.
    let expected: Vec<bool> = cases.iter().map(|case| case.is_aggregator).collect();
    let third = cluster.client(3).is_aggregator(&items(3)).await.unwrap();
    assert_eq!(third, expected);
    for operator in 1..=2 {
        let again = cluster
            .client(operator)
            .is_aggregator(&items(operator))
            .await
            .unwrap();
        assert_eq!(again, expected);
    }
    // Each request is counted once: the 503 as refused, the answer as complete.
    let metrics = cluster.node(1).metrics_text();
    let requests: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("dv_selection_requests_total{endpoint=\"is_aggregator\""))
        .collect();
    assert_eq!(
        requests,
        [
            "dv_selection_requests_total{endpoint=\"is_aggregator\",outcome=\"complete\"} 1",
            "dv_selection_requests_total{endpoint=\"is_aggregator\",outcome=\"refused\"} 1",
        ],
        "{metrics}"
    );
}

/// Lodestar's SSZ `List[BeaconCommitteeSelection]`, written out by hand:
/// validator_index, slot (little-endian u64), selection_proof: 112 bytes each.
fn beacon_selections_ssz(items: &[BeaconCommitteeSelection]) -> Vec<u8> {
    items
        .iter()
        .flat_map(|item| {
            [
                &item.validator_index.to_le_bytes()[..],
                &item.slot.to_le_bytes(),
                &item.selection_proof.0,
            ]
            .concat()
        })
        .collect()
}

/// The reverse of [`beacon_selections_ssz`].
fn beacon_selections_of_ssz(bytes: &[u8]) -> Vec<BeaconCommitteeSelection> {
    assert_eq!(bytes.len() % 112, 0, "{} bytes", bytes.len());
    bytes
        .chunks(112)
        .map(|record| BeaconCommitteeSelection {
            validator_index: u64::from_le_bytes(record[..8].try_into().unwrap()),
            slot: u64::from_le_bytes(record[8..16].try_into().unwrap()),
            selection_proof: SignatureBytes(record[16..].try_into().unwrap()),
        })
        .collect()
}

/// Lodestar's SSZ `List[SyncCommitteeSelection]`: 120 bytes each.
fn sync_selections_ssz(items: &[SyncCommitteeSelection]) -> Vec<u8> {
    items
        .iter()
        .flat_map(|item| {
            [
                &item.validator_index.to_le_bytes()[..],
                &item.slot.to_le_bytes(),
                &item.subcommittee_index.to_le_bytes(),
                &item.selection_proof.0,
            ]
            .concat()
        })
        .collect()
}

/// A raw answer: status, content type, body.
struct Answer {
    status: u16,
    content_type: String,
    body: bytes::Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

/// POSTs `body` to `path` of `addr` as `content_type`, with `accept` if given.
async fn post_raw(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    accept: Option<&str>,
    body: reqwest::Body,
) -> Answer {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("content-type", content_type)
        .body(body);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let reply = request.send().await.unwrap();
    Answer {
        status: reply.status().as_u16(),
        content_type: reply
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default(),
        body: reply.bytes().await.unwrap(),
    }
}

const BEACON_SELECTIONS: &str = "/eth/v1/validator/beacon_committee_selections";
const SYNC_SELECTIONS: &str = "/eth/v1/validator/sync_committee_selections";
const SSZ: &str = "application/octet-stream";
/// Lodestar's `Accept` with `--http.responseWireFormat ssz` (its default).
const SSZ_PREFERRED: &str = "application/octet-stream;q=1,application/json;q=0.9";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssz_selection_requests_get_the_answers_json_requests_get() {
    let mut cluster = Cluster::new(Duration::from_secs(5)).await;
    cluster.start_all().await;
    let cases = cluster.cases(EPOCH);
    // Operators 1 and 2 post JSON, 3 and 4 post SSZ (one wanting SSZ back,
    // one JSON): all four are one cluster's request, answered alike.
    let json_asks = (1..=2).map(|operator| {
        let cluster = &cluster;
        let cases = cases.clone();
        async move { cluster.ask(operator, &cases).await.0 }
    });
    let ssz_asks =
        [(3, Some(SSZ_PREFERRED)), (4, Some("application/json"))].map(|(operator, accept)| {
            let body = beacon_selections_ssz(&cluster.selections(operator, &cases));
            let addr = cluster.node(operator).http_addr();
            async move { post_raw(addr, BEACON_SELECTIONS, SSZ, accept, body.into()).await }
        });
    let (json_answers, ssz_answers) = tokio::join!(
        futures_util::future::join_all(json_asks),
        futures_util::future::join_all(ssz_asks)
    );
    for answer in json_answers {
        assert_group_proofs(&answer, &cases);
    }
    let [ssz_back, json_back] = <[Answer; 2]>::try_from(ssz_answers).ok().unwrap();
    assert_eq!(
        (ssz_back.status, ssz_back.content_type.as_str()),
        (200, SSZ)
    );
    assert_group_proofs(&beacon_selections_of_ssz(&ssz_back.body), &cases);
    assert_eq!(json_back.status, 200);
    assert!(json_back.content_type.starts_with("application/json"));
    let data: Vec<BeaconCommitteeSelection> =
        serde_json::from_value(json_back.json()["data"].clone()).unwrap();
    assert_group_proofs(&data, &cases);

    // A JSON request answered in SSZ, now that every duty has combined.
    let body = serde_json::to_string(&cluster.selections(1, &cases)).unwrap();
    let addr = cluster.node(1).http_addr();
    let answer = post_raw(
        addr,
        BEACON_SELECTIONS,
        "application/json",
        Some(SSZ),
        body.into(),
    )
    .await;
    assert_eq!((answer.status, answer.content_type.as_str()), (200, SSZ));
    assert_group_proofs(&beacon_selections_of_ssz(&answer.body), &cases);
    // An Accept allowing neither: 406, before anything is stored.
    let body = beacon_selections_ssz(&cluster.selections(1, &cases));
    let refused = post_raw(addr, BEACON_SELECTIONS, SSZ, Some("text/html"), body.into()).await;
    assert_eq!(refused.status, 406);
    assert!(refused.json()["message"]
        .as_str()
        .unwrap()
        .contains("application/json or application/octet-stream"));

    // Sync selections in SSZ: two subcommittees of one validator, SSZ both ways.
    let case = &cluster.vectors["sync_cases"][0];
    let (validator, slot) = (u64_of(&case["validator_index"]), u64_of(&case["slot"]));
    let info = dv_aggregator::api::ChainInfo::fetch(&cluster.client(1))
        .await
        .unwrap();
    // The validator's items in subcommittees 0 and 2, signed by `signer`.
    let items = |signer: &SecretKey| -> Vec<SyncCommitteeSelection> {
        [0, 2]
            .into_iter()
            .map(|sub| SyncCommitteeSelection {
                validator_index: validator,
                slot,
                subcommittee_index: sub,
                selection_proof: partial(signer, info.sync_selection_proof_signing_root(slot, sub)),
            })
            .collect()
    };
    let asks = (1..=OPERATORS).map(|operator| {
        let addr = cluster.node(operator).http_addr();
        let body = sync_selections_ssz(&items(cluster.share(validator, operator)));
        async move { post_raw(addr, SYNC_SELECTIONS, SSZ, Some(SSZ), body.into()).await }
    });
    let expected = sync_selections_ssz(&items(&interop_secret_key(validator)));
    for answer in futures_util::future::join_all(asks).await {
        assert_eq!((answer.status, answer.content_type.as_str()), (200, SSZ));
        assert_eq!(answer.body.as_ref(), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ssz_selection_bodies_are_named() {
    let cluster = Cluster::new(Duration::from_millis(300)).await;
    let mut config = cluster.config(1);
    config.limits = Limits {
        max_body_bytes: 4096,
        max_items: 8,
    };
    let node = Middleware::start(config).await.unwrap();
    while node.chain_view().is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let addr = node.http_addr();
    let cases = cluster.cases(EPOCH);
    let record = beacon_selections_ssz(&cluster.selections(1, &cases[..1]));
    let records = |n: usize| record.repeat(n);
    let message = |answer: &Answer| answer.json()["message"].as_str().unwrap().to_string();
    for (body, status, expected) in [
        (records(2)[..200].to_vec(), 400, "200 bytes is not a whole number of BeaconCommitteeSelection records of 112 bytes (1 records and 88 bytes over)"),
        (records(1)[..111].to_vec(), 400, "(0 records and 111 bytes over)"),
        (Vec::new(), 400, "the SSZ body is empty"),
        (records(9), 400, "9 items, more than the 8 this endpoint accepts"),
        (records(37), 413, "exceeds the limit of 4096 bytes"),
    ] {
        let length = body.len();
        let answer = post_raw(addr, BEACON_SELECTIONS, SSZ, None, body.into()).await;
        assert_eq!(answer.status, status, "{length} bytes: {}", message(&answer));
        assert_eq!(answer.json()["code"], status);
        assert!(message(&answer).contains(expected), "{length} bytes: {}", message(&answer));
    }
    // Oversized and streamed without a length: refused once past the limit.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = records(40)
        .chunks(1000)
        .map(|chunk| Ok(bytes::Bytes::copy_from_slice(chunk)))
        .collect();
    let streamed = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let answer = post_raw(addr, BEACON_SELECTIONS, SSZ, None, streamed).await;
    assert_eq!(answer.status, 413, "{}", message(&answer));
    // Sync records are 120 bytes: a beacon record is not one.
    let answer = post_raw(addr, SYNC_SELECTIONS, SSZ, None, record.clone().into()).await;
    assert_eq!(answer.status, 400);
    assert!(message(&answer).contains("SyncCommitteeSelection records of 120 bytes"));
    // Neither JSON nor SSZ.
    let answer = post_raw(addr, BEACON_SELECTIONS, "text/plain", None, record.into()).await;
    assert_eq!(answer.status, 415);
    assert!(message(&answer).contains("application/json or application/octet-stream"));
    // A well-formed SSZ item of a validator outside the cluster is named as JSON's is.
    let mut stranger = cluster.selections(1, &cases[..1]);
    stranger[0].validator_index = 2047;
    let answer = post_raw(
        addr,
        BEACON_SELECTIONS,
        SSZ,
        None,
        beacon_selections_ssz(&stranger).into(),
    )
    .await;
    assert_eq!(answer.status, 400);
    let failures = answer.json()["failures"].clone();
    assert_eq!(failures[0]["index"], 0);
    assert!(failures[0]["message"]
        .as_str()
        .unwrap()
        .contains("validator index 2047 is not a validator of this cluster"));
    node.stop().await;
}
