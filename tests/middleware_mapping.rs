//! The middleware's public-key mapping (`middleware::mapping`) over real HTTP.
//!
//! The upstream is the project's own state-backed node (`Sidecar` on the
//! oracle state `deneb-minimal-2048`, whose validators have the interop
//! keys). The cluster lock splits the interop keys of four of them 3-of-4, so
//! the group keys are real registry keys. Each operator's "middleware" is the
//! mapping filter with `beacon::proxy::proxy_filter` behind it, on
//! 127.0.0.1:0. Every answer through it is checked against the same request
//! sent straight to the upstream by group key.
//!
//! The state-backed node serves neither a single validator, nor balances, nor
//! proposer duties, so those paths are checked against a TEST DOUBLE upstream
//! (a small warp server below) that also records what reached it. Nor does
//! it answer in SSZ: a second TEST DOUBLE (`WireDoubleNode`) answers every
//! mapped route in SSZ where the `Accept` allows it, as Lodestar does, and
//! each is asked as a VC accepting JSON only, preferring SSZ, or SSZ only.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{oracle_beacon_node, split_interop_keys, to_hex};
use dv_aggregator::api::client::BeaconNodeClient;
use dv_aggregator::api::filters::recover;
use dv_aggregator::api::types::{
    PublicKeyBytes, StateId, ValidatorData, ValidatorId, ValidatorStatus,
};
use dv_aggregator::beacon::proxy::{proxy_filter, ProxyConfig};
use dv_aggregator::beacon::sidecar::Sidecar;
use dv_aggregator::beacon::state_api::NODE_VERSION;
use dv_aggregator::cluster::ClusterLock;
use dv_aggregator::crypto::interop::interop_secret_key;
use dv_aggregator::crypto::SecretKey;
use dv_aggregator::middleware::{pubkey_mapping_routes, MappingConfig, PubkeyMap};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

const FOLDER: &str = "deneb-minimal-2048";
/// The state's epoch.
const EPOCH: u64 = 5;
/// Validators of the cluster lock: 326 and 1453 sit in the current sync
/// committee, 834 has a low effective balance, 7 is in no lifecycle group.
const DV_VALIDATORS: [u64; 4] = [7, 326, 834, 1453];
/// Ordinary validators the same VC might run: 1854 is a sync-committee member.
const OTHER_VALIDATORS: [u64; 2] = [3, 1854];
const THRESHOLD: u64 = 3;
const OPERATORS: u64 = 4;

fn group_key(index: u64) -> PublicKeyBytes {
    PublicKeyBytes(interop_secret_key(index).public_key().to_bytes())
}

fn hex(key: &PublicKeyBytes) -> String {
    to_hex(&key.0)
}

/// A 3-of-4 cluster of the interop keys of [`DV_VALIDATORS`].
fn cluster_lock() -> ClusterLock {
    split_interop_keys(&DV_VALIDATORS, THRESHOLD, OPERATORS)
        .0
        .lock
}

async fn loopback_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Serves `routes` (with Beacon API error bodies for rejections) on 127.0.0.1:0.
async fn serve(routes: BoxedFilter<(Response,)>) -> (SocketAddr, JoinHandle<()>) {
    let (listener, addr) = loopback_listener().await;
    let routes = routes.recover(recover);
    let task = tokio::spawn(warp::serve(routes).incoming(listener).run());
    (addr, task)
}

/// One operator's middleware: the mapping filter in front of the proxy.
struct Middleware {
    addr: SocketAddr,
    client: BeaconNodeClient,
    _server: JoinHandle<()>,
}

impl Middleware {
    async fn start(lock: &ClusterLock, operator: u64, upstream: SocketAddr) -> Middleware {
        let url = reqwest::Url::parse(&format!("http://{upstream}")).unwrap();
        let map = Arc::new(PubkeyMap::new(lock, operator).unwrap());
        let routes = pubkey_mapping_routes(map, url.clone(), MappingConfig::default())
            .unwrap()
            .or(proxy_filter(ProxyConfig::new(url)).unwrap())
            .unify()
            .boxed();
        let (addr, server) = serve(routes).await;
        let client = BeaconNodeClient::new(&format!("http://{addr}")).unwrap();
        Middleware {
            addr,
            client,
            _server: server,
        }
    }
}

/// A raw exchange: status, content type and body bytes.
struct Raw {
    status: u16,
    content_type: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: Bytes,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }

    /// The body as text, binary or not.
    fn text_lossy(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn raw(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Raw {
    raw_request(
        addr,
        method,
        path,
        body.map(|b| reqwest::Body::from(b.to_string())),
        &[],
    )
    .await
}

async fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<reqwest::Body>,
    headers: &[(&str, &str)],
) -> Raw {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = reqwest::Client::new().request(method, format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        {
            request = request.header("content-type", "application/json");
        }
        request = request.body(body);
    }
    let response = request.send().await.expect("send");
    let headers = response.headers().clone();
    Raw {
        status: response.status().as_u16(),
        content_type: headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string()),
        headers,
        body: response.bytes().await.expect("body"),
    }
}

/// The state-backed upstream, two operators' middlewares and the lock.
struct Tester {
    lock: ClusterLock,
    _sidecar: Sidecar,
    upstream_addr: SocketAddr,
    upstream: BeaconNodeClient,
    op1: Middleware,
    op2: Middleware,
}

impl Tester {
    async fn new() -> Tester {
        let sidecar = oracle_beacon_node(FOLDER).await;
        let upstream_addr = sidecar.addr();
        let lock = cluster_lock();
        let op1 = Middleware::start(&lock, 1, upstream_addr).await;
        let op2 = Middleware::start(&lock, 2, upstream_addr).await;
        Tester {
            upstream: BeaconNodeClient::new(&format!("http://{upstream_addr}")).unwrap(),
            upstream_addr,
            _sidecar: sidecar,
            lock,
            op1,
            op2,
        }
    }

    /// Operator `operator`'s public share of validator `index` (a DV validator).
    fn share(&self, operator: u64, index: u64) -> PublicKeyBytes {
        let group = interop_secret_key(index).public_key();
        let validator = self.lock.validators.iter().find(|v| v.pubkey == group);
        let share = validator.unwrap().public_share(operator).unwrap();
        PublicKeyBytes(share.to_bytes())
    }

    /// The key operator `operator`'s VC knows validator `index` by.
    fn vc_key(&self, operator: u64, index: u64) -> PublicKeyBytes {
        if DV_VALIDATORS.contains(&index) {
            self.share(operator, index)
        } else {
            group_key(index)
        }
    }

