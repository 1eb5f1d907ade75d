//! Slashing protection of the validator client: a SQLite database of what
//! each of its keys signed, asked before every block or attestation
//! signature, and its EIP-3076 interchange (import, export).
//!
//! - [`database`]: [`SlashingDatabase`], one SQLite file
//!   ([`SLASHING_PROTECTION_FILENAME`] in the client's data directory), the
//!   checks and the record of what was signed.
//! - [`interchange`]: the EIP-3076 interchange format v5 (serde types, bounded
//!   reading, import into and export from the database).
//!
//! # What is checked where
//!
//! Each validator has two kinds of history, checked differently:
//!
//! - **Low watermarks**, from imported interchange files and from
//!   [`SlashingDatabase::prune`]: the highest block slot, the highest
//!   attestation source epoch and the highest attestation target epoch. This
//!   is EIP-3076's *minimal* strategy: a block at a slot `<=` the block
//!   watermark, an attestation whose source is `<` the source watermark or
//!   whose target is `<=` the target watermark is refused, even one with the
//!   signing root of an imported record (imported signing roots are not
//!   kept, so a re-signing cannot be told from a double one).
//! - **Its own history**: every block (slot, signing root) and attestation
//!   (source, target, signing root) this database allowed, all above the
//!   watermarks. Against it the *complete* checks apply: no second block at a
//!   slot, no second attestation for a target epoch (double vote), no
//!   attestation surrounding or surrounded by one signed before. The same
//!   message again (same slot or target, same signing root) is safe:
//!   [`Safe::SignedBefore`].
//!
//! Above the watermarks nothing an interchange could have held can conflict
//! with a message, so minimal and complete agree there; at or below them the
//! database answers as the minimal strategy does. An import raises the
//! watermarks and folds the own history at or below them into them (see
//! [`interchange`]), so the own history always lies above.
//!
//! # Record before signing
//!
//! [`SlashingDatabase::check_and_insert_attestation`] and its block and batch
//! forms check and record in one SQLite transaction, committed with a full
//! fsync before they return [`Safe`]; the caller signs only after that. A
//! crash between the record and the signature leaves a record of a message
//! never signed: harmless (the same message is [`Safe::SignedBefore`] after a
//! restart, a conflicting one is refused), whereas the other order could sign
//! a message the database then forgets.

pub mod database;
pub mod interchange;

pub use database::{AttestationToSign, SlashingDatabase, Watermarks, SLASHING_PROTECTION_FILENAME};
pub use interchange::{Interchange, InterchangeError, ValidatorImport};

use std::path::PathBuf;

use crate::api::types::PublicKeyBytes;
use crate::spec::{Epoch, Root, Slot};

/// A message the database allows: sign it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safe {
    /// Never signed before; now recorded.
    New,
    /// Signed before with the same signing root: signing it again cannot be
    /// slashed (e.g. a re-broadcast, or a restart after recording it).
    SignedBefore,
}

