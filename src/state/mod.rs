//! TODO

pub mod committee_cache;
pub mod shuffling;
