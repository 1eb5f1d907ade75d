//! Harness for interop tests against Lodestar 1.5.1, a real beacon node that
//! nobody on this project wrote (installed by tests/interop/lodestar/install.sh).
//!
//! [`DevChain::start`] runs `lodestar dev` on free loopback ports with interop
//! validators, all started in the node, waits (bounded) until its REST API
//! answers and returns a handle with the REST URL and the chain's genesis.
//! Dropping the handle ends the node's process group.
//!
//! Not installed: outside CI the caller gets `None` and the test passes with
//! "skipped: ..." on stdout; with `CI` set that is a failure.
#![allow(dead_code)]

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long Lodestar may take to answer on REST (about 7 s on a quiet machine).
const REST_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long Lodestar gets to stop on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// The dev chain to run.
#[derive(Debug, Clone)]
pub struct DevChainOptions {
    /// Interop validators in the genesis state; those from
    /// `first_started` on run in the node (with fewer than two thirds
    /// attesting, the chain never justifies and the node stalls).
    pub genesis_validators: u64,
    /// The first validator the node runs; the ones below are left to the
    /// test (e.g. distributed validators run by middlewares).
    pub first_started: u64,
    /// `SECONDS_PER_SLOT` of the chain.
    pub seconds_per_slot: u64,
    /// Further chain parameters, each passed as `--params.NAME VALUE`.
    pub params: Vec<(String, String)>,
}

impl Default for DevChainOptions {
    /// 64 validators, 2-second slots, Altair from genesis (minimal preset).
    fn default() -> Self {
        Self {
            genesis_validators: 64,
            first_started: 0,
            seconds_per_slot: 2,
            params: vec![("ALTAIR_FORK_EPOCH".to_owned(), "0".to_owned())],
        }
    }
}

/// `GET /eth/v1/beacon/genesis` of the running chain.
#[derive(Debug, Clone)]
pub struct Genesis {
    /// Unix time of slot 0.
    pub genesis_time: u64,
    /// `0x`-hex root of the genesis validators.
    pub genesis_validators_root: String,
    /// `0x`-hex fork version at genesis.
    pub genesis_fork_version: String,
}

/// A running `lodestar dev` node; dropping it ends the node.
pub struct DevChain {
    /// Base URL of its REST API, `http://127.0.0.1:PORT`.
    pub rest_url: String,
    /// Address of its REST API.
    pub rest_addr: SocketAddr,
    /// The chain's genesis as the node reports it.
    pub genesis: Genesis,
    /// The options it was started with. Validator `i` (for `i` below
    /// `genesis_validators`) has the interop secret key
    /// `int.from_bytes(sha256(i.to_bytes(32, 'little')), 'little') mod r`.
    pub options: DevChainOptions,
    process: NodeProcess,
    // After `process`, so that it is removed once the node has stopped.
    data_dir: tempfile::TempDir,
}

/// The node's process; dropping it ends the node's process group.
struct NodeProcess {
    child: Child,
    log_path: PathBuf,
}

impl DevChain {
    /// Starts a dev chain, or returns `None` (after printing why) when Lodestar
    /// is not installed and `CI` is not set. Panics when it is not installed
    /// under CI, or does not serve REST within [`REST_READY_TIMEOUT`].
    pub async fn start(options: DevChainOptions) -> Option<DevChain> {
        let binary = lodestar_binary()?;
        let data_dir = tempfile::tempdir().expect("temp dir for the Lodestar data dir");
        let rest_addr = free_loopback_port();
        let p2p_port = free_loopback_port().port();
        let log_path = data_dir.path().join("lodestar.log");
        let log = File::create(&log_path).expect("Lodestar log file");
        let rest_url = format!("http://{rest_addr}");
        let mut command = Command::new(&binary);
        // Lodestar reads every `LODESTAR_*` variable as a command-line option,
        // so this harness's own (`LODESTAR_DIR`, `LODESTAR_BIN`) would make
        // it refuse to start ("Unknown argument: dir").
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("LODESTAR_") {
                command.env_remove(name);
            }
        }
        command
            .args(dev_args(
                &options,
                rest_addr,
                p2p_port,
                &rest_url,
                data_dir.path(),
            ))
            // `dev` writes genesis.ssz into its working directory.
            .current_dir(data_dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("Lodestar log file"))
            .stderr(log)
            // Its own process group, so that drop ends every process it starts.
            .process_group(0);
        kill_with_parent(&mut command);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut process = NodeProcess { child, log_path };
        let genesis = process.wait_for_rest(&rest_url).await;
        Some(DevChain {
            rest_url,
            rest_addr,
            genesis,
            options,
            process,
            data_dir,
        })
    }

    /// `rest_url` + `path_and_query`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.rest_url)
    }

    /// The chain's slot by the wall clock (0 before genesis).
    pub fn current_slot(&self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        now.saturating_sub(self.genesis.genesis_time) / self.options.seconds_per_slot
    }

    /// The last lines of the node's log, for failure messages.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// Whether the node's head has left genesis half a slot into `slot`
    /// (its own validators propose from slot 1). A dev node was once seen
    /// to produce no block at all in its first epoch and then answer every
    /// validator request with 503 "Node is syncing"; such a start is no
    /// test of anything else.
    pub async fn produces_blocks_by(&self, slot: u64) -> bool {
        let seconds = self.options.seconds_per_slot;
        let at = Duration::from_secs(self.genesis.genesis_time + slot * seconds)
            + Duration::from_secs(seconds) / 2;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970");
        tokio::time::sleep(at.saturating_sub(now)).await;
        let node = dv_aggregator::api::BeaconNodeClient::new(&self.rest_url).expect("client");
        node.node_syncing()
            .await
            .is_ok_and(|syncing| syncing.head_slot >= 1)
    }
}

