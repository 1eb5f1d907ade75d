//! QBFT among n nodes with real BLS node keys, over a TEST DOUBLE network:
//! a deterministic in-memory simulation with virtual time that delivers,
//! drops, delays, duplicates and reorders messages under a seeded RNG, and
//! byzantine nodes that equivocate, ignore prepared values, forge
//! justifications or propose invalid values. Every message crosses the
//! network as JSON and is decoded with the bounded decoder.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

use dv_aggregator::consensus::{
    faulty, leader, linear_round_timeout, quorum, Config, Decision, Event, Instance, InstanceId,
    JustificationError, Message, MessageBody, MessageKind, NodeIndex, Output, PreparedRef,
    Recipient, Refusal, RoundChangeReason, SignedBody, Validity, Value,
};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

#[path = "support/bls_node_keys.rs"]
mod bls_node_keys;

use bls_node_keys::{cluster_keys, BlsKeys};

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
/// The instance's leader seed: with it the leaders of rounds 1, 2, 3 are
/// nodes 2, 3, 4 of four.
const LEADER_SEED: u64 = 0;

/// The agreed value: a string, hashed with SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Data(String);

impl Value for Data {
    fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

fn data(s: &str) -> Data {
    Data(s.to_string())
}

/// Honest validity: values starting with "bad" are refused.
fn validity() -> Validity<Data> {
    Box::new(|value: &Data| match value.0.starts_with("bad") {
        true => Err(format!("{:?} fails this node's checks", value.0)),
        false => Ok(()),
    })
}

/// How a simulated node behaves.
#[derive(Clone, Debug, PartialEq)]
enum Behaviour {
    Honest,
    /// Honest, but starts its instance only then (down until, or restarted).
    StartsAt(Duration),
    /// Faulty: never runs.
    Crashed,
    /// Faulty: runs the protocol, but its input is a value honest nodes refuse.
    ProposesInvalid,
    /// Faulty: every PRE-PREPARE, PREPARE and COMMIT it sends goes to the
    /// even-numbered nodes twice: first with another (valid) value, signed
    /// anew, then as sent.
    Equivocates,
    /// Faulty: as leader after round 1 it proposes its own input, whatever
    /// its ROUND-CHANGEs prepared (signed anew, same justification).
    IgnoresPrepared,
    /// Faulty: its ROUND-CHANGEs claim a prepared value, "justified" by
    /// PREPAREs of other nodes that it signs itself.
    ForgesJustifications,
}

impl Behaviour {
    fn is_honest(&self) -> bool {
        matches!(self, Behaviour::Honest | Behaviour::StartsAt(_))
    }
}

struct Node {
    index: NodeIndex,
    behaviour: Behaviour,
    keys: Arc<BlsKeys>,
    timeout_scale: u32,
    input: Option<(Duration, Data)>,
    input_given: bool,
    instance: Option<Instance<Data>>,
    decision: Option<(Duration, Decision<Data>)>,
    events: Vec<Event>,
}

/// What the TEST DOUBLE network does to messages. Before `gst` each copy
/// is dropped with `drop_rate`; from `gst` on, none is. Every copy is
/// delayed uniformly up to `max_delay` (so messages overtake each other)
/// and duplicated with `duplicate_rate`.
#[derive(Clone, Debug)]
struct Faults {
    drop_rate: f64,
    duplicate_rate: f64,
    max_delay: Duration,
    gst: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            drop_rate: 0.0,
            duplicate_rate: 0.0,
            max_delay: 50 * MS,
            gst: Duration::ZERO,
        }
    }
}

type DropRule = Box<dyn Fn(NodeIndex, NodeIndex, &MessageBody) -> bool>;

/// A message copy in flight: (arrival, sequence, from, to, JSON).
type InFlight = Reverse<(Duration, u64, NodeIndex, NodeIndex, Vec<u8>)>;

