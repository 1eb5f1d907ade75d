//! The DV middleware's core, without network or clock: the duties it
//! combines ([`duty`]) and the store of partial selection proofs that verifies,
//! deduplicates and combines them and wakes the requests waiting for each duty
//! ([`store`]).
//!
//! The middleware service (VC-facing selection routes, peer exchange, request
//! deadlines from slot timing, `/metrics`) is built on these: it computes the
//! signing root of each duty, inserts its own VC's partials and its peers',
//! ticks [`PartialStore::set_current_slot`] and bounds every
//! [`PartialStore::wait_combined`] with its deadline.

pub mod duty;
pub mod store;

pub use duty::{DutyKey, DutyKind, Partial, Source};
pub use store::{
    Clock, InsertOutcome, LatencyStats, PartialStore, StoreError, StoreLimits, StoreStats,
    SystemClock,
};
