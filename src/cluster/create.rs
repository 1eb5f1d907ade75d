//! `cluster create` and `cluster recover-key` as library functions, so the
//! CLI, the tests and the devnet run the same code.
//!
//! `create_cluster` writes, under an empty or new output directory:
//!
//! ```text
//! cluster-lock.json
//! operator-<i>/cluster-lock.json             (a copy, so each directory is self-contained)
//! operator-<i>/node-key                      (0x-hex BLS secret of the node identity, 0600)
//! operator-<i>/validator_keys/keystore-<k>.json  (EIP-2335 keystore of share i of validator k, 0600)
//! operator-<i>/validator_keys/keystore-<k>.txt   (its password, 0600)
//! ```
//!
//! for operators `i = 1..=n` and validators `k = 0..K` in lock order. The
//! keystore/password naming is Charon's (`keystore-0.json` + `keystore-0.txt`),
//! which is also what `--split-existing-keys` reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::RngCore;
use zeroize::Zeroizing;

use super::lock::{
    ClusterLock, DistributedValidator, LockError, NodeIdentity, Operator, MAX_OPERATORS,
    MAX_VALIDATORS,
};
use crate::crypto::keystore::{write_private_file, Kdf, Keystore, KeystoreError};
use crate::crypto::threshold::{recover_secret, split_secret, ThresholdError};
use crate::crypto::{CryptoError, PublicKey, SecretKey};
use crate::spec::Version;

/// File name of the lock, in the output directory and in each operator's.
pub const LOCK_FILE_NAME: &str = "cluster-lock.json";
/// File name of an operator's node key.
pub const NODE_KEY_FILE_NAME: &str = "node-key";
/// Directory of an operator's share keystores.
pub const VALIDATOR_KEYS_DIR: &str = "validator_keys";
/// Password files hold a password and a newline, never kilobytes.
const MAX_PASSWORD_FILE_LEN: u64 = 4096;

/// Errors of creating a cluster and of recovering a validator key.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Refusing to overwrite earlier output.
    #[error("output directory {path} exists and is not empty; refusing to overwrite it")]
    OutDirNotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// Refusing to overwrite an existing keystore.
    #[error("{path} already exists; refusing to overwrite it")]
    OutFileExists {
        /// The file.
        path: PathBuf,
    },
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Operator count outside `2..=MAX_OPERATORS`.
    #[error("{operators} operators: a cluster has 2..={MAX_OPERATORS}")]
    OperatorCount {
        /// n.
        operators: u64,
    },
    /// Not `1 < t <= n`.
    #[error("threshold {threshold} is invalid for {operators} operators: need 1 < threshold <= operators")]
    InvalidThreshold {
        /// t.
        threshold: u64,
        /// n.
        operators: u64,
    },
    /// Validator count outside `1..=MAX_VALIDATORS`.
    #[error("{validators} validators: need 1..={MAX_VALIDATORS}")]
    ValidatorCount {
        /// The count.
        validators: u64,
    },
    /// `base_port + n - 1` does not fit in a port.
    #[error("peer base port {base} leaves no room for {operators} operators")]
    PeerPort {
        /// The base port.
        base: u16,
        /// n.
        operators: u64,
    },
    /// `--split-existing-keys` found no keystore.
    #[error("no keystore (*.json) in {dir}")]
    NoKeystores {
        /// The directory.
        dir: PathBuf,
    },
    /// A password file is unreadable, too long or not UTF-8.
    #[error("password file {path}: {reason}")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A keystore could not be read or decrypted.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// A decrypted secret is not a BLS secret key.
    #[error("keystore {keystore}: the decrypted secret is not a BLS secret key: {source}")]
    SecretKey {
        /// The keystore file.
        keystore: PathBuf,
        /// Why.
        source: CryptoError,
    },
    /// A keystore's `pubkey` field is not its secret's public key.
    #[error("keystore {keystore}: its pubkey field 0x{stored} is not the public key {derived} of its secret")]
    KeystorePubkeyMismatch {
        /// The keystore file.
        keystore: PathBuf,
        /// The pubkey field.
        stored: String,
        /// The secret's public key (0x-hex).
        derived: String,
    },
    /// The same validator key twice among the inputs.
    #[error("validator {validator} is given twice")]
    DuplicateValidator {
        /// The key (0x-hex).
        validator: String,
    },
    /// A node-key file that is not 0x-hex of a BLS secret key.
    #[error("node key {path}: {reason}")]
    NodeKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Splitting or recombining failed.
    #[error(transparent)]
    Threshold(Box<ThresholdError>),
    /// The lock built or read is invalid.
    #[error(transparent)]
    Lock(Box<LockError>),
    /// `recover-key` for a validator the lock does not hold.
    #[error("validator {validator} is not in the cluster lock")]
    UnknownValidator {
        /// The key asked for (0x-hex).
        validator: String,
    },
    /// A share whose public key is not the lock's public share at its index.
    #[error("validator {validator}: the key given as share {share_index} has public key {found}, but the lock's public share {share_index} is {expected}")]
    ShareMismatch {
        /// The validator (0x-hex).
        validator: String,
        /// The share index claimed.
        share_index: u64,
        /// The share's public key (0x-hex).
        found: String,
        /// The lock's public share at that index, if any.
        expected: String,
    },
    /// The recovered secret's public key is not the validator key.
    #[error("validator {validator}: shares {share_indices:?} recover a key with public key {recovered}, not the validator key")]
    RecoveredKeyMismatch {
        /// The validator (0x-hex).
        validator: String,
        /// The shares used.
        share_indices: Vec<u64>,
        /// What they gave (0x-hex).
        recovered: String,
    },
}

