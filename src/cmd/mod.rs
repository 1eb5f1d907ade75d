//! Subcommand implementations of the `dv-aggregator` binary. They parse
//! arguments, call the library and print; errors are `anyhow` here only.

pub mod cluster;
pub mod inspect;
pub mod sidecar;
