//! The validator client's attester and aggregation duties with whole keys,
//! against the project's state-backed beacon node (the devnet chain, which
//! verifies every attestation and aggregate it is sent): every duty is
//! attested and accepted, v1 (deneb) and v2 (fulu); every aggregation the
//! keys select is accepted and no other is attempted. Slashing protection:
//! a client restarted from its database refuses to sign what conflicts with
//! what it signed before, and a beacon node offering slashable data (a
//! TEST DOUBLE that proxies the real node but answers `attestation_data`
//! with data of its choosing) gets every duty refused, nothing posted.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use warp::Filter;

use dv_aggregator::beacon::proxy::{proxy_filter, ProxyConfig};
use dv_aggregator::crypto::interop::interop_secret_key;
use dv_aggregator::devnet::chain::DevnetChain;
use dv_aggregator::spec::selection::is_aggregator;
use dv_aggregator::spec::{AttestationData, ChainSpec, Checkpoint, ForkName, Root, Slot};
use dv_aggregator::vc::aggregate::AggregateOutcome;
use dv_aggregator::vc::attest::{AttestOutcome, AttestationRecord};
use dv_aggregator::vc::keys::ValidatorKey;
use dv_aggregator::vc::{Drive, Vc, VcConfig, VcHandle};

const VALIDATORS: u64 = 2048;
/// The client's keys: the first 64 interop validators.
const KEYS: u64 = 64;

fn spec(fork: ForkName) -> ChainSpec {
    let mut spec = ChainSpec::minimal().with_genesis_fork(fork);
    spec.seconds_per_slot = 1;
    spec
}

async fn chain(fork: ForkName) -> DevnetChain {
    // Genesis a minute ago: the chain is driven by hand, not by the clock.
    let genesis = dv_aggregator::spec::time::unix_now().as_secs() - 60;
    DevnetChain::start(spec(fork), fork, VALIDATORS, genesis)
        .await
        .unwrap()
}

async fn client(beacon: &str, data_dir: &std::path::Path) -> VcHandle {
    let keys = (0..KEYS)
        .map(|index| ValidatorKey::new(interop_secret_key(index), None))
        .collect();
    Vc::start(
        VcConfig::new(beacon, keys)
            .with_data_dir(data_dir)
            .with_drive(Drive::Manual),
    )
    .await
    .unwrap()
}

/// Runs the client through `slots` (of one epoch) and returns every
/// attestation record; the chain, when given, is advanced to each slot first.
async fn attest_epoch(
    chain: Option<&DevnetChain>,
    vc: &Vc,
    slots: std::ops::Range<Slot>,
) -> Vec<AttestationRecord> {
    let mut records = Vec::new();
    for slot in slots {
        if let Some(chain) = chain {
            chain.advance_to(slot).await.unwrap();
        }
        if slot % 8 == 0 {
            vc.run_epoch(slot / 8).await;
        }
        vc.run_slot(slot).await;
        records.extend(vc.run_attestations(slot).await);
        vc.run_aggregations(slot).await;
    }
    records
}

