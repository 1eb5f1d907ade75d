//! `dv-aggregator cluster`.

use clap::Subcommand;

/// `dv-aggregator cluster` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {}

/// Runs one `cluster` subcommand.
pub fn run(command: ClusterCommand) -> anyhow::Result<()> {
    match command {}
}
