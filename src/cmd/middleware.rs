//! `dv-aggregator middleware`: one operator's node of a distributed-validator
//! cluster, between its validator client and its beacon node.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use dv_aggregator::api::filters::Limits;
use dv_aggregator::cluster::{load_any_lock, load_node_key};
use dv_aggregator::middleware::{Middleware, MiddlewareConfig, RetryPolicy, SlotSource};

/// Run one operator's middleware node: combine the cluster's partial
/// selection proofs for its validator client.
#[derive(Debug, Args)]
pub struct MiddlewareArgs {
    /// The cluster lock (ours, or Charon's cluster-lock.json): the
    /// validators, their public key shares, the operators, their peer
    /// addresses and node keys.
    #[arg(long, value_name = "FILE")]
    lock: PathBuf,
    /// This operator's index in the lock (1..=n); it holds share `I` of
    /// every validator.
    #[arg(long, value_name = "I")]
    operator_index: u64,
    /// This operator's node key (the `node-key` file `cluster create`
    /// writes); it signs the requests to the peers. It must be the key the
    /// lock lists for this operator.
    #[arg(long, value_name = "FILE")]
    node_key: PathBuf,
    /// This operator's beacon node. Everything the validator client asks
    /// but the selection endpoints is proxied to it (validator and duty
    /// lookups with the public shares mapped to the group keys).
    #[arg(long, value_name = "URL")]
    beacon_node: String,
    /// Address of the validator API (point the validator client's
    /// --beacon-node here). Anything but loopback exposes it.
    #[arg(long, default_value = "127.0.0.1")]
    http_address: IpAddr,
    /// Port of the validator API.
    #[arg(long, default_value_t = 3600)]
    http_port: u16,
    /// Address the peer API listens on. The other operators reach it at
    /// this operator's peer address in the lock, so a cluster across
    /// machines needs an address they can reach (e.g. 0.0.0.0).
    #[arg(long, default_value = "127.0.0.1")]
    peer_address: IpAddr,
    /// Port of the peer API; by default the port of this operator's peer
    /// address in the lock.
    #[arg(long)]
    peer_port: Option<u16>,
    /// How long a selection request waits for the other operators' partials
    /// before it is answered with what has combined, in milliseconds; by
    /// default a third of a slot (4 s on mainnet).
    #[arg(long, value_name = "MS")]
    selection_timeout_ms: Option<u64>,
    /// Most items one selection request may hold.
    #[arg(long, default_value_t = Limits::DEFAULT_MAX_ITEMS)]
    max_items: usize,
}

/// Runs the node until the process is stopped.
pub fn run(args: MiddlewareArgs) -> anyhow::Result<()> {
    let lock = load_any_lock(&args.lock)
        .with_context(|| format!("loading the cluster lock {}", args.lock.display()))?;
    let operator = lock.operator(args.operator_index).with_context(|| {
        format!(
            "operator {} is not in the cluster lock {} (it has operators 1..={})",
            args.operator_index,
            args.lock.display(),
            lock.operators.len()
        )
    })?;
    let peer_port = match args.peer_port {
        Some(port) => port,
        None => lock_peer_port(operator.peer_address.as_deref()).with_context(|| {
            format!(
                "operator {} has no peer address with a port in the lock; give --peer-port",
                args.operator_index
            )
        })?,
    };
    let node_key = load_node_key(&args.node_key)
        .with_context(|| format!("loading the node key {}", args.node_key.display()))?;
    let config = MiddlewareConfig {
        lock,
        operator_index: args.operator_index,
        node_key,
        beacon_node: args.beacon_node,
        http_listen: SocketAddr::new(args.http_address, args.http_port),
        peer_listen: SocketAddr::new(args.peer_address, peer_port),
        selection_timeout: args.selection_timeout_ms.map(Duration::from_millis),
        peer_retry: RetryPolicy::default(),
        slot_source: SlotSource::WallClock,
        limits: Limits {
            max_items: args.max_items,
            ..Limits::default()
        },
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let node = Middleware::start(config).await?;
        node.run_until_stopped().await;
        Ok(())
    })
}

/// The port of a lock's `host:port` peer address.
fn lock_peer_port(address: Option<&str>) -> Option<u16> {
    address?.rsplit_once(':')?.1.parse().ok()
}