/// n nodes of one instance on the TEST DOUBLE network.
struct Sim {
    id: InstanceId,
    now: Duration,
    rng: StdRng,
    nodes: Vec<Node>,
    faults: Faults,
    drop_rule: Option<DropRule>,
    queue: BinaryHeap<InFlight>,
    sequence: u64,
    /// Every value some PRE-PREPARE on the wire proposed.
    proposed: BTreeSet<Data>,
    /// The sources of the COMMITs on the wire, by round and value.
    commits: BTreeMap<(u64, Data), BTreeSet<NodeIndex>>,
}

impl Sim {
    /// `nodes` honest nodes, all holding the input "data" from the start, on
    /// a network that delays up to 50 ms.
    fn new(nodes: u64, seed: u64) -> Self {
        let keys = cluster_keys(nodes);
        Self {
            id: InstanceId::derive("attester", 42),
            now: Duration::ZERO,
            rng: StdRng::seed_from_u64(seed),
            nodes: keys
                .into_iter()
                .zip(1..)
                .map(|(keys, index)| Node {
                    index,
                    behaviour: Behaviour::Honest,
                    keys,
                    timeout_scale: 1,
                    input: Some((Duration::ZERO, data("data"))),
                    input_given: false,
                    instance: None,
                    decision: None,
                    events: Vec::new(),
                })
                .collect(),
            faults: Faults::default(),
            drop_rule: None,
            queue: BinaryHeap::new(),
            sequence: 0,
            proposed: BTreeSet::new(),
            commits: BTreeMap::new(),
        }
    }

    fn n(&self) -> u64 {
        self.nodes.len() as u64
    }

    fn node(&self, index: NodeIndex) -> &Node {
        &self.nodes[index as usize - 1]
    }

    fn node_mut(&mut self, index: NodeIndex) -> &mut Node {
        &mut self.nodes[index as usize - 1]
    }

    fn behaviour(mut self, index: NodeIndex, behaviour: Behaviour) -> Self {
        if behaviour == Behaviour::ProposesInvalid {
            self.node_mut(index).input = Some((Duration::ZERO, data(&format!("bad-{index}"))));
        }
        self.node_mut(index).behaviour = behaviour;
        self
    }

    fn input(mut self, index: NodeIndex, input: Option<(Duration, &str)>) -> Self {
        self.node_mut(index).input = input.map(|(at, value)| (at, data(value)));
        self
    }

    /// Gives node i the input "data-i".
    fn distinct_inputs(mut self) -> Self {
        for node in &mut self.nodes {
            node.input = Some((Duration::ZERO, data(&format!("data-{}", node.index))));
        }
        self
    }

    fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    fn drop_rule(
        mut self,
        rule: impl Fn(NodeIndex, NodeIndex, &MessageBody) -> bool + 'static,
    ) -> Self {
        self.drop_rule = Some(Box::new(rule));
        self
    }

    fn timeout_scale(mut self, index: NodeIndex, scale: u32) -> Self {
        self.node_mut(index).timeout_scale = scale;
        self
    }

    fn leader(&self, round: u64) -> NodeIndex {
        leader(LEADER_SEED, round, self.n())
    }

    /// Runs until every honest node decided or virtual time passes `limit`.
    fn run(mut self, limit: Duration) -> Self {
        for _ in 0..1_000_000 {
            if self.honest().all(|node| node.decision.is_some()) {
                return self;
            }
            match self.next_time() {
                Some(next) if next <= limit => self.now = next.max(self.now),
                _ => return self,
            }
            self.start_due();
            self.give_due_inputs();
            self.tick_due();
            self.deliver_one_due();
        }
        panic!("the simulation did not settle in a million steps");
    }

