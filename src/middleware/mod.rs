//! The distributed-validator middleware: it sits between each operator's
//! validator client and beacon node and combines the cluster's partial
//! selection proofs. So far it owns three parts, without the service that will
//! join them:
//!
//! - the core, without network or clock: the duties it combines ([`duty`])
//!   and the store of partial selection proofs that verifies, deduplicates and
//!   combines them and wakes the requests waiting for each duty ([`store`]);
//! - the peer protocol over which operators exchange partials: the wire
//!   format and node-key authentication ([`peer`]), the receiving endpoint
//!   ([`peer_server`]) and the sending client with retries ([`peer_client`]);
//! - the public-key mapping between the operator's validator client, which
//!   knows its public shares, and its beacon node, which knows the group keys
//!   ([`mapping`]): a warp filter in front of the reverse proxy.
//!
//! The middleware service (VC-facing selection routes, request deadlines
//! from slot timing, catch-up, `/metrics`) is built on these: it computes the
//! signing root of each duty, inserts its own VC's partials and its peers',
//! ticks [`PartialStore::set_current_slot`] and bounds every
//! [`PartialStore::wait_combined`] with its deadline.

pub mod duty;
pub mod mapping;
pub mod peer;
pub mod peer_client;
pub mod peer_server;
pub mod store;

pub use duty::{DutyKey, DutyKind, Partial, Source};
pub use mapping::{pubkey_mapping_routes, MappingConfig, MappingError, PubkeyMap};
pub use peer::{ItemOutcome, PartialItem, PartialSink};
pub use peer_client::{PeerClient, PeerError, PeerReply, RetryPolicy};
pub use peer_server::{peer_routes, ServeError};
pub use store::{
    Clock, InsertOutcome, LatencyStats, PartialStore, StoreError, StoreLimits, StoreStats,
    SystemClock,
};
