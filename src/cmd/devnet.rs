//! `dv-aggregator devnet`: the project's main job, a local distributed
//! validator network in one process that shows aggregator selection
//! working end to end.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use dv_aggregator::devnet::report::DevnetReport;
use dv_aggregator::devnet::{run, DevnetConfig};
use dv_aggregator::spec::{ForkName, PresetName};
use dv_aggregator::vc::SelectionEndpoint;

/// The devnet's options (the command's description is on its variant in main.rs).
#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// Validators in the genesis state. Committees need at least 32 members
    /// (2048 validators on minimal) or every member aggregates and the demo
    /// proves nothing.
    #[arg(long, default_value_t = 2048)]
    validators: u64,
    /// The first N validators are distributed validators of the cluster.
    #[arg(long, value_name = "N", default_value_t = 16)]
    distributed_validators: u64,
    /// Operators of the cluster.
    #[arg(long, default_value_t = 4)]
    operators: u64,
    /// Partial signatures needed (default ceil(2n/3)).
    #[arg(long)]
    threshold: Option<u64>,
    /// Epochs to run.
    #[arg(long, default_value_t = 3)]
    epochs: u64,
    /// Slot duration in seconds.
    #[arg(long, default_value_t = 2)]
    seconds_per_slot: u64,
    /// The preset: minimal or mainnet.
    #[arg(long, default_value = "minimal")]
    preset: String,
    /// The fork of the genesis state (altair .. fulu), active from genesis.
    #[arg(long, default_value = "fulu")]
    fork: String,
    /// How the validator clients ask the middlewares: the standard
    /// `selections` endpoints (combined proofs) or the seed's `is-aggregator`.
    #[arg(long, default_value = "selections", value_parser = parse_endpoint)]
    selection_endpoint: SelectionEndpoint,
    /// Also write the report as JSON: one record per (epoch, slot,
    /// validator, duty kind) with cluster_decision, ground_truth,
    /// operators_agreeing and latency_ms, and the summary.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Keep the cluster's files (lock, share keystores, node keys) in DIR
    /// (absent or empty); by default they go to a temporary directory that
    /// is removed at the end.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Let each validator client follow the slot clock on its own loop, as
    /// a deployed one does (the chain then advances a quarter slot ahead of
    /// each slot, as a beacon node advances its head state); by default the
    /// devnet drives the clients' steps in lock step with the chain.
    #[arg(long)]
    clients_follow_clock: bool,
    /// Do not start this operator's middleware and validator client (may be
    /// given several times, at most n - t): the cluster must still do every
    /// duty with the others.
    #[arg(long = "operator-down", value_name = "I")]
    operators_down: Vec<u64>,
    /// Run only the beacon node and the operators' middlewares, for
    /// validator clients started outside the devnet (any standard client, in
    /// its distributed mode). The devnet writes and prints, per operator, the
    /// middleware URL to use as beacon node, the key shares as EIP-2335
    /// keystores (password in <name>.txt) and as
    /// keystores/0x<pubkey>/voting-keystore.json with secrets/0x<pubkey>,
    /// and the cluster lock; and the chain's testnet directory
    /// (config.yaml). Epoch 0 is for the clients to start; the --epochs
    /// after it are judged from what the clients asked their middlewares,
    /// their subscriptions and what the chain accepted. Use --data-dir to
    /// keep the files.
    #[arg(long, conflicts_with_all = ["clients_follow_clock", "selection_endpoint"])]
    external_vcs: bool,
    /// Seconds from the start to genesis (default 3, or 20 with
    /// --external-vcs).
    #[arg(long, value_name = "SECONDS")]
    genesis_delay: Option<u64>,
}

fn parse_endpoint(text: &str) -> Result<SelectionEndpoint, String> {
    text.parse()
}

/// Runs the devnet; fails (non-zero exit) if any decision differs from the
/// ground truth.
pub fn run_devnet(args: DevnetArgs) -> anyhow::Result<()> {
    let config = DevnetConfig {
        validators: args.validators,
        distributed_validators: args.distributed_validators,
        operators: args.operators,
        threshold: args.threshold,
        epochs: args.epochs,
        seconds_per_slot: args.seconds_per_slot,
        preset: PresetName::parse(&args.preset)?,
        fork: ForkName::parse(&args.fork)
            .with_context(|| format!("unknown fork {:?}", args.fork))?,
        selection_endpoint: args.selection_endpoint,
        data_dir: args.data_dir,
        clients_follow_clock: args.clients_follow_clock,
        operators_down: args.operators_down,
        external_vcs: args.external_vcs,
        genesis_delay: args.genesis_delay.map(std::time::Duration::from_secs),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let mut stdout = std::io::stdout();
    let report = runtime.block_on(run(config, &mut stdout))?;
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&report).context("encoding the report")?;
        std::fs::write(path, json)
            .with_context(|| format!("writing the report {}", path.display()))?;
    }
    print_summary(&report)?;
    if !report.summary.is_ok() {
        let s = &report.summary;
        anyhow::bail!(
            "{} of {} duties were not decided as the undivided key decides, {} unexpected decisions, {} wrong subscriptions; the chain accepted {} of {} attestations and {} of {} aggregates ({} unexpected)",
            s.incorrect,
            s.duties,
            s.unexpected_decisions,
            s.subscriptions_wrong,
            s.attestations_accepted,
            s.attestation_duties,
            s.aggregates_accepted,
            s.aggregates_expected,
            s.aggregates_unexpected
        );
    }
    Ok(())
}

fn print_summary(report: &DevnetReport) -> anyhow::Result<()> {
    let s = &report.summary;
    let ms = |value: Option<u64>| value.map_or_else(|| "-".into(), |ms| format!("{ms} ms"));
    for line in [
        String::new(),
        format!(
            "duties: {} ({} attestation, {} sync); aggregators by the undivided keys: {}",
            s.duties, s.attestation_duties, s.sync_duties, s.aggregators
        ),
        format!(
            "decided by every operator as the undivided key decides: {} of {}",
            s.correct, s.duties
        ),
        format!(
            "attestation duties whose subscriptions carry the right is_aggregator: {} of {}",
            s.subscriptions_checked - s.subscriptions_wrong,
            s.subscriptions_checked
        ),
        format!(
            "attestations accepted by the chain: {} of {}",
            s.attestations_accepted, s.attestation_duties
        ),
        if s.aggregates_expected == s.attestation_aggregators {
            format!(
                "aggregates accepted by the chain: {} of {} the undivided keys select ({} unexpected)",
                s.aggregates_accepted, s.attestation_aggregators, s.aggregates_unexpected
            )
        } else {
            format!(
                "aggregates accepted by the chain: {} ({} unexpected); none due: is_aggregator answers booleans, not the combined selection proofs an AggregateAndProof carries",
                s.aggregates_accepted, s.aggregates_unexpected
            )
        },
        format!(
            "latency (slowest operator per duty): median {}, max {}",
            ms(s.median_latency_ms),
            ms(s.max_latency_ms)
        ),
        if s.is_ok() {
            "result: OK, every decision equals the ground truth, and the chain has every attestation and aggregate due".to_string()
        } else {
            "result: FAILED".to_string()
        },
    ] {
        super::print_line(&line)?;
    }
    if s.aggregators == 0 {
        super::print_line(
            "note: no distributed validator was an aggregator in this run; run more epochs or validators",
        )?;
    }
    Ok(())
}
