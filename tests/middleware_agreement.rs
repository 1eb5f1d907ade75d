//! The agreement on attestation data among four middleware nodes over the
//! real peer protocol on 127.0.0.1 (node-key authentication, the consensus
//! endpoint, BLS-signed QBFT messages): every node decides the same value
//! in round 1; with the round-1 leader down the slot still decides, in
//! round 2, well within a third of the slot; a leader whose beacon node
//! proposes a bad value costs a round, not the slot.
//!
//! Each node's beacon node is a TEST DOUBLE ([`FixedProposals`]): it answers
//! the attestation data a test sets, and checks proposals with the same
//! rules as the middleware's `AttestationDataProposals` (slot, target epoch,
//! source consistency with its own value).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use dv_aggregator::cluster::ClusterLock;
use dv_aggregator::consensus::{linear_round_timeout, RoundTimeout};
use dv_aggregator::middleware::agreement::{
    Agreement, Agreements, Proposals, Receiver, ValueFuture,
};
use dv_aggregator::middleware::metrics::Metrics;
use dv_aggregator::middleware::{
    peer_routes, ItemOutcome, PartialItem, PartialSink, PeerClient, RetryPolicy,
};
use dv_aggregator::spec::{AttestationData, Checkpoint, Root, Slot};

const SLOTS_PER_EPOCH: u64 = 8;
/// A 6-second slot (the minimal preset's): a third is 2 s, rounds 750 ms + 750 ms per round.
const SLOT: Duration = Duration::from_secs(6);

/// TEST DOUBLE of a node's beacon node for the agreement: it answers `own`
/// from `ready_at` on (and fails before, or always when it is `None`), and
/// checks proposals as the middleware does.
struct FixedProposals {
    own: Option<AttestationData>,
    ready_at: Instant,
    /// Prefer the offered value with the highest head root (standing in
    /// for the aggregate with the most participants).
    prefers_best: bool,
}

impl Proposals<AttestationData> for FixedProposals {
    fn label(&self) -> &'static str {
        "attestation_data"
    }

    fn fetch(&self, _slot: Slot) -> ValueFuture<AttestationData> {
        let own = self.own.filter(|_| Instant::now() >= self.ready_at);
        Box::pin(async move {
            own.ok_or_else(|| "TEST DOUBLE beacon node has nothing (yet)".to_string())
        })
    }

    fn prefers_best(&self) -> bool {
        self.prefers_best
    }

    fn improve(
        &self,
        slot: Slot,
        own: AttestationData,
        offers: Vec<AttestationData>,
    ) -> AttestationData {
        offers
            .into_iter()
            .filter(|offer| self.check(slot, offer, Some(&own)).is_ok())
            .fold(own, |best, offer| {
                if offer.beacon_block_root > best.beacon_block_root {
                    offer
                } else {
                    best
                }
            })
    }

    fn check(
        &self,
        slot: Slot,
        value: &AttestationData,
        own: Option<&AttestationData>,
    ) -> Result<(), String> {
        if value.slot != slot || value.target.epoch != slot / SLOTS_PER_EPOCH {
            return Err(format!("bad slot or target epoch: {value:?}"));
        }
        match own {
            Some(own) if own.source != value.source => Err("another source".into()),
            _ => Ok(()),
        }
    }
}

/// TEST DOUBLE of a middleware's peer sink: it takes agreement messages only.
struct AgreementSink(Agreements);

impl PartialSink for AgreementSink {
    fn accept(&self, _from: u64, items: Vec<PartialItem>) -> Vec<ItemOutcome> {
        items
            .iter()
            .map(|_| ItemOutcome::Rejected {
                message: "TEST DOUBLE takes agreement messages only".into(),
            })
            .collect()
    }

    fn consensus(
        &self,
        from_operator: u64,
        messages: Vec<Box<serde_json::value::RawValue>>,
    ) -> Vec<ItemOutcome> {
        self.0.receive(from_operator, messages)
    }
}

fn data(slot: Slot, head: u8, source_epoch: u64) -> AttestationData {
    AttestationData {
        slot,
        index: 0,
        beacon_block_root: Root::repeat_byte(head),
        source: Checkpoint {
            epoch: source_epoch,
            root: Root::repeat_byte(0x50 + source_epoch as u8),
        },
        target: Checkpoint {
            epoch: slot / SLOTS_PER_EPOCH,
            root: Root::repeat_byte(0x70),
        },
    }
}

fn rounds() -> RoundTimeout {
    linear_round_timeout(SLOT / 8, SLOT / 8)
}

/// Four nodes of one lock on loopback; `down` are never started.
struct Cluster {
    nodes: BTreeMap<u64, Arc<Agreement<AttestationData>>>,
    metrics: BTreeMap<u64, Arc<Metrics>>,
}