/// Why the database refuses a message: do not sign it.
#[derive(Debug, thiserror::Error)]
pub enum NotSafe {
    /// The key is not in the database (see [`SlashingDatabase::register_validators`]).
    #[error("validator {pubkey:?} is not registered in the slashing-protection database")]
    UnregisteredValidator {
        /// The key.
        pubkey: PublicKeyBytes,
    },
    /// A second block at a slot.
    #[error("double block proposal: slot {slot} was signed before with signing root {existing_root}, now asked to sign {signing_root}")]
    DoubleBlockProposal {
        /// The slot.
        slot: Slot,
        /// The signing root signed before.
        existing_root: Root,
        /// The signing root asked for.
        signing_root: Root,
    },
    /// A block at or below the block watermark.
    #[error("block at slot {slot} is at or below the slot watermark {watermark} of imported or pruned history (minimal strategy)")]
    BlockAtOrBelowWatermark {
        /// The slot asked for.
        slot: Slot,
        /// The watermark.
        watermark: Slot,
    },
    /// A source epoch after its target epoch: no valid attestation has one.
    #[error("attestation source epoch {source_epoch} is after its target epoch {target_epoch}")]
    SourceAfterTarget {
        /// The source epoch.
        source_epoch: Epoch,
        /// The target epoch.
        target_epoch: Epoch,
    },
    /// A source epoch below the source watermark.
    #[error("attestation source epoch {source_epoch} is below the source watermark {watermark} of imported or pruned history (minimal strategy)")]
    SourceBelowWatermark {
        /// The source epoch asked for.
        source_epoch: Epoch,
        /// The watermark.
        watermark: Epoch,
    },
    /// A target epoch at or below the target watermark.
    #[error("attestation target epoch {target_epoch} is at or below the target watermark {watermark} of imported or pruned history (minimal strategy)")]
    TargetAtOrBelowWatermark {
        /// The target epoch asked for.
        target_epoch: Epoch,
        /// The watermark.
        watermark: Epoch,
    },
    /// A second attestation for a target epoch.
    #[error("double vote: target epoch {target_epoch} was signed before (source {existing_source}, signing root {existing_root}), now asked to sign source {source_epoch} with signing root {signing_root}")]
    DoubleVote {
        /// The target epoch.
        target_epoch: Epoch,
        /// The source epoch signed before.
        existing_source: Epoch,
        /// The signing root signed before.
        existing_root: Root,
        /// The source epoch asked for.
        source_epoch: Epoch,
        /// The signing root asked for.
        signing_root: Root,
    },
    /// An attestation that surrounds one signed before.
    #[error("surround vote: source {source_epoch}, target {target_epoch} surrounds the attestation signed before with source {existing_source}, target {existing_target}")]
    SurroundsExisting {
        /// The source epoch asked for.
        source_epoch: Epoch,
        /// The target epoch asked for.
        target_epoch: Epoch,
        /// The source epoch signed before.
        existing_source: Epoch,
        /// The target epoch signed before.
        existing_target: Epoch,
    },
    /// An attestation surrounded by one signed before.
    #[error("surround vote: source {source_epoch}, target {target_epoch} is surrounded by the attestation signed before with source {existing_source}, target {existing_target}")]
    SurroundedByExisting {
        /// The source epoch asked for.
        source_epoch: Epoch,
        /// The target epoch asked for.
        target_epoch: Epoch,
        /// The source epoch signed before.
        existing_source: Epoch,
        /// The target epoch signed before.
        existing_target: Epoch,
    },
    /// A slot or epoch SQLite cannot store (above `i64::MAX`).
    #[error("{what} {value} is beyond what the slashing-protection database stores ({max})", max = i64::MAX)]
    OutOfRange {
        /// Which number.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// The database failed: nothing was recorded.
    #[error(transparent)]
    Database(#[from] SlashingError),
}

/// A failure of the database itself, or of an import or export.
#[derive(Debug, thiserror::Error)]
pub enum SlashingError {
    /// SQLite failed.
    #[error("slashing-protection database {path}: {action}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Another connection (another process) holds the database.
    #[error("slashing-protection database {path} is in use by another process (a running validator client?); stop it first")]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// The file could not be created.
    #[error("cannot create the slashing-protection database {path}: {source}")]
    Create {
        /// The database file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a database of this schema.
    #[error("{path} is not a slashing-protection database of this client (schema version {found:?}, expected {expected})")]
    Schema {
        /// The database file.
        path: PathBuf,
        /// The schema version found, if any.
        found: Option<i64>,
        /// The schema version this code reads.
        expected: i64,
    },
    /// The database belongs to another network.
    #[error("genesis_validators_root mismatch: the slashing-protection database is for {database}, but {given_by} gives {given}")]
    GenesisValidatorsRootMismatch {
        /// The database's network.
        database: Root,
        /// The other one.
        given: Root,
        /// Where the other one came from.
        given_by: &'static str,
    },
    /// An export of a database that never learnt its network.
    #[error("the slashing-protection database {path} has no genesis_validators_root yet (no client ran with it and nothing was imported): nothing to export")]
    NoNetwork {
        /// The database file.
        path: PathBuf,
    },
    /// A number SQLite cannot store (above `i64::MAX`).
    #[error("{what} {value} of validator {pubkey:?} is beyond what the slashing-protection database stores ({max})", max = i64::MAX)]
    OutOfRange {
        /// The validator.
        pubkey: PublicKeyBytes,
        /// Which number.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// A stored row that breaks the schema's invariants.
    #[error("slashing-protection database {path} is corrupt: {detail}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}
