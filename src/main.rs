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
    init_logging();
    let result = match cli.command {
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

/// Logs to stderr, coloured only on a terminal; `RUST_LOG` filters (default: info).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}
