//! The middleware node of one operator: [`MiddlewareConfig`] ->
//! [`Middleware::start`] -> a running node, as the CLI, the tests and the
//! devnet start it.
//!
//! A node serves two HTTP servers:
//! - the validator API its VC talks to as if it were the beacon node: the
//!   selection endpoints and `/metrics` ([`super::routes`]), the validator
//!   and duty lookups with this operator's public shares mapped to the group
//!   keys and back ([`super::mapping`]), then every other request
//!   reverse-proxied to the beacon node;
//! - the peer API the other operators send partials to ([`super::peer_server`]).
//!
//! In the background it learns the chain from its beacon node (retrying
//! until the node answers, with VC requests answered 503 meanwhile), asks its
//! peers to re-send the partials of recent slots (catch-up after a restart),
//! then follows the slots: each slot moves the store's window, each epoch
//! refreshes the head fork and the validators' registry indices.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use warp::Filter;

use super::aggregator::{AggregateProposals, AggregationContext, Aggregator, SlotAggregates};
use super::agreement::{Agreement, Agreements};
use super::attester::{fetch_attester_duties, AttestationDataProposals, Attester, AttesterDuties};
use super::chain::{fetch_view, ChainState, ChainView};
use super::duty_routes::duty_routes;
use super::exchange::{DutyRoots, Exchange, StoreSink};
use super::mapping::{pubkey_mapping_routes, MappingConfig, MappingError, PubkeyMap};
use super::metrics::Metrics;
use super::peer::PartialSink;
use super::peer_client::{PeerClient, PeerError, RetryPolicy};
use super::peer_server::peer_routes;
use super::publisher::Publisher;
use super::routes::middleware_routes;
use super::selections::{AnsweredSelection, Selections};
use super::store::{PartialStore, StoreLimits};
use crate::api::filters::{bind_server, Limits};
use crate::api::{BeaconNodeClient, ClientError};
use crate::beacon::proxy::{proxy_filter, ProxyConfig, ProxyError};
use crate::cluster::ClusterLock;
use crate::consensus::{linear_round_timeout, RoundTimeout};
use crate::crypto::SecretKey;
use crate::spec::time::unix_now;
use crate::spec::{AttestationData, Epoch, Slot};

/// Where a node reads the current slot.
#[derive(Debug, Clone)]
pub enum SlotSource {
    /// The wall clock against the chain's genesis time and slot duration.
    WallClock,
    /// Slots set by the caller, for tests that answer from a fixed state
    /// whose slot is far from the wall clock's.
    Manual(watch::Receiver<Slot>),
}