    fn honest(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|node| node.behaviour.is_honest())
    }

    fn start_time(node: &Node) -> Option<Duration> {
        match node.behaviour {
            Behaviour::Crashed => None,
            Behaviour::StartsAt(at) => Some(at),
            _ => Some(Duration::ZERO),
        }
    }

    fn next_time(&self) -> Option<Duration> {
        let deliveries = self.queue.peek().map(|Reverse((at, ..))| *at);
        let nodes = self.nodes.iter().filter_map(|node| match &node.instance {
            None => Self::start_time(node),
            Some(instance) => {
                let input = node
                    .input
                    .as_ref()
                    .filter(|_| !node.input_given)
                    .map(|(at, _)| *at);
                [input, instance.deadline()].into_iter().flatten().min()
            }
        });
        deliveries.into_iter().chain(nodes).min()
    }

    fn start_due(&mut self) {
        let nodes = self.n();
        for node in &mut self.nodes {
            if node.instance.is_none() && Self::start_time(node).is_some_and(|at| at <= self.now) {
                let scale = node.timeout_scale;
                let base = linear_round_timeout(SECOND, SECOND);
                let config = Config::new(
                    nodes,
                    node.index,
                    node.keys.clone(),
                    Arc::new(move |round| base(round) * scale),
                )
                .expect("valid config");
                node.instance = Some(Instance::new(
                    config,
                    self.id,
                    LEADER_SEED,
                    validity(),
                    self.now,
                ));
            }
        }
    }

    fn give_due_inputs(&mut self) {
        for index in 1..=self.n() {
            let now = self.now;
            let node = self.node_mut(index);
            let due = node
                .input
                .as_ref()
                .filter(|(at, _)| !node.input_given && *at <= now);
            if let (Some((_, value)), Some(instance)) = (due.cloned(), node.instance.as_mut()) {
                node.input_given = true;
                let out = instance.set_input(value, now);
                self.dispatch(index, out);
            }
        }
    }

    fn tick_due(&mut self) {
        for index in 1..=self.n() {
            let now = self.now;
            let node = self.node_mut(index);
            if let Some(instance) = node
                .instance
                .as_mut()
                .filter(|i| i.deadline().is_some_and(|d| d <= now))
            {
                let out = instance.tick(now);
                self.dispatch(index, out);
            }
        }
    }

    fn deliver_one_due(&mut self) {
        let due = self
            .queue
            .peek()
            .is_some_and(|Reverse((at, ..))| *at <= self.now);
        if !due {
            return;
        }
        let Some(Reverse((_, _, from, to, json))) = self.queue.pop() else {
            return;
        };
        let message = Message::<Data>::decode_json(&json)
            .unwrap_or_else(|e| panic!("message from node {from} does not decode: {e}"));
        let now = self.now;
        if let Some(instance) = self.node_mut(to).instance.as_mut() {
            let out = instance.receive(message, now);
            self.dispatch(to, out);
        }
    }

    fn dispatch(&mut self, from: NodeIndex, out: Output<Data>) {
        let now = self.now;
        let node = self.node_mut(from);
        node.events.extend(out.events);
        if let Some(decision) = out.decision {
            node.decision = Some((now, decision));
        }
        for outgoing in out.messages {
            let recipients: Vec<NodeIndex> = match outgoing.to {
                Recipient::All => (1..=self.n()).filter(|&to| to != from).collect(),
                Recipient::Node(to) => vec![to],
            };
            for to in recipients {
                for message in self.tamper(from, to, &outgoing.message) {
                    self.send(from, to, message);
                }
            }
        }
    }

    /// What a faulty sender makes of an honest message for `to`.
    fn tamper(
        &self,
        from: NodeIndex,
        to: NodeIndex,
        message: &Message<Data>,
    ) -> Vec<Message<Data>> {
        let node = self.node(from);
        let body = message.body();
        let resign = |value: Data, justification: Vec<SignedBody>| {
            let body = MessageBody {
                value: Some(digest(&value)),
                ..body.clone()
            };
            Message::new(body, Some(value), justification, &*node.keys)
        };
        let names_value = matches!(
            body.kind,
            MessageKind::PrePrepare | MessageKind::Prepare | MessageKind::Commit
        );
        match (&node.behaviour, &message.value) {
            (Behaviour::Equivocates, Some(value)) if names_value && to % 2 == 0 => {
                let twin = resign(
                    Data(format!("{}-twin", value.0)),
                    message.justification.clone(),
                );
                vec![twin, message.clone()]
            }
            (Behaviour::IgnoresPrepared, _)
                if body.kind == MessageKind::PrePrepare && body.round > 1 =>
            {
                let own = node
                    .input
                    .as_ref()
                    .map_or_else(|| data("own"), |(_, v)| v.clone());
                vec![resign(own, message.justification.clone())]
            }
            (Behaviour::ForgesJustifications, _) if body.kind == MessageKind::RoundChange => {
                let claimed = data("forged");
                let prepared = PreparedRef {
                    round: body.round - 1,
                    value: digest(&claimed),
                };
                let forged = (1..=self.n())
                    .filter(|&s| s != from)
                    .take(quorum(self.n()) as usize)
                    .map(|source| {
                        let prepare = MessageBody {
                            kind: MessageKind::Prepare,
                            source,
                            round: prepared.round,
                            value: Some(prepared.value),
                            prepared: None,
                            ..body.clone()
                        };
                        SignedBody::sign(prepare, &*node.keys)
                    })
                    .collect();
                let body = MessageBody {
                    prepared: Some(prepared),
                    ..body.clone()
                };
                vec![Message::new(body, Some(claimed), forged, &*node.keys)]
            }
            _ => vec![message.clone()],
        }
    }

    fn send(&mut self, from: NodeIndex, to: NodeIndex, message: Message<Data>) {
        let body = message.body();
        match (body.kind, &message.value) {
            (MessageKind::PrePrepare, Some(value)) => {
                self.proposed.insert(value.clone());
            }
            (MessageKind::Commit, Some(value)) => {
                let key = (body.round, value.clone());
                self.commits.entry(key).or_default().insert(from);
            }
            _ => {}
        }
        let dropped_by_rule = self
            .drop_rule
            .as_ref()
            .is_some_and(|rule| rule(from, to, message.body()));
        let before_gst = self.now < self.faults.gst;
        if dropped_by_rule || (before_gst && self.rng.gen_bool(self.faults.drop_rate)) {
            return;
        }
        let json = serde_json::to_vec(&message).expect("messages encode");
        let copies = if self.rng.gen_bool(self.faults.duplicate_rate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.faults.max_delay.mul_f64(self.rng.gen::<f64>());
            self.sequence += 1;
            self.queue.push(Reverse((
                self.now + delay,
                self.sequence,
                from,
                to,
                json.clone(),
            )));
        }
    }

    /// The honest nodes' decisions agree; returns the one value.
    fn agreed(&self) -> Data {
        let values: BTreeSet<Data> = self
            .honest()
            .filter_map(|n| n.decision.as_ref())
            .map(|(_, d)| d.value.clone())
            .collect();
        assert!(
            values.len() <= 1,
            "honest nodes decided differently: {values:?}"
        );
        values.into_iter().next().expect("a decision")
    }

    /// Every honest node decided, all the same value, one that was proposed
    /// and is valid for honest nodes; and no two values ever had a COMMIT
    /// quorum on the wire (so no node could ever learn another decision,
    /// whatever the network did with the DECIDED answers).
    fn assert_agreed(&self) -> Data {
        let certified: BTreeSet<&Data> = self
            .commits
            .iter()
            .filter(|(_, sources)| sources.len() as u64 >= quorum(self.n()))
            .map(|((_, value), _)| value)
            .collect();
        assert!(
            certified.len() <= 1,
            "COMMIT quorums for different values: {certified:?}"
        );
        for node in self.honest() {
            assert!(
                node.decision.is_some(),
                "honest node {} did not decide by {:?}",
                node.index,
                self.now
            );
        }
        let value = self.agreed();
        assert!(
            self.proposed.contains(&value),
            "{value:?} was never proposed"
        );
        assert!(
            validity()(&value).is_ok(),
            "{value:?} is invalid for honest nodes"
        );
        value
    }

    fn decided_round(&self, index: NodeIndex) -> u64 {
        self.node(index).decision.as_ref().expect("decided").1.round
    }

    fn events(&self, index: NodeIndex) -> &[Event] {
        &self.node(index).events
    }
}

