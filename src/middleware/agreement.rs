//! The cluster's agreement on what to sign, run over the peer channel: one
//! QBFT instance ([`crate::consensus`]) per kind of value and slot, for all
//! of the cluster's validators at once.
//!
//! An instance of a slot starts at the first of: this node's VC asks for the
//! value, a peer's message for it arrives, or the caller starts it (the
//! follower does, at a set point of the slot). Starting it fetches this
//! node's own value from its beacon node ([`Proposals::fetch`], for at most
//! half of the first round), which is what it proposes when it leads a
//! round, and which its validity check compares every proposal with
//! ([`Proposals::check`]); only then does the instance run. A node whose
//! beacon node had no value asks again every half first round, for about a
//! slot, while the instance runs, so that it has one to propose if a later round makes it
//! the leader. Messages for a
//! slot whose instance is not running yet are kept (bounded) until it does;
//! those of slots outside the window around the current slot are refused.
//!
//! The core is pure; this driver owns the clock (every call passes the time
//! since the UNIX epoch), one timer task per running instance, the sending
//! of each output's messages (one request per peer), and the waiters of each
//! decision. Refusals and equivocations are logged with the operator they
//! name; decisions are counted by round.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use super::metrics::{DutyEvent, Metrics};
use super::peer::ItemOutcome;
use super::peer_client::PeerClient;
use crate::cluster::{ClusterLock, NodeIdentity};
use crate::consensus::{
    Config, Event, Instance, InstanceId, Message, NodeIndex, NodeKeys, Output, Recipient,
    RoundTimeout, SignatureBytes, Validity, Value,
};
use crate::crypto::{PublicKey, SecretKey, Signature};
use crate::spec::time::unix_now;
use crate::spec::Slot;

/// Slots either side of the current one whose instances run or buffer.
const WINDOW_SLOTS: u64 = 4;
/// Messages kept per slot whose instance has not started.
const MAX_BUFFERED: usize = 256;
/// How many times a node without its own value asks its beacon node again.
const MAX_OWN_RETRIES: u32 = 16;
/// Decided values kept behind the current slot (for late partials).
const KEEP_DECIDED_SLOTS: u64 = 64;

/// A boxed future of a value or why there is none.
pub type ValueFuture<V> = Pin<Box<dyn Future<Output = Result<V, String>> + Send>>;

/// What one kind of agreement proposes and accepts.
pub trait Proposals<V>: Send + Sync {
    /// The kind's label: instance ids, logs and metrics.
    fn label(&self) -> &'static str;

    /// Where the leader round robin of `slot`'s instance starts.
    fn leader_seed(&self, slot: Slot) -> u64 {
        slot
    }

    /// This node's own value for `slot`, from its beacon node.
    fn fetch(&self, slot: Slot) -> ValueFuture<V>;

    /// Whether a proposed `value` for `slot` is acceptable to this node;
    /// `own` is this node's own value, once fetched.
    fn check(&self, slot: Slot, value: &V, own: Option<&V>) -> Result<(), String>;

    /// Whether this kind's nodes offer their own values to each other, so
    /// that a round-1 leader proposes the best of them ([`Self::improve`])
    /// rather than its own alone.
    fn prefers_best(&self) -> bool {
        false
    }

    /// What this node proposes given its `own` value and the values its
    /// peers offered (not yet checked): `own` unless the kind prefers one.
    fn improve(&self, _slot: Slot, own: V, _offers: Vec<V>) -> V {
        own
    }

    /// The duty label and the number of duties a decided `value` settles,
    /// for `dv_duties_total{event="agreed"}`; `None` when the value is not
    /// counted per duty (`dv_agreements_total` counts every decision).
    fn agreed_duties(&self, _value: &V) -> Option<(&'static str, usize)> {
        None
    }
}

/// The cluster's BLS node keys as the agreement signs and verifies with them.
pub struct LockNodeKeys {
    own: SecretKey,
    keys: HashMap<NodeIndex, PublicKey>,
}

