//! The middleware's exchange of partials with the other operators of its
//! cluster, on top of the peer protocol:
//!
//! - out: [`Exchange::broadcast`] sends this node's new partials to every
//!   peer in the background. A peer that cannot be reached is remembered
//!   with the first slot it missed; after the next send to it succeeds, every
//!   stored partial since that slot is sent again, so a peer that was cut
//!   off catches up without anyone asking.
//! - in: [`StoreSink`] takes peers' partials into the store after checking
//!   that each signs the signing root this node computes for its duty, and
//!   serves a restarted peer's request for a re-send.
//! - catch-up: [`Exchange::request_catch_up`] is what a node that (re)starts
//!   does: it asks every peer to re-send what it holds for the recent slots.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::agreement::Agreements;
use super::chain::{ChainState, ChainView};
use super::duty::{DutyKey, Partial, Source};
use super::metrics::Metrics;
use super::peer::{ItemOutcome, PartialItem, PartialSink};
use super::peer_client::{PeerClient, PeerError};
use super::store::{InsertOutcome, PartialStore, StoreError};
use crate::spec::{Root, Slot};

/// A partial of the store as the peer protocol carries it.
pub fn to_item(key: &DutyKey, partial: &Partial) -> PartialItem {
    PartialItem {
        duty: key.kind,
        slot: key.slot,
        validator_pubkey: key.validator,
        share_index: partial.share_index,
        signing_root: partial.signing_root,
        signature: partial.signature,
    }
}

/// A partial of the peer protocol as the store keeps it.
pub fn from_item(item: &PartialItem) -> (DutyKey, Partial) {
    let key = DutyKey {
        kind: item.duty,
        validator: item.validator_pubkey,
        slot: item.slot,
    };
    let partial = Partial {
        share_index: item.share_index,
        signing_root: item.signing_root,
        signature: item.signature,
    };
    (key, partial)
}

/// What the exchange remembers of one peer.
#[derive(Debug, Default)]
struct PeerLink {
    /// The earliest slot of partials that a failed send did not deliver.
    missed_since: Option<Slot>,
    /// A re-send to this peer is under way.
    resending: bool,
}

/// Sends this node's partials to its peers; shared behind an `Arc`.
pub struct Exchange {
    client: PeerClient,
    store: Arc<PartialStore>,
    metrics: Arc<Metrics>,
    links: Mutex<BTreeMap<u64, PeerLink>>,
}

impl Exchange {
    /// An exchange over `client` (which knows the peers and signs requests).
    pub fn new(client: PeerClient, store: Arc<PartialStore>, metrics: Arc<Metrics>) -> Arc<Self> {
        let links = client
            .peer_indices()
            .map(|operator| (operator, PeerLink::default()))
            .collect();
        Arc::new(Self {
            client,
            store,
            metrics,
            links: Mutex::new(links),
        })
    }

    /// Sends `items` to every peer in the background.
    pub fn broadcast(self: &Arc<Self>, items: Vec<PartialItem>) {
        if items.is_empty() {
            return;
        }
        let exchange = Arc::clone(self);
        tokio::spawn(async move { exchange.send_to_all(&items).await });
    }

    /// Sends `items` to every peer and records each reply as it comes.
    pub async fn send_to_all(self: &Arc<Self>, items: &[PartialItem]) {
        let mut replies = self.client.broadcast_each(items);
        while let Some(reply) = replies.next().await {
            self.record(reply.operator, reply.result, items);
        }
    }

    /// Sends again to `operator` every stored partial at or after
    /// `min_slot`, in the background; one re-send per peer at a time (a
    /// request during one is remembered and served after it).
    pub fn resend_to(self: &Arc<Self>, operator: u64, min_slot: Slot) {
        {
            let mut links = self.links();
            let Some(link) = links.get_mut(&operator) else {
                return;
            };
            if link.resending {
                merge_missed(link, min_slot);
                return;
            }
            link.resending = true;
        }
        let exchange = Arc::clone(self);
        tokio::spawn(async move {
            let items: Vec<PartialItem> = exchange
                .store
                .partials_since(min_slot)
                .iter()
                .map(|(key, partial)| to_item(key, partial))
                .collect();
            info!(
                peer = operator,
                min_slot,
                partials = items.len(),
                "re-sending partials to a peer"
            );
            let result = exchange.client.send(operator, &items).await;
            if let Some(link) = exchange.links().get_mut(&operator) {
                link.resending = false;
            }
            exchange.record(operator, result, &items);
        });
    }