// Boxed: the crypto and lock errors carry curve points and would make every
// `Result` of this module hundreds of bytes.
impl From<ThresholdError> for CreateError {
    fn from(error: ThresholdError) -> Self {
        CreateError::Threshold(Box::new(error))
    }
}

impl From<LockError> for CreateError {
    fn from(error: LockError) -> Self {
        CreateError::Lock(Box::new(error))
    }
}

/// Where the validator keys of a new cluster come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValidatorKeys {
    /// Generate this many fresh validator keys.
    Generate(u64),
    /// Split the EIP-2335 keystores `DIR/*.json` (passwords in `DIR/*.txt`).
    SplitExisting(PathBuf),
}

/// Everything `cluster create` needs.
#[derive(Clone, Debug)]
pub struct CreateConfig {
    /// Cluster name written into the lock.
    pub name: String,
    /// n.
    pub operators: u64,
    /// t; `None` is [`default_threshold`].
    pub threshold: Option<u64>,
    /// Fresh or existing validator keys.
    pub validator_keys: ValidatorKeys,
    /// Output directory; must be absent or empty.
    pub out_dir: PathBuf,
    /// Host part of every operator's peer address.
    pub peer_host: String,
    /// Operator `i` listens on `peer_base_port + i - 1`.
    pub peer_base_port: u16,
    /// Network name written into the lock.
    pub network: String,
    /// The network's genesis fork version.
    pub fork_version: Version,
    /// Cost of the share keystores' kdf ([`Kdf::EIP2335_SCRYPT`] unless a
    /// test or devnet asks for [`Kdf::INSECURE_FAST`]).
    pub kdf: Kdf,
}

impl CreateConfig {
    /// The configuration of a cluster kept in memory ([`split_cluster`]):
    /// `operators` and `threshold` as given, placeholder name and network
    /// ("cluster", minimal), operator i's peer address 127.0.0.1:9100+i-1
    /// (callers that serve peers set their own).
    pub fn in_memory(operators: u64, threshold: Option<u64>) -> Self {
        CreateConfig {
            name: "cluster".into(),
            operators,
            threshold,
            validator_keys: ValidatorKeys::Generate(0),
            out_dir: PathBuf::new(),
            peer_host: "127.0.0.1".into(),
            peer_base_port: 9100,
            network: "minimal".into(),
            fork_version: [0, 0, 0, 1],
            kdf: Kdf::INSECURE_FAST,
        }
    }
}

