//! `dv-aggregator vc`: a validator client's aggregator selection, local or in
//! distributed mode, running on the slot clock until stopped; `vc
//! slashing-protection import|export` moves its slashing-protection history
//! in and out as EIP-3076 interchange files.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use dv_aggregator::cluster::load_any_lock;
use dv_aggregator::spec::hex::parse_hex_array;
use dv_aggregator::spec::Root;
use dv_aggregator::vc::slashing::{Interchange, SlashingDatabase, SlashingError};
use dv_aggregator::vc::{load_keystores, SelectionEndpoint, SelectionStrategy, Vc, VcConfig};

use super::print_line;

/// Run a validator client for its keys' attester duties: it fetches
/// attester and sync duties every epoch, decides which of its validators
/// aggregate and posts the committee subscriptions that follow, then
/// attests at a third of each slot and aggregates at two thirds, signing
/// only what its slashing-protection database (in --data-dir) allows. `vc slashing-protection` imports and
/// exports that database's history.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct VcArgs {
    #[command(subcommand)]
    command: Option<VcCommand>,
    #[command(flatten)]
    run: Option<VcRunArgs>,
}

/// `vc` subcommands.
#[derive(Debug, Subcommand)]
enum VcCommand {
    /// Import or export the slashing-protection database of a data directory
    /// as an EIP-3076 interchange file (format version 5). Stop the validator
    /// client using the directory first: the database refuses a second user.
    #[command(subcommand)]
    SlashingProtection(SlashingProtectionCommand),
}

/// `vc slashing-protection` subcommands.
#[derive(Debug, Subcommand)]
enum SlashingProtectionCommand {
    /// Merge an interchange file into the database (created if missing).
    ///
    /// The import is minimal (EIP-3076's minimal strategy): for each
    /// validator of the file, the database keeps the highest block slot, the
    /// highest attestation source epoch and the highest target epoch as low
    /// watermarks, raised over what it had; from then on it refuses blocks at
    /// or below that slot and attestations with a lower source or a target at
    /// or below that epoch, even ones the file lists (their signing roots are
    /// not kept). Above the watermarks it checks everything the client signed
    /// itself (double votes, surround votes, double proposals). A file with
    /// slashable records is accepted: it can only raise the watermarks. The
    /// file is imported whole or not at all.
    ///
    /// The database belongs to one network: the first import into a new
    /// database (or the first client start) sets its genesis_validators_root,
    /// and a file for another network is refused.
    Import {
        /// The interchange file (JSON).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        data_dir: DataDirArg,
        /// The network the file must be for (0x + 32 bytes hex); also checked
        /// against the database's.
        #[arg(long, value_name = "ROOT", value_parser = parse_root)]
        genesis_validators_root: Option<Root>,
    },
    /// Write every registered validator's history to an interchange file
    /// (replaced if it exists): its watermarks as one block and one
    /// attestation without signing root, then every block and attestation the
    /// client signed itself, with signing roots.
    Export {
        /// The interchange file to write.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        data_dir: DataDirArg,
    },
}

/// `--data-dir` of the slashing-protection commands.
#[derive(Debug, Args)]
struct DataDirArg {
    /// The validator client's data directory (the one given to `vc
    /// --data-dir`); the database is its slashing_protection.sqlite.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
}

/// Running the client.
#[derive(Debug, Args)]
struct VcRunArgs {
    /// The beacon node to use. In distributed mode this is the distributed
    /// validator middleware, which stands in front of the beacon node.
    #[arg(long, value_name = "URL", required = true)]
    beacon_node: String,
    /// Directory of EIP-2335 keystores: DIR/*.json, or one directory per
    /// key holding voting-keystore.json (Lighthouse's layout, with
    /// --secrets). In a distributed validator these hold key shares
    /// (`cluster create` writes them to operator-<i>/validator_keys).
    #[arg(long, value_name = "DIR", required = true)]
    keystores: PathBuf,
    /// The client's data directory, created if missing. It holds the
    /// slashing-protection database (slashing_protection.sqlite), opened at
    /// start for the beacon node's network with every key registered. There
    /// is no default: a client started from another working directory with a
    /// relative default would find an empty database, and an empty database
    /// allows anything. Keep it with the keys (a key moved to another client
    /// takes its history along: `vc slashing-protection export`).
    #[arg(long, value_name = "DIR", required = true)]
    data_dir: PathBuf,
    /// Directory of keystore passwords, one file per key named 0x<pubkey>
    /// (Lighthouse's layout). Without it, each keystore's password is read
    /// from the .txt file of the same name beside it.
    #[arg(long, value_name = "DIR")]
    secrets: Option<PathBuf>,
    /// Distributed mode, for a validator whose key is split among operators:
    /// this client holds one key share, so its selection proofs are partial
    /// and deciding on them would be wrong. Instead it sends them to the
    /// middleware, which combines a threshold of operators' partials, and
    /// decides on the combined proof after verifying it against the
    /// validator's public key. Needs --cluster-lock.
    #[arg(long)]
    distributed_mode: bool,
    /// In distributed mode, where attestation selections go: `selections`,
    /// the standard beacon_committee_selections (combined proofs, the
    /// default), or `is-aggregator`, the seed's is_aggregator endpoint
    /// (booleans; sync selections still use sync_committee_selections,
    /// which that endpoint has no form of).
    #[arg(long, value_enum, value_name = "ENDPOINT")]
    selection_endpoint: Option<EndpointArg>,
    /// The cluster lock (ours or Charon's cluster-lock.json), required in
    /// distributed mode: it gives the validator (group) public key of each
    /// key share, which every combined proof is verified against; a keystore
    /// that is not a public share in it is refused. Without distributed mode
    /// it only names each key's validator in the decisions.
    #[arg(long, value_name = "FILE")]
    cluster_lock: Option<PathBuf>,
}

