//! The validator client over real HTTP on 127.0.0.1:0, driven through its
//! step functions (`run_epoch`, `run_slot`) instead of the wall clock.
//!
//! - Local mode against the sidecar serving an oracle state: every decision
//!   (attestation and sync; deneb-minimal-2048, and fulu-mainnet-1024 for
//!   false sync cases) equals the oracle's, and the subscriptions the node
//!   recorded carry the oracle's `is_aggregator`.
//! - Distributed mode against a TEST DOUBLE middleware (below): decisions
//!   equal the oracle's whatever order the double answers in; an answer left
//!   out, an answer of another slot's proof, an unrequested answer, an
//!   epoch-wide request answered for its first slot only, the is_aggregator
//!   endpoint and a reply of the wrong length are each handled as specified,
//!   failing the affected validator's duty alone, with a log line; a keystore
//!   that is no share in the lock is refused at start.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use common::{hex_bytes, oracle_beacon_node, oracle_vectors, split_interop_keys, u64_of};
use dv_aggregator::api::client::BeaconNodeClient;
use dv_aggregator::api::types::{
    BeaconCommitteeSelection, IsAggregatorRequestItem, SignatureBytes, SyncCommitteeSelection,
};
use dv_aggregator::api::ChainInfo;
use dv_aggregator::beacon::sidecar::Sidecar;
use dv_aggregator::cluster::create::write_keystore_with_password;
use dv_aggregator::cluster::ClusterLock;
use dv_aggregator::crypto::interop::interop_secret_key;
use dv_aggregator::crypto::keystore::Kdf;
use dv_aggregator::crypto::threshold::verify_partial;
use dv_aggregator::crypto::{PublicKey, SecretKey, Signature};
use dv_aggregator::vc::{
    load_keystores, DecisionDuty, Drive, Outcome, SelectionDecision, SelectionEndpoint, Vc,
    VcConfig, VcError, VcHandle,
};
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::Filter;

// ---------------------------------------------------------------------------
// Oracle cases and the sidecar.

#[derive(Debug, Clone)]
struct AttestationCase {
    slot: u64,
    epoch: u64,
    validator_index: u64,
    committee_index: u64,
    committees_at_slot: u64,
    committee_length: u64,
    is_aggregator: bool,
    selection_proof: [u8; 96],
}

#[derive(Debug, Clone)]
struct SyncCase {
    slot: u64,
    epoch: u64,
    validator_index: u64,
    subcommittee_index: u64,
    is_aggregator: bool,
    selection_proof: [u8; 96],
}

fn attestation_cases(vectors: &Value) -> Vec<AttestationCase> {
    vectors["attestation_cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| AttestationCase {
            slot: u64_of(&c["slot"]),
            epoch: u64_of(&c["epoch"]),
            validator_index: u64_of(&c["validator_index"]),
            committee_index: u64_of(&c["committee_index"]),
            committees_at_slot: u64_of(&c["committees_at_slot"]),
            committee_length: u64_of(&c["committee_length"]),
            is_aggregator: c["is_aggregator"].as_bool().unwrap(),
            selection_proof: hex_bytes(&c["selection_proof"]),
        })
        .collect()
}

fn sync_cases(vectors: &Value) -> Vec<SyncCase> {
    vectors["sync_cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| SyncCase {
            slot: u64_of(&c["slot"]),
            epoch: u64_of(&c["epoch"]),
            validator_index: u64_of(&c["validator_index"]),
            subcommittee_index: u64_of(&c["subcommittee_index"]),
            is_aggregator: c["is_aggregator"].as_bool().unwrap(),
            selection_proof: hex_bytes(&c["selection_proof"]),
        })
        .collect()
}

/// Writes `keystore-<i>.json` + `.txt` of each secret (cheap scrypt) into `dir`.
fn write_keystores(dir: &Path, secrets: &[SecretKey]) {
    for (i, secret) in secrets.iter().enumerate() {
        let path = dir.join(format!("keystore-{i}.json"));
        write_keystore_with_password(secret, &path, None, Kdf::INSECURE_FAST).unwrap();
    }
}

fn attestation_decision(
    decisions: &[SelectionDecision],
    validator_index: u64,
    slot: u64,
) -> Vec<&SelectionDecision> {
    decisions
        .iter()
        .filter(|d| {
            d.validator_index == validator_index
                && d.slot == slot
                && matches!(d.duty, DecisionDuty::Attestation { .. })
        })
        .collect()
}

