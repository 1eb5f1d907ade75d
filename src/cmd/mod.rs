//! Subcommand implementations of the `dv-aggregator` binary. They parse
//! arguments, call the library and print; errors are `anyhow` here only.

pub mod cluster;
pub mod devnet;
pub mod inspect;
pub mod middleware;
pub mod sidecar;
pub mod vc;

/// Writes one line to stdout; a closed pipe (`| head`) is an error, not a panic.
pub fn print_line(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{text}")
        .map_err(|e| anyhow::anyhow!("writing to stdout: {e}"))
}
