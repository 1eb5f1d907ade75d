//! TODO
pub mod keystore;