fn sync_decision<'a>(
    decisions: &'a [SelectionDecision],
    case: &SyncCase,
) -> Vec<&'a SelectionDecision> {
    decisions
        .iter()
        .filter(|d| {
            d.validator_index == case.validator_index
                && d.slot == case.slot
                && d.duty
                    == DecisionDuty::Sync {
                        subcommittee_index: case.subcommittee_index,
                    }
        })
        .collect()
}

/// Every attestation case has exactly one decision, equal to the oracle's:
/// its committee, its outcome and (when the client keeps one) its proof.
fn assert_attestations_as_oracle(
    decisions: &[SelectionDecision],
    cases: &[&AttestationCase],
    proofs_kept: bool,
) {
    for case in cases {
        let found = attestation_decision(decisions, case.validator_index, case.slot);
        assert_eq!(found.len(), 1, "{case:?}: {found:?}");
        let decision = found[0];
        assert_eq!(decision.epoch, case.epoch);
        assert_eq!(
            decision.duty,
            DecisionDuty::Attestation {
                committee_index: case.committee_index,
                committee_length: case.committee_length,
            },
            "{case:?}"
        );
        let expected_proof =
            proofs_kept.then(|| Signature::from_bytes(&case.selection_proof).unwrap());
        assert_eq!(
            decision.outcome,
            Outcome::Decided {
                is_aggregator: case.is_aggregator,
                selection_proof: expected_proof,
            },
            "{case:?}"
        );
    }
}

fn assert_sync_as_oracle(decisions: &[SelectionDecision], cases: &[&SyncCase]) {
    for case in cases {
        let found = sync_decision(decisions, case);
        assert_eq!(found.len(), 1, "{case:?}: {found:?}");
        assert_eq!(
            found[0].outcome,
            Outcome::Decided {
                is_aggregator: case.is_aggregator,
                selection_proof: Some(Signature::from_bytes(&case.selection_proof).unwrap()),
            },
            "{case:?}"
        );
    }
}

/// The node recorded one subscription per case duty, with the case's committee
/// and `is_aggregator` (or false for `undecided`).
fn assert_subscriptions(sidecar: &Sidecar, cases: &[&AttestationCase], undecided: &[u64]) {
    let recorded = sidecar.subscriptions().beacon_committee();
    for case in cases {
        let found: Vec<_> = recorded
            .iter()
            .filter(|s| s.validator_index == case.validator_index && s.slot == case.slot)
            .collect();
        let expected = case.is_aggregator && !undecided.contains(&case.validator_index);
        assert_eq!(found.len(), 1, "{case:?}: {found:?}");
        assert_eq!(
            (
                found[0].committee_index,
                found[0].committees_at_slot,
                found[0].is_aggregator
            ),
            (case.committee_index, case.committees_at_slot, expected),
            "{case:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Log capture: one global subscriber writing into a buffer the tests search.

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buffer);
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter("dv_aggregator=debug")
            .with_writer(move || LogWriter(Arc::clone(&writer)))
            .try_init();
        buffer
    });
}

