//! The middleware answers by the validator client's cut-off, on the slot
//! clock: a 3-of-3 cluster of real middleware nodes on loopback in front of
//! the project's state-backed beacon node serving an interop genesis whose
//! slots are the wall clock's. Two operators' VCs (the test) ask at a slot's
//! start with the default timeout (a third of a slot from arrival, which
//! alone would end after the cut-off); the third never asks, so nothing
//! combines, and every answer must still reach the VC before it stops
//! waiting: a third into the slot for attestation selections, two thirds
//! for sync selections.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use common::{free_port, split_interop_keys};
use dv_aggregator::api::client::BeaconNodeClient;
use dv_aggregator::api::filters::Limits;
use dv_aggregator::api::types::{BeaconCommitteeSelection, SignatureBytes, SyncCommitteeSelection};
use dv_aggregator::api::ChainInfo;
use dv_aggregator::devnet::chain::DevnetChain;
use dv_aggregator::middleware::selections::CUTOFF_MARGIN_DIVISOR;
use dv_aggregator::middleware::{Middleware, MiddlewareConfig, RetryPolicy, SlotSource};
use dv_aggregator::spec::time::{unix_now, SlotClock};
use dv_aggregator::spec::{ChainSpec, ForkName, Slot};

const OPERATORS: u64 = 3;
const THRESHOLD: u64 = 3;
/// Registry indices of the cluster's validators in the interop genesis.
const VALIDATORS: [u64; 3] = [1, 2, 3];
const SECONDS_PER_SLOT: u64 = 6;

/// When a request was sent and its answer reached the VC, against the cut-off.
struct Arrival {
    endpoint: &'static str,
    sent: Duration,
    at: Duration,
    cutoff: Duration,
    items: usize,
}

/// Sends a request (`ask`, answering how many items came back) and notes
/// when it left and when its answer arrived.
async fn timed<F>(endpoint: &'static str, cutoff: Duration, ask: F) -> Arrival
where
    F: Future<Output = Result<usize, dv_aggregator::api::ClientError>>,
{
    let sent = unix_now();
    let items = ask.await.unwrap();
    Arrival {
        endpoint,
        sent,
        at: unix_now(),
        cutoff,
        items,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_reach_the_vc_before_its_cut_off_when_an_operator_never_asks() {
    let mut spec = ChainSpec::from_preset_name("minimal")
        .unwrap()
        .with_genesis_fork(ForkName::Deneb);
    spec.seconds_per_slot = SECONDS_PER_SLOT;
    let genesis_time = unix_now().as_secs() - 1;
    let chain = DevnetChain::start(spec, ForkName::Deneb, 64, genesis_time)
        .await
        .unwrap();
    let clock = SlotClock::new(genesis_time, SECONDS_PER_SLOT).unwrap();
    let (split, shares) = split_interop_keys(&VALIDATORS, THRESHOLD, OPERATORS);
    let mut lock = split.lock;
    for operator in &mut lock.operators {
        operator.peer_address = Some(format!("127.0.0.1:{}", free_port()));
    }
    let mut nodes = Vec::new();
    for operator in 1..=OPERATORS {
        let peer: SocketAddr = lock
            .operator(operator)
            .unwrap()
            .peer_address
            .clone()
            .unwrap()
            .parse()
            .unwrap();
        let node = Middleware::start(MiddlewareConfig {
            lock: lock.clone(),
            operator_index: operator,
            node_key: split.node_keys[(operator - 1) as usize].clone(),
            beacon_node: chain.url(),
            http_listen: "127.0.0.1:0".parse().unwrap(),
            peer_listen: peer,
            // The default: a third of a slot from the request's arrival.
            selection_timeout: None,
            peer_retry: RetryPolicy::default(),
            slot_source: SlotSource::WallClock,
            limits: Limits::default(),
        })
        .await
        .unwrap();
        nodes.push(node);
    }
    for node in &nodes {
        while node.chain_view().is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let info = ChainInfo::fetch(&BeaconNodeClient::new(&chain.url()).unwrap())
        .await
        .unwrap();

    // The VCs ask at the start of the next slot (plus the moment a VC
    // takes to sign), as Lodestar does.
    let slot: Slot = clock.slot_at(unix_now()).unwrap() + 1;
    tokio::time::sleep(clock.slot_start(slot).saturating_sub(unix_now())).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let asks = (1..=2u64).flat_map(|operator| {
        let client = BeaconNodeClient::new(&format!(
            "http://{}",
            nodes[(operator - 1) as usize].http_addr()
        ))
        .unwrap();
        let beacon: Vec<BeaconCommitteeSelection> = VALIDATORS
            .iter()
            .map(|&index| {
                let root = info.selection_proof_signing_root(slot);
                BeaconCommitteeSelection {
                    validator_index: index,
                    slot,
                    selection_proof: SignatureBytes(
                        shares[&index][&operator].sign(root.as_slice()).to_bytes(),
                    ),
                }
            })
            .collect();
        let sync: Vec<SyncCommitteeSelection> = VALIDATORS
            .iter()
            .map(|&index| {
                let root = info.sync_selection_proof_signing_root(slot, 1);
                SyncCommitteeSelection {
                    validator_index: index,
                    slot,
                    subcommittee_index: 1,
                    selection_proof: SignatureBytes(
                        shares[&index][&operator].sign(root.as_slice()).to_bytes(),
                    ),
                }
            })
            .collect();
        let attestation = timed(
            "beacon_committee_selections",
            clock.slot_fraction(slot, 1, 3),
            {
                let client = client.clone();
                async move {
                    client
                        .beacon_committee_selections(&beacon)
                        .await
                        .map(|a| a.len())
                }
            },
        );
        let sync = timed(
            "sync_committee_selections",
            clock.slot_fraction(slot, 2, 3),
            async move {
                client
                    .sync_committee_selections(&sync)
                    .await
                    .map(|a| a.len())
            },
        );
        let both: [Pin<Box<dyn Future<Output = Arrival>>>; 2] =
            [Box::pin(attestation), Box::pin(sync)];
        both
    });
    let arrivals = futures_util::future::join_all(asks).await;
    let margin = clock.slot_duration() / CUTOFF_MARGIN_DIVISOR;
    let timeout = clock.slot_duration() / 3;
    assert_eq!(arrivals.len(), 4);
    for arrival in arrivals {
        // Nothing combined (operator 3 never asked), so each request waited
        // until its deadline, the earlier of its timeout and its cut-off less
        // the margin: before the cut-off, and not sooner than the deadline.
        let deadline = (arrival.sent + timeout).min(arrival.cutoff - margin);
        assert_eq!(arrival.items, 0, "{}", arrival.endpoint);
        assert!(
            arrival.at < arrival.cutoff,
            "{} answered {:?} after the VC's cut-off",
            arrival.endpoint,
            arrival.at - arrival.cutoff
        );
        assert!(
            arrival.at + Duration::from_millis(5) >= deadline,
            "{} answered {:?} before its deadline: it did not wait for the cluster",
            arrival.endpoint,
            deadline - arrival.at
        );
        if arrival.endpoint == "beacon_committee_selections" {
            // The cut-off ended it: the timeout alone (the old deadline)
            // would have answered after the VC stopped waiting.
            assert!(arrival.sent + timeout >= arrival.cutoff);
            assert!(
                arrival.at < arrival.sent + timeout,
                "{:?}",
                arrival.at - arrival.sent
            );
        }
    }
    for node in nodes {
        node.stop().await;
    }
}
