//! The distributed-validator middleware: it sits between each operator's
//! validator client and beacon node, collects the cluster's partial
//! selection proofs and answers with the combined ones.
//!
//! - the core, without network or clock: the duties it combines ([`duty`])
//!   and the store of partial selection proofs that verifies, deduplicates and
//!   combines them and wakes the requests waiting for each duty ([`store`]);
//! - the peer protocol over which operators exchange partials: the wire
//!   format and node-key authentication ([`peer`]), the receiving endpoint
//!   ([`peer_server`]) and the sending client with retries ([`peer_client`]);
//! - the node: what it knows of the chain ([`chain`]), its exchange with the
//!   peers (broadcast, re-send, catch-up; [`exchange`]), the VC-facing
//!   selection logic ([`selections`]) and routes ([`routes`]), its counters
//!   ([`metrics`]), the in-process fan-out of what it did ([`listeners`]) and
//!   the service that assembles them ([`service`]);
//! - the public-key mapping between the operator's validator client, which
//!   knows its public shares, and its beacon node, which knows the group keys
//!   ([`mapping`]): a warp filter in front of the reverse proxy.

pub mod aggregator;
pub mod agreement;
pub mod attester;
pub mod chain;
pub mod duty;
pub mod duty_routes;
pub mod exchange;
pub mod listeners;
pub mod mapping;
pub mod metrics;
pub mod peer;
pub mod peer_client;
pub mod peer_server;
pub mod publisher;
pub mod routes;
pub mod selections;
pub mod service;
pub mod store;

pub use duty::{DutyKey, DutyKind, Partial, Source};
pub use mapping::{pubkey_mapping_routes, MappingConfig, MappingError, PubkeyMap};
pub use peer::{ItemOutcome, PartialItem, PartialSink};
pub use peer_client::{PeerClient, PeerError, PeerReply, RetryPolicy};
pub use peer_server::{peer_routes, ServeError};
pub use service::{Middleware, MiddlewareConfig, MiddlewareError, SlotSource};
pub use store::{
    Clock, CombinedDuty, InsertOutcome, LatencyStats, PartialStore, StoreError, StoreLimits,
    StoreStats, SystemClock,
};
