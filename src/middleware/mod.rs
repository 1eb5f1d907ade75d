//! The distributed-validator middleware: it sits between each operator's
//! validator client and beacon node and combines the cluster's partial
//! selection proofs. This part owns the peer protocol over which operators
//! exchange partials: the wire format and node-key authentication
//! ([`peer`]), the receiving endpoint ([`peer_server`]) and the sending
//! client with retries ([`peer_client`]).

pub mod peer;
pub mod peer_client;
pub mod peer_server;

pub use peer::{ItemOutcome, PartialItem, PartialSink, SelectionDuty};
pub use peer_client::{PeerClient, PeerError, PeerReply, RetryPolicy};
pub use peer_server::{peer_routes, ServeError};