async fn cluster(owns: [Option<AttestationData>; 4], down: &[u64]) -> Cluster {
    cluster_with(owns, down, Instant::now(), false).await
}

/// As [`cluster`], with beacon nodes that have nothing before `ready_at`,
/// and nodes that offer their values and prefer the best if `prefers_best`.
async fn cluster_with(
    owns: [Option<AttestationData>; 4],
    down: &[u64],
    ready_at: Instant,
    prefers_best: bool,
) -> Cluster {
    common::log_warnings();
    let split = common::split_keys(&[dv_aggregator::crypto::SecretKey::random()], 3, 4);
    let mut lock: ClusterLock = split.lock.clone();
    let mut listeners = Vec::new();
    for operator in &mut lock.operators {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        operator.peer_address = Some(listener.local_addr().unwrap().to_string());
        listeners.push(listener);
    }
    let lock = Arc::new(lock);
    let policy = RetryPolicy {
        max_attempts: 1,
        request_timeout: Duration::from_millis(300),
        total_timeout: Duration::from_millis(300),
        ..RetryPolicy::default()
    };
    let mut nodes = BTreeMap::new();
    let mut metrics = BTreeMap::new();
    for ((index, listener), own) in (1..=4u64).zip(listeners).zip(owns) {
        if down.contains(&index) {
            drop(listener);
            continue;
        }
        let node_key = split.node_keys[(index - 1) as usize].clone();
        let client = PeerClient::new(&lock, index, node_key.clone(), policy).unwrap();
        let node_metrics = Arc::new(Metrics::default());
        let config =
            Agreement::<AttestationData>::config(&lock, index, node_key, rounds()).unwrap();
        let agreement = Agreement::new(
            Arc::new(FixedProposals {
                own,
                ready_at,
                prefers_best,
            }),
            config,
            rounds(),
            client,
            Arc::clone(&node_metrics),
        );
        let receivers: Vec<Arc<dyn Receiver>> = vec![agreement.clone()];
        let sink = Arc::new(AgreementSink(Agreements::new(receivers)));
        let routes = peer_routes(Arc::clone(&lock), index, sink);
        tokio::spawn(warp::serve(routes).incoming(listener).run());
        nodes.insert(index, agreement);
        metrics.insert(index, node_metrics);
    }
    Cluster { nodes, metrics }
}

impl Cluster {
    /// Every running node agrees on `slot`: each node's decision and the
    /// time the slowest took.
    async fn agree(&self, slot: Slot) -> (Vec<AttestationData>, Duration) {
        for node in self.nodes.values() {
            node.set_current_slot(slot);
        }
        let started = Instant::now();
        let waits = self.nodes.values().map(|node| {
            let decided = node.agree(slot);
            async move { tokio::time::timeout(SLOT, decided).await }
        });
        let decisions: Vec<AttestationData> = futures_util::future::join_all(waits)
            .await
            .into_iter()
            .map(|decided| decided.expect("decided within a slot").expect("a decision"))
            .collect();
        (decisions, started.elapsed())
    }

