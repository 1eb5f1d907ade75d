//! The devnet as a harness for validator clients it does not run itself
//! (`devnet --external-vcs`): what it writes and prints so that any standard
//! client can join.
//!
//! For each operator: the URL of its middleware (the client's beacon node),
//! its share keystores in the two layouts clients import (EIP-2335 files
//! with a password file each, as `cluster create` writes them; and
//! `keystores/0x<pubkey>/voting-keystore.json` with `secrets/0x<pubkey>`, as
//! Lighthouse and Teku take them) and the cluster lock. For the chain: a
//! testnet directory with `config.yaml` (what the beacon node serves as
//! `config/spec`) and the deposit contract's deploy block. All of it is also
//! written as `external-vcs.json` for scripts.
//!
//! The devnet cannot look inside such clients, so it judges what they did
//! where it can see it: the selections each asked its middleware and the
//! combined proofs it got (`Middleware::watch_answers`), the beacon committee
//! subscriptions the beacon node received, and the attestations and
//! aggregates the chain accepted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::DevnetError;
use crate::cluster::create::LOCK_FILE_NAME;
use crate::crypto::keystore::{write_private_file, Keystore};
use crate::spec::config::config_yaml;
use crate::spec::ChainSpec;
use crate::vc::keys::VOTING_KEYSTORE_FILE;

/// The file in the data directory that holds the set-up as JSON.
pub const SETUP_FILE_NAME: &str = "external-vcs.json";

/// What one operator's external validator client needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorSetup {
    /// The operator's index in the lock.
    pub operator: u64,
    /// The operator's middleware: the client's beacon node.
    pub beacon_node: String,
    /// EIP-2335 keystores of the operator's key shares, each password in the
    /// `.txt` file of the same name.
    pub keystores: PathBuf,
    /// The same keystores as `0x<pubkey>/voting-keystore.json`.
    pub keystores_by_pubkey: PathBuf,
    /// Their passwords as `0x<pubkey>` files.
    pub secrets: PathBuf,
    /// The cluster lock (group keys of the shares).
    pub cluster_lock: PathBuf,
}

/// Everything external validator clients need to join the devnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExternalSetup {
    /// A testnet directory: `config.yaml`, `deposit_contract_block.txt`,
    /// `deploy_block.txt`.
    pub testnet_dir: PathBuf,
    /// The chain's genesis time (Unix seconds).
    pub genesis_time: u64,
    /// The first epoch judged (the ones before are for the clients to start).
    pub first_judged_epoch: u64,
    /// One entry per running operator.
    pub operators: Vec<OperatorSetup>,
}

impl ExternalSetup {
    /// Writes the testnet directory and every running operator's key
    /// layouts under `data_dir` (laid out by the devnet's `cluster create`),
    /// then the set-up itself as [`SETUP_FILE_NAME`], which appears whole
    /// once everything else is written.
    pub fn write(
        spec: &ChainSpec,
        data_dir: &Path,
        middlewares: &[(u64, SocketAddr)],
        genesis_time: u64,
        first_judged_epoch: u64,
    ) -> Result<Self, DevnetError> {
        let testnet_dir = data_dir.join("testnet");
        create_dir(&testnet_dir)?;
        write_file(
            &testnet_dir.join("config.yaml"),
            config_yaml(&spec.to_served_config_map()).as_bytes(),
        )?;
        // Lighthouse reads the first name, older tools the second.
        for name in ["deposit_contract_block.txt", "deploy_block.txt"] {
            write_file(&testnet_dir.join(name), b"0\n")?;
        }
        let mut operators = Vec::with_capacity(middlewares.len());
        for (operator, addr) in middlewares {
            let dir = super::operator_dir(data_dir, *operator);
            let (keystores_by_pubkey, secrets) = (dir.join("keystores"), dir.join("secrets"));
            write_by_pubkey(&dir.join("validator_keys"), &keystores_by_pubkey, &secrets)?;
            operators.push(OperatorSetup {
                operator: *operator,
                beacon_node: format!("http://{addr}"),
                keystores: dir.join("validator_keys"),
                keystores_by_pubkey,
                secrets,
                cluster_lock: data_dir.join("cluster").join(LOCK_FILE_NAME),
            });
        }
        let setup = ExternalSetup {
            testnet_dir,
            genesis_time,
            first_judged_epoch,
            operators,
        };
        let json = serde_json::to_vec_pretty(&setup)
            .map_err(|error| DevnetError::Config(format!("encoding the set-up: {error}")))?;
        // Renamed into place: scripts wait for the file and must never read
        // half of it.
        let (partial, path) = (
            data_dir.join(format!("{SETUP_FILE_NAME}.partial")),
            data_dir.join(SETUP_FILE_NAME),
        );
        write_file(&partial, &json)?;
        std::fs::rename(&partial, &path).map_err(|source| io_error(&path, source))?;
        Ok(setup)
    }