/// What `create_cluster` wrote.
#[derive(Clone, Debug)]
pub struct CreatedCluster {
    /// The lock (validated).
    pub lock: ClusterLock,
    /// `out_dir/cluster-lock.json`.
    pub lock_path: PathBuf,
    /// `out_dir/operator-<i>` by operator index 1..=n.
    pub operator_dirs: Vec<PathBuf>,
}

/// A share keystore and its password file, as `recover-key` takes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareKeystoreFile {
    /// The share index the keystore holds.
    pub share_index: u64,
    /// The EIP-2335 keystore.
    pub keystore: PathBuf,
    /// The file holding its password.
    pub password_file: PathBuf,
}

/// ceil(2n/3): the BFT quorum, and Charon's default.
pub fn default_threshold(operators: u64) -> u64 {
    operators.saturating_mul(2).div_ceil(3)
}

/// A cluster made in memory, before anything is written: the lock, every
/// validator's key shares and every operator's node key.
pub struct SplitCluster {
    /// The lock (validated).
    pub lock: ClusterLock,
    /// `shares[k]` holds validator `k`'s key share of each share index 1..=n.
    pub shares: Vec<BTreeMap<u64, SecretKey>>,
    /// Operator `i`'s node key is `node_keys[i - 1]`.
    pub node_keys: Vec<SecretKey>,
}

/// Splits `secrets` into t-of-n shares and makes the lock as `config` says
/// (name, operators, threshold, network, fork version, peer addresses), with
/// fresh node keys; writes nothing, and reads neither `config`'s key source,
/// directory nor kdf. [`create_cluster`] is this plus the files.
pub fn split_cluster(
    config: &CreateConfig,
    secrets: &[SecretKey],
) -> Result<SplitCluster, CreateError> {
    let n = config.operators;
    let threshold = config.threshold.unwrap_or_else(|| default_threshold(n));
    check_shape(n, threshold)?;
    check_ports(config.peer_base_port, n)?;
    let shares = secrets
        .iter()
        .map(|secret| split_secret(secret, threshold, n).map_err(CreateError::from))
        .collect::<Result<Vec<_>, _>>()?;
    let node_keys: Vec<SecretKey> = (0..n).map(|_| SecretKey::random()).collect();
    let lock = build_lock(config, threshold, secrets, &shares, &node_keys)?;
    Ok(SplitCluster {
        lock,
        shares: shares
            .into_iter()
            .map(|s| s.into_iter().collect())
            .collect(),
        node_keys,
    })
}

/// Splits the validator keys into t-of-n shares and writes the lock, the
/// share keystores, their passwords and the node keys (see the module doc).
pub fn create_cluster(config: &CreateConfig) -> Result<CreatedCluster, CreateError> {
    let n = config.operators;
    check_shape(n, config.threshold.unwrap_or_else(|| default_threshold(n)))?;
    check_ports(config.peer_base_port, n)?;
    ensure_empty_dir(&config.out_dir)?;
    let secrets = match &config.validator_keys {
        ValidatorKeys::Generate(count) => generate_secrets(*count)?,
        ValidatorKeys::SplitExisting(dir) => read_existing_secrets(dir)?,
    };
    let split = split_cluster(config, &secrets)?;
    std::fs::create_dir_all(&config.out_dir).map_err(|source| CreateError::Io {
        path: config.out_dir.clone(),
        source,
    })?;
    let lock_path = config.out_dir.join(LOCK_FILE_NAME);
    split.lock.save(&lock_path)?;
    let mut operator_dirs = Vec::new();
    for (index, node_key) in (1..=n).zip(&split.node_keys) {
        let operator_shares: Vec<&SecretKey> = split
            .shares
            .iter()
            .filter_map(|shares| shares.get(&index))
            .collect();
        let dir = config.out_dir.join(format!("operator-{index}"));
        write_operator_dir(&dir, &split.lock, node_key, &operator_shares, config.kdf)?;
        operator_dirs.push(dir);
    }
    Ok(CreatedCluster {
        lock: split.lock,
        lock_path,
        operator_dirs,
    })
}

