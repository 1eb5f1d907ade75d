//! `dv-aggregator cluster`: create a cluster (split keys, write the lock and
//! the operators' keystores), combine partial signatures, recover a
//! validator key. Argument parsing and printing only; the work is in
//! `dv_aggregator::cluster` and `dv_aggregator::crypto`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::print_line;
use anyhow::{bail, Context};
use clap::{ArgGroup, Args, Subcommand};
use dv_aggregator::cluster::create::{
    read_password_file, recover_validator_keystore, ShareKeystoreFile,
};
use dv_aggregator::cluster::{
    create_cluster, fork_version_of_network, load_any_lock, CreateConfig, ValidatorKeys,
};
use dv_aggregator::crypto::keystore::Kdf;
use dv_aggregator::crypto::threshold::{combine_signatures, verify_partial};
use dv_aggregator::crypto::{PublicKey, Signature};

/// `dv-aggregator cluster` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Split validator keys into t-of-n shares and write cluster-lock.json and
    /// one directory per operator (share keystores, passwords, node key).
    Create(CreateArgs),
    /// Combine t partial signatures into the group signature, optionally
    /// verifying the partials and the result.
    // Boxed (like RecoverKey) because curve points make the args large.
    CombineSignatures(Box<CombineArgs>),
    /// Recover a validator's secret key from t share keystores and write it as
    /// an EIP-2335 keystore (needed to exit a validator).
    RecoverKey(Box<RecoverArgs>),
}

/// Arguments of `cluster create`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("keys").required(true).args(["validators", "split_existing_keys"])))]
pub struct CreateArgs {
    /// Number of operators n.
    #[arg(long)]
    operators: u64,
    /// Signatures needed t (default ceil(2n/3)).
    #[arg(long)]
    threshold: Option<u64>,
    /// Generate this many new validator keys.
    #[arg(long)]
    validators: Option<u64>,
    /// Split the EIP-2335 keystores DIR/*.json, passwords in DIR/*.txt.
    #[arg(long, value_name = "DIR")]
    split_existing_keys: Option<PathBuf>,
    /// Output directory (must be absent or empty).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Operator i's peer address is PEER_HOST:(P + i - 1).
    #[arg(long, value_name = "P", default_value_t = 9100)]
    peer_base_port: u16,
    /// Host of every operator's peer address.
    #[arg(long, default_value = "127.0.0.1")]
    peer_host: String,
    /// Network: mainnet, minimal, sepolia, holesky, hoodi, goerli, or any
    /// name together with --fork-version.
    #[arg(long, default_value = "mainnet")]
    network: String,
    /// Genesis fork version (0x + 8 hex digits); defaults to the network's.
    #[arg(long, value_parser = parse_fork_version)]
    fork_version: Option<[u8; 4]>,
    /// Cluster name written into the lock.
    #[arg(long, default_value = "dv-cluster")]
    name: String,
    /// INSECURE, for tests and throwaway devnets only: encrypt keystores with
    /// a cheap scrypt (n = 2^4) instead of the EIP-2335 default (n = 2^18).
    #[arg(long)]
    insecure_fast_kdf: bool,
}

/// Arguments of `cluster combine-signatures`.
#[derive(Debug, Args)]
pub struct CombineArgs {
    /// Signatures needed t.
    #[arg(long)]
    threshold: u64,
    /// A partial signature: SHARE_INDEX:0xSIGNATURE (repeat).
    #[arg(long = "partial", value_name = "I:0xSIG", required = true, value_parser = parse_partial)]
    partials: Vec<(u64, Signature)>,
    /// A public share: SHARE_INDEX:0xPUBKEY (repeat); every partial is then
    /// verified against its share and each bad one is named.
    #[arg(long = "pubshare", value_name = "I:0xPK", value_parser = parse_pubshare, requires = "signing_root")]
    pubshares: Vec<(u64, PublicKey)>,
    /// The group public key to verify the combined signature against.
    #[arg(long, value_name = "0xPK", requires = "signing_root")]
    pubkey: Option<PublicKey>,
    /// The 32-byte signing root that was signed.
    #[arg(long, value_name = "0xROOT", value_parser = parse_root)]
    signing_root: Option<[u8; 32]>,
}

/// Arguments of `cluster recover-key`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The cluster lock (ours or Charon's).
    #[arg(long, value_name = "FILE")]
    lock: PathBuf,
    /// The validator's group public key.
    #[arg(long, value_name = "0xPK")]
    validator: PublicKey,
    /// A share: SHARE_INDEX:KEYSTORE:PASSWORD_FILE (repeat, at least t).
    #[arg(long = "share", value_name = "I:KEYSTORE:PASSWORDFILE", required = true, value_parser = parse_share)]
    shares: Vec<ShareKeystoreFile>,
    /// Where to write the recovered keystore.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Password for the new keystore; without it a random one is written to
    /// OUT with extension .txt.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// INSECURE, for tests only: cheap scrypt for the recovered keystore.
    #[arg(long)]
    insecure_fast_kdf: bool,
}

/// Runs one `cluster` subcommand.
pub fn run(command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Create(args) => create(args),
        ClusterCommand::CombineSignatures(args) => combine(*args),
        ClusterCommand::RecoverKey(args) => recover(*args),
    }
}

