//! Distributed validators doing their duties on a real beacon node: the
//! Lodestar 1.5.1 dev chain (altair from genesis, minimal preset; see
//! tests/lodestar/mod.rs) runs every interop validator but the first 16,
//! which are split 3-of-4 and run by four `dv-aggregator` middlewares and
//! four `dv-aggregator vc --distributed-mode` clients on 127.0.0.1.
//!
//! Over epochs 1 to 3 every attestation duty of the 16 is agreed, combined,
//! published, accepted by Lodestar's API and included on chain (the
//! participation flags of the 16 in Lodestar's own state, read as SSZ from
//! its debug endpoint and decoded by this project), and every aggregation
//! the undivided keys select yields an `AggregateAndProof` Lodestar
//! accepts, and no other. Then operator 4 stops, and epochs 5 and 6 are
//! attested all the same.

mod common;
mod lodestar;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use dv_aggregator::api::client::BeaconNodeClient;
use dv_aggregator::api::filters::Limits;
use dv_aggregator::api::types::StateId;
use dv_aggregator::api::ChainInfo;
use dv_aggregator::cluster::ClusterLock;
use dv_aggregator::crypto::interop::interop_secret_key;
use dv_aggregator::middleware::{Middleware, MiddlewareConfig, RetryPolicy, SlotSource};
use dv_aggregator::spec::selection::is_aggregator;
use dv_aggregator::spec::{ChainSpec, Epoch, Slot};
use dv_aggregator::state::decode_state;
use dv_aggregator::vc::aggregate::{AggregateOutcome, AggregateRecord};
use dv_aggregator::vc::attest::{AttestOutcome, AttestationRecord};
use dv_aggregator::vc::keys::ValidatorKey;
use dv_aggregator::vc::{SelectionEndpoint, Vc, VcConfig, VcHandle};
use lodestar::{DevChain, DevChainOptions};

/// The distributed validators: interop indices 0..16.
const DISTRIBUTED: u64 = 16;
const SLOTS_PER_EPOCH: u64 = 8;
const SECONDS_PER_SLOT: u64 = 3;
/// `TIMELY_SOURCE_FLAG_INDEX` and `TIMELY_TARGET_FLAG_INDEX` as bits.
const TIMELY_SOURCE_AND_TARGET: u8 = 0b011;

/// One operator: its middleware and validator client.
struct Operator {
    index: u64,
    middleware: Middleware,
    vc: VcHandle,
    _data: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_operators(chain: &DevChain) -> (ClusterLock, Vec<Operator>) {
    let indices: Vec<u64> = (0..DISTRIBUTED).collect();
    let (split, shares) = common::split_interop_keys(&indices, 3, 4);
    let mut lock = split.lock.clone();
    for operator in &mut lock.operators {
        operator.peer_address = Some(format!("127.0.0.1:{}", free_port()));
    }
    let mut operators = Vec::new();
    for operator in 1..=4u64 {
        let peer_listen: SocketAddr = lock
            .operator(operator)
            .unwrap()
            .peer_address
            .clone()
            .unwrap()
            .parse()
            .unwrap();
        let middleware = Middleware::start(MiddlewareConfig {
            lock: lock.clone(),
            operator_index: operator,
            node_key: split.node_keys[(operator - 1) as usize].clone(),
            beacon_node: chain.rest_url.clone(),
            http_listen: "127.0.0.1:0".parse().unwrap(),
            peer_listen,
            selection_timeout: None,
            peer_retry: RetryPolicy::default(),
            slot_source: SlotSource::WallClock,
            limits: Limits::default(),
        })
        .await
        .unwrap();
        while middleware.chain_view().is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let keys = indices
            .iter()
            .map(|index| ValidatorKey::new(shares[index][&operator].clone(), None))
            .collect();
        let data = tempfile::tempdir().unwrap();
        let vc = Vc::start(
            VcConfig::new(format!("http://{}", middleware.http_addr()), keys)
                .with_name(format!("operator-{operator}"))
                .with_data_dir(data.path())
                .distributed(SelectionEndpoint::Selections, lock.clone()),
        )
        .await
        .unwrap();
        operators.push(Operator {
            index: operator,
            middleware,
            vc,
            _data: data,
        });
    }
    (lock, operators)
}

/// Waits until `fraction` (eighths) into `slot` of the chain.
async fn wait_until(chain: &DevChain, slot: Slot, eighths: u64) {
    let at = chain.genesis.genesis_time * 1000
        + slot * SECONDS_PER_SLOT * 1000
        + eighths * SECONDS_PER_SLOT * 1000 / 8;
    let now = dv_aggregator::spec::time::unix_now().as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(at.saturating_sub(now))).await;
}

/// The participation flags of the distributed validators for `epoch`, read
/// from Lodestar's head state while it is in the next epoch.
async fn participation(node: &BeaconNodeClient, spec: &ChainSpec, epoch: Epoch) -> Vec<u8> {
    let ssz = node.debug_state_ssz(StateId::Head).await.unwrap();
    let state = decode_state(&ssz.bytes, spec, None).unwrap();
    assert_eq!(
        state.slot() / SLOTS_PER_EPOCH,
        epoch + 1,
        "the head state is not in epoch {}",
        epoch + 1
    );
    let flags = state.previous_epoch_participation().unwrap();
    flags[..DISTRIBUTED as usize].to_vec()
}