fn check_shape(n: u64, threshold: u64) -> Result<(), CreateError> {
    if !(2..=MAX_OPERATORS as u64).contains(&n) {
        return Err(CreateError::OperatorCount { operators: n });
    }
    if threshold < 2 || threshold > n {
        return Err(CreateError::InvalidThreshold {
            threshold,
            operators: n,
        });
    }
    Ok(())
}

fn check_ports(base: u16, n: u64) -> Result<(), CreateError> {
    if u64::from(base) + n - 1 > u64::from(u16::MAX) || base == 0 {
        return Err(CreateError::PeerPort { base, operators: n });
    }
    Ok(())
}

/// Refuses a non-empty `dir` before any expensive work (the caller creates
/// it only when it has something to write).
fn ensure_empty_dir(dir: &Path) -> Result<(), CreateError> {
    let mut entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CreateError::Io {
                path: dir.to_owned(),
                source,
            })
        }
    };
    if entries.next().is_some() {
        return Err(CreateError::OutDirNotEmpty {
            path: dir.to_owned(),
        });
    }
    Ok(())
}

fn generate_secrets(count: u64) -> Result<Vec<SecretKey>, CreateError> {
    if count == 0 || count > MAX_VALIDATORS as u64 {
        return Err(CreateError::ValidatorCount { validators: count });
    }
    Ok((0..count).map(|_| SecretKey::random()).collect())
}

/// Decrypts `dir/*.json` with the passwords in the same-named `.txt` files,
/// in natural order of the file names (keystore-2 before keystore-10).
fn read_existing_secrets(dir: &Path) -> Result<Vec<SecretKey>, CreateError> {
    let io = |source| CreateError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut keystores: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    if keystores.is_empty() {
        return Err(CreateError::NoKeystores {
            dir: dir.to_owned(),
        });
    }
    if keystores.len() > MAX_VALIDATORS {
        return Err(CreateError::ValidatorCount {
            validators: keystores.len() as u64,
        });
    }
    keystores.sort_by_key(|path| natural_key(path));
    let mut seen = std::collections::BTreeSet::new();
    let mut secrets = Vec::new();
    for path in keystores {
        let secret = decrypt_keystore_file(&path, &path.with_extension("txt"))?;
        let pubkey = secret.public_key();
        if !seen.insert(pubkey.to_bytes()) {
            return Err(CreateError::DuplicateValidator {
                validator: pubkey.to_string(),
            });
        }
        secrets.push(secret);
    }
    Ok(secrets)
}

/// Sorts `keystore-2` before `keystore-10`: by the number the stem ends in,
/// then by name.
fn natural_key(path: &Path) -> (u64, String) {
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    let digits: String = stem
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    (digits.parse().unwrap_or(u64::MAX), stem)
}

/// Loads a keystore, decrypts it with the password in `password_file` and
/// checks that the secret matches the keystore's `pubkey` field.
pub fn decrypt_keystore_file(
    keystore_path: &Path,
    password_file: &Path,
) -> Result<SecretKey, CreateError> {
    let keystore = Keystore::load(keystore_path)?;
    let password = read_password_file(password_file)?;
    let bytes = keystore.decrypt(&password)?;
    let secret =
        SecretKey::from_bytes(bytes.as_ref()).map_err(|source| CreateError::SecretKey {
            keystore: keystore_path.to_owned(),
            source,
        })?;
    let derived = secret.public_key();
    let stored = keystore.pubkey.trim_start_matches("0x").to_lowercase();
    if !stored.is_empty() && stored != hex::encode(derived.to_bytes()) {
        return Err(CreateError::KeystorePubkeyMismatch {
            keystore: keystore_path.to_owned(),
            stored,
            derived: derived.to_string(),
        });
    }
    Ok(secret)
}

