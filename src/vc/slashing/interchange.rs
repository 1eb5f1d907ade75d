//! The EIP-3076 slashing-protection interchange format, version 5: its JSON
//! (serde types), reading a file within a size bound, and the database's
//! import and export.
//!
//! **Import is minimal and merges.** For each validator of the file (a key
//! listed twice counts once, with everything listed under it) the database
//! keeps the highest block slot, the highest attestation source epoch and
//! the highest attestation target epoch, raised over what it had, as low
//! watermarks; its own history at or below them is folded into them (see
//! `database::raise_watermarks`). Signing roots of imported records are not
//! kept. So the file's records, even mutually slashable ones (which the EIP
//! lets a client refuse or accept), can only make the database refuse more:
//! such files are accepted. The whole file is one transaction: refused as a
//! whole (another network, a number beyond `i64::MAX`) or imported whole.
//!
//! **Export writes everything the database holds**: for each registered
//! validator, its watermarks as one block and one attestation without a
//! signing root (the form the EIP gives to records whose root is unknown),
//! then its own history with signing roots. Importing an export into an
//! empty database gives the same watermarks.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_utils::quoted_u64::require_quotes as quoted_u64;

use super::database::{bind_network, raise_watermarks, register, stored_network, validator_row};
use super::{SlashingDatabase, SlashingError, Watermarks};
use crate::api::types::PublicKeyBytes;
use crate::spec::{Epoch, Root, Slot};

/// The interchange format version this code reads and writes.
pub const INTERCHANGE_FORMAT_VERSION: &str = "5";
/// The largest interchange file read (1 GiB).
pub const MAX_INTERCHANGE_BYTES: u64 = 1 << 30;

/// An interchange file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interchange {
    /// Format version and network.
    pub metadata: InterchangeMetadata,
    /// One entry per validator (a key may appear more than once).
    pub data: Vec<InterchangeValidator>,
}

/// `metadata` of an interchange file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterchangeMetadata {
    /// `"5"`.
    pub interchange_format_version: String,
    /// The network the records were signed on.
    #[serde(with = "crate::spec::hex::root")]
    pub genesis_validators_root: Root,
}

/// What one validator signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterchangeValidator {
    /// The validator's public key.
    pub pubkey: PublicKeyBytes,
    /// Signed blocks.
    pub signed_blocks: Vec<InterchangeBlock>,
    /// Signed attestations.
    pub signed_attestations: Vec<InterchangeAttestation>,
}

/// A signed block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterchangeBlock {
    /// Its slot.
    #[serde(with = "quoted_u64")]
    pub slot: Slot,
    /// `compute_signing_root(block, domain)`, when known.
    #[serde(
        default,
        with = "crate::spec::hex::root_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub signing_root: Option<Root>,
}

/// A signed attestation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterchangeAttestation {
    /// `data.source.epoch`.
    #[serde(with = "quoted_u64")]
    pub source_epoch: Epoch,
    /// `data.target.epoch`.
    #[serde(with = "quoted_u64")]
    pub target_epoch: Epoch,
    /// `compute_signing_root(data, domain)`, when known.
    #[serde(
        default,
        with = "crate::spec::hex::root_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub signing_root: Option<Root>,
}

