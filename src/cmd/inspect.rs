//! `dv-aggregator inspect`.

use clap::Subcommand;

/// `dv-aggregator inspect` subcommands.
#[derive(Debug, Subcommand)]
pub enum InspectCommand {}

/// Runs one `inspect` subcommand.
pub fn run(command: InspectCommand) -> anyhow::Result<()> {
    match command {}
}
