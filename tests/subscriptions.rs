//! The subscription endpoints of the sidecar in `--state` mode over real
//! HTTP: good items are recorded with what they say, bad ones are named by
//! request index with the state's own numbers, and one bad item never loses
//! the good ones.

mod common;

use common::{oracle_beacon_node, oracle_vectors, u64_of};
use dv_aggregator::api::client::BeaconNodeClient;
use dv_aggregator::api::types::{BeaconCommitteeSubscription, SyncCommitteeSubscription};
use dv_aggregator::beacon::sidecar::Sidecar;
use serde_json::Value;

const FOLDER: &str = "deneb-minimal-2048";

async fn sidecar(folder: &str) -> (Sidecar, BeaconNodeClient, Value) {
    let vectors = oracle_vectors(folder);
    let sidecar = oracle_beacon_node(folder).await;
    let client = BeaconNodeClient::new(&format!("http://{}", sidecar.addr())).unwrap();
    (sidecar, client, vectors)
}

/// The subscription of an attestation case, as a validator client posts it.
fn subscription_of(case: &Value, is_aggregator: bool) -> BeaconCommitteeSubscription {
    BeaconCommitteeSubscription {
        validator_index: u64_of(&case["validator_index"]),
        committee_index: u64_of(&case["committee_index"]),
        committees_at_slot: u64_of(&case["committees_at_slot"]),
        slot: u64_of(&case["slot"]),
        is_aggregator,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beacon_committee_subscriptions_are_checked_against_the_state() {
    let (sidecar, client, vectors) = sidecar(FOLDER).await;
    let cases = vectors["attestation_cases"].as_array().unwrap();
    // Cases of the previous (4), current (5) and next (6) epoch.
    let good: Vec<BeaconCommitteeSubscription> = [0, cases.len() / 2, cases.len() - 1]
        .iter()
        .map(|&i| subscription_of(&cases[i], i % 2 == 0))
        .collect();
    assert_eq!(
        good.iter().map(|s| s.slot / 8).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
    client
        .beacon_committee_subscriptions(&good)
        .await
        .expect("accepted");
    assert_eq!(sidecar.subscriptions().beacon_committee(), good);

    let committees = u64_of(&vectors["epochs"][1]["committees_per_slot"]);
    let mut unknown = good[1].clone();
    unknown.validator_index = 1_000_000;
    let mut index_too_high = good[1].clone();
    index_too_high.committee_index = index_too_high.committees_at_slot;
    let mut wrong_count = good[1].clone();
    wrong_count.committees_at_slot = committees + 1;
    wrong_count.committee_index = 0;
    // Epoch 20 is beyond the state's reach: its committee count cannot be checked.
    let mut far = good[1].clone();
    far.slot = 20 * 8;
    far.committees_at_slot = 1;
    far.committee_index = 0;
    let request = vec![
        unknown,
        good[0].clone(),
        index_too_high,
        wrong_count,
        far.clone(),
    ];
    let error = client
        .beacon_committee_subscriptions(&request)
        .await
        .expect_err("bad items");
    assert_eq!(error.status(), Some(400), "{error}");
    let failures: Vec<(usize, &str)> = error
        .failures()
        .iter()
        .map(|f| (f.index, f.message.as_str()))
        .collect();
    assert_eq!(failures.len(), 3, "{failures:?}");
    assert_eq!(failures[0].0, 0);
    assert!(failures[0].1.contains("1000000"), "{failures:?}");
    assert_eq!(failures[1].0, 2);
    assert!(failures[1].1.contains("committee_index"), "{failures:?}");
    assert_eq!(failures[2].0, 3);
    assert!(
        failures[2]
            .1
            .contains(&format!("which has {committees} committees")),
        "{failures:?}"
    );
    // The good items of the refused request are recorded all the same.
    let recorded = sidecar.subscriptions().beacon_committee();
    assert_eq!(recorded[3..], [good[0].clone(), far]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_committee_subscriptions_must_name_the_validators_own_positions() {
    let (sidecar, client, vectors) = sidecar(FOLDER).await;
    let members: Vec<u64> = vectors["sync_committee"]["current_sync_committee_validator_indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(u64_of)
        .collect();
    let period_end = u64_of(&vectors["constants"]["EPOCHS_PER_SYNC_COMMITTEE_PERIOD"]);
    let member = members[5];
    let positions: Vec<u64> = (0u64..)
        .zip(&members)
        .filter(|(_, m)| **m == member)
        .map(|(p, _)| p)
        .collect();
    let good = SyncCommitteeSubscription {
        validator_index: member,
        sync_committee_indices: positions.clone(),
        until_epoch: period_end,
    };
    let not_held = (0..members.len() as u64)
        .find(|p| !positions.contains(p))
        .unwrap();
    let bad = |change: &dyn Fn(&mut SyncCommitteeSubscription)| {
        let mut item = good.clone();
        change(&mut item);
        item
    };
    let request = vec![
        good.clone(),
        bad(&|s| s.sync_committee_indices = vec![not_held]),
        bad(&|s| s.sync_committee_indices = vec![members.len() as u64]),
        bad(&|s| s.sync_committee_indices.clear()),
        bad(&|s| s.until_epoch = 0),
        bad(&|s| s.validator_index = 1_000_000),
    ];
    let error = client
        .sync_committee_subscriptions(&request)
        .await
        .expect_err("bad items");
    let failures: Vec<(usize, &str)> = error
        .failures()
        .iter()
        .map(|f| (f.index, f.message.as_str()))
        .collect();
    assert_eq!(
        failures.iter().map(|f| f.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5],
        "{failures:?}"
    );
    assert!(
        failures[0]
            .1
            .contains(&format!("not at sync committee position {not_held}")),
        "{failures:?}"
    );
    assert!(failures[1].1.contains("out of range"), "{failures:?}");
    assert!(failures[2].1.contains("holds 0 positions"), "{failures:?}");
    assert!(failures[3].1.contains("until_epoch 0"), "{failures:?}");
    assert!(failures[4].1.contains("1000000"), "{failures:?}");
    assert_eq!(sidecar.subscriptions().sync_committee(), vec![good]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_items_and_bodies_are_named() {
    let (sidecar, _client, vectors) = sidecar(FOLDER).await;
    let case = &vectors["attestation_cases"][0];
    let good = serde_json::to_value(subscription_of(case, true)).unwrap();
    let url = format!(
        "http://{}/eth/v1/validator/beacon_committee_subscriptions",
        sidecar.addr()
    );
    let http = reqwest::Client::new();
    let body = serde_json::json!([{"validator_index": 1}, good]);
    let response = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["failures"][0]["index"], 0, "{error}");
    assert!(
        error["failures"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid item"),
        "{error}"
    );
    assert_eq!(sidecar.subscriptions().beacon_committee().len(), 1);

    let not_a_list = http.post(&url).json(&good).send().await.unwrap();
    assert_eq!(not_a_list.status(), 400);
    let ssz = http
        .post(&url)
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 8])
        .send()
        .await
        .unwrap();
    assert_eq!(ssz.status(), 415);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phase0_state_has_no_sync_committee_to_subscribe_to() {
    let (sidecar, client, _) = sidecar("phase0-minimal-2048").await;
    let item = SyncCommitteeSubscription {
        validator_index: 1,
        sync_committee_indices: vec![0],
        until_epoch: 8,
    };
    let error = client
        .sync_committee_subscriptions(&[item])
        .await
        .expect_err("phase0");
    assert!(
        error.failures()[0].message.contains("no sync committees"),
        "{error}"
    );
    assert!(sidecar.subscriptions().sync_committee().is_empty());
}