async fn attest_and_aggregate_on(fork: ForkName) {
    let chain = chain(fork).await;
    let data = tempfile::tempdir().unwrap();
    let vc = client(&chain.url(), data.path()).await;
    let records = attest_epoch(Some(&chain), &vc, 0..8).await;
    assert_eq!(
        records.len() as u64,
        KEYS,
        "one attestation duty per key in epoch 0"
    );
    for record in &records {
        assert!(
            matches!(record.outcome, AttestOutcome::Published { .. }),
            "{record:?}"
        );
    }
    let pool = chain.node().pool();
    let accepted: BTreeSet<(Slot, u64)> = pool
        .accepted_attestations()
        .iter()
        .map(|a| (a.slot, a.validator_index))
        .collect();
    let duties: BTreeSet<(Slot, u64)> = records
        .iter()
        .map(|r| (r.slot, r.validator_index))
        .collect();
    assert_eq!(
        accepted, duties,
        "the chain accepted every attestation, and only those"
    );
    // The truth of aggregation: each key's own selection proof, with the
    // committee length of the chain's state.
    let loaded = chain.loaded().unwrap();
    let info = dv_aggregator::api::ChainInfo::fetch(
        &dv_aggregator::api::BeaconNodeClient::new(&chain.url()).unwrap(),
    )
    .await
    .unwrap();
    let mut selected = BTreeSet::new();
    for record in &records {
        let length = loaded
            .committees
            .get_beacon_committee(record.slot, record.committee_index)
            .unwrap()
            .len() as u64;
        let proof = interop_secret_key(record.validator_index)
            .sign(info.selection_proof_signing_root(record.slot).as_slice());
        if is_aggregator(length, &proof.to_bytes(), &info.spec.preset) {
            selected.insert((record.slot, record.validator_index));
        }
    }
    let aggregates = vc.take_aggregates();
    let published: BTreeSet<(Slot, u64)> = aggregates
        .iter()
        .map(|record| {
            assert!(
                matches!(record.outcome, AggregateOutcome::Published { .. }),
                "{record:?}"
            );
            (record.slot, record.validator_index)
        })
        .collect();
    assert_eq!(published, selected, "aggregations attempted vs selected");
    let chain_aggregates: BTreeSet<(Slot, u64)> = pool
        .accepted_aggregates()
        .iter()
        .map(|a| (a.slot, a.aggregator_index))
        .collect();
    assert_eq!(chain_aggregates, selected, "aggregates the chain accepted");
    assert!(!selected.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_keys_attest_and_aggregate_v1_on_deneb() {
    attest_and_aggregate_on(ForkName::Deneb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_keys_attest_and_aggregate_v2_on_fulu() {
    attest_and_aggregate_on(ForkName::Fulu).await;
}

/// TEST DOUBLE of a beacon node (or middleware) that offers chosen
/// attestation data: it proxies everything to the real node except
/// `attestation_data`, which it answers with `tamper(real data)`, and it
/// records the attestations posted to it (forwarding none).
struct Tampering {
    addr: SocketAddr,
    posted: Arc<Mutex<Vec<Value>>>,
}

async fn tampering(upstream: &str, tamper: fn(AttestationData) -> AttestationData) -> Tampering {
    let posted = Arc::new(Mutex::new(Vec::new()));
    let upstream_url = reqwest::Url::parse(upstream).unwrap();
    let real = upstream.to_string();
    let data = warp::path!("eth" / "v1" / "validator" / "attestation_data")
        .and(warp::query::raw())
        .then(move |query: String| {
            let real = real.clone();
            async move {
                let url = format!("{real}/eth/v1/validator/attestation_data?{query}");
                let body: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
                let data: AttestationData = serde_json::from_value(body["data"].clone()).unwrap();
                warp::reply::json(&json!({ "data": tamper(data) }))
            }
        });
    let record = Arc::clone(&posted);
    let pool = warp::path!("eth" / String / "beacon" / "pool" / "attestations")
        .and(warp::post())
        .and(warp::body::json())
        .map(move |_version: String, body: Value| {
            record.lock().unwrap().push(body);
            warp::reply::json(&json!({}))
        });
    let routes = data
        .map(warp::Reply::into_response)
        .or(pool.map(warp::Reply::into_response))
        .unify()
        .or(proxy_filter(ProxyConfig::new(upstream_url)).unwrap())
        .unify();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    Tampering { addr, posted }
}

/// Another head block for the same target: a double vote.
fn other_head(data: AttestationData) -> AttestationData {
    AttestationData {
        beacon_block_root: Root::repeat_byte(0xdd),
        ..data
    }
}

/// A vote surrounded by the one signed before in the epoch (source 0,
/// target the epoch): source 1, target the epoch before.
fn surrounded(data: AttestationData) -> AttestationData {
    AttestationData {
        source: Checkpoint {
            epoch: 1,
            root: Root::repeat_byte(0x11),
        },
        target: Checkpoint {
            epoch: data.target.epoch - 1,
            root: data.target.root,
        },
        ..data
    }
}

/// Epoch 3 is attested honestly; then a client restarted from the same
/// database is offered other data for epoch 3's duties by a TEST DOUBLE
/// node: every duty must be refused by slashing protection, nothing posted.
async fn refuses_after_restart(tamper: fn(AttestationData) -> AttestationData, expected: &str) {
    let chain = chain(ForkName::Deneb).await;
    let data = tempfile::tempdir().unwrap();
    let honest = client(&chain.url(), data.path()).await;
    let signed = attest_epoch(Some(&chain), &honest, 24..32).await;
    assert_eq!(signed.len() as u64, KEYS);
    assert!(signed
        .iter()
        .all(|r| matches!(r.outcome, AttestOutcome::Published { .. })));
    drop(honest);
    let node = tampering(&chain.url(), tamper).await;
    let again = client(&format!("http://{}", node.addr), data.path()).await;
    let records = attest_epoch(None, &again, 24..32).await;
    assert_eq!(records.len(), signed.len());
    for record in &records {
        match &record.outcome {
            AttestOutcome::Slashable(reason) => {
                assert!(reason.contains(expected), "{reason}")
            }
            other => panic!("not refused as {expected}: {other:?}"),
        }
    }
    assert!(node.posted.lock().unwrap().is_empty(), "nothing was posted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_client_refuses_a_double_vote() {
    refuses_after_restart(other_head, "double vote").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_offering_a_surrounded_vote_is_refused() {
    refuses_after_restart(surrounded, "surround").await;
}