fn digest(value: &Data) -> dv_aggregator::consensus::Digest {
    dv_aggregator::consensus::Digest(value.digest())
}

fn refusals(sim: &Sim, index: NodeIndex) -> Vec<(NodeIndex, MessageKind, Refusal)> {
    sim.events(index)
        .iter()
        .filter_map(|event| match event {
            Event::Refused {
                source,
                kind,
                reason,
                ..
            } => Some((*source, *kind, reason.clone())),
            _ => None,
        })
        .collect()
}

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn all_nodes_decide_the_common_value_in_round_one() {
    for n in [4, 7] {
        let sim = Sim::new(n, 1).run(LIMIT);
        assert_eq!(sim.assert_agreed(), data("data"));
        for index in 1..=n {
            assert_eq!(sim.decided_round(index), 1, "n={n} node {index}");
            // Only late COMMITs after the decision, nothing faulty.
            let refused = refusals(&sim, index);
            assert!(
                refused.iter().all(|(_, _, reason)| reason.is_benign()),
                "{refused:?}"
            );
        }
    }
}

/// Round 1's leader behaves as `behaviour`; node i holds the input "data-i".
/// Every honest node decides round 2's leader's input, in round 2. Returns
/// the run and round 1's leader.
fn first_leader_costs_one_round(n: u64, seed: u64, behaviour: Behaviour) -> (Sim, NodeIndex) {
    let sim = Sim::new(n, seed).distinct_inputs();
    let (first, second) = (sim.leader(1), sim.leader(2));
    let sim = sim.behaviour(first, behaviour).run(LIMIT);
    assert_eq!(sim.assert_agreed(), data(&format!("data-{second}")));
    for node in sim.honest() {
        assert_eq!(
            sim.decided_round(node.index),
            2,
            "n={n} node {}",
            node.index
        );
    }
    (sim, first)
}

