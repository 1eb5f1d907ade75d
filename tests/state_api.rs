//! The read-only Beacon API of `beacon::state_api` over real HTTP: a warp
//! server on 127.0.0.1:0 over a `StateBackend` loaded with an oracle state
//! (one mainnet, one minimal folder), driven through `api::client`. Every
//! answer is checked against the oracle's vectors (committees, attestation
//! cases, sync committee, validator groups, fork, genesis) or against the
//! state file itself (SSZ bytes, block roots).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use common::{hex_bytes, oracle_state_bytes, oracle_vectors, u64_of};
use dv_aggregator::api::client::{BeaconNodeClient, ClientError};
use dv_aggregator::api::types::{
    AttesterDuty, CommitteeData, StateId, ValidatorData, ValidatorId, ValidatorStatus,
};
use dv_aggregator::beacon::backend::{LoadedState, StateBackend};
use dv_aggregator::beacon::state_api::{state_api_routes, NODE_VERSION};
use dv_aggregator::spec::{ChainSpec, Root, FAR_FUTURE_EPOCH};
use dv_aggregator::state::decode_state;
use serde_json::Value;

const MAINNET_FOLDER: &str = "fulu-mainnet-1024";
const MINIMAL_FOLDER: &str = "altair-minimal-2048";

/// Where `block_roots` starts in a state's SSZ (every field before it is fixed-size).
const BLOCK_ROOTS_SSZ_OFFSET: usize = 176;

/// Serves the state API of `backend` on 127.0.0.1:0.
async fn serve(backend: Arc<StateBackend>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(
        warp::serve(state_api_routes(backend))
            .incoming(listener)
            .run(),
    );
    addr
}

