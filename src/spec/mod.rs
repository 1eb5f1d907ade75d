//! Consensus rules as pure functions: no I/O, and no clock read except
//! [`time::unix_now`], which the real-time roles call.
//!
//! - [`config`]: the presets (mainnet, minimal) and the chain configuration
//!   (fork schedule, domain types, timing), loaded from a preset name, a
//!   standard `config.yaml` or the JSON of `GET /eth/v1/config/spec`.
//! - [`primitives`]: the small consensus types (`Slot`, `Epoch`, `Root`,
//!   `Version`, `Fork`, ...) shared by every module.
//! - [`hex`]: `0x` hex serde of byte arrays and roots (the Beacon API's JSON).
//! - [`signing`]: `compute_domain`, `get_domain`, `compute_signing_root` and
//!   the signing roots of the two selection proofs.
//! - [`selection`]: `is_aggregator`, `is_sync_committee_aggregator` and the
//!   committee arithmetic they depend on.
//! - [`time`]: slot timing as arithmetic (which slot a moment falls in, when
//!   a slot starts); the caller supplies the moment.

pub mod config;
pub mod hex;
pub mod primitives;
pub mod selection;
pub mod signing;
pub mod time;

pub use config::{ChainSpec, ConfigError, ForkName, Preset, PresetName};
pub use primitives::*;
