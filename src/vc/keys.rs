//! The validator client's keys: EIP-2335 keystores `DIR/*.json` decrypted
//! with their passwords, and, for a distributed validator, which validator of
//! the cluster lock each key is a share of.
//!
//! A password is read from `SECRETS/0x<pubkey>` when a secrets directory is
//! given (Lighthouse's layout), else from the `.txt` file of the same name
//! beside the keystore (what `cluster create` writes:
//! `validator_keys/keystore-N.json` + `keystore-N.txt`). Errors name the
//! keystore and the password file, never the password; decrypted keys live in
//! [`SecretKey`], which zeroizes itself.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::cluster::create::decrypt_keystore_file;
use crate::cluster::{ClusterLock, CreateError};
use crate::crypto::keystore::{Keystore, KeystoreError};
use crate::crypto::{PublicKey, SecretKey, Signature};
use crate::spec::Root;

/// Most keystores one validator client loads (the most validators a cluster
/// lock may hold).
pub const MAX_KEYSTORES: usize = crate::cluster::lock::MAX_VALIDATORS;

/// Why the keys cannot be loaded or do not fit the cluster lock.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The keystore directory cannot be listed.
    #[error("keystore directory {dir}: {source}")]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No `*.json` in the keystore directory.
    #[error("no keystore (*.json) in {dir}")]
    NoKeystores {
        /// The directory.
        dir: PathBuf,
    },
    /// More keystores than [`MAX_KEYSTORES`].
    #[error("{count} keystores in {dir}; at most {max} are loaded")]
    TooMany {
        /// The directory.
        dir: PathBuf,
        /// How many there are.
        count: usize,
        /// [`MAX_KEYSTORES`].
        max: usize,
    },
    /// A keystore without a `pubkey` field cannot name its password file in a
    /// secrets directory.
    #[error("keystore {keystore} has no pubkey field, so its password file in {secrets} cannot be named")]
    NoPubkey {
        /// The keystore file.
        keystore: PathBuf,
        /// The secrets directory.
        secrets: PathBuf,
    },
    /// A keystore could not be read.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// A keystore could not be decrypted (wrong or unreadable password file,
    /// a secret that is not its pubkey's).
    #[error(transparent)]
    Decrypt(Box<CreateError>),
    /// The same key twice.
    #[error("{second} holds the same key as {first}")]
    DuplicateKey {
        /// The key seen first.
        first: String,
        /// The key seen again.
        second: String,
    },
    /// Two keys that are shares of one validator (an operator holds one).
    #[error("{first} and {second} are both shares of validator {validator}; an operator holds one share of each validator")]
    TwoShares {
        /// The key seen first.
        first: String,
        /// The key seen again.
        second: String,
        /// The validator's group key.
        validator: String,
    },
    /// A key that is no public share of any validator in the cluster lock.
    #[error("{key} is not a public key share of any validator in the cluster lock {lock:?}")]
    NotInLock {
        /// The key (its keystore and public key).
        key: String,
        /// The lock's name.
        lock: String,
    },
}

impl From<CreateError> for KeysError {
    fn from(error: CreateError) -> Self {
        KeysError::Decrypt(Box::new(error))
    }
}

/// One key of the validator client: a validator's whole key or, in a
/// distributed validator, one key share.
pub struct ValidatorKey {
    secret: SecretKey,
    pubkey: PublicKey,
    keystore: Option<PathBuf>,
}

impl ValidatorKey {
    /// A key held in memory; `keystore` is the file it came from, if any,
    /// for messages.
    pub fn new(secret: SecretKey, keystore: Option<PathBuf>) -> Self {
        let pubkey = secret.public_key();
        ValidatorKey {
            secret,
            pubkey,
            keystore,
        }
    }

    /// The key's public key (a public share in a distributed validator).
    pub fn pubkey(&self) -> PublicKey {
        self.pubkey
    }

    /// The keystore the key was loaded from.
    pub fn keystore(&self) -> Option<&Path> {
        self.keystore.as_deref()
    }

    /// Signs a signing root (a partial signature when the key is a share).
    pub fn sign(&self, signing_root: Root) -> Signature {
        self.secret.sign(signing_root.as_slice())
    }

    /// Names the key for messages: its keystore file and public key.
    pub fn describe(&self) -> String {
        match &self.keystore {
            Some(path) => format!("keystore {} (key {})", path.display(), self.pubkey),
            None => format!("key {}", self.pubkey),
        }
    }
}

impl fmt::Debug for ValidatorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatorKey")
            .field("pubkey", &self.pubkey)
            .field("keystore", &self.keystore)
            .finish_non_exhaustive()
    }
}

/// The keystore file in each key's directory of the
/// `keystores/0x<pubkey>/voting-keystore.json` layout.
pub const VOTING_KEYSTORE_FILE: &str = "voting-keystore.json";

