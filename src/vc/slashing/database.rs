//! [`SlashingDatabase`]: one SQLite file, one connection behind a mutex.
//!
//! The connection holds SQLite's exclusive lock for as long as it is open
//! (`locking_mode = EXCLUSIVE`), so a second process (say `vc
//! slashing-protection import` beside a running client) is refused instead of
//! racing it. Commits are durable when they return: write-ahead log with
//! `synchronous = FULL`, one fsync per transaction, which is why a batch of
//! attestations is checked and recorded in one transaction.
//!
//! Tables: `metadata` (schema version, the network's
//! `genesis_validators_root`), `validators` (public key and the three low
//! watermarks), `signed_blocks` and `signed_attestations` (the own history,
//! keyed by validator and slot / target epoch, so a double proposal or
//! double vote cannot even be stored). The rules are in the parent module's
//! documentation.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{
    params, Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior,
};

use super::{NotSafe, Safe, SlashingError};
use crate::api::types::PublicKeyBytes;
use crate::spec::{Epoch, Root, Slot};

/// The database's file name in the validator client's data directory.
pub const SLASHING_PROTECTION_FILENAME: &str = "slashing_protection.sqlite";
/// The schema this code reads and writes.
const SCHEMA_VERSION: i64 = 1;
/// How long to wait for another connection's lock before calling the
/// database in use.
const BUSY_TIMEOUT: Duration = Duration::from_millis(500);

const SCHEMA: &str = "
CREATE TABLE metadata (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    schema_version INTEGER NOT NULL,
    genesis_validators_root BLOB
        CHECK (genesis_validators_root IS NULL OR length(genesis_validators_root) = 32)
);
CREATE TABLE validators (
    id INTEGER PRIMARY KEY,
    pubkey BLOB NOT NULL UNIQUE CHECK (length(pubkey) = 48),
    watermark_block_slot INTEGER CHECK (watermark_block_slot >= 0),
    watermark_source_epoch INTEGER CHECK (watermark_source_epoch >= 0),
    watermark_target_epoch INTEGER CHECK (watermark_target_epoch >= 0),
    CHECK ((watermark_source_epoch IS NULL) = (watermark_target_epoch IS NULL))
);
CREATE TABLE signed_blocks (
    validator_id INTEGER NOT NULL REFERENCES validators (id),
    slot INTEGER NOT NULL CHECK (slot >= 0),
    signing_root BLOB NOT NULL CHECK (length(signing_root) = 32),
    PRIMARY KEY (validator_id, slot)
) WITHOUT ROWID;
CREATE TABLE signed_attestations (
    validator_id INTEGER NOT NULL REFERENCES validators (id),
    source_epoch INTEGER NOT NULL CHECK (source_epoch >= 0),
    target_epoch INTEGER NOT NULL CHECK (target_epoch >= source_epoch),
    signing_root BLOB NOT NULL CHECK (length(signing_root) = 32),
    PRIMARY KEY (validator_id, target_epoch)
) WITHOUT ROWID;
-- The surround check 'an older vote with a later source' reads this index; the
-- primary key serves 'a vote with a later target'.
CREATE INDEX signed_attestations_by_source
    ON signed_attestations (validator_id, source_epoch, target_epoch);
";

/// An attestation to check and record before signing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttestationToSign {
    /// The signing key.
    pub pubkey: PublicKeyBytes,
    /// `data.source.epoch`.
    pub source_epoch: Epoch,
    /// `data.target.epoch`.
    pub target_epoch: Epoch,
    /// `compute_signing_root(data, domain)`.
    pub signing_root: Root,
}

/// A validator's low watermarks (from imports and pruning); `None`: none yet.
/// The source and target epochs are set together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Watermarks {
    /// Blocks at this slot or lower are refused.
    pub block_slot: Option<Slot>,
    /// Attestations with a lower source epoch are refused.
    pub source_epoch: Option<Epoch>,
    /// Attestations with this target epoch or lower are refused.
    pub target_epoch: Option<Epoch>,
}

impl Watermarks {
    /// Field by field, the higher of the two.
    pub fn max(self, other: Watermarks) -> Watermarks {
        Watermarks {
            block_slot: self.block_slot.max(other.block_slot),
            source_epoch: self.source_epoch.max(other.source_epoch),
            target_epoch: self.target_epoch.max(other.target_epoch),
        }
    }
}

/// The slashing-protection database of one validator client. Cloning shares
/// the one connection; every method may be called from any thread (they
/// block on SQLite and its fsync: from async code, call them inside
/// `tokio::task::spawn_blocking`).
#[derive(Clone)]
pub struct SlashingDatabase {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl fmt::Debug for SlashingDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlashingDatabase")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// A validator's row: its id and watermarks.
#[derive(Debug, Clone, Copy)]
pub(super) struct ValidatorRow {
    pub(super) id: i64,
    pub(super) watermarks: Watermarks,
}

impl SlashingDatabase {
    /// The database file in a validator client's data directory.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join(SLASHING_PROTECTION_FILENAME)
    }

