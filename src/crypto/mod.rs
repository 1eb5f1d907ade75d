//! BLS cryptography of a distributed validator: keys and signatures over
//! `blst` (min_pk), batch verification grouped by message, t-of-n threshold
//! signatures (Shamir split, Lagrange combination, partial verification) and
//! the deterministic interop keys of test states.

pub mod batch;
pub mod bls;
pub mod interop;
pub mod keystore;
pub mod threshold;

pub use bls::{
    aggregate_public_keys, aggregate_signatures, CryptoError, PublicKey, SecretKey, Signature,
};