    /// The set-up as lines for the terminal.
    pub fn describe(&self, data_dir: &Path) -> Vec<String> {
        let mut lines = vec![
            format!(
                "external validator clients: start one per operator with its beacon node and keys below (the middleware stands in front of the beacon node; key shares, not the validators' keys); epoch 0 is for starting, epochs from {} are judged",
                self.first_judged_epoch
            ),
            format!(
                "chain: testnet directory {} (config.yaml), genesis at {} (Unix time)",
                self.testnet_dir.display(),
                self.genesis_time
            ),
        ];
        for operator in &self.operators {
            lines.push(format!(
                "operator {}: beacon node {}",
                operator.operator, operator.beacon_node
            ));
            lines.push(format!(
                "  keystores: {} (EIP-2335, password in <name>.txt)",
                operator.keystores.display()
            ));
            lines.push(format!(
                "  keystores: {} (0x<pubkey>/voting-keystore.json), secrets: {}",
                operator.keystores_by_pubkey.display(),
                operator.secrets.display()
            ));
            lines.push(format!(
                "  cluster lock: {}",
                operator.cluster_lock.display()
            ));
        }
        lines.push(format!(
            "the same as JSON: {}",
            data_dir.join(SETUP_FILE_NAME).display()
        ));
        lines
    }
}

/// Writes every keystore of `dir` (EIP-2335 `*.json` with `.txt` password)
/// again as `keystores/0x<pubkey>/voting-keystore.json` with its password
/// in `secrets/0x<pubkey>`.
fn write_by_pubkey(dir: &Path, keystores: &Path, secrets: &Path) -> Result<(), DevnetError> {
    create_dir(keystores)?;
    create_dir(secrets)?;
    let read_dir = std::fs::read_dir(dir).map_err(|source| io_error(dir, source))?;
    for entry in read_dir {
        let path = entry.map_err(|source| io_error(dir, source))?.path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let keystore = Keystore::load(&path)
            .map_err(|error| DevnetError::Config(format!("{}: {error}", path.display())))?;
        // Copied byte for byte: each client trims its own way.
        let password_path = path.with_extension("txt");
        let password = zeroize::Zeroizing::new(
            std::fs::read(&password_path).map_err(|source| io_error(&password_path, source))?,
        );
        let name = format!("0x{}", keystore.pubkey.trim_start_matches("0x"));
        let key_dir = keystores.join(&name);
        create_dir(&key_dir)?;
        write_file(
            &key_dir.join(VOTING_KEYSTORE_FILE),
            keystore.to_json().as_bytes(),
        )?;
        write_file(&secrets.join(&name), &password)?;
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), DevnetError> {
    std::fs::create_dir_all(dir).map_err(|source| io_error(dir, source))
}

/// Written owner-only: the files hold keystores and their passwords.
fn write_file(path: &Path, contents: &[u8]) -> Result<(), DevnetError> {
    write_private_file(path, contents).map_err(|source| io_error(path, source))
}

fn io_error(path: &Path, source: std::io::Error) -> DevnetError {
    DevnetError::Io {
        path: path.to_owned(),
        source,
    }
}