    /// Opens the database at `path`, creating it (readable by its owner only)
    /// if there is none. The directory must exist. Fails with
    /// [`SlashingError::InUse`] while another process has it open.
    pub fn open_or_create(path: &Path) -> Result<Self, SlashingError> {
        create_owner_only(path)?;
        let sql_error = |action, source| sql_error(path, action, source);
        let connection = Connection::open(path).map_err(|e| sql_error("opening", e))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| sql_error("setting the busy timeout", e))?;
        // The locking mode first: a write-ahead log entered in exclusive mode
        // needs no shared-memory file, and the lock then covers other
        // processes too.
        connection
            .pragma_update(None, "locking_mode", "EXCLUSIVE")
            .and_then(|()| {
                connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| {
                    row.get::<_, String>(0)
                })
            })
            .and_then(|_| connection.pragma_update(None, "synchronous", "FULL"))
            .and_then(|()| connection.pragma_update(None, "foreign_keys", true))
            .map_err(|e| sql_error("setting up the connection", e))?;
        let database = SlashingDatabase {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                connection: Mutex::new(connection),
            }),
        };
        let version = database.write("reading or creating the schema", |tx| {
            let has_schema = tx
                .query_row(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'metadata'",
                    [],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !has_schema {
                tx.execute_batch(SCHEMA)?;
                tx.execute(
                    "INSERT INTO metadata (id, schema_version) VALUES (0, ?1)",
                    [SCHEMA_VERSION],
                )?;
            }
            tx.query_row(
                "SELECT schema_version FROM metadata WHERE id = 0",
                [],
                |r| r.get(0),
            )
            .optional()
        })?;
        if version != Some(SCHEMA_VERSION) {
            return Err(SlashingError::Schema {
                path: path.to_path_buf(),
                found: version,
                expected: SCHEMA_VERSION,
            });
        }
        Ok(database)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The `genesis_validators_root` of the database's network, once a client
    /// or an import gave it one.
    pub fn genesis_validators_root(&self) -> Result<Option<Root>, SlashingError> {
        self.read("reading the genesis_validators_root", stored_network)
    }

    /// Makes `root` the database's network if it has none; fails if it has
    /// another ([`SlashingError::GenesisValidatorsRootMismatch`], naming
    /// `given_by`, e.g. "the beacon node").
    pub fn ensure_genesis_validators_root(
        &self,
        root: Root,
        given_by: &'static str,
    ) -> Result<(), SlashingError> {
        self.write("recording the genesis_validators_root", |tx| {
            bind_network(tx, root, given_by)
        })?
    }

    /// Adds the keys the database does not know yet; keys known already keep
    /// their history.
    pub fn register_validators(&self, pubkeys: &[PublicKeyBytes]) -> Result<(), SlashingError> {
        self.write("registering validators", |tx| {
            for pubkey in pubkeys {
                register(tx, pubkey)?;
            }
            Ok(())
        })
    }

    /// Every registered key, in registration order.
    pub fn registered_validators(&self) -> Result<Vec<PublicKeyBytes>, SlashingError> {
        self.read("listing validators", |tx| {
            let mut statement = tx.prepare_cached("SELECT pubkey FROM validators ORDER BY id")?;
            let rows = statement.query_map([], |row| row.get(0).map(PublicKeyBytes))?;
            rows.collect()
        })
    }

    /// The low watermarks of `pubkey`, or `None` if it is not registered.
    pub fn watermarks(&self, pubkey: &PublicKeyBytes) -> Result<Option<Watermarks>, SlashingError> {
        self.read("reading watermarks", |tx| {
            Ok(validator_row(tx, pubkey)?.map(|row| row.watermarks))
        })
    }

    /// Checks a block proposal of `pubkey` at `slot` and, if safe, records it
    /// (durably) before returning; sign only on `Ok`.
    pub fn check_and_insert_block_proposal(
        &self,
        pubkey: &PublicKeyBytes,
        slot: Slot,
        signing_root: Root,
    ) -> Result<Safe, NotSafe> {
        self.write("checking and recording a block proposal", |tx| {
            check_and_insert_block(tx, pubkey, slot, signing_root)
        })?
    }

    /// Checks an attestation of `pubkey` and, if safe, records it (durably)
    /// before returning; sign only on `Ok`.
    pub fn check_and_insert_attestation(
        &self,
        pubkey: &PublicKeyBytes,
        source_epoch: Epoch,
        target_epoch: Epoch,
        signing_root: Root,
    ) -> Result<Safe, NotSafe> {
        let attestation = AttestationToSign {
            pubkey: *pubkey,
            source_epoch,
            target_epoch,
            signing_root,
        };
        self.write("checking and recording an attestation", |tx| {
            check_and_insert_attestation(tx, &attestation)
        })?
    }

    /// Checks and records many attestations (typically one per validator of
    /// a slot) in one transaction: one fsync for all. Each is checked in
    /// order, against the history and the batch's earlier ones; the answer
    /// has one entry per attestation, in order. Nothing is recorded unless
    /// the whole transaction commits (then `Err`, and none may be signed).
    pub fn check_and_insert_attestations(
        &self,
        attestations: &[AttestationToSign],
    ) -> Result<Vec<Result<Safe, NotSafe>>, SlashingError> {
        self.write("checking and recording attestations", |tx| {
            attestations
                .iter()
                .map(|attestation| check_and_insert_attestation(tx, attestation))
                .collect()
        })
    }

    /// Folds each validator's own history older than `keep_from_slot` (blocks)
    /// and `keep_from_epoch` (attestation targets) into its watermarks and
    /// deletes it, so the database stays small; what was pruned stays
    /// refused (minimal strategy). Typically called with the finalized epoch.
    pub fn prune(&self, keep_from_slot: Slot, keep_from_epoch: Epoch) -> Result<(), SlashingError> {
        let (keep_from_slot, keep_from_epoch) =
            (sql_clamp(keep_from_slot), sql_clamp(keep_from_epoch));
        self.write("pruning", |tx| {
            let rows: Vec<ValidatorRow> = {
                let mut statement = tx.prepare_cached(
                    "SELECT id, watermark_block_slot, watermark_source_epoch, watermark_target_epoch
                     FROM validators",
                )?;
                let rows = statement.query_map([], validator_row_from)?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for row in rows {
                let block_slot = tx
                    .prepare_cached(
                        "SELECT MAX(slot) FROM signed_blocks WHERE validator_id = ?1 AND slot < ?2",
                    )?
                    .query_row(params![row.id, keep_from_slot], |r| r.get(0))?;
                let target_epoch = tx
                    .prepare_cached(
                        "SELECT MAX(target_epoch) FROM signed_attestations
                         WHERE validator_id = ?1 AND target_epoch < ?2",
                    )?
                    .query_row(params![row.id, keep_from_epoch], |r| r.get(0))?;
                // The source watermark follows from the folded votes (see
                // `raise_watermarks`).
                let raise = Watermarks {
                    block_slot,
                    source_epoch: None,
                    target_epoch,
                };
                raise_watermarks(tx, row, raise)?;
            }
            Ok(())
        })
    }

    /// Runs `f` in a transaction that takes the write lock at once and
    /// commits (durably) if `f` succeeds.
    pub(super) fn write<T>(
        &self,
        action: &'static str,
        f: impl FnOnce(&Transaction) -> rusqlite::Result<T>,
    ) -> Result<T, SlashingError> {
        let mut connection = self.lock();
        let run = || {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        };
        run().map_err(|e| sql_error(&self.inner.path, action, e))
    }

    /// Runs `f` in a read transaction (one consistent view).
    pub(super) fn read<T>(
        &self,
        action: &'static str,
        f: impl FnOnce(&Transaction) -> rusqlite::Result<T>,
    ) -> Result<T, SlashingError> {
        let mut connection = self.lock();
        let run = || {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Deferred)?;
            f(&tx)
        };
        run().map_err(|e| sql_error(&self.inner.path, action, e))
    }

    /// The connection. A thread that panicked while holding it left no half
    /// transaction behind (the transaction rolled back as it unwound), so a
    /// poisoned lock is still a consistent database.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.inner
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Creates `path` readable and writable by its owner only, unless it exists.
fn create_owner_only(path: &Path) -> Result<(), SlashingError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(SlashingError::Create {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn sql_error(path: &Path, action: &'static str, source: rusqlite::Error) -> SlashingError {
    match source.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => SlashingError::InUse {
            path: path.to_path_buf(),
        },
        _ => SlashingError::Sqlite {
            path: path.to_path_buf(),
            action,
            source,
        },
    }
}

/// A slot or epoch as SQLite's signed integer, refused above `i64::MAX`.
fn sql_u64(what: &'static str, value: u64) -> Result<i64, NotSafe> {
    i64::try_from(value).map_err(|_| NotSafe::OutOfRange { what, value })
}

/// A bound as SQLite's signed integer; above `i64::MAX` nothing stored is
/// larger anyway.
fn sql_clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) fn stored_network(tx: &Transaction) -> rusqlite::Result<Option<Root>> {
    let root: Option<[u8; 32]> = tx.query_row(
        "SELECT genesis_validators_root FROM metadata WHERE id = 0",
        [],
        |row| row.get(0),
    )?;
    Ok(root.map(Root::from))
}

/// Sets the network if none is stored; `Err(mismatch)` inside `Ok` if another is.
pub(super) fn bind_network(
    tx: &Transaction,
    root: Root,
    given_by: &'static str,
) -> rusqlite::Result<Result<(), SlashingError>> {
    match stored_network(tx)? {
        Some(database) if database != root => {
            Ok(Err(SlashingError::GenesisValidatorsRootMismatch {
                database,
                given: root,
                given_by,
            }))
        }
        Some(_) => Ok(Ok(())),
        None => {
            tx.execute(
                "UPDATE metadata SET genesis_validators_root = ?1 WHERE id = 0",
                [root.as_slice()],
            )?;
            Ok(Ok(()))
        }
    }
}

pub(super) fn register(tx: &Transaction, pubkey: &PublicKeyBytes) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT OR IGNORE INTO validators (pubkey) VALUES (?1)")?
        .execute([pubkey.0.as_slice()])?;
    Ok(())
}