/// Everything [`Middleware::start`] needs.
#[derive(Debug, Clone)]
pub struct MiddlewareConfig {
    /// The cluster lock (validated): validators, public shares, operators
    /// and their peer addresses and node keys.
    pub lock: ClusterLock,
    /// This operator's index in the lock (its share index of every validator).
    pub operator_index: u64,
    /// This operator's node key, which the lock lists for it.
    pub node_key: SecretKey,
    /// The beacon node's base URL.
    pub beacon_node: String,
    /// Where the validator API listens.
    pub http_listen: SocketAddr,
    /// Where the peer API listens.
    pub peer_listen: SocketAddr,
    /// How long a selection request may wait for the cluster; `None` is a
    /// third of a slot.
    pub selection_timeout: Option<Duration>,
    /// Retries of sends to peers.
    pub peer_retry: RetryPolicy,
    /// Where the current slot comes from.
    pub slot_source: SlotSource,
    /// Bounds on one selection request.
    pub limits: Limits,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum MiddlewareError {
    /// The operator index is not in the lock.
    #[error("operator {operator} is not in the cluster lock (it has operators 1..={operators})")]
    UnknownOperator {
        /// The index given.
        operator: u64,
        /// How many the lock has.
        operators: usize,
    },
    /// The peer client could not be built (e.g. the node key is not the lock's).
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// The lock's operators cannot run the agreement (too many, or this
    /// node's index outside them).
    #[error("cannot run the agreement among the lock's operators: {0}")]
    Agreement(#[from] crate::consensus::ConfigError),
    /// The beacon node URL is unusable.
    #[error(transparent)]
    BeaconNode(#[from] ClientError),
    /// The reverse proxy could not be built.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// The public-key mapping could not be built.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// The beacon node URL does not parse.
    #[error("beacon node URL {url:?} is not a URL: {reason}")]
    BadBeaconNodeUrl {
        /// The URL given.
        url: String,
        /// Why.
        reason: String,
    },
    /// A server could not bind its address.
    #[error("cannot listen on {addr} for the {server}: {reason}")]
    Bind {
        /// Which server.
        server: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The error.
        reason: String,
    },
}

/// A running middleware node; dropping it stops its servers and tasks.
pub struct Middleware {
    http_addr: SocketAddr,
    peer_addr: SocketAddr,
    store: Arc<PartialStore>,
    metrics: Arc<Metrics>,
    chain: Arc<ChainState>,
    selections: Arc<Selections>,
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
}

impl Middleware {
    /// Binds both servers and starts following the chain. Must run inside a
    /// tokio runtime.
    pub async fn start(config: MiddlewareConfig) -> Result<Self, MiddlewareError> {
        let lock = Arc::new(config.lock);
        let operator = config.operator_index;
        if lock.operator(operator).is_none() {
            return Err(MiddlewareError::UnknownOperator {
                operator,
                operators: lock.operators.len(),
            });
        }
        let client = PeerClient::new(&lock, operator, config.node_key.clone(), config.peer_retry)?;
        let beacon = BeaconNodeClient::new(&config.beacon_node)?;
        let upstream = reqwest::Url::parse(&config.beacon_node).map_err(|e| {
            MiddlewareError::BadBeaconNodeUrl {
                url: config.beacon_node.clone(),
                reason: e.to_string(),
            }
        })?;
        let store = Arc::new(PartialStore::new(
            &lock,
            StoreLimits::for_slots_per_epoch(32),
            0,
        ));
        let metrics = Arc::new(Metrics::default());
        let chain = Arc::new(ChainState::new(format!(
            "waiting for the beacon node {} to answer",
            beacon.base_url()
        )));
        let exchange = Exchange::new(client.clone(), Arc::clone(&store), Arc::clone(&metrics));
        let slot_duration = Arc::new(OnceLock::new());
        let rounds = round_timeout(Arc::clone(&slot_duration));
        let agreement: Arc<Agreement<AttestationData>> = Agreement::new(
            Arc::new(AttestationDataProposals::new(
                beacon.clone(),
                Arc::clone(&chain),
            )),
            Agreement::<AttestationData>::config(
                &lock,
                operator,
                config.node_key.clone(),
                Arc::clone(&rounds),
            )?,
            Arc::clone(&rounds),
            client.clone(),
            Arc::clone(&metrics),
        );
        let duties = Arc::new(RwLock::new(AttesterDuties::default()));
        let attester = Arc::new(Attester::new(
            Arc::clone(&store),
            Arc::clone(&chain),
            Arc::clone(&exchange),
            agreement.clone(),
            Arc::clone(&duties),
            operator,
        ));
        let context = Arc::new(AggregationContext::new(
            beacon.clone(),
            Arc::clone(&chain),
            Arc::clone(&store),
            agreement.clone(),
            Arc::clone(&duties),
        ));
        let aggregates = Agreement::new(
            Arc::new(AggregateProposals::new(Arc::clone(&context))),
            Agreement::<SlotAggregates>::config(
                &lock,
                operator,
                config.node_key.clone(),
                Arc::clone(&rounds),
            )?,
            Arc::clone(&rounds),
            client.clone(),
            Arc::clone(&metrics),
        );
        let aggregator = Arc::new(Aggregator::new(
            context,
            Arc::clone(&aggregates),
            Arc::clone(&exchange),
            operator,
        ));
        let roots: Vec<Arc<dyn DutyRoots>> = vec![attester.clone(), aggregator.clone()];
        let sink: Arc<dyn PartialSink> = Arc::new(StoreSink::new(
            Arc::clone(&store),
            Arc::clone(&chain),
            Arc::clone(&exchange),
            Arc::new(roots),
            Agreements::new(vec![agreement.clone(), aggregates.clone()]),
            tokio::runtime::Handle::current(),
        ));
        let publisher = Publisher::new(
            beacon.clone(),
            Arc::clone(&chain),
            Arc::clone(&attester),
            Arc::clone(&aggregator),
            Arc::clone(&metrics),
        );
        let combined = store.subscribe_combined();
        let (shutdown, _) = watch::channel(false);
        let (peer_addr, peer_server) = bind(
            "peer API",
            peer_routes(Arc::clone(&lock), operator, sink),
            config.peer_listen,
            &shutdown,
        )
        .await?;
        let selections = Arc::new(Selections::new(
            Arc::clone(&store),
            Arc::clone(&chain),
            Arc::clone(&exchange),
            Arc::clone(&metrics),
            beacon.clone(),
            operator,
            config.selection_timeout,
        ));
        let routes = duty_routes(
            Arc::clone(&attester),
            Arc::clone(&aggregator),
            Arc::clone(&chain),
            Arc::clone(&metrics),
            config.limits,
        )
        .or(middleware_routes(
            Arc::clone(&selections),
            Arc::clone(&metrics),
            Arc::clone(&store),
            config.limits,
        ))
        .unify()
        .or(pubkey_mapping_routes(
            Arc::new(PubkeyMap::new(&lock, operator)?),
            upstream.clone(),
            MappingConfig::default(),
        )?)
        .unify()
        .or(proxy_filter(ProxyConfig::new(upstream))?)
        .unify();
        let (http_addr, http_server) =
            bind("validator API", routes, config.http_listen, &shutdown).await?;
        info!(%http_addr, %peer_addr, operator, validators = lock.validators.len(), "middleware listening");
        let follower = Follower {
            lock: Arc::clone(&lock),
            beacon,
            store: Arc::clone(&store),
            chain: Arc::clone(&chain),
            exchange,
            selections: Arc::clone(&selections),
            agreement,
            aggregator,
            duties,
            slot_duration,
            slot_source: config.slot_source,
        };
        Ok(Middleware {
            http_addr,
            peer_addr,
            store,
            metrics,
            chain,
            selections,
            shutdown,
            servers: vec![tokio::spawn(peer_server), tokio::spawn(http_server)],
            background: vec![
                tokio::spawn(follower.run()),
                tokio::spawn(publisher.run(combined)),
            ],
        })
    }

    /// Every selection item this node answers its validator client from
    /// now on, per request ([`Selections::watch_answers`]).
    pub fn watch_answers(&self) -> tokio::sync::mpsc::UnboundedReceiver<Vec<AnsweredSelection>> {
        self.selections.watch_answers()
    }

    /// Where the validator API listens.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where the peer API listens.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The partial store.
    pub fn store(&self) -> &Arc<PartialStore> {
        &self.store
    }

    /// The Prometheus exposition `GET /metrics` serves.
    pub fn metrics_text(&self) -> String {
        self.metrics.render(&self.store.stats())
    }

    /// The node's view of the chain, once it has one.
    pub fn chain_view(&self) -> Result<Arc<ChainView>, String> {
        self.chain.view()
    }

    /// Stops both servers (requests in flight finish, idle connections
    /// close) and the background tasks.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        for task in &self.background {
            task.abort();
        }
        for server in self.servers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
    }

    /// Serves until the process is stopped.
    pub async fn run_until_stopped(mut self) {
        let servers: Vec<JoinHandle<()>> = self.servers.drain(..).collect();
        futures_util::future::join_all(servers).await;
    }
}

impl Drop for Middleware {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in self.background.iter().chain(&self.servers) {
            task.abort();
        }
    }
}

