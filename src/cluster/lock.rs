//! The cluster lock: who the operators of a distributed-validator cluster are
//! and which validators they run, with every validator's group public key and
//! its public key shares.
//!
//! # File format (`cluster-lock.json`, ours)
//!
//! ```json
//! {
//!   "format": "dv-aggregator-cluster-lock/v1",
//!   "name": "devnet",
//!   "network": "mainnet",
//!   "fork_version": "0x00000000",
//!   "threshold": 3,
//!   "operators": [
//!     { "index": 1, "name": "operator-1", "peer_address": "127.0.0.1:9100",
//!       "node_pubkey": "0x<48-byte BLS public key>" }
//!   ],
//!   "validators": [
//!     { "pubkey": "0x<group public key>",
//!       "public_shares": [ { "share_index": 1, "pubkey": "0x<public share>" } ] }
//!   ]
//! }
//! ```
//!
//! Operator `i` holds share index `i` of every validator, so share indices and
//! operator indices are both exactly `1..=n`. An operator is identified either
//! by a BLS node public key (`node_pubkey`, our peer protocol signs requests
//! with it) or, for locks imported from Charon, by its ENR (`enr`, a secp256k1
//! identity our peer protocol cannot authenticate). `peer_address` is
//! `host:port` and may be absent (Charon locks carry none).
//!
//! # Validation on load
//!
//! `1 < t <= n`; operator indices unique and exactly `1..=n`; every validator
//! has exactly one public share per operator; no key is the point at infinity
//! or outside the subgroup; group keys unique; and every validator's shares lie
//! on one polynomial of degree `t - 1` whose value at 0 is the group key. The
//! last check interpolates the first `t` shares to the group key, then, for
//! every later share `j`, the first `t - 1` shares together with `j`: together
//! these imply that *any* `t` shares interpolate to the group key, and a
//! failing window names share `j` as the culprit. That costs `n - t + 1`
//! multi-scalar multiplications of `t` G1 points per validator.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::crypto::threshold::{recover_public_key, ThresholdError};
use crate::crypto::{CryptoError, PublicKey};
use crate::spec::Version;

/// The `format` tag of our lock files.
pub const LOCK_FORMAT: &str = "dv-aggregator-cluster-lock/v1";
/// Most operators a cluster may have (bounds every per-validator loop).
pub const MAX_OPERATORS: usize = 64;
/// Most validators one lock may hold.
pub const MAX_VALIDATORS: usize = 100_000;
/// A lock larger than this is refused unread (100k validators of 64 shares
/// would not fit, but then nothing that large is a real cluster).
pub const MAX_LOCK_FILE_LEN: u64 = 256 * 1024 * 1024;