fn validator_row_from(row: &rusqlite::Row) -> rusqlite::Result<ValidatorRow> {
    Ok(ValidatorRow {
        id: row.get(0)?,
        watermarks: Watermarks {
            block_slot: row.get(1)?,
            source_epoch: row.get(2)?,
            target_epoch: row.get(3)?,
        },
    })
}

pub(super) fn validator_row(
    tx: &Transaction,
    pubkey: &PublicKeyBytes,
) -> rusqlite::Result<Option<ValidatorRow>> {
    tx.prepare_cached(
        "SELECT id, watermark_block_slot, watermark_source_epoch, watermark_target_epoch
         FROM validators WHERE pubkey = ?1",
    )?
    .query_row([pubkey.0.as_slice()], validator_row_from)
    .optional()
}

/// Raises the watermarks of `validator` to at least `raise` and folds its own
/// history at or below them into them: blocks at or below the slot
/// watermark are deleted; attestations at or below the target watermark are
/// deleted after raising the source watermark to their highest source.
/// Without that, a later vote with a higher target and a lower source would
/// surround a deleted one. So the own history stays above the watermarks,
/// and what the watermarks let through cannot conflict with anything folded.
pub(super) fn raise_watermarks(
    tx: &Transaction,
    validator: ValidatorRow,
    raise: Watermarks,
) -> rusqlite::Result<Watermarks> {
    let mut watermarks = validator.watermarks.max(raise);
    if let Some(slot) = watermarks.block_slot {
        tx.prepare_cached("DELETE FROM signed_blocks WHERE validator_id = ?1 AND slot <= ?2")?
            .execute(params![validator.id, slot])?;
    }
    if let Some(target) = watermarks.target_epoch {
        let folded_source: Option<Epoch> = tx
            .prepare_cached(
                "SELECT MAX(source_epoch) FROM signed_attestations
                 WHERE validator_id = ?1 AND target_epoch <= ?2",
            )?
            .query_row(params![validator.id, target], |r| r.get(0))?;
        // A target watermark always comes with a source one.
        watermarks.source_epoch = watermarks.source_epoch.max(folded_source).or(Some(0));
        tx.prepare_cached(
            "DELETE FROM signed_attestations WHERE validator_id = ?1 AND target_epoch <= ?2",
        )?
        .execute(params![validator.id, target])?;
    }
    tx.prepare_cached(
        "UPDATE validators SET watermark_block_slot = ?2, watermark_source_epoch = ?3,
             watermark_target_epoch = ?4
         WHERE id = ?1",
    )?
    .execute(params![
        validator.id,
        watermarks.block_slot,
        watermarks.source_epoch,
        watermarks.target_epoch
    ])?;
    Ok(watermarks)
}

