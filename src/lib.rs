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
//!   domains and signing roots, `is_aggregator`, `is_sync_committee_aggregator`,
//!   slot timing).
//! - [`crypto`]: BLS over `blst` (min_pk), batch verification, threshold
//!   signatures and EIP-2335 keystores.
//! - [`state`]: the SSZ `BeaconState` of every fork phase0..fulu, the
//!   swap-or-not shuffle and the committee cache of previous, current and next
//!   epoch, sync committees and proposers, the interop genesis state and the
//!   advance through empty slots.
//! - [`cluster`]: the cluster lock of a DV cluster and `cluster create`.
//! - [`consensus`]: QBFT agreement of the operators on one value per duty
//!   and slot, pure (messages, input and time in; messages, decision and
//!   deadline out), generic over the value and the node keys.
//! - [`api`]: Beacon API wire types, error bodies, the `is_aggregator` warp
//!   filters a node mounts, a typed client and the chain info it fetches.
//! - [`beacon`]: the state-backed beacon-node side and the sidecar.
//! - [`middleware`]: the DV node of one operator: partial store, peer
//!   protocol, selection routes answered per item by a deadline, the
//!   public-share <-> group-key mapping of the VC's calls, metrics.
//! - [`vc`]: the validator client's aggregator selection, local or with
//!   `--distributed-mode` (asking the middleware for combined proofs).
//! - [`devnet`]: the one-process local network of `dv-aggregator devnet`.

pub mod api;
pub mod beacon;
pub mod cluster;
pub mod consensus;
pub mod crypto;
pub mod devnet;
pub mod middleware;
pub mod spec;
pub mod state;
pub mod vc;