/// Why a cluster lock is unusable; each names the culprit.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The file could not be read or written.
    #[error("cluster lock {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than any lock we accept.
    #[error("cluster lock {path} is {len} bytes, more than the {max} accepted")]
    FileTooLarge {
        /// The file.
        path: String,
        /// Its size.
        len: u64,
        /// The bound.
        max: u64,
    },
    /// Not JSON of the lock's shape.
    #[error("cluster lock is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    /// A `format` other than [`LOCK_FORMAT`].
    #[error("cluster lock format {found:?} is not supported (expected {LOCK_FORMAT:?})")]
    Format {
        /// The format found.
        found: String,
    },
    /// `fork_version` is not 4 bytes of 0x-hex.
    #[error("fork_version {value:?} is not 0x-hex of 4 bytes")]
    ForkVersion {
        /// The value found.
        value: String,
    },
    /// The operator count is 0 or above [`MAX_OPERATORS`].
    #[error("{operators} operators: a cluster has 2..={MAX_OPERATORS}")]
    OperatorCount {
        /// The count found.
        operators: usize,
    },
    /// Not `1 < t <= n`.
    #[error("threshold {threshold} is invalid for {operators} operators: need 1 < threshold <= operators")]
    Threshold {
        /// t.
        threshold: u64,
        /// n.
        operators: usize,
    },
    /// An operator index outside `1..=n`.
    #[error("operator index {index} is outside 1..={operators}")]
    OperatorIndex {
        /// The index.
        index: u64,
        /// n.
        operators: usize,
    },
    /// Two operators with one index.
    #[error("operator index {index} appears more than once")]
    DuplicateOperator {
        /// The index.
        index: u64,
    },
    /// `peer_address` is not `host:port`.
    #[error(
        "operator {index}: peer address {address:?} is not host:port with a port in 1..=65535"
    )]
    PeerAddress {
        /// The operator.
        index: u64,
        /// The address found.
        address: String,
    },
    /// Neither or both of `node_pubkey` and `enr`, or an invalid key.
    #[error("operator {index}: node identity {problem}")]
    NodeIdentity {
        /// The operator.
        index: u64,
        /// What is wrong.
        problem: String,
    },
    /// No validator at all.
    #[error("the cluster lock has no validators")]
    NoValidators,
    /// More than [`MAX_VALIDATORS`].
    #[error("{validators} validators: a lock holds at most {MAX_VALIDATORS}")]
    TooManyValidators {
        /// The count found.
        validators: usize,
    },
    /// A group public key that does not decode (infinity, off-curve, ...).
    #[error("validator {validator}: group public key: {source}")]
    GroupKey {
        /// The key as written in the lock.
        validator: String,
        /// Why it is invalid.
        source: CryptoError,
    },
    /// Two validators with one group key.
    #[error("validator {validator} appears more than once")]
    DuplicateValidator {
        /// The group key (0x-hex).
        validator: String,
    },
    /// A public share that does not decode.
    #[error("validator {validator}: public share {share_index}: {source}")]
    ShareKey {
        /// The group key (0x-hex).
        validator: String,
        /// The share index.
        share_index: u64,
        /// Why it is invalid.
        source: CryptoError,
    },
    /// A share index outside `1..=n`.
    #[error("validator {validator}: share index {share_index} is outside 1..={operators}")]
    ShareIndex {
        /// The group key (0x-hex).
        validator: String,
        /// The share index.
        share_index: u64,
        /// n.
        operators: usize,
    },
    /// Two shares with one index.
    #[error("validator {validator}: share index {share_index} appears more than once")]
    DuplicateShare {
        /// The group key (0x-hex).
        validator: String,
        /// The share index.
        share_index: u64,
    },
    /// An operator without a share of this validator.
    #[error("validator {validator}: no public share for share index {share_index}")]
    MissingShare {
        /// The group key (0x-hex).
        validator: String,
        /// The missing share index.
        share_index: u64,
    },
    /// The first t shares do not interpolate to the group key.
    #[error("validator {validator}: public shares {share_indices:?} do not interpolate to the group public key")]
    NotInterpolating {
        /// The group key (0x-hex).
        validator: String,
        /// The shares interpolated.
        share_indices: Vec<u64>,
    },
    /// A later share is off the polynomial the first t shares define.
    #[error("validator {validator}: public share {share_index} does not interpolate to the group public key with shares {others:?}")]
    ShareOffPolynomial {
        /// The group key (0x-hex).
        validator: String,
        /// The culprit.
        share_index: u64,
        /// The t - 1 shares it was combined with.
        others: Vec<u64>,
    },
    /// Interpolation itself failed (e.g. a sum at infinity).
    #[error("validator {validator}: {source}")]
    Interpolation {
        /// The group key (0x-hex).
        validator: String,
        /// The threshold error.
        source: Box<ThresholdError>,
    },
}

/// How peers recognise an operator's node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeIdentity {
    /// A BLS public key; our peer protocol signs requests with its secret.
    Bls(PublicKey),
    /// A Charon ENR (secp256k1), kept verbatim; our peer protocol cannot
    /// authenticate such a node.
    Enr(String),
}

/// One operator of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// 1..=n; also the share index this operator holds of every validator.
    pub index: u64,
    /// Human-readable name.
    pub name: String,
    /// `host:port` of the operator's peer endpoint, if known.
    pub peer_address: Option<String>,
    /// The node's identity key.
    pub identity: NodeIdentity,
}

/// One distributed validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistributedValidator {
    /// The group (validator) public key, the one on the beacon chain.
    pub pubkey: PublicKey,
    /// Public key share by share index `1..=n`.
    pub public_shares: BTreeMap<u64, PublicKey>,
}

