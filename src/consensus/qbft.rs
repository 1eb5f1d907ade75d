//! The QBFT state machine of one consensus instance, without network or
//! clock.
//!
//! An [`Instance`] is driven by three inputs, each given the current time
//! as a [`Duration`] since any origin the caller keeps fixed:
//! [`Instance::receive`] (a message from a peer), [`Instance::set_input`]
//! (this node's own value, whenever its beacon node answers) and
//! [`Instance::tick`] (call it at [`Output::deadline`]). Each returns an
//! [`Output`]: messages to send, the decision (once), events to log and the
//! next deadline. The node's own messages count for it at once; they are
//! also returned for the caller to send to the other nodes.
//!
//! The protocol is QBFT (IBFT 2.0, "The Istanbul BFT Consensus Algorithm",
//! Moniz 2020, and the QBFT formal specification): in round `r` the leader
//! proposes (PRE-PREPARE); a node that accepts the proposal sends PREPARE; a
//! node that sees a quorum of PREPAREs for one value in its round records
//! that value and the PREPAREs as its prepared certificate and sends COMMIT;
//! a quorum of COMMITs of one round and value is a decision. When a round's
//! timer expires a node moves to the next round and sends ROUND-CHANGE with
//! its prepared certificate; the leader of the new round proposes once it
//! holds a quorum of ROUND-CHANGEs, and must propose the highest prepared
//! value among them (justified by that value's PREPAREs), or its own input
//! when none prepared. A node that sees ROUND-CHANGEs for later rounds from
//! f + 1 nodes moves to the smallest round among the f + 1 highest, since at
//! least one honest node is there. A decided node answers a ROUND-CHANGE
//! with DECIDED (its COMMIT quorum), so a node that was late or restarted
//! learns the decision from one message.
//!
//! Sizes: n nodes (indices `1..=n`, as in the cluster lock), f =
//! floor((n - 1) / 3) faulty, quorum q = ceil(2n / 3). Any two quorums share
//! at least 2q - n >= f + 1 nodes, so at least one honest node, which never
//! sends two different messages of one type and round: two quorums cannot
//! back two values in one round, and a value decided in round r is in the
//! prepared certificate of an honest member of every later ROUND-CHANGE
//! quorum. And n - f >= q, so the honest nodes alone form a quorum.
//!
//! Refusals: a message of another instance, from an unknown source, of a
//! round more than `max_rounds_ahead` ahead, not well formed, badly signed,
//! without a valid justification (each embedded message is checked against
//! its own source's key) or proposing a value the caller's validity
//! predicate refuses, is refused with an [`Event::Refused`] naming why. A
//! second, different message of one type and round from one source is
//! refused as an [`Event::Equivocation`]; the first counts. A message is
//! recorded as its source's only after its justification passed, so a
//! relayed copy with a broken justification cannot shadow the real one.
//!
//! Bounds: messages are kept for the rounds from the current round (two
//! back for COMMITs) to `max_rounds_ahead` ahead, one per type, round and
//! source; justifications hold at most 2n entries; verified signatures are
//! cached up to a bound proportional to that window.
//!
//! A node that restarts starts a fresh instance and does not remember what
//! it sent; its peers count its first message of each type and round, so a
//! different second one is refused as an equivocation, never counted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::message::{
    Digest, InstanceId, Message, MessageBody, MessageError, MessageKind, NodeIndex, NodeKeys,
    PreparedRef, Round, SignatureBytes, SignedBody, Value, MAX_NODES,
};

/// The timeout of each round: a function of the round, so a devnet with
/// 2-second slots and mainnet can both be served. It should increase with
/// the round, so that honest nodes eventually overlap long enough to decide.
pub type RoundTimeout = Arc<dyn Fn(Round) -> Duration + Send + Sync>;

/// The caller's check of a proposed value against its own view (e.g. slot,
/// target epoch and checkpoints against its own beacon node): `Err` says why
/// the value is refused.
pub type Validity<V> = Box<dyn Fn(&V) -> Result<(), String> + Send + Sync>;

/// Default of [`Config::with_max_rounds_ahead`].
pub const DEFAULT_MAX_ROUNDS_AHEAD: u64 = 16;
/// COMMITs of this many rounds before the current one are still counted: a
/// node that timed out just before the last COMMITs arrived decides anyway.
const COMMIT_ROUNDS_BEHIND: u64 = 2;

/// The quorum of a cluster of `nodes`: ceil(2n / 3).
pub fn quorum(nodes: u64) -> u64 {
    nodes.saturating_mul(2).div_ceil(3)
}

/// The faulty nodes a cluster of `nodes` tolerates: floor((n - 1) / 3).
pub fn faulty(nodes: u64) -> u64 {
    nodes.saturating_sub(1) / 3
}

/// The leader of `round`: node `(leader_seed + round) mod n + 1`, a round
/// robin that starts where the instance's seed (e.g. slot and duty kind)
/// puts it, so one node does not lead every instance's first round.
/// `nodes` must be at least 1.
pub fn leader(leader_seed: u64, round: Round, nodes: u64) -> NodeIndex {
    let nodes = nodes.max(1);
    (leader_seed % nodes + round % nodes) % nodes + 1
}

/// Round timeouts growing linearly: `first + (round - 1) * increment`.
pub fn linear_round_timeout(first: Duration, increment: Duration) -> RoundTimeout {
    Arc::new(move |round| {
        let steps = u32::try_from(round.saturating_sub(1)).unwrap_or(u32::MAX);
        first.saturating_add(increment.saturating_mul(steps))
    })
}

/// What an [`Instance`] needs to know of the cluster; shared by every instance.
#[derive(Clone)]
pub struct Config {
    nodes: u64,
    self_index: NodeIndex,
    keys: Arc<dyn NodeKeys>,
    round_timeout: RoundTimeout,
    max_rounds_ahead: u64,
}

/// Why a [`Config`] is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The cluster size is 0 or above [`MAX_NODES`].
    #[error("a cluster has 1..={MAX_NODES} nodes, not {nodes}")]
    Nodes {
        /// The size given.
        nodes: u64,
    },
    /// The node's own index is not in `1..=nodes`.
    #[error("node index {index} is outside 1..={nodes}")]
    SelfIndex {
        /// The index given.
        index: NodeIndex,
        /// The cluster size.
        nodes: u64,
    },
}

impl Config {
    /// A cluster of `nodes` (indices `1..=nodes`) seen from node `self_index`,
    /// with its keys and round timeouts.
    pub fn new(
        nodes: u64,
        self_index: NodeIndex,
        keys: Arc<dyn NodeKeys>,
        round_timeout: RoundTimeout,
    ) -> Result<Self, ConfigError> {
        if !(1..=MAX_NODES).contains(&nodes) {
            return Err(ConfigError::Nodes { nodes });
        }
        if !(1..=nodes).contains(&self_index) {
            return Err(ConfigError::SelfIndex {
                index: self_index,
                nodes,
            });
        }
        Ok(Self {
            nodes,
            self_index,
            keys,
            round_timeout,
            max_rounds_ahead: DEFAULT_MAX_ROUNDS_AHEAD,
        })
    }

    /// Messages of rounds more than `rounds` (at least 1) ahead of the
    /// current round are refused; this bounds what a node keeps.
    pub fn with_max_rounds_ahead(mut self, rounds: u64) -> Self {
        self.max_rounds_ahead = rounds.max(1);
        self
    }

    /// The cluster size n.
    pub fn nodes(&self) -> u64 {
        self.nodes
    }

    /// This node's index.
    pub fn self_index(&self) -> NodeIndex {
        self.self_index
    }

    /// ceil(2n / 3).
    pub fn quorum(&self) -> u64 {
        quorum(self.nodes)
    }

    /// floor((n - 1) / 3).
    pub fn faulty(&self) -> u64 {
        faulty(self.nodes)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("nodes", &self.nodes)
            .field("self_index", &self.self_index)
            .field("max_rounds_ahead", &self.max_rounds_ahead)
            .finish_non_exhaustive()
    }
}

/// Who an outgoing message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    /// Every other node of the cluster.
    All,
    /// One node (a DECIDED answering its ROUND-CHANGE).
    Node(NodeIndex),
}

/// A message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing<V> {
    /// Its recipients.
    pub to: Recipient,
    /// The message.
    pub message: Message<V>,
}

