//! The `dv-aggregator` command line: one subcommand per role.

use clap::{Parser, Subcommand};

mod cmd;

/// Aggregator selection for Ethereum distributed validators.
#[derive(Debug, Parser)]
#[command(name = "dv-aggregator", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local distributed-validator network in this process (beacon
    /// node, middlewares, validator clients) and check every aggregator
    /// decision against the undivided key's.
    ///
    /// It makes a genesis state of interop validators, splits the first
    /// --distributed-validators keys t-of-n with `cluster create` (the other
    /// validators are inert), and starts a beacon node, one middleware and
    /// one `vc --distributed-mode` per operator, all on 127.0.0.1. The chain
    /// has no blocks: it advances through empty slots (the slot number; at
    /// each epoch boundary the randao mix carried forward and the sync
    /// committees rotated, as an empty chain does), so the committees of
    /// every later epoch are exact. Each row of the table is one duty: is the
    /// validator an aggregator, did every operator decide the same, does it
    /// equal what the undivided key decides, and how long the slowest
    /// operator waited. Exits non-zero if any decision differs.
    Devnet(cmd::devnet::DevnetArgs),
    /// Inspect a BeaconState: its root, committees and aggregator selection
    /// ("why did my validator (not) aggregate?").
    #[command(subcommand)]
    Inspect(cmd::inspect::InspectCommand),
    /// Create and operate a distributed-validator cluster: split keys, combine
    /// partial signatures, recover a validator key.
    #[command(subcommand)]
    Cluster(cmd::cluster::ClusterCommand),
    /// Add POST /eth/v1/validator/is_aggregator to any beacon node: serve it
    /// from the node's head state and proxy everything else to the node.
    Sidecar(cmd::sidecar::SidecarArgs),
    /// Run one operator's distributed-validator middleware between its
    /// validator client and its beacon node: combine the cluster's partial
    /// selection proofs (beacon_committee_selections, sync_committee_selections,
    /// is_aggregator) and proxy everything else.
    Middleware(cmd::middleware::MiddlewareArgs),
    /// Run a validator client's aggregator selection (duties, "aggregate?",
    /// subscriptions); with --distributed-mode it asks the distributed
    /// validator middleware instead of deciding on a key share's partial proof.
    Vc(cmd::vc::VcArgs),
}

fn main() {
    let cli = Cli::parse();
    // The devnet prints a table on stdout; its services log only warnings
    // unless RUST_LOG asks for more. When it stops its nodes, warp reports
    // each idle connection the graceful stop closes as an error: not one.
    let default_level = match cli.command {
        Command::Devnet(_) => "warn,warp::server::run=off",
        _ => "info",
    };
    init_logging(default_level);
    let result = match cli.command {
        Command::Devnet(args) => cmd::devnet::run_devnet(args),
        Command::Inspect(command) => cmd::inspect::run(command),
        Command::Cluster(command) => cmd::cluster::run(command),
        Command::Sidecar(args) => cmd::sidecar::run(args),
        Command::Middleware(args) => cmd::middleware::run(args),
        Command::Vc(args) => cmd::vc::run(args),
    };
    if let Err(error) = result {
        // One line, every cause joined: scripts and operators read the reason
        // without a backtrace.
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

/// Logs to stderr, coloured only on a terminal; `RUST_LOG` filters (default:
/// `default_level`).
fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}
