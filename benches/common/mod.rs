//! Shared by the benches: every bench prints a ratio of two measurements taken
//! in the same run, because absolute times on a shared 2-core machine say little.

#![allow(dead_code)] // Each bench uses the helpers it needs.

pub mod duty_cluster;

use std::path::PathBuf;

/// Mean time in nanoseconds of the criterion benchmark `id` (as criterion names
/// its folder: `group/function[/parameter]`), read from the estimates criterion
/// wrote during this run.
pub fn mean_ns(id: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = target
        .join("criterion")
        .join(id)
        .join("new")
        .join("estimates.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

/// Prints `ratio <label>: <baseline/candidate>` (how many times faster the
/// candidate is than the baseline), or says which measurement is missing.
pub fn print_ratio(label: &str, baseline_id: &str, candidate_id: &str) {
    match (mean_ns(baseline_id), mean_ns(candidate_id)) {
        (Some(baseline), Some(candidate)) if candidate > 0.0 => println!(
            "ratio {label}: {:.2} ({baseline_id} {:.3} ms / {candidate_id} {:.3} ms)",
            baseline / candidate,
            baseline / 1e6,
            candidate / 1e6
        ),
        _ => println!("ratio {label}: not measured (need both {baseline_id} and {candidate_id})"),
    }
}

/// Prints `overhead <label>: <(candidate - baseline) / baseline>`: how much the
/// candidate adds, in units of the baseline it contains.
pub fn print_overhead(label: &str, baseline_id: &str, candidate_id: &str) {
    match (mean_ns(baseline_id), mean_ns(candidate_id)) {
        (Some(baseline), Some(candidate)) if baseline > 0.0 => println!(
            "overhead {label}: {:.2}x the baseline ({baseline_id} {:.3} ms, {candidate_id} {:.3} ms)",
            (candidate - baseline) / baseline,
            baseline / 1e6,
            candidate / 1e6
        ),
        _ => println!("overhead {label}: not measured (need both {baseline_id} and {candidate_id})"),
    }
}

use dv_aggregator::spec::{ForkName, FAR_FUTURE_EPOCH};
use dv_aggregator::state::forks::BeaconStateFulu;
use dv_aggregator::state::{ForkState, PublicKeyBytes, StatePreset, Validator};
use ssz_types::VariableList;

/// The oracle's fulu state of `folder` (every field well formed) with its
/// registry replaced by validators holding `pubkeys`, active from genesis and
/// never exiting, with 32 ETH and empty participation.
pub fn fulu_state_with_validators<E: StatePreset>(
    folder: &str,
    pubkeys: impl Iterator<Item = [u8; 48]>,
) -> BeaconStateFulu<E> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/oracle")
        .join(folder)
        .join("state.ssz");
    let oracle = std::fs::read(&path).expect("oracle state");
    let ForkState::Fulu(mut state) =
        ForkState::<E>::from_ssz_bytes(ForkName::Fulu, &oracle).expect("oracle state decodes")
    else {
        panic!("{folder} is not a fulu state")
    };
    let validators: Vec<Validator> = pubkeys
        .map(|pubkey| Validator {
            pubkey: PublicKeyBytes(pubkey),
            withdrawal_credentials: Default::default(),
            effective_balance: 32_000_000_000,
            slashed: false,
            activation_eligibility_epoch: 0,
            activation_epoch: 0,
            exit_epoch: FAR_FUTURE_EPOCH,
            withdrawable_epoch: FAR_FUTURE_EPOCH,
        })
        .collect();
    let count = validators.len();
    state.validators = VariableList::new(validators).expect("within the registry limit");
    state.balances = VariableList::new(vec![32_000_000_000; count]).unwrap();
    state.previous_epoch_participation = VariableList::new(vec![0; count]).unwrap();
    state.current_epoch_participation = VariableList::new(vec![0; count]).unwrap();
    state.inactivity_scores = VariableList::new(vec![0; count]).unwrap();
    state
}

/// Prints `ratio <label>: <candidate/baseline>` (how many times the
/// baseline's time the candidate takes), with the target it should meet.
pub fn print_cost_ratio(label: &str, baseline_id: &str, candidate_id: &str, target: f64) {
    match (mean_ns(baseline_id), mean_ns(candidate_id)) {
        (Some(baseline), Some(candidate)) if baseline > 0.0 => println!(
            "ratio {label}: {:.2} ({candidate_id} {:.1} ms, {baseline_id} {:.1} ms; target <= {target})",
            candidate / baseline,
            candidate / 1e6,
            baseline / 1e6
        ),
        _ => println!("ratio {label}: not measured (need both {baseline_id} and {candidate_id})"),
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// Starts one middleware per operator of `lock` (whose peer addresses are
/// set) in front of `beacon_node`, and waits until each knows the chain.
pub async fn start_middlewares(
    lock: &dv_aggregator::cluster::ClusterLock,
    node_keys: &[dv_aggregator::crypto::SecretKey],
    beacon_node: &str,
    selection_timeout: Option<std::time::Duration>,
    slot_source: impl Fn() -> dv_aggregator::middleware::SlotSource,
) -> Vec<dv_aggregator::middleware::Middleware> {
    use dv_aggregator::middleware::{Middleware, MiddlewareConfig, RetryPolicy};
    let mut nodes = Vec::new();
    for (operator, node_key) in (1..).zip(node_keys) {
        let peer_listen = lock
            .operator(operator)
            .and_then(|o| o.peer_address.clone())
            .expect("peer address")
            .parse()
            .expect("address");
        let node = Middleware::start(MiddlewareConfig {
            lock: lock.clone(),
            operator_index: operator,
            node_key: node_key.clone(),
            beacon_node: beacon_node.to_string(),
            http_listen: "127.0.0.1:0".parse().expect("address"),
            peer_listen,
            selection_timeout,
            peer_retry: RetryPolicy::default(),
            slot_source: slot_source(),
            limits: dv_aggregator::api::filters::Limits::default(),
        })
        .await
        .expect("middleware");
        nodes.push(node);
    }
    for node in &nodes {
        while node.chain_view().is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    nodes
}

/// A benchmark group for work of whole slots (seconds an iteration): ten
/// flat samples over ten seconds, after a one-second warm-up.
pub fn slot_group<'a>(
    c: &'a mut criterion::Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    group.sampling_mode(criterion::SamplingMode::Flat);
    group.warm_up_time(std::time::Duration::from_secs(1));
    group.measurement_time(std::time::Duration::from_secs(10));
    group
}

/// The interop keys `0..validators` split `threshold`-of-`operators` for a
/// chain of `spec`, with every operator's peer address on a free loopback port.
pub fn interop_cluster(
    spec: &dv_aggregator::spec::ChainSpec,
    validators: u64,
    operators: u64,
    threshold: u64,
) -> dv_aggregator::cluster::SplitCluster {
    use dv_aggregator::cluster::{split_cluster, CreateConfig};
    let secrets: Vec<dv_aggregator::crypto::SecretKey> = (0..validators)
        .map(dv_aggregator::crypto::interop::interop_secret_key)
        .collect();
    let config = CreateConfig {
        fork_version: spec.genesis_fork_version(),
        ..CreateConfig::in_memory(operators, Some(threshold))
    };
    let mut split = split_cluster(&config, &secrets).expect("cluster");
    for operator in &mut split.lock.operators {
        operator.peer_address = Some(format!("127.0.0.1:{}", free_port()));
    }
    split
}
