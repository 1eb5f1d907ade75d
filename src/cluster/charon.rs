//! Import of Charon's `cluster-lock.json` (ObolNetwork/charon, `cluster/`
//! package, lock versions v1.x with `public_shares`) into our [`ClusterLock`].
//!
//! Mapping: Charon operator `i` (0-based position in
//! `cluster_definition.operators`) becomes our operator `i + 1` and holds
//! share index `i + 1`: `distributed_validators[k].public_shares[i]` is share
//! `i + 1` of validator `k`, which is Charon's own share-index convention.
//! The operator's ENR is kept verbatim as its identity
//! ([`NodeIdentity::Enr`]): Charon nodes are secp256k1 identities, which our
//! peer protocol (BLS node keys) cannot authenticate, so an imported lock
//! describes the validators and shares but its nodes cannot join our peer
//! exchange. Charon locks carry no peer addresses. The network name is looked
//! up from the fork version ("unknown" otherwise). Lock hashes and operator
//! signatures are not checked: they need Charon's SSZ hashing and secp256k1,
//! and the full validation of [`ClusterLock::new`] (including the threshold
//! interpolation of every validator's shares) runs on the result.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::lock::{
    parse_fork_version, parse_group_key, parse_public_share, read_lock_file, ClusterLock,
    DistributedValidator, LockError, NodeIdentity, Operator,
};
use super::network_of_fork_version;

#[derive(Deserialize)]
struct CharonLock {
    cluster_definition: CharonDefinition,
    distributed_validators: Vec<CharonValidator>,
}

#[derive(Deserialize)]
struct CharonDefinition {
    #[serde(default)]
    name: String,
    operators: Vec<CharonOperator>,
    threshold: u64,
    fork_version: String,
}

#[derive(Deserialize)]
struct CharonOperator {
    #[serde(default)]
    address: String,
    enr: String,
}

#[derive(Deserialize)]
struct CharonValidator {
    distributed_public_key: String,
    public_shares: Vec<String>,
}

/// Reads and imports a Charon `cluster-lock.json`.
pub fn load_charon_lock(path: &Path) -> Result<ClusterLock, LockError> {
    from_charon_json(&read_lock_file(path)?)
}

/// Imports a Charon lock (see the module doc for the mapping) and validates
/// it like one of ours.
pub fn from_charon_json(json: &str) -> Result<ClusterLock, LockError> {
    let lock: CharonLock = serde_json::from_str(json)?;
    let definition = lock.cluster_definition;
    let fork_version = parse_fork_version(&definition.fork_version)?;
    let operators = definition
        .operators
        .into_iter()
        .zip(1u64..)
        .map(|(operator, index)| Operator {
            index,
            name: if operator.address.is_empty() {
                format!("operator-{index}")
            } else {
                operator.address
            },
            peer_address: None,
            identity: NodeIdentity::Enr(operator.enr),
        })
        .collect();
    let validators = lock
        .distributed_validators
        .into_iter()
        .map(import_validator)
        .collect::<Result<Vec<_>, _>>()?;
    ClusterLock::new(
        definition.name,
        network_of_fork_version(&fork_version).unwrap_or_else(|| "unknown".into()),
        fork_version,
        definition.threshold,
        operators,
        validators,
    )
}

fn import_validator(validator: CharonValidator) -> Result<DistributedValidator, LockError> {
    let pubkey = parse_group_key(&validator.distributed_public_key)?;
    let public_shares = validator
        .public_shares
        .iter()
        .zip(1u64..)
        .map(|(text, share_index)| {
            parse_public_share(&pubkey, share_index, text).map(|key| (share_index, key))
        })
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    Ok(DistributedValidator {
        pubkey,
        public_shares,
    })
}

/// Whether `json` looks like a Charon lock rather than one of ours.
pub fn is_charon_lock(json: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(json)
        .is_ok_and(|value| value.get("cluster_definition").is_some())
}
