//! `dv-aggregator sidecar`: adds `POST /eth/v1/validator/is_aggregator` to
//! any beacon node.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{ArgGroup, Args};

use dv_aggregator::api::filters::Limits;
use dv_aggregator::beacon::sidecar::{Sidecar, SidecarConfig, SidecarSource};
use dv_aggregator::spec::{ChainSpec, ForkName};

/// Serve the is_aggregator extension in front of a beacon node (or from a
/// state file).
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["beacon_node", "state"])))]
pub struct SidecarArgs {
    /// The upstream beacon node. Its head state is fetched as SSZ at start and
    /// at every new epoch; every request but the extension routes is proxied
    /// to it unchanged.
    #[arg(long, value_name = "URL")]
    beacon_node: Option<String>,
    /// Serve from this raw-SSZ BeaconState instead of a node, with the
    /// read-only Beacon API a validator client needs (genesis, fork,
    /// validators, committees, duties).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Override the fork detected from the state file's fork version.
    #[arg(long, requires = "state")]
    fork: Option<String>,
    /// The chain's preset: mainnet or minimal.
    #[arg(long, default_value = "mainnet", conflicts_with = "config")]
    preset: String,
    /// A config.yaml, or the JSON body of GET /eth/v1/config/spec, instead of --preset.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on. Anything but loopback exposes the node's API.
    #[arg(long, default_value = "127.0.0.1")]
    http_address: IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = 5052)]
    http_port: u16,
    /// Most items one is_aggregator request may hold.
    #[arg(long, default_value_t = Limits::DEFAULT_MAX_ITEMS)]
    max_items: usize,
}

/// Runs the sidecar until the process is stopped.
pub fn run(args: SidecarArgs) -> anyhow::Result<()> {
    let spec = match &args.config {
        Some(path) => ChainSpec::from_file(path)
            .with_context(|| format!("loading config {}", path.display()))?,
        None => ChainSpec::from_preset_name(&args.preset)?,
    };
    let source = match (args.beacon_node, args.state) {
        (Some(url), _) => SidecarSource::BeaconNode { url },
        (None, Some(path)) => SidecarSource::StateFile {
            path,
            fork: args
                .fork
                .as_deref()
                .map(|name| ForkName::parse(name).with_context(|| format!("unknown fork {name:?}")))
                .transpose()?,
        },
        (None, None) => anyhow::bail!("give --beacon-node or --state"),
    };
    let config = SidecarConfig {
        listen: SocketAddr::new(args.http_address, args.http_port),
        source,
        spec,
        limits: Limits {
            max_items: args.max_items,
            ..Limits::default()
        },
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let sidecar = Sidecar::start(config).await?;
        sidecar.run_until_stopped().await;
        Ok(())
    })
}