/// The agreed value, with the certificate that proves it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<V> {
    /// The round whose COMMIT quorum decided.
    pub round: Round,
    /// The value.
    pub value: V,
    /// A DECIDED message signed by this node, justified by the COMMIT
    /// quorum: any node of the cluster that receives it decides the same.
    pub certificate: Message<V>,
}

/// What one call to an [`Instance`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Output<V> {
    /// Messages to send, in order.
    pub messages: Vec<Outgoing<V>>,
    /// The decision, in the output of the call that reached it (only once).
    pub decision: Option<Decision<V>>,
    /// What happened, for logs and metrics.
    pub events: Vec<Event>,
    /// When to call [`Instance::tick`]; `None` once decided.
    pub deadline: Option<Duration>,
}

impl<V> Default for Output<V> {
    fn default() -> Self {
        Self {
            messages: Vec::new(),
            decision: None,
            events: Vec::new(),
            deadline: None,
        }
    }
}

/// Why a node moved to another round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundChangeReason {
    /// The round's timer expired before a decision.
    Timeout {
        /// The leader of the round that timed out.
        leader: NodeIndex,
    },
    /// f + 1 nodes sent ROUND-CHANGEs for later rounds.
    RoundChanges {
        /// Those nodes.
        sources: Vec<NodeIndex>,
    },
    /// A justified proposal of a later round arrived.
    Proposal {
        /// Its leader.
        leader: NodeIndex,
    },
}

/// Something the caller logs or counts.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The node moved from round `from` to round `to`.
    RoundChanged {
        /// The round left.
        from: Round,
        /// The round entered.
        to: Round,
        /// Why.
        reason: RoundChangeReason,
    },
    /// This node, as leader, proposed `value`.
    Proposed {
        /// The round.
        round: Round,
        /// The value's digest.
        value: Digest,
        /// Whether it is a value prepared in an earlier round (not the node's input).
        reproposed: bool,
    },
    /// This node leads the round but holds no input yet; it proposes when
    /// the input arrives (if still in the round).
    AwaitingInput {
        /// The round.
        round: Round,
    },
    /// A quorum of PREPAREs: this node prepared `value` and sent COMMIT.
    Prepared {
        /// The round.
        round: Round,
        /// The value's digest.
        value: Digest,
    },
    /// The instance decided.
    Decided {
        /// The round of the COMMIT quorum.
        round: Round,
        /// The value's digest.
        value: Digest,
    },
    /// A message was refused.
    Refused {
        /// The source it claimed.
        source: NodeIndex,
        /// Its type.
        kind: MessageKind,
        /// Its round.
        round: Round,
        /// Why.
        reason: Refusal,
    },
    /// `source` signed two different messages of one type and round: the
    /// first counts, the second was refused.
    Equivocation {
        /// The equivocating node.
        source: NodeIndex,
        /// The message type.
        kind: MessageKind,
        /// The round.
        round: Round,
        /// The digest of the message that counts.
        first: Digest,
        /// The digest of the one refused.
        second: Digest,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::RoundChanged { from, to, reason } => {
                write!(f, "round {from} -> {to}: ")?;
                match reason {
                    RoundChangeReason::Timeout { leader } => {
                        write!(f, "round {from} timed out (leader {leader})")
                    }
                    RoundChangeReason::RoundChanges { sources } => {
                        write!(f, "ROUND-CHANGEs for later rounds from nodes {sources:?}")
                    }
                    RoundChangeReason::Proposal { leader } => {
                        write!(f, "justified proposal from leader {leader}")
                    }
                }
            }
            Event::Proposed {
                round,
                value,
                reproposed,
            } => {
                let what = if *reproposed { "re-proposed prepared value" } else { "proposed" };
                write!(f, "round {round}: {what} {value}")
            }
            Event::AwaitingInput { round } => {
                write!(f, "round {round}: leading, waiting for this node's input")
            }
            Event::Prepared { round, value } => write!(f, "round {round}: prepared {value}"),
            Event::Decided { round, value } => write!(f, "decided {value} in round {round}"),
            Event::Refused {
                source,
                kind,
                round,
                reason,
            } => write!(f, "refused {kind} of round {round} from node {source}: {reason}"),
            Event::Equivocation {
                source,
                kind,
                round,
                first,
                second,
            } => write!(
                f,
                "node {source} equivocated: second {kind} of round {round} ({second}) differs from its first ({first})"
            ),
        }
    }
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The message belongs to another instance.
    #[error("message of instance {0}, not of this one")]
    OtherInstance(InstanceId),
    /// The source is not a node of the cluster.
    #[error("source {node} is not a node of this cluster (1..={nodes})")]
    UnknownSource {
        /// The claimed source.
        node: NodeIndex,
        /// The cluster size.
        nodes: u64,
    },
    /// The message claims to come from this node.
    #[error("message claims this node's own index")]
    OwnSource,
    /// The message's parts do not fit together.
    #[error(transparent)]
    Malformed(MessageError),
    /// The round is further ahead than this node keeps messages for.
    #[error("round {round} is more than {max_ahead} rounds ahead of round {current}")]
    TooFarAhead {
        /// The message's round.
        round: Round,
        /// This node's round.
        current: Round,
        /// The bound.
        max_ahead: u64,
    },
    /// The round is behind the rounds this message type still matters for.
    #[error("round {round} is behind round {current}")]
    Stale {
        /// The message's round.
        round: Round,
        /// This node's round.
        current: Round,
    },
    /// The signature is not the source's.
    #[error("signature does not verify against the source's key")]
    BadSignature,
    /// The same message again.
    #[error("duplicate")]
    Duplicate,
    /// A second, different message of one type and round (reported as
    /// [`Event::Equivocation`]).
    #[error("equivocation: {second} differs from the first message {first}")]
    Equivocation {
        /// The digest of the message that counts.
        first: Digest,
        /// The digest of the refused one.
        second: Digest,
    },
    /// A PRE-PREPARE from a node that does not lead its round.
    #[error("the leader of round {round} is node {leader}")]
    NotLeader {
        /// The round.
        round: Round,
        /// Its leader.
        leader: NodeIndex,
    },
    /// The justification does not justify the message.
    #[error("justification: {0}")]
    Unjustified(#[from] JustificationError),
    /// The caller's validity predicate refused the proposed value.
    #[error("invalid value: {0}")]
    InvalidValue(String),
    /// The instance has decided; only ROUND-CHANGEs are answered (with DECIDED).
    #[error("already decided")]
    AlreadyDecided,
}

impl Refusal {
    /// Whether the refusal is routine (a re-send, a late message, a message
    /// after the decision) rather than a sign of a faulty or misconfigured source.
    pub fn is_benign(&self) -> bool {
        matches!(
            self,
            Refusal::Duplicate | Refusal::Stale { .. } | Refusal::AlreadyDecided
        )
    }
}

/// Why a justification does not justify its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JustificationError {
    /// The message type (or a round-1 PRE-PREPARE, or a ROUND-CHANGE without
    /// a prepared value) takes no justification.
    #[error("{kind} of round {round} takes no justification, got {len} entries")]
    Unexpected {
        /// The message type.
        kind: MessageKind,
        /// The round.
        round: Round,
        /// The number of entries.
        len: usize,
    },
    /// More entries than 2n.
    #[error("{len} entries, at most {max}")]
    TooLong {
        /// The number of entries.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// One entry is not what the message needs.
    #[error("entry {position} ({kind} of round {round} from node {node}): {problem}")]
    Entry {
        /// Its position in the list.
        position: usize,
        /// Its claimed source.
        node: NodeIndex,
        /// Its type.
        kind: MessageKind,
        /// Its round.
        round: Round,
        /// What is wrong.
        problem: &'static str,
    },
    /// Fewer entries of a type from distinct sources than a quorum.
    #[error("{have} {kind}s, a quorum is {need}")]
    TooFew {
        /// The type counted.
        kind: MessageKind,
        /// How many there are.
        have: usize,
        /// The quorum.
        need: u64,
    },
    /// Two ROUND-CHANGEs claim different values prepared in one round.
    #[error("ROUND-CHANGEs claim different values prepared in round {round}")]
    ConflictingPrepared {
        /// The round.
        round: Round,
    },
    /// A proposal that is not the highest prepared value of its ROUND-CHANGEs.
    #[error("proposes {proposed}, but the highest prepared value (round {round}) is {prepared}")]
    NotHighestPrepared {
        /// The highest prepared round.
        round: Round,
        /// The value prepared then.
        prepared: Digest,
        /// The value proposed.
        proposed: Digest,
    },
}