impl LockNodeKeys {
    /// The node keys of `lock`'s operators (those with a BLS identity), and
    /// this node's own key.
    pub fn new(lock: &ClusterLock, own: SecretKey) -> Self {
        let keys = lock
            .operators
            .iter()
            .filter_map(|operator| match &operator.identity {
                NodeIdentity::Bls(key) => Some((operator.index, *key)),
                NodeIdentity::Enr(_) => None,
            })
            .collect();
        Self { own, keys }
    }
}

impl NodeKeys for LockNodeKeys {
    fn sign(&self, digest: &[u8; 32]) -> SignatureBytes {
        let signature = self.own.sign(digest).to_bytes().to_vec();
        // 96 bytes is within the bound; an empty signature would never verify.
        SignatureBytes::new(signature).unwrap_or_default()
    }

    fn verify(&self, source: NodeIndex, digest: &[u8; 32], signature: &SignatureBytes) -> bool {
        let Some(key) = self.keys.get(&source) else {
            return false;
        };
        Signature::from_bytes(signature.as_bytes())
            .map(|signature| signature.verify(key, digest))
            .unwrap_or(false)
    }
}

/// One slot's instance, or what waits for it.
struct SlotState<V: Value> {
    /// The instance has been started (it may still be fetching its input).
    starting: bool,
    instance: Option<Instance<V>>,
    buffered: Vec<Message<V>>,
    decided: watch::Sender<Option<V>>,
    wake_timer: Arc<Notify>,
    /// The own values peers offered, by operator (one each).
    offers: BTreeMap<u64, V>,
    offer_arrived: Arc<Notify>,
}

impl<V: Value> SlotState<V> {
    fn new() -> Self {
        Self {
            starting: false,
            instance: None,
            buffered: Vec::new(),
            decided: watch::Sender::new(None),
            wake_timer: Arc::new(Notify::new()),
            offers: BTreeMap::new(),
            offer_arrived: Arc::new(Notify::new()),
        }
    }
}