fn kdf(insecure_fast: bool) -> Kdf {
    if insecure_fast {
        Kdf::INSECURE_FAST
    } else {
        Kdf::EIP2335_SCRYPT
    }
}

fn create(args: CreateArgs) -> anyhow::Result<()> {
    let fork_version = match args.fork_version {
        Some(version) => version,
        None => fork_version_of_network(&args.network).with_context(|| {
            format!(
                "unknown network {:?}: give its genesis fork version with --fork-version",
                args.network
            )
        })?,
    };
    let validator_keys = match (args.validators, args.split_existing_keys) {
        (Some(count), None) => ValidatorKeys::Generate(count),
        (None, Some(dir)) => ValidatorKeys::SplitExisting(dir),
        _ => bail!("give exactly one of --validators and --split-existing-keys"),
    };
    let created = create_cluster(&CreateConfig {
        name: args.name,
        operators: args.operators,
        threshold: args.threshold,
        validator_keys,
        out_dir: args.out,
        peer_host: args.peer_host,
        peer_base_port: args.peer_base_port,
        network: args.network,
        fork_version,
        kdf: kdf(args.insecure_fast_kdf),
    })?;
    let lock = &created.lock;
    print_line(&format!(
        "created cluster {:?}: {} operators, threshold {}, {} validators, network {}",
        lock.name,
        lock.operators.len(),
        lock.threshold,
        lock.validators.len(),
        lock.network
    ))?;
    print_line(&format!("lock: {}", created.lock_path.display()))?;
    for validator in &lock.validators {
        print_line(&format!("validator {}", validator.pubkey))?;
    }
    for (operator, dir) in lock.operators.iter().zip(&created.operator_dirs) {
        let address = operator.peer_address.as_deref().unwrap_or("-");
        print_line(&format!(
            "operator {} {} {}",
            operator.index,
            address,
            dir.display()
        ))?;
    }
    Ok(())
}

fn combine(args: CombineArgs) -> anyhow::Result<()> {
    if !args.pubshares.is_empty() {
        check_partials(&args)?;
    }
    let combined = combine_signatures(&args.partials, args.threshold)?;
    if let (Some(pubkey), Some(root)) = (&args.pubkey, &args.signing_root) {
        if !combined.verify(pubkey, root) {
            bail!("combined signature {combined} does not verify against pubkey {pubkey} and the signing root");
        }
    }
    print_line(&format!("{combined}"))?;
    Ok(())
}

/// Verifies every partial against its pubshare and names all that fail.
fn check_partials(args: &CombineArgs) -> anyhow::Result<()> {
    let root = args
        .signing_root
        .context("--pubshare needs --signing-root")?;
    let pubshares: BTreeMap<u64, PublicKey> = args.pubshares.iter().copied().collect();
    let mut failures = Vec::new();
    for (index, partial) in &args.partials {
        match pubshares.get(index) {
            None => failures.push(format!("partial {index} has no --pubshare {index}:...")),
            Some(pubshare) if !verify_partial(pubshare, &root, partial) => failures.push(format!(
                "partial {index} does not verify against pubshare {pubshare}"
            )),
            Some(_) => {}
        }
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(())
}

fn recover(args: RecoverArgs) -> anyhow::Result<()> {
    let lock = load_any_lock(&args.lock)?;
    let password = args
        .password_file
        .as_deref()
        .map(read_password_file)
        .transpose()?;
    let written = recover_validator_keystore(
        &lock,
        &args.validator,
        &args.shares,
        &args.out,
        password.as_deref().map(String::as_str),
        kdf(args.insecure_fast_kdf),
    )?;
    print_line(&format!(
        "recovered validator {} into {}",
        args.validator,
        args.out.display()
    ))?;
    if let Some(password_file) = written {
        print_line(&format!("password: {}", password_file.display()))?;
    }
    Ok(())
}

fn parse_index(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("share index {text:?} is not a number"))
}

/// Parses `I:0xHEX` into a share index and a key or signature.
fn parse_indexed<T>(text: &str, what: &str) -> Result<(u64, T), String>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let (index, value) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not I:0x{}", what.to_uppercase()))?;
    let value = value
        .parse()
        .map_err(|error| format!("{what} {index}: {error}"))?;
    Ok((parse_index(index)?, value))
}

fn parse_partial(text: &str) -> Result<(u64, Signature), String> {
    parse_indexed(text, "partial")
}

fn parse_pubshare(text: &str) -> Result<(u64, PublicKey), String> {
    parse_indexed(text, "pubshare")
}

fn parse_share(text: &str) -> Result<ShareKeystoreFile, String> {
    let mut parts = text.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(index), Some(keystore), Some(password_file)) => Ok(ShareKeystoreFile {
            share_index: parse_index(index)?,
            keystore: keystore.into(),
            password_file: password_file.into(),
        }),
        _ => Err(format!("{text:?} is not I:KEYSTORE:PASSWORDFILE")),
    }
}

fn parse_hex_array<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| format!("{text:?} does not start with 0x"))?;
    let mut bytes = [0u8; N];
    hex::decode_to_slice(digits, &mut bytes)
        .map_err(|_| format!("{text:?} is not {N} bytes of hex"))?;
    Ok(bytes)
}

fn parse_root(text: &str) -> Result<[u8; 32], String> {
    parse_hex_array(text)
}

fn parse_fork_version(text: &str) -> Result<[u8; 4], String> {
    parse_hex_array(text)
}