    fn rounds_seen(&self) -> String {
        self.metrics
            .values()
            .map(|metrics| {
                metrics
                    .render(&Default::default())
                    .lines()
                    .filter(|line| line.starts_with("dv_agreements_total{"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// The round-1 leader of `slot` (leader seed = slot): (slot % 4 + 1) % 4 + 1.
fn round_one_leader(slot: Slot) -> u64 {
    dv_aggregator::consensus::leader(slot, 1, 4)
}

#[tokio::test]
async fn four_nodes_decide_one_value_in_round_one() {
    let slot = 17;
    let owns = [1u8, 2, 3, 4].map(|head| Some(data(slot, head, 1)));
    let cluster = cluster(owns, &[]).await;
    let (decisions, took) = cluster.agree(slot).await;
    assert_eq!(decisions.len(), 4);
    assert!(
        decisions.iter().all(|d| *d == decisions[0]),
        "{decisions:?}"
    );
    // The round-1 leader's own value wins.
    let leader = round_one_leader(slot);
    assert_eq!(
        decisions[0].beacon_block_root,
        Root::repeat_byte(leader as u8)
    );
    assert!(took < SLOT / 3, "took {took:?}");
    assert!(
        cluster.rounds_seen().contains("round=\"1\"} 1"),
        "{}",
        cluster.rounds_seen()
    );
}

#[tokio::test]
async fn the_slot_decides_in_time_with_its_leader_down() {
    let slot = 21;
    let leader = round_one_leader(slot);
    let owns = [1u8, 2, 3, 4].map(|head| Some(data(slot, head, 1)));
    let cluster = cluster(owns, &[leader]).await;
    let (decisions, took) = cluster.agree(slot).await;
    assert_eq!(decisions.len(), 3);
    assert!(decisions.iter().all(|d| *d == decisions[0]));
    // Round 2's leader proposed its own value.
    let second = dv_aggregator::consensus::leader(slot, 2, 4);
    assert_eq!(
        decisions[0].beacon_block_root,
        Root::repeat_byte(second as u8)
    );
    assert!(took < SLOT / 3, "leader down: took {took:?}");
    let rounds = cluster.rounds_seen();
    assert!(!rounds.contains("round=\"1\""), "{rounds}");
    assert!(rounds.contains("round=\"2\"} 1"), "{rounds}");
}

#[tokio::test]
async fn a_leader_proposing_another_source_costs_a_round_not_the_slot() {
    let slot = 26;
    let leader = round_one_leader(slot);
    let mut owns = [1u8, 2, 3, 4].map(|head| Some(data(slot, head, 2)));
    // The leader's beacon node is on an older justified checkpoint.
    owns[(leader - 1) as usize] = Some(data(slot, leader as u8, 1));
    let cluster = cluster(owns, &[]).await;
    let (decisions, took) = cluster.agree(slot).await;
    assert!(decisions.iter().all(|d| *d == decisions[0]));
    assert_eq!(
        decisions[0].source.epoch, 2,
        "the bad source was not decided"
    );
    assert!(took < SLOT / 3, "took {took:?}");
}

#[tokio::test]
async fn a_node_whose_beacon_node_is_down_still_agrees() {
    let slot = 33;
    let leader = round_one_leader(slot);
    let mut owns = [1u8, 2, 3, 4].map(|head| Some(data(slot, head, 3)));
    let blind = leader % 4 + 1;
    owns[(blind - 1) as usize] = None;
    let cluster = cluster(owns, &[]).await;
    let (decisions, _) = cluster.agree(slot).await;
    assert_eq!(decisions.len(), 4);
    assert!(decisions.iter().all(|d| *d == decisions[0]));
}

#[tokio::test]
async fn beacon_nodes_that_have_nothing_at_the_start_still_give_the_slot_a_value() {
    // Like aggregates asked for before the beacon nodes pooled the
    // attestations: no node has a value of its own when the agreement
    // starts; each asks again while it runs, and a later round's leader
    // proposes what its beacon node then has.
    let slot = 45;
    let owns = [1u8, 2, 3, 4].map(|head| Some(data(slot, head, 5)));
    let cluster = cluster_with(owns, &[], Instant::now() + SLOT / 5, false).await;
    let (decisions, took) = cluster.agree(slot).await;
    assert_eq!(decisions.len(), 4);
    assert!(decisions.iter().all(|d| *d == decisions[0]));
    let rounds = cluster.rounds_seen();
    assert!(!rounds.contains("round=\"1\""), "{rounds}");
    assert!(took < SLOT / 2, "took {took:?}; {rounds}");
}

#[tokio::test]
async fn a_kind_that_prefers_the_best_value_decides_the_best_offered_not_the_leaders() {
    // As the aggregates agreement does: every node offers its own value, and
    // the round-1 leader proposes the best valid one it got in time.
    let slot = 50;
    let leader = round_one_leader(slot);
    let mut owns = [1u8, 2, 3, 4].map(|head| Some(data(slot, head, 5)));
    let best = leader % 4 + 1;
    owns[(best - 1) as usize] = Some(data(slot, 9, 5));
    // A higher head with another source is not valid: never chosen.
    let invalid = best % 4 + 1;
    assert_ne!(invalid, leader);
    owns[(invalid - 1) as usize] = Some(data(slot, 0xee, 4));
    let cluster = cluster_with(owns, &[], Instant::now(), true).await;
    let (decisions, took) = cluster.agree(slot).await;
    assert!(decisions.iter().all(|d| *d == decisions[0]));
    assert_eq!(decisions[0].beacon_block_root, Root::repeat_byte(9));
    let rounds = cluster.rounds_seen();
    assert!(rounds.contains("round=\"1\"} 1"), "{rounds}");
    assert!(took < SLOT / 3, "took {took:?}");
}

#[tokio::test]
async fn slots_outside_the_window_are_refused() {
    let owns = [1u8, 2, 3, 4].map(|head| Some(data(40, head, 4)));
    let cluster = cluster(owns, &[]).await;
    let node = &cluster.nodes[&1];
    node.set_current_slot(40);
    let far = node.agree(400).await.unwrap_err();
    assert!(far.contains("outside the agreement window"), "{far}");
}
