//! Beacon API surface of the project: wire types with serde in Beacon API
//! conventions ([`types`]), error bodies ([`error`]), the
//! [`SelectionBackend`] trait a node implements,
//! the `is_aggregator` answer ([`selection`]), warp filters a node mounts
//! ([`filters`]), a typed HTTP client ([`client`]), what a client learns
//! of the chain from it ([`chain`]) and the two body encodings, JSON and
//! SSZ ([`wire`]).

pub mod backend;
pub mod chain;
pub mod client;
pub mod error;
pub mod filters;
pub mod selection;
#[cfg(test)]
mod test_support;
pub mod types;
pub mod wire;

pub use backend::{BackendError, BeaconCommittees, SelectionBackend, SlotContext};
pub use chain::{ChainInfo, ChainInfoError};
pub use client::{BeaconNodeClient, ClientError};
pub use error::{ApiError, ItemError};
