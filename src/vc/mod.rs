//! The validator client (VC), as far as aggregator selection goes: keys,
//! duties, the decision "aggregate?" and the subscriptions that follow from
//! it, with `--distributed-mode` for distributed validators.
//!
//! - [`keys`]: EIP-2335 keystores and their passwords; which cluster-lock
//!   validator each key share belongs to.
//! - [`duties`]: attester and sync committee duties, checked as they arrive.
//! - [`selection`]: local or distributed selection; matching and verifying a
//!   middleware's answers.
//! - [`decision`]: every duty's outcome as a [`SelectionDecision`], in a
//!   bounded log callers read.
//! - [`slashing`]: the slashing-protection database (SQLite) every block
//!   and attestation signature must pass first, and its EIP-3076 interchange.
//! - [`service`]: `VcConfig` -> [`Vc::start`] -> [`VcHandle`], the slot-clock
//!   loop and the step functions [`Vc::run_epoch`] / [`Vc::run_slot`]; their
//!   parts are the private modules `fetch` (indices, fork, duties),
//!   `attestation` and `sync` (the selection rounds) and `subscribe`.
//!
//! Producing and publishing attestations and aggregates is not in scope (the
//! devnet's chain carries no attestations); the client keeps the selection
//! proofs that duty would need.

pub mod aggregate;
pub mod attest;
mod attestation;
pub mod decision;
pub mod duties;
mod events;
mod fetch;
pub mod keys;
pub mod selection;
pub mod service;
pub mod slashing;
mod subscribe;
mod sync;

pub use decision::{DecisionDuty, Outcome, SelectionDecision};
pub use keys::{load_keystores, KeysError, ValidatorKey};
pub use selection::{SelectionEndpoint, SelectionStrategy};
pub use service::{Drive, EpochSummary, Vc, VcConfig, VcError, VcHandle};