/// Why an interchange file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum InterchangeError {
    /// The file could not be read.
    #[error("cannot read the interchange file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_INTERCHANGE_BYTES`].
    #[error("the interchange file {path} is larger than {max} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The bound.
        max: u64,
    },
    /// Not JSON of the interchange's shape.
    #[error("not an EIP-3076 interchange: {0}")]
    Json(#[from] serde_json::Error),
    /// Another format version.
    #[error("unsupported interchange_format_version {found:?}: only {INTERCHANGE_FORMAT_VERSION:?} (EIP-3076 v5) is read")]
    UnsupportedVersion {
        /// The version in the file.
        found: String,
    },
    /// The file could not be written.
    #[error("cannot write the interchange file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The part of a file read first, so that another version is named as such
/// rather than as a shape error.
#[derive(Deserialize)]
struct Header {
    metadata: InterchangeMetadata,
}

impl Interchange {
    /// Parses an interchange of format version 5.
    pub fn from_json_str(json: &str) -> Result<Self, InterchangeError> {
        let header: Header = serde_json::from_str(json)?;
        let found = header.metadata.interchange_format_version;
        if found != INTERCHANGE_FORMAT_VERSION {
            return Err(InterchangeError::UnsupportedVersion { found });
        }
        Ok(serde_json::from_str(json)?)
    }

    /// Reads and parses the file at `path` (at most [`MAX_INTERCHANGE_BYTES`]).
    pub fn read_file(path: &Path) -> Result<Self, InterchangeError> {
        Self::read_file_within(path, MAX_INTERCHANGE_BYTES)
    }

    fn read_file_within(path: &Path, max: u64) -> Result<Self, InterchangeError> {
        let read_error = |source| InterchangeError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut json = String::new();
        file.take(max.saturating_add(1))
            .read_to_string(&mut json)
            .map_err(read_error)?;
        if json.len() as u64 > max {
            return Err(InterchangeError::TooLarge {
                path: path.to_path_buf(),
                max,
            });
        }
        Self::from_json_str(&json)
    }

    /// Writes the interchange as indented JSON to `path` (replacing it).
    pub fn write_file(&self, path: &Path) -> Result<(), InterchangeError> {
        let json = serde_json::to_vec_pretty(self)?;
        std::fs::write(path, json).map_err(|source| InterchangeError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// What an import did for one validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorImport {
    /// The validator.
    pub pubkey: PublicKeyBytes,
    /// Blocks listed for it in the file.
    pub blocks: usize,
    /// Attestations listed for it in the file.
    pub attestations: usize,
    /// Its watermarks after the import.
    pub watermarks: Watermarks,
}

/// One validator's records in a file, reduced to what the import keeps.
struct Minified {
    pubkey: PublicKeyBytes,
    blocks: usize,
    attestations: usize,
    highest: Watermarks,
}

/// Merges each key's entries and keeps its highest slot and epochs.
fn minify(interchange: &Interchange) -> Vec<Minified> {
    let mut by_key: BTreeMap<[u8; 48], Minified> = BTreeMap::new();
    for entry in &interchange.data {
        let minified = by_key.entry(entry.pubkey.0).or_insert(Minified {
            pubkey: entry.pubkey,
            blocks: 0,
            attestations: 0,
            highest: Watermarks::default(),
        });
        minified.blocks += entry.signed_blocks.len();
        minified.attestations += entry.signed_attestations.len();
        let highest = Watermarks {
            block_slot: entry.signed_blocks.iter().map(|b| b.slot).max(),
            source_epoch: entry
                .signed_attestations
                .iter()
                .map(|a| a.source_epoch)
                .max(),
            target_epoch: entry
                .signed_attestations
                .iter()
                .map(|a| a.target_epoch)
                .max(),
        };
        minified.highest = minified.highest.max(highest);
    }
    by_key.into_values().collect()
}

/// The first of a validator's watermarks SQLite cannot store, as an error.
fn check_range(minified: &Minified) -> Result<(), SlashingError> {
    let Watermarks {
        block_slot,
        source_epoch,
        target_epoch,
    } = minified.highest;
    [
        ("block slot", block_slot),
        ("attestation source epoch", source_epoch),
        ("attestation target epoch", target_epoch),
    ]
    .into_iter()
    .find_map(|(what, value)| {
        value
            .filter(|&v| i64::try_from(v).is_err())
            .map(|v| (what, v))
    })
    .map_or(Ok(()), |(what, value)| {
        Err(SlashingError::OutOfRange {
            pubkey: minified.pubkey,
            what,
            value,
        })
    })
}

impl SlashingDatabase {
    /// Imports `interchange` (see the module documentation): all of it in
    /// one transaction, or nothing. The file's `genesis_validators_root`
    /// must be the database's; a database without one takes the file's.
    pub fn import_interchange(
        &self,
        interchange: &Interchange,
    ) -> Result<Vec<ValidatorImport>, SlashingError> {
        let validators = minify(interchange);
        validators.iter().try_for_each(check_range)?;
        let network = interchange.metadata.genesis_validators_root;
        self.write("importing an interchange", |tx| {
            if let Err(mismatch) = bind_network(tx, network, "the interchange file")? {
                return Ok(Err(mismatch));
            }
            let mut imported = Vec::with_capacity(validators.len());
            for minified in &validators {
                register(tx, &minified.pubkey)?;
                let Some(row) = validator_row(tx, &minified.pubkey)? else {
                    return Err(rusqlite::Error::QueryReturnedNoRows);
                };
                imported.push(ValidatorImport {
                    pubkey: minified.pubkey,
                    blocks: minified.blocks,
                    attestations: minified.attestations,
                    watermarks: raise_watermarks(tx, row, minified.highest)?,
                });
            }
            Ok(Ok(imported))
        })
        // A mismatch is found before anything is written.
        .and_then(|outcome| outcome)
    }

    /// Every registered validator's watermarks and own history, for the
    /// database's network ([`SlashingError::NoNetwork`] if it has none).
    pub fn export_interchange(&self) -> Result<Interchange, SlashingError> {
        let (network, data) = self.read("exporting an interchange", |tx| {
            let Some(network) = stored_network(tx)? else {
                return Ok((None, Vec::new()));
            };
            let mut validators = tx.prepare_cached(
                "SELECT id, pubkey, watermark_block_slot, watermark_source_epoch,
                     watermark_target_epoch
                 FROM validators ORDER BY id",
            )?;
            let rows = validators.query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    PublicKeyBytes(row.get(1)?),
                    Watermarks {
                        block_slot: row.get(2)?,
                        source_epoch: row.get(3)?,
                        target_epoch: row.get(4)?,
                    },
                ))
            })?;
            let mut data = Vec::new();
            for row in rows {
                let (id, pubkey, watermarks) = row?;
                data.push(export_validator(tx, id, pubkey, watermarks)?);
            }
            Ok((Some(network), data))
        })?;
        let network = network.ok_or_else(|| SlashingError::NoNetwork {
            path: self.path().to_path_buf(),
        })?;
        Ok(Interchange {
            metadata: InterchangeMetadata {
                interchange_format_version: INTERCHANGE_FORMAT_VERSION.into(),
                genesis_validators_root: network,
            },
            data,
        })
    }
}