/// A prepared certificate: the value and the quorum of PREPAREs behind it.
#[derive(Debug, Clone)]
struct Prepared<V> {
    round: Round,
    value: V,
    certificate: Vec<SignedBody>,
}

/// The state of one consensus instance at one node. See the module documentation.
pub struct Instance<V: Value> {
    config: Config,
    id: InstanceId,
    leader_seed: u64,
    validity: Validity<V>,
    input: Option<V>,
    round: Round,
    deadline: Option<Duration>,
    /// The last round in which this node proposed (0: none).
    proposed_round: Round,
    /// The last round in which it accepted a proposal and sent PREPARE.
    accepted_round: Round,
    /// The last round in which it sent COMMIT.
    committed_round: Round,
    /// The last round in which it reported leading without an input.
    awaiting_round: Round,
    prepared: Option<Prepared<V>>,
    /// Per round, the first justified message of each type and source
    /// (DECIDED is acted on, never kept).
    log: BTreeMap<Round, BTreeMap<(MessageKind, NodeIndex), Message<V>>>,
    /// Bodies whose signature verified, by digest and signature.
    verified: HashSet<(Digest, SignatureBytes)>,
    decision: Option<Decision<V>>,
    /// Per node, the highest ROUND-CHANGE round answered with DECIDED.
    answered: HashMap<NodeIndex, Round>,
}

impl<V: Value> fmt::Debug for Instance<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.id)
            .field("self_index", &self.config.self_index)
            .field("round", &self.round)
            .field("decided", &self.decision.as_ref().map(|d| d.round))
            .finish_non_exhaustive()
    }
}

impl<V: Value> Instance<V> {
    /// Starts instance `id` in round 1 at `now`. `leader_seed` places the
    /// round robin of leaders (see [`leader`]); `validity` checks proposed
    /// values. The first deadline is [`Instance::deadline`]; nothing is sent
    /// until the input arrives or a message does.
    pub fn new(
        config: Config,
        id: InstanceId,
        leader_seed: u64,
        validity: Validity<V>,
        now: Duration,
    ) -> Self {
        let deadline = Some(now.saturating_add((config.round_timeout)(1)));
        Self {
            config,
            id,
            leader_seed,
            validity,
            input: None,
            round: 1,
            deadline,
            proposed_round: 0,
            accepted_round: 0,
            committed_round: 0,
            awaiting_round: 0,
            prepared: None,
            log: BTreeMap::new(),
            verified: HashSet::new(),
            decision: None,
            answered: HashMap::new(),
        }
    }

    /// The instance's identity.
    pub fn id(&self) -> InstanceId {
        self.id
    }

    /// The current round.
    pub fn round(&self) -> Round {
        self.round
    }

    /// When [`Instance::tick`] is due; `None` once decided.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// The decision, once reached.
    pub fn decision(&self) -> Option<&Decision<V>> {
        self.decision.as_ref()
    }

    /// The leader of `round` in this instance.
    pub fn leader(&self, round: Round) -> NodeIndex {
        leader(self.leader_seed, round, self.config.nodes)
    }

    /// This node's own value arrived. The first input counts; a leader
    /// waiting for it proposes now.
    pub fn set_input(&mut self, value: V, now: Duration) -> Output<V> {
        let mut out = Output::default();
        if self.input.is_none() {
            self.input = Some(value);
            self.progress(now, &mut out);
        }
        self.finish(out)
    }

    /// A message from a peer arrived.
    pub fn receive(&mut self, message: Message<V>, now: Duration) -> Output<V> {
        let mut out = Output::default();
        let body = message.body();
        let (source, kind, round) = (body.source, body.kind, body.round);
        match self.admit(message, now, &mut out) {
            Ok(()) => {}
            Err(Refusal::Equivocation { first, second }) => out.events.push(Event::Equivocation {
                source,
                kind,
                round,
                first,
                second,
            }),
            Err(reason) => out.events.push(Event::Refused {
                source,
                kind,
                round,
                reason,
            }),
        }
        self.progress(now, &mut out);
        self.finish(out)
    }

    /// Time passed: if the round's deadline is reached, move to the next
    /// round and send ROUND-CHANGE.
    pub fn tick(&mut self, now: Duration) -> Output<V> {
        let mut out = Output::default();
        let expired = self.deadline.is_some_and(|deadline| now >= deadline);
        if expired && self.decision.is_none() {
            let leader = self.leader(self.round);
            match self.round.checked_add(1) {
                Some(next) => {
                    self.change_round(next, RoundChangeReason::Timeout { leader }, now, &mut out);
                    self.send_round_change(&mut out);
                }
                None => self.deadline = None,
            }
            self.progress(now, &mut out);
        }
        self.finish(out)
    }

    fn finish(&self, mut out: Output<V>) -> Output<V> {
        out.deadline = self.deadline;
        out
    }

    // === Admission ===

    /// Checks `message` and acts on it, cheapest checks first: envelope,
    /// round window, leader, duplicate, signature, equivocation, justification.
    fn admit(
        &mut self,
        message: Message<V>,
        now: Duration,
        out: &mut Output<V>,
    ) -> Result<(), Refusal> {
        self.check_envelope(&message)?;
        if self.decision.is_some() {
            return self.answer_after_decision(&message, out);
        }
        let body = message.body().clone();
        self.check_round(&body)?;
        if body.kind == MessageKind::PrePrepare {
            let leader = self.leader(body.round);
            if body.source != leader {
                return Err(Refusal::NotLeader {
                    round: body.round,
                    leader,
                });
            }
        }
        let digest = body.digest();
        let first = self.logged(&body).map(|m| m.body().digest());
        if first == Some(digest) {
            return Err(Refusal::Duplicate);
        }
        if !self.authentic(&message.signed) {
            return Err(Refusal::BadSignature);
        }
        if let Some(first) = first {
            return Err(Refusal::Equivocation {
                first,
                second: digest,
            });
        }
        self.check_justification(&message)?;
        match body.kind {
            MessageKind::PrePrepare => self.on_proposal(message, now, out),
            MessageKind::Decided => {
                self.decide(body.round, message.value, message.justification, out);
                Ok(())
            }
            _ => {
                self.record(message);
                Ok(())
            }
        }
    }

    /// Instance, source and well-formedness: what no round or state changes.
    fn check_envelope(&self, message: &Message<V>) -> Result<(), Refusal> {
        let body = message.body();
        if body.instance != self.id {
            return Err(Refusal::OtherInstance(body.instance));
        }
        if !(1..=self.config.nodes).contains(&body.source) {
            return Err(Refusal::UnknownSource {
                node: body.source,
                nodes: self.config.nodes,
            });
        }
        if body.source == self.config.self_index {
            return Err(Refusal::OwnSource);
        }
        message.check_well_formed().map_err(Refusal::Malformed)
    }

    /// The round must be at most `max_rounds_ahead` ahead and not behind the
    /// rounds its type still matters for: COMMITs count for a few rounds
    /// back, a DECIDED for any round, the rest only for the current round on.
    fn check_round(&self, body: &MessageBody) -> Result<(), Refusal> {
        let current = self.round;
        let max_ahead = self.config.max_rounds_ahead;
        if body.round > current.saturating_add(max_ahead) {
            return Err(Refusal::TooFarAhead {
                round: body.round,
                current,
                max_ahead,
            });
        }
        let oldest = match body.kind {
            MessageKind::Commit => current.saturating_sub(COMMIT_ROUNDS_BEHIND),
            MessageKind::Decided => 1,
            _ => current,
        };
        if body.round < oldest {
            return Err(Refusal::Stale {
                round: body.round,
                current,
            });
        }
        Ok(())
    }

    /// After the decision, a ROUND-CHANGE means its source has not decided:
    /// answer it with the DECIDED certificate, once per source and round.
    fn answer_after_decision(
        &mut self,
        message: &Message<V>,
        out: &mut Output<V>,
    ) -> Result<(), Refusal> {
        let body = message.body();
        let answered = self.answered.get(&body.source).copied().unwrap_or(0);
        let in_window = body.round <= self.round.saturating_add(self.config.max_rounds_ahead);
        if body.kind != MessageKind::RoundChange || body.round <= answered || !in_window {
            return Err(Refusal::AlreadyDecided);
        }
        if !self.authentic(&message.signed) {
            return Err(Refusal::BadSignature);
        }
        let Some(decision) = &self.decision else {
            return Err(Refusal::AlreadyDecided);
        };
        out.messages.push(Outgoing {
            to: Recipient::Node(body.source),
            message: decision.certificate.clone(),
        });
        self.answered.insert(body.source, body.round);
        Ok(())
    }