/// `--selection-endpoint` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum EndpointArg {
    /// beacon_committee_selections / sync_committee_selections.
    Selections,
    /// is_aggregator (sync selections still use sync_committee_selections).
    IsAggregator,
}

/// Runs `vc`: the client until the process is stopped, or a subcommand.
pub fn run(args: VcArgs) -> anyhow::Result<()> {
    match (args.command, args.run) {
        (Some(VcCommand::SlashingProtection(command)), _) => run_slashing_protection(command),
        (None, Some(run)) => run_client(run),
        // clap requires the run arguments when there is no subcommand.
        (None, None) => anyhow::bail!("vc needs --beacon-node, --keystores and --data-dir"),
    }
}

/// Runs the validator client until the process is stopped.
fn run_client(args: VcRunArgs) -> anyhow::Result<()> {
    if args.distributed_mode && args.cluster_lock.is_none() {
        anyhow::bail!(
            "--distributed-mode needs --cluster-lock FILE: the lock gives the validator public key every combined selection proof is verified against"
        );
    }
    if args.selection_endpoint.is_some() && !args.distributed_mode {
        anyhow::bail!("--selection-endpoint applies to --distributed-mode only");
    }
    let keys = load_keystores(&args.keystores, args.secrets.as_deref())
        .context("loading the validator keys")?;
    let mut config = VcConfig::new(args.beacon_node, keys).with_data_dir(args.data_dir);
    if let Some(path) = &args.cluster_lock {
        let lock = load_any_lock(path)
            .with_context(|| format!("loading the cluster lock {}", path.display()))?;
        config.cluster_lock = Some(lock);
    }
    if args.distributed_mode {
        let endpoint = match args.selection_endpoint {
            None | Some(EndpointArg::Selections) => SelectionEndpoint::Selections,
            Some(EndpointArg::IsAggregator) => SelectionEndpoint::IsAggregator,
        };
        config.strategy = SelectionStrategy::Distributed { endpoint };
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let handle = Vc::start(config).await?;
        handle.run_until_stopped().await;
        Ok(())
    })
}

fn run_slashing_protection(command: SlashingProtectionCommand) -> anyhow::Result<()> {
    match command {
        SlashingProtectionCommand::Import {
            file,
            data_dir,
            genesis_validators_root,
        } => import(&file, &data_dir.data_dir, genesis_validators_root),
        SlashingProtectionCommand::Export { file, data_dir } => export(&file, &data_dir.data_dir),
    }
}

fn import(file: &Path, data_dir: &Path, expected: Option<Root>) -> anyhow::Result<()> {
    let interchange = Interchange::read_file(file)?;
    let network = interchange.metadata.genesis_validators_root;
    if let Some(expected) = expected.filter(|&expected| expected != network) {
        anyhow::bail!(
            "{} is for genesis_validators_root {network}, not the --genesis-validators-root {expected}",
            file.display()
        );
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let database = SlashingDatabase::open_or_create(&SlashingDatabase::path_in(data_dir))?;
    if let Some(expected) = expected {
        check_network(&database, expected)?;
    }
    let imported = database
        .import_interchange(&interchange)
        .with_context(|| format!("importing {}", file.display()))?;
    for validator in &imported {
        let marks = validator.watermarks;
        print_line(&format!(
            "{:?}: {} blocks, {} attestations; refuses blocks at slot <= {}, attestations with source < {} or target <= {}",
            validator.pubkey,
            validator.blocks,
            validator.attestations,
            or_none(marks.block_slot),
            or_none(marks.source_epoch),
            or_none(marks.target_epoch),
        ))?;
    }
    print_line(&format!(
        "imported {} validators from {} into {}",
        imported.len(),
        file.display(),
        database.path().display()
    ))
}

/// Refuses a database already bound to a network other than `expected`
/// (before the import, whose own check names the file instead).
fn check_network(database: &SlashingDatabase, expected: Root) -> anyhow::Result<()> {
    match database.genesis_validators_root()? {
        Some(stored) if stored != expected => Err(SlashingError::GenesisValidatorsRootMismatch {
            database: stored,
            given: expected,
            given_by: "--genesis-validators-root",
        }
        .into()),
        _ => Ok(()),
    }
}

fn export(file: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let path = SlashingDatabase::path_in(data_dir);
    // Opening would create an empty database: say there is none instead.
    if !path.exists() {
        anyhow::bail!(
            "no slashing-protection database in {} (expected {})",
            data_dir.display(),
            path.display()
        );
    }
    let interchange = SlashingDatabase::open_or_create(&path)?.export_interchange()?;
    interchange.write_file(file)?;
    print_line(&format!(
        "exported {} validators from {} to {}",
        interchange.data.len(),
        path.display(),
        file.display()
    ))
}

fn or_none(value: Option<u64>) -> String {
    value.map_or_else(|| "none".into(), |v| v.to_string())
}

fn parse_root(text: &str) -> Result<Root, String> {
    parse_hex_array::<32>(text).map(Root::from)
}