    /// Asks every peer to re-send the partials it holds at or after
    /// `min_slot`, retrying a peer until it answers or `give_up_after`
    /// has passed; returns the peers that answered.
    pub async fn request_catch_up(&self, min_slot: Slot, give_up_after: Duration) -> Vec<u64> {
        let until = Instant::now() + give_up_after;
        let asks = self.client.peer_indices().map(|operator| async move {
            loop {
                match self.client.request_resend(operator, min_slot).await {
                    Ok(()) => return Some(operator),
                    Err(error) if Instant::now() < until => {
                        debug!(peer = operator, %error, "catch-up request not delivered yet");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(error) => {
                        warn!(peer = operator, %error, "gave up asking a peer to re-send its partials");
                        return None;
                    }
                }
            }
        });
        futures_util::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Records a peer's reply to a send of `items`.
    fn record(
        self: &Arc<Self>,
        operator: u64,
        result: Result<Vec<ItemOutcome>, PeerError>,
        items: &[PartialItem],
    ) {
        self.metrics.peer_send(operator, result.is_ok());
        match result {
            Ok(outcomes) => {
                log_refusals(operator, &outcomes, items, &self.metrics);
                let missed = self
                    .links()
                    .get_mut(&operator)
                    .and_then(|link| link.missed_since.take());
                if let Some(since) = missed {
                    self.resend_to(operator, since);
                }
            }
            Err(error) => {
                let first_slot = items.iter().map(|item| item.slot).min();
                if let (Some(link), Some(slot)) = (self.links().get_mut(&operator), first_slot) {
                    merge_missed(link, slot);
                }
                warn!(
                    peer = operator,
                    partials = items.len(),
                    %error,
                    "could not deliver partials to a peer; they are sent again once it is reachable"
                );
            }
        }
    }

    fn links(&self) -> MutexGuard<'_, BTreeMap<u64, PeerLink>> {
        self.links.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn merge_missed(link: &mut PeerLink, slot: Slot) {
    link.missed_since = Some(link.missed_since.map_or(slot, |since| since.min(slot)));
}

/// One warning per reply in which the peer refused partials of ours.
fn log_refusals(operator: u64, outcomes: &[ItemOutcome], items: &[PartialItem], metrics: &Metrics) {
    let refused: Vec<(&PartialItem, &str)> = outcomes
        .iter()
        .zip(items)
        .filter_map(|(outcome, item)| match outcome {
            ItemOutcome::Rejected { message } => Some((item, message.as_str())),
            _ => None,
        })
        .collect();
    if let Some((item, message)) = refused.first() {
        metrics.refused_by_peer(operator, refused.len());
        warn!(
            peer = operator,
            refused = refused.len(),
            first_slot = item.slot,
            first_reason = message,
            "a peer refused partials of this node"
        );
    }
}

/// The signing root this node computes for a duty that is not a selection
/// (whose root the [`ChainView`] gives): an attestation's or an
/// aggregate's, which depend on what the cluster agreed.
pub trait DutyRoots: Send + Sync {
    /// The root `key`'s partials must sign, or `None` while this node cannot
    /// know it (its agreement on the duty's data has not decided yet).
    fn expected_root(&self, view: &ChainView, key: &DutyKey) -> Option<Root>;
}

/// Several [`DutyRoots`]: the first that knows a duty's root answers.
impl DutyRoots for Vec<Arc<dyn DutyRoots>> {
    fn expected_root(&self, view: &ChainView, key: &DutyKey) -> Option<Root> {
        self.iter().find_map(|roots| roots.expected_root(view, key))
    }
}

/// The [`PartialSink`] of a middleware node: peers' partials go into the
/// store once each is shown to sign its duty's signing root.
pub struct StoreSink {
    store: Arc<PartialStore>,
    chain: Arc<ChainState>,
    exchange: Arc<Exchange>,
    roots: Arc<dyn DutyRoots>,
    agreements: Agreements,
    runtime: tokio::runtime::Handle,
}

impl StoreSink {
    /// A sink into `store`, checking roots with the view and `roots`, and
    /// handing agreement messages to `agreements`; re-sends and agreement
    /// work run on `runtime` (the sink is called off the async workers).
    pub fn new(
        store: Arc<PartialStore>,
        chain: Arc<ChainState>,
        exchange: Arc<Exchange>,
        roots: Arc<dyn DutyRoots>,
        agreements: Agreements,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            store,
            chain,
            exchange,
            roots,
            agreements,
            runtime,
        }
    }
}

/// Why a peer's partial was refused before the store saw it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The partial signs another root than the one of its duty.
    #[error(
        "partial of share index {share_index} for the {key} signs root {received}, not the duty's signing root {expected}"
    )]
    WrongSigningRoot {
        /// The duty.
        key: Box<DutyKey>,
        /// The share index the partial claims.
        share_index: u64,
        /// The root it signs.
        received: crate::spec::Root,
        /// The root this node computes for the duty.
        expected: crate::spec::Root,
    },
}