#[test]
fn a_crashed_leader_costs_one_round() {
    for n in [4, 7] {
        let (sim, first) = first_leader_costs_one_round(n, 2, Behaviour::Crashed);
        for node in sim.honest() {
            assert!(node.events.contains(&Event::RoundChanged {
                from: 1,
                to: 2,
                reason: RoundChangeReason::Timeout { leader: first }
            }));
        }
    }
}

#[test]
fn a_leader_proposing_an_invalid_value_costs_one_round() {
    for n in [4, 7] {
        let (sim, first) = first_leader_costs_one_round(n, 3, Behaviour::ProposesInvalid);
        for node in sim.honest() {
            let refused_proposal = refusals(&sim, node.index).into_iter().any(|(source, kind, reason)| {
                source == first
                    && kind == MessageKind::PrePrepare
                    && matches!(reason, Refusal::InvalidValue(why) if why.contains("fails this node's checks"))
            });
            assert!(
                refused_proposal,
                "node {} accepted the invalid proposal",
                node.index
            );
        }
    }
}

#[test]
fn an_equivocating_leader_never_splits_the_decision() {
    for n in [4, 7] {
        for seed in 0..6 {
            let sim = Sim::new(n, seed).distinct_inputs();
            let first = sim.leader(1);
            let sim = sim
                .behaviour(first, Behaviour::Equivocates)
                .faults(Faults {
                    max_delay: 300 * MS,
                    ..Faults::default()
                })
                .run(LIMIT);
            sim.assert_agreed();
            let reported = sim.honest().any(|node| {
                node.events
                    .iter()
                    .any(|e| matches!(e, Event::Equivocation { source, .. } if *source == first))
            });
            assert!(
                reported,
                "n={n} seed={seed}: nobody reported node {first}'s equivocation"
            );
        }
    }
}