    /// The message of `body`'s type, round and source already recorded, if any.
    fn logged(&self, body: &MessageBody) -> Option<&Message<V>> {
        self.log.get(&body.round)?.get(&(body.kind, body.source))
    }

    fn record(&mut self, message: Message<V>) {
        let body = message.body();
        let key = (body.kind, body.source);
        self.log
            .entry(body.round)
            .or_default()
            .entry(key)
            .or_insert(message);
    }

    /// Whether `signed` carries its source's signature; verified bodies are
    /// cached (by digest and signature, so a cached body with another,
    /// forged signature is verified anew).
    fn authentic(&mut self, signed: &SignedBody) -> bool {
        let digest = signed.body.digest();
        let key = (digest, signed.signature.clone());
        if self.verified.contains(&key) {
            return true;
        }
        if !self
            .config
            .keys
            .verify(signed.body.source, &digest.0, &signed.signature)
        {
            return false;
        }
        // The window of kept rounds times four types of n sources, twice
        // over for justifications; past that the cache starts again.
        let window = self.config.max_rounds_ahead + COMMIT_ROUNDS_BEHIND + 1;
        let capacity = window.saturating_mul(self.config.nodes).saturating_mul(8);
        if self.verified.len() as u64 >= capacity {
            self.verified.clear();
        }
        self.verified.insert(key);
        true
    }

    // === Justifications ===

    fn check_justification(&mut self, message: &Message<V>) -> Result<(), JustificationError> {
        let body = message.body();
        let entries = &message.justification;
        let max = 2 * self.config.nodes as usize;
        if entries.len() > max {
            return Err(JustificationError::TooLong {
                len: entries.len(),
                max,
            });
        }
        let none_expected = || {
            if entries.is_empty() {
                Ok(())
            } else {
                Err(JustificationError::Unexpected {
                    kind: body.kind,
                    round: body.round,
                    len: entries.len(),
                })
            }
        };
        match (body.kind, body.named_value()) {
            (MessageKind::PrePrepare, Some(value)) if body.round > 1 => {
                self.check_proposal_justification(body.round, value, entries)
            }
            (MessageKind::RoundChange, Some(value)) => {
                let round = body.prepared.map_or(0, |p| p.round);
                self.check_certificate(entries, MessageKind::Prepare, round, value)
            }
            (MessageKind::Decided, Some(value)) => {
                self.check_certificate(entries, MessageKind::Commit, body.round, value)
            }
            _ => none_expected(),
        }
    }

    /// A quorum of `kind` messages of `round` for `value` from distinct sources.
    fn check_certificate(
        &mut self,
        entries: &[SignedBody],
        kind: MessageKind,
        round: Round,
        value: Digest,
    ) -> Result<(), JustificationError> {
        self.check_entry_fields(entries, |body| {
            if body.kind != kind {
                Err("wrong message type")
            } else if body.round != round {
                Err("of another round")
            } else if body.value != Some(value) {
                Err("names another value")
            } else {
                Ok(())
            }
        })?;
        self.require_quorum(kind, entries.len())?;
        self.verify_entries(entries)
    }

    /// A PRE-PREPARE of round > 1: a quorum of the round's ROUND-CHANGEs and,
    /// when any of them prepared a value, the proposal is the highest
    /// prepared value and a quorum of its PREPAREs justifies it.
    fn check_proposal_justification(
        &mut self,
        round: Round,
        proposed: Digest,
        entries: &[SignedBody],
    ) -> Result<(), JustificationError> {
        let round_changes = || {
            entries
                .iter()
                .map(|e| &e.body)
                .filter(|b| b.kind == MessageKind::RoundChange && b.round == round)
        };
        let highest = round_changes()
            .filter_map(|b| b.prepared)
            .max_by_key(|p| p.round);
        self.check_entry_fields(entries, |body| match (body.kind, highest) {
            (MessageKind::RoundChange, _) if body.round != round => Err("of another round"),
            (MessageKind::RoundChange, _) => Ok(()),
            (MessageKind::Prepare, Some(p))
                if body.round == p.round && body.value == Some(p.value) =>
            {
                Ok(())
            }
            (MessageKind::Prepare, _) => Err("PREPARE not of the highest prepared value"),
            _ => Err("neither ROUND-CHANGE nor PREPARE"),
        })?;
        self.require_quorum(MessageKind::RoundChange, round_changes().count())?;
        if let Some(p) = highest {
            let conflicting = round_changes()
                .filter_map(|b| b.prepared)
                .any(|q| q.round == p.round && q.value != p.value);
            if conflicting {
                return Err(JustificationError::ConflictingPrepared { round: p.round });
            }
            if proposed != p.value {
                return Err(JustificationError::NotHighestPrepared {
                    round: p.round,
                    prepared: p.value,
                    proposed,
                });
            }
            let prepares = entries
                .iter()
                .filter(|e| e.body.kind == MessageKind::Prepare)
                .count();
            self.require_quorum(MessageKind::Prepare, prepares)?;
        }
        self.verify_entries(entries)
    }

    /// Per entry, without cryptography: this instance, a known source, a
    /// well-formed body, one entry per type and source, and `expected`'s verdict.
    fn check_entry_fields(
        &self,
        entries: &[SignedBody],
        expected: impl Fn(&MessageBody) -> Result<(), &'static str>,
    ) -> Result<(), JustificationError> {
        let mut seen = HashSet::new();
        for (position, entry) in entries.iter().enumerate() {
            let body = &entry.body;
            let problem = if body.instance != self.id {
                Err("of another instance")
            } else if !(1..=self.config.nodes).contains(&body.source) {
                Err("from an unknown source")
            } else if let Err(problem) = body.check_shape() {
                Err(problem)
            } else if !seen.insert((body.kind, body.source)) {
                Err("second entry of its type from its source")
            } else {
                expected(body)
            };
            problem.map_err(|problem| JustificationError::Entry {
                position,
                node: body.source,
                kind: body.kind,
                round: body.round,
                problem,
            })?;
        }
        Ok(())
    }

    fn require_quorum(&self, kind: MessageKind, have: usize) -> Result<(), JustificationError> {
        let need = self.config.quorum();
        if (have as u64) < need {
            return Err(JustificationError::TooFew { kind, have, need });
        }
        Ok(())
    }

    /// Every entry carries its own source's signature.
    fn verify_entries(&mut self, entries: &[SignedBody]) -> Result<(), JustificationError> {
        for (position, entry) in entries.iter().enumerate() {
            if !self.authentic(entry) {
                return Err(JustificationError::Entry {
                    position,
                    node: entry.body.source,
                    kind: entry.body.kind,
                    round: entry.body.round,
                    problem: "signature does not verify against its source's key",
                });
            }
        }
        Ok(())
    }

    // === Rules ===

    /// A justified PRE-PREPARE of this round or a later one: record it,
    /// check the value, move to its round if later, and send PREPARE.
    fn on_proposal(
        &mut self,
        message: Message<V>,
        now: Duration,
        out: &mut Output<V>,
    ) -> Result<(), Refusal> {
        let (round, source) = (message.body().round, message.body().source);
        let value = message.value.clone();
        self.record(message);
        let Some(value) = value else {
            return Ok(()); // unreachable: well-formed proposals carry their value
        };
        (self.validity)(&value).map_err(Refusal::InvalidValue)?;
        if round > self.round {
            self.change_round(
                round,
                RoundChangeReason::Proposal { leader: source },
                now,
                out,
            );
        }
        self.accept(value, out);
        Ok(())
    }

    fn accept(&mut self, value: V, out: &mut Output<V>) {
        if self.accepted_round < self.round {
            self.accepted_round = self.round;
            self.emit(MessageKind::Prepare, Some(value), None, Vec::new(), out);
        }
    }

    /// Applies the rules that depend on what is recorded, until none fires.
    fn progress(&mut self, now: Duration, out: &mut Output<V>) {
        while self.decision.is_none() {
            if let Some((round, commits)) = self.commit_quorum() {
                let value = commits.first().and_then(|m| m.value.clone());
                let justification = commits.into_iter().map(|m| m.signed.clone()).collect();
                self.decide(round, value, justification, out);
            } else if !(self.commit(out)
                || self.propose(out)
                || self.follow_round_changes(now, out))
            {
                return;
            }
        }
    }

