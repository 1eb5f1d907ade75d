//! dv-aggregator: aggregator selection for Ethereum distributed validators.
//!
//! A distributed validator (DV) splits one validator key into t-of-n BLS key
//! shares. Aggregator selection hashes the validator's slot signature, which a
//! single operator only holds a partial of; this crate provides everything that
//! makes the cluster decide on the combined signature instead.
//!
//! Module map (dependencies point down the list, never up):
//!
//! - [`spec`]: consensus rules as pure functions (presets and chain config,
//!   domains and signing roots, `is_aggregator`, `is_sync_committee_aggregator`).
//! - [`crypto`]: BLS over `blst` (min_pk), batch verification, threshold
//!   signatures and EIP-2335 keystores.
//! - [`state`]: the SSZ `BeaconState` of every fork phase0..fulu, the
//!   swap-or-not shuffle and the committee cache of previous, current and next
//!   epoch, sync committees and proposers, the interop genesis state and the
//!   advance through empty slots.
//! - [`cluster`]: the cluster lock of a DV cluster and `cluster create`.
//! - [`middleware`]: the DV middleware's parts so far: the partial-signature
//!   store (verify, deduplicate, combine per duty), the peer protocol and the
//!   public-share <-> group-key mapping of the VC's Beacon API calls.
//! - [`vc`]: the validator client's aggregator selection, local or with
//!   `--distributed-mode` (asking the middleware for combined proofs).

pub mod api;
pub mod beacon;
pub mod cluster;
pub mod crypto;
pub mod devnet;
pub mod middleware;
pub mod spec;
pub mod state;
pub mod vc;