#[test]
fn late_duplicated_and_reordered_messages_change_nothing() {
    for n in [4, 7] {
        for seed in 0..4 {
            let faults = Faults {
                duplicate_rate: 0.5,
                max_delay: 900 * MS,
                ..Faults::default()
            };
            let sim = Sim::new(n, seed)
                .distinct_inputs()
                .faults(faults)
                .run(LIMIT);
            sim.assert_agreed();
            let duplicates = sim
                .honest()
                .flat_map(|node| refusals(&sim, node.index))
                .filter(|(_, _, reason)| *reason == Refusal::Duplicate)
                .count();
            assert!(
                duplicates > 0,
                "n={n} seed={seed}: the network duplicated nothing"
            );
        }
    }
}

#[test]
fn nodes_whose_input_never_arrives_still_decide() {
    let sim = Sim::new(4, 5);
    let first = sim.leader(1);
    let other = (1..=4).find(|&i| i != first).expect("a non-leader");
    let sim = sim.input(other, None).run(LIMIT);
    assert_eq!(sim.assert_agreed(), data("data"));
    assert_eq!(sim.decided_round(other), 1);

    // The leader of round 1 never gets its input: round 2's leader proposes.
    let sim = Sim::new(4, 6).distinct_inputs();
    let (first, second) = (sim.leader(1), sim.leader(2));
    let sim = sim.input(first, None).run(LIMIT);
    assert_eq!(sim.assert_agreed(), data(&format!("data-{second}")));
    assert_eq!(sim.decided_round(first), 2);
}

#[test]
fn an_input_arriving_late_at_the_leader_is_proposed_in_its_round() {
    let sim = Sim::new(4, 7).distinct_inputs();
    let first = sim.leader(1);
    let sim = sim.input(first, Some((600 * MS, "late"))).run(LIMIT);
    assert_eq!(sim.assert_agreed(), data("late"));
    assert_eq!(sim.decided_round(first), 1);
}

/// COMMITs of round 1 are all lost: every node prepared round 1's value,
/// none decided.
fn commits_of_round_one_lost(_: NodeIndex, _: NodeIndex, body: &MessageBody) -> bool {
    body.kind == MessageKind::Commit && body.round == 1
}

#[test]
fn a_prepared_value_is_carried_across_the_round_change() {
    let sim = Sim::new(4, 8).distinct_inputs();
    let (first, second) = (sim.leader(1), sim.leader(2));
    let sim = sim.drop_rule(commits_of_round_one_lost).run(LIMIT);
    assert_eq!(sim.assert_agreed(), data(&format!("data-{first}")));
    assert_eq!(sim.decided_round(1), 2);
    assert!(sim.events(second).contains(&Event::Proposed {
        round: 2,
        value: digest(&data(&format!("data-{first}"))),
        reproposed: true
    }));
}

#[test]
fn a_leader_that_ignores_the_prepared_value_is_refused() {
    let sim = Sim::new(4, 9).distinct_inputs();
    let (first, second) = (sim.leader(1), sim.leader(2));
    let sim = sim
        .behaviour(second, Behaviour::IgnoresPrepared)
        .drop_rule(commits_of_round_one_lost)
        .run(LIMIT);
    assert_eq!(sim.assert_agreed(), data(&format!("data-{first}")));
    for node in sim.honest() {
        assert_eq!(sim.decided_round(node.index), 3);
        let refused = refusals(&sim, node.index)
            .into_iter()
            .any(|(source, _, reason)| {
                source == second
                    && matches!(
                        reason,
                        Refusal::Unjustified(JustificationError::NotHighestPrepared {
                            round: 1,
                            ..
                        })
                    )
            });
        assert!(
            refused,
            "node {} did not refuse the second leader's proposal",
            node.index
        );
    }
}