/// Binds one server that stops when `shutdown` turns true.
async fn bind<F>(
    server: &'static str,
    routes: F,
    listen: SocketAddr,
    shutdown: &watch::Sender<bool>,
) -> Result<(SocketAddr, crate::api::filters::ServerFuture), MiddlewareError>
where
    F: Filter<Extract = (warp::reply::Response,), Error = warp::Rejection>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let mut stop = shutdown.subscribe();
    let signal = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    bind_server(routes, listen, signal)
        .await
        .map_err(|e| MiddlewareError::Bind {
            server,
            addr: listen,
            reason: e.to_string(),
        })
}

/// The background work of a node: learn the chain, catch up, follow the slots.
struct Follower {
    lock: Arc<ClusterLock>,
    beacon: BeaconNodeClient,
    store: Arc<PartialStore>,
    chain: Arc<ChainState>,
    exchange: Arc<Exchange>,
    selections: Arc<Selections>,
    agreement: Arc<Agreement<AttestationData>>,
    aggregator: Arc<Aggregator>,
    duties: Arc<RwLock<AttesterDuties>>,
    slot_duration: Arc<OnceLock<Duration>>,
    slot_source: SlotSource,
}

impl Follower {
    async fn run(mut self) {
        let view = self.first_view().await;
        let spec = &view.info.spec;
        let slots_per_epoch = spec.preset.SLOTS_PER_EPOCH.max(1);
        let limits = StoreLimits::for_slots_per_epoch(slots_per_epoch);
        self.store.set_limits(limits);
        let slot_duration = Duration::from_secs(spec.seconds_per_slot.max(1));
        let _ = self.slot_duration.set(slot_duration);
        let slot = self.current_slot(&view);
        self.store.set_current_slot(slot);
        self.agreement.set_current_slot(slot);
        // Without it the aggregates agreement knows no instance until the
        // next slot and refuses every peer message of this one.
        self.aggregator.agreement().set_current_slot(slot);
        info!(
            slot,
            validators_known = view.validators.len(),
            validators_in_lock = self.lock.validators.len(),
            timeout_ms = self.selections.timeout(&view).as_millis(),
            "middleware ready"
        );
        self.chain.set(view);
        let epoch = slot / slots_per_epoch;
        self.refresh_duties(epoch).await;
        self.start_agreement(slot);
        let exchange = Arc::clone(&self.exchange);
        let min_slot = slot.saturating_sub(limits.max_slots_behind);
        let catch_up_for =
            slot_duration.saturating_mul(u32::try_from(slots_per_epoch.min(64)).unwrap_or(64));
        let catch_up = async move {
            let answered = exchange.request_catch_up(min_slot, catch_up_for).await;
            info!(min_slot, peers = ?answered, "asked the peers to re-send their recent partials");
        };
        // Both run inside this task, so stopping the node stops the catch-up too.
        tokio::join!(catch_up, self.follow_slots(slot, slots_per_epoch));
    }

