//! The beacon-node side: a [`StateBackend`](backend::StateBackend) over a
//! loaded BeaconState that serves the seed's `is_aggregator` endpoint, and
//! [`state_api`], the read-only Beacon API a validator client needs, answered
//! from that state.

pub mod backend;
pub mod state_api;
