//! The cluster of a distributed validator: the cluster lock (our own JSON,
//! see [`lock`]; import of Charon's `cluster-lock.json`, see [`charon`]) and
//! `cluster create`, which splits validator keys into t-of-n shares and writes
//! the lock, the share keystores and the node keys of every operator (see
//! [`create`]).

pub mod charon;
pub mod create;
pub mod lock;

use std::path::Path;

pub use create::{
    create_cluster, load_node_key, recover_validator_key, split_cluster, CreateConfig, CreateError,
    CreatedCluster, SplitCluster, ValidatorKeys,
};
pub use lock::{ClusterLock, DistributedValidator, LockError, NodeIdentity, Operator};

use crate::spec::{ChainSpec, Version};

/// Public networks whose genesis fork version is not in [`ChainSpec`]; used to
/// name the network of an imported lock and to resolve `--network`.
const PUBLIC_TESTNETS: [(&str, Version); 4] = [
    ("goerli", [0x00, 0x00, 0x10, 0x20]),
    ("sepolia", [0x90, 0x00, 0x00, 0x69]),
    ("holesky", [0x01, 0x01, 0x70, 0x00]),
    ("hoodi", [0x10, 0x00, 0x09, 0x10]),
];

fn known_networks() -> Vec<(String, Version)> {
    let mut networks: Vec<(String, Version)> = [ChainSpec::mainnet(), ChainSpec::minimal()]
        .into_iter()
        .map(|spec| {
            let version = spec.genesis_fork_version();
            (spec.config_name, version)
        })
        .collect();
    networks.extend(
        PUBLIC_TESTNETS
            .iter()
            .map(|(name, version)| ((*name).to_owned(), *version)),
    );
    networks
}

/// The genesis fork version of a known network ("mainnet", "minimal",
/// "sepolia", "holesky", "hoodi", "goerli").
pub fn fork_version_of_network(network: &str) -> Option<Version> {
    known_networks()
        .into_iter()
        .find(|(name, _)| name == network)
        .map(|(_, version)| version)
}

/// The name of the network whose genesis fork version is `version`.
pub fn network_of_fork_version(version: &Version) -> Option<String> {
    known_networks()
        .into_iter()
        .find(|(_, v)| v == version)
        .map(|(name, _)| name)
}

/// Loads a lock in our format or Charon's, whichever the file holds.
pub fn load_any_lock(path: &Path) -> Result<ClusterLock, LockError> {
    let json = lock::read_lock_file(path)?;
    if charon::is_charon_lock(&json) {
        charon::from_charon_json(&json)
    } else {
        ClusterLock::from_json(&json)
    }
}
