//! Shared by the integration tests: the copied vector folders and hex helpers.
#![allow(dead_code)]

use std::path::PathBuf;

/// Every oracle folder in tests/fixtures/oracle.
pub const ORACLE_FOLDERS: [&str; 8] = [
    "phase0-minimal-2048",
    "altair-minimal-2048",
    "altair-mainnet-1000",
    "capella-mainnet-1000",
    "deneb-minimal-2048",
    "electra-mainnet-1000",
    "fulu-minimal-2048",
    "fulu-mainnet-1024",
];

/// `tests/fixtures/<relative>`.
pub fn fixture(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}

/// The parsed `vectors.json` of an oracle folder.
pub fn oracle_vectors(folder: &str) -> serde_json::Value {
    let path = fixture(&format!("oracle/{folder}/vectors.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The raw SSZ `state.ssz` of an oracle folder.
pub fn oracle_state_bytes(folder: &str) -> Vec<u8> {
    let path = fixture(&format!("oracle/{folder}/state.ssz"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// Decodes `0x`-hex into exactly `N` bytes.
pub fn hex_bytes<const N: usize>(value: &serde_json::Value) -> [u8; N] {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    let bytes = hex::decode(text.trim_start_matches("0x")).expect("hex");
    bytes
        .try_into()
        .unwrap_or_else(|_| panic!("{text} is not {N} bytes"))
}

/// A JSON number as u64.
pub fn u64_of(value: &serde_json::Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a u64: {value}"))
}

/// `0x` + lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// A port that was free a moment ago (a lock must name peer ports before
/// the nodes bind them).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `dv-aggregator` process, killed when the test ends however it ends.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `dv-aggregator <subcommand> <args>` and reads its log until a line
/// holds `field=`; returns the process and that field's value (e.g. the
/// address it listens on).
pub fn start_binary(subcommand: &str, args: &[&str], field: &str) -> (Running, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_dv-aggregator"))
        .arg(subcommand)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start dv-aggregator {subcommand}: {e}"));
    let stderr = child.stderr.take().unwrap();
    let running = Running(child);
    let (sender, receiver) = std::sync::mpsc::channel();
    let marker = format!("{field}=");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(value) = line.split(&marker).nth(1) {
                let _ = sender.send(value.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let value = receiver
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("dv-aggregator {subcommand} never logged {field}="));
    (running, value)
}

/// `secrets` split `threshold`-of-`operators` into a cluster in memory, as
/// `cluster create` makes it.
pub fn split_keys(
    secrets: &[dv_aggregator::crypto::SecretKey],
    threshold: u64,
    operators: u64,
) -> dv_aggregator::cluster::SplitCluster {
    use dv_aggregator::cluster::{split_cluster, CreateConfig};
    split_cluster(
        &CreateConfig::in_memory(operators, Some(threshold)),
        secrets,
    )
    .expect("a valid cluster")
}

/// The interop keys of `indices` split `threshold`-of-`operators`; returns
/// the cluster and each validator's shares by validator index.
pub fn split_interop_keys(
    indices: &[u64],
    threshold: u64,
    operators: u64,
) -> (
    dv_aggregator::cluster::SplitCluster,
    std::collections::BTreeMap<
        u64,
        std::collections::BTreeMap<u64, dv_aggregator::crypto::SecretKey>,
    >,
) {
    let secrets: Vec<_> = indices
        .iter()
        .map(|&index| dv_aggregator::crypto::interop::interop_secret_key(index))
        .collect();
    let cluster = split_keys(&secrets, threshold, operators);
    let shares = indices
        .iter()
        .copied()
        .zip(cluster.shares.iter().cloned())
        .collect();
    (cluster, shares)
}

/// The project's state-backed beacon node serving an oracle folder's state
/// on 127.0.0.1 (the minimal or mainnet configuration, as the folder's name says).
pub async fn oracle_beacon_node(folder: &str) -> dv_aggregator::beacon::sidecar::Sidecar {
    use dv_aggregator::beacon::sidecar::{Sidecar, SidecarConfig, SidecarSource};
    let spec = if folder.contains("minimal") {
        dv_aggregator::spec::ChainSpec::minimal()
    } else {
        dv_aggregator::spec::ChainSpec::mainnet()
    };
    Sidecar::start(SidecarConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        source: SidecarSource::StateFile {
            path: fixture(&format!("oracle/{folder}/state.ssz")),
            fork: None,
        },
        spec,
        limits: dv_aggregator::api::filters::Limits::default(),
    })
    .await
    .expect("the state-backed beacon node starts")
}

/// A tracing writer that keeps what is logged.
#[derive(Clone, Default)]
pub struct CapturedLogs(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The services' warnings (or `RUST_LOG`'s level), printed with a failing
/// test's output: the subscriber writes through the test harness's capture,
/// which the runtime's threads inherit. Installed once per test binary.
pub fn log_warnings() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}