/// Reads a password file: its content without the trailing line break.
pub fn read_password_file(path: &Path) -> Result<Zeroizing<String>, CreateError> {
    let bad = |reason: String| CreateError::PasswordFile {
        path: path.to_owned(),
        reason,
    };
    let len = std::fs::metadata(path)
        .map_err(|error| bad(error.to_string()))?
        .len();
    if len > MAX_PASSWORD_FILE_LEN {
        return Err(bad(format!(
            "{len} bytes, more than the {MAX_PASSWORD_FILE_LEN} a password file may hold"
        )));
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|error| bad(error.to_string()))?);
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("is not UTF-8".into()))?;
    Ok(Zeroizing::new(
        text.strip_suffix('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .unwrap_or(text)
            .to_owned(),
    ))
}

fn build_lock(
    config: &CreateConfig,
    threshold: u64,
    secrets: &[SecretKey],
    shares: &[Vec<(u64, SecretKey)>],
    node_keys: &[SecretKey],
) -> Result<ClusterLock, CreateError> {
    let operators = node_keys
        .iter()
        .zip(1u64..)
        .map(|(node_key, index)| Operator {
            index,
            name: format!("operator-{index}"),
            // check_ports keeps base + n - 1 within u16.
            peer_address: Some(format!(
                "{}:{}",
                config.peer_host,
                u64::from(config.peer_base_port) + index - 1
            )),
            identity: NodeIdentity::Bls(node_key.public_key()),
        })
        .collect();
    let validators = secrets
        .iter()
        .zip(shares)
        .map(|(secret, shares)| DistributedValidator {
            pubkey: secret.public_key(),
            public_shares: shares
                .iter()
                .map(|(index, share)| (*index, share.public_key()))
                .collect(),
        })
        .collect();
    Ok(ClusterLock::new(
        config.name.clone(),
        config.network.clone(),
        config.fork_version,
        threshold,
        operators,
        validators,
    )?)
}

/// Writes one operator's directory; `shares[k]` is its share of validator k.
fn write_operator_dir(
    dir: &Path,
    lock: &ClusterLock,
    node_key: &SecretKey,
    shares: &[&SecretKey],
    kdf: Kdf,
) -> Result<(), CreateError> {
    let keys_dir = dir.join(VALIDATOR_KEYS_DIR);
    create_private_dir(dir)?;
    create_private_dir(&keys_dir)?;
    lock.save(&dir.join(LOCK_FILE_NAME))?;
    write_secret(&dir.join(NODE_KEY_FILE_NAME), &secret_hex_line(node_key))?;
    for (k, share) in shares.iter().enumerate() {
        let path = keys_dir.join(format!("keystore-{k}.json"));
        write_keystore_with_password(share, &path, None, kdf)?;
    }
    Ok(())
}

/// Creates a directory only its owner can enter (it holds secrets).
fn create_private_dir(dir: &Path) -> Result<(), CreateError> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| CreateError::Io {
        path: dir.to_owned(),
        source,
    })
}

/// Encrypts `secret` into `keystore_path` under `password`, or under a fresh
/// random password written next to it as `<stem>.txt`; returns the password
/// file written, if any. Refuses to overwrite either file.
pub fn write_keystore_with_password(
    secret: &SecretKey,
    keystore_path: &Path,
    password: Option<&str>,
    kdf: Kdf,
) -> Result<Option<PathBuf>, CreateError> {
    let password_path = keystore_path.with_extension("txt");
    for path in [keystore_path, password_path.as_path()] {
        if path.exists() {
            return Err(CreateError::OutFileExists {
                path: path.to_owned(),
            });
        }
    }
    let (password, password_file) = match password {
        Some(password) => (Zeroizing::new(password.to_owned()), None),
        None => (random_password(), Some(password_path)),
    };
    let pubkey = secret.public_key();
    let keystore = Keystore::encrypt(
        &secret.to_bytes(),
        &password,
        &hex::encode(pubkey.to_bytes()),
        "",
        kdf,
    )?;
    if let Some(path) = &password_file {
        write_secret(path, password.as_bytes())?;
    }
    keystore.save(keystore_path)?;
    Ok(password_file)
}

/// 32 hex characters from the OS CSPRNG (128 bits).
fn random_password() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 16]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    Zeroizing::new(hex::encode(bytes.as_ref()))
}