/// The captured log lines of the client named `vc` that contain every needle.
fn log_lines(vc: &str, needles: &[&str]) -> Vec<String> {
    let buffer = LOGS.get().expect("capture_logs() first").lock().unwrap();
    String::from_utf8_lossy(&buffer)
        .lines()
        .filter(|line| {
            line.contains(&format!("name={vc}")) && needles.iter().all(|n| line.contains(n))
        })
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------
// Local mode.

async fn local_mode_matches_the_oracle(folder: &str) {
    let vectors = oracle_vectors(folder);
    let sidecar = oracle_beacon_node(folder).await;
    let attestations = attestation_cases(&vectors);
    let syncs = sync_cases(&vectors);
    let indices: BTreeSet<u64> = attestations
        .iter()
        .map(|c| c.validator_index)
        .chain(syncs.iter().map(|c| c.validator_index))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let secrets: Vec<SecretKey> = indices.iter().map(|&i| interop_secret_key(i)).collect();
    write_keystores(dir.path(), &secrets);
    let keys = load_keystores(dir.path(), None).unwrap();
    assert_eq!(keys.len(), indices.len());

    let config = VcConfig::new(format!("http://{}", sidecar.addr()), keys)
        .with_name(format!("local-{folder}"))
        .with_drive(Drive::Manual);
    let vc = Vc::start(config).await.expect("vc starts");
    // Epoch 4 asks for 4 and 5, epoch 5 for 5 and 6: the three epochs of the cases.
    let first = vc.run_epoch(4).await;
    let second = vc.run_epoch(5).await;
    assert_eq!(first.undecided + second.undecided, 0);
    assert_eq!(
        vc.validator_indices().len(),
        indices.len(),
        "every key found by its public key"
    );
    // The proofs an aggregation duty would use are kept (until pruned, two
    // epochs behind the slots run below).
    for case in &attestations {
        assert_eq!(
            vc.selection_proof(case.slot, case.validator_index)
                .map(|p| p.to_bytes()),
            Some(case.selection_proof)
        );
    }
    let sync_slots: BTreeSet<u64> = syncs.iter().map(|c| c.slot).collect();
    for &slot in &sync_slots {
        vc.run_slot(slot).await;
        for case in syncs.iter().filter(|c| c.slot == slot) {
            assert_eq!(
                vc.sync_selection_proof(slot, case.validator_index, case.subcommittee_index)
                    .map(|p| p.to_bytes()),
                Some(case.selection_proof),
                "{case:?}"
            );
        }
    }

    let decisions = vc.decisions();
    let attestation_refs: Vec<&AttestationCase> = attestations.iter().collect();
    let outcomes: BTreeSet<bool> = attestations.iter().map(|c| c.is_aggregator).collect();
    assert_eq!(outcomes.len(), 2, "{folder}: both outcomes occur");
    assert_attestations_as_oracle(&decisions, &attestation_refs, true);
    assert_sync_as_oracle(&decisions, &syncs.iter().collect::<Vec<_>>());
    assert!(decisions
        .iter()
        .all(|d| matches!(d.outcome, Outcome::Decided { .. })));
    // One decision per duty, even where two epoch rounds covered it.
    let keys: BTreeSet<(u64, u64, DecisionDutyKey)> = decisions.iter().map(duty_key).collect();
    assert_eq!(keys.len(), decisions.len());

    assert_subscriptions(&sidecar, &attestation_refs, &[]);
    let sync_subscriptions = sidecar.subscriptions().sync_committee();
    let members = &vectors["sync_committee"]["current_sync_committee_validator_indices"];
    let period_end = vectors["constants"]["EPOCHS_PER_SYNC_COMMITTEE_PERIOD"]
        .as_u64()
        .unwrap();
    for case in &syncs {
        let positions: Vec<u64> = (0u64..)
            .zip(members.as_array().unwrap())
            .filter(|(_, m)| m.as_u64() == Some(case.validator_index))
            .map(|(p, _)| p)
            .collect();
        let found: Vec<_> = sync_subscriptions
            .iter()
            .filter(|s| s.validator_index == case.validator_index)
            .collect();
        assert_eq!(found.len(), 1, "{case:?}");
        assert_eq!(found[0].sync_committee_indices, positions);
        assert_eq!(found[0].until_epoch, period_end);
    }
}

type DecisionDutyKey = (u8, u64);

fn duty_key(d: &SelectionDecision) -> (u64, u64, DecisionDutyKey) {
    let kind = match d.duty {
        DecisionDuty::Attestation {
            committee_index, ..
        } => (0, committee_index),
        DecisionDuty::Sync { subcommittee_index } => (1, subcommittee_index),
    };
    (d.slot, d.validator_index, kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_decides_as_the_oracle_on_minimal() {
    local_mode_matches_the_oracle("deneb-minimal-2048").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_decides_as_the_oracle_on_mainnet_with_false_sync_cases() {
    let vectors = oracle_vectors("fulu-mainnet-1024");
    assert!(sync_cases(&vectors).iter().any(|c| !c.is_aggregator));
    local_mode_matches_the_oracle("fulu-mainnet-1024").await;
}

// ---------------------------------------------------------------------------
// Distributed mode against a TEST DOUBLE middleware.

const OPERATORS: u64 = 4;
const THRESHOLD: u64 = 3;
/// The operator whose shares the validator client under test holds.
const OPERATOR: u64 = 1;

/// How the double misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Answers in the reverse of request order.
    Reversed,
    /// Leaves this validator's answers out.
    LeaveOut(u64),
    /// Answers this validator with its proof of the next slot.
    OtherSlotProof(u64),
    /// Adds an answer for a (validator, slot) nobody asked about.
    Unrequested,
    /// Answers only the items of the earliest slot of each request, as a
    /// middleware does when other operators ask slot by slot.
    EarliestSlotOnly,
    /// is_aggregator: one boolean fewer than items.
    ShortBooleans,
}

/// The cluster: each chosen validator's interop key split 3-of-4.
struct Cluster {
    lock: ClusterLock,
    /// validator index -> (group secret, this operator's share).
    keys: HashMap<u64, (SecretKey, SecretKey)>,
}

impl Cluster {
    fn new(indices: &BTreeSet<u64>) -> Self {
        let indices: Vec<u64> = indices.iter().copied().collect();
        let (split, shares) = split_interop_keys(&indices, THRESHOLD, OPERATORS);
        let keys = shares
            .into_iter()
            .map(|(index, mut shares)| {
                let own = shares.remove(&OPERATOR).expect("a share of this operator");
                (index, (interop_secret_key(index), own))
            })
            .collect();
        let lock = split.lock;
        Cluster { lock, keys }
    }

    /// The share keystores of this operator, loaded as the client loads them.
    fn keystores(&self, dir: &Path) -> Vec<dv_aggregator::vc::ValidatorKey> {
        let shares: Vec<SecretKey> = self.keys.values().map(|(_, share)| share.clone()).collect();
        write_keystores(dir, &shares);
        load_keystores(dir, None).unwrap()
    }
}

/// TEST DOUBLE of the DV middleware, for one operator. It proxies every
/// ordinary call to the sidecar, replacing group-key hex by this operator's
/// share hex in replies and back in requests (a plain string replacement), and
/// answers the selection endpoints as the real middleware must: each partial
/// is verified against its public share (bad ones get a 400 naming them), and
/// the answer is the validator's whole-key proof, which is what combining a
/// threshold of honest partials gives. `fault` makes it misbehave.
struct Double {
    sidecar: String,
    http: reqwest::Client,
    chain: ChainInfo,
    /// validator index -> (group secret, share public key).
    validators: HashMap<u64, (SecretKey, PublicKey)>,
    /// (group hex, share hex) without 0x.
    hex_pairs: Vec<(String, String)>,
    fault: Fault,
}

impl Double {
    async fn start(sidecar: &Sidecar, cluster: &Cluster, fault: Fault) -> SocketAddr {
        let base = format!("http://{}", sidecar.addr());
        let chain = ChainInfo::fetch(&BeaconNodeClient::new(&base).unwrap())
            .await
            .unwrap();
        let validators = cluster
            .keys
            .iter()
            .map(|(&index, (group, share))| (index, (group.clone(), share.public_key())))
            .collect();
        let hex_pairs = cluster
            .keys
            .values()
            .map(|(group, share)| {
                (
                    hex::encode(group.public_key().to_bytes()),
                    hex::encode(share.public_key().to_bytes()),
                )
            })
            .collect();
        let double = Arc::new(Double {
            sidecar: base,
            http: reqwest::Client::new(),
            chain,
            validators,
            hex_pairs,
            fault,
        });
        let with_double = {
            let double = Arc::clone(&double);
            warp::any().map(move || Arc::clone(&double))
        };
        let beacon = warp::path!("eth" / "v1" / "validator" / "beacon_committee_selections")
            .and(warp::post())
            .and(warp::body::json())
            .and(with_double.clone())
            .map(
                |items: Vec<BeaconCommitteeSelection>, double: Arc<Double>| {
                    double.beacon_selections(items)
                },
            );
        let sync = warp::path!("eth" / "v1" / "validator" / "sync_committee_selections")
            .and(warp::post())
            .and(warp::body::json())
            .and(with_double.clone())
            .map(|items: Vec<SyncCommitteeSelection>, double: Arc<Double>| {
                double.sync_selections(items)
            });
        let is_aggregator = warp::path!("eth" / "v1" / "validator" / "is_aggregator")
            .and(warp::post())
            .and(warp::body::json())
            .and(with_double.clone())
            .then(
                |items: Vec<IsAggregatorRequestItem>, double: Arc<Double>| async move {
                    double.is_aggregator(items).await
                },
            );
        let proxy = warp::method()
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::body::bytes())
            .and(with_double)
            .then(
                |method,
                 path: warp::path::FullPath,
                 query: String,
                 body: Bytes,
                 double: Arc<Double>| async move {
                    double.proxy(method, path.as_str(), &query, body).await
                },
            );
        let routes = beacon
            .or(sync)
            .unify()
            .or(is_aggregator)
            .unify()
            .or(proxy)
            .unify();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(routes).incoming(listener).run());
        addr
    }

    /// Verifies each partial against its share; the whole-key proofs, or the
    /// body of the 400 naming every bad partial.
    fn combine(
        &self,
        items: &[(u64, SignatureBytes, [u8; 32], [u8; 32])],
    ) -> Result<Vec<Signature>, Value> {
        let mut failures = Vec::new();
        let mut proofs = Vec::new();
        for (position, (index, partial, root, answer_root)) in items.iter().enumerate() {
            let Some((group, share)) = self.validators.get(index) else {
                failures.push(
                    json!({"index": position, "message": format!("unknown validator {index}")}),
                );
                continue;
            };
            let valid =
                Signature::from_bytes(&partial.0).is_ok_and(|p| verify_partial(share, root, &p));
            if !valid {
                failures.push(json!({"index": position, "message": format!("partial of validator {index} does not verify against its public share")}));
                continue;
            }
            proofs.push(group.sign(answer_root));
        }
        if failures.is_empty() {
            return Ok(proofs);
        }
        Err(json!({"code": 400, "message": "invalid partials", "failures": failures}))
    }

    fn attestation_root(&self, slot: u64) -> [u8; 32] {
        self.chain.selection_proof_signing_root(slot).0
    }

    fn beacon_selections(&self, items: Vec<BeaconCommitteeSelection>) -> warp::reply::Response {
        let checks: Vec<_> = items
            .iter()
            .map(|item| {
                let answer_slot = match self.fault {
                    Fault::OtherSlotProof(v) if v == item.validator_index => item.slot + 1,
                    _ => item.slot,
                };
                (
                    item.validator_index,
                    item.selection_proof,
                    self.attestation_root(item.slot),
                    self.attestation_root(answer_slot),
                )
            })
            .collect();
        let proofs = match self.combine(&checks) {
            Ok(proofs) => proofs,
            Err(body) => return reply(StatusCode::BAD_REQUEST, body),
        };
        let mut answers: Vec<BeaconCommitteeSelection> = items
            .iter()
            .zip(proofs)
            .map(|(item, proof)| BeaconCommitteeSelection {
                selection_proof: SignatureBytes(proof.to_bytes()),
                ..item.clone()
            })
            .collect();
        let earliest = items.iter().map(|i| i.slot).min();
        self.misbehave(&mut answers, |a| (a.validator_index, a.slot), earliest);
        if self.fault == Fault::Unrequested {
            let mut extra = answers[0].clone();
            extra.slot += 1_000;
            answers.push(extra);
        }
        reply(StatusCode::OK, json!({ "data": answers }))
    }

    fn sync_selections(&self, items: Vec<SyncCommitteeSelection>) -> warp::reply::Response {
        let root = |item: &SyncCommitteeSelection| {
            self.chain
                .sync_selection_proof_signing_root(item.slot, item.subcommittee_index)
                .0
        };
        let checks: Vec<_> = items
            .iter()
            .map(|item| {
                (
                    item.validator_index,
                    item.selection_proof,
                    root(item),
                    root(item),
                )
            })
            .collect();
        let proofs = match self.combine(&checks) {
            Ok(proofs) => proofs,
            Err(body) => return reply(StatusCode::BAD_REQUEST, body),
        };
        let mut answers: Vec<SyncCommitteeSelection> = items
            .iter()
            .zip(proofs)
            .map(|(item, proof)| SyncCommitteeSelection {
                selection_proof: SignatureBytes(proof.to_bytes()),
                ..item.clone()
            })
            .collect();
        let earliest = items.iter().map(|i| i.slot).min();
        self.misbehave(&mut answers, |a| (a.validator_index, a.slot), earliest);
        reply(StatusCode::OK, json!({ "data": answers }))
    }

    fn misbehave<T>(
        &self,
        answers: &mut Vec<T>,
        key: impl Fn(&T) -> (u64, u64),
        earliest: Option<u64>,
    ) {
        match self.fault {
            Fault::Reversed => answers.reverse(),
            Fault::LeaveOut(v) => answers.retain(|a| key(a).0 != v),
            Fault::EarliestSlotOnly => answers.retain(|a| Some(key(a).1) == earliest),
            _ => {}
        }
    }

    /// Verifies the partials, then asks the sidecar's is_aggregator with the
    /// whole-key proofs.
    async fn is_aggregator(&self, items: Vec<IsAggregatorRequestItem>) -> warp::reply::Response {
        let checks: Vec<_> = items
            .iter()
            .map(|item| {
                let root = self.attestation_root(item.slot);
                (item.validator_index, item.slot_signature, root, root)
            })
            .collect();
        let proofs = match self.combine(&checks) {
            Ok(proofs) => proofs,
            Err(body) => return reply(StatusCode::BAD_REQUEST, body),
        };
        let combined: Vec<IsAggregatorRequestItem> = items
            .into_iter()
            .zip(proofs)
            .map(|(item, proof)| IsAggregatorRequestItem {
                slot_signature: SignatureBytes(proof.to_bytes()),
                ..item
            })
            .collect();
        let client = BeaconNodeClient::new(&self.sidecar).unwrap();
        let mut answers = client.is_aggregator(&combined).await.unwrap();
        if self.fault == Fault::ShortBooleans {
            answers.pop();
        }
        reply(StatusCode::OK, json!({ "data": answers }))
    }

    async fn proxy(
        &self,
        method: warp::http::Method,
        path: &str,
        query: &str,
        body: Bytes,
    ) -> warp::reply::Response {
        let mut url = format!("{}{path}", self.sidecar);
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        let mut request_body = String::from_utf8_lossy(&body).into_owned();
        for (group, share) in &self.hex_pairs {
            request_body = request_body.replace(share, group);
        }
        let response = self
            .http
            .request(
                reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(),
                &url,
            )
            .header("content-type", "application/json")
            .body(request_body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let mut text = response.text().await.unwrap();
        for (group, share) in &self.hex_pairs {
            text = text.replace(group, share);
        }
        warp::http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(text.into())
            .unwrap()
    }
}

fn reply(status: StatusCode, body: Value) -> warp::reply::Response {
    use warp::Reply;
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

/// A distributed-mode run: the sidecar, the double, a client of operator 1.
struct Run {
    sidecar: Sidecar,
    vc: VcHandle,
    attestations: Vec<AttestationCase>,
    syncs: Vec<SyncCase>,
    name: String,
}

/// Validators of epochs 5 and 6 with both outcomes, and sync members: the
/// cases a distributed run checks.
fn chosen_cases(vectors: &Value) -> (Vec<AttestationCase>, Vec<SyncCase>) {
    let later = |epoch: u64| epoch == 5 || epoch == 6;
    let all: Vec<AttestationCase> = attestation_cases(vectors)
        .into_iter()
        .filter(|c| later(c.epoch))
        .collect();
    let mut chosen: Vec<AttestationCase> = all
        .iter()
        .filter(|c| c.is_aggregator)
        .take(8)
        .cloned()
        .collect();
    chosen.extend(all.iter().filter(|c| !c.is_aggregator).take(8).cloned());
    let mut seen = BTreeSet::new();
    chosen.retain(|c| seen.insert(c.validator_index));
    let syncs: Vec<SyncCase> = sync_cases(vectors)
        .into_iter()
        .filter(|c| later(c.epoch))
        .take(6)
        .collect();
    (chosen, syncs)
}

async fn distributed_run(name: &str, endpoint: SelectionEndpoint, fault: Fault) -> Run {
    capture_logs();
    let folder = "deneb-minimal-2048";
    let vectors = oracle_vectors(folder);
    let sidecar = oracle_beacon_node(folder).await;
    let (attestations, syncs) = chosen_cases(&vectors);
    let indices: BTreeSet<u64> = attestations
        .iter()
        .map(|c| c.validator_index)
        .chain(syncs.iter().map(|c| c.validator_index))
        .collect();
    let cluster = Cluster::new(&indices);
    let double = Double::start(&sidecar, &cluster, fault).await;
    let dir = tempfile::tempdir().unwrap();
    let keys = cluster.keystores(dir.path());
    let config = VcConfig::new(format!("http://{double}"), keys)
        .with_name(name)
        .distributed(endpoint, cluster.lock.clone())
        .with_drive(Drive::Manual);
    let vc = Vc::start(config).await.expect("vc starts");
    vc.run_epoch(5).await;
    // Every slot of epochs 5 and 6 (minimal: 8 slots each): re-asks, sync selections.
    for slot in 40..56 {
        vc.run_slot(slot).await;
    }
    Run {
        sidecar,
        vc,
        attestations,
        syncs,
        name: name.to_string(),
    }
}

impl Run {
    fn attestation_refs(&self, except: Option<u64>) -> Vec<&AttestationCase> {
        self.attestations
            .iter()
            .filter(|c| Some(c.validator_index) != except)
            .collect()
    }

    /// Every duty but `victim`'s is decided as the oracle decides, and
    /// `victim`'s failed at its slot for a reason containing `reason`.
    fn assert_fails_alone(&self, victim: &AttestationCase, reason: &str) {
        let decisions = self.vc.decisions();
        let others = self.attestation_refs(Some(victim.validator_index));
        assert_attestations_as_oracle(&decisions, &others, true);
        let failed = self.failed(victim.validator_index);
        assert!(
            failed
                .iter()
                .any(|(slot, why)| *slot == victim.slot && why.contains(reason)),
            "{failed:?}"
        );
        assert!(decisions
            .iter()
            .filter(|d| d.validator_index != victim.validator_index)
            .all(|d| matches!(d.outcome, Outcome::Decided { .. })));
    }

    fn failed(&self, validator_index: u64) -> Vec<(u64, String)> {
        self.vc
            .decisions()
            .into_iter()
            .filter(|d| d.validator_index == validator_index)
            .filter_map(|d| match d.outcome {
                Outcome::Failed { reason } => Some((d.slot, reason)),
                Outcome::Decided { .. } => None,
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_decisions_equal_the_oracle_whatever_the_answer_order() {
    for (name, fault) in [("in-order", Fault::None), ("reversed", Fault::Reversed)] {
        let run = distributed_run(name, SelectionEndpoint::Selections, fault).await;
        let decisions = run.vc.decisions();
        assert_attestations_as_oracle(&decisions, &run.attestation_refs(None), true);
        assert_sync_as_oracle(&decisions, &run.syncs.iter().collect::<Vec<_>>());
        assert!(
            decisions
                .iter()
                .all(|d| matches!(d.outcome, Outcome::Decided { .. })),
            "{name}"
        );
        let lock_keys: BTreeSet<[u8; 48]> = run
            .vc
            .decisions()
            .iter()
            .map(|d| d.validator.to_bytes())
            .collect();
        for case in &run.attestations {
            let group = interop_secret_key(case.validator_index)
                .public_key()
                .to_bytes();
            assert!(lock_keys.contains(&group), "decisions name the group key");
        }
        assert_subscriptions(&run.sidecar, &run.attestation_refs(None), &[]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_left_out_fails_that_validator_alone() {
    let vectors = oracle_vectors("deneb-minimal-2048");
    let victim = chosen_cases(&vectors).0[0].clone();
    let run = distributed_run(
        "left-out",
        SelectionEndpoint::Selections,
        Fault::LeaveOut(victim.validator_index),
    )
    .await;
    run.assert_fails_alone(&victim, "no answer");
    let logged = log_lines(
        &run.name,
        &[
            "aggregator selection failed",
            &format!("validator_index={}", victim.validator_index),
            &format!("slot={}", victim.slot),
        ],
    );
    assert!(
        !logged.is_empty(),
        "the failure is logged with the validator and slot"
    );
    // Undecided at epoch start: subscribed with is_aggregator false.
    assert_subscriptions(
        &run.sidecar,
        &run.attestation_refs(None),
        &[victim.validator_index],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_of_another_slot_does_not_verify_and_fails_that_validator_alone() {
    let vectors = oracle_vectors("deneb-minimal-2048");
    let victim = chosen_cases(&vectors).0[1].clone();
    let run = distributed_run(
        "other-slot",
        SelectionEndpoint::Selections,
        Fault::OtherSlotProof(victim.validator_index),
    )
    .await;
    run.assert_fails_alone(
        &victim,
        "does not verify against the validator's public key",
    );
    assert_eq!(
        run.vc.selection_proof(victim.slot, victim.validator_index),
        None
    );
    let logged = log_lines(
        &run.name,
        &[
            "does not verify",
            &format!("validator_index={}", victim.validator_index),
        ],
    );
    assert!(!logged.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrequested_answer_is_ignored_with_a_warning() {
    let run = distributed_run(
        "unrequested",
        SelectionEndpoint::Selections,
        Fault::Unrequested,
    )
    .await;
    let decisions = run.vc.decisions();
    assert_attestations_as_oracle(&decisions, &run.attestation_refs(None), true);
    assert!(decisions.iter().all(|d| d.slot < 1_000));
    assert!(decisions
        .iter()
        .all(|d| matches!(d.outcome, Outcome::Decided { .. })));
    assert!(!log_lines(&run.name, &["WARN", "not asked"]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epoch_requests_answered_for_one_slot_are_completed_slot_by_slot() {
    let run = distributed_run(
        "slot-by-slot",
        SelectionEndpoint::Selections,
        Fault::EarliestSlotOnly,
    )
    .await;
    let decisions = run.vc.decisions();
    assert_attestations_as_oracle(&decisions, &run.attestation_refs(None), true);
    assert!(decisions
        .iter()
        .all(|d| matches!(d.outcome, Outcome::Decided { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_is_aggregator_endpoint_gives_the_oracle_booleans() {
    let run = distributed_run(
        "is-aggregator",
        SelectionEndpoint::IsAggregator,
        Fault::None,
    )
    .await;
    let decisions = run.vc.decisions();
    // Booleans only: no proof to keep.
    assert_attestations_as_oracle(&decisions, &run.attestation_refs(None), false);
    // Sync still goes through sync_committee_selections, with proofs.
    assert_sync_as_oracle(&decisions, &run.syncs.iter().collect::<Vec<_>>());
    assert_subscriptions(&run.sidecar, &run.attestation_refs(None), &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_is_aggregator_reply_of_the_wrong_length_fails_its_duties() {
    let run = distributed_run(
        "short-booleans",
        SelectionEndpoint::IsAggregator,
        Fault::ShortBooleans,
    )
    .await;
    for case in &run.attestations {
        let failed = run.failed(case.validator_index);
        assert!(
            failed
                .iter()
                .any(|(slot, reason)| *slot == case.slot && reason.contains("booleans for")),
            "{case:?}: {failed:?}"
        );
    }
    assert!(!log_lines(&run.name, &["WARN", "booleans for"]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keystore_that_is_no_share_in_the_lock_is_refused_at_start() {
    let vectors = oracle_vectors("deneb-minimal-2048");
    let sidecar = oracle_beacon_node("deneb-minimal-2048").await;
    let (attestations, _) = chosen_cases(&vectors);
    let cluster = Cluster::new(&attestations.iter().map(|c| c.validator_index).collect());
    let dir = tempfile::tempdir().unwrap();
    let mut shares: Vec<SecretKey> = cluster.keys.values().map(|(_, s)| s.clone()).collect();
    let stranger = SecretKey::random();
    shares.push(stranger.clone());
    write_keystores(dir.path(), &shares);
    let keys = load_keystores(dir.path(), None).unwrap();
    let stranger_file = format!("keystore-{}.json", shares.len() - 1);
    let config = VcConfig::new(format!("http://{}", sidecar.addr()), keys)
        .distributed(SelectionEndpoint::Selections, cluster.lock.clone())
        .with_drive(Drive::Manual);
    let error = Vc::start(config).await.err().expect("start refused");
    assert!(matches!(error, VcError::Keys(_)), "{error}");
    let message = error.to_string();
    assert!(message.contains(&stranger_file), "{message}");
    assert!(
        message.contains(&stranger.public_key().to_string()),
        "{message}"
    );

    // Distributed mode without any lock is refused too.
    let keys = load_keystores(dir.path(), None).unwrap();
    let mut config =
        VcConfig::new(format!("http://{}", sidecar.addr()), keys).with_drive(Drive::Manual);
    config.strategy = dv_aggregator::vc::SelectionStrategy::Distributed {
        endpoint: SelectionEndpoint::Selections,
    };
    assert!(matches!(
        Vc::start(config).await,
        Err(VcError::LockRequired)
    ));
}