    /// Moves the store's window at every slot and refreshes the view at every epoch.
    async fn follow_slots(&mut self, mut slot: Slot, slots_per_epoch: u64) {
        loop {
            slot = self.next_slot(slot).await;
            self.store.set_current_slot(slot);
            self.agreement.set_current_slot(slot);
            self.aggregator.agreement().set_current_slot(slot);
            if slot % slots_per_epoch == 0 {
                self.refresh().await;
                self.refresh_duties(slot / slots_per_epoch).await;
            }
            self.start_agreement(slot);
        }
    }

    /// Fetches the cluster's attester duties of `epoch` and the next (those
    /// already held are kept when a fetch fails) and drops those before the
    /// previous epoch.
    async fn refresh_duties(&self, epoch: Epoch) {
        let Ok(view) = self.chain.view() else {
            return;
        };
        for epoch in [epoch, epoch.saturating_add(1)] {
            match fetch_attester_duties(&self.beacon, &view, epoch).await {
                Ok(duties) => {
                    let mut book = self.duties.write().unwrap_or_else(PoisonError::into_inner);
                    book.set_epoch(epoch, duties);
                }
                Err(error) => warn!(epoch, %error, "could not fetch the cluster's attester duties"),
            }
        }
        let mut book = self.duties.write().unwrap_or_else(PoisonError::into_inner);
        book.prune_before(epoch.saturating_sub(1));
    }

