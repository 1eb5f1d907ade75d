//! `dv-aggregator devnet`: a whole distributed-validator network in one
//! process, with no outside service, to show aggregator selection working
//! end to end.
//!
//! It makes a genesis state of interop validators, splits the first few
//! validators' keys into t-of-n distributed validators with `cluster create`
//! (the other validators are inert), and starts the state-backed beacon node
//! ([`chain`]), one middleware per operator and one validator client per
//! operator in `--distributed-mode`. Then it follows the slot clock for the
//! given epochs: at each slot it moves the chain forward (empty slots: see
//! [`chain`]) and drives every validator client through that slot's duties
//! (the same `run_epoch` / `run_slot` steps their own wall-clock loop runs,
//! here in lock step with the chain so that no client asks before the chain
//! reached the slot). Every decision is set against the ground truth of the
//! undivided key ([`truth`]) and reported ([`report`]).

pub mod chain;
pub mod external;
pub mod report;
pub mod truth;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{info, warn};

use self::chain::{ChainError, DevnetChain};
use self::external::ExternalSetup;
use self::report::{table_header, DevnetReport, ReportBuilder};
use self::truth::{ground_truth, TruthError};
use crate::api::filters::Limits;
use crate::cluster::create::write_keystore_with_password;
use crate::cluster::{
    create_cluster, load_node_key, ClusterLock, CreateConfig, CreateError, ValidatorKeys,
};
use crate::crypto::interop::interop_secret_key;
use crate::crypto::keystore::Kdf;
use crate::middleware::selections::AnsweredSelection;
use crate::middleware::{Middleware, MiddlewareConfig, MiddlewareError, RetryPolicy, SlotSource};
use crate::spec::time::{unix_now, SlotClock, SlotClockError};
use crate::spec::{ChainSpec, ConfigError, ForkName, PresetName, Slot};
use crate::vc::{
    load_keystores, Drive, KeysError, SelectionEndpoint, Vc, VcConfig, VcError, VcHandle,
};

/// Time between starting the devnet and its genesis: room to start the
/// beacon node, the middlewares and the validator clients.
pub const GENESIS_DELAY: Duration = Duration::from_secs(3);
/// The same with external validator clients: room to read the printed set-up
/// and start them.
pub const EXTERNAL_GENESIS_DELAY: Duration = Duration::from_secs(20);

/// Everything [`run`] needs; [`Default`] is the command's defaults.
#[derive(Debug, Clone)]
pub struct DevnetConfig {
    /// Validators in the genesis state.
    pub validators: u64,
    /// The first this many validators are distributed validators of the cluster.
    pub distributed_validators: u64,
    /// Operators of the cluster.
    pub operators: u64,
    /// Partials needed; `None` is ceil(2n/3).
    pub threshold: Option<u64>,
    /// Epochs to run.
    pub epochs: u64,
    /// Slot duration.
    pub seconds_per_slot: u64,
    /// The preset.
    pub preset: PresetName,
    /// The fork of the genesis state (active from genesis).
    pub fork: ForkName,
    /// How the validator clients ask for selections.
    pub selection_endpoint: SelectionEndpoint,
    /// Where the cluster's files go; `None` is a fresh directory under the
    /// system's temporary directory, removed at the end.
    pub data_dir: Option<PathBuf>,
    /// Let every validator client follow the slot clock on its own, as a
    /// deployed one does, with the chain advancing a quarter slot ahead of
    /// each slot; otherwise the devnet drives the clients in lock step with
    /// the chain.
    pub clients_follow_clock: bool,
    /// Operators whose middleware and validator client are not started: the
    /// cluster must do every duty without them (at most n - t).
    pub operators_down: Vec<u64>,
    /// Run the chain and the middlewares only, for validator clients started
    /// outside the devnet ([`external`]); epoch 0 is theirs to start in, and
    /// `epochs` epochs from epoch 1 are judged.
    pub external_vcs: bool,
    /// Time from the start to genesis; `None` is [`GENESIS_DELAY`], or
    /// [`EXTERNAL_GENESIS_DELAY`] with external clients.
    pub genesis_delay: Option<Duration>,
}

impl Default for DevnetConfig {
    fn default() -> Self {
        DevnetConfig {
            validators: 2048,
            distributed_validators: 16,
            operators: 4,
            threshold: None,
            epochs: 3,
            seconds_per_slot: 2,
            preset: PresetName::Minimal,
            fork: ForkName::Fulu,
            selection_endpoint: SelectionEndpoint::Selections,
            data_dir: None,
            clients_follow_clock: false,
            operators_down: Vec::new(),
            external_vcs: false,
            genesis_delay: None,
        }
    }
}

