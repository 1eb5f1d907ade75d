//! The sidecar: a server that adds the extension routes to a beacon node.
//!
//! In front of an upstream node (`--beacon-node`) it serves
//! `POST /eth/v1/validator/is_aggregator` from the upstream's head state
//! (followed per epoch), answers the two standard selection routes 501, and
//! reverse-proxies every other request unchanged (the subscription endpoints
//! included). On a state file (`--state`) or a state in memory it serves the
//! same extension routes plus the read-only Beacon API that the state
//! determines, the two subscription endpoints (accepted items in
//! [`Sidecar::subscriptions`]), attestation data, the attestation pool and
//! the aggregate endpoints (accepted items in [`Sidecar::pool`]) and the
//! `head` event stream, with no upstream at all; the validator-client routes
//! a state without blocks cannot serve (block production and publication,
//! sync committee messages, ...) answer 501 saying why.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tracing::info;
use warp::Filter;

use super::backend::{LoadedState, StateBackend};
use super::events::event_routes;
use super::not_served::empty_chain_not_implemented;
use super::pool::routes::pool_routes;
use super::pool::AttestationPool;
use super::proxy::{proxy_filter, ProxyConfig, ProxyError};
use super::source::{follow_upstream, load_state_file, FollowConfig, SourceError};
use super::state_api::state_api_routes;
use super::subscriptions::{subscription_routes, SubscriptionLog};
use crate::api::client::BeaconNodeClient;
use crate::api::filters::{
    bind_server, is_aggregator_routes_with_limits, selections_not_implemented, Limits, ServerFuture,
};
use crate::api::{ClientError, SelectionBackend};
use crate::spec::{ChainSpec, ForkName};
use crate::state::BeaconState;

/// What the sidecar answers from.
#[derive(Debug, Clone)]
pub enum SidecarSource {
    /// A raw-SSZ state file, loaded once; the fork may be given.
    StateFile {
        path: PathBuf,
        fork: Option<ForkName>,
    },
    /// An upstream beacon node, followed and proxied.
    BeaconNode { url: String },
    /// A state already in memory (e.g. a devnet's genesis), served as a
    /// state file is; its owner may replace it through [`Sidecar::backend`].
    State(Box<BeaconState>),
}

/// Everything [`Sidecar::start`] needs.
#[derive(Debug, Clone)]
pub struct SidecarConfig {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    pub source: SidecarSource,
    /// The chain's configuration (preset and fork versions).
    pub spec: ChainSpec,
    /// Bounds on `is_aggregator` requests.
    pub limits: Limits,
}

/// Errors of starting the sidecar.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("upstream beacon node URL {url:?} is not a URL: {reason}")]
    BadUpstream { url: String, reason: String },
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
}

/// A running sidecar; dropping it stops the server and the follower.
pub struct Sidecar {
    addr: SocketAddr,
    backend: Arc<StateBackend>,
    subscriptions: Arc<SubscriptionLog>,
    pool: Arc<AttestationPool>,
    /// The follower (with an upstream), then the server.
    tasks: Vec<JoinHandle<()>>,
}

