//! `POST /eth/v1/validator/is_aggregator` over real HTTP: a warp server on
//! 127.0.0.1:0 serving `api::filters`, driven through `api::client`, with a
//! test-double backend built from the oracle vectors (one mainnet and one
//! minimal folder). Every attestation case must be answered as the executable
//! spec answered it, every class of bad input must be refused naming the
//! item, and the server must keep serving good requests afterwards.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use dv_aggregator::api::backend::{BackendError, BeaconCommittees, SelectionBackend, SlotContext};
use dv_aggregator::api::client::{BeaconNodeClient, ClientError};
use dv_aggregator::api::filters::{self, Limits};
use dv_aggregator::api::types::{
    BeaconCommitteeSelection, ErrorMessage, IsAggregatorRequestItem, SignatureBytes,
    SyncCommitteeSelection,
};
use dv_aggregator::crypto::interop::interop_secret_key;
use dv_aggregator::crypto::{CryptoError, PublicKey, Signature};
use dv_aggregator::spec::{CommitteeIndex, Epoch, Fork, Preset, Root, Slot, ValidatorIndex};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warp::Filter;

const MAINNET_FOLDER: &str = "fulu-mainnet-1024";
const MINIMAL_FOLDER: &str = "deneb-minimal-2048";

// ---------------------------------------------------------------- vectors --

fn hex_bytes<const N: usize>(value: &Value) -> [u8; N] {
    let text = value.as_str().expect("hex string");
    let mut bytes = [0u8; N];
    hex::decode_to_slice(text.strip_prefix("0x").expect("0x prefix"), &mut bytes).expect("hex");
    bytes
}

fn number(value: &Value) -> u64 {
    value.as_u64().expect("unsigned integer")
}

/// One `attestation_cases[]` entry as a request item and its expected answer.
#[derive(Clone)]
struct Case {
    item: IsAggregatorRequestItem,
    is_aggregator: bool,
    validator_pubkey: [u8; 48],
}

/// One oracle folder: the state summary, the committees of its three epochs
/// and the attestation cases.
struct Fixture {
    folder: &'static str,
    preset: Preset,
    fork: Fork,
    genesis_validators_root: Root,
    state_slot: Slot,
    state_epoch: Epoch,
    validator_count: u64,
    /// epoch -> (committees_per_slot, (slot, index) -> members)
    epochs: HashMap<Epoch, (u64, Arc<VectorCommittees>)>,
    cases: Vec<Case>,
}

