//! The beacon-node side: a [`StateBackend`](backend::StateBackend) over a
//! loaded BeaconState that serves the seed's `is_aggregator` endpoint.

pub mod backend;