    /// `text` with every DV group key written as operator `operator`'s share.
    fn with_shares(&self, operator: u64, text: &str) -> String {
        DV_VALIDATORS.iter().fold(text.to_string(), |text, &index| {
            text.replace(&hex(&group_key(index)), &hex(&self.share(operator, index)))
        })
    }

    /// The upstream's record as operator 1's VC must see it.
    fn as_seen_by_vc(&self, operator: u64, mut record: ValidatorData) -> ValidatorData {
        assert_eq!(
            record.validator.pubkey,
            group_key(record.index),
            "upstream key"
        );
        record.validator.pubkey = self.vc_key(operator, record.index);
        record
    }

    async fn test_validators_by_pubshare(self) -> Self {
        let unknown = PublicKeyBytes(SecretKey::random().public_key().to_bytes());
        let vc_ids = [
            ValidatorId::PublicKey(self.share(1, 326)),
            ValidatorId::Index(7),
            ValidatorId::PublicKey(unknown),
            ValidatorId::PublicKey(self.share(1, 834)),
            ValidatorId::PublicKey(group_key(1854)),
        ];
        let group_ids = [
            ValidatorId::PublicKey(group_key(326)),
            ValidatorId::Index(7),
            ValidatorId::PublicKey(unknown),
            ValidatorId::PublicKey(group_key(834)),
            ValidatorId::PublicKey(group_key(1854)),
        ];
        let mapped = self
            .op1
            .client
            .state_validators(StateId::Head, &vc_ids)
            .await
            .unwrap();
        let direct = self
            .upstream
            .state_validators(StateId::Head, &group_ids)
            .await
            .unwrap();
        let indices: Vec<u64> = direct.iter().map(|v| v.index).collect();
        assert_eq!(indices, [326, 7, 834, 1854]);
        let expected: Vec<ValidatorData> = direct
            .into_iter()
            .map(|record| self.as_seen_by_vc(1, record))
            .collect();
        assert_eq!(mapped, expected);
        assert_eq!(mapped[0].validator.pubkey, self.share(1, 326));
        assert_eq!(mapped[0].status, ValidatorStatus::ActiveOngoing);

        // Upper-case hex, repeated `id`, a comma list and a status filter:
        // byte for byte the upstream's answer by group key, keys aside.
        let upper = format!("0x{}", hex(&self.share(1, 326))[2..].to_uppercase());
        let path = "/eth/v1/beacon/states/head/validators";
        let vc_query = format!(
            "{path}?id={upper}&id=7,{}&status=active_ongoing",
            hex(&self.share(1, 1453))
        );
        let group_query = format!(
            "{path}?id={}&id=7,{}&status=active_ongoing",
            hex(&group_key(326)),
            hex(&group_key(1453))
        );
        let through = raw(self.op1.addr, "GET", &vc_query, None).await;
        let straight = raw(self.upstream_addr, "GET", &group_query, None).await;
        assert_eq!((through.status, straight.status), (200, 200));
        assert_eq!(straight.json()["data"].as_array().unwrap().len(), 3);
        assert!(straight.text().contains(&hex(&group_key(1453))));
        assert_eq!(through.text(), self.with_shares(1, &straight.text()));
        assert_eq!(through.content_type, straight.content_type);
        assert_eq!(
            through.headers["content-length"].to_str().unwrap(),
            through.body.len().to_string()
        );
        self
    }

    async fn test_post_validators_by_pubshare(self) -> Self {
        let statuses = [ValidatorStatus::ActiveOngoing];
        let vc_ids = [
            ValidatorId::PublicKey(self.share(1, 1453)),
            ValidatorId::Index(3),
            ValidatorId::PublicKey(self.share(1, 326)),
        ];
        let group_ids = [
            ValidatorId::PublicKey(group_key(1453)),
            ValidatorId::Index(3),
            ValidatorId::PublicKey(group_key(326)),
        ];
        let mapped = self
            .op1
            .client
            .post_state_validators(StateId::Head, &vc_ids, &statuses)
            .await
            .unwrap();
        let direct = self
            .upstream
            .post_state_validators(StateId::Head, &group_ids, &statuses)
            .await
            .unwrap();
        assert_eq!(direct.len(), 3);
        let expected: Vec<ValidatorData> = direct
            .into_iter()
            .map(|record| self.as_seen_by_vc(1, record))
            .collect();
        assert_eq!(mapped, expected);
        self
    }

    async fn test_attester_duties(self) -> Self {
        let indices: Vec<u64> = DV_VALIDATORS
            .iter()
            .chain(&OTHER_VALIDATORS)
            .copied()
            .collect();
        let duties = self
            .op1
            .client
            .attester_duties(EPOCH, &indices)
            .await
            .unwrap();
        // Every active validator attests once per epoch.
        assert_eq!(duties.data.len(), indices.len());
        for duty in &duties.data {
            assert_eq!(duty.pubkey, self.vc_key(1, duty.validator_index));
        }
        let direct = self
            .upstream
            .attester_duties(EPOCH, &indices)
            .await
            .unwrap();
        assert_eq!(duties.dependent_root, direct.dependent_root);

        let body =
            serde_json::to_string(&indices.iter().map(u64::to_string).collect::<Vec<_>>()).unwrap();
        let path = format!("/eth/v1/validator/duties/attester/{EPOCH}");
        let through = raw(self.op1.addr, "POST", &path, Some(&body)).await;
        let straight = raw(self.upstream_addr, "POST", &path, Some(&body)).await;
        assert_eq!((through.status, straight.status), (200, 200));
        for index in DV_VALIDATORS {
            assert!(straight.text().contains(&hex(&group_key(index))));
            assert!(!through.text().contains(&hex(&group_key(index))));
        }
        assert_eq!(through.text(), self.with_shares(1, &straight.text()));
        self
    }

    async fn test_sync_duties(self) -> Self {
        let indices = [326, 1453, 1854, 7];
        let duties = self.op1.client.sync_duties(EPOCH, &indices).await.unwrap();
        let members: Vec<u64> = duties.data.iter().map(|d| d.validator_index).collect();
        assert_eq!(members, [326, 1453, 1854], "7 is not in the sync committee");
        for duty in &duties.data {
            assert_eq!(duty.pubkey, self.vc_key(1, duty.validator_index));
        }
        let path = format!("/eth/v1/validator/duties/sync/{EPOCH}");
        let body = r#"["326","1453","1854","7"]"#;
        let through = raw(self.op1.addr, "POST", &path, Some(body)).await;
        let straight = raw(self.upstream_addr, "POST", &path, Some(body)).await;
        assert!(straight.text().contains(&hex(&group_key(1854))));
        assert_eq!(through.text(), self.with_shares(1, &straight.text()));
        self
    }