impl DistributedValidator {
    /// The public share held by `share_index`.
    pub fn public_share(&self, share_index: u64) -> Option<&PublicKey> {
        self.public_shares.get(&share_index)
    }
}

/// A validated cluster lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterLock {
    /// Cluster name.
    pub name: String,
    /// Network name ("mainnet", "minimal", ...).
    pub network: String,
    /// Genesis fork version of the network.
    pub fork_version: Version,
    /// Signatures needed: t.
    pub threshold: u64,
    /// The n operators, sorted by index.
    pub operators: Vec<Operator>,
    /// The validators, in lock order.
    pub validators: Vec<DistributedValidator>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockFile {
    format: String,
    #[serde(default)]
    name: String,
    network: String,
    fork_version: String,
    threshold: u64,
    operators: Vec<OperatorFile>,
    validators: Vec<ValidatorFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorFile {
    index: u64,
    #[serde(default)]
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peer_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node_pubkey: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enr: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidatorFile {
    pubkey: String,
    public_shares: Vec<ShareFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareFile {
    share_index: u64,
    pubkey: String,
}

impl ClusterLock {
    /// Reads and validates a lock file.
    pub fn load(path: &Path) -> Result<ClusterLock, LockError> {
        Self::from_json(&read_lock_file(path)?)
    }

    /// Parses and validates a lock.
    pub fn from_json(json: &str) -> Result<ClusterLock, LockError> {
        let file: LockFile = serde_json::from_str(json)?;
        if file.format != LOCK_FORMAT {
            return Err(LockError::Format { found: file.format });
        }
        let fork_version = parse_fork_version(&file.fork_version)?;
        let operators = file
            .operators
            .into_iter()
            .map(OperatorFile::into_operator)
            .collect::<Result<Vec<_>, _>>()?;
        let validators = file
            .validators
            .into_iter()
            .map(ValidatorFile::into_validator)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(
            file.name,
            file.network,
            fork_version,
            file.threshold,
            operators,
            validators,
        )
    }

    /// Builds a lock from parts and validates it (see the module doc).
    pub fn new(
        name: String,
        network: String,
        fork_version: Version,
        threshold: u64,
        mut operators: Vec<Operator>,
        validators: Vec<DistributedValidator>,
    ) -> Result<ClusterLock, LockError> {
        operators.sort_by_key(|operator| operator.index);
        let lock = ClusterLock {
            name,
            network,
            fork_version,
            threshold,
            operators,
            validators,
        };
        lock.validate()?;
        Ok(lock)
    }

    /// The lock as pretty JSON in our format.
    pub fn to_json(&self) -> String {
        let file = LockFile {
            format: LOCK_FORMAT.into(),
            name: self.name.clone(),
            network: self.network.clone(),
            fork_version: format!("0x{}", hex::encode(self.fork_version)),
            threshold: self.threshold,
            operators: self.operators.iter().map(OperatorFile::from).collect(),
            validators: self.validators.iter().map(ValidatorFile::from).collect(),
        };
        // Strings, integers and vectors always serialize.
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }

    /// Writes the lock to `path` (it holds no secret).
    pub fn save(&self, path: &Path) -> Result<(), LockError> {
        std::fs::write(path, self.to_json()).map_err(|source| LockError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// The validator whose group key is `pubkey`.
    pub fn validator(&self, pubkey: &PublicKey) -> Option<&DistributedValidator> {
        self.validators.iter().find(|v| &v.pubkey == pubkey)
    }

    /// The operator with index `index`.
    pub fn operator(&self, index: u64) -> Option<&Operator> {
        self.operators.iter().find(|o| o.index == index)
    }

    /// The operator whose node identity is the BLS key `node_pubkey`.
    pub fn operator_by_node_key(&self, node_pubkey: &PublicKey) -> Option<&Operator> {
        self.operators
            .iter()
            .find(|o| matches!(&o.identity, NodeIdentity::Bls(key) if key == node_pubkey))
    }

    fn validate(&self) -> Result<(), LockError> {
        let n = self.operators.len();
        if !(2..=MAX_OPERATORS).contains(&n) {
            return Err(LockError::OperatorCount { operators: n });
        }
        // n <= 64, so the cast is exact.
        if self.threshold < 2 || self.threshold > n as u64 {
            return Err(LockError::Threshold {
                threshold: self.threshold,
                operators: n,
            });
        }
        self.validate_operators()?;
        if self.validators.is_empty() {
            return Err(LockError::NoValidators);
        }
        if self.validators.len() > MAX_VALIDATORS {
            return Err(LockError::TooManyValidators {
                validators: self.validators.len(),
            });
        }
        let mut seen = BTreeSet::new();
        for validator in &self.validators {
            if !seen.insert(validator.pubkey.to_bytes()) {
                return Err(LockError::DuplicateValidator {
                    validator: validator.pubkey.to_string(),
                });
            }
            validate_share_indices(validator, n)?;
            validate_interpolation(validator, self.threshold)?;
        }
        Ok(())
    }

    fn validate_operators(&self) -> Result<(), LockError> {
        let n = self.operators.len();
        let mut seen = BTreeSet::new();
        for operator in &self.operators {
            if operator.index == 0 || operator.index > n as u64 {
                return Err(LockError::OperatorIndex {
                    index: operator.index,
                    operators: n,
                });
            }
            if !seen.insert(operator.index) {
                return Err(LockError::DuplicateOperator {
                    index: operator.index,
                });
            }
            if let Some(address) = &operator.peer_address {
                if !is_host_port(address) {
                    return Err(LockError::PeerAddress {
                        index: operator.index,
                        address: address.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Share indices are exactly `1..=n`. Duplicates cannot survive in the
/// in-memory map, so the file parser reports those (see `into_validator`).
fn validate_share_indices(validator: &DistributedValidator, n: usize) -> Result<(), LockError> {
    if let Some(&share_index) = validator
        .public_shares
        .keys()
        .find(|&&index| index == 0 || index > n as u64)
    {
        return Err(LockError::ShareIndex {
            validator: validator.pubkey.to_string(),
            share_index,
            operators: n,
        });
    }
    if let Some(share_index) = (1..=n as u64).find(|i| !validator.public_shares.contains_key(i)) {
        return Err(LockError::MissingShare {
            validator: validator.pubkey.to_string(),
            share_index,
        });
    }
    Ok(())
}

/// See the module doc: the first t shares, then each later share with the
/// first t - 1.
fn validate_interpolation(
    validator: &DistributedValidator,
    threshold: u64,
) -> Result<(), LockError> {
    let shares: Vec<(u64, PublicKey)> = validator
        .public_shares
        .iter()
        .map(|(index, key)| (*index, *key))
        .collect();
    let t = usize::try_from(threshold)
        .unwrap_or(usize::MAX)
        .min(shares.len());
    let interpolates = |window: &[(u64, PublicKey)]| {
        recover_public_key(window, threshold)
            .map(|key| key == validator.pubkey)
            .map_err(|source| LockError::Interpolation {
                validator: validator.pubkey.to_string(),
                source: Box::new(source),
            })
    };
    let (first, later) = shares.split_at(t);
    if !interpolates(first)? {
        return Err(LockError::NotInterpolating {
            validator: validator.pubkey.to_string(),
            share_indices: first.iter().map(|(index, _)| *index).collect(),
        });
    }
    let base = &first[..t.saturating_sub(1)];
    for share in later {
        let mut window = base.to_vec();
        window.push(*share);
        if !interpolates(&window)? {
            return Err(LockError::ShareOffPolynomial {
                validator: validator.pubkey.to_string(),
                share_index: share.0,
                others: base.iter().map(|(index, _)| *index).collect(),
            });
        }
    }
    Ok(())
}

fn is_host_port(address: &str) -> bool {
    match address.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port != 0),
        None => false,
    }
}

/// Reads a lock-sized file, refusing larger files unread.
pub(crate) fn read_lock_file(path: &Path) -> Result<String, LockError> {
    let io = |source| LockError::Io {
        path: path.display().to_string(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_LOCK_FILE_LEN {
        return Err(LockError::FileTooLarge {
            path: path.display().to_string(),
            len,
            max: MAX_LOCK_FILE_LEN,
        });
    }
    std::fs::read_to_string(path).map_err(io)
}

/// Parses `0x` + 8 hex digits.
pub(crate) fn parse_fork_version(text: &str) -> Result<Version, LockError> {
    let bad = || LockError::ForkVersion {
        value: text.to_owned(),
    };
    let digits = text.strip_prefix("0x").ok_or_else(bad)?;
    let mut version = [0u8; 4];
    hex::decode_to_slice(digits, &mut version).map_err(|_| bad())?;
    Ok(version)
}

/// Parses a validator's group public key, naming it on failure.
pub(crate) fn parse_group_key(text: &str) -> Result<PublicKey, LockError> {
    text.parse().map_err(|source| LockError::GroupKey {
        validator: text.to_owned(),
        source,
    })
}

/// Parses a public share, naming its validator and share index on failure.
pub(crate) fn parse_public_share(
    validator: &PublicKey,
    share_index: u64,
    text: &str,
) -> Result<PublicKey, LockError> {
    text.parse().map_err(|source| LockError::ShareKey {
        validator: validator.to_string(),
        share_index,
        source,
    })
}

impl OperatorFile {
    fn into_operator(self) -> Result<Operator, LockError> {
        let identity = match (self.node_pubkey, self.enr) {
            (Some(key), None) => NodeIdentity::Bls(key.parse().map_err(|error: CryptoError| {
                LockError::NodeIdentity {
                    index: self.index,
                    problem: error.to_string(),
                }
            })?),
            (None, Some(enr)) => NodeIdentity::Enr(enr),
            _ => {
                return Err(LockError::NodeIdentity {
                    index: self.index,
                    problem: "needs exactly one of node_pubkey and enr".into(),
                })
            }
        };
        Ok(Operator {
            index: self.index,
            name: self.name,
            peer_address: self.peer_address,
            identity,
        })
    }
}

impl From<&Operator> for OperatorFile {
    fn from(operator: &Operator) -> Self {
        let (node_pubkey, enr) = match &operator.identity {
            NodeIdentity::Bls(key) => (Some(key.to_string()), None),
            NodeIdentity::Enr(enr) => (None, Some(enr.clone())),
        };
        OperatorFile {
            index: operator.index,
            name: operator.name.clone(),
            peer_address: operator.peer_address.clone(),
            node_pubkey,
            enr,
        }
    }
}

impl ValidatorFile {
    fn into_validator(self) -> Result<DistributedValidator, LockError> {
        let pubkey = parse_group_key(&self.pubkey)?;
        let mut public_shares = BTreeMap::new();
        for share in self.public_shares {
            let key = parse_public_share(&pubkey, share.share_index, &share.pubkey)?;
            if public_shares.insert(share.share_index, key).is_some() {
                return Err(LockError::DuplicateShare {
                    validator: pubkey.to_string(),
                    share_index: share.share_index,
                });
            }
        }
        Ok(DistributedValidator {
            pubkey,
            public_shares,
        })
    }
}

impl From<&DistributedValidator> for ValidatorFile {
    fn from(validator: &DistributedValidator) -> Self {
        ValidatorFile {
            pubkey: validator.pubkey.to_string(),
            public_shares: validator
                .public_shares
                .iter()
                .map(|(index, key)| ShareFile {
                    share_index: *index,
                    pubkey: key.to_string(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_are_host_and_nonzero_port() {
        assert!(is_host_port("127.0.0.1:9100"));
        assert!(is_host_port("node-3.example:1"));
        assert!(is_host_port("[::1]:9100"));
        assert!(!is_host_port("127.0.0.1"));
        assert!(!is_host_port(":9100"));
        assert!(!is_host_port("host:0"));
        assert!(!is_host_port("host:65536"));
    }

    #[test]
    fn fork_versions_are_four_hex_bytes() {
        assert_eq!(
            parse_fork_version("0x00001020").ok(),
            Some([0, 0, 0x10, 0x20])
        );
        assert!(parse_fork_version("00001020").is_err());
        assert!(parse_fork_version("0x000010").is_err());
    }
}