/// Why the devnet could not run.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// The configuration does not make a devnet.
    #[error("invalid devnet configuration: {0}")]
    Config(String),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The cluster could not be made.
    #[error(transparent)]
    Cluster(#[from] CreateError),
    /// The chain spec could not be made.
    #[error(transparent)]
    Spec(#[from] ConfigError),
    /// The slot clock could not be made.
    #[error(transparent)]
    Clock(#[from] SlotClockError),
    /// The chain failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The ground truth could not be computed.
    #[error(transparent)]
    Truth(#[from] TruthError),
    /// A middleware could not start.
    #[error("operator {operator}'s middleware: {source}")]
    Middleware {
        /// The operator.
        operator: u64,
        /// Why.
        source: MiddlewareError,
    },
    /// A validator client could not start.
    #[error("operator {operator}'s validator client: {source}")]
    Vc {
        /// The operator.
        operator: u64,
        /// Why.
        source: VcError,
    },
    /// A validator client's keystores could not be loaded.
    #[error("operator {operator}'s keystores: {source}")]
    Keys {
        /// The operator.
        operator: u64,
        /// Why.
        source: KeysError,
    },
}

impl DevnetConfig {
    fn check(&self) -> Result<(), DevnetError> {
        let bad = |reason: String| Err(DevnetError::Config(reason));
        if self.distributed_validators == 0 || self.distributed_validators > self.validators {
            return bad(format!(
                "--distributed-validators {} must be between 1 and --validators {}",
                self.distributed_validators, self.validators
            ));
        }
        if self.epochs == 0 || self.epochs > 1024 {
            return bad(format!(
                "--epochs {} must be between 1 and 1024",
                self.epochs
            ));
        }
        if self.seconds_per_slot == 0 || self.seconds_per_slot > 60 {
            return bad(format!(
                "--seconds-per-slot {} must be between 1 and 60",
                self.seconds_per_slot
            ));
        }
        if self
            .genesis_delay
            .is_some_and(|delay| delay > Duration::from_secs(600))
        {
            return bad("--genesis-delay must be at most 600 seconds".into());
        }
        if self.fork == ForkName::Phase0 {
            return bad("the devnet needs a fork with sync committees (altair or later)".into());
        }
        if let Some(operator) = self
            .operators_down
            .iter()
            .find(|operator| **operator == 0 || **operator > self.operators)
        {
            return bad(format!(
                "--operator-down {operator} is not an operator of 1..={}",
                self.operators
            ));
        }
        let threshold = self
            .threshold
            .unwrap_or_else(|| self.operators.saturating_mul(2).div_ceil(3));
        let running = self
            .operators
            .saturating_sub(self.operators_down.len() as u64);
        if running < threshold {
            return bad(format!(
                "{running} operators running cannot reach the threshold {threshold}"
            ));
        }
        Ok(())
    }

    /// The chain's configuration: the preset, every fork up to `fork` from
    /// genesis, the slot duration.
    pub fn chain_spec(&self) -> Result<ChainSpec, DevnetError> {
        let mut spec =
            ChainSpec::from_preset_name(preset_str(self.preset))?.with_genesis_fork(self.fork);
        spec.config_name = "devnet".into();
        spec.seconds_per_slot = self.seconds_per_slot;
        Ok(spec)
    }
}

fn preset_str(preset: PresetName) -> &'static str {
    match preset {
        PresetName::Mainnet => "mainnet",
        PresetName::Minimal => "minimal",
    }
}

/// Runs the devnet, writing the live table to `table`; returns the report.
pub async fn run(
    config: DevnetConfig,
    table: &mut (dyn Write + Send),
) -> Result<DevnetReport, DevnetError> {
    config.check()?;
    let (data_dir, temporary) = match &config.data_dir {
        Some(dir) => (dir.clone(), false),
        None => (fresh_temp_dir()?, true),
    };
    let result = run_in(&config, &data_dir, table).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    result
}

async fn run_in(
    config: &DevnetConfig,
    data_dir: &Path,
    table: &mut (dyn Write + Send),
) -> Result<DevnetReport, DevnetError> {
    let spec = config.chain_spec()?;
    let lock = make_cluster(config, &spec, data_dir)?;
    let delay = config.genesis_delay.unwrap_or(if config.external_vcs {
        EXTERNAL_GENESIS_DELAY
    } else {
        GENESIS_DELAY
    });
    let genesis_time = unix_now().saturating_add(delay).as_secs();
    let clock = SlotClock::new(genesis_time, spec.seconds_per_slot)?;
    let chain = Arc::new(
        DevnetChain::start(spec.clone(), config.fork, config.validators, genesis_time).await?,
    );
    info!(url = %chain.url(), validators = config.validators, fork = %config.fork, "devnet beacon node started");
    let middlewares =
        start_middlewares(&lock, data_dir, &chain.url(), &config.operators_down).await?;
    let slots_per_epoch = spec.preset.SLOTS_PER_EPOCH.max(1);
    let first_epoch = u64::from(config.external_vcs);
    let (vcs, answers) = if config.external_vcs {
        let answers = middlewares
            .iter()
            .map(|(operator, middleware)| (*operator, Mutex::new(middleware.watch_answers())))
            .collect();
        (Vec::new(), answers)
    } else {
        (
            start_vcs(config, &lock, data_dir, &middlewares).await?,
            Vec::new(),
        )
    };
    write_line(table, &banner(config, &lock, &spec));
    if config.external_vcs {
        let addrs: Vec<(u64, SocketAddr)> = middlewares
            .iter()
            .map(|(operator, middleware)| (*operator, middleware.http_addr()))
            .collect();
        let setup = ExternalSetup::write(&spec, data_dir, &addrs, genesis_time, first_epoch)?;
        for line in setup.describe(data_dir) {
            write_line(table, &line);
        }
    }
    write_line(table, &table_header());
    let run = Run {
        chain: &chain,
        clock,
        vcs: vcs
            .iter()
            .map(|(operator, vc)| (*operator, vc.vc()))
            .collect(),
        answers,
        distributed: (0..config.distributed_validators).collect(),
        first_slot: first_epoch.saturating_mul(slots_per_epoch),
        slots: first_epoch
            .saturating_add(config.epochs)
            .saturating_mul(slots_per_epoch),
        slots_per_epoch,
    };
    let running = config
        .operators
        .saturating_sub(config.operators_down.len() as u64);
    let mut report = ReportBuilder::new(
        running,
        config.external_vcs || config.selection_endpoint == SelectionEndpoint::Selections,
    );
    if config.external_vcs {
        report = report.with_external_clients(spec.preset.clone());
    }
    if config.clients_follow_clock || config.external_vcs {
        run.on_clock(&mut report, table).await?;
    } else {
        run.lock_step(&mut report, table).await?;
    }
    let subscriptions = chain.node().subscriptions().beacon_committee();
    // Clients first, so that no pooled connection is cut by a server's stop.
    drop(run);
    drop(vcs);
    for (_, middleware) in middlewares {
        middleware.stop().await;
    }
    Ok(report.finish(&subscriptions))
}

/// Selection items a middleware answered, as they come.
type AnswerFeed = Mutex<mpsc::UnboundedReceiver<Vec<AnsweredSelection>>>;

/// The running network, as the slot loop needs it.
struct Run<'a> {
    chain: &'a Arc<DevnetChain>,
    clock: SlotClock,
    /// Each running operator's client, by operator index (none with
    /// external clients).
    vcs: Vec<(u64, Arc<Vc>)>,
    /// With external clients: what each running operator's middleware
    /// answered its client, by operator index.
    answers: Vec<(u64, AnswerFeed)>,
    distributed: Vec<u64>,
    /// The first slot judged.
    first_slot: Slot,
    /// The end of the run (exclusive).
    slots: Slot,
    slots_per_epoch: u64,
}

impl Run<'_> {
    /// At each slot: advance the chain, then run every client's steps: the
    /// epoch's and the slot's at its start, the attestations at a third, the
    /// aggregates at two thirds; report the slot near its end.
    async fn lock_step(
        &self,
        report: &mut ReportBuilder,
        table: &mut (dyn Write + Send),
    ) -> Result<(), DevnetError> {
        let vcs = || self.vcs.iter().map(|(_, vc)| vc);
        // Epoch 0's work before genesis (the chain is at slot 0 already), so
        // that slot 0's selections go out at its start like every other slot's.
        let genesis = self.chain.loaded()?;
        report.add_truths(ground_truth(&genesis, 0, &self.distributed)?);
        futures_util::future::join_all(vcs().map(|vc| vc.run_epoch(0))).await;
        for slot in 0..self.slots {
            wait_until(self.clock.slot_start(slot)).await;
            let loaded = self.chain.advance_to(slot).await?;
            if slot > 0 && slot % self.slots_per_epoch == 0 {
                let epoch = slot / self.slots_per_epoch;
                report.add_truths(ground_truth(&loaded, epoch, &self.distributed)?);
                futures_util::future::join_all(vcs().map(|vc| vc.run_epoch(epoch))).await;
            }
            futures_util::future::join_all(vcs().map(|vc| vc.run_slot(slot))).await;
            wait_until(self.clock.slot_fraction(slot, 1, 3)).await;
            futures_util::future::join_all(vcs().map(|vc| vc.run_attestations(slot))).await;
            wait_until(self.clock.slot_fraction(slot, 2, 3)).await;
            futures_util::future::join_all(vcs().map(|vc| vc.run_aggregations(slot))).await;
            wait_until(self.clock.slot_fraction(slot, 11, 12)).await;
            self.collect(report, slot, table);
            if unix_now() > self.clock.slot_start(slot.saturating_add(1)) {
                warn!(slot, "the devnet fell behind the slot clock");
            }
        }
        Ok(())
    }

    /// The chain and the clients follow the clock on their own; at the middle
    /// of each slot the devnet takes the ground truth of a new epoch and
    /// reports the previous slot, whose duties the clients did by then.
    async fn on_clock(
        &self,
        report: &mut ReportBuilder,
        table: &mut (dyn Write + Send),
    ) -> Result<(), DevnetError> {
        let _ticker = self.chain.follow_clock(self.clock);
        for slot in 0..=self.slots {
            wait_until(self.clock.slot_fraction(slot, 1, 2)).await;
            if (self.first_slot..self.slots).contains(&slot) && slot % self.slots_per_epoch == 0 {
                let epoch = slot / self.slots_per_epoch;
                report.add_truths(ground_truth(
                    &*self.chain.loaded()?,
                    epoch,
                    &self.distributed,
                )?);
            }
            if let Some(previous) = slot.checked_sub(1) {
                self.collect(report, previous, table);
            }
        }
        Ok(())
    }

    /// Takes every client's decisions, attestations and aggregates (or what
    /// the middlewares answered external clients) and what the chain
    /// accepted, and prints the judged duties through `slot`.
    fn collect(&self, report: &mut ReportBuilder, slot: Slot, table: &mut (dyn Write + Send)) {
        for (operator, vc) in &self.vcs {
            report.add_decisions(*operator, vc.take_decisions());
            report.add_attestations(*operator, vc.take_attestations());
            report.add_aggregates(*operator, vc.take_aggregates());
        }
        for (operator, feed) in &self.answers {
            let mut feed = feed.lock().unwrap_or_else(PoisonError::into_inner);
            while let Ok(answers) = feed.try_recv() {
                // Before the first judged slot the clients were starting.
                let judged = answers
                    .into_iter()
                    .filter(|answer| answer.slot >= self.first_slot)
                    .collect();
                report.add_answers(*operator, judged);
            }
        }
        let pool = self.chain.node().pool();
        report.add_chain(
            pool.accepted_attestations()
                .into_iter()
                .map(|accepted| (accepted.slot, accepted.validator_index)),
            pool.accepted_aggregates()
                .into_iter()
                .map(|accepted| (accepted.slot, accepted.aggregator_index)),
        );
        for record in report.close_through(slot) {
            write_line(table, &record.table_row());
        }
    }
}