    async fn test_operator_two_sees_its_own_shares(self) -> Self {
        let (share1, share2) = (self.share(1, 326), self.share(2, 326));
        assert_ne!(share1, share2);
        let by_share2 = [ValidatorId::PublicKey(share2)];
        let records = self
            .op2
            .client
            .state_validators(StateId::Head, &by_share2)
            .await
            .unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].index, records[0].validator.pubkey),
            (326, share2)
        );
        // Operator 1's share means nothing to operator 2's map.
        let by_share1 = [ValidatorId::PublicKey(share1)];
        let none = self
            .op2
            .client
            .state_validators(StateId::Head, &by_share1)
            .await
            .unwrap();
        assert!(none.is_empty());
        let duties = self
            .op2
            .client
            .attester_duties(EPOCH, &[326])
            .await
            .unwrap();
        assert_eq!(duties.data[0].pubkey, share2);
        self
    }

    async fn test_upstream_errors_pass_through(self) -> Self {
        let share = hex(&self.share(1, 326));
        let group = hex(&group_key(326));
        let cases = [
            (
                "GET",
                format!("/eth/v1/beacon/states/12345/validators?id={share}"),
                format!("/eth/v1/beacon/states/12345/validators?id={group}"),
                None,
                404,
            ),
            (
                "GET",
                "/eth/v1/beacon/states/head/validators?id=12x".into(),
                "/eth/v1/beacon/states/head/validators?id=12x".into(),
                None,
                400,
            ),
            (
                "POST",
                "/eth/v1/beacon/states/head/validators".into(),
                "/eth/v1/beacon/states/head/validators".into(),
                Some(r#"{"ids": "x"}"#),
                400,
            ),
            (
                "POST",
                format!("/eth/v1/validator/duties/attester/{EPOCH}"),
                format!("/eth/v1/validator/duties/attester/{EPOCH}"),
                Some(r#"["1","-2"]"#),
                400,
            ),
            (
                "POST",
                "/eth/v1/validator/duties/sync/99999".into(),
                "/eth/v1/validator/duties/sync/99999".into(),
                Some(r#"["1"]"#),
                400,
            ),
        ];
        for (method, vc_path, group_path, body, status) in cases {
            let through = raw(self.op1.addr, method, &vc_path, body).await;
            let straight = raw(self.upstream_addr, method, &group_path, body).await;
            assert_eq!(
                (through.status, straight.status),
                (status, status),
                "{vc_path}"
            );
            assert_eq!(through.body, straight.body, "{vc_path}");
            assert_eq!(straight.json()["code"], status, "{vc_path}");
        }
        self
    }

    async fn test_oversized_request_is_413(self) -> Self {
        let path = "/eth/v1/beacon/states/head/validators";
        let padding = " ".repeat(1024 * 1024);
        let body = format!(r#"{{"ids": ["1"]{padding}}}"#);
        let announced = raw(self.op1.addr, "POST", path, Some(&body)).await;
        assert_eq!(announced.status, 413);
        assert_eq!(announced.json()["code"], 413);
        let chunks: Vec<Result<Bytes, std::io::Error>> = body
            .as_bytes()
            .chunks(64 * 1024)
            .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
            .collect();
        let chunked = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
        let streamed = raw_request(self.op1.addr, "POST", path, Some(chunked), &[]).await;
        assert_eq!(streamed.status, 413);
        assert!(streamed.json()["message"]
            .as_str()
            .unwrap()
            .contains("1048576"));
        self
    }

    async fn test_unmapped_paths_reach_the_proxy(self) -> Self {
        assert_eq!(self.op1.client.node_version().await.unwrap(), NODE_VERSION);
        // A POST the filter does not take keeps its body for the proxy.
        let path = "/eth/v1/validator/beacon_committee_selections";
        let through = raw(self.op1.addr, "POST", path, Some("[]")).await;
        let straight = raw(self.upstream_addr, "POST", path, Some("[]")).await;
        assert_eq!((through.status, through.body.clone()), (501, straight.body));

        // The mapping filter alone rejects it: the proxy answered above.
        let url = reqwest::Url::parse(&format!("http://{}", self.upstream_addr)).unwrap();
        let map = Arc::new(PubkeyMap::new(&self.lock, 1).unwrap());
        let alone = pubkey_mapping_routes(map, url, MappingConfig::default())
            .unwrap()
            .boxed();
        let (addr, _server) = serve(alone).await;
        let rejected = raw(addr, "GET", "/eth/v1/node/version", None).await;
        assert_eq!(rejected.status, 404);
        assert_eq!(rejected.json()["message"], "no such endpoint");
        self
    }

    async fn test_upstream_down_is_503(self) -> Self {
        let closed = loopback_listener().await.1;
        let down = Middleware::start(&self.lock, 1, closed).await;
        let share = hex(&self.share(1, 326));
        for (method, path, body) in [
            (
                "GET",
                format!("/eth/v1/beacon/states/head/validators?id={share}"),
                None,
            ),
            (
                "POST",
                format!("/eth/v1/validator/duties/attester/{EPOCH}"),
                Some(r#"["326"]"#),
            ),
        ] {
            let answer = raw(down.addr, method, &path, body).await;
            assert_eq!(answer.status, 503, "{path}");
            assert_eq!(answer.json()["code"], 503);
            let message = answer.json()["message"].as_str().unwrap().to_string();
            assert!(
                message.contains("unreachable") && message.contains(&closed.to_string()),
                "{message}"
            );
        }
        self
    }
}

#[tokio::test]
async fn a_vc_finds_its_validators_and_duties_by_its_public_shares() {
    Tester::new()
        .await
        .test_validators_by_pubshare()
        .await
        .test_post_validators_by_pubshare()
        .await
        .test_attester_duties()
        .await
        .test_sync_duties()
        .await
        .test_operator_two_sees_its_own_shares()
        .await;
}

#[tokio::test]
async fn failures_and_other_paths_keep_the_upstreams_answers() {
    Tester::new()
        .await
        .test_upstream_errors_pass_through()
        .await
        .test_oversized_request_is_413()
        .await
        .test_unmapped_paths_reach_the_proxy()
        .await
        .test_upstream_down_is_503()
        .await;
}

/// TEST DOUBLE of a beacon node for the endpoints the state-backed node does
/// not serve: one validator by id, balances, proposer duties. It answers
/// from a fixed registry (the interop keys of [`DV_VALIDATORS`] and
/// [`OTHER_VALIDATORS`] at their indices) in the beacon-APIs shapes, refuses
/// malformed ids with 400 and unknown validators with 404 as a node does,
/// and records each request it gets (`METHOD path?query body`).
struct TestDoubleNode {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    _server: JoinHandle<()>,
}

/// The double's `proposer` epoch that answers a malformed duty list.
const BROKEN_EPOCH: u64 = 999;

impl TestDoubleNode {
    async fn start() -> TestDoubleNode {
        let registry: BTreeMap<u64, PublicKeyBytes> = DV_VALIDATORS
            .iter()
            .chain(&OTHER_VALIDATORS)
            .map(|&index| (index, group_key(index)))
            .collect();
        let registry = Arc::new(registry);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = {
            let seen = Arc::clone(&seen);
            warp::method()
                .and(warp::path::full())
                .and(warp::query::raw().or(warp::any().map(String::new)).unify())
                .and(warp::body::bytes())
                .map(
                    move |method, path: warp::path::FullPath, query: String, body: Bytes| {
                        let line = format!(
                            "{method} {}?{query} {}",
                            path.as_str(),
                            String::from_utf8_lossy(&body)
                        );
                        seen.lock().unwrap().push(line);
                        (query, body)
                    },
                )
                .untuple_one()
        };
        let with_registry = warp::any().map(move || Arc::clone(&registry));
        let routes = record
            .and(warp::path::full())
            .and(with_registry)
            .map(
                |query: String,
                 body: Bytes,
                 path: warp::path::FullPath,
                 registry: Arc<BTreeMap<u64, PublicKeyBytes>>| {
                    let reply = double_answer(path.as_str(), &query, &body, &registry);
                    warp::reply::with_header(reply, "x-upstream", "test-double").into_response()
                },
            )
            .boxed();
        let (addr, server) = serve(routes).await;
        TestDoubleNode {
            addr,
            seen,
            _server: server,
        }
    }

    fn last_seen(&self) -> String {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

/// The double's answer to one request.
fn double_answer(
    path: &str,
    query: &str,
    body: &[u8],
    registry: &BTreeMap<u64, PublicKeyBytes>,
) -> Response {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["eth", "v1", "beacon", "states", "head", "validators", id] => {
            let Some(found) = double_find(registry, id) else {
                return double_error(
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid validator ID: {id}"),
                );
            };
            let Some((index, key)) = found else {
                return double_error(StatusCode::NOT_FOUND, "Validator not found");
            };
            warp::reply::json(&json!({
                "execution_optimistic": false,
                "finalized": false,
                "data": double_validator(index, &key),
            }))
            .into_response()
        }
        ["eth", "v1", "beacon", "states", "head", "validator_balances"] => {
            let ids: Vec<String> = if body.is_empty() {
                form_urlencoded::parse(query.as_bytes())
                    .filter(|(key, _)| key == "id")
                    .flat_map(|(_, value)| value.split(',').map(str::to_string).collect::<Vec<_>>())
                    .collect()
            } else {
                match serde_json::from_slice(body) {
                    Ok(ids) => ids,
                    Err(e) => return double_error(StatusCode::BAD_REQUEST, &e.to_string()),
                }
            };
            let mut data = Vec::new();
            for id in ids {
                match double_find(registry, &id) {
                    None => return double_error(StatusCode::BAD_REQUEST, &format!("Invalid validator ID: {id}")),
                    Some(Some((index, _))) => data.push(json!({"index": index.to_string(), "balance": (32_000_000_000 + index).to_string()})),
                    Some(None) => {}
                }
            }
            warp::reply::json(
                &json!({"execution_optimistic": false, "finalized": false, "data": data}),
            )
            .into_response()
        }
        ["eth", "v1", "validator", "duties", "proposer", epoch] => {
            let Ok(epoch) = epoch.parse::<u64>() else {
                return double_error(StatusCode::BAD_REQUEST, &format!("Invalid epoch: {epoch}"));
            };
            if epoch == BROKEN_EPOCH {
                let broken =
                    json!({"data": [{"pubkey": "0x12", "validator_index": "1", "slot": "1"}]});
                return warp::reply::json(&broken).into_response();
            }
            let proposers: Vec<(&u64, &PublicKeyBytes)> = registry.iter().collect();
            let data: Vec<Value> = (epoch * 8..epoch * 8 + 8)
                .map(|slot| {
                    let (index, key) = proposers[(slot as usize) % proposers.len()];
                    json!({"pubkey": hex(key), "validator_index": index.to_string(), "slot": slot.to_string()})
                })
                .collect();
            warp::reply::json(&json!({
                "dependent_root": to_hex(&[0xd7; 32]),
                "execution_optimistic": false,
                "data": data,
            }))
            .into_response()
        }
        _ => double_error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

/// `None` for a malformed id, `Some(None)` for an unknown validator.
fn double_find(
    registry: &BTreeMap<u64, PublicKeyBytes>,
    id: &str,
) -> Option<Option<(u64, PublicKeyBytes)>> {
    let id: ValidatorId = id.parse().ok()?;
    Some(
        registry
            .iter()
            .map(|(i, k)| (*i, *k))
            .find(|(index, key)| match id {
                ValidatorId::Index(wanted) => *index == wanted,
                ValidatorId::PublicKey(wanted) => *key == wanted,
            }),
    )
}

fn double_validator(index: u64, key: &PublicKeyBytes) -> Value {
    let far = u64::MAX.to_string();
    json!({
        "index": index.to_string(),
        "balance": (32_000_000_000 + index).to_string(),
        "status": "active_ongoing",
        "validator": {
            "pubkey": hex(key),
            "withdrawal_credentials": to_hex(&[0; 32]),
            "effective_balance": "32000000000",
            "slashed": false,
            "activation_eligibility_epoch": "0",
            "activation_epoch": "0",
            "exit_epoch": far,
            "withdrawable_epoch": far,
        }
    })
}

fn double_error(status: StatusCode, message: &str) -> Response {
    let body = json!({"code": status.as_u16(), "message": message});
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

#[tokio::test]
async fn single_validator_balances_and_proposer_duties_against_a_test_double() {
    let node = TestDoubleNode::start().await;
    let lock = cluster_lock();
    let op = Middleware::start(&lock, 3, node.addr).await;
    let share = |index: u64| {
        let group = interop_secret_key(index).public_key();
        let validator = lock.validators.iter().find(|v| v.pubkey == group).unwrap();
        PublicKeyBytes(validator.public_share(3).unwrap().to_bytes())
    };

    // One validator by its share in the path: the node sees the group key.
    let record = op
        .client
        .state_validator(StateId::Head, ValidatorId::PublicKey(share(326)))
        .await
        .unwrap();
    assert_eq!((record.index, record.validator.pubkey), (326, share(326)));
    assert!(node.last_seen().starts_with(&format!(
        "GET /eth/v1/beacon/states/head/validators/{}?",
        hex(&group_key(326))
    )));
    let by_index = op
        .client
        .state_validator(StateId::Head, ValidatorId::Index(7))
        .await
        .unwrap();
    assert_eq!(by_index.validator.pubkey, share(7));
    let other = op
        .client
        .state_validator(StateId::Head, ValidatorId::Index(1854))
        .await
        .unwrap();
    assert_eq!(other.validator.pubkey, group_key(1854));
    let missing = raw(
        op.addr,
        "GET",
        &format!(
            "/eth/v1/beacon/states/head/validators/{}",
            hex(&group_key(1))
        ),
        None,
    )
    .await;
    assert_eq!(
        (missing.status, missing.json()["message"].as_str()),
        (404, Some("Validator not found"))
    );

    // A validator record has no SSZ form the mapping could rewrite: a VC
    // accepting only SSZ is told so, and the node is not asked.
    let asked = node.seen.lock().unwrap().len();
    let ssz = raw_request(
        op.addr,
        "GET",
        &format!("/eth/v1/beacon/states/head/validators/{}", hex(&share(326))),
        None,
        &[("accept", "application/octet-stream")],
    )
    .await;
    assert_eq!(ssz.status, 406);
    assert!(!ssz.text().contains(&hex(&group_key(326))));
    assert_eq!(node.seen.lock().unwrap().len(), asked);

    // Balances: ids mapped in the query and in the body; the answer has no keys.
    let query = format!(
        "/eth/v1/beacon/states/head/validator_balances?id={},3&id={}",
        hex(&share(326)),
        hex(&share(1453))
    );
    let balances = raw(op.addr, "GET", &query, None).await;
    assert_eq!(balances.status, 200);
    let indices: Vec<String> = balances.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["index"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(indices, ["326", "3", "1453"]);
    assert_eq!(balances.json()["data"][0]["balance"], "32000000326");
    assert_eq!(balances.headers["x-upstream"], "test-double");
    assert!(node.last_seen().contains(&format!(
        "?id={},3&id={} ",
        hex(&group_key(326)),
        hex(&group_key(1453))
    )));
    let body = format!(r#"["{}", "1854"]"#, hex(&share(834)));
    let posted = raw(
        op.addr,
        "POST",
        "/eth/v1/beacon/states/head/validator_balances",
        Some(&body),
    )
    .await;
    assert_eq!(posted.json()["data"][0]["index"], "834");
    assert!(node
        .last_seen()
        .ends_with(&format!(r#"["{}", "1854"]"#, hex(&group_key(834)))));

    // Proposer duties: DV proposers by share, others unchanged, all else as sent.
    let duties = op.client.proposer_duties(EPOCH).await.unwrap();
    assert_eq!(duties.data.len(), 8);
    assert_eq!(duties.dependent_root.map(|r| r.0), Some([0xd7; 32]));
    let mut seen_dv = false;
    for duty in &duties.data {
        let expected = if DV_VALIDATORS.contains(&duty.validator_index) {
            seen_dv = true;
            share(duty.validator_index)
        } else {
            group_key(duty.validator_index)
        };
        assert_eq!(duty.pubkey, expected, "slot {}", duty.slot);
    }
    assert!(seen_dv);
    let path = format!("/eth/v1/validator/duties/proposer/{EPOCH}");
    let through = raw(op.addr, "GET", &path, None).await;
    let straight = raw(node.addr, "GET", &path, None).await;
    let expected = DV_VALIDATORS.iter().fold(straight.text(), |text, &index| {
        text.replace(&hex(&group_key(index)), &hex(&share(index)))
    });
    assert_eq!(through.text(), expected);
    assert_eq!(through.headers["x-upstream"], "test-double");

    // A success answer whose keys are not keys is the upstream's fault: 502.
    let broken = raw(
        op.addr,
        "GET",
        &format!("/eth/v1/validator/duties/proposer/{BROKEN_EPOCH}"),
        None,
    )
    .await;
    assert_eq!(broken.status, 502);
    let message = broken.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("pubkey \"0x12\"") && message.contains("proposer/999"),
        "{message}"
    );
}

/// The three ways a validator client may ask for an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VcAccept {
    JsonOnly,
    /// Lodestar's default (`--http.responseWireFormat ssz`).
    SszPreferred,
    SszOnly,
}

impl VcAccept {
    const ALL: [VcAccept; 3] = [
        VcAccept::JsonOnly,
        VcAccept::SszPreferred,
        VcAccept::SszOnly,
    ];

    fn header(self) -> &'static str {
        match self {
            VcAccept::JsonOnly => "application/json",
            VcAccept::SszPreferred => "application/octet-stream;q=1,application/json;q=0.9",
            VcAccept::SszOnly => "application/octet-stream",
        }
    }
}

/// What the wire double answers in, chosen from an `Accept` header the way
/// Lodestar's server does (highest q-value among the two types, `*/*` as
/// JSON, JSON without a header); `None` for 406.
fn double_wire_format(accept: Option<&str>) -> Option<&'static str> {
    let Some(accept) = accept else {
        return Some("application/json");
    };
    let mut best: Option<(f64, &'static str)> = None;
    for range in accept.to_lowercase().split(',') {
        let mut parts = range.split(';');
        let media = match parts.next().unwrap_or("").trim() {
            "application/json" | "*/*" => "application/json",
            "application/octet-stream" => "application/octet-stream",
            _ => continue,
        };
        let q = parts
            .find_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .map(|q| q.parse::<f64>().unwrap_or(-1.0))
            })
            .unwrap_or(1.0);
        if q > 0.0 && q <= 1.0 && best.is_none_or(|(seen, _)| q >= seen) {
            best = Some((q, media));
        }
    }
    best.map(|(_, media)| media)
}

/// Little-endian u64, as SSZ writes it.
fn le(value: u64) -> [u8; 8] {
    value.to_le_bytes()
}

/// One record of each keyed answer, in the double's registry.
#[derive(Clone, Debug)]
enum Keyed {
    Attester {
        index: u64,
        key: PublicKeyBytes,
        slot: u64,
    },
    Proposer {
        index: u64,
        key: PublicKeyBytes,
        slot: u64,
    },
    Sync {
        index: u64,
        key: PublicKeyBytes,
        positions: Vec<u64>,
    },
    Identity {
        index: u64,
        key: PublicKeyBytes,
    },
    Ptc {
        index: u64,
        key: PublicKeyBytes,
        slot: u64,
    },
}

impl Keyed {
    fn with_key(&self, f: impl Fn(u64, PublicKeyBytes) -> PublicKeyBytes) -> Keyed {
        let mut out = self.clone();
        match &mut out {
            Keyed::Attester { index, key, .. }
            | Keyed::Proposer { index, key, .. }
            | Keyed::Sync { index, key, .. }
            | Keyed::Identity { index, key }
            | Keyed::Ptc { index, key, .. } => *key = f(*index, *key),
        }
        out
    }

    fn json(&self) -> Value {
        match self {
            Keyed::Attester { index, key, slot } => json!({
                "pubkey": hex(key), "validator_index": index.to_string(),
                "committee_index": (index % 4).to_string(), "committee_length": "128",
                "committees_at_slot": "4", "validator_committee_index": (index % 128).to_string(),
                "slot": slot.to_string(),
            }),
            Keyed::Proposer { index, key, slot } | Keyed::Ptc { index, key, slot } => json!({
                "pubkey": hex(key), "validator_index": index.to_string(), "slot": slot.to_string(),
            }),
            Keyed::Sync {
                index,
                key,
                positions,
            } => json!({
                "pubkey": hex(key), "validator_index": index.to_string(),
                "validator_sync_committee_indices": positions.iter().map(u64::to_string).collect::<Vec<_>>(),
            }),
            Keyed::Identity { index, key } => json!({
                "index": index.to_string(), "pubkey": hex(key), "activation_epoch": "0",
            }),
        }
    }

    /// The record's SSZ bytes (Lodestar's containers, written out by hand).
    fn ssz(&self) -> Vec<u8> {
        match self {
            Keyed::Attester { index, key, slot } => [
                &key.0[..],
                &le(*index),
                &le(index % 4),
                &le(128),
                &le(4),
                &le(index % 128),
                &le(*slot),
            ]
            .concat(),
            Keyed::Proposer { index, key, slot } => [&le(*slot)[..], &le(*index), &key.0].concat(),
            Keyed::Sync {
                index,
                key,
                positions,
            } => {
                let mut bytes = [&key.0[..], &le(*index), &60u32.to_le_bytes()].concat();
                for position in positions {
                    bytes.extend_from_slice(&le(*position));
                }
                bytes
            }
            Keyed::Identity { index, key } => [&le(*index)[..], &key.0, &le(0)].concat(),
            Keyed::Ptc { .. } => unreachable!("no SSZ form is defined"),
        }
    }
}

/// An SSZ list: fixed-size records back to back, variable-size ones after
/// a table of 4-byte offsets.
fn ssz_list(records: &[Keyed]) -> Vec<u8> {
    let encoded: Vec<Vec<u8>> = records.iter().map(Keyed::ssz).collect();
    if !matches!(records.first(), Some(Keyed::Sync { .. })) {
        return encoded.concat();
    }
    let mut offset = 4 * encoded.len();
    let mut bytes = Vec::new();
    for record in &encoded {
        bytes.extend_from_slice(&(offset as u32).to_le_bytes());
        offset += record.len();
    }
    bytes.extend(encoded.concat());
    bytes
}

/// TEST DOUBLE of a beacon node that answers in SSZ when the `Accept`
/// header allows it, as Lodestar's does: validator identities and the
/// attester, sync and proposer (v1) duties in either encoding; validator
/// records, proposer duties v2 and PTC duties in JSON whatever is asked (no
/// SSZ encoding exists for them). Its registry is the interop keys of
/// [`DV_VALIDATORS`] and [`OTHER_VALIDATORS`]. It records the `Accept` of
/// each request, and breaks the rules only where told: state `rogue` answers
/// validator records in SSZ, epoch [`BROKEN_EPOCH`] answers a truncated SSZ
/// list or a `text/plain` body. `register_validator` is accepted (200).
struct WireDoubleNode {
    addr: SocketAddr,
    accepts: Arc<Mutex<Vec<Option<String>>>>,
    registrations: Arc<Mutex<Vec<Bytes>>>,
    _server: JoinHandle<()>,
}

impl WireDoubleNode {
    async fn start() -> WireDoubleNode {
        let accepts = Arc::new(Mutex::new(Vec::new()));
        let registrations = Arc::new(Mutex::new(Vec::new()));
        let (seen, posted) = (Arc::clone(&accepts), Arc::clone(&registrations));
        let routes = warp::method()
            .and(warp::path::full())
            .and(warp::header::optional::<String>("accept"))
            .and(warp::body::bytes())
            .map(
                move |method: warp::http::Method,
                      path: warp::path::FullPath,
                      accept: Option<String>,
                      body: Bytes| {
                    seen.lock().unwrap().push(accept.clone());
                    if path.as_str() == "/eth/v1/validator/register_validator" {
                        posted.lock().unwrap().push(body);
                        return warp::reply().into_response();
                    }
                    wire_double_answer(method.as_str(), path.as_str(), accept.as_deref(), &body)
                },
            )
            .boxed();
        let (addr, server) = serve(routes).await;
        WireDoubleNode {
            addr,
            accepts,
            registrations,
            _server: server,
        }
    }

    fn last_accept(&self) -> Option<String> {
        self.accepts.lock().unwrap().last().cloned().flatten()
    }
}

/// The double's registry: index -> group key.
fn wire_registry() -> BTreeMap<u64, PublicKeyBytes> {
    DV_VALIDATORS
        .iter()
        .chain(&OTHER_VALIDATORS)
        .map(|&index| (index, group_key(index)))
        .collect()
}

/// The records the double answers `method path` with, for the requested ids.
fn wire_records(path: &str, ids: &[String]) -> Option<Vec<Keyed>> {
    let registry = wire_registry();
    let requested: Vec<(u64, PublicKeyBytes)> = ids
        .iter()
        .filter_map(|id| double_find(&registry, id).flatten())
        .collect();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let epoch = segments.last().and_then(|e| e.parse::<u64>().ok());
    let records = match segments.as_slice() {
        [.., "validator_identities"] => requested
            .iter()
            .map(|&(index, key)| Keyed::Identity { index, key })
            .collect(),
        [.., "duties", "attester", _] => {
            let first = epoch? * 8;
            requested
                .iter()
                .map(|&(index, key)| Keyed::Attester {
                    index,
                    key,
                    slot: first + index % 8,
                })
                .collect()
        }
        [.., "duties", "ptc", _] => {
            let first = epoch? * 8;
            requested
                .iter()
                .map(|&(index, key)| Keyed::Ptc {
                    index,
                    key,
                    slot: first + index % 8,
                })
                .collect()
        }
        [.., "duties", "sync", _] => requested
            .iter()
            .map(|&(index, key)| Keyed::Sync {
                index,
                key,
                positions: (0..1 + index % 3).map(|n| (index + n * 7) % 32).collect(),
            })
            .collect(),
        [.., "duties", "proposer", _] => {
            let epoch = epoch?;
            let all: Vec<(u64, PublicKeyBytes)> = registry.into_iter().collect();
            (epoch * 8..epoch * 8 + 8)
                .map(|slot| {
                    let (index, key) = all[slot as usize % all.len()];
                    Keyed::Proposer { index, key, slot }
                })
                .collect()
        }
        _ => return None,
    };
    Some(records)
}

/// The wire double's answer to one request.
fn wire_double_answer(method: &str, path: &str, accept: Option<&str>, body: &[u8]) -> Response {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ids: Vec<String> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            let list = v.get("ids").cloned().unwrap_or(v);
            serde_json::from_value(list).ok()
        })
        .unwrap_or_default();
    // Validator records: JSON only, except on the rogue state.
    if let ["eth", "v1", "beacon", "states", state, "validators", rest @ ..] = segments.as_slice() {
        let registry = wire_registry();
        let wanted: Vec<String> = match rest {
            [id] => vec![id.to_string()],
            _ if method == "POST" => ids,
            _ => registry.keys().map(u64::to_string).collect(),
        };
        let records: Vec<Value> = wanted
            .iter()
            .filter_map(|id| double_find(&registry, id).flatten())
            .map(|(index, key)| double_validator(index, &key))
            .collect();
        if *state == "rogue" {
            let keys: Vec<u8> = wanted
                .iter()
                .filter_map(|id| double_find(&registry, id).flatten())
                .flat_map(|(_, key)| key.0)
                .collect();
            return ssz_reply(keys);
        }
        let data = match rest {
            [_] => records.into_iter().next().unwrap_or(Value::Null),
            _ => Value::Array(records),
        };
        return warp::reply::json(
            &json!({"execution_optimistic": false, "finalized": false, "data": data}),
        )
        .into_response();
    }
    let json_only = matches!(
        segments.as_slice(),
        ["eth", "v2", ..] | [.., "duties", "ptc", _]
    );
    if segments.last() == Some(&BROKEN_EPOCH.to_string().as_str()) {
        return if segments.contains(&"attester") {
            ssz_reply(vec![0x5a; 100])
        } else {
            warp::reply::with_header(hex(&group_key(326)), "content-type", "text/plain")
                .into_response()
        };
    }
    let Some(records) = wire_records(path, &ids) else {
        return double_error(StatusCode::NOT_FOUND, "no such endpoint");
    };
    let format = if json_only {
        Some("application/json")
    } else {
        double_wire_format(accept)
    };
    match format {
        Some("application/octet-stream") => ssz_reply(ssz_list(&records)),
        Some(_) => {
            let data: Vec<Value> = records.iter().map(Keyed::json).collect();
            warp::reply::json(&json!({
                "dependent_root": to_hex(&[0xd7; 32]),
                "execution_optimistic": false,
                "data": data,
            }))
            .into_response()
        }
        None => double_error(StatusCode::NOT_ACCEPTABLE, "no acceptable media type"),
    }
}

fn ssz_reply(bytes: Vec<u8>) -> Response {
    warp::reply::with_header(bytes, "content-type", "application/octet-stream").into_response()
}

/// One mapped route of the wire double: method, path, JSON body, and
/// whether its answer has an SSZ form.
struct Route {
    method: &'static str,
    path: String,
    body: Option<String>,
    ssz: bool,
}

fn wire_routes() -> Vec<Route> {
    let all: Vec<String> = DV_VALIDATORS
        .iter()
        .chain(&OTHER_VALIDATORS)
        .map(u64::to_string)
        .collect();
    let indices = serde_json::to_string(&all).unwrap();
    let route = |method, path: String, body: Option<String>, ssz| Route {
        method,
        path,
        body,
        ssz,
    };
    let states = "/eth/v1/beacon/states/head";
    vec![
        route(
            "POST",
            format!("/eth/v1/validator/duties/attester/{EPOCH}"),
            Some(indices.clone()),
            true,
        ),
        route(
            "POST",
            format!("/eth/v1/validator/duties/sync/{EPOCH}"),
            Some(indices.clone()),
            true,
        ),
        route(
            "GET",
            format!("/eth/v1/validator/duties/proposer/{EPOCH}"),
            None,
            true,
        ),
        route(
            "POST",
            format!("{states}/validator_identities"),
            Some(indices.clone()),
            true,
        ),
        route(
            "GET",
            format!("/eth/v2/validator/duties/proposer/{EPOCH}"),
            None,
            false,
        ),
        route(
            "POST",
            format!("/eth/v1/validator/duties/ptc/{EPOCH}"),
            Some(indices.clone()),
            false,
        ),
        route("GET", format!("{states}/validators"), None, false),
        route(
            "POST",
            format!("{states}/validators"),
            Some(format!(r#"{{"ids":{indices}}}"#)),
            false,
        ),
        route("GET", format!("{states}/validators/326"), None, false),
    ]
}

#[tokio::test]
async fn every_mapped_answer_carries_the_operators_shares_in_json_and_ssz() {
    let node = WireDoubleNode::start().await;
    let lock = cluster_lock();
    let op = Middleware::start(&lock, 2, node.addr).await;
    let share = |index: u64, key: PublicKeyBytes| {
        let group = interop_secret_key(index).public_key();
        match lock.validators.iter().find(|v| v.pubkey == group) {
            Some(validator) => PublicKeyBytes(validator.public_share(2).unwrap().to_bytes()),
            None => key,
        }
    };
    let groups: Vec<String> = DV_VALIDATORS.iter().map(|&i| hex(&group_key(i))).collect();
    for route in wire_routes() {
        let straight = raw_request(
            node.addr,
            route.method,
            &route.path,
            route.body.clone().map(reqwest::Body::from),
            &[("accept", "application/json")],
        )
        .await;
        assert_eq!(straight.status, 200, "{}", route.path);
        let expected_json = DV_VALIDATORS.iter().fold(straight.text(), |text, &index| {
            text.replace(
                &hex(&group_key(index)),
                &hex(&share(index, group_key(index))),
            )
        });
        assert_ne!(
            expected_json,
            straight.text(),
            "{} holds no DV key",
            route.path
        );
        for accept in VcAccept::ALL {
            let through = raw_request(
                op.addr,
                route.method,
                &route.path,
                route.body.clone().map(reqwest::Body::from),
                &[("accept", accept.header())],
            )
            .await;
            let case = format!("{} {} with {accept:?}", route.method, route.path);
            match (accept, route.ssz) {
                (VcAccept::JsonOnly, _) | (VcAccept::SszPreferred, false) => {
                    assert_eq!(through.status, 200, "{case}: {}", through.text());
                    assert_eq!(
                        through.content_type.as_deref(),
                        Some("application/json"),
                        "{case}"
                    );
                    assert_eq!(through.text(), expected_json, "{case}");
                }
                (_, true) => {
                    assert_eq!(through.status, 200, "{case}: {:?}", through.body);
                    assert_eq!(
                        through.content_type.as_deref(),
                        Some("application/octet-stream"),
                        "{case}"
                    );
                    let records = wire_records(
                        &route.path,
                        &serde_json::from_str::<Vec<String>>(route.body.as_deref().unwrap_or("[]"))
                            .unwrap(),
                    )
                    .unwrap();
                    let shares: Vec<Keyed> = records.iter().map(|r| r.with_key(share)).collect();
                    assert_eq!(through.body.as_ref(), ssz_list(&shares), "{case}");
                    assert_ne!(ssz_list(&records), ssz_list(&shares), "{case}");
                }
                (_, false) => {
                    assert_eq!(through.status, 406, "{case}: {}", through.text());
                    let message = through.json()["message"].as_str().unwrap().to_string();
                    assert!(
                        message.contains("application/json only")
                            && message.contains("no SSZ encoding"),
                        "{case}: {message}"
                    );
                }
            }
            // Whatever was asked, no group key of the cluster reaches the VC.
            for group in &groups {
                assert!(!through.text_lossy().contains(group.as_str()), "{case}");
            }
            for index in DV_VALIDATORS {
                let bytes = group_key(index).0;
                assert!(
                    !through.body.windows(48).any(|w| w == bytes),
                    "{case}: group key of {index} in the answer"
                );
            }
            // JSON-only routes ask the beacon node for JSON.
            if !route.ssz && through.status == 200 {
                assert_eq!(
                    node.last_accept().as_deref(),
                    Some("application/json"),
                    "{case}"
                );
            }
            if route.ssz {
                assert_eq!(
                    node.last_accept().as_deref(),
                    Some(accept.header()),
                    "{case}"
                );
            }
        }
    }
}

#[tokio::test]
async fn answers_the_mapping_cannot_read_are_502_never_group_keys() {
    let node = WireDoubleNode::start().await;
    let lock = cluster_lock();
    let op = Middleware::start(&lock, 1, node.addr).await;
    let group = interop_secret_key(326).public_key();
    let validator = lock.validators.iter().find(|v| v.pubkey == group).unwrap();
    let share = hex(&PublicKeyBytes(
        validator.public_share(1).unwrap().to_bytes(),
    ));
    let indices = Some(r#"["326","7"]"#);
    let cases = [
        // Validator records in SSZ, though JSON was asked for.
        (
            "GET",
            "/eth/v1/beacon/states/rogue/validators?id=326".to_string(),
            None,
            "of content type \"application/octet-stream\"",
        ),
        (
            "GET",
            format!("/eth/v1/beacon/states/rogue/validators/{share}"),
            None,
            "of content type \"application/octet-stream\"",
        ),
        // A truncated SSZ duty list.
        (
            "POST",
            format!("/eth/v1/validator/duties/attester/{BROKEN_EPOCH}"),
            indices,
            "100 bytes is not a List[AttesterDuty]",
        ),
        // Neither JSON nor SSZ.
        (
            "POST",
            format!("/eth/v1/validator/duties/sync/{BROKEN_EPOCH}"),
            indices,
            "of content type \"text/plain\"",
        ),
    ];
    for (method, path, body, reason) in cases {
        for accept in VcAccept::ALL {
            let answer = raw_request(
                op.addr,
                method,
                &path,
                body.map(reqwest::Body::from),
                &[("accept", accept.header())],
            )
            .await;
            if accept == VcAccept::SszOnly && path.contains("rogue") {
                // Never forwarded: the route is mapped as JSON only.
                assert_eq!(answer.status, 406, "{path}");
                continue;
            }
            let case = format!("{path} with {accept:?}");
            assert_eq!(answer.status, 502, "{case}: {}", answer.text_lossy());
            let message = answer.json()["message"].as_str().unwrap().to_string();
            let shown = path.split('?').next().unwrap();
            assert!(
                message.contains(reason) && message.contains(shown),
                "{case}: {message}"
            );
            assert!(
                !answer.text_lossy().contains(&hex(&group_key(326))),
                "{case}"
            );
            assert!(
                !answer.body.windows(48).any(|w| w == group_key(326).0),
                "{case}"
            );
        }
    }
}

#[tokio::test]
async fn registrations_of_public_shares_are_refused_naming_each() {
    let node = WireDoubleNode::start().await;
    let lock = cluster_lock();
    let op = Middleware::start(&lock, 1, node.addr).await;
    let share = |index: u64| {
        let group = interop_secret_key(index).public_key();
        let validator = lock.validators.iter().find(|v| v.pubkey == group).unwrap();
        PublicKeyBytes(validator.public_share(1).unwrap().to_bytes())
    };
    let registration = |key: &PublicKeyBytes| {
        json!({
            "message": {"fee_recipient": to_hex(&[1; 20]), "gas_limit": "30000000", "timestamp": "1", "pubkey": hex(key)},
            "signature": to_hex(&[2; 96]),
        })
    };
    let ssz_registration =
        |key: &PublicKeyBytes| [&[1u8; 20][..], &le(30_000_000), &le(1), &key.0, &[2; 96]].concat();
    let path = "/eth/v1/validator/register_validator";
    // A solo validator and two shares: refused whole, each share named.
    let keys = [group_key(1854), share(326), share(7)];
    let json_body = Value::Array(keys.iter().map(registration).collect()).to_string();
    let ssz_body: Vec<u8> = keys.iter().flat_map(ssz_registration).collect();
    for (content_type, body) in [
        ("application/json", json_body.into_bytes()),
        ("application/octet-stream", ssz_body),
    ] {
        let answer = raw_request(
            op.addr,
            "POST",
            path,
            Some(reqwest::Body::from(body)),
            &[("content-type", content_type)],
        )
        .await;
        assert_eq!(answer.status, 400, "{content_type}: {}", answer.text());
        let failures = answer.json()["failures"].as_array().unwrap().clone();
        let indices: Vec<u64> = failures
            .iter()
            .map(|f| f["index"].as_u64().unwrap())
            .collect();
        assert_eq!(indices, [1, 2], "{content_type}");
        let message = failures[0]["message"].as_str().unwrap();
        assert!(
            message.contains(&hex(&share(326)))
                && message.contains(&hex(&group_key(326)))
                && message.contains("does not combine validator registrations"),
            "{message}"
        );
    }
    assert!(node.registrations.lock().unwrap().is_empty());
    // Without shares the body reaches the beacon node as sent.
    let solo = Value::Array(vec![registration(&group_key(1854))]).to_string();
    let answer = raw(op.addr, "POST", path, Some(&solo)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        node.registrations.lock().unwrap().as_slice(),
        [Bytes::from(solo)]
    );
}