fn export_validator(
    tx: &rusqlite::Transaction,
    id: i64,
    pubkey: PublicKeyBytes,
    watermarks: Watermarks,
) -> rusqlite::Result<InterchangeValidator> {
    let mut signed_blocks: Vec<InterchangeBlock> = watermarks
        .block_slot
        .map(|slot| InterchangeBlock {
            slot,
            signing_root: None,
        })
        .into_iter()
        .collect();
    let mut blocks = tx.prepare_cached(
        "SELECT slot, signing_root FROM signed_blocks WHERE validator_id = ?1 ORDER BY slot",
    )?;
    for block in blocks.query_map([id], |row| {
        Ok(InterchangeBlock {
            slot: row.get(0)?,
            signing_root: Some(Root::from(row.get::<_, [u8; 32]>(1)?)),
        })
    })? {
        signed_blocks.push(block?);
    }
    let mut signed_attestations: Vec<InterchangeAttestation> =
        match (watermarks.source_epoch, watermarks.target_epoch) {
            (Some(source_epoch), Some(target_epoch)) => vec![InterchangeAttestation {
                source_epoch,
                target_epoch,
                signing_root: None,
            }],
            _ => Vec::new(),
        };
    let mut attestations = tx.prepare_cached(
        "SELECT source_epoch, target_epoch, signing_root FROM signed_attestations
         WHERE validator_id = ?1 ORDER BY target_epoch",
    )?;
    for attestation in attestations.query_map([id], |row| {
        Ok(InterchangeAttestation {
            source_epoch: row.get(0)?,
            target_epoch: row.get(1)?,
            signing_root: Some(Root::from(row.get::<_, [u8; 32]>(2)?)),
        })
    })? {
        signed_attestations.push(attestation?);
    }
    Ok(InterchangeValidator {
        pubkey,
        signed_blocks,
        signed_attestations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vc::slashing::{NotSafe, Safe};

    const KEY: &str = "0xa99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c";
    const ROOT_0: &str = "0x0000000000000000000000000000000000000000000000000000000000000000";

    fn json(version: &str, root: &str, data: &str) -> String {
        format!(
            r#"{{"metadata": {{"interchange_format_version": "{version}", "genesis_validators_root": "{root}"}}, "data": {data}}}"#
        )
    }

    fn one_validator(pubkey: &str, blocks: &[&str], attestations: &[(&str, &str)]) -> String {
        let blocks: Vec<String> = blocks
            .iter()
            .map(|s| format!(r#"{{"slot": "{s}"}}"#))
            .collect();
        let attestations: Vec<String> = attestations
            .iter()
            .map(|(s, t)| format!(r#"{{"source_epoch": "{s}", "target_epoch": "{t}"}}"#))
            .collect();
        format!(
            r#"[{{"pubkey": "{pubkey}", "signed_blocks": [{}], "signed_attestations": [{}]}}]"#,
            blocks.join(","),
            attestations.join(",")
        )
    }

    fn parse_error(text: &str) -> String {
        Interchange::from_json_str(text).unwrap_err().to_string()
    }

    fn database() -> (tempfile::TempDir, SlashingDatabase) {
        let dir = tempfile::tempdir().unwrap();
        let db = SlashingDatabase::open_or_create(&SlashingDatabase::path_in(dir.path())).unwrap();
        (dir, db)
    }

    #[test]
    fn bad_files_are_named_clearly() {
        let good = json("5", ROOT_0, &one_validator(KEY, &["1"], &[("0", "1")]));
        Interchange::from_json_str(&good).unwrap();
        let truncated = &good[..good.len() - 3];
        let error = parse_error(truncated);
        assert!(
            error.starts_with("not an EIP-3076 interchange: "),
            "{error}"
        );
        assert!(error.contains("line 1"), "{error}");
        assert_eq!(
            parse_error(&json("4", ROOT_0, "[]")),
            r#"unsupported interchange_format_version "4": only "5" (EIP-3076 v5) is read"#
        );
        // Bad hex: a short key, a key without 0x, a non-hex digit in a root.
        let error = parse_error(&json("5", ROOT_0, &one_validator(&KEY[..96], &[], &[])));
        assert!(error.contains("expected 48 bytes"), "{error}");
        let error = parse_error(&json("5", ROOT_0, &one_validator(&KEY[2..], &[], &[])));
        assert!(error.contains("0x"), "{error}");
        let error = parse_error(&json("5", &ROOT_0.replace("00", "zz"), "[]"));
        assert!(error.contains("invalid"), "{error}");
        // Numbers are quoted decimal strings.
        let error = parse_error(&good.replace(r#""slot": "1""#, r#""slot": 1"#));
        assert!(error.contains("quotes are required"), "{error}");
        let error = parse_error(&good.replace(r#""slot": "1""#, r#""slot": "-1""#));
        assert!(error.starts_with("not an EIP-3076 interchange"), "{error}");
        let error = parse_error(r#"{"data": []}"#);
        assert!(error.contains("metadata"), "{error}");
        let error = parse_error(&good.replace("signed_blocks", "blocks"));
        assert!(error.contains("signed_blocks"), "{error}");
    }

    #[test]
    fn a_file_over_the_bound_is_refused_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.json");
        std::fs::write(&path, json("5", ROOT_0, "[]")).unwrap();
        Interchange::read_file_within(&path, 200).unwrap();
        let error = Interchange::read_file_within(&path, 20).unwrap_err();
        assert!(
            matches!(error, InterchangeError::TooLarge { max: 20, .. }),
            "{error:?}"
        );
        let error = Interchange::read_file(&dir.path().join("missing.json")).unwrap_err();
        assert!(error.to_string().contains("missing.json"), "{error}");
    }

    #[test]
    fn import_of_another_network_changes_nothing() {
        let (_dir, db) = database();
        db.ensure_genesis_validators_root(Root::repeat_byte(1), "the test")
            .unwrap();
        let file = json("5", ROOT_0, &one_validator(KEY, &["10"], &[("1", "2")]));
        let error = db
            .import_interchange(&Interchange::from_json_str(&file).unwrap())
            .unwrap_err();
        assert!(
            error.to_string().contains("the interchange file gives"),
            "{error}"
        );
        assert_eq!(db.registered_validators().unwrap(), vec![]);
    }

    #[test]
    fn import_refuses_numbers_beyond_the_database_whole() {
        let (_dir, db) = database();
        let mut data = one_validator(KEY, &["10"], &[]);
        data.pop();
        let other = one_validator(&KEY.replace("a99a", "b99b"), &["18446744073709551615"], &[]);
        data = format!("{data},{}", &other[1..]);
        let file = Interchange::from_json_str(&json("5", ROOT_0, &data)).unwrap();
        let error = db.import_interchange(&file).unwrap_err();
        assert!(
            matches!(
                error,
                SlashingError::OutOfRange {
                    value: u64::MAX,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(db.registered_validators().unwrap(), vec![]);
        assert_eq!(db.genesis_validators_root().unwrap(), None);
    }

    #[test]
    fn import_is_minimal_and_folds_own_history() {
        let (_dir, db) = database();
        let key: PublicKeyBytes = KEY.parse().unwrap();
        db.register_validators(&[key]).unwrap();
        let sign = |s, t| db.check_and_insert_attestation(&key, s, t, Root::repeat_byte(9));
        for (s, t) in [(1, 2), (2, 3), (3, 4), (4, 5)] {
            assert_eq!(sign(s, t).unwrap(), Safe::New);
        }
        db.check_and_insert_block_proposal(&key, 30, Root::repeat_byte(9))
            .unwrap();
        // Another client signed up to target 4 (source 2) and slot 20; a key
        // listed twice merges.
        let data = format!(
            "{},{}",
            one_validator(KEY, &["20", "3"], &[("2", "4")]).trim_end_matches(']'),
            one_validator(KEY, &[], &[("0", "1")]).trim_start_matches('[')
        );
        let file = Interchange::from_json_str(&json("5", ROOT_0, &data)).unwrap();
        let imported = db.import_interchange(&file).unwrap();
        assert_eq!(
            imported,
            vec![ValidatorImport {
                pubkey: key,
                blocks: 2,
                attestations: 2,
                // The source watermark rises to the folded own vote (3, 4).
                watermarks: Watermarks {
                    block_slot: Some(20),
                    source_epoch: Some(3),
                    target_epoch: Some(4),
                },
            }]
        );
        assert_eq!(db.genesis_validators_root().unwrap(), Some(Root::ZERO));
        assert!(matches!(
            sign(3, 4),
            Err(NotSafe::TargetAtOrBelowWatermark { .. })
        ));
        assert!(matches!(
            sign(2, 6),
            Err(NotSafe::SourceBelowWatermark { .. })
        ));
        assert_eq!(sign(4, 5).unwrap(), Safe::SignedBefore);
        assert!(matches!(sign(3, 6), Err(NotSafe::SurroundsExisting { .. })));
        assert_eq!(sign(5, 6).unwrap(), Safe::New);
        assert!(matches!(
            db.check_and_insert_block_proposal(&key, 20, Root::repeat_byte(9)),
            Err(NotSafe::BlockAtOrBelowWatermark { .. })
        ));
        assert_eq!(
            db.check_and_insert_block_proposal(&key, 25, Root::repeat_byte(9))
                .unwrap(),
            Safe::New
        );
        // A lower file changes nothing.
        let lower = json("5", ROOT_0, &one_validator(KEY, &["1"], &[("0", "1")]));
        let imported = db
            .import_interchange(&Interchange::from_json_str(&lower).unwrap())
            .unwrap();
        assert_eq!(imported[0].watermarks.target_epoch, Some(4));
    }

    #[test]
    fn an_export_imports_to_the_same_watermarks() {
        let (_dir, db) = database();
        let key: PublicKeyBytes = KEY.parse().unwrap();
        let file = json("5", ROOT_0, &one_validator(KEY, &["7"], &[("1", "3")]));
        db.import_interchange(&Interchange::from_json_str(&file).unwrap())
            .unwrap();
        db.check_and_insert_attestation(&key, 3, 8, Root::repeat_byte(2))
            .unwrap();
        db.check_and_insert_block_proposal(&key, 9, Root::repeat_byte(2))
            .unwrap();
        let exported = db.export_interchange().unwrap();
        let text = serde_json::to_string(&exported).unwrap();
        assert!(text.contains(r#"{"slot":"7"}"#), "{text}");
        assert_eq!(Interchange::from_json_str(&text).unwrap(), exported);

        let (_dir2, other) = database();
        let imported = other.import_interchange(&exported).unwrap();
        assert_eq!(
            imported[0].watermarks,
            Watermarks {
                block_slot: Some(9),
                source_epoch: Some(3),
                target_epoch: Some(8),
            }
        );
        // Minimal: exporting again gives only the watermarks.
        let again = other.export_interchange().unwrap();
        assert_eq!(
            again.data[0].signed_blocks,
            vec![InterchangeBlock {
                slot: 9,
                signing_root: None
            }]
        );
        assert_eq!(again.data[0].signed_attestations.len(), 1);
    }
}