/// A banner line naming what runs.
fn banner(config: &DevnetConfig, lock: &ClusterLock, spec: &ChainSpec) -> String {
    format!(
        "devnet: {} validators ({} distributed, {}-of-{}), {} preset, {} from genesis, {} epochs of {} slots of {} s; the chain has no blocks (empty slots)",
        config.validators,
        config.distributed_validators,
        lock.threshold,
        config.operators,
        preset_str(config.preset),
        config.fork,
        config.epochs,
        spec.preset.SLOTS_PER_EPOCH,
        spec.seconds_per_slot
    )
}

fn write_line(table: &mut (dyn Write + Send), line: &str) {
    // A closed pipe (`| head`) must not stop the devnet.
    let _ = writeln!(table, "{line}");
}

/// Sleeps until `moment` (time since the Unix epoch).
async fn wait_until(moment: Duration) {
    tokio::time::sleep(moment.saturating_sub(unix_now())).await;
}

/// A new empty directory under the system's temporary directory.
fn fresh_temp_dir() -> Result<PathBuf, DevnetError> {
    let name = format!(
        "dv-aggregator-devnet-{}-{}",
        std::process::id(),
        unix_now().as_nanos()
    );
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&dir).map_err(|source| DevnetError::Io {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// Writes the distributed validators' interop keystores, splits them with
/// `cluster create` (throwaway keys: the fast kdf) and gives every operator a
/// free loopback peer port.
fn make_cluster(
    config: &DevnetConfig,
    spec: &ChainSpec,
    data_dir: &Path,
) -> Result<ClusterLock, DevnetError> {
    let keys_dir = data_dir.join("validator_keys");
    std::fs::create_dir_all(&keys_dir).map_err(|source| DevnetError::Io {
        path: keys_dir.clone(),
        source,
    })?;
    for index in 0..config.distributed_validators {
        let path = keys_dir.join(format!("keystore-{index}.json"));
        write_keystore_with_password(&interop_secret_key(index), &path, None, Kdf::INSECURE_FAST)?;
    }
    let created = create_cluster(&CreateConfig {
        name: "devnet".into(),
        operators: config.operators,
        threshold: config.threshold,
        validator_keys: ValidatorKeys::SplitExisting(keys_dir),
        out_dir: data_dir.join("cluster"),
        peer_host: "127.0.0.1".into(),
        peer_base_port: 9100,
        network: preset_str(config.preset).into(),
        fork_version: spec.genesis_fork_version(),
        kdf: Kdf::INSECURE_FAST,
    })?;
    let mut lock = created.lock;
    for operator in &mut lock.operators {
        operator.peer_address = Some(format!("127.0.0.1:{}", free_port(data_dir)?));
    }
    lock.save(&created.lock_path).map_err(CreateError::from)?;
    Ok(lock)
}

/// A loopback port free at the moment (the lock names the peer ports before
/// the middlewares bind them).
fn free_port(data_dir: &Path) -> Result<u16, DevnetError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|source| DevnetError::Io {
            path: data_dir.to_owned(),
            source,
        })
}

