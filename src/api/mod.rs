//! Beacon API surface of the project: wire types with serde in Beacon API
//! conventions ([`types`]), the attester and aggregator duties' objects in
//! JSON and SSZ ([`attestation`]) and their SSZ list bodies ([`ssz_list`]), error bodies ([`error`]), the
//! [`SelectionBackend`] trait a node implements,
//! the `is_aggregator` answer ([`selection`]), warp filters a node mounts
//! ([`filters`]), a typed HTTP client ([`client`]) with its server-sent
//! event reader ([`sse`]), what a client learns of the chain from it
//! ([`chain`]) and the two body encodings, JSON and SSZ ([`wire`]).

pub mod attestation;
pub mod backend;
pub mod chain;
pub mod client;
pub mod error;
pub mod filters;
pub mod selection;
pub mod sse;
pub mod ssz_list;
#[cfg(test)]
mod test_support;
pub mod types;
pub mod wire;

pub use backend::{BackendError, BeaconCommittees, SelectionBackend, SlotContext};
pub use chain::{ChainInfo, ChainInfoError};
pub use client::{BeaconNodeClient, ClientError};
pub use error::{ApiError, ItemError};
