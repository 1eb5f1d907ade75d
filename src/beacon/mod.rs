//! Beacon-node side of the project: the seed's `is_aggregator` endpoint served
//! from a BeaconState, and the sidecar that puts it in front of (or in place
//! of) a beacon node.
//!
//! - [`backend`]: [`StateBackend`](backend::StateBackend), the loaded state and
//!   its committee caches behind the `SelectionBackend` trait.
//! - [`source`]: where the state comes from: a file, or an upstream node
//!   followed epoch by epoch.
//! - [`state_api`]: the read-only Beacon API that a state determines (genesis,
//!   fork, validators, committees, attester, sync and proposer duties, the SSZ
//!   state), served in `--state` mode.
//! - [`not_served`]: 501 with the reason for the validator-client routes a
//!   single state without blocks cannot serve (block production and
//!   publication, blocks by id, sync committee messages, registrations,
//!   liveness), in `--state` mode.
//! - [`subscriptions`]: the beacon and sync committee subscription endpoints
//!   in `--state` mode, checked against the state and recorded in a bounded log.
//! - [`proxy`]: the reverse proxy that forwards every request the sidecar does
//!   not answer itself to an upstream beacon node, unchanged and streamed.
//! - [`sidecar`]: the server that assembles them.

pub mod backend;
pub mod events;
pub mod head;
pub mod not_served;
pub mod pool;
pub mod proxy;
pub mod sidecar;
pub mod source;
pub mod state_api;
pub mod subscriptions;