fn operator_dir(data_dir: &Path, operator: u64) -> PathBuf {
    data_dir
        .join("cluster")
        .join(format!("operator-{operator}"))
}

/// One middleware per operator not `down`, by operator index.
async fn start_middlewares(
    lock: &ClusterLock,
    data_dir: &Path,
    beacon_node: &str,
    down: &[u64],
) -> Result<Vec<(u64, Middleware)>, DevnetError> {
    let mut middlewares = Vec::new();
    for operator in lock.operators.iter().filter(|o| !down.contains(&o.index)) {
        let index = operator.index;
        let fail = |source: MiddlewareError| DevnetError::Middleware {
            operator: index,
            source,
        };
        let node_key = load_node_key(&operator_dir(data_dir, index).join("node-key"))?;
        let peer_listen: SocketAddr = operator
            .peer_address
            .as_deref()
            .and_then(|address| address.parse().ok())
            .ok_or_else(|| {
                DevnetError::Config(format!("operator {index} has no loopback peer address"))
            })?;
        let middleware = Middleware::start(MiddlewareConfig {
            lock: lock.clone(),
            operator_index: index,
            node_key,
            beacon_node: beacon_node.to_string(),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            peer_listen,
            selection_timeout: None,
            peer_retry: RetryPolicy::default(),
            slot_source: SlotSource::WallClock,
            limits: Limits::default(),
        })
        .await
        .map_err(fail)?;
        middlewares.push((index, middleware));
    }
    for (_, middleware) in &middlewares {
        while middleware.chain_view().is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(middlewares)
}

/// One distributed-mode validator client per running middleware, each with
/// its slashing-protection database in the operator's directory.
async fn start_vcs(
    config: &DevnetConfig,
    lock: &ClusterLock,
    data_dir: &Path,
    middlewares: &[(u64, Middleware)],
) -> Result<Vec<(u64, VcHandle)>, DevnetError> {
    let mut vcs = Vec::new();
    for (operator, middleware) in middlewares {
        let operator = *operator;
        let keys_dir = operator_dir(data_dir, operator).join("validator_keys");
        let keys = load_keystores(&keys_dir, None)
            .map_err(|source| DevnetError::Keys { operator, source })?;
        let vc = VcConfig::new(format!("http://{}", middleware.http_addr()), keys)
            .with_name(format!("operator-{operator}"))
            .with_data_dir(operator_dir(data_dir, operator).join("vc-data"))
            .distributed(config.selection_endpoint, lock.clone())
            .with_drive(if config.clients_follow_clock {
                Drive::WallClock
            } else {
                Drive::Manual
            });
        vcs.push((
            operator,
            Vc::start(vc)
                .await
                .map_err(|source| DevnetError::Vc { operator, source })?,
        ));
    }
    Ok(vcs)
}