    /// A quorum of COMMITs for one value in any recorded round.
    fn commit_quorum(&self) -> Option<(Round, Vec<&Message<V>>)> {
        self.log
            .keys()
            .find_map(|&round| Some((round, self.quorum_of(round, MessageKind::Commit)?)))
    }

    /// A quorum of `kind` messages of `round` naming one value.
    fn quorum_of(&self, round: Round, kind: MessageKind) -> Option<Vec<&Message<V>>> {
        let mut by_value: BTreeMap<Digest, Vec<&Message<V>>> = BTreeMap::new();
        for message in self.messages(round, kind) {
            if let Some(value) = message.body().value {
                by_value.entry(value).or_default().push(message);
            }
        }
        let need = self.config.quorum() as usize;
        by_value
            .into_values()
            .find(|messages| messages.len() >= need)
            .map(|mut messages| {
                messages.truncate(need);
                messages
            })
    }

    fn messages(&self, round: Round, kind: MessageKind) -> impl Iterator<Item = &Message<V>> {
        self.log
            .get(&round)
            .into_iter()
            .flat_map(move |messages| messages.range((kind, 0)..=(kind, NodeIndex::MAX)))
            .map(|(_, message)| message)
    }

    /// A quorum of PREPAREs in the current round: prepare and send COMMIT.
    fn commit(&mut self, out: &mut Output<V>) -> bool {
        if self.committed_round >= self.round {
            return false;
        }
        let Some(prepares) = self.quorum_of(self.round, MessageKind::Prepare) else {
            return false;
        };
        let Some(value) = prepares.first().and_then(|m| m.value.clone()) else {
            return false;
        };
        let certificate = prepares.into_iter().map(|m| m.signed.clone()).collect();
        self.committed_round = self.round;
        out.events.push(Event::Prepared {
            round: self.round,
            value: Digest(value.digest()),
        });
        self.prepared = Some(Prepared {
            round: self.round,
            value: value.clone(),
            certificate,
        });
        self.emit(MessageKind::Commit, Some(value), None, Vec::new(), out);
        true
    }

    /// As the round's leader: propose once, in round 1 the input, later the
    /// highest prepared value of a ROUND-CHANGE quorum, or the input when
    /// none prepared.
    fn propose(&mut self, out: &mut Output<V>) -> bool {
        let round = self.round;
        if self.leader(round) != self.config.self_index || self.proposed_round >= round {
            return false;
        }
        let (prepared_value, justification) = if round == 1 {
            (None, Vec::new())
        } else {
            match self.round_change_justification(round) {
                Some(found) => found,
                None => return false,
            }
        };
        let reproposed = prepared_value.is_some();
        let Some(value) = prepared_value.or_else(|| self.input.clone()) else {
            if self.awaiting_round < round {
                self.awaiting_round = round;
                out.events.push(Event::AwaitingInput { round });
            }
            return false;
        };
        self.proposed_round = round;
        out.events.push(Event::Proposed {
            round,
            value: Digest(value.digest()),
            reproposed,
        });
        self.emit(
            MessageKind::PrePrepare,
            Some(value.clone()),
            None,
            justification,
            out,
        );
        self.accept(value, out);
        true
    }

    /// With a quorum of ROUND-CHANGEs for `round`: the highest prepared
    /// value among them (if any) and the justification of a proposal (every
    /// ROUND-CHANGE of the round and that value's PREPAREs).
    fn round_change_justification(&self, round: Round) -> Option<(Option<V>, Vec<SignedBody>)> {
        let round_changes: Vec<&Message<V>> =
            self.messages(round, MessageKind::RoundChange).collect();
        if (round_changes.len() as u64) < self.config.quorum() {
            return None;
        }
        let highest = round_changes
            .iter()
            .filter(|m| m.body().prepared.is_some())
            .max_by_key(|m| m.body().prepared.map(|p| p.round));
        let mut justification: Vec<SignedBody> =
            round_changes.iter().map(|m| m.signed.clone()).collect();
        if let Some(highest) = highest {
            justification.extend(highest.justification.iter().cloned());
        }
        Some((highest.and_then(|m| m.value.clone()), justification))
    }