impl Sidecar {
    /// Loads the state (file mode) or starts following the upstream, binds
    /// and serves. Must run inside a tokio runtime.
    pub async fn start(config: SidecarConfig) -> Result<Self, SidecarError> {
        let spec = Arc::new(config.spec);
        let mut tasks = Vec::new();
        let backend = match &config.source {
            SidecarSource::StateFile { path, fork } => {
                let (path, fork, load_spec) = (path.clone(), *fork, Arc::clone(&spec));
                let loaded =
                    tokio::task::spawn_blocking(move || load_state_file(&path, &load_spec, fork))
                        .await
                        .map_err(|e| SourceError::Interrupted(e.to_string()))??;
                serve_loaded(&spec, loaded, "loaded the state file")
            }
            SidecarSource::State(state) => {
                let state = (**state).clone();
                let loaded = tokio::task::spawn_blocking(move || LoadedState::new(state))
                    .await
                    .map_err(|e| SourceError::Interrupted(e.to_string()))?
                    .map_err(|source| SourceError::Committees {
                        what: "the given state".into(),
                        source,
                    })?;
                serve_loaded(&spec, loaded, "serving the given state")
            }
            SidecarSource::BeaconNode { url } => {
                let backend = Arc::new(StateBackend::new(
                    Arc::clone(&spec),
                    format!("waiting for the head state of {url}"),
                ));
                let client = BeaconNodeClient::new(url)?;
                let follow =
                    follow_upstream(Arc::clone(&backend), client, FollowConfig::for_spec(&spec));
                tasks.push(tokio::spawn(follow));
                backend
            }
        };
        let selection: Arc<dyn SelectionBackend> = backend.clone();
        let extension = is_aggregator_routes_with_limits(selection, config.limits)
            .or(selections_not_implemented())
            .unify();
        let subscriptions = Arc::new(SubscriptionLog::default());
        let pool = Arc::new(AttestationPool::default());
        let (addr, server) = match &config.source {
            SidecarSource::StateFile { .. } | SidecarSource::State(_) => {
                let routes = extension
                    .or(subscription_routes(
                        Arc::clone(&backend),
                        Arc::clone(&subscriptions),
                    ))
                    .unify()
                    .or(state_api_routes(Arc::clone(&backend)))
                    .unify()
                    .or(pool_routes(Arc::clone(&backend), Arc::clone(&pool)))
                    .unify()
                    .or(event_routes(Arc::clone(&backend)))
                    .unify()
                    // Last: it answers only paths no route above serves.
                    .or(empty_chain_not_implemented())
                    .unify();
                bind(routes, config.listen).await?
            }
            SidecarSource::BeaconNode { url } => {
                let upstream = reqwest::Url::parse(url).map_err(|e| SidecarError::BadUpstream {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
                let routes = extension
                    .or(proxy_filter(ProxyConfig::new(upstream))?)
                    .unify();
                bind(routes, config.listen).await?
            }
        };
        tasks.push(tokio::spawn(server));
        info!(%addr, "sidecar listening");
        Ok(Sidecar {
            addr,
            backend,
            subscriptions,
            pool,
            tasks,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The state the routes answer from.
    pub fn backend(&self) -> &Arc<StateBackend> {
        &self.backend
    }

    /// The subscriptions this node accepted (state-file mode; in front of an
    /// upstream they are proxied and the log stays empty).
    pub fn subscriptions(&self) -> &Arc<SubscriptionLog> {
        &self.subscriptions
    }

    /// The attestation pool and its record of accepted attestations and
    /// aggregates (state modes; in front of an upstream it stays empty).
    pub fn pool(&self) -> &Arc<AttestationPool> {
        &self.pool
    }

    /// Serves until the process is stopped.
    pub async fn run_until_stopped(mut self) {
        if let Some(server) = self.tasks.pop() {
            let _ = server.await;
        }
    }
}

/// A backend holding `loaded`, logged as `what`.
fn serve_loaded(spec: &Arc<ChainSpec>, loaded: LoadedState, what: &str) -> Arc<StateBackend> {
    info!(
        slot = loaded.state.slot(),
        fork = %loaded.state.fork_name(),
        validators = loaded.state.validators().len(),
        "{what}"
    );
    let backend = Arc::new(StateBackend::new(Arc::clone(spec), "not loaded"));
    backend.set_state(loaded);
    backend
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn bind<F>(routes: F, listen: SocketAddr) -> Result<(SocketAddr, ServerFuture), SidecarError>
where
    F: Filter<Extract = (warp::reply::Response,), Error = warp::Rejection>
        + Clone
        + Send
        + Sync
        + 'static,
{
    // The sidecar stops with its process or when dropped.
    bind_server(routes, listen, std::future::pending())
        .await
        .map_err(|e| SidecarError::Bind {
            addr: listen,
            reason: e.to_string(),
        })
}