impl Fixture {
    fn load(folder: &'static str) -> Fixture {
        let path = format!(
            "{}/tests/fixtures/oracle/{folder}/vectors.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("vectors.json"))
            .expect("json");
        let preset = match v["preset"].as_str() {
            Some("mainnet") => Preset::mainnet(),
            Some("minimal") => Preset::minimal(),
            other => panic!("unknown preset {other:?}"),
        };
        let constants = &v["constants"];
        assert_eq!(
            preset.SLOTS_PER_EPOCH,
            number(&constants["SLOTS_PER_EPOCH"])
        );
        assert_eq!(
            preset.TARGET_AGGREGATORS_PER_COMMITTEE,
            number(&constants["TARGET_AGGREGATORS_PER_COMMITTEE"])
        );
        let state = &v["state"];
        let fork = Fork {
            previous_version: hex_bytes(&state["fork"]["previous_version"]),
            current_version: hex_bytes(&state["fork"]["current_version"]),
            epoch: number(&state["fork"]["epoch"]),
        };
        let epochs = v["epochs"]
            .as_array()
            .expect("epochs")
            .iter()
            .map(|epoch| {
                let committees = epoch["committees"]
                    .as_array()
                    .expect("committees")
                    .iter()
                    .map(|c| {
                        let members = c["members"]
                            .as_array()
                            .expect("members")
                            .iter()
                            .map(number)
                            .collect();
                        ((number(&c["slot"]), number(&c["committee_index"])), members)
                    })
                    .collect();
                let committees = Arc::new(VectorCommittees { committees });
                (
                    number(&epoch["epoch"]),
                    (number(&epoch["committees_per_slot"]), committees),
                )
            })
            .collect();
        let cases = v["attestation_cases"]
            .as_array()
            .expect("attestation_cases")
            .iter()
            .map(|c| Case {
                item: IsAggregatorRequestItem {
                    validator_index: number(&c["validator_index"]),
                    committee_index: number(&c["committee_index"]),
                    committees_at_slot: number(&c["committees_at_slot"]),
                    slot: number(&c["slot"]),
                    slot_signature: SignatureBytes(hex_bytes(&c["selection_proof"])),
                },
                is_aggregator: c["is_aggregator"].as_bool().expect("bool"),
                validator_pubkey: hex_bytes(&c["validator_pubkey"]),
            })
            .collect();
        Fixture {
            folder,
            preset,
            fork,
            genesis_validators_root: Root::from(hex_bytes::<32>(&state["genesis_validators_root"])),
            state_slot: number(&state["slot"]),
            state_epoch: number(&state["epoch"]),
            validator_count: number(&state["validator_count"]),
            epochs,
            cases,
        }
    }

    fn committee(&self, slot: Slot, index: CommitteeIndex) -> &[ValidatorIndex] {
        let epoch = slot / self.preset.SLOTS_PER_EPOCH;
        self.epochs[&epoch]
            .1
            .get_beacon_committee(slot, index)
            .expect("committee in vectors")
    }
}

// ----------------------------------------------------------- test doubles --

/// The committees of one epoch as the vectors list them.
struct VectorCommittees {
    committees: HashMap<(Slot, CommitteeIndex), Vec<ValidatorIndex>>,
}

impl BeaconCommittees for VectorCommittees {
    fn get_beacon_committee(&self, slot: Slot, index: CommitteeIndex) -> Option<&[ValidatorIndex]> {
        self.committees.get(&(slot, index)).map(Vec::as_slice)
    }
}

/// TEST DOUBLE, not the project's state-backed backend: a `SelectionBackend`
/// answering from an oracle `vectors.json` (committees of `epochs[]`, fork and
/// genesis validators root of `state`) and the interop public keys of its
/// `validator_count` validators. It enforces the same rules as a real one:
/// slots outside the previous/current/next epoch of the state are out of
/// range, and indices past the registry are unknown.
struct VectorBackend {
    fixture: Arc<Fixture>,
    pubkeys: Vec<PublicKey>,
}

impl VectorBackend {
    fn new(fixture: Arc<Fixture>) -> VectorBackend {
        let pubkeys: Vec<PublicKey> = (0..fixture.validator_count)
            .map(|i| interop_secret_key(i).public_key())
            .collect();
        // The interop keys must be the keys the vectors' proofs were made with.
        for case in &fixture.cases {
            let index = usize::try_from(case.item.validator_index).expect("index");
            assert_eq!(
                pubkeys[index].to_bytes(),
                case.validator_pubkey,
                "{} validator {index}",
                fixture.folder
            );
        }
        VectorBackend { fixture, pubkeys }
    }
}

impl SelectionBackend for VectorBackend {
    fn selection_context(&self, slot: Slot) -> Result<SlotContext, BackendError> {
        let fixture = &self.fixture;
        let epoch = slot / fixture.preset.SLOTS_PER_EPOCH;
        let (committees_per_slot, committees) =
            fixture
                .epochs
                .get(&epoch)
                .ok_or(BackendError::SlotOutOfRange {
                    slot,
                    state_epoch: fixture.state_epoch,
                })?;
        Ok(SlotContext {
            committees_per_slot: *committees_per_slot,
            committees: committees.clone(),
            fork: fixture.fork,
            genesis_validators_root: fixture.genesis_validators_root,
        })
    }

    fn validator_pubkey(&self, index: ValidatorIndex) -> Option<PublicKey> {
        self.pubkeys.get(usize::try_from(index).ok()?).copied()
    }

    fn current_slot(&self) -> Option<Slot> {
        Some(self.fixture.state_slot)
    }

    fn preset(&self) -> &Preset {
        &self.fixture.preset
    }
}

/// TEST DOUBLE: a backend that has no state yet (`current_slot` says so, or
/// only `selection_context` does, as while a state is being replaced).
struct NotReadyBackend {
    current_slot: Option<Slot>,
    preset: Preset,
}

impl SelectionBackend for NotReadyBackend {
    fn selection_context(&self, _slot: Slot) -> Result<SlotContext, BackendError> {
        Err(BackendError::NotReady("no beacon state loaded yet".into()))
    }