impl PartialSink for StoreSink {
    fn accept(&self, from_operator: u64, items: Vec<PartialItem>) -> Vec<ItemOutcome> {
        let sender = Source::Peer(from_operator);
        let view = match self.chain.view() {
            Ok(view) => view,
            Err(reason) => {
                let message = format!("not ready: {reason}");
                return items
                    .iter()
                    .map(|_| ItemOutcome::Rejected {
                        message: message.clone(),
                    })
                    .collect();
            }
        };
        let mut outcomes: Vec<Option<ItemOutcome>> = Vec::with_capacity(items.len());
        let mut checked = Vec::with_capacity(items.len());
        let mut refusals: Vec<String> = Vec::new();
        for item in &items {
            let (key, partial) = from_item(item);
            let expected = view
                .duty_signing_root(&key)
                .or_else(|| self.roots.expected_root(&view, &key));
            match expected {
                Some(expected) if expected != partial.signing_root => {
                    self.store.record_refused(sender, 1);
                    let error = SinkError::WrongSigningRoot {
                        key: Box::new(key),
                        share_index: partial.share_index,
                        received: partial.signing_root,
                        expected,
                    };
                    refusals.push(error.to_string());
                    outcomes.push(Some(ItemOutcome::Rejected {
                        message: error.to_string(),
                    }));
                }
                // The root is right, or not known here yet (the agreement on
                // the duty's data has not decided): the store still verifies
                // the partial against its share, and a combination is
                // checked against the agreed root before it is published.
                _ => {
                    checked.push((key, partial));
                    outcomes.push(None);
                }
            }
        }
        let mut stored = self.store.insert_batch(&checked, sender).into_iter();
        let outcomes: Vec<ItemOutcome> = outcomes
            .into_iter()
            .map(|decided| {
                decided.unwrap_or_else(|| match stored.next() {
                    Some(result) => store_outcome(result, &mut refusals),
                    None => ItemOutcome::Rejected {
                        message: "the store gave no outcome".into(),
                    },
                })
            })
            .collect();
        if let Some(first) = refusals.first() {
            warn!(
                operator = from_operator,
                refused = refusals.len(),
                of = items.len(),
                first_reason = first.as_str(),
                "refused partials from a peer"
            );
        }
        outcomes
    }

    fn ready(&self) -> Result<(), String> {
        self.chain.view().map(|_| ())
    }

    fn refused(&self, from_operator: u64, count: usize) {
        self.store
            .record_refused(Source::Peer(from_operator), count);
    }

    fn resend_requested(&self, from_operator: u64, min_slot: Slot) {
        info!(
            peer = from_operator,
            min_slot, "a peer asks for its partials again"
        );
        let _guard = self.runtime.enter();
        self.exchange.resend_to(from_operator, min_slot);
    }

    fn consensus(
        &self,
        from_operator: u64,
        messages: Vec<Box<serde_json::value::RawValue>>,
    ) -> Vec<ItemOutcome> {
        // Agreements spawn their timers and sends on the runtime.
        let _guard = self.runtime.enter();
        self.agreements.receive(from_operator, messages)
    }
}

/// The peer-protocol outcome of a store result; refusals are collected for the log.
fn store_outcome(
    result: Result<InsertOutcome, StoreError>,
    refusals: &mut Vec<String>,
) -> ItemOutcome {
    match result {
        Ok(InsertOutcome::Duplicate) => ItemOutcome::Duplicate,
        Ok(InsertOutcome::Stored { .. } | InsertOutcome::Combined(_)) => ItemOutcome::Accepted,
        Err(error) => {
            let message = error.to_string();
            if error.blames_sender() {
                refusals.push(message.clone());
            }
            ItemOutcome::Rejected { message }
        }
    }
}