/// A raw request for what the typed client does not offer: status and JSON body.
async fn raw_json(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("http://{addr}{path}");
    let http = reqwest::Client::new();
    let request = match method {
        "GET" => http.get(&url),
        _ => http.post(&url),
    };
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

fn assert_status(result: Result<impl std::fmt::Debug, ClientError>, status: u16, needle: &str) {
    let error = result.expect_err("an error status");
    assert_eq!(error.status(), Some(status), "{error}");
    assert!(
        error.to_string().contains(needle),
        "{needle:?} not in {error}"
    );
}

/// One server over one oracle folder, tested in chained steps.
struct Tester {
    folder: &'static str,
    vectors: Value,
    state_bytes: Vec<u8>,
    spec: ChainSpec,
    addr: SocketAddr,
    client: BeaconNodeClient,
}

impl Tester {
    async fn new(folder: &'static str) -> Tester {
        let vectors = oracle_vectors(folder);
        let state_bytes = oracle_state_bytes(folder);
        let spec = ChainSpec::from_preset_name(vectors["preset"].as_str().unwrap()).unwrap();
        let state = decode_state(&state_bytes, &spec, None).unwrap();
        let backend = Arc::new(StateBackend::new(Arc::new(spec.clone()), "test"));
        backend.set_state(LoadedState::new(state).unwrap());
        let addr = serve(backend).await;
        let client = BeaconNodeClient::new(&format!("http://{addr}")).unwrap();
        Tester {
            folder,
            vectors,
            state_bytes,
            spec,
            addr,
            client,
        }
    }

    fn state(&self) -> &Value {
        &self.vectors["state"]
    }

    fn state_epoch(&self) -> u64 {
        u64_of(&self.state()["epoch"])
    }

    fn validator_count(&self) -> u64 {
        u64_of(&self.state()["validator_count"])
    }

    async fn test_node_and_genesis(self) -> Self {
        assert_eq!(self.client.node_version().await.unwrap(), NODE_VERSION);
        let syncing = self.client.node_syncing().await.unwrap();
        assert_eq!(syncing.head_slot, u64_of(&self.state()["slot"]));
        assert!(!syncing.is_syncing);
        assert_eq!(syncing.sync_distance, 0);
        let genesis = self.client.genesis().await.unwrap();
        assert_eq!(genesis.genesis_time, u64_of(&self.state()["genesis_time"]));
        assert_eq!(
            genesis.genesis_validators_root,
            Root::from(hex_bytes::<32>(&self.state()["genesis_validators_root"]))
        );
        assert_eq!(
            genesis.genesis_fork_version,
            hex_bytes::<4>(&self.vectors["constants"]["GENESIS_FORK_VERSION"])
        );
        self
    }

    async fn test_config_spec_round_trip(self) -> Self {
        let map = self.client.config_spec().await.unwrap();
        let body = serde_json::json!({ "data": map }).to_string();
        assert_eq!(ChainSpec::from_config_spec_json(&body).unwrap(), self.spec);
        for (key, value) in self.vectors["constants"].as_object().unwrap() {
            // The vectors' constants the map carries must agree with them.
            if let Some(served) = map.get(key) {
                let expected = match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                assert_eq!(served.as_str(), Some(expected.as_str()), "{key}");
            }
        }
        for key in ["SLOTS_PER_EPOCH", "DOMAIN_SELECTION_PROOF", "PRESET_BASE"] {
            assert!(map.contains_key(key), "{key} missing");
        }
        self
    }

    async fn test_fork_by_every_state_id(self) -> Self {
        let fork = &self.state()["fork"];
        let root = Root::from(hex_bytes::<32>(&self.state()["hash_tree_root"]));
        for state_id in [
            StateId::Head,
            StateId::Slot(u64_of(&self.state()["slot"])),
            StateId::Root(root),
        ] {
            let served = self.client.state_fork(state_id).await.unwrap();
            assert_eq!(
                served.previous_version,
                hex_bytes::<4>(&fork["previous_version"])
            );
            assert_eq!(
                served.current_version,
                hex_bytes::<4>(&fork["current_version"])
            );
            assert_eq!(served.epoch, u64_of(&fork["epoch"]));
        }
        self
    }

    async fn test_committees_of_three_epochs(self) -> Self {
        for epoch in self.vectors["epochs"].as_array().unwrap() {
            let e = u64_of(&epoch["epoch"]);
            let served = self
                .client
                .state_committees(StateId::Head, Some(e))
                .await
                .unwrap();
            let expected: Vec<CommitteeData> = epoch["committees"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| CommitteeData {
                    index: u64_of(&c["committee_index"]),
                    slot: u64_of(&c["slot"]),
                    validators: c["members"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(u64_of)
                        .collect(),
                })
                .collect();
            assert_eq!(served, expected, "{} epoch {e}", self.folder);

            // The slot and index filters select from the same list.
            let one = &expected[expected.len() / 2];
            let (status, body) = raw_json(
                self.addr,
                "GET",
                &format!(
                    "/eth/v1/beacon/states/head/committees?epoch={e}&slot={}&index={}",
                    one.slot, one.index
                ),
                None,
            )
            .await;
            assert_eq!(status, 200, "{body}");
            let filtered: Vec<CommitteeData> =
                serde_json::from_value(body["data"].clone()).unwrap();
            assert_eq!(filtered, vec![one.clone()]);
        }
        // Without an epoch: the state's own.
        let current = self
            .client
            .state_committees(StateId::Head, None)
            .await
            .unwrap();
        assert!(current
            .iter()
            .all(|c| c.slot / self.spec.preset.SLOTS_PER_EPOCH == self.state_epoch()));
        self
    }

    async fn test_attester_duties_of_every_case(self) -> Self {
        let mut by_epoch: HashMap<u64, Vec<&Value>> = HashMap::new();
        for case in self.vectors["attestation_cases"].as_array().unwrap() {
            by_epoch
                .entry(u64_of(&case["epoch"]))
                .or_default()
                .push(case);
        }
        assert_eq!(by_epoch.len(), 3);
        for (epoch, cases) in by_epoch {
            let indices: Vec<u64> = cases
                .iter()
                .map(|c| u64_of(&c["validator_index"]))
                .collect();
            let reply = self.client.attester_duties(epoch, &indices).await.unwrap();
            let served: HashMap<u64, &AttesterDuty> =
                reply.data.iter().map(|d| (d.validator_index, d)).collect();
            for case in cases {
                let duty = served[&u64_of(&case["validator_index"])];
                assert_eq!(duty.slot, u64_of(&case["slot"]));
                assert_eq!(duty.committee_index, u64_of(&case["committee_index"]));
                assert_eq!(duty.committee_length, u64_of(&case["committee_length"]));
                assert_eq!(duty.committees_at_slot, u64_of(&case["committees_at_slot"]));
                assert_eq!(
                    duty.validator_committee_index,
                    u64_of(&case["position_in_committee"])
                );
                assert_eq!(duty.pubkey.0, hex_bytes::<48>(&case["validator_pubkey"]));
            }
            // dependent_root: the state file's block root at the last slot of epoch - 2.
            let slots_per_epoch = self.spec.preset.SLOTS_PER_EPOCH;
            let decision_slot = (epoch - 1) * slots_per_epoch - 1;
            let at = BLOCK_ROOTS_SSZ_OFFSET
                + 32 * (decision_slot % self.spec.preset.SLOTS_PER_HISTORICAL_ROOT) as usize;
            assert_eq!(
                reply.dependent_root,
                Some(Root::from_slice(&self.state_bytes[at..at + 32])),
                "{} epoch {epoch}",
                self.folder
            );
        }
        self
    }

    async fn test_sync_duties(self) -> Self {
        let committee: Vec<u64> = self.vectors["sync_committee"]
            ["current_sync_committee_validator_indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(u64_of)
            .collect();
        let mut expected: HashMap<u64, Vec<u64>> = HashMap::new();
        for (position, member) in (0u64..).zip(&committee) {
            expected.entry(*member).or_default().push(position);
        }
        let everyone: Vec<u64> = (0..self.validator_count()).collect();
        let next_period_epoch = self.spec.preset.EPOCHS_PER_SYNC_COMMITTEE_PERIOD
            * (u64_of(&self.vectors["sync_committee"]["period"]) + 1);
        // The oracle's next sync committee equals its current one.
        for epoch in [self.state_epoch(), next_period_epoch] {
            let reply = self.client.sync_duties(epoch, &everyone).await.unwrap();
            let served: HashMap<u64, Vec<u64>> = reply
                .data
                .into_iter()
                .map(|d| (d.validator_index, d.validator_sync_committee_indices))
                .collect();
            assert_eq!(served, expected, "{} epoch {epoch}", self.folder);
        }
        assert_status(
            self.client
                .sync_duties(
                    next_period_epoch + self.spec.preset.EPOCHS_PER_SYNC_COMMITTEE_PERIOD,
                    &[0],
                )
                .await,
            400,
            "epoch",
        );
        self
    }

    /// The Beacon API status every group of the oracle has at the state's
    /// epoch E (groups are defined by their epochs relative to E).
    fn expected_status(&self, index: u64, data: &ValidatorData) -> ValidatorStatus {
        let groups = self.state()["validator_groups"].as_object().unwrap();
        let group = groups
            .iter()
            .find(|(_, members)| {
                members
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| u64_of(m) == index)
            })
            .map(|(name, _)| name.as_str());
        let epoch = self.state_epoch();
        let exited = || {
            if data.validator.withdrawable_epoch <= epoch {
                ValidatorStatus::WithdrawalPossible
            } else {
                ValidatorStatus::ExitedUnslashed
            }
        };
        match group {
            Some("pending_activation_next_epoch") => ValidatorStatus::PendingQueued,
            Some("exiting_next_epoch") => ValidatorStatus::ActiveExiting,
            Some("slashed_but_active") => ValidatorStatus::ActiveSlashed,
            Some("never_activated") => {
                if data.validator.activation_eligibility_epoch == FAR_FUTURE_EPOCH {
                    ValidatorStatus::PendingInitialized
                } else {
                    ValidatorStatus::PendingQueued
                }
            }
            Some("exited_before_previous_epoch" | "exited_at_current_epoch") => exited(),
            _ => ValidatorStatus::ActiveOngoing,
        }
    }

    async fn test_validators_by_index_and_pubkey(self) -> Self {
        let all = self
            .client
            .state_validators(StateId::Head, &[])
            .await
            .unwrap();
        assert_eq!(all.len() as u64, self.validator_count());
        let half_eth = 500_000_000;
        for (index, data) in (0u64..).zip(&all) {
            assert_eq!(data.index, index);
            assert_eq!(
                data.status,
                self.expected_status(index, data),
                "validator {index}"
            );
            // The oracle's balances are the effective balance plus under 0.5 ETH.
            let excess = data.balance - data.validator.effective_balance;
            assert!(
                excess < half_eth,
                "validator {index} balance {}",
                data.balance
            );
        }
        // By pubkey (from the attestation cases) and by index, mixed; unknown ids are left out.
        let cases = self.vectors["attestation_cases"].as_array().unwrap();
        let mut ids = Vec::new();
        let mut expected = Vec::new();
        for case in cases.iter().take(5) {
            ids.push(ValidatorId::PublicKey(
                dv_aggregator::api::types::PublicKeyBytes(hex_bytes::<48>(
                    &case["validator_pubkey"],
                )),
            ));
            expected.push(u64_of(&case["validator_index"]));
        }
        ids.push(ValidatorId::Index(3));
        expected.push(3);
        ids.push(ValidatorId::Index(self.validator_count() + 10));
        let served = self
            .client
            .state_validators(StateId::Head, &ids)
            .await
            .unwrap();
        let served_indices: Vec<u64> = served.iter().map(|d| d.index).collect();
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<u64> = expected.into_iter().filter(|i| seen.insert(*i)).collect();
        assert_eq!(served_indices, unique);
        for data in &served {
            assert_eq!(data, &all[data.index as usize]);
        }
        self
    }

    async fn test_validator_status_filter_get_and_post(self) -> Self {
        let groups = &self.state()["validator_groups"];
        let mut exiting: Vec<u64> = groups["exiting_next_epoch"]
            .as_array()
            .unwrap()
            .iter()
            .map(u64_of)
            .collect();
        exiting.sort_unstable();
        let (status, body) = raw_json(
            self.addr,
            "GET",
            "/eth/v1/beacon/states/head/validators?status=active_exiting",
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let served: Vec<ValidatorData> = serde_json::from_value(body["data"].clone()).unwrap();
        assert_eq!(served.iter().map(|d| d.index).collect::<Vec<_>>(), exiting);

        let pending = u64_of(&groups["pending_activation_next_epoch"][0]);
        let (status, body) = raw_json(
            self.addr,
            "POST",
            "/eth/v1/beacon/states/head/validators",
            Some(serde_json::json!({
                "ids": [pending.to_string(), exiting[0].to_string(), "0"],
                "statuses": ["pending", "active_exiting"],
            })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let served: Vec<ValidatorData> = serde_json::from_value(body["data"].clone()).unwrap();
        assert_eq!(
            served
                .iter()
                .map(|d| (d.index, d.status))
                .collect::<Vec<_>>(),
            vec![
                (pending, ValidatorStatus::PendingQueued),
                (exiting[0], ValidatorStatus::ActiveExiting)
            ]
        );
        self
    }

    async fn test_debug_state_ssz(self) -> Self {
        let ssz = self.client.debug_state_ssz(StateId::Head).await.unwrap();
        assert!(
            ssz.bytes.as_ref() == self.state_bytes.as_slice(),
            "SSZ differs from the file"
        );
        assert_eq!(
            ssz.consensus_version.as_deref(),
            Some(self.vectors["fork"].as_str().unwrap())
        );
        let (status, body) =
            raw_json(self.addr, "GET", "/eth/v2/debug/beacon/states/head", None).await;
        assert_eq!(status, 406, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("SSZ only"),
            "{body}"
        );
        self
    }

    async fn test_errors(self) -> Self {
        let slot = u64_of(&self.state()["slot"]);
        for state_id in [
            StateId::Genesis,
            StateId::Finalized,
            StateId::Justified,
            StateId::Slot(slot + 1),
            StateId::Root(Root::repeat_byte(7)),
        ] {
            assert_status(
                self.client.state_fork(state_id).await,
                404,
                &format!(
                    "state not found: {state_id}; this node serves one state: head, slot {slot}"
                ),
            );
        }
        let (status, body) =
            raw_json(self.addr, "GET", "/eth/v1/beacon/states/latest/fork", None).await;
        assert_eq!((status, body["code"].as_u64()), (400, Some(400)), "{body}");

        let epoch = self.state_epoch();
        for bad_epoch in [epoch - 2, epoch + 2] {
            assert_status(
                self.client.attester_duties(bad_epoch, &[0]).await,
                400,
                &format!("invalid epoch \"{bad_epoch}\""),
            );
            assert_status(
                self.client
                    .state_committees(StateId::Head, Some(bad_epoch))
                    .await,
                400,
                &format!("invalid epoch \"{bad_epoch}\""),
            );
        }
        let unknown = self.validator_count();
        assert_status(
            self.client.attester_duties(epoch, &[1, unknown]).await,
            400,
            &format!("unknown validator index {unknown}"),
        );
        assert_status(
            self.client.sync_duties(epoch, &[unknown]).await,
            400,
            &format!("unknown validator index {unknown}"),
        );
        let (status, body) = raw_json(
            self.addr,
            "GET",
            &format!("/eth/v1/beacon/states/head/committees?epoch={epoch}&index=999"),
            None,
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(body["message"].as_str().unwrap().contains("999"), "{body}");
        // A body over 1 MiB is refused, and the server keeps serving.
        let (status, _) = raw_json(
            self.addr,
            "POST",
            &format!("/eth/v1/validator/duties/attester/{epoch}"),
            Some(Value::Array(vec![Value::String("1".into()); 300_000])),
        )
        .await;
        assert_eq!(status, 413);
        assert!(self.client.attester_duties(epoch, &[1]).await.is_ok());
        let ssz_body = reqwest::Client::new()
            .post(format!(
                "http://{}/eth/v1/validator/duties/sync/{epoch}",
                self.addr
            ))
            .header("content-type", "application/octet-stream")
            .body(vec![0u8; 8])
            .send()
            .await
            .unwrap();
        assert_eq!(ssz_body.status().as_u16(), 415);
        self
    }
}

async fn run_all(folder: &'static str) {
    Tester::new(folder)
        .await
        .test_node_and_genesis()
        .await
        .test_config_spec_round_trip()
        .await
        .test_fork_by_every_state_id()
        .await
        .test_committees_of_three_epochs()
        .await
        .test_attester_duties_of_every_case()
        .await
        .test_sync_duties()
        .await
        .test_validators_by_index_and_pubkey()
        .await
        .test_validator_status_filter_get_and_post()
        .await
        .test_debug_state_ssz()
        .await
        .test_errors()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mainnet_state_served_as_the_vectors_say() {
    run_all(MAINNET_FOLDER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimal_state_served_as_the_vectors_say() {
    run_all(MINIMAL_FOLDER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_state_loaded_gives_503_with_the_reason() {
    let spec = Arc::new(ChainSpec::minimal());
    let backend = Arc::new(StateBackend::new(spec, "the state file is still loading"));
    let addr = serve(backend).await;
    let client = BeaconNodeClient::new(&format!("http://{addr}")).unwrap();
    let reason = "no beacon state loaded yet: the state file is still loading";
    assert_status(client.node_syncing().await, 503, reason);
    assert_status(client.state_fork(StateId::Head).await, 503, reason);
    assert_status(client.attester_duties(0, &[0]).await, 503, reason);
    assert_status(client.debug_state_ssz(StateId::Head).await, 503, reason);
    // What does not depend on the state is served anyway.
    assert_eq!(client.node_version().await.unwrap(), NODE_VERSION);
    let map = client.config_spec().await.unwrap();
    let body = serde_json::json!({ "data": map }).to_string();
    assert_eq!(
        ChainSpec::from_config_spec_json(&body).unwrap(),
        ChainSpec::minimal()
    );
}