    /// f + 1 nodes in later rounds: move to the smallest of the f + 1
    /// highest rounds they are in (at least one honest node is there).
    fn follow_round_changes(&mut self, now: Duration, out: &mut Output<V>) -> bool {
        let mut highest: BTreeMap<NodeIndex, Round> = BTreeMap::new();
        for (&round, messages) in self.log.range(self.round.saturating_add(1)..) {
            for (kind, source) in messages.keys() {
                if *kind == MessageKind::RoundChange {
                    highest.insert(*source, round);
                }
            }
        }
        let needed = self.config.faulty() as usize + 1;
        let mut rounds: Vec<Round> = highest.values().copied().collect();
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&target) = rounds.get(needed - 1) else {
            return false;
        };
        let sources = highest
            .into_iter()
            .filter(|(_, round)| *round >= target)
            .map(|(source, _)| source)
            .collect();
        self.change_round(
            target,
            RoundChangeReason::RoundChanges { sources },
            now,
            out,
        );
        self.send_round_change(out);
        true
    }

    /// Enters round `to`: restarts the timer and forgets rounds no longer kept.
    fn change_round(
        &mut self,
        to: Round,
        reason: RoundChangeReason,
        now: Duration,
        out: &mut Output<V>,
    ) {
        out.events.push(Event::RoundChanged {
            from: self.round,
            to,
            reason,
        });
        self.round = to;
        self.deadline = Some(now.saturating_add((self.config.round_timeout)(to)));
        let oldest = to.saturating_sub(COMMIT_ROUNDS_BEHIND);
        self.log.retain(|round, _| *round >= oldest);
    }

    fn send_round_change(&mut self, out: &mut Output<V>) {
        let (prepared, value, certificate) = match &self.prepared {
            Some(p) => (
                Some(PreparedRef {
                    round: p.round,
                    value: Digest(p.value.digest()),
                }),
                Some(p.value.clone()),
                p.certificate.clone(),
            ),
            None => (None, None, Vec::new()),
        };
        self.emit(MessageKind::RoundChange, value, prepared, certificate, out);
    }

    /// Decides `value` with `commits` (a verified COMMIT quorum of `round`).
    fn decide(
        &mut self,
        round: Round,
        value: Option<V>,
        commits: Vec<SignedBody>,
        out: &mut Output<V>,
    ) {
        let Some(value) = value else {
            return; // unreachable: well-formed COMMITs and DECIDEDs carry their value
        };
        let digest = Digest(value.digest());
        let body = self.body(MessageKind::Decided, round, Some(digest), None);
        let certificate = Message::new(body, Some(value.clone()), commits, &*self.config.keys);
        let decision = Decision {
            round,
            value,
            certificate,
        };
        out.events.push(Event::Decided {
            round,
            value: digest,
        });
        out.decision = Some(decision.clone());
        self.decision = Some(decision);
        self.deadline = None;
        self.log.clear();
    }

    fn body(
        &self,
        kind: MessageKind,
        round: Round,
        value: Option<Digest>,
        prepared: Option<PreparedRef>,
    ) -> MessageBody {
        MessageBody {
            kind,
            instance: self.id,
            source: self.config.self_index,
            round,
            value,
            prepared,
        }
    }

    /// Signs a message of the current round, records it as this node's and
    /// sends it to every other node.
    fn emit(
        &mut self,
        kind: MessageKind,
        value: Option<V>,
        prepared: Option<PreparedRef>,
        justification: Vec<SignedBody>,
        out: &mut Output<V>,
    ) {
        let digest = match kind {
            MessageKind::RoundChange => None,
            _ => value.as_ref().map(|v| Digest(v.digest())),
        };
        let body = self.body(kind, self.round, digest, prepared);
        let message = Message::new(body, value, justification, &*self.config.keys);
        self.record(message.clone());
        out.messages.push(Outgoing {
            to: Recipient::All,
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::message::tests::{test_signature, TestKeys, Text};

    const SECOND: Duration = Duration::from_secs(1);

    fn text(s: &str) -> Text {
        Text(s.to_string())
    }

    fn id() -> InstanceId {
        InstanceId::derive("test", 1)
    }

    /// Node `index` of `nodes` with the TEST DOUBLE keys, timeouts of 1 s,
    /// 2 s, 3 s, ..., leader seed 0 (so with n = 4 the leaders of rounds 1,
    /// 2, 3, 4 are nodes 2, 3, 4, 1) and values valid unless they start with "bad".
    fn node(index: NodeIndex, nodes: u64) -> Instance<Text> {
        let keys = Arc::new(TestKeys { index, nodes });
        let config = Config::new(nodes, index, keys, linear_round_timeout(SECOND, SECOND)).unwrap();
        let validity: Validity<Text> = Box::new(|v: &Text| match v.0.starts_with("bad") {
            true => Err(format!("{:?} is bad", v.0)),
            false => Ok(()),
        });
        Instance::new(config, id(), 0, validity, Duration::ZERO)
    }

    fn body(
        kind: MessageKind,
        source: NodeIndex,
        round: Round,
        value: Option<&Text>,
    ) -> MessageBody {
        MessageBody {
            kind,
            instance: id(),
            source,
            round,
            value: value.map(|v| Digest(v.digest())),
            prepared: None,
        }
    }

    /// `body` signed by the key of `signer` (its own source, unless forging).
    fn signed_by(signer: NodeIndex, body: MessageBody) -> SignedBody {
        let signature = test_signature(signer, &body.digest().0);
        SignedBody { body, signature }
    }

    fn signed(body: MessageBody) -> SignedBody {
        signed_by(body.source, body)
    }

    fn message(
        body: MessageBody,
        value: Option<&Text>,
        justification: Vec<SignedBody>,
    ) -> Message<Text> {
        Message {
            signed: signed(body),
            value: value.cloned(),
            justification,
        }
    }

    fn prepare(source: NodeIndex, round: Round, value: &Text) -> Message<Text> {
        message(
            body(MessageKind::Prepare, source, round, Some(value)),
            Some(value),
            vec![],
        )
    }

    fn commit(source: NodeIndex, round: Round, value: &Text) -> Message<Text> {
        message(
            body(MessageKind::Commit, source, round, Some(value)),
            Some(value),
            vec![],
        )
    }

    fn certificate(
        kind: MessageKind,
        sources: &[NodeIndex],
        round: Round,
        value: &Text,
    ) -> Vec<SignedBody> {
        sources
            .iter()
            .map(|&s| signed(body(kind, s, round, Some(value))))
            .collect()
    }

    /// A ROUND-CHANGE for `round`, prepared `(round, value)` by `prepared_by` when given.
    fn round_change(
        source: NodeIndex,
        round: Round,
        prepared: Option<(Round, &Text, &[NodeIndex])>,
    ) -> Message<Text> {
        let mut b = body(MessageKind::RoundChange, source, round, None);
        let (value, justification) = match prepared {
            Some((prepared_round, value, sources)) => {
                b.prepared = Some(PreparedRef {
                    round: prepared_round,
                    value: Digest(value.digest()),
                });
                (
                    Some(value),
                    certificate(MessageKind::Prepare, sources, prepared_round, value),
                )
            }
            None => (None, vec![]),
        };
        message(b, value, justification)
    }

    fn pre_prepare(
        source: NodeIndex,
        round: Round,
        value: &Text,
        justification: Vec<SignedBody>,
    ) -> Message<Text> {
        message(
            body(MessageKind::PrePrepare, source, round, Some(value)),
            Some(value),
            justification,
        )
    }

    fn sent(out: &Output<Text>) -> Vec<(MessageKind, Round, Option<Digest>)> {
        out.messages
            .iter()
            .map(|o| {
                (
                    o.message.body().kind,
                    o.message.body().round,
                    o.message.body().named_value(),
                )
            })
            .collect()
    }

    fn refusal(out: &Output<Text>) -> Refusal {
        match out.events.as_slice() {
            [Event::Refused { reason, .. }] => reason.clone(),
            other => panic!("expected one refusal, got {other:?}"),
        }
    }

    fn digest(value: &Text) -> Option<Digest> {
        Some(Digest(value.digest()))
    }

    /// `out` is this node's proposal of `value` in `round` and its own PREPARE.
    fn assert_proposes(out: &Output<Text>, round: Round, value: &Text, reproposed: bool) {
        let kinds = [MessageKind::PrePrepare, MessageKind::Prepare];
        let expected: Vec<_> = kinds
            .iter()
            .map(|&kind| (kind, round, digest(value)))
            .collect();
        assert_eq!(sent(out), expected);
        let value = Digest(value.digest());
        assert_eq!(
            out.events,
            [Event::Proposed {
                round,
                value,
                reproposed
            }]
        );
    }

    /// Delivers every message of `outs` (and of the outputs they cause) to
    /// its recipients in order, synchronously.
    fn deliver_all(nodes: &mut [Instance<Text>], mut queue: Vec<(NodeIndex, Outgoing<Text>)>) {
        while !queue.is_empty() {
            let (from, outgoing) = queue.remove(0);
            for to in 1..=nodes.len() as u64 {
                let addressed = match outgoing.to {
                    Recipient::All => to != from,
                    Recipient::Node(node) => to == node,
                };
                if addressed {
                    let out =
                        nodes[to as usize - 1].receive(outgoing.message.clone(), Duration::ZERO);
                    queue.extend(out.messages.into_iter().map(|o| (to, o)));
                }
            }
        }
    }

    #[test]
    fn quorums_intersect_in_an_honest_node_and_honest_nodes_form_one() {
        assert_eq!((quorum(4), faulty(4)), (3, 1));
        assert_eq!((quorum(7), faulty(7)), (5, 2));
        assert_eq!((quorum(10), faulty(10)), (7, 3));
        for n in 1..=MAX_NODES {
            let (q, f) = (quorum(n), faulty(n));
            assert!(3 * f < n, "n={n}");
            let overlap = 2 * q - n;
            assert!(
                overlap > f,
                "two quorums of n={n} share only {overlap} nodes"
            );
            assert!(n - f >= q, "the honest nodes of n={n} are no quorum");
        }
    }

    #[test]
    fn leaders_rotate_from_the_seed() {
        let leaders: Vec<_> = (1..=8).map(|r| leader(0, r, 4)).collect();
        assert_eq!(leaders, [2, 3, 4, 1, 2, 3, 4, 1]);
        assert_eq!(leader(5, 1, 4), 3);
        // 2^64 - 1 = 1 mod 7: no overflow, (1 + 1) mod 7 + 1.
        assert_eq!(leader(u64::MAX, u64::MAX, 7), 3);
    }

    #[test]
    fn configs_out_of_range_are_refused() {
        let keys = || Arc::new(TestKeys { index: 1, nodes: 4 }) as Arc<dyn NodeKeys>;
        let timeout = || linear_round_timeout(SECOND, SECOND);
        assert_eq!(
            Config::new(0, 1, keys(), timeout()).unwrap_err(),
            ConfigError::Nodes { nodes: 0 }
        );
        assert_eq!(
            Config::new(MAX_NODES + 1, 1, keys(), timeout()).unwrap_err(),
            ConfigError::Nodes {
                nodes: MAX_NODES + 1
            }
        );
        assert_eq!(
            Config::new(4, 5, keys(), timeout()).unwrap_err(),
            ConfigError::SelfIndex { index: 5, nodes: 4 }
        );
    }

    #[test]
    fn four_nodes_decide_in_round_one() {
        let mut nodes: Vec<_> = (1..=4).map(|i| node(i, 4)).collect();
        let value = text("attestation data");
        let mut queue = Vec::new();
        for (i, node) in nodes.iter_mut().enumerate() {
            let out = node.set_input(value.clone(), Duration::ZERO);
            queue.extend(out.messages.into_iter().map(|o| (i as u64 + 1, o)));
        }
        // Only the leader of round 1 (node 2) speaks first.
        assert_eq!(queue.len(), 2);
        assert!(queue.iter().all(|(from, _)| *from == 2));
        deliver_all(&mut nodes, queue);
        for node in &nodes {
            let decision = node.decision().expect("decided");
            assert_eq!((decision.round, &decision.value), (1, &value));
            assert_eq!(node.deadline(), None);
        }
    }

    #[test]
    fn a_single_node_decides_its_own_input() {
        let mut solo = node(1, 1);
        let out = solo.set_input(text("v"), Duration::ZERO);
        assert_eq!(out.decision.map(|d| d.value), Some(text("v")));
    }

    #[test]
    fn messages_outside_the_instance_or_the_cluster_are_refused() {
        let value = text("a");
        let mut n1 = node(1, 4);
        let mut other = prepare(3, 1, &value);
        other.signed.body.instance = InstanceId::derive("test", 2);
        assert_eq!(
            refusal(&n1.receive(other, Duration::ZERO)),
            Refusal::OtherInstance(InstanceId::derive("test", 2))
        );
        for source in [0, 5] {
            assert_eq!(
                refusal(&n1.receive(prepare(source, 1, &value), Duration::ZERO)),
                Refusal::UnknownSource {
                    node: source,
                    nodes: 4
                }
            );
        }
        assert_eq!(
            refusal(&n1.receive(prepare(1, 1, &value), Duration::ZERO)),
            Refusal::OwnSource
        );
        assert_eq!(
            refusal(&n1.receive(prepare(3, 18, &value), Duration::ZERO)),
            Refusal::TooFarAhead {
                round: 18,
                current: 1,
                max_ahead: DEFAULT_MAX_ROUNDS_AHEAD
            }
        );
        assert!(n1
            .receive(prepare(3, 17, &value), Duration::ZERO)
            .events
            .is_empty());
        assert!(matches!(
            refusal(&n1.receive(prepare(3, 0, &value), Duration::ZERO)),
            Refusal::Malformed(MessageError::Malformed {
                problem: "rounds start at 1",
                ..
            })
        ));
    }

    #[test]
    fn a_signature_of_another_key_is_refused() {
        let value = text("a");
        let mut n1 = node(1, 4);
        let mut forged = prepare(3, 1, &value);
        forged.signed = signed_by(4, forged.signed.body.clone());
        assert_eq!(
            refusal(&n1.receive(forged, Duration::ZERO)),
            Refusal::BadSignature
        );
        // The genuine message still counts afterwards.
        assert!(n1
            .receive(prepare(3, 1, &value), Duration::ZERO)
            .events
            .is_empty());
    }

    #[test]
    fn duplicates_are_dropped_and_equivocation_is_reported_while_the_first_counts() {
        let (a, b) = (text("a"), text("b"));
        let mut n1 = node(1, 4);
        assert!(n1
            .receive(prepare(3, 1, &a), Duration::ZERO)
            .events
            .is_empty());
        assert_eq!(
            refusal(&n1.receive(prepare(3, 1, &a), Duration::ZERO)),
            Refusal::Duplicate
        );
        let out = n1.receive(prepare(3, 1, &b), Duration::ZERO);
        assert_eq!(
            out.events,
            [Event::Equivocation {
                source: 3,
                kind: MessageKind::Prepare,
                round: 1,
                first: prepare(3, 1, &a).signed.body.digest(),
                second: prepare(3, 1, &b).signed.body.digest(),
            }]
        );
        // Node 3's first PREPARE counts towards the quorum for a.
        n1.receive(prepare(2, 1, &a), Duration::ZERO);
        let out = n1.receive(prepare(4, 1, &a), Duration::ZERO);
        assert_eq!(sent(&out), [(MessageKind::Commit, 1, digest(&a))]);
    }

    #[test]
    fn proposals_from_others_than_the_leader_or_of_bad_values_are_refused() {
        let mut n1 = node(1, 4);
        assert_eq!(
            refusal(&n1.receive(pre_prepare(3, 1, &text("a"), vec![]), Duration::ZERO)),
            Refusal::NotLeader {
                round: 1,
                leader: 2
            }
        );
        let out = n1.receive(
            pre_prepare(2, 1, &text("bad value"), vec![]),
            Duration::ZERO,
        );
        assert_eq!(
            refusal(&out),
            Refusal::InvalidValue("\"bad value\" is bad".into())
        );
        assert!(out.messages.is_empty());
        let justified = vec![signed(body(MessageKind::RoundChange, 3, 1, None))];
        let mut n4 = node(4, 4);
        assert!(matches!(
            refusal(&n4.receive(pre_prepare(2, 1, &text("a"), justified), Duration::ZERO)),
            Refusal::Unjustified(JustificationError::Unexpected { .. })
        ));
    }

    #[test]
    fn a_node_without_input_prepares_and_a_leader_proposes_when_its_input_arrives() {
        let value = text("a");
        let mut n1 = node(1, 4);
        let out = n1.receive(pre_prepare(2, 1, &value, vec![]), Duration::ZERO);
        assert_eq!(sent(&out), [(MessageKind::Prepare, 1, digest(&value))]);

        let mut n2 = node(2, 4);
        let out = n2.receive(prepare(3, 1, &value), Duration::ZERO);
        assert!(out.messages.is_empty());
        let out = n2.tick(Duration::from_millis(500));
        assert!(out.messages.is_empty());
        let out = n2.set_input(value.clone(), Duration::from_millis(600));
        assert_proposes(&out, 1, &value, false);
    }

    #[test]
    fn a_timeout_moves_to_the_next_round_with_a_longer_timer() {
        let mut n1 = node(1, 4);
        assert_eq!(n1.deadline(), Some(SECOND));
        assert!(n1.tick(Duration::from_millis(999)).events.is_empty());
        let out = n1.tick(SECOND);
        assert_eq!(
            out.events,
            [Event::RoundChanged {
                from: 1,
                to: 2,
                reason: RoundChangeReason::Timeout { leader: 2 }
            }]
        );
        assert_eq!(sent(&out), [(MessageKind::RoundChange, 2, None)]);
        assert_eq!(out.deadline, Some(3 * SECOND));
        assert_eq!(n1.round(), 2);
    }

    #[test]
    fn round_changes_from_f_plus_one_nodes_pull_a_node_forward() {
        let mut n1 = node(1, 4);
        assert!(n1
            .receive(round_change(3, 5, None), Duration::ZERO)
            .messages
            .is_empty());
        assert_eq!(n1.round(), 1);
        let out = n1.receive(round_change(4, 3, None), SECOND / 2);
        assert_eq!(
            out.events,
            [Event::RoundChanged {
                from: 1,
                to: 3,
                reason: RoundChangeReason::RoundChanges {
                    sources: vec![3, 4]
                }
            }]
        );
        assert_eq!(sent(&out), [(MessageKind::RoundChange, 3, None)]);
        assert_eq!(out.deadline, Some(SECOND / 2 + 3 * SECOND));
    }

    /// Nodes 1, 2 and 4 prepared `a` in round 1; node 3 leads round 2.
    fn round_two_changes(a: &Text) -> Vec<Message<Text>> {
        vec![
            round_change(1, 2, Some((1, a, &[1, 2, 4]))),
            round_change(2, 2, None),
            round_change(4, 2, Some((1, a, &[1, 2, 4]))),
        ]
    }

    fn proposal_justification(
        round_changes: &[Message<Text>],
        prepared: Option<(&Text, &[NodeIndex])>,
    ) -> Vec<SignedBody> {
        let mut justification: Vec<_> = round_changes.iter().map(|m| m.signed.clone()).collect();
        if let Some((value, sources)) = prepared {
            justification.extend(certificate(MessageKind::Prepare, sources, 1, value));
        }
        justification
    }

    #[test]
    fn a_new_leader_reproposes_the_highest_prepared_value() {
        let (a, b) = (text("a"), text("b"));
        let mut n3 = node(3, 4);
        n3.set_input(b.clone(), Duration::ZERO);
        n3.tick(SECOND);
        let changes = round_two_changes(&a);
        n3.receive(changes[1].clone(), SECOND);
        let out = n3.receive(changes[0].clone(), SECOND);
        assert_proposes(&out, 2, &a, true);
        // Its proposal is justified for the others.
        let mut n2 = node(2, 4);
        let out = n2.receive(out.messages[0].message.clone(), SECOND);
        assert_eq!(sent(&out), [(MessageKind::Prepare, 2, digest(&a))]);
    }

    #[test]
    fn a_new_leader_without_prepared_value_proposes_its_input() {
        let b = text("b");
        let mut n3 = node(3, 4);
        n3.tick(SECOND);
        n3.receive(round_change(1, 2, None), SECOND);
        let out = n3.receive(round_change(2, 2, None), SECOND);
        assert_eq!(out.events, [Event::AwaitingInput { round: 2 }]);
        let out = n3.set_input(b.clone(), SECOND);
        assert_eq!(sent(&out)[0], (MessageKind::PrePrepare, 2, digest(&b)));
        let justification = &out.messages[0].message.justification;
        assert_eq!(justification.len(), 3);
    }

    #[test]
    fn a_proposal_other_than_the_highest_prepared_value_is_refused() {
        let (a, b) = (text("a"), text("b"));
        let changes = round_two_changes(&a);
        let mut n1 = node(1, 4);
        let wrong = pre_prepare(
            3,
            2,
            &b,
            proposal_justification(&changes, Some((&a, &[1, 2, 4]))),
        );
        assert_eq!(
            refusal(&n1.receive(wrong, Duration::ZERO)),
            Refusal::Unjustified(JustificationError::NotHighestPrepared {
                round: 1,
                prepared: digest(&a).unwrap(),
                proposed: digest(&b).unwrap()
            })
        );
        // Without the PREPAREs of the prepared value, even `a` is unjustified.
        let bare = pre_prepare(3, 2, &a, proposal_justification(&changes, None));
        assert!(matches!(
            refusal(&node(1, 4).receive(bare, Duration::ZERO)),
            Refusal::Unjustified(JustificationError::TooFew {
                kind: MessageKind::Prepare,
                have: 0,
                need: 3
            })
        ));
        let right = pre_prepare(
            3,
            2,
            &a,
            proposal_justification(&changes, Some((&a, &[1, 2, 4]))),
        );
        let out = node(1, 4).receive(right, Duration::ZERO);
        assert_eq!(
            out.events,
            [Event::RoundChanged {
                from: 1,
                to: 2,
                reason: RoundChangeReason::Proposal { leader: 3 }
            }]
        );
        assert_eq!(sent(&out), [(MessageKind::Prepare, 2, digest(&a))]);
        // Two ROUND-CHANGEs are no quorum.
        let few = pre_prepare(
            3,
            2,
            &text("c"),
            proposal_justification(&changes[1..], None),
        );
        assert!(matches!(
            refusal(&node(1, 4).receive(few, Duration::ZERO)),
            Refusal::Unjustified(JustificationError::TooFew {
                kind: MessageKind::RoundChange,
                have: 2,
                need: 3
            })
        ));
    }

    #[test]
    fn forged_justification_entries_are_refused() {
        let a = text("a");
        let mut n1 = node(1, 4);
        // Node 4 claims that 1, 2 and 3 prepared `a`, signing their PREPAREs itself.
        let mut forged = round_change(4, 2, Some((1, &a, &[])));
        forged.justification = [1, 2, 3]
            .iter()
            .map(|&s| signed_by(4, body(MessageKind::Prepare, s, 1, Some(&a))))
            .collect();
        assert!(matches!(
            refusal(&n1.receive(forged, Duration::ZERO)),
            Refusal::Unjustified(JustificationError::Entry {
                position: 0,
                node: 1,
                problem: "signature does not verify against its source's key",
                ..
            })
        ));
        // One node's PREPARE counted twice is no quorum either.
        let mut doubled = round_change(4, 2, Some((1, &a, &[2, 3])));
        doubled.justification.push(doubled.justification[0].clone());
        assert!(matches!(
            refusal(&n1.receive(doubled, Duration::ZERO)),
            Refusal::Unjustified(JustificationError::Entry {
                position: 2,
                problem: "second entry of its type from its source",
                ..
            })
        ));
        // A proposal resting on forged ROUND-CHANGEs.
        let changes: Vec<SignedBody> = [1, 2, 4]
            .iter()
            .map(|&s| signed_by(3, body(MessageKind::RoundChange, s, 2, None)))
            .collect();
        assert!(matches!(
            refusal(&n1.receive(pre_prepare(3, 2, &a, changes), Duration::ZERO)),
            Refusal::Unjustified(JustificationError::Entry {
                problem: "signature does not verify against its source's key",
                ..
            })
        ));
    }

    #[test]
    fn a_decided_message_decides_a_node_that_missed_the_round() {
        let a = text("a");
        let commits = certificate(MessageKind::Commit, &[1, 2, 3], 1, &a);
        let decided = message(
            body(MessageKind::Decided, 2, 1, Some(&a)),
            Some(&a),
            commits.clone(),
        );
        let mut n4 = node(4, 4);
        let too_few = message(
            body(MessageKind::Decided, 2, 1, Some(&a)),
            Some(&a),
            commits[..2].to_vec(),
        );
        assert!(matches!(
            refusal(&n4.receive(too_few, Duration::ZERO)),
            Refusal::Unjustified(JustificationError::TooFew {
                kind: MessageKind::Commit,
                have: 2,
                need: 3
            })
        ));
        let out = n4.receive(decided, Duration::ZERO);
        assert_eq!(
            out.events,
            [Event::Decided {
                round: 1,
                value: digest(&a).unwrap()
            }]
        );
        let decision = out.decision.expect("decided");
        assert_eq!((decision.round, decision.value), (1, a.clone()));
        assert_eq!(out.deadline, None);

        // Decided, it answers a ROUND-CHANGE with its certificate, once per round.
        let out = n4.receive(round_change(1, 2, None), Duration::ZERO);
        assert_eq!(out.messages.len(), 1);
        assert_eq!(out.messages[0].to, Recipient::Node(1));
        let mut n1 = node(1, 4);
        let learned = n1.receive(out.messages[0].message.clone(), Duration::ZERO);
        assert_eq!(learned.decision.map(|d| d.value), Some(a.clone()));
        assert_eq!(
            refusal(&n4.receive(round_change(1, 2, None), Duration::ZERO)),
            Refusal::AlreadyDecided
        );
        assert_eq!(
            n4.receive(round_change(1, 3, None), Duration::ZERO)
                .messages
                .len(),
            1
        );
        assert_eq!(
            refusal(&n4.receive(prepare(2, 1, &a), Duration::ZERO)),
            Refusal::AlreadyDecided
        );
    }

    #[test]
    fn commits_of_a_round_just_left_still_decide() {
        let a = text("a");
        let mut n1 = node(1, 4);
        n1.tick(SECOND);
        n1.tick(3 * SECOND);
        assert_eq!(n1.round(), 3);
        n1.receive(commit(2, 1, &a), 3 * SECOND);
        n1.receive(commit(3, 1, &a), 3 * SECOND);
        let out = n1.receive(commit(4, 1, &a), 3 * SECOND);
        assert_eq!(
            out.decision.map(|d| (d.round, d.value)),
            Some((1, a.clone()))
        );
        let mut n1 = node(1, 4);
        for now in [1, 3, 6] {
            n1.tick(now * SECOND);
        }
        assert_eq!(
            refusal(&n1.receive(commit(2, 1, &a), 6 * SECOND)),
            Refusal::Stale {
                round: 1,
                current: 4
            }
        );
    }

    #[test]
    fn the_log_keeps_only_the_window_of_rounds() {
        let a = text("a");
        let mut n1 = node(1, 4).with_max_rounds_ahead(4);
        for round in 1..=5 {
            assert!(n1
                .receive(prepare(3, round, &a), Duration::ZERO)
                .events
                .is_empty());
        }
        assert!(matches!(
            refusal(&n1.receive(prepare(3, 6, &a), Duration::ZERO)),
            Refusal::TooFarAhead {
                round: 6,
                current: 1,
                max_ahead: 4
            }
        ));
        n1.receive(round_change(3, 5, None), Duration::ZERO);
        n1.receive(round_change(4, 5, None), Duration::ZERO);
        assert_eq!(n1.round(), 5);
        assert_eq!(n1.log.keys().next(), Some(&3));
    }

    impl Instance<Text> {
        fn with_max_rounds_ahead(mut self, rounds: u64) -> Self {
            self.config = self.config.with_max_rounds_ahead(rounds);
            self
        }
    }

    #[test]
    fn instances_move_between_threads() {
        fn send_and_sync<T: Send + Sync>() {}
        send_and_sync::<Instance<Text>>();
        send_and_sync::<Config>();
    }

    #[test]
    fn events_read_as_sentences() {
        let event = Event::RoundChanged {
            from: 1,
            to: 2,
            reason: RoundChangeReason::Timeout { leader: 2 },
        };
        assert_eq!(
            event.to_string(),
            "round 1 -> 2: round 1 timed out (leader 2)"
        );
        let refused = Event::Refused {
            source: 3,
            kind: MessageKind::PrePrepare,
            round: 1,
            reason: Refusal::NotLeader {
                round: 1,
                leader: 2,
            },
        };
        assert_eq!(
            refused.to_string(),
            "refused PRE-PREPARE of round 1 from node 3: the leader of round 1 is node 2"
        );
    }
}