fn check_and_insert_block(
    tx: &Transaction,
    pubkey: &PublicKeyBytes,
    slot: Slot,
    signing_root: Root,
) -> rusqlite::Result<Result<Safe, NotSafe>> {
    let sql_slot = match sql_u64("slot", slot) {
        Ok(value) => value,
        Err(refused) => return Ok(Err(refused)),
    };
    let Some(validator) = validator_row(tx, pubkey)? else {
        return Ok(Err(NotSafe::UnregisteredValidator { pubkey: *pubkey }));
    };
    if let Some(watermark) = validator.watermarks.block_slot.filter(|&w| slot <= w) {
        return Ok(Err(NotSafe::BlockAtOrBelowWatermark { slot, watermark }));
    }
    let existing: Option<[u8; 32]> = tx
        .prepare_cached(
            "SELECT signing_root FROM signed_blocks WHERE validator_id = ?1 AND slot = ?2",
        )?
        .query_row(params![validator.id, sql_slot], |r| r.get(0))
        .optional()?;
    match existing.map(Root::from) {
        Some(existing_root) if existing_root == signing_root => Ok(Ok(Safe::SignedBefore)),
        Some(existing_root) => Ok(Err(NotSafe::DoubleBlockProposal {
            slot,
            existing_root,
            signing_root,
        })),
        None => {
            tx.prepare_cached(
                "INSERT INTO signed_blocks (validator_id, slot, signing_root) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![validator.id, sql_slot, signing_root.as_slice()])?;
            Ok(Ok(Safe::New))
        }
    }
}

fn check_and_insert_attestation(
    tx: &Transaction,
    attestation: &AttestationToSign,
) -> rusqlite::Result<Result<Safe, NotSafe>> {
    let AttestationToSign {
        pubkey,
        source_epoch,
        target_epoch,
        signing_root,
    } = *attestation;
    if source_epoch > target_epoch {
        return Ok(Err(NotSafe::SourceAfterTarget {
            source_epoch,
            target_epoch,
        }));
    }
    let (source, target) = match (
        sql_u64("source epoch", source_epoch),
        sql_u64("target epoch", target_epoch),
    ) {
        (Ok(source), Ok(target)) => (source, target),
        (Err(refused), _) | (_, Err(refused)) => return Ok(Err(refused)),
    };
    let Some(validator) = validator_row(tx, &pubkey)? else {
        return Ok(Err(NotSafe::UnregisteredValidator { pubkey }));
    };
    if let Some(watermark) = validator
        .watermarks
        .source_epoch
        .filter(|&w| source_epoch < w)
    {
        return Ok(Err(NotSafe::SourceBelowWatermark {
            source_epoch,
            watermark,
        }));
    }
    if let Some(watermark) = validator
        .watermarks
        .target_epoch
        .filter(|&w| target_epoch <= w)
    {
        return Ok(Err(NotSafe::TargetAtOrBelowWatermark {
            target_epoch,
            watermark,
        }));
    }
    if let Some(conflict) = own_vote_conflict(tx, validator.id, attestation, source, target)? {
        return Ok(conflict);
    }
    tx.prepare_cached(
        "INSERT INTO signed_attestations (validator_id, source_epoch, target_epoch, signing_root)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        validator.id,
        source,
        target,
        signing_root.as_slice()
    ])?;
    Ok(Ok(Safe::New))
}

