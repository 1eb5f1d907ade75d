//! Distributed validators doing their duties on a real beacon node: the
//! Lodestar 1.5.1 dev chain (altair from genesis, minimal preset; see
//! tests/lodestar/mod.rs) runs every interop validator but the first 16,
//! which are split 3-of-4 and run by four `dv-aggregator` middlewares and
//! four `dv-aggregator vc --distributed-mode` clients on 127.0.0.1.
//!
//! Over epochs 1 to 3 every attestation duty of the 16 is agreed, combined,
//! published and accepted by Lodestar's API, and on chain with the right
//! target wherever Lodestar's own validators of the same committee are (the
//! participation flags in Lodestar's own state, read as SSZ from its debug
//! endpoint and decoded by this project; see [`check_participation`] for
//! why not everywhere), and every aggregation
//! the undivided keys select yields an `AggregateAndProof` Lodestar
//! accepts, and no other. Then operator 4 stops, and epochs 5 and 6 are
//! attested and aggregated all the same. Participation is read for each
//! epoch six slots into the next.

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
/// Six seconds: four operators, four clients and Lodestar share two cores here, and
/// at an epoch start their selections for the next epoch compete with the
/// slot's attestations, which must reach Lodestar before its aggregators
/// aggregate at two thirds of the slot.
const SECONDS_PER_SLOT: u64 = 6;
/// `TIMELY_TARGET_FLAG_INDEX` as a bit: the attestation was included (within
/// an epoch) with the right target. Source and head timeliness also depend
/// on which block includes it, which is Lodestar's packing, not the cluster.
const TIMELY_TARGET: u8 = 0b010;
/// The genesis validators of the dev chain: 2 committees of 4 per slot.
const GENESIS_VALIDATORS: u64 = 64;

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

/// The participation flags of every validator for `epoch`, read from
/// Lodestar's head state while it is in the next epoch.
async fn participation(
    chain: &DevChain,
    node: &BeaconNodeClient,
    spec: &ChainSpec,
    epoch: Epoch,
) -> Vec<u8> {
    let ssz = node.debug_state_ssz(StateId::Head).await.unwrap();
    let state = decode_state(&ssz.bytes, spec, None).unwrap();
    assert_eq!(
        state.slot() / SLOTS_PER_EPOCH,
        epoch + 1,
        "the head state is not in epoch {} (Lodestar stopped producing blocks?); its log:\n{}",
        epoch + 1,
        chain.log_tail()
    );
    state.previous_epoch_participation().unwrap().to_vec()
}

