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
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(command) => cmd::inspect::run(command),
        Command::Cluster(command) => cmd::cluster::run(command),
    };
    if let Err(error) = result {
        // One line, every cause joined: scripts and operators read the reason
        // without a backtrace.
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