/// The (slot, validator) of every aggregation the undivided keys select in
/// `epochs`, from Lodestar's duties and the whole interop keys.
async fn truth_aggregators(
    node: &BeaconNodeClient,
    info: &ChainInfo,
    epochs: std::ops::RangeInclusive<Epoch>,
) -> BTreeSet<(Slot, u64)> {
    let indices: Vec<u64> = (0..DISTRIBUTED).collect();
    let mut selected = BTreeSet::new();
    for epoch in epochs {
        let duties = node.attester_duties(epoch, &indices).await.unwrap().data;
        assert_eq!(duties.len(), DISTRIBUTED as usize, "epoch {epoch}");
        for duty in duties {
            let root = info.selection_proof_signing_root(duty.slot);
            let proof = interop_secret_key(duty.validator_index).sign(root.as_slice());
            if is_aggregator(duty.committee_length, &proof.to_bytes(), &info.spec.preset) {
                selected.insert((duty.slot, duty.validator_index));
            }
        }
    }
    selected
}

fn in_epochs(slot: Slot, epochs: &std::ops::RangeInclusive<Epoch>) -> bool {
    epochs.contains(&(slot / SLOTS_PER_EPOCH))
}

/// Every operator's records of the epochs, checked: each attestation duty
/// published by every running operator, each selected aggregation published,
/// none other.
fn check_records(
    attestations: &[(u64, Vec<AttestationRecord>)],
    aggregates: &[(u64, Vec<AggregateRecord>)],
    epochs: &std::ops::RangeInclusive<Epoch>,
    selected: &BTreeSet<(Slot, u64)>,
) {
    for (operator, records) in attestations {
        let records: Vec<&AttestationRecord> = records
            .iter()
            .filter(|r| in_epochs(r.slot, epochs))
            .collect();
        assert_eq!(
            records.len() as u64,
            DISTRIBUTED * (epochs.end() - epochs.start() + 1),
            "operator {operator}: one attestation per validator and epoch"
        );
        for record in records {
            assert!(
                matches!(record.outcome, AttestOutcome::Published { .. }),
                "operator {operator}: {record:?}"
            );
        }
    }
    for (operator, records) in aggregates {
        let published: BTreeSet<(Slot, u64)> = records
            .iter()
            .filter(|r| in_epochs(r.slot, epochs))
            .map(|r| {
                assert!(
                    matches!(r.outcome, AggregateOutcome::Published { .. }),
                    "operator {operator}: {r:?}"
                );
                (r.slot, r.validator_index)
            })
            .collect();
        assert_eq!(
            &published, selected,
            "operator {operator}: aggregates published vs selected by the undivided keys"
        );
    }
}

async fn take_records(
    operators: &[Operator],
) -> (
    Vec<(u64, Vec<AttestationRecord>)>,
    Vec<(u64, Vec<AggregateRecord>)>,
) {
    let attestations = operators
        .iter()
        .map(|o| (o.index, o.vc.take_attestations()))
        .collect();
    let aggregates = operators
        .iter()
        .map(|o| (o.index, o.vc.take_aggregates()))
        .collect();
    (attestations, aggregates)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn distributed_validators_attest_and_aggregate_on_lodestar() {
    let Some(chain) = DevChain::start(DevChainOptions {
        genesis_validators: 64,
        first_started: DISTRIBUTED,
        seconds_per_slot: SECONDS_PER_SLOT,
        ..DevChainOptions::default()
    })
    .await
    else {
        return;
    };
    let node = BeaconNodeClient::new(&chain.rest_url).unwrap();
    let info = ChainInfo::fetch(&node).await.unwrap();
    let (_lock, mut operators) = start_operators(&chain).await;

    // Epochs 1..=3 with every operator.
    let epochs = 1..=3u64;
    // Two slots into epoch 4: the last slot of epoch 3 is included by then
    // (TIMELY_SOURCE allows an inclusion delay of two slots).
    wait_until(&chain, 4 * SLOTS_PER_EPOCH + 2, 4).await;
    let (attestations, aggregates) = take_records(&operators).await;
    let selected = truth_aggregators(&node, &info, epochs.clone()).await;
    check_records(&attestations, &aggregates, &epochs, &selected);
    assert!(!selected.is_empty(), "some aggregation is selected");
    let flags = participation(&node, &info.spec, 3).await;
    assert!(
        flags
            .iter()
            .all(|f| f & TIMELY_SOURCE_AND_TARGET == TIMELY_SOURCE_AND_TARGET),
        "epoch 3 participation of the distributed validators: {flags:?}\n{}",
        chain.log_tail()
    );
    let metrics = operators[0].middleware.metrics_text();
    assert!(
        metrics.contains("dv_duties_total{duty=\"attestation\",event=\"published\"}"),
        "{metrics}"
    );

    // Operator 4 stops; epochs 5 and 6 with the other three.
    let stopped = operators.pop().unwrap();
    drop(stopped.vc);
    stopped.middleware.stop().await;
    wait_until(&chain, 7 * SLOTS_PER_EPOCH + 2, 4).await;
    let epochs = 5..=6u64;
    let (attestations, aggregates) = take_records(&operators).await;
    let selected = truth_aggregators(&node, &info, epochs.clone()).await;
    check_records(&attestations, &aggregates, &epochs, &selected);
    let flags = participation(&node, &info.spec, 6).await;
    assert!(
        flags
            .iter()
            .all(|f| f & TIMELY_SOURCE_AND_TARGET == TIMELY_SOURCE_AND_TARGET),
        "epoch 6 participation with operator 4 down: {flags:?}\n{}",
        chain.log_tail()
    );
}