/// Waits until six slots into `epoch + 1` (the head state's previous epoch
/// is still `epoch`, and the last slot's attestations had six blocks to be
/// included in) and checks, in Lodestar's own state, that each distributed
/// validator's attestation of `epoch` is on chain with the right target
/// wherever one of Lodestar's own validators of the same committee has it.
///
/// Not simply all 16: the distributed validators do not propose (no
/// proposer duty here), so about a quarter of the slots are empty, and an
/// attestation whose next blocks are missing can be included too late for
/// its flags, or not at all. That costs Lodestar's own validators of the
/// committee the same; a distributed validator behind them is the cluster's
/// fault.
async fn check_participation(
    chain: &DevChain,
    node: &BeaconNodeClient,
    spec: &ChainSpec,
    epoch: Epoch,
    when: &str,
) {
    wait_until(chain, (epoch + 1) * SLOTS_PER_EPOCH + 6, 4).await;
    let flags = participation(chain, node, spec, epoch).await;
    let indices: Vec<u64> = (0..GENESIS_VALIDATORS).collect();
    let duties = node.attester_duties(epoch, &indices).await.unwrap().data;
    let on_chain = |index: u64| flags[index as usize] & TIMELY_TARGET == TIMELY_TARGET;
    let mut table = String::new();
    let mut behind = Vec::new();
    let mut compared = 0;
    for duty in duties.iter().filter(|d| d.validator_index < DISTRIBUTED) {
        let node_run: Vec<u64> = duties
            .iter()
            .filter(|d| {
                d.validator_index >= DISTRIBUTED
                    && (d.slot, d.committee_index) == (duty.slot, duty.committee_index)
            })
            .map(|d| d.validator_index)
            .collect();
        let node_flags: Vec<u8> = node_run.iter().map(|&i| flags[i as usize]).collect();
        table.push_str(&format!(
            "  validator {:>2} slot {:>2} committee {}: flags {:#05b}, Lodestar's validators {node_run:?} {node_flags:?}\n",
            duty.validator_index, duty.slot, duty.committee_index, flags[duty.validator_index as usize]
        ));
        if node_run.iter().any(|&i| on_chain(i)) {
            compared += 1;
            if !on_chain(duty.validator_index) {
                behind.push(duty.validator_index);
            }
        }
    }
    eprintln!("lodestar: epoch {epoch} ({when}):\n{table}");
    assert!(
        behind.is_empty(),
        "epoch {epoch}, {when}: validators {behind:?} are not on chain where Lodestar's own validators of their committee are:\n{table}{}",
        chain.log_tail()
    );
    // Most committees are compared; an epoch where none is proves nothing.
    assert!(
        compared >= DISTRIBUTED / 2,
        "epoch {epoch}: only {compared} compared\n{table}"
    );
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

/// The sum over the lines of `metrics` that start with `prefix`.
fn metric_sum(metrics: &str, prefix: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Lodestar took what the middlewares published (every operator's middleware
/// publishes the cluster's combined attestation or aggregate to it): no
/// publish failed, and at least one aggregate per selected duty so far was
/// taken.
fn check_published(operators: &[Operator], selected: &BTreeSet<(Slot, u64)>) {
    let mut aggregates = 0;
    for operator in operators {
        let metrics = operator.middleware.metrics_text();
        for duty in ["attestation", "aggregate"] {
            let failed = format!("dv_duties_total{{duty=\"{duty}\",event=\"failed\"");
            assert_eq!(
                metric_sum(&metrics, &failed),
                0,
                "operator {}: {duty} publishes failed:\n{metrics}",
                operator.index
            );
        }
        aggregates += metric_sum(
            &metrics,
            "dv_duties_total{duty=\"aggregate\",event=\"published\"}",
        );
    }
    assert!(
        aggregates >= selected.len() as u64,
        "{aggregates} aggregates published for {} selected",
        selected.len()
    );
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
    common::log_warnings();
    // Genesis, eight epochs of eight 6-second slots and the checks: well
    // under ten minutes; a hang is a failure with what was reached.
    tokio::time::timeout(Duration::from_secs(600), attest_and_aggregate())
        .await
        .expect("the Lodestar duties test did not finish within 10 minutes");
}

/// The dev chain, started again once if it produced no block by slot 2
/// (see [`DevChain::produces_blocks_by`]); `None` when Lodestar is missing
/// outside CI.
async fn producing_chain() -> Option<DevChain> {
    for attempt in 1..=2 {
        let chain = DevChain::start(DevChainOptions {
            genesis_validators: GENESIS_VALIDATORS,
            first_started: DISTRIBUTED,
            seconds_per_slot: SECONDS_PER_SLOT,
            ..DevChainOptions::default()
        })
        .await?;
        if chain.produces_blocks_by(2).await {
            return Some(chain);
        }
        eprintln!(
            "lodestar: no block by slot 2 (start {attempt} of 2); its log:\n{}",
            chain.log_tail()
        );
    }
    panic!("Lodestar produced no block by slot 2 in two starts");
}

async fn attest_and_aggregate() {
    let Some(chain) = producing_chain().await else {
        return;
    };
    let node = BeaconNodeClient::new(&chain.rest_url).unwrap();
    let info = ChainInfo::fetch(&node).await.unwrap();
    eprintln!(
        "lodestar: REST up at {}, genesis {}",
        chain.rest_url, chain.genesis.genesis_time
    );
    let (_lock, mut operators) = start_operators(&chain).await;
    eprintln!("lodestar: four operators started");

    // Epochs 1..=3 with every operator.
    let epochs = 1..=3u64;
    // The truth of each epoch is read while Lodestar still serves its duties
    // (the previous epoch's at the latest).
    let mut selected = BTreeSet::new();
    for epoch in epochs.clone() {
        check_participation(&chain, &node, &info.spec, epoch, "every operator running").await;
        selected.extend(truth_aggregators(&node, &info, epoch..=epoch).await);
    }
    let (attestations, aggregates) = take_records(&operators).await;
    check_records(&attestations, &aggregates, &epochs, &selected);
    assert!(!selected.is_empty(), "some aggregation is selected");
    check_published(&operators, &selected);

    // Operator 4 stops; epochs 5 and 6 with the other three.
    let stopped = operators.pop().unwrap();
    drop(stopped.vc);
    stopped.middleware.stop().await;
    let epochs = 5..=6u64;
    let mut selected = BTreeSet::new();
    for epoch in epochs.clone() {
        check_participation(&chain, &node, &info.spec, epoch, "operator 4 down").await;
        selected.extend(truth_aggregators(&node, &info, epoch..=epoch).await);
    }
    let (attestations, aggregates) = take_records(&operators).await;
    check_records(&attestations, &aggregates, &epochs, &selected);
    check_published(&operators, &selected);
}
