//! `dv-aggregator vc`: a validator client's aggregator selection, local or in
//! distributed mode, running on the slot clock until stopped.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};

use dv_aggregator::cluster::load_any_lock;
use dv_aggregator::vc::{load_keystores, SelectionEndpoint, SelectionStrategy, Vc, VcConfig};

/// Run a validator client that selects aggregators for its keys: it fetches
/// attester and sync duties every epoch, decides which of its validators
/// aggregate, and posts the committee subscriptions that follow. It does not
/// produce attestations or aggregates.
#[derive(Debug, Args)]
pub struct VcArgs {
    /// The beacon node to use. In distributed mode this is the distributed
    /// validator middleware, which stands in front of the beacon node.
    #[arg(long, value_name = "URL")]
    beacon_node: String,
    /// Directory of EIP-2335 keystores (*.json). In a distributed validator
    /// these hold key shares (`cluster create` writes them to
    /// operator-<i>/validator_keys).
    #[arg(long, value_name = "DIR")]
    keystores: PathBuf,
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

/// Runs the validator client until the process is stopped.
pub fn run(args: VcArgs) -> anyhow::Result<()> {
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
    let mut config = VcConfig::new(args.beacon_node, keys);
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