    /// Starts the agreement on `slot`'s attestation data a quarter into the
    /// slot if the cluster attests then, and the agreement on its aggregates
    /// at seven twelfths (just before aggregates are due, at two thirds) if
    /// one of its validators aggregates then; at once with a manual slot
    /// source. A VC asking earlier, or a peer's message, starts them sooner.
    fn start_agreement(&self, slot: Slot) {
        let attests = {
            let book = self.duties.read().unwrap_or_else(PoisonError::into_inner);
            let attests = book.at_slot(slot).next().is_some();
            attests
        };
        if !attests {
            return;
        }
        let agreement = Arc::clone(&self.agreement);
        let delay = self.delay_into(slot, 1, 4);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            agreement.start(slot);
        });
        let aggregator = Arc::clone(&self.aggregator);
        let chain = Arc::clone(&self.chain);
        let prepare_delay = self.delay_into(slot, 1, 2);
        let start_at = tokio::time::Instant::now() + self.delay_into(slot, 7, 12);
        tokio::spawn(async move {
            // The committees' members and keys are loaded at half the
            // slot, after the attestations (whose publishing they would slow
            // on a busy beacon node) and not within the agreement's bounded
            // fetch of this node's aggregates.
            tokio::time::sleep(prepare_delay).await;
            if let Err(reason) = aggregator.context().prepare(slot).await {
                debug!(slot, %reason, "no aggregation committees prepared");
            }
            tokio::time::sleep_until(start_at).await;
            let aggregates = chain
                .view()
                .is_ok_and(|view| !aggregator.context().aggregators(&view, slot).is_empty());
            if aggregates {
                aggregator.agreement().start(slot);
            }
        });
    }

    /// How long until `numerator / denominator` into `slot` (zero with a
    /// manual slot source, or once passed).
    fn delay_into(&self, slot: Slot, numerator: u32, denominator: u32) -> Duration {
        match (&self.slot_source, self.chain.view()) {
            (SlotSource::WallClock, Ok(view)) => view
                .info
                .slot_clock()
                .map(|clock| {
                    clock
                        .slot_fraction(slot, numerator, denominator)
                        .saturating_sub(unix_now())
                })
                .unwrap_or_default(),
            _ => Duration::ZERO,
        }
    }

    /// Fetches the chain view, retrying with backoff until the beacon node answers.
    async fn first_view(&self) -> ChainView {
        let mut delay = Duration::from_millis(250);
        loop {
            match fetch_view(&self.beacon, &self.lock).await {
                Ok(view) => return view,
                Err(error) => {
                    warn!(%error, retry_in_ms = delay.as_millis(), "cannot learn the chain from the beacon node yet");
                    self.chain.set_waiting_for(error.to_string());
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(12));
                }
            }
        }
    }

    /// The head fork and the validators' indices, again; on failure the old
    /// view stays.
    async fn refresh(&self) {
        match fetch_view(&self.beacon, &self.lock).await {
            Ok(view) => self.chain.set(view),
            Err(error) => {
                warn!(%error, "could not refresh the chain view; keeping the previous one")
            }
        }
    }

    fn current_slot(&self, view: &ChainView) -> Slot {
        match &self.slot_source {
            SlotSource::Manual(slot) => *slot.borrow(),
            SlotSource::WallClock => view
                .info
                .slot_clock()
                .ok()
                .and_then(|clock| clock.slot_at(unix_now()))
                .unwrap_or(0),
        }
    }

    /// Waits for the slot after `slot` and returns the slot then current.
    async fn next_slot(&mut self, slot: Slot) -> Slot {
        match &mut self.slot_source {
            SlotSource::Manual(receiver) => {
                if receiver.changed().await.is_err() {
                    // The caller dropped its sender: no slot will come again.
                    std::future::pending::<()>().await;
                }
                *receiver.borrow()
            }
            SlotSource::WallClock => {
                let view = self.chain.view();
                let clock = view.ok().and_then(|view| view.info.slot_clock().ok());
                let Some(clock) = clock else {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return slot;
                };
                let next = slot.saturating_add(1);
                tokio::time::sleep(clock.until_slot(next, unix_now())).await;
                clock.slot_at(unix_now()).unwrap_or(next).max(next)
            }
        }
    }
}

/// Agreement rounds last an eighth of a slot, plus an eighth per round: a
/// round of three message delays on a local network fits many times, and
/// three rounds end before a third of the slot. Until the chain is known,
/// a slot is taken to be 12 s.
fn round_timeout(slot_duration: Arc<OnceLock<Duration>>) -> RoundTimeout {
    Arc::new(move |round| {
        let slot = slot_duration
            .get()
            .copied()
            .unwrap_or(Duration::from_secs(12));
        (linear_round_timeout(slot / 8, slot / 8))(round)
    })
}