#[test]
fn round_changes_from_f_plus_one_nodes_pull_a_slow_node_forward() {
    // Leader 1 is down; node 4's timers run ten times slower than the
    // others'. Without the f+1 rule it would sit in round 1 for 10 s, and
    // round 2 would have no quorum.
    let sim = Sim::new(4, 10);
    let first = sim.leader(1);
    let slow = (1..=4).rev().find(|&i| i != first).expect("another node");
    let sim = sim
        .behaviour(first, Behaviour::Crashed)
        .timeout_scale(slow, 10)
        .run(LIMIT);
    sim.assert_agreed();
    let (decided_at, decision) = sim.node(slow).decision.clone().expect("decided");
    assert_eq!(decision.round, 2);
    assert!(decided_at < 3 * SECOND, "decided only at {decided_at:?}");
    let jumped = sim.events(slow).iter().any(|e| {
        matches!(e, Event::RoundChanged { from: 1, to: 2, reason: RoundChangeReason::RoundChanges { sources } } if sources.len() >= 2)
    });
    assert!(jumped, "{:?}", sim.events(slow));
}

#[test]
fn a_node_down_during_the_decision_learns_it_from_one_message() {
    for n in [4, 7] {
        let late = n;
        let sim = Sim::new(n, 11)
            .behaviour(late, Behaviour::StartsAt(20 * SECOND))
            .run(LIMIT);
        assert_eq!(sim.assert_agreed(), data("data"));
        let (decided_at, decision) = sim.node(late).decision.clone().expect("decided");
        assert_eq!(decision.round, 1);
        // It timed out once (21 s), sent ROUND-CHANGE and was answered.
        assert!(decided_at < 22 * SECOND, "decided at {decided_at:?}");
        let decided: Vec<_> = sim
            .events(late)
            .iter()
            .filter(|e| matches!(e, Event::Decided { .. }))
            .collect();
        assert_eq!(decided.len(), 1);
    }
}

#[test]
fn forged_justifications_are_refused_and_the_rest_decide() {
    let sim = Sim::new(7, 12).distinct_inputs();
    let first = sim.leader(1);
    let forger = sim.leader(2);
    let sim = sim
        .behaviour(first, Behaviour::Crashed)
        .behaviour(forger, Behaviour::ForgesJustifications)
        .run(LIMIT);
    sim.assert_agreed();
    for node in sim.honest() {
        let refused = refusals(&sim, node.index).into_iter().any(|(source, kind, reason)| {
            source == forger
                && kind == MessageKind::RoundChange
                && matches!(reason, Refusal::Unjustified(JustificationError::Entry { problem, .. }) if problem.contains("signature"))
        });
        assert!(
            refused,
            "node {} accepted a forged justification",
            node.index
        );
    }
}

#[test]
fn messages_of_other_instances_unknown_sources_or_far_rounds_are_refused() {
    let keys = cluster_keys(5);
    let config = |index: NodeIndex| {
        Config::new(
            4,
            index,
            keys[index as usize - 1].clone(),
            linear_round_timeout(SECOND, SECOND),
        )
        .unwrap()
    };
    let id = InstanceId::derive("attester", 1);
    let mut node = Instance::<Data>::new(config(1), id, LEADER_SEED, validity(), Duration::ZERO);
    let value = data("data");
    let prepare = |instance, source: NodeIndex, round| {
        let body = MessageBody {
            kind: MessageKind::Prepare,
            instance,
            source,
            round,
            value: Some(digest(&value)),
            prepared: None,
        };
        let signer = keys[source as usize - 1].clone();
        Message::new(body, Some(value.clone()), vec![], &*signer)
    };
    let refused = |out: Output<Data>| match out.events.as_slice() {
        [Event::Refused { reason, .. }] => reason.clone(),
        other => panic!("{other:?}"),
    };
    let other = InstanceId::derive("attester", 2);
    assert_eq!(
        refused(node.receive(prepare(other, 2, 1), Duration::ZERO)),
        Refusal::OtherInstance(other)
    );
    // Node 5 holds a real key, but not one of this cluster of four.
    assert_eq!(
        refused(node.receive(prepare(id, 5, 1), Duration::ZERO)),
        Refusal::UnknownSource { node: 5, nodes: 4 }
    );
    assert!(matches!(
        refused(node.receive(prepare(id, 2, 1000), Duration::ZERO)),
        Refusal::TooFarAhead { round: 1000, .. }
    ));
    let mut forged = prepare(id, 2, 1);
    forged.signed.signature = prepare(id, 3, 1).signed.signature;
    assert_eq!(
        refused(node.receive(forged, Duration::ZERO)),
        Refusal::BadSignature
    );
    assert!(node
        .receive(prepare(id, 2, 1), Duration::ZERO)
        .events
        .is_empty());
}

