//! Beacon API surface of the project: wire types with serde in Beacon API
//! conventions ([`types`]), error bodies ([`error`]), the
//! [`SelectionBackend`](backend::SelectionBackend) trait a node implements,
//! the `is_aggregator` answer ([`selection`]), warp filters a node mounts
//! ([`filters`]) and a typed HTTP client ([`client`]).

pub mod backend;
pub mod client;
pub mod error;
pub mod filters;
pub mod selection;
pub mod types;

pub use backend::{BackendError, BeaconCommittees, SelectionBackend, SlotContext};
pub use client::{BeaconNodeClient, ClientError};
pub use error::{ApiError, ItemError};
