//! The read-only Beacon API of `beacon::state_api` over real HTTP: a warp
//! server on 127.0.0.1:0 over a `StateBackend` loaded with an oracle state
//! (one mainnet, one minimal folder), driven through `api::client`. Every
//! answer is checked against the oracle's vectors (committees, attestation
//! cases, sync committee, validator groups, fork, genesis, fulu's proposer
//! lookahead) or against the state file itself (SSZ bytes, block roots).
//! Proposer duties are also checked on interop genesis states of an empty
//! chain (fulu against its lookahead, electra against a per-slot draw), and
//! the 501 routes through a whole state-backed sidecar.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use common::{hex_bytes, oracle_state_bytes, oracle_vectors, u64_of};
use dv_aggregator::api::client::{BeaconNodeClient, ClientError};
use dv_aggregator::api::filters::Limits;
use dv_aggregator::api::types::{
    AttesterDuty, CommitteeData, DutiesResponse, ProposerDuty, PublicKeyBytes, StateId,
    ValidatorData, ValidatorId, ValidatorStatus,
};
use dv_aggregator::beacon::backend::{LoadedState, StateBackend};
use dv_aggregator::beacon::sidecar::{Sidecar, SidecarConfig, SidecarSource};
use dv_aggregator::beacon::state_api::{state_api_routes, MAX_BODY_BYTES, NODE_VERSION};
use dv_aggregator::spec::config::DOMAIN_BEACON_PROPOSER;
use dv_aggregator::spec::{ChainSpec, Epoch, ForkName, Root, FAR_FUTURE_EPOCH};
use dv_aggregator::state::{decode_state, interop_genesis_state, BeaconBlockHeader, BeaconState};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tree_hash::TreeHash;

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

/// A raw request for what the typed client does not offer: status and body.
async fn raw(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Vec<u8>) {
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
    (status, response.bytes().await.expect("body").to_vec())
}

/// A raw request whose answer has a JSON body: status and body.
async fn raw_json(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, bytes) = raw(addr, method, path, body).await;
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{method} {path}: {status} with a body that is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, body)
}

/// Asserts a Beacon API error body of `status` whose message holds every one of `needles`.
fn assert_error_body(status: u16, body: &Value, expected: u16, needles: &[&str]) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["code"].as_u64(), Some(u64::from(expected)), "{body}");
    let message = body["message"].as_str().expect("a message");
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
}

/// The proposers of `epoch` drawn slot by slot as the spec writes
/// `get_beacon_proposer_index`: the seed of each slot is
/// `sha256(get_seed(state, epoch, DOMAIN_BEACON_PROPOSER) + uint_to_bytes(slot))`,
/// hashed here rather than by the library's whole-epoch draw.
fn drawn_proposers(state: &BeaconState, epoch: Epoch) -> Vec<u64> {
    let slots_per_epoch = state.preset().SLOTS_PER_EPOCH;
    let active = state.get_active_validator_indices(epoch);
    let epoch_seed = state.get_seed(epoch, DOMAIN_BEACON_PROPOSER);
    (epoch * slots_per_epoch..(epoch + 1) * slots_per_epoch)
        .map(|slot| {
            let mut hasher = Sha256::new();
            hasher.update(epoch_seed.as_slice());
            hasher.update(slot.to_le_bytes());
            let seed = Root::from_slice(&hasher.finalize());
            state.compute_proposer_index(&active, seed).unwrap()
        })
        .collect()
}

/// The root of `state`'s latest block: its header with the state root
/// filled in as `process_slot` fills it when the header does not hold it
/// yet (a genesis state's).
fn head_block_root(state: &BeaconState, state_root: Root) -> Root {
    let header = state.latest_block_header();
    BeaconBlockHeader {
        state_root: if header.state_root == Root::ZERO {
            state_root
        } else {
            header.state_root
        },
        ..*header
    }
    .tree_hash_root()
}

