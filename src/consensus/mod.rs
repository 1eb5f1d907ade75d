//! Agreement among the operators of a distributed validator: every
//! operator's validator client must sign the same data for a duty, or no t
//! partial signatures ever share a signing root. The middlewares agree on
//! one value per instance (the lead runs one per duty kind and slot) with
//! QBFT, tolerating f = floor((n - 1) / 3) faulty operators.
//!
//! The module is pure: no sockets, clock, threads or async. [`message`]
//! owns the wire format (signed bodies, canonical digests, bounded JSON
//! decoding) and the two traits the caller implements: [`Value`] (a digest
//! of the agreed value) and [`NodeKeys`] (sign with this node's key, verify
//! a source's signature; the middleware plugs the cluster's BLS node keys).
//! [`qbft`] owns the state machine of one instance, driven by messages, the
//! node's own input and the time the caller passes in.

pub mod message;
pub mod qbft;

pub use message::{
    Digest, InstanceId, Message, MessageBody, MessageError, MessageKind, NodeIndex, NodeKeys,
    PreparedRef, Round, SignatureBytes, SignedBody, Value,
};
pub use qbft::{
    faulty, leader, linear_round_timeout, quorum, Config, ConfigError, Decision, Event, Instance,
    JustificationError, Outgoing, Output, Recipient, Refusal, RoundChangeReason, RoundTimeout,
    Validity,
};
