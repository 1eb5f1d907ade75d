//! `dv-aggregator middleware` run as a process, on a cluster made by
//! `dv-aggregator cluster create`, in front of the project's state-backed
//! beacon node: it listens on loopback, proxies the Beacon API, serves
//! `/metrics`, and refuses bad arguments with one line.

mod common;

use std::path::Path;
use std::process::Command;

use common::{oracle_beacon_node, start_binary};

/// `cluster create` of 4 operators and one validator in `dir/cluster`.
fn create_cluster(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("cluster");
    let created = Command::new(env!("CARGO_BIN_EXE_dv-aggregator"))
        .args(["cluster", "create", "--operators", "4", "--validators", "1"])
        .args(["--network", "minimal", "--insecure-fast-kdf", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    out
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_listens_on_loopback_proxies_and_serves_metrics() {
    let beacon = oracle_beacon_node("deneb-minimal-2048").await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = create_cluster(dir.path());
    let beacon_url = format!("http://{}", beacon.addr());
    let (_node, addr) = start_binary(
        "middleware",
        &[
            "--lock",
            path(&cluster.join("cluster-lock.json")),
            "--operator-index",
            "2",
            "--node-key",
            path(&cluster.join("operator-2/node-key")),
            "--beacon-node",
            &beacon_url,
            "--http-port",
            "0",
            "--peer-port",
            "0",
        ],
        "http_addr",
    );
    assert!(
        addr.starts_with("127.0.0.1:"),
        "binds loopback by default: {addr}"
    );
    let http = reqwest::Client::new();
    let version: serde_json::Value = http
        .get(format!("http://{addr}/eth/v1/node/version"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        version["data"]["version"]
            .as_str()
            .unwrap()
            .starts_with("dv-aggregator/"),
        "proxied to the beacon node: {version}"
    );
    let metrics = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("# TYPE dv_partials_received_total counter"),
        "{text}"
    );
}

#[test]
fn bad_arguments_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = create_cluster(dir.path());
    let lock = cluster.join("cluster-lock.json");
    let run = |operator: &str, key: &Path, lock: &Path| {
        Command::new(env!("CARGO_BIN_EXE_dv-aggregator"))
            .args([
                "middleware",
                "--operator-index",
                operator,
                "--http-port",
                "0",
            ])
            .args(["--beacon-node", "http://127.0.0.1:1", "--lock"])
            .arg(lock)
            .arg("--node-key")
            .arg(key)
            .output()
            .unwrap()
    };
    let cases = [
        (
            run("5", &cluster.join("operator-1/node-key"), &lock),
            "operator 5 is not in the cluster lock",
        ),
        (
            run("1", &cluster.join("operator-2/node-key"), &lock),
            "the node key does not match the lock's node key of operator 1",
        ),
        (
            run(
                "1",
                &cluster.join("operator-1/node-key"),
                &dir.path().join("missing.json"),
            ),
            "loading the cluster lock",
        ),
    ];
    for (output, expected) in cases {
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(errors[0].contains(expected), "{stderr}");
    }
}