/// A node's own value of an instance, offered to its peers (see
/// [`Proposals::prefers_best`]); the peer request that carries it is
/// authenticated by the sender's node key.
#[derive(serde::Serialize, serde::Deserialize)]
struct Offer<V> {
    offer: OfferBody<V>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct OfferBody<V> {
    instance: InstanceId,
    value: V,
}

struct Inner<V: Value> {
    slots: BTreeMap<Slot, SlotState<V>>,
    ids: HashMap<InstanceId, Slot>,
    current_slot: Slot,
}

/// The agreement of one kind of value among the cluster's nodes.
pub struct Agreement<V: Value> {
    me: std::sync::Weak<Self>,
    proposals: Arc<dyn Proposals<V>>,
    config: Config,
    round_timeout: RoundTimeout,
    client: PeerClient,
    metrics: Arc<Metrics>,
    inner: Mutex<Inner<V>>,
}

impl<V: Value> Agreement<V> {
    /// An agreement of `proposals`' kind among the nodes of `config` (whose
    /// rounds last `round_timeout`), sending through `client`.
    pub fn new(
        proposals: Arc<dyn Proposals<V>>,
        config: Config,
        round_timeout: RoundTimeout,
        client: PeerClient,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            proposals,
            config,
            round_timeout,
            client,
            metrics,
            inner: Mutex::new(Inner {
                slots: BTreeMap::new(),
                ids: HashMap::new(),
                current_slot: 0,
            }),
        })
    }

    /// The agreement's configuration for a cluster of `lock` seen from
    /// `self_index`, with `round_timeout`.
    pub fn config(
        lock: &ClusterLock,
        self_index: u64,
        node_key: SecretKey,
        round_timeout: RoundTimeout,
    ) -> Result<Config, crate::consensus::ConfigError> {
        let nodes = u64::try_from(lock.operators.len()).unwrap_or(u64::MAX);
        Config::new(
            nodes,
            self_index,
            Arc::new(LockNodeKeys::new(lock, node_key)),
            round_timeout,
        )
    }

    /// This agreement behind its `Arc`, while it lives.
    pub fn self_arc(&self) -> Option<Arc<Self>> {
        self.me.upgrade()
    }

    /// The kind's label.
    pub fn label(&self) -> &'static str {
        self.proposals.label()
    }

    /// The value agreed for `slot`, if its instance decided.
    pub fn decided(&self, slot: Slot) -> Option<V> {
        self.lock()
            .slots
            .get(&slot)
            .and_then(|state| state.decided.borrow().clone())
    }

    /// Starts `slot`'s instance if needed and resolves when it decides (the
    /// caller bounds the wait); `Err` when the slot is outside the window.
    pub fn agree(self: &Arc<Self>, slot: Slot) -> ValueFuture<V> {
        let receiver = {
            let mut inner = self.lock();
            if !in_window(inner.current_slot, slot) {
                let current = inner.current_slot;
                return Box::pin(async move {
                    Err(format!(
                        "slot {slot} is outside the agreement window around the current slot {current}"
                    ))
                });
            }
            inner
                .slots
                .entry(slot)
                .or_insert_with(SlotState::new)
                .decided
                .subscribe()
        };
        self.start(slot);
        Box::pin(async move {
            let mut receiver = receiver;
            let value = receiver
                .wait_for(Option::is_some)
                .await
                .map_err(|_| "the agreement stopped".to_string())?;
            value.clone().ok_or_else(|| "no decision".to_string())
        })
    }

    /// Moves the window to `slot`: instances of slots that fell behind stop
    /// (their decisions are kept a while for late partials).
    pub fn set_current_slot(&self, slot: Slot) {
        let mut inner = self.lock();
        inner.current_slot = slot;
        let label = self.proposals.label();
        let first = slot.saturating_sub(WINDOW_SLOTS);
        let last = slot.saturating_add(WINDOW_SLOTS);
        inner.ids.retain(|_, held| *held >= first && *held <= last);
        for candidate in first..=last {
            inner
                .ids
                .insert(InstanceId::derive(label, candidate), candidate);
        }
        let keep_from = slot.saturating_sub(KEEP_DECIDED_SLOTS);
        inner.slots = inner.slots.split_off(&keep_from);
        for (held, state) in inner.slots.iter_mut() {
            if *held < first && state.instance.is_some() {
                // Stop the timer: nothing more can be useful.
                state.instance = None;
                state.buffered.clear();
                state.wake_timer.notify_one();
            }
        }
    }

    /// Starts `slot`'s instance unless it runs or starts already: fetches
    /// this node's own value first (for at most half of the first round), so
    /// that every proposal is checked against it, then runs the instance
    /// with the messages that arrived meanwhile.
    pub fn start(self: &Arc<Self>, slot: Slot) {
        {
            let mut inner = self.lock();
            if !in_window(inner.current_slot, slot) {
                return;
            }
            let state = inner.slots.entry(slot).or_insert_with(SlotState::new);
            if state.starting || state.decided.borrow().is_some() {
                return;
            }
            state.starting = true;
        }
        let agreement = Arc::clone(self);
        tokio::spawn(async move { agreement.run(slot).await });
    }

    async fn run(self: Arc<Self>, slot: Slot) {
        let fetch_for = (self.round_timeout)(1) / 2;
        let own = self
            .fetch_own(slot, fetch_for)
            .await
            .map_err(|reason| {
                warn!(kind = self.label(), slot, %reason, "no value of this node's own to propose yet; it can still agree on a peer's, and asks again");
            })
            .ok();
        let now = unix_now();
        let (outputs, wake, waits_for_offers) = {
            let mut inner = self.lock();
            if !in_window(inner.current_slot, slot) {
                return;
            }
            let state = inner.slots.entry(slot).or_insert_with(SlotState::new);
            let proposals = Arc::clone(&self.proposals);
            let check_own = own.clone();
            let validity: Validity<V> =
                Box::new(move |value: &V| proposals.check(slot, value, check_own.as_ref()));
            let mut instance = Instance::new(
                self.config.clone(),
                InstanceId::derive(self.proposals.label(), slot),
                self.proposals.leader_seed(slot),
                validity,
                now,
            );
            let mut outputs: Vec<Output<V>> = std::mem::take(&mut state.buffered)
                .into_iter()
                .map(|message| instance.receive(message, now))
                .collect();
            // A round-1 leader of a kind that prefers the best value waits
            // for its peers' offers before it takes an input.
            let waits_for_offers =
                self.proposals.prefers_best() && instance.leader(1) == self.config.self_index();
            if let Some(own) = own.clone().filter(|_| !waits_for_offers) {
                outputs.push(instance.set_input(own, now));
            }
            state.instance = Some(instance);
            (outputs, Arc::clone(&state.wake_timer), waits_for_offers)
        };
        debug!(kind = self.label(), slot, "agreement started");
        for output in outputs {
            self.handle(slot, output);
        }
        match own {
            Some(own) => {
                if self.proposals.prefers_best() {
                    self.offer(slot, &own);
                }
                if waits_for_offers {
                    let agreement = Arc::clone(&self);
                    let wait = (self.round_timeout)(1) / 4;
                    tokio::spawn(async move { agreement.propose_best(slot, own, wait).await });
                }
            }
            None => {
                let agreement = Arc::clone(&self);
                tokio::spawn(async move { agreement.retry_own(slot, fetch_for).await });
            }
        }
        self.run_timer(slot, wake).await;
    }

    /// Sends this node's own value of `slot` to every peer.
    fn offer(self: &Arc<Self>, slot: Slot, own: &V) {
        let offer = Offer {
            offer: OfferBody {
                instance: InstanceId::derive(self.proposals.label(), slot),
                value: own.clone(),
            },
        };
        let Ok(raw) = serde_json::value::to_raw_value(&offer) else {
            return;
        };
        for peer in self.client.peer_indices() {
            let (agreement, raws) = (Arc::clone(self), vec![raw.clone()]);
            tokio::spawn(async move {
                if let Err(error) = agreement.client.send_consensus(peer, &raws).await {
                    debug!(kind = agreement.label(), peer, %error, "offer not delivered");
                }
            });
        }
    }

    /// The round-1 leader's input: the best of `own` and its peers' offers,
    /// once every peer offered or `wait` passed.
    async fn propose_best(self: Arc<Self>, slot: Slot, own: V, wait: Duration) {
        let Some(arrived) = self
            .lock()
            .slots
            .get(&slot)
            .map(|state| Arc::clone(&state.offer_arrived))
        else {
            return;
        };
        let peers = self.client.peer_indices().count();
        let _ = tokio::time::timeout(wait, async {
            loop {
                // Registered before the count is read, so no offer is missed.
                let notified = arrived.notified();
                if self.offers(slot).len() >= peers {
                    return;
                }
                notified.await;
            }
        })
        .await;
        self.give_input(slot, own);
    }

    /// Sets this node's input of `slot`: `own`, or for a kind that prefers
    /// the best value, the best of `own` and the offers so far.
    fn give_input(self: &Arc<Self>, slot: Slot, own: V) {
        let input = if self.proposals.prefers_best() {
            let offers = self.offers(slot);
            debug!(
                kind = self.label(),
                slot,
                offers = offers.len(),
                "input chosen from this node's value and its peers' offers"
            );
            self.proposals.improve(slot, own, offers)
        } else {
            own
        };
        let now = unix_now();
        if let Some(output) = self.with_instance(slot, |instance| instance.set_input(input, now)) {
            self.handle(slot, output);
        }
    }

    /// The values peers offered for `slot`.
    fn offers(&self, slot: Slot) -> Vec<V> {
        self.lock()
            .slots
            .get(&slot)
            .map(|state| state.offers.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Keeps a peer's offer (its first one for the instance).
    fn take_offer(&self, from_operator: u64, offer: OfferBody<V>) -> Result<(), String> {
        let mut inner = self.lock();
        let slot = *inner.ids.get(&offer.instance).ok_or_else(|| {
            format!(
                "{} offer of operator {from_operator} names instance {:?}, not one of the slots around {}",
                self.label(),
                offer.instance,
                inner.current_slot
            )
        })?;
        let state = inner.slots.entry(slot).or_insert_with(SlotState::new);
        state.offers.entry(from_operator).or_insert(offer.value);
        state.offer_arrived.notify_waiters();
        Ok(())
    }

    /// This node's own value of `slot`, or why its beacon node gave none
    /// within `fetch_for`.
    async fn fetch_own(&self, slot: Slot, fetch_for: Duration) -> Result<V, String> {
        tokio::time::timeout(fetch_for, self.proposals.fetch(slot))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the beacon node gave no value within {} ms",
                    fetch_for.as_millis()
                ))
            })
    }

    /// Asks the beacon node again, every `fetch_for` (at most
    /// [`MAX_OWN_RETRIES`] times), while the instance runs without this
    /// node's own value: a beacon node that had nothing at
    /// the start (its aggregates not yet pooled, say) can still give this
    /// node a value to propose when a later round makes it the leader.
    async fn retry_own(self: Arc<Self>, slot: Slot, fetch_for: Duration) {
        // Half a first round is a sixteenth of a slot: about a slot of asking.
        for _ in 0..MAX_OWN_RETRIES {
            tokio::time::sleep(fetch_for).await;
            let running = {
                let inner = self.lock();
                inner.slots.get(&slot).is_some_and(|state| {
                    state.instance.is_some() && state.decided.borrow().is_none()
                })
            };
            if !running {
                return;
            }
            match self.fetch_own(slot, fetch_for).await {
                Ok(own) => {
                    debug!(
                        kind = self.label(),
                        slot, "this node's own value arrived late"
                    );
                    if self.proposals.prefers_best() {
                        self.offer(slot, &own);
                    }
                    self.give_input(slot, own);
                    return;
                }
                Err(reason) => {
                    debug!(kind = self.label(), slot, %reason, "still no value of this node's own");
                }
            }
        }
    }

    /// Ticks the instance at each deadline until it decides or stops.
    async fn run_timer(self: Arc<Self>, slot: Slot, wake: Arc<Notify>) {
        loop {
            let deadline = {
                let inner = self.lock();
                inner
                    .slots
                    .get(&slot)
                    .and_then(|state| state.instance.as_ref())
                    .and_then(Instance::deadline)
            };
            let Some(deadline) = deadline else {
                return;
            };
            let wait = deadline.saturating_sub(unix_now());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = wake.notified() => continue,
            }
            if let Some(output) = self.with_instance(slot, |instance| instance.tick(unix_now())) {
                self.handle(slot, output);
            }
        }
    }

    /// Takes the agreement messages a peer delivered: one outcome per message.
    pub fn receive(
        self: &Arc<Self>,
        from_operator: u64,
        messages: Vec<Box<RawValue>>,
    ) -> Vec<ItemOutcome> {
        let now = unix_now();
        let mut outcomes = Vec::with_capacity(messages.len());
        for raw in messages {
            // QBFT messages are most of the traffic: tried first.
            let outcome = match Message::<V>::decode_json(raw.get().as_bytes()) {
                Ok(message) => self.deliver(from_operator, message, now),
                Err(error) => match serde_json::from_str::<Offer<V>>(raw.get()) {
                    Ok(offer) => self.take_offer(from_operator, offer.offer),
                    Err(_) => Err(error.to_string()),
                },
            };
            outcomes.push(match outcome {
                Ok(()) => ItemOutcome::Accepted,
                Err(message) => {
                    warn!(kind = self.label(), operator = from_operator, %message, "refused an agreement message");
                    ItemOutcome::Rejected { message }
                }
            });
        }
        outcomes
    }

    fn deliver(
        self: &Arc<Self>,
        from_operator: u64,
        message: Message<V>,
        now: Duration,
    ) -> Result<(), String> {
        let instance_id = message.body().instance;
        let (slot, output, start) = {
            let mut inner = self.lock();
            let slot = *inner.ids.get(&instance_id).ok_or_else(|| {
                format!(
                    "{} message of operator {from_operator} names instance {instance_id:?}, not one of the slots around {}",
                    self.label(),
                    inner.current_slot
                )
            })?;
            let state = inner.slots.entry(slot).or_insert_with(SlotState::new);
            let starting = state.starting;
            match state.instance.as_mut() {
                Some(instance) => (slot, Some(instance.receive(message, now)), false),
                None if state.decided.borrow().is_some() => return Ok(()),
                None if state.buffered.len() >= MAX_BUFFERED => {
                    return Err(format!(
                        "more than {MAX_BUFFERED} messages for slot {slot} before its agreement started"
                    ))
                }
                None => {
                    state.buffered.push(message);
                    (slot, None, !starting)
                }
            }
        };
        if let Some(output) = output {
            self.handle(slot, output);
        }
        if start {
            // A peer started the slot's agreement: join it.
            self.start(slot);
        }
        Ok(())
    }

    /// Runs `call` on `slot`'s running instance.
    fn with_instance(
        &self,
        slot: Slot,
        call: impl FnOnce(&mut Instance<V>) -> Output<V>,
    ) -> Option<Output<V>> {
        let mut inner = self.lock();
        let state = inner.slots.get_mut(&slot)?;
        let output = call(state.instance.as_mut()?);
        state.wake_timer.notify_one();
        Some(output)
    }

    /// Sends an output's messages, records its decision and logs its events.
    fn handle(self: &Arc<Self>, slot: Slot, output: Output<V>) {
        for event in &output.events {
            self.log_event(slot, event);
        }
        if let Some(decision) = output.decision {
            self.metrics.agreement_decided(self.label(), decision.round);
            if let Some((duty, count)) = self.proposals.agreed_duties(&decision.value) {
                self.metrics.duty_event(duty, DutyEvent::Agreed, count);
            }
            info!(
                kind = self.label(),
                slot,
                round = decision.round,
                "the cluster agreed"
            );
            let mut inner = self.lock();
            if let Some(state) = inner.slots.get_mut(&slot) {
                state.decided.send_replace(Some(decision.value));
                state.wake_timer.notify_one();
            }
        }
        self.send(
            output
                .messages
                .into_iter()
                .map(|out| (out.to, out.message))
                .collect(),
        );
    }

    /// Sends each message to its recipients, one request per peer, in the background.
    fn send(self: &Arc<Self>, messages: Vec<(Recipient, Message<V>)>) {
        if messages.is_empty() {
            return;
        }
        let mut per_peer: BTreeMap<u64, Vec<Box<RawValue>>> = BTreeMap::new();
        for (to, message) in messages {
            let Ok(raw) = serde_json::value::to_raw_value(&message) else {
                continue;
            };
            match to {
                Recipient::All => {
                    for peer in self.client.peer_indices() {
                        per_peer.entry(peer).or_default().push(raw.clone());
                    }
                }
                Recipient::Node(peer) => per_peer.entry(peer).or_default().push(raw),
            }
        }
        for (peer, raws) in per_peer {
            let agreement = Arc::clone(self);
            tokio::spawn(async move {
                if let Err(error) = agreement.client.send_consensus(peer, &raws).await {
                    debug!(kind = agreement.label(), peer, %error, "agreement messages not delivered");
                }
            });
        }
    }

    fn log_event(&self, slot: Slot, event: &Event) {
        let kind = self.label();
        match event {
            Event::Refused { source, reason, .. } if !reason.is_benign() => {
                warn!(kind, slot, operator = source, %event, "agreement message refused")
            }
            Event::Equivocation { source, .. } => {
                warn!(kind, slot, operator = source, %event, "an operator equivocated")
            }
            Event::RoundChanged { .. } => info!(kind, slot, %event, "agreement round change"),
            _ => debug!(kind, slot, %event, "agreement"),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<V>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn in_window(current: Slot, slot: Slot) -> bool {
    slot.saturating_add(WINDOW_SLOTS) >= current && slot <= current.saturating_add(WINDOW_SLOTS)
}

/// What the peer endpoint needs of one agreement, whatever its value type.
pub trait Receiver: Send + Sync {
    /// Whether `id` is an instance of this agreement's window.
    fn owns(&self, id: &InstanceId) -> bool;
    /// Takes the agreement messages a peer delivered (see [`Agreement::receive`]).
    fn receive_raw(&self, from_operator: u64, messages: Vec<Box<RawValue>>) -> Vec<ItemOutcome>;
}

impl<V: Value> Receiver for Agreement<V> {
    fn owns(&self, id: &InstanceId) -> bool {
        self.lock().ids.contains_key(id)
    }

    fn receive_raw(&self, from_operator: u64, messages: Vec<Box<RawValue>>) -> Vec<ItemOutcome> {
        match self.self_arc() {
            Some(agreement) => agreement.receive(from_operator, messages),
            None => messages
                .iter()
                .map(|_| ItemOutcome::Rejected {
                    message: "the agreement stopped".into(),
                })
                .collect(),
        }
    }
}

/// Every agreement of a node, so the peer endpoint can hand each message
/// to the one whose instance it names.
#[derive(Clone, Default)]
pub struct Agreements(Vec<Arc<dyn Receiver>>);

impl Agreements {
    /// The agreements `receivers`.
    pub fn new(receivers: Vec<Arc<dyn Receiver>>) -> Self {
        Self(receivers)
    }

    /// Hands each message to the agreement of its instance; one outcome per
    /// message, in order.
    pub fn receive(&self, from_operator: u64, messages: Vec<Box<RawValue>>) -> Vec<ItemOutcome> {
        messages
            .into_iter()
            .map(|raw| {
                let owner = instance_of(&raw).and_then(|id| {
                    self.0
                        .iter()
                        .find(|receiver| receiver.owns(&id))
                        .ok_or_else(|| format!("no agreement of this node runs instance {id:?}"))
                });
                match owner {
                    Ok(receiver) => receiver
                        .receive_raw(from_operator, vec![raw])
                        .pop()
                        .unwrap_or(ItemOutcome::Rejected {
                            message: "the agreement gave no outcome".into(),
                        }),
                    Err(message) => ItemOutcome::Rejected { message },
                }
            })
            .collect()
    }
}

/// The instance a raw agreement message names.
fn instance_of(raw: &RawValue) -> Result<InstanceId, String> {
    #[derive(serde::Deserialize)]
    struct Body {
        instance: InstanceId,
    }
    #[derive(serde::Deserialize)]
    struct Signed {
        body: Body,
    }
    #[derive(serde::Deserialize)]
    struct Envelope {
        signed: Signed,
    }
    #[derive(serde::Deserialize)]
    struct OfferEnvelope {
        offer: Body,
    }
    serde_json::from_str::<Envelope>(raw.get())
        .map(|envelope| envelope.signed.body.instance)
        .or_else(|error| {
            serde_json::from_str::<OfferEnvelope>(raw.get())
                .map(|envelope| envelope.offer.instance)
                .map_err(|_| error)
        })
        .map_err(|error| format!("agreement message does not decode: {error}"))
}
