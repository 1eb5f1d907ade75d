//! Beacon-node side of the project: what the sidecar puts in front of (or in
//! place of) a beacon node.
//!
//! - [`proxy`]: the reverse proxy that forwards every request the sidecar does
//!   not answer itself to an upstream beacon node, unchanged and streamed.

pub mod proxy;