/// One random schedule: cluster size, network faults, who is faulty and how,
/// who holds which input when.
#[derive(Clone, Debug)]
struct Schedule {
    nodes: u64,
    seed: u64,
    faults: Faults,
    faulty: usize,
}

fn schedules() -> impl Strategy<Value = Schedule> {
    (
        prop::sample::select(vec![4u64, 5, 7]),
        any::<u64>(),
        0.0..0.6f64,
        0.0..0.3f64,
        0u64..1_500,
        0u64..8_000,
        0usize..=2,
    )
        .prop_map(
            |(nodes, seed, drop_rate, duplicate_rate, delay_ms, gst_ms, faulty_wanted)| Schedule {
                nodes,
                seed,
                faults: Faults {
                    drop_rate,
                    duplicate_rate,
                    max_delay: Duration::from_millis(delay_ms),
                    gst: Duration::from_millis(gst_ms),
                },
                faulty: faulty_wanted.min(faulty(nodes) as usize),
            },
        )
}

/// The simulation a schedule describes: up to f faulty nodes of random
/// kinds, maybe an honest node that starts late, inputs at random times
/// (some never), at least one honest node with an input.
fn simulation(schedule: &Schedule) -> Sim {
    let mut rng = StdRng::seed_from_u64(schedule.seed);
    let mut sim = Sim::new(schedule.nodes, schedule.seed).faults(schedule.faults.clone());
    let mut indices: Vec<NodeIndex> = (1..=schedule.nodes).collect();
    for i in (1..indices.len()).rev() {
        indices.swap(i, rng.gen_range(0..=i));
    }
    let kinds = [
        Behaviour::Crashed,
        Behaviour::ProposesInvalid,
        Behaviour::Equivocates,
        Behaviour::IgnoresPrepared,
        Behaviour::ForgesJustifications,
    ];
    for (position, &index) in indices.iter().enumerate() {
        let input = rng.gen_bool(0.8).then(|| {
            let at = rng.gen_range(0..3_000) * MS;
            let value = if rng.gen_bool(0.2) {
                "data".to_string()
            } else {
                format!("data-{index}")
            };
            (at, value)
        });
        sim = sim.input(index, input.as_ref().map(|(at, v)| (*at, v.as_str())));
        if position < schedule.faulty {
            sim = sim.behaviour(index, kinds[rng.gen_range(0..kinds.len())].clone());
        } else if rng.gen_bool(0.2) {
            let at = Duration::from_millis(
                rng.gen_range(0..schedule.faults.gst.as_millis() as u64 + 5_000),
            );
            sim = sim.behaviour(index, Behaviour::StartsAt(at));
        }
    }
    if sim.honest().all(|node| node.input.is_none()) {
        let index = indices[schedule.faulty];
        sim = sim.input(index, Some((Duration::ZERO, "data")));
    }
    sim
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Agreement (no two honest nodes decide differently), validity (the
    /// decision was proposed and is valid for honest nodes) and termination
    /// (every honest node decides once the network is synchronous).
    #[test]
    fn random_schedules_agree_on_a_valid_value_and_terminate(schedule in schedules()) {
        let sim = simulation(&schedule).run(schedule.faults.gst + Duration::from_secs(300));
        sim.assert_agreed();
    }
}