/// The complete checks against the own history: `Some` answer when a vote
/// of the same target exists (signed before or double vote) or one
/// surrounds or is surrounded by `attestation`.
fn own_vote_conflict(
    tx: &Transaction,
    validator_id: i64,
    attestation: &AttestationToSign,
    source: i64,
    target: i64,
) -> rusqlite::Result<Option<Result<Safe, NotSafe>>> {
    let AttestationToSign {
        source_epoch,
        target_epoch,
        signing_root,
        ..
    } = *attestation;
    let same_target: Option<(Epoch, [u8; 32])> = tx
        .prepare_cached(
            "SELECT source_epoch, signing_root FROM signed_attestations
             WHERE validator_id = ?1 AND target_epoch = ?2",
        )?
        .query_row(params![validator_id, target], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    if let Some((existing_source, existing_root)) = same_target {
        let existing_root = Root::from(existing_root);
        // The signing root covers the source, so equal roots with unequal
        // sources cannot come from one message.
        return Ok(Some(
            if existing_root == signing_root && existing_source == source_epoch {
                Ok(Safe::SignedBefore)
            } else {
                Err(NotSafe::DoubleVote {
                    target_epoch,
                    existing_source,
                    existing_root,
                    source_epoch,
                    signing_root,
                })
            },
        ));
    }
    let surrounding: Option<(Epoch, Epoch)> = tx
        .prepare_cached(
            "SELECT source_epoch, target_epoch FROM signed_attestations
             WHERE validator_id = ?1 AND target_epoch > ?3 AND source_epoch < ?2
             LIMIT 1",
        )?
        .query_row(params![validator_id, source, target], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    if let Some((existing_source, existing_target)) = surrounding {
        return Ok(Some(Err(NotSafe::SurroundedByExisting {
            source_epoch,
            target_epoch,
            existing_source,
            existing_target,
        })));
    }
    let surrounded: Option<(Epoch, Epoch)> = tx
        .prepare_cached(
            "SELECT source_epoch, target_epoch
             FROM signed_attestations INDEXED BY signed_attestations_by_source
             WHERE validator_id = ?1 AND source_epoch > ?2 AND target_epoch < ?3
             LIMIT 1",
        )?
        .query_row(params![validator_id, source, target], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(surrounded.map(|(existing_source, existing_target)| {
        Err(NotSafe::SurroundsExisting {
            source_epoch,
            target_epoch,
            existing_source,
            existing_target,
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vc::slashing::{Interchange, SlashingError};

    fn pubkey(i: u8) -> PublicKeyBytes {
        PublicKeyBytes([i; 48])
    }

    fn root(i: u8) -> Root {
        Root::repeat_byte(i)
    }

    fn open(dir: &tempfile::TempDir) -> SlashingDatabase {
        SlashingDatabase::open_or_create(&SlashingDatabase::path_in(dir.path())).unwrap()
    }

    /// A new database in a new directory with validators 1..=n registered.
    fn database(n: u8) -> (tempfile::TempDir, SlashingDatabase) {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let keys: Vec<_> = (1..=n).map(pubkey).collect();
        db.register_validators(&keys).unwrap();
        (dir, db)
    }

    fn attest(db: &SlashingDatabase, source: Epoch, target: Epoch, r: u8) -> Result<Safe, NotSafe> {
        db.check_and_insert_attestation(&pubkey(1), source, target, root(r))
    }

    #[test]
    fn same_attestation_is_signed_before_and_another_root_is_a_double_vote() {
        let (_dir, db) = database(1);
        assert_eq!(attest(&db, 1, 2, 7).unwrap(), Safe::New);
        assert_eq!(attest(&db, 1, 2, 7).unwrap(), Safe::SignedBefore);
        let refused = attest(&db, 1, 2, 8).unwrap_err();
        assert!(
            matches!(
                refused,
                NotSafe::DoubleVote {
                    target_epoch: 2,
                    existing_source: 1,
                    ..
                }
            ),
            "{refused:?}"
        );
        assert!(
            refused.to_string().contains("double vote: target epoch 2"),
            "{refused}"
        );
        // Another source for the same target is a double vote too.
        assert!(matches!(
            attest(&db, 0, 2, 7),
            Err(NotSafe::DoubleVote { .. })
        ));
        // Another validator is unaffected.
        assert_eq!(
            db.check_and_insert_attestation(&pubkey(2), 1, 2, root(8))
                .unwrap_err()
                .to_string(),
            NotSafe::UnregisteredValidator { pubkey: pubkey(2) }.to_string()
        );
    }

    #[test]
    fn surround_votes_are_refused_both_ways() {
        let (_dir, db) = database(1);
        assert_eq!(attest(&db, 3, 4, 1).unwrap(), Safe::New);
        let surrounding = attest(&db, 2, 5, 2).unwrap_err();
        assert!(
            matches!(
                surrounding,
                NotSafe::SurroundsExisting {
                    source_epoch: 2,
                    target_epoch: 5,
                    existing_source: 3,
                    existing_target: 4
                }
            ),
            "{surrounding:?}"
        );
        assert_eq!(attest(&db, 10, 20, 3).unwrap(), Safe::New);
        let surrounded = attest(&db, 11, 19, 4).unwrap_err();
        assert!(
            matches!(
                surrounded,
                NotSafe::SurroundedByExisting {
                    existing_source: 10,
                    existing_target: 20,
                    ..
                }
            ),
            "{surrounded:?}"
        );
        assert!(
            surrounded.to_string().contains("is surrounded by"),
            "{surrounded}"
        );
        // Neither surrounding nor surrounded: older, out-of-order votes are
        // fine with the complete history.
        assert_eq!(attest(&db, 4, 6, 5).unwrap(), Safe::New);
        assert_eq!(attest(&db, 0, 1, 6).unwrap(), Safe::New);
        assert_eq!(attest(&db, 10, 21, 7).unwrap(), Safe::New);
        // Sharing a source or a target edge is no surround.
        assert_eq!(attest(&db, 10, 11, 8).unwrap(), Safe::New);
        assert!(matches!(
            attest(&db, 5, 3, 9),
            Err(NotSafe::SourceAfterTarget {
                source_epoch: 5,
                target_epoch: 3
            })
        ));
    }

    #[test]
    fn second_block_at_a_slot_is_a_double_proposal() {
        let (_dir, db) = database(1);
        let key = pubkey(1);
        assert_eq!(
            db.check_and_insert_block_proposal(&key, 5, root(1))
                .unwrap(),
            Safe::New
        );
        assert_eq!(
            db.check_and_insert_block_proposal(&key, 5, root(1))
                .unwrap(),
            Safe::SignedBefore
        );
        let refused = db
            .check_and_insert_block_proposal(&key, 5, root(2))
            .unwrap_err();
        assert!(
            matches!(refused, NotSafe::DoubleBlockProposal { slot: 5, .. }),
            "{refused:?}"
        );
        // Own history is complete: an earlier slot is fine.
        assert_eq!(
            db.check_and_insert_block_proposal(&key, 3, root(3))
                .unwrap(),
            Safe::New
        );
        assert!(matches!(
            db.check_and_insert_block_proposal(&key, u64::MAX, root(3)),
            Err(NotSafe::OutOfRange { what: "slot", .. })
        ));
    }

    #[test]
    fn records_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open(&dir);
            db.register_validators(&[pubkey(1)]).unwrap();
            assert_eq!(attest(&db, 1, 2, 1).unwrap(), Safe::New);
            assert_eq!(
                db.check_and_insert_block_proposal(&pubkey(1), 9, root(1))
                    .unwrap(),
                Safe::New
            );
            // Dropped without any shutdown step, as a crash right after the
            // record would leave it.
        }
        let db = open(&dir);
        assert_eq!(attest(&db, 1, 2, 1).unwrap(), Safe::SignedBefore);
        assert!(matches!(
            attest(&db, 1, 2, 2),
            Err(NotSafe::DoubleVote { .. })
        ));
        assert!(matches!(
            attest(&db, 0, 3, 2),
            Err(NotSafe::SurroundsExisting { .. })
        ));
        assert_eq!(
            db.check_and_insert_block_proposal(&pubkey(1), 9, root(1))
                .unwrap(),
            Safe::SignedBefore
        );
        assert!(matches!(
            db.check_and_insert_block_proposal(&pubkey(1), 9, root(2)),
            Err(NotSafe::DoubleBlockProposal { .. })
        ));
        // Registering again keeps the history.
        db.register_validators(&[pubkey(1)]).unwrap();
        assert_eq!(attest(&db, 1, 2, 1).unwrap(), Safe::SignedBefore);
    }

    #[test]
    fn a_second_connection_is_refused_while_the_first_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(&dir);
        let second = SlashingDatabase::open_or_create(&SlashingDatabase::path_in(dir.path()));
        let error = second.unwrap_err();
        assert!(matches!(error, SlashingError::InUse { .. }), "{error:?}");
        assert!(
            error.to_string().contains("in use by another process"),
            "{error}"
        );
        drop(first);
        open(&dir);
    }

    #[test]
    fn a_file_of_another_kind_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = SlashingDatabase::path_in(dir.path());
        std::fs::write(
            &path,
            b"this is not a database, and rather longer than a header",
        )
        .unwrap();
        let error = SlashingDatabase::open_or_create(&path).unwrap_err();
        assert!(
            error.to_string().contains("slashing_protection.sqlite"),
            "{error}"
        );
    }

    #[test]
    fn the_network_is_set_once() {
        let (_dir, db) = database(0);
        assert_eq!(db.genesis_validators_root().unwrap(), None);
        db.ensure_genesis_validators_root(root(1), "the beacon node")
            .unwrap();
        db.ensure_genesis_validators_root(root(1), "the beacon node")
            .unwrap();
        let error = db
            .ensure_genesis_validators_root(root(2), "the beacon node")
            .unwrap_err();
        assert!(
            matches!(error, SlashingError::GenesisValidatorsRootMismatch { database, given, .. }
                if database == root(1) && given == root(2)),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("the beacon node gives"),
            "{error}"
        );
        assert_eq!(db.genesis_validators_root().unwrap(), Some(root(1)));
    }

    #[test]
    fn a_batch_is_checked_in_order_and_each_item_alone() {
        let (_dir, db) = database(3);
        let item = |key: u8, source, target, r: u8| AttestationToSign {
            pubkey: pubkey(key),
            source_epoch: source,
            target_epoch: target,
            signing_root: root(r),
        };
        let outcomes = db
            .check_and_insert_attestations(&[
                item(1, 1, 2, 1),
                item(2, 1, 2, 1),
                // A double vote against the batch's first item.
                item(1, 1, 2, 2),
                item(9, 1, 2, 1),
                item(3, 0, 5, 1),
                item(3, 1, 4, 1),
            ])
            .unwrap();
        let summary: Vec<Result<Safe, String>> = outcomes
            .into_iter()
            .map(|outcome| outcome.map_err(|e| format!("{e:?}")))
            .collect();
        assert_eq!(summary[0], Ok(Safe::New));
        assert_eq!(summary[1], Ok(Safe::New));
        assert!(
            summary[2].as_ref().unwrap_err().starts_with("DoubleVote"),
            "{summary:?}"
        );
        assert!(summary[3]
            .as_ref()
            .unwrap_err()
            .starts_with("UnregisteredValidator"));
        assert_eq!(summary[4], Ok(Safe::New));
        assert!(summary[5]
            .as_ref()
            .unwrap_err()
            .starts_with("SurroundedByExisting"));
        // What the batch allowed was recorded.
        assert_eq!(attest(&db, 1, 2, 1).unwrap(), Safe::SignedBefore);
    }

    #[test]
    fn concurrent_signers_never_both_win() {
        let (_dir, db) = database(8);
        // Per validator and target epoch, eight threads race with eight roots.
        let threads: Vec<_> = (0..8u8)
            .map(|thread| {
                let db = db.clone();
                std::thread::spawn(move || {
                    let mut won = Vec::new();
                    for target in 1..=10 {
                        let batch: Vec<_> = (1..=8)
                            .map(|key| AttestationToSign {
                                pubkey: pubkey(key),
                                source_epoch: target - 1,
                                target_epoch: target,
                                signing_root: root(thread),
                            })
                            .collect();
                        let outcomes = if thread % 2 == 0 {
                            db.check_and_insert_attestations(&batch).unwrap()
                        } else {
                            batch
                                .iter()
                                .map(|a| {
                                    db.check_and_insert_attestation(
                                        &a.pubkey,
                                        a.source_epoch,
                                        a.target_epoch,
                                        a.signing_root,
                                    )
                                })
                                .collect()
                        };
                        for (a, outcome) in batch.iter().zip(outcomes) {
                            match outcome {
                                Ok(safe) => {
                                    assert_eq!(safe, Safe::New);
                                    won.push((a.pubkey.0[0], a.target_epoch));
                                }
                                Err(NotSafe::DoubleVote { .. }) => {}
                                Err(other) => panic!("{other:?}"),
                            }
                        }
                    }
                    won
                })
            })
            .collect();
        let mut won: Vec<(u8, Epoch)> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        won.sort();
        let expected: Vec<(u8, Epoch)> = (1..=8)
            .flat_map(|key| (1..=10).map(move |target| (key, target)))
            .collect();
        assert_eq!(won, expected, "exactly one signer per validator and target");
    }

    #[test]
    fn pruning_folds_old_history_into_watermarks() {
        let (_dir, db) = database(1);
        let key = pubkey(1);
        for (source, target) in [(0, 1), (1, 2), (2, 3), (3, 10)] {
            assert_eq!(attest(&db, source, target, 1).unwrap(), Safe::New);
        }
        for slot in [5, 6, 40] {
            db.check_and_insert_block_proposal(&key, slot, root(1))
                .unwrap();
        }
        db.prune(32, 3).unwrap();
        assert_eq!(
            db.watermarks(&key).unwrap(),
            Some(Watermarks {
                block_slot: Some(6),
                source_epoch: Some(1),
                target_epoch: Some(2),
            })
        );
        // Pruned records are refused even with their own root now ...
        assert!(matches!(
            attest(&db, 1, 2, 1),
            Err(NotSafe::TargetAtOrBelowWatermark { watermark: 2, .. })
        ));
        assert!(matches!(
            db.check_and_insert_block_proposal(&key, 6, root(1)),
            Err(NotSafe::BlockAtOrBelowWatermark { watermark: 6, .. })
        ));
        // ... what was kept still answers completely ...
        assert_eq!(attest(&db, 2, 3, 1).unwrap(), Safe::SignedBefore);
        assert!(matches!(
            attest(&db, 2, 11, 1),
            Err(NotSafe::SurroundsExisting { .. })
        ));
        assert_eq!(
            db.check_and_insert_block_proposal(&key, 40, root(1))
                .unwrap(),
            Safe::SignedBefore
        );
        // ... and a source below the watermark is refused.
        assert!(matches!(
            attest(&db, 0, 11, 1),
            Err(NotSafe::SourceBelowWatermark { watermark: 1, .. })
        ));
        assert_eq!(attest(&db, 10, 11, 1).unwrap(), Safe::New);
        let exported = db.export_interchange();
        assert!(matches!(exported, Err(SlashingError::NoNetwork { .. })));
        db.ensure_genesis_validators_root(root(0), "the test")
            .unwrap();
        let exported: Interchange = db.export_interchange().unwrap();
        let validator = &exported.data[0];
        let slots: Vec<_> = validator
            .signed_blocks
            .iter()
            .map(|b| (b.slot, b.signing_root))
            .collect();
        assert_eq!(slots, vec![(6, None), (40, Some(root(1)))]);
        let votes: Vec<_> = validator
            .signed_attestations
            .iter()
            .map(|a| (a.source_epoch, a.target_epoch, a.signing_root.is_some()))
            .collect();
        assert_eq!(
            votes,
            vec![(1, 2, false), (2, 3, true), (3, 10, true), (10, 11, true)]
        );
    }
}