/// Checks the proposer duties `reply` of `epoch`: one per slot in order,
/// validator `proposers[i]` at the epoch's slot `i`, with its public key
/// from `state`.
fn assert_proposers(
    state: &BeaconState,
    epoch: Epoch,
    reply: &DutiesResponse<Vec<ProposerDuty>>,
    proposers: &[u64],
    what: &str,
) {
    let slots_per_epoch = state.preset().SLOTS_PER_EPOCH;
    assert_eq!(proposers.len() as u64, slots_per_epoch, "{what}");
    let expected: Vec<ProposerDuty> = (epoch * slots_per_epoch..)
        .zip(proposers)
        .map(|(slot, &index)| ProposerDuty {
            pubkey: PublicKeyBytes(state.validator(index).unwrap().pubkey.0),
            validator_index: index,
            slot,
        })
        .collect();
    assert_eq!(reply.data, expected, "{what} epoch {epoch}");
    assert_eq!(reply.execution_optimistic, Some(false), "{what}");
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

    async fn test_single_validator_by_index_and_pubkey(self) -> Self {
        let all = self
            .client
            .state_validators(StateId::Head, &[])
            .await
            .unwrap();
        // The ends, the middle and one validator of each oracle group (each a status).
        let count = self.validator_count();
        let mut picks = vec![0, count / 2, count - 1];
        for members in self.state()["validator_groups"]
            .as_object()
            .unwrap()
            .values()
        {
            if let Some(first) = members.as_array().unwrap().first() {
                picks.push(u64_of(first));
            }
        }
        let slot = u64_of(&self.state()["slot"]);
        for index in picks {
            let expected = &all[index as usize];
            for (state_id, id) in [
                (StateId::Head, ValidatorId::Index(index)),
                (StateId::Slot(slot), ValidatorId::Index(index)),
                (
                    StateId::Head,
                    ValidatorId::PublicKey(expected.validator.pubkey),
                ),
            ] {
                let served = self.client.state_validator(state_id, id).await.unwrap();
                assert_eq!(&served, expected, "{} {state_id} {id}", self.folder);
            }
        }
        // The envelope and the record, byte for byte the list route's element.
        let index = count / 2;
        let (status, one) = raw_json(
            self.addr,
            "GET",
            &format!("/eth/v1/beacon/states/head/validators/{index}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{one}");
        let (status, list) = raw_json(
            self.addr,
            "GET",
            &format!("/eth/v1/beacon/states/head/validators?id={index}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(one["data"], list["data"][0]);
        assert_eq!(one["execution_optimistic"], Value::Bool(false));
        assert_eq!(one["finalized"], Value::Bool(false));
        assert_eq!(one["data"]["index"], Value::String(index.to_string()));

        // Unknown validators: 404 naming the id.
        let absent_key = PublicKeyBytes([0x5a; 48]);
        assert!(all.iter().all(|d| d.validator.pubkey != absent_key));
        for id in [
            ValidatorId::Index(count),
            ValidatorId::PublicKey(absent_key),
        ] {
            assert_status(
                self.client.state_validator(StateId::Head, id).await,
                404,
                &format!("validator not found: {id}; the state has {count} validators"),
            );
        }
        // Malformed ids: 400 naming the id.
        for bad in ["12x", "-1", "0x1234", &format!("0x{}", "zz".repeat(48))] {
            let (status, body) = raw_json(
                self.addr,
                "GET",
                &format!("/eth/v1/beacon/states/head/validators/{bad}"),
                None,
            )
            .await;
            assert_error_body(
                status,
                &body,
                400,
                &[&format!("invalid validator id {bad:?}")],
            );
        }
        // A state this node does not hold: 404 naming it.
        assert_status(
            self.client
                .state_validator(StateId::Slot(slot + 1), ValidatorId::Index(0))
                .await,
            404,
            &format!("state not found: {}", slot + 1),
        );
        self
    }

    async fn test_proposer_duties_of_current_and_next_epoch(self) -> Self {
        let state = decode_state(&self.state_bytes, &self.spec, None).unwrap();
        let epoch = self.state_epoch();
        let slots_per_epoch = self.spec.preset.SLOTS_PER_EPOCH as usize;
        // A fulu state's proposers are its lookahead, as the spec computed it
        // for the vectors; earlier states' are drawn slot by slot.
        let expected: Vec<u64> = match self.state().get("proposer_lookahead") {
            Some(lookahead) => lookahead.as_array().unwrap().iter().map(u64_of).collect(),
            None => [epoch, epoch + 1]
                .into_iter()
                .flat_map(|e| drawn_proposers(&state, e))
                .collect(),
        };
        assert_eq!(expected.len(), 2 * slots_per_epoch, "{}", self.folder);
        // dependent_root: the block root at the last slot of epoch - 1; for
        // the next epoch that slot is not reached yet: the head block's root.
        let state_slot = u64_of(&self.state()["slot"]);
        let last_slot_of_previous = epoch * self.spec.preset.SLOTS_PER_EPOCH - 1;
        let at = BLOCK_ROOTS_SSZ_OFFSET
            + 32 * (last_slot_of_previous % self.spec.preset.SLOTS_PER_HISTORICAL_ROOT) as usize;
        let current_root = Root::from_slice(&self.state_bytes[at..at + 32]);
        assert!(state_slot <= last_slot_of_previous + self.spec.preset.SLOTS_PER_EPOCH);
        let state_root = Root::from(hex_bytes::<32>(&self.state()["hash_tree_root"]));
        let next_root = head_block_root(&state, state_root);
        for (i, (e, dependent_root)) in [(epoch, current_root), (epoch + 1, next_root)]
            .into_iter()
            .enumerate()
        {
            let reply = self.client.proposer_duties(e).await.unwrap();
            let proposers = &expected[i * slots_per_epoch..(i + 1) * slots_per_epoch];
            assert_proposers(&state, e, &reply, proposers, self.folder);
            assert_eq!(
                reply.dependent_root,
                Some(dependent_root),
                "{} epoch {e}",
                self.folder
            );
        }
        // Numbers quoted, roots 0x-hex, as the Beacon API writes them.
        let (status, body) = raw_json(
            self.addr,
            "GET",
            &format!("/eth/v1/validator/duties/proposer/{epoch}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["data"][0]["slot"],
            Value::String((epoch * self.spec.preset.SLOTS_PER_EPOCH).to_string())
        );
        assert_eq!(
            body["data"][0]["validator_index"],
            Value::String(expected[0].to_string())
        );
        assert!(body["dependent_root"].as_str().unwrap().starts_with("0x"));
        assert_eq!(body["execution_optimistic"], Value::Bool(false));
        // Only the current and next epoch are served.
        for bad_epoch in [epoch - 1, epoch + 2, 0, u64::MAX] {
            assert_status(
                self.client.proposer_duties(bad_epoch).await,
                400,
                &format!(
                    "invalid epoch \"{bad_epoch}\": this node serves the proposer duties of the \
                     state's current and next epoch only: {epoch} and {}",
                    epoch + 1
                ),
            );
        }
        let (status, body) = raw_json(
            self.addr,
            "GET",
            "/eth/v1/validator/duties/proposer/next",
            None,
        )
        .await;
        assert_error_body(status, &body, 400, &["invalid epoch \"next\""]);
        self
    }

    async fn test_prepare_beacon_proposer(self) -> Self {
        let path = "/eth/v1/validator/prepare_beacon_proposer";
        let recipient = format!("0x{}", "ab".repeat(20));
        let item = |index: &str, recipient: &str| serde_json::json!({"validator_index": index, "fee_recipient": recipient});
        for body in [
            serde_json::json!([
                item("1", &recipient),
                item("0", &recipient.to_uppercase().replace("0X", "0x"))
            ]),
            serde_json::json!([]),
        ] {
            let (status, bytes) = raw(self.addr, "POST", path, Some(body.clone())).await;
            assert_eq!(status, 200, "{body}: {}", String::from_utf8_lossy(&bytes));
            assert!(bytes.is_empty(), "{}", String::from_utf8_lossy(&bytes));
        }
        // A bad item: 400 naming its position (and what is wrong).
        let short = format!("0x{}", "ab".repeat(19));
        let cases = [
            (
                serde_json::json!([item("1", &recipient), item("2", &short)]),
                vec![
                    "invalid item 1 of the request body",
                    "fee_recipient",
                    "expected 20 bytes",
                ],
            ),
            (
                serde_json::json!([item("1", &recipient), item("2", &recipient), {"validator_index": 3, "fee_recipient": recipient}]),
                vec!["invalid item 2 of the request body", "validator_index"],
            ),
            (
                serde_json::json!([item("-1", &recipient)]),
                vec!["invalid item 0 of the request body", "\"-1\""],
            ),
            (
                serde_json::json!([{"validator_index": "4"}]),
                vec!["invalid item 0 of the request body", "fee_recipient"],
            ),
            (
                serde_json::json!({"validator_index": "4", "fee_recipient": recipient}),
                vec!["invalid request body", "JSON array"],
            ),
        ];
        for (body, needles) in cases {
            let (status, reply) = raw_json(self.addr, "POST", path, Some(body)).await;
            assert_error_body(status, &reply, 400, &needles);
        }
        // Bounded by the body limit (about 15,000 items of ~70 bytes).
        let items = MAX_BODY_BYTES as usize / 60;
        let (status, _) = raw(
            self.addr,
            "POST",
            path,
            Some(Value::Array(vec![item("1", &recipient); items])),
        )
        .await;
        assert_eq!(status, 413);
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
        .test_single_validator_by_index_and_pubkey()
        .await
        .test_proposer_duties_of_current_and_next_epoch()
        .await
        .test_prepare_beacon_proposer()
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

/// Serves `state` as the state API and returns a client of it.
async fn serve_state(spec: &ChainSpec, state: BeaconState) -> BeaconNodeClient {
    let backend = Arc::new(StateBackend::new(Arc::new(spec.clone()), "test"));
    backend.set_state(LoadedState::new(state).unwrap());
    let addr = serve(backend).await;
    BeaconNodeClient::new(&format!("http://{addr}")).unwrap()
}

/// An interop genesis state of `fork` (64 validators, minimal preset),
/// moved through `slot` empty slots.
fn empty_chain_state(spec: &ChainSpec, fork: ForkName, slot: u64) -> (BeaconState, Root) {
    let mut state = interop_genesis_state(spec, fork, 64, 0).unwrap();
    let genesis_block_root = head_block_root(&state, state.hash_tree_root());
    state.advance_empty_slots(slot).unwrap();
    (state, genesis_block_root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposer_and_attester_duties_on_an_empty_chain_from_genesis() {
    let spec = ChainSpec::minimal();
    let slots_per_epoch = spec.preset.SLOTS_PER_EPOCH;
    // At genesis, and one and a half epochs of empty slots later.
    for slot in [0, slots_per_epoch + slots_per_epoch / 2] {
        let epoch = slot / slots_per_epoch;
        let (fulu, fulu_genesis_root) = empty_chain_state(&spec, ForkName::Fulu, slot);
        let (electra, electra_genesis_root) = empty_chain_state(&spec, ForkName::Electra, slot);

        // Fulu's lookahead holds both epochs and agrees with the whole-epoch
        // draw and with the slot-by-slot one.
        let lookahead = fulu.proposer_lookahead().unwrap().to_vec();
        let by_epoch: Vec<u64> = [epoch, epoch + 1]
            .into_iter()
            .flat_map(|e| fulu.get_beacon_proposer_indices(e).unwrap())
            .collect();
        let by_slot: Vec<u64> = [epoch, epoch + 1]
            .into_iter()
            .flat_map(|e| drawn_proposers(&fulu, e))
            .collect();
        assert_eq!(lookahead, by_epoch, "slot {slot}");
        assert_eq!(lookahead, by_slot, "slot {slot}");
        // Electra has no lookahead: the route draws, checked slot by slot.
        assert!(electra.proposer_lookahead().is_none());
        let electra_expected: Vec<u64> = [epoch, epoch + 1]
            .into_iter()
            .flat_map(|e| drawn_proposers(&electra, e))
            .collect();

        let fulu_event = LoadedState::new(fulu.clone()).unwrap().head_event(None);
        let fulu_client = serve_state(&spec, fulu.clone()).await;
        let electra_client = serve_state(&spec, electra.clone()).await;
        for (i, e) in [epoch, epoch + 1].into_iter().enumerate() {
            let range = i * slots_per_epoch as usize..(i + 1) * slots_per_epoch as usize;
            let fulu_reply = fulu_client.proposer_duties(e).await.unwrap();
            assert_proposers(&fulu, e, &fulu_reply, &lookahead[range.clone()], "fulu");
            let electra_reply = electra_client.proposer_duties(e).await.unwrap();
            assert_proposers(
                &electra,
                e,
                &electra_reply,
                &electra_expected[range],
                "electra",
            );
            // Same keys, balances and seeds: the recorded lookahead and the
            // draw name the same proposers.
            assert_eq!(fulu_reply.data, electra_reply.data, "slot {slot} epoch {e}");
            // Every slot of an empty chain has the genesis block's root.
            assert_eq!(fulu_reply.dependent_root, Some(fulu_genesis_root));
            assert_eq!(electra_reply.dependent_root, Some(electra_genesis_root));
            // So has the attester duties' root, a genesis state's included.
            let attesters = fulu_client.attester_duties(e, &[0]).await.unwrap();
            assert_eq!(
                attesters.dependent_root,
                Some(fulu_genesis_root),
                "slot {slot}"
            );
        }
        // The current epoch's root is the head event's, which validator
        // clients compare it with.
        let current = fulu_client.proposer_duties(epoch).await.unwrap();
        assert_eq!(
            current.dependent_root,
            Some(fulu_event.current_duty_dependent_root)
        );
        let attesters = fulu_client.attester_duties(epoch, &[0]).await.unwrap();
        assert_eq!(
            attesters.dependent_root,
            Some(fulu_event.previous_duty_dependent_root)
        );
        let mut refused = vec![epoch + 2];
        refused.extend(epoch.checked_sub(1));
        for bad_epoch in refused {
            assert_status(
                fulu_client.proposer_duties(bad_epoch).await,
                400,
                &format!("invalid epoch \"{bad_epoch}\""),
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_chain_routes_answer_501_through_the_sidecar() {
    let spec = ChainSpec::minimal();
    let (state, _) = empty_chain_state(&spec, ForkName::Fulu, 3);
    let sidecar = Sidecar::start(SidecarConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        source: SidecarSource::State(Box::new(state)),
        spec,
        limits: Limits::default(),
    })
    .await
    .expect("sidecar starts");
    let addr = sidecar.addr();
    let production = "it cannot produce blocks";
    let publication = "it cannot import or publish blocks";
    let by_id = "it serves no block, block root or block header by id";
    let sync = "no sync committee message pool";
    let routes: [(&str, &str, &str, &str); 14] = [
        ("GET", "/eth/v3/validator/blocks/9?randao_reveal=0x00", "GET /eth/v3/validator/blocks/{slot}", production),
        ("GET", "/eth/v2/validator/blocks/9", "GET /eth/v2/validator/blocks/{slot}", production),
        ("GET", "/eth/v1/validator/blinded_blocks/9", "GET /eth/v1/validator/blinded_blocks/{slot}", production),
        ("POST", "/eth/v1/beacon/blocks", "POST /eth/v1/beacon/blocks", publication),
        ("POST", "/eth/v2/beacon/blocks", "POST /eth/v2/beacon/blocks", publication),
        ("POST", "/eth/v1/beacon/blinded_blocks", "POST /eth/v1/beacon/blinded_blocks", publication),
        ("POST", "/eth/v2/beacon/blinded_blocks", "POST /eth/v2/beacon/blinded_blocks", publication),
        ("GET", "/eth/v1/beacon/blocks/head/root", "GET /eth/v1/beacon/blocks/{block_id}/root", by_id),
        ("GET", "/eth/v1/beacon/headers/head", "GET /eth/v1/beacon/headers/{block_id}", by_id),
        ("POST", "/eth/v1/beacon/pool/sync_committees", "POST /eth/v1/beacon/pool/sync_committees", sync),
        ("GET", "/eth/v1/validator/sync_committee_contribution?slot=3&subcommittee_index=0&beacon_block_root=0x00", "GET /eth/v1/validator/sync_committee_contribution", sync),
        ("POST", "/eth/v1/validator/contribution_and_proofs", "POST /eth/v1/validator/contribution_and_proofs", sync),
        ("POST", "/eth/v1/validator/register_validator", "POST /eth/v1/validator/register_validator", "no builder"),
        ("POST", "/eth/v1/validator/liveness/0", "POST /eth/v1/validator/liveness/{epoch}", "whether a validator was live"),
    ];
    for (method, path, endpoint, why) in routes {
        let body = (method == "POST").then(|| serde_json::json!([]));
        let (status, reply) = raw_json(addr, method, path, body).await;
        assert_error_body(
            status,
            &reply,
            501,
            &[&format!("{endpoint} is not implemented: "), why],
        );
    }
    // The served routes are not shadowed, and other methods are not 501.
    let client = BeaconNodeClient::new(&format!("http://{addr}")).unwrap();
    assert_eq!(client.proposer_duties(0).await.unwrap().data.len(), 8);
    assert_eq!(
        client
            .state_validator(StateId::Head, ValidatorId::Index(5))
            .await
            .unwrap()
            .index,
        5
    );
    let (status, _) = raw(
        addr,
        "POST",
        "/eth/v1/validator/prepare_beacon_proposer",
        Some(serde_json::json!([])),
    )
    .await;
    assert_eq!(status, 200);
    for (method, path) in [
        ("GET", "/eth/v1/beacon/blocks"),
        ("POST", "/eth/v3/validator/blocks/9"),
        ("GET", "/eth/v1/validator/register_validator"),
    ] {
        let (status, _) = raw(addr, method, path, None).await;
        assert!(status == 404 || status == 405, "{method} {path}: {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fulu_proposer_duties_follow_the_recorded_lookahead() {
    let spec = ChainSpec::minimal();
    let (state, _) = empty_chain_state(&spec, ForkName::Fulu, 3);
    let lookahead = state.proposer_lookahead().unwrap().to_vec();
    // Rewrite the lookahead in the state's SSZ (found by its bytes) to an
    // order no draw gives: the route must serve the record, not a draw.
    let recorded: Vec<u8> = lookahead.iter().flat_map(|i| i.to_le_bytes()).collect();
    let mut rewritten_lookahead = lookahead.clone();
    rewritten_lookahead.reverse();
    rewritten_lookahead[0] = 63;
    assert_ne!(rewritten_lookahead, lookahead);
    let mut bytes = state.as_ssz_bytes();
    let found: Vec<usize> = (0..=bytes.len() - recorded.len())
        .filter(|&at| bytes[at..at + recorded.len()] == recorded[..])
        .collect();
    assert_eq!(found.len(), 1, "the lookahead's bytes at {found:?}");
    let rewritten: Vec<u8> = rewritten_lookahead
        .iter()
        .flat_map(|i| i.to_le_bytes())
        .collect();
    bytes[found[0]..found[0] + recorded.len()].copy_from_slice(&rewritten);
    let state = decode_state(&bytes, &spec, None).unwrap();
    assert_eq!(
        state.proposer_lookahead().unwrap(),
        &rewritten_lookahead[..]
    );

    let client = serve_state(&spec, state.clone()).await;
    let per_epoch = spec.preset.SLOTS_PER_EPOCH as usize;
    for (i, epoch) in [0, 1].into_iter().enumerate() {
        let reply = client.proposer_duties(epoch).await.unwrap();
        let proposers = &rewritten_lookahead[i * per_epoch..(i + 1) * per_epoch];
        assert_proposers(&state, epoch, &reply, proposers, "rewritten fulu");
        assert_ne!(proposers, &drawn_proposers(&state, epoch)[..]);
    }
}