impl NodeProcess {
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Polls `/eth/v1/beacon/genesis` until it answers 200.
    async fn wait_for_rest(&mut self, rest_url: &str) -> Genesis {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        let started = Instant::now();
        let url = format!("{rest_url}/eth/v1/beacon/genesis");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "lodestar exited with {status} before serving REST; log:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(response) = client.get(&url).send().await {
                if response.status().is_success() {
                    let body: Value = response.json().await.expect("genesis JSON");
                    return parse_genesis(&body["data"]);
                }
            }
            assert!(
                started.elapsed() < REST_READY_TIMEOUT,
                "lodestar did not serve {url} within {REST_READY_TIMEOUT:?}; log:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for NodeProcess {
    /// SIGTERM to the node's process group, SIGKILL after [`STOP_GRACE`].
    fn drop(&mut self) {
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        signal_group(pid, libc::SIGTERM);
        let started = Instant::now();
        while started.elapsed() < STOP_GRACE {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                // The leader is gone; anything it left in the group goes too.
                signal_group(pid, libc::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        signal_group(pid, libc::SIGKILL);
        let _ = self.child.wait();
    }
}

fn signal_group(pid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) with a negative pid signals that process group; the
    // group is the child's own (process_group(0)), so nothing else is hit.
    unsafe {
        libc::kill(-pid, signal);
    }
}

/// On Linux the node also dies with the test process, in case the test
/// binary is killed before drop runs.
fn kill_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe, as pre_exec requires.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Arguments of `lodestar dev` (see tests/interop/lodestar/README.md).
fn dev_args(
    options: &DevChainOptions,
    rest_addr: SocketAddr,
    p2p_port: u16,
    rest_url: &str,
    data_dir: &Path,
) -> Vec<String> {
    let last_validator = options.genesis_validators.saturating_sub(1);
    let mut args: Vec<String> = [
        "dev",
        "--genesisValidators",
        &options.genesis_validators.to_string(),
        "--startValidators",
        &format!("{}..{last_validator}", options.first_started),
        "--params.SECONDS_PER_SLOT",
        &options.seconds_per_slot.to_string(),
        "--rest.address",
        &rest_addr.ip().to_string(),
        "--rest.port",
        &rest_addr.port().to_string(),
        "--rest.namespace",
        "*",
        // The in-process validator client would otherwise look for the
        // node on the default port 9596.
        "--server",
        rest_url,
        "--listenAddress",
        "127.0.0.1",
        "--port",
        &p2p_port.to_string(),
        "--discv5",
        "false",
        "--mdns",
        "false",
        "--reset",
        "--dataDir",
        &data_dir.to_string_lossy(),
    ]
    .map(str::to_owned)
    .to_vec();
    for (name, value) in &options.params {
        args.push(format!("--params.{name}"));
        args.push(value.clone());
    }
    args
}

/// `LODESTAR_BIN`, else `node_modules/.bin/lodestar` in `LODESTAR_DIR` or in
/// the install script's default dir. `None` (skip) when missing outside CI.
fn lodestar_binary() -> Option<PathBuf> {
    let binary = match std::env::var_os("LODESTAR_BIN") {
        Some(binary) => PathBuf::from(binary),
        None => std::env::var_os("LODESTAR_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/lodestar-1.5.1"))
            .join("node_modules/.bin/lodestar"),
    };
    if binary.is_file() {
        return Some(binary);
    }
    let in_ci = std::env::var_os("CI").is_some_and(|value| !value.is_empty());
    assert!(
        !in_ci,
        "Lodestar is not installed at {} and CI is set: run tests/interop/lodestar/install.sh \
         before cargo test (.ci/run does)",
        binary.display()
    );
    println!(
        "skipped: Lodestar not installed at {}; run tests/interop/lodestar/install.sh",
        binary.display()
    );
    None
}

/// A loopback address with a port that was free a moment ago.
fn free_loopback_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address")
}

fn parse_genesis(data: &Value) -> Genesis {
    let text = |field: &str| {
        data[field]
            .as_str()
            .unwrap_or_else(|| panic!("genesis {field} missing in {data}"))
            .to_owned()
    };
    Genesis {
        genesis_time: text("genesis_time")
            .parse()
            .expect("genesis_time is a quoted u64"),
        genesis_validators_root: text("genesis_validators_root"),
        genesis_fork_version: text("genesis_fork_version"),
    }
}