fn secret_hex_line(secret: &SecretKey) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(format!("0x{}\n", hex::encode(secret.to_bytes().as_ref())).into_bytes())
}

fn write_secret(path: &Path, contents: &[u8]) -> Result<(), CreateError> {
    write_private_file(path, contents).map_err(|source| CreateError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Reads an operator's `node-key` file (0x-hex BLS secret key).
pub fn load_node_key(path: &Path) -> Result<SecretKey, CreateError> {
    let bad = |reason: String| CreateError::NodeKey {
        path: path.to_owned(),
        reason,
    };
    let text = read_password_file(path).map_err(|error| bad(error.to_string()))?;
    let digits = text
        .trim()
        .strip_prefix("0x")
        .ok_or_else(|| bad("does not start with 0x".into()))?;
    let mut bytes = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(digits, bytes.as_mut()).map_err(|_| bad("is not 64 hex digits".into()))?;
    SecretKey::from_bytes(bytes.as_ref()).map_err(|error| bad(error.to_string()))
}

/// Recovers a validator's secret key from at least t of its shares: each
/// share must match the lock's public share at its index, and the result must
/// match the validator key.
pub fn recover_validator_key(
    lock: &ClusterLock,
    validator: &PublicKey,
    shares: &[(u64, SecretKey)],
) -> Result<SecretKey, CreateError> {
    let entry = lock
        .validator(validator)
        .ok_or_else(|| CreateError::UnknownValidator {
            validator: validator.to_string(),
        })?;
    for (share_index, share) in shares {
        let found = share.public_key();
        let expected = entry.public_share(*share_index);
        if expected != Some(&found) {
            return Err(CreateError::ShareMismatch {
                validator: validator.to_string(),
                share_index: *share_index,
                found: found.to_string(),
                expected: expected.map_or("absent".into(), PublicKey::to_string),
            });
        }
    }
    let secret = recover_secret(shares, lock.threshold)?;
    let recovered = secret.public_key();
    if &recovered != validator {
        return Err(CreateError::RecoveredKeyMismatch {
            validator: validator.to_string(),
            share_indices: shares.iter().map(|(index, _)| *index).collect(),
            recovered: recovered.to_string(),
        });
    }
    Ok(secret)
}

/// `cluster recover-key`: decrypts the share keystores, recovers the
/// validator key and writes it as an EIP-2335 keystore to `out`, under
/// `password` or a fresh random one written to `out` with extension `.txt`.
/// Returns the password file written, if any.
pub fn recover_validator_keystore(
    lock: &ClusterLock,
    validator: &PublicKey,
    shares: &[ShareKeystoreFile],
    out: &Path,
    password: Option<&str>,
    kdf: Kdf,
) -> Result<Option<PathBuf>, CreateError> {
    let mut seen = std::collections::BTreeSet::new();
    if let Some(share) = shares.iter().find(|share| !seen.insert(share.share_index)) {
        return Err(ThresholdError::DuplicateIndex {
            index: share.share_index,
        }
        .into());
    }
    let shares = shares
        .iter()
        .map(|share| {
            decrypt_keystore_file(&share.keystore, &share.password_file)
                .map(|secret| (share.share_index, secret))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let secret = recover_validator_key(lock, validator, &shares)?;
    write_keystore_with_password(&secret, out, password, kdf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_threshold_is_ceil_two_thirds() {
        // (n, ceil(2n/3)) worked out by hand.
        for (n, t) in [(2, 2), (3, 2), (4, 3), (5, 4), (6, 4), (7, 5), (10, 7)] {
            assert_eq!(default_threshold(n), t, "n = {n}");
        }
    }

    #[test]
    fn keystores_sort_by_their_number() {
        let mut names = [
            "keystore-10.json",
            "keystore-2.json",
            "keystore-1.json",
            "x.json",
        ]
        .map(PathBuf::from);
        names.sort_by_key(|path| natural_key(path));
        assert_eq!(
            names.map(|path| path.display().to_string()),
            [
                "keystore-1.json",
                "keystore-2.json",
                "keystore-10.json",
                "x.json"
            ]
        );
    }
}