    fn validator_pubkey(&self, _index: ValidatorIndex) -> Option<PublicKey> {
        None
    }

    fn current_slot(&self) -> Option<Slot> {
        self.current_slot
    }

    fn preset(&self) -> &Preset {
        &self.preset
    }
}

// ----------------------------------------------------------------- server --

/// Serves the extension routes like a node that mounts them, on 127.0.0.1:0.
async fn serve(backend: Arc<dyn SelectionBackend>, limits: Limits) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let routes = filters::is_aggregator_routes_with_limits(backend, limits)
        .or(filters::selections_not_implemented())
        .recover(filters::recover);
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    addr
}

/// A raw POST to the endpoint, for bodies the typed client cannot produce:
/// the status and the body text.
async fn post_raw_text(addr: SocketAddr, content_type: &str, body: Vec<u8>) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/eth/v1/validator/is_aggregator"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("response");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// A raw POST that must fail: the status and the Beacon API error body.
async fn post_raw(addr: SocketAddr, content_type: &str, body: Vec<u8>) -> (u16, ErrorMessage) {
    let (status, text) = post_raw_text(addr, content_type, body).await;
    let message =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not an error body ({e}): {text}"));
    (status, message)
}

/// A POST with a chunked body (no Content-Length), written by hand on a socket.
async fn post_chunked(addr: SocketAddr, body: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = "POST /eth/v1/validator/is_aggregator HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let mut request = head.as_bytes().to_vec();
    for chunk in body.chunks(1000) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // A server refusing early may close before every byte is written.
    let _ = stream.write_all(&request).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

fn expect_not_implemented<T: std::fmt::Debug>(reply: Result<T, ClientError>, endpoint: &str) {
    let error = reply.expect_err("501");
    assert_eq!(error.status(), Some(501), "{error}");
    let meaning = format!("{endpoint} is only served by distributed validator middleware");
    assert!(error.to_string().contains(&meaning), "{error}");
}

fn expect_status(result: Result<Vec<bool>, ClientError>, status: u16) -> ClientError {
    let error = result.expect_err("an error status");
    assert_eq!(error.status(), Some(status), "{error}");
    error
}

// ------------------------------------------------------------- bad inputs --

/// One class of bad item: a request item (as JSON, so that any byte string can
/// be sent) and a fragment of the message that must name it.
struct BadItem {
    class: &'static str,
    json: Value,
    message: &'static str,
}

fn to_json(item: &IsAggregatorRequestItem) -> Value {
    serde_json::to_value(item).expect("item json")
}

/// 96 bytes with the compression flag whose x coordinate has no point on G2.
fn off_curve_signature() -> SignatureBytes {
    (1u8..=255)
        .map(|x| {
            let mut bytes = [0u8; 96];
            bytes[0] = 0x80;
            bytes[95] = x;
            bytes
        })
        .find(|bytes| {
            matches!(
                Signature::from_bytes(bytes),
                Err(CryptoError::NotOnCurve { .. })
            )
        })
        .map(SignatureBytes)
        .expect("some small x is off the curve")
}

fn bad_items(fixture: &Fixture) -> Vec<BadItem> {
    let case = &fixture.cases[0];
    let item = || case.item.clone();
    let mut items = Vec::new();
    let mut push = |class, json, message| {
        items.push(BadItem {
            class,
            json,
            message,
        })
    };

    let mut short = to_json(&item());
    short["slot_signature"] = Value::String(format!("0x{}", "ab".repeat(95)));
    push(
        "wrong hex length",
        short,
        "expected 96 bytes (192 hex digits) after 0x, got 190",
    );

    let mut unquoted = to_json(&item());
    unquoted["slot"] = Value::from(case.item.slot);
    push("unquoted integer", unquoted, "quotes are required");

    push(
        "off-curve signature",
        to_json(&IsAggregatorRequestItem {
            slot_signature: off_curve_signature(),
            ..item()
        }),
        "is not a point on the curve",
    );

    push(
        "unknown validator",
        to_json(&IsAggregatorRequestItem {
            validator_index: fixture.validator_count + 7,
            ..item()
        }),
        "unknown validator index",
    );

    // A validator of the next slot's committee 0: in the vectors, not in this committee.
    let stranger = fixture.committee(case.item.slot + 1, 0)[0];
    assert!(!fixture
        .committee(case.item.slot, case.item.committee_index)
        .contains(&stranger));
    push(
        "validator not in the committee",
        to_json(&IsAggregatorRequestItem {
            validator_index: stranger,
            ..item()
        }),
        "is not in committee",
    );

    push(
        "wrong committees_at_slot",
        to_json(&IsAggregatorRequestItem {
            committees_at_slot: case.item.committees_at_slot + 1,
            ..item()
        }),
        "does not match the state",
    );

    let count = case.item.committees_at_slot;
    push(
        "committee index out of range",
        to_json(&IsAggregatorRequestItem {
            committee_index: count,
            ..item()
        }),
        "is out of range",
    );

    for slot in [
        (fixture.state_epoch + 2) * fixture.preset.SLOTS_PER_EPOCH,
        0,
    ] {
        push(
            "slot outside previous/current/next epoch",
            to_json(&IsAggregatorRequestItem { slot, ..item() }),
            "is outside the previous, current and next epoch",
        );
    }

    // Another validator's valid proof: a point that decodes but does not verify.
    let other = fixture
        .cases
        .iter()
        .find(|c| c.item.validator_index != case.item.validator_index)
        .expect("case");
    push(
        "invalid signature",
        to_json(&IsAggregatorRequestItem {
            slot_signature: other.item.slot_signature,
            ..item()
        }),
        "is not a valid selection proof",
    );
    items
}

// ---------------------------------------------------------------- harness --

/// One running server over one oracle folder, tested in chained steps.
struct Tester {
    fixture: Arc<Fixture>,
    addr: SocketAddr,
    client: BeaconNodeClient,
}

impl Tester {
    async fn new(folder: &'static str) -> Tester {
        let fixture = Arc::new(Fixture::load(folder));
        let backend = Arc::new(VectorBackend::new(fixture.clone()));
        let addr = serve(backend, Limits::default()).await;
        let client = BeaconNodeClient::new(&format!("http://{addr}")).expect("client");
        Tester {
            fixture,
            addr,
            client,
        }
    }

    async fn expect_answers(&self, cases: &[Case]) {
        let items: Vec<_> = cases.iter().map(|c| c.item.clone()).collect();
        let answers = self
            .client
            .is_aggregator(&items)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let expected: Vec<bool> = cases.iter().map(|c| c.is_aggregator).collect();
        assert_eq!(answers, expected, "{}", self.fixture.folder);
    }

    /// A small good request must still be answered after anything else.
    async fn expect_still_serving(&self) {
        self.expect_answers(&self.fixture.cases[..8]).await;
    }

    async fn test_every_attestation_case_in_a_few_big_requests(self) -> Self {
        let cases = &self.fixture.cases;
        assert!(cases.iter().any(|c| c.is_aggregator) && cases.iter().any(|c| !c.is_aggregator));
        let third = cases.len().div_ceil(3);
        for chunk in cases.chunks(third) {
            self.expect_answers(chunk).await;
        }
        self
    }

    async fn test_answers_follow_request_order(self) -> Self {
        let mut reversed = self.fixture.cases.clone();
        reversed.reverse();
        self.expect_answers(&reversed).await;
        // Interleave the slots of all three epochs, each case several times.
        let mut mixed: Vec<Case> = Vec::new();
        for round in 0..4 {
            mixed.extend(self.fixture.cases.iter().skip(round).step_by(3).cloned());
        }
        self.expect_answers(&mixed).await;
        self
    }

    async fn test_each_bad_item_is_named_and_the_next_request_succeeds(self) -> Self {
        let good = |i: usize| to_json(&self.fixture.cases[i].item);
        for bad in bad_items(&self.fixture) {
            let body = serde_json::to_vec(&Value::Array(vec![good(1), bad.json.clone(), good(2)]))
                .expect("body");
            let (status, error) = post_raw(self.addr, "application/json", body).await;
            assert_eq!(status, 400, "{}: {error:?}", bad.class);
            assert_eq!(error.code, 400);
            assert_eq!(error.failures.len(), 1, "{}: {error:?}", bad.class);
            assert_eq!(error.failures[0].index, 1, "{}", bad.class);
            assert!(
                error.failures[0].message.contains(bad.message),
                "{}: {error:?}",
                bad.class
            );
            self.expect_still_serving().await;
        }
        self
    }

    async fn test_typed_client_reports_failures_by_index(self) -> Self {
        let bad = bad_items(&self.fixture);
        let typed: Vec<IsAggregatorRequestItem> = bad
            .iter()
            .filter_map(|b| serde_json::from_value(b.json.clone()).ok())
            .collect();
        assert!(typed.len() >= 7, "most bad classes are well-formed items");
        let mut items: Vec<IsAggregatorRequestItem> = Vec::new();
        let mut bad_positions = Vec::new();
        for (i, bad) in typed.into_iter().enumerate() {
            items.push(self.fixture.cases[i].item.clone());
            bad_positions.push(items.len());
            items.push(bad);
        }
        let error = expect_status(self.client.is_aggregator(&items).await, 400);
        let named: Vec<usize> = error.failures().iter().map(|f| f.index).collect();
        assert_eq!(named, bad_positions, "{error}");
        self.expect_still_serving().await;
        self
    }

    async fn test_every_bad_class_in_one_request(self) -> Self {
        let bad = bad_items(&self.fixture);
        let mut body = Vec::new();
        let mut expected = Vec::new();
        for (i, b) in bad.iter().enumerate() {
            body.push(to_json(&self.fixture.cases[i + 10].item));
            expected.push((body.len(), b.message));
            body.push(b.json.clone());
        }
        let (status, error) = post_raw(
            self.addr,
            "application/json",
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(
            error.message,
            format!("{} of {} items are invalid", bad.len(), body.len())
        );
        assert_eq!(error.failures.len(), expected.len(), "{error:?}");
        for (failure, (index, message)) in error.failures.iter().zip(&expected) {
            assert_eq!(failure.index, *index);
            assert!(
                failure.message.contains(message),
                "{failure:?} should say {message:?}"
            );
        }
        self.expect_still_serving().await;
        self
    }

    async fn test_malformed_json_is_a_400_with_the_parser_message(self) -> Self {
        let mut body = serde_json::to_vec(&vec![to_json(&self.fixture.cases[0].item)]).unwrap();
        body.truncate(body.len() - 20);
        let (status, error) = post_raw(self.addr, "application/json", body).await;
        assert_eq!((status, error.code), (400, 400));
        assert!(error.message.contains("EOF while parsing"), "{error:?}");
        assert!(error.failures.is_empty());
        for not_a_list in [&b"{\"data\":[]}"[..], b"[1,2] trailing"] {
            let (status, error) =
                post_raw(self.addr, "application/json", not_a_list.to_vec()).await;
            assert_eq!(status, 400, "{error:?}");
        }
        self.expect_still_serving().await;
        self
    }

    async fn test_other_content_types_are_415(self) -> Self {
        let body = serde_json::to_vec(&vec![to_json(&self.fixture.cases[0].item)]).unwrap();
        for content_type in ["application/octet-stream", "text/plain"] {
            let (status, error) = post_raw(self.addr, content_type, body.clone()).await;
            assert_eq!((status, error.code), (415, 415), "{content_type}");
            assert!(error.message.contains("application/json"), "{error:?}");
        }
        let (status, text) =
            post_raw_text(self.addr, "application/json; charset=utf-8", body).await;
        assert_eq!(status, 200, "{text}");
        self
    }

    async fn test_chunked_bodies_are_accepted(self) -> Self {
        let cases = &self.fixture.cases[..40];
        let items: Vec<_> = cases.iter().map(|c| c.item.clone()).collect();
        let (status, body) = post_chunked(self.addr, &serde_json::to_vec(&items).unwrap()).await;
        assert_eq!(status, 200, "{body}");
        let reply: Value = serde_json::from_str(&body).expect("json reply");
        let expected: Vec<bool> = cases.iter().map(|c| c.is_aggregator).collect();
        assert_eq!(reply["data"], serde_json::to_value(expected).unwrap());
        self
    }

    async fn test_standard_selection_endpoints_are_501(self) -> Self {
        let case = &self.fixture.cases[0].item;
        let beacon = BeaconCommitteeSelection {
            validator_index: case.validator_index,
            slot: case.slot,
            selection_proof: case.slot_signature,
        };
        let reply = self.client.beacon_committee_selections(&[beacon]).await;
        expect_not_implemented(reply, "beacon_committee_selections");
        let sync = SyncCommitteeSelection {
            validator_index: case.validator_index,
            slot: case.slot,
            subcommittee_index: 0,
            selection_proof: case.slot_signature,
        };
        let reply = self.client.sync_committee_selections(&[sync]).await;
        expect_not_implemented(reply, "sync_committee_selections");
        self
    }

    async fn test_unknown_routes_and_methods_get_error_bodies(self) -> Self {
        let http = reqwest::Client::new();
        let get = http
            .get(format!(
                "http://{}/eth/v1/validator/is_aggregator",
                self.addr
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(get.status().as_u16(), 405);
        assert_eq!(get.json::<ErrorMessage>().await.unwrap().code, 405);
        let missing = http
            .post(format!("http://{}/eth/v1/validator/nothing", self.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status().as_u16(), 404);
        assert_eq!(missing.json::<ErrorMessage>().await.unwrap().code, 404);
        self
    }
}

async fn run_all_steps(folder: &'static str) {
    Tester::new(folder)
        .await
        .test_every_attestation_case_in_a_few_big_requests()
        .await
        .test_answers_follow_request_order()
        .await
        .test_each_bad_item_is_named_and_the_next_request_succeeds()
        .await
        .test_typed_client_reports_failures_by_index()
        .await
        .test_every_bad_class_in_one_request()
        .await
        .test_malformed_json_is_a_400_with_the_parser_message()
        .await
        .test_other_content_types_are_415()
        .await
        .test_chunked_bodies_are_accepted()
        .await
        .test_standard_selection_endpoints_are_501()
        .await
        .test_unknown_routes_and_methods_get_error_bodies()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mainnet_fulu_vectors_over_http() {
    run_all_steps(MAINNET_FOLDER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimal_deneb_vectors_over_http() {
    run_all_steps(MINIMAL_FOLDER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_and_too_many_items_are_refused_and_serving_goes_on() {
    let fixture = Arc::new(Fixture::load(MINIMAL_FOLDER));
    let limits = Limits {
        max_body_bytes: 64 * 1024,
        max_items: 100,
    };
    let addr = serve(Arc::new(VectorBackend::new(fixture.clone())), limits).await;
    let client = BeaconNodeClient::new(&format!("http://{addr}")).unwrap();
    let good: Vec<IsAggregatorRequestItem> = fixture.cases[..100]
        .iter()
        .map(|c| c.item.clone())
        .collect();
    let expected: Vec<bool> = fixture.cases[..100]
        .iter()
        .map(|c| c.is_aggregator)
        .collect();
    let still_serving =
        || async { assert_eq!(client.is_aggregator(&good).await.unwrap(), expected) };
    still_serving().await;

    // Over the byte limit, with a Content-Length and chunked.
    let big: Vec<IsAggregatorRequestItem> = good.iter().cycle().take(250).cloned().collect();
    let big_body = serde_json::to_vec(&big).unwrap();
    assert!(big_body.len() > 64 * 1024);
    let (status, error) = post_raw(addr, "application/json", big_body.clone()).await;
    assert_eq!((status, error.code), (413, 413));
    assert!(
        error.message.contains("exceeds the limit of 65536 bytes"),
        "{error:?}"
    );
    still_serving().await;
    let (status, body) = post_chunked(addr, &big_body).await;
    assert_eq!(status, 413, "{body}");
    still_serving().await;

    // Under the byte limit, over the item limit.
    let error = expect_status(
        client
            .is_aggregator(&good.iter().cycle().take(101).cloned().collect::<Vec<_>>())
            .await,
        400,
    );
    assert!(error.to_string().contains("more than 100 items"), "{error}");
    still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_without_state_answers_503() {
    let fixture = Fixture::load(MAINNET_FOLDER);
    let items: Vec<_> = fixture.cases[..4].iter().map(|c| c.item.clone()).collect();
    for current_slot in [None, Some(fixture.state_slot)] {
        let backend = Arc::new(NotReadyBackend {
            current_slot,
            preset: Preset::mainnet(),
        });
        let addr = serve(backend, Limits::default()).await;
        let client = BeaconNodeClient::new(&format!("http://{addr}")).unwrap();
        let error = expect_status(client.is_aggregator(&items).await, 503);
        assert!(
            error.to_string().contains("no beacon state loaded yet"),
            "{error}"
        );
    }
}