/// Decrypts every keystore `dir/*.json` and `dir/*/voting-keystore.json`
/// (sorted by path) with its password: `secrets/0x<pubkey>` when `secrets`
/// is given, else the `.txt` beside it. Refuses an empty directory and a key
/// given twice.
pub fn load_keystores(dir: &Path, secrets: Option<&Path>) -> Result<Vec<ValidatorKey>, KeysError> {
    let read_dir = |source| KeysError::ReadDir {
        dir: dir.to_owned(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_dir)? {
        let path = entry.map_err(read_dir)?.path();
        // Lighthouse's and Teku's layout: one directory per key.
        let path = if path.is_dir() {
            path.join(VOTING_KEYSTORE_FILE)
        } else {
            path
        };
        if path.extension().is_some_and(|ext| ext == "json") && path.is_file() {
            paths.push(path);
            if paths.len() > MAX_KEYSTORES {
                return Err(KeysError::TooMany {
                    dir: dir.to_owned(),
                    count: paths.len(),
                    max: MAX_KEYSTORES,
                });
            }
        }
    }
    if paths.is_empty() {
        return Err(KeysError::NoKeystores {
            dir: dir.to_owned(),
        });
    }
    paths.sort();
    let keys = paths
        .into_iter()
        .map(|path| {
            let password_file = password_file(&path, secrets)?;
            let secret = decrypt_keystore_file(&path, &password_file)?;
            Ok(ValidatorKey::new(secret, Some(path)))
        })
        .collect::<Result<Vec<_>, KeysError>>()?;
    check_unique(&keys)?;
    Ok(keys)
}

/// Where the password of `keystore` is.
fn password_file(keystore: &Path, secrets: Option<&Path>) -> Result<PathBuf, KeysError> {
    let Some(secrets) = secrets else {
        return Ok(keystore.with_extension("txt"));
    };
    let pubkey = Keystore::load(keystore)?
        .pubkey
        .trim_start_matches("0x")
        .to_lowercase();
    if pubkey.is_empty() {
        return Err(KeysError::NoPubkey {
            keystore: keystore.to_owned(),
            secrets: secrets.to_owned(),
        });
    }
    Ok(secrets.join(format!("0x{pubkey}")))
}

/// Refuses a key given twice, naming both.
pub fn check_unique(keys: &[ValidatorKey]) -> Result<(), KeysError> {
    let mut seen: HashMap<PublicKey, &ValidatorKey> = HashMap::with_capacity(keys.len());
    for key in keys {
        if let Some(first) = seen.insert(key.pubkey, key) {
            return Err(KeysError::DuplicateKey {
                first: first.describe(),
                second: key.describe(),
            });
        }
    }
    Ok(())
}

/// The group (validator) public key of every key, in order: each key must be
/// a public share of a validator in `lock`, and no two of one validator; the
/// first key that breaks this is named.
pub fn group_keys(keys: &[ValidatorKey], lock: &ClusterLock) -> Result<Vec<PublicKey>, KeysError> {
    let group_of_share: HashMap<PublicKey, PublicKey> = lock
        .validators
        .iter()
        .flat_map(|validator| {
            validator
                .public_shares
                .values()
                .map(|share| (*share, validator.pubkey))
        })
        .collect();
    let mut share_of_group: HashMap<PublicKey, &ValidatorKey> = HashMap::with_capacity(keys.len());
    keys.iter()
        .map(|key| {
            let group =
                group_of_share
                    .get(&key.pubkey)
                    .copied()
                    .ok_or_else(|| KeysError::NotInLock {
                        key: key.describe(),
                        lock: lock.name.clone(),
                    })?;
            if let Some(first) = share_of_group.insert(group, key) {
                return Err(KeysError::TwoShares {
                    first: first.describe(),
                    second: key.describe(),
                    validator: group.to_string(),
                });
            }
            Ok(group)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::create::write_keystore_with_password;
    use crate::crypto::interop::interop_secret_key;
    use crate::crypto::keystore::Kdf;

    #[test]
    fn passwords_come_from_the_txt_beside_or_the_secrets_directory() {
        let dir = tempfile::tempdir().unwrap();
        let beside = dir.path().join("beside");
        std::fs::create_dir(&beside).unwrap();
        for index in 0..2u64 {
            let path = beside.join(format!("keystore-{index}.json"));
            write_keystore_with_password(
                &interop_secret_key(index),
                &path,
                None,
                Kdf::INSECURE_FAST,
            )
            .unwrap();
        }
        let keys = load_keystores(&beside, None).unwrap();
        let pubkeys: Vec<PublicKey> = keys.iter().map(ValidatorKey::pubkey).collect();
        assert_eq!(
            pubkeys,
            vec![
                interop_secret_key(0).public_key(),
                interop_secret_key(1).public_key()
            ]
        );

        // Lighthouse's layout: the password in SECRETS/0x<pubkey>, nothing beside.
        let (keystores, secrets) = (dir.path().join("keys"), dir.path().join("secrets"));
        std::fs::create_dir(&keystores).unwrap();
        std::fs::create_dir(&secrets).unwrap();
        let key = interop_secret_key(7);
        let path = keystores.join("voting-keystore.json");
        write_keystore_with_password(&key, &path, Some("correct horse"), Kdf::INSECURE_FAST)
            .unwrap();
        std::fs::write(
            secrets.join(key.public_key().to_string()),
            "correct horse\n",
        )
        .unwrap();
        let keys = load_keystores(&keystores, Some(&secrets)).unwrap();
        assert_eq!(keys[0].pubkey(), key.public_key());
        assert_eq!(keys[0].keystore(), Some(path.as_path()));

        // A wrong password names the keystore and not the password.
        std::fs::write(
            secrets.join(key.public_key().to_string()),
            "battery staple\n",
        )
        .unwrap();
        let error = load_keystores(&keystores, Some(&secrets))
            .unwrap_err()
            .to_string();
        assert!(error.contains("voting-keystore.json"), "{error}");
        assert!(!error.contains("battery"), "{error}");
    }

    #[test]
    fn one_directory_per_key_is_read_with_its_secret() {
        let dir = tempfile::tempdir().unwrap();
        let (keystores, secrets) = (dir.path().join("keystores"), dir.path().join("secrets"));
        std::fs::create_dir(&secrets).unwrap();
        let mut expected = Vec::new();
        for index in [3, 4] {
            let key = interop_secret_key(index);
            let name = key.public_key().to_string();
            let key_dir = keystores.join(&name);
            std::fs::create_dir_all(&key_dir).unwrap();
            let password = format!("password {index}");
            write_keystore_with_password(
                &key,
                &key_dir.join(VOTING_KEYSTORE_FILE),
                Some(&password),
                Kdf::INSECURE_FAST,
            )
            .unwrap();
            std::fs::write(secrets.join(&name), &password).unwrap();
            expected.push(key.public_key());
        }
        // A directory without a keystore is not a key.
        std::fs::create_dir(keystores.join("notes")).unwrap();
        let mut pubkeys: Vec<PublicKey> = load_keystores(&keystores, Some(&secrets))
            .unwrap()
            .iter()
            .map(ValidatorKey::pubkey)
            .collect();
        pubkeys.sort_by_key(|key| key.to_string());
        expected.sort_by_key(|key| key.to_string());
        assert_eq!(pubkeys, expected);
    }

    #[test]
    fn an_empty_directory_and_a_repeated_key_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_keystores(dir.path(), None),
            Err(KeysError::NoKeystores { .. })
        ));
        for name in ["a", "b"] {
            let path = dir.path().join(format!("{name}.json"));
            write_keystore_with_password(&interop_secret_key(3), &path, None, Kdf::INSECURE_FAST)
                .unwrap();
        }
        let error = load_keystores(dir.path(), None).unwrap_err().to_string();
        assert!(
            error.contains("a.json") && error.contains("b.json"),
            "{error}"
        );
    }

    #[test]
    fn group_keys_name_a_stranger_and_a_second_share_of_one_validator() {
        use crate::cluster::{split_cluster, CreateConfig};

        let group = interop_secret_key(1);
        let split = split_cluster(
            &CreateConfig::in_memory(3, Some(2)),
            std::slice::from_ref(&group),
        )
        .unwrap();
        let lock = split.lock;
        let shares: Vec<(u64, SecretKey)> = split.shares[0].clone().into_iter().collect();
        let key = |secret: &SecretKey, file: &str| {
            ValidatorKey::new(secret.clone(), Some(PathBuf::from(file)))
        };
        let found = group_keys(&[key(&shares[0].1, "a.json")], &lock).unwrap();
        assert_eq!(found, vec![group.public_key()]);
        let stranger = group_keys(&[key(&interop_secret_key(2), "b.json")], &lock).unwrap_err();
        assert!(
            matches!(stranger, KeysError::NotInLock { .. }),
            "{stranger}"
        );
        assert!(stranger.to_string().contains("b.json"), "{stranger}");
        let two = [key(&shares[0].1, "a.json"), key(&shares[1].1, "c.json")];
        let error = group_keys(&two, &lock).unwrap_err().to_string();
        assert!(
            error.contains("a.json") && error.contains("c.json"),
            "{error}"
        );
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let secret = interop_secret_key(1);
        let secret_hex = hex::encode(secret.to_bytes().as_ref());
        let debug = format!("{:?}", ValidatorKey::new(secret, None));
        assert!(!debug.contains(&secret_hex), "{debug}");
    }
}
