//! Publishes what the cluster combined: every attestation and every
//! `SignedAggregateAndProof` whose partials reached the threshold, built from the agreed data and posted once to this node's
//! beacon node, v1 or v2 by the fork of its slot. Every node of the cluster
//! publishes to its own beacon node, so one operator's node being down
//! loses nothing.
//!
//! The store tells the publisher of each batch of combinations
//! ([`super::store::PartialStore::subscribe_combined`]); one batch becomes
//! one request per endpoint. What the beacon node refuses is logged with its
//! reason and counted; nothing is retried after a refusal (the object would
//! be refused again), a transport failure is retried once.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, info, warn};

use super::aggregator::Aggregator;
use super::attester::{Attester, BuildError, BuiltAttestation};
use super::chain::{ChainState, ChainView};
use super::duty::{DutyKey, DutyKind};
use super::metrics::{DutyEvent, FailReason, Metrics};
use super::store::CombinedDuty;
use crate::api::attestation::{AttestationPhase0, SignedAggregateAndProof, SingleAttestation};
use crate::api::{BeaconNodeClient, ClientError};
use crate::spec::time::unix_now;
use crate::spec::{ForkName, Slot};

/// The metric label of attestation duties.
pub const ATTESTATION: &str = "attestation";
/// The metric label of aggregation duties.
pub const AGGREGATE: &str = "aggregate";

/// Most published duties remembered, so each is published once.
const MAX_REMEMBERED: usize = 1 << 20;

/// The publisher of one middleware node.
pub struct Publisher {
    beacon: BeaconNodeClient,
    chain: Arc<ChainState>,
    attester: Arc<Attester>,
    aggregator: Arc<Aggregator>,
    metrics: Arc<Metrics>,
    published: Mutex<HashSet<DutyKey>>,
}

impl Publisher {
    /// A publisher posting to `beacon`.
    pub fn new(
        beacon: BeaconNodeClient,
        chain: Arc<ChainState>,
        attester: Arc<Attester>,
        aggregator: Arc<Aggregator>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            beacon,
            chain,
            attester,
            aggregator,
            metrics,
            published: Mutex::new(HashSet::new()),
        })
    }

    /// Publishes each batch of combinations as it comes, each in its own task
    /// so a slow beacon node never holds back the next batch.
    pub async fn run(self: Arc<Self>, mut combined: UnboundedReceiver<Vec<CombinedDuty>>) {
        while let Some(batch) = combined.recv().await {
            let publisher = Arc::clone(&self);
            tokio::spawn(async move { publisher.publish(batch).await });
        }
    }

    /// Builds and posts the attestations and aggregates among `batch`.
    pub async fn publish(&self, batch: Vec<CombinedDuty>) {
        let (attestations, aggregates): (Vec<CombinedDuty>, Vec<CombinedDuty>) = batch
            .into_iter()
            .filter(|duty| !duty.key.kind.is_selection() && self.first_time(&duty.key))
            .partition(|duty| duty.key.kind == DutyKind::Attestation);
        if !aggregates.is_empty() {
            self.publish_aggregates(aggregates).await;
        }
        if !attestations.is_empty() {
            self.publish_attestations(attestations).await;
        }
    }

    /// Builds and posts combined `AggregateAndProof`s, v1 or v2 by fork.
    async fn publish_aggregates(&self, aggregates: Vec<CombinedDuty>) {
        self.metrics
            .duty_event(AGGREGATE, DutyEvent::Combined, aggregates.len());
        let Ok(view) = self.chain.view() else {
            self.metrics.duty_event(
                AGGREGATE,
                DutyEvent::Failed(FailReason::NothingToBuild),
                aggregates.len(),
            );
            return;
        };
        let mut by_fork: BTreeMap<ForkName, (Vec<Slot>, Vec<SignedAggregateAndProof>)> =
            BTreeMap::new();
        for duty in &aggregates {
            match self
                .aggregator
                .build(&view, &duty.key, duty.signing_root, &duty.signature)
            {
                Ok(signed) => {
                    let entry = by_fork
                        .entry(view.info.fork_at_slot(duty.key.slot))
                        .or_default();
                    entry.0.push(duty.key.slot);
                    entry.1.push(signed);
                }
                Err(error) => {
                    warn!(key = %duty.key, %error, "cannot publish a combined aggregate");
                    self.metrics
                        .duty_event(AGGREGATE, DutyEvent::Failed(fail_reason(&error)), 1);
                }
            }
        }
        for (fork, (slots, items)) in by_fork {
            let post = |items: &[SignedAggregateAndProof]| {
                let items = items.to_vec();
                let beacon = self.beacon.clone();
                async move {
                    if fork >= ForkName::Electra {
                        beacon.post_aggregate_and_proofs_v2(fork, &items).await
                    } else {
                        beacon.post_aggregate_and_proofs_v1(&items).await
                    }
                }
            };
            let result = match post(&items).await {
                Err(ClientError::Transport { .. }) => post(&items).await,
                other => other,
            };
            self.record(AGGREGATE, &view, &slots, result);
        }
    }

    /// Builds and posts combined attestations.
    async fn publish_attestations(&self, attestations: Vec<CombinedDuty>) {
        self.metrics
            .duty_event(ATTESTATION, DutyEvent::Combined, attestations.len());
        let Ok(view) = self.chain.view() else {
            self.metrics.duty_event(
                ATTESTATION,
                DutyEvent::Failed(FailReason::NothingToBuild),
                attestations.len(),
            );
            return;
        };
        let mut phase0 = Vec::new();
        let mut single: Vec<(ForkName, Slot, SingleAttestation)> = Vec::new();
        let mut slots = Vec::new();
        for duty in &attestations {
            match self
                .attester
                .build(&view, &duty.key, duty.signing_root, &duty.signature)
            {
                Ok(BuiltAttestation::Phase0(attestation)) => {
                    slots.push(duty.key.slot);
                    phase0.push(attestation);
                }
                Ok(BuiltAttestation::Single(attestation)) => {
                    let fork = view.info.fork_at_slot(duty.key.slot);
                    single.push((fork, duty.key.slot, attestation));
                }
                Err(error) => {
                    warn!(key = %duty.key, %error, "cannot publish a combined attestation");
                    self.metrics
                        .duty_event(ATTESTATION, DutyEvent::Failed(fail_reason(&error)), 1);
                }
            }
        }
        if !phase0.is_empty() {
            let result = self.post_v1(&phase0).await;
            self.record(ATTESTATION, &view, &slots, result);
        }
        let mut forks: Vec<ForkName> = single.iter().map(|(fork, _, _)| *fork).collect();
        forks.sort_unstable();
        forks.dedup();
        for fork in forks {
            let (slots, items): (Vec<Slot>, Vec<SingleAttestation>) = single
                .iter()
                .filter(|(f, _, _)| *f == fork)
                .map(|(_, slot, attestation)| (*slot, attestation.clone()))
                .unzip();
            let result = self.post_v2(fork, &items).await;
            self.record(ATTESTATION, &view, &slots, result);
        }
    }

    async fn post_v1(&self, items: &[AttestationPhase0]) -> Result<(), ClientError> {
        match self.beacon.post_attestations_v1(items).await {
            Err(ClientError::Transport { .. }) => self.beacon.post_attestations_v1(items).await,
            other => other,
        }
    }

    async fn post_v2(
        &self,
        fork: ForkName,
        items: &[SingleAttestation],
    ) -> Result<(), ClientError> {
        match self.beacon.post_attestations_v2(fork, items).await {
            Err(ClientError::Transport { .. }) => {
                self.beacon.post_attestations_v2(fork, items).await
            }
            other => other,
        }
    }

    /// Counts and logs what the beacon node did with the `duty` objects of `slots`.
    fn record(
        &self,
        duty: &'static str,
        view: &ChainView,
        slots: &[Slot],
        result: Result<(), ClientError>,
    ) {
        // Every operator's node publishes the same object; a beacon node
        // that has it already (another operator's node shares it) took it.
        let result = result.or_else(|error| {
            if only_already_known(&error) {
                debug!(duty, %error, "the beacon node knew it already");
                Ok(())
            } else {
                Err(error)
            }
        });
        let refused: HashSet<usize> = match &result {
            Ok(()) => HashSet::new(),
            Err(ClientError::Status { failures, .. }) if !failures.is_empty() => {
                failures.iter().map(|failure| failure.index).collect()
            }
            Err(_) => (0..slots.len()).collect(),
        };
        let published = slots.len().saturating_sub(refused.len());
        if published > 0 {
            self.metrics
                .duty_event(duty, DutyEvent::Published, published);
            if let Ok(clock) = view.info.slot_clock() {
                let now = unix_now();
                for (index, slot) in slots.iter().enumerate() {
                    if !refused.contains(&index) {
                        let latency = now.saturating_sub(clock.slot_start(*slot));
                        self.metrics.publish_latency(duty, latency);
                    }
                }
            }
        }
        match result {
            Ok(()) => info!(
                duty,
                count = slots.len(),
                slot = slots.first().copied().unwrap_or_default(),
                "published what the cluster combined"
            ),
            Err(error) => {
                let reason = match error {
                    ClientError::Status { .. } => FailReason::BeaconNodeRefused,
                    _ => FailReason::BeaconNodeUnreachable,
                };
                self.metrics
                    .duty_event(duty, DutyEvent::Failed(reason), refused.len());
                warn!(
                    duty,
                    refused = refused.len(),
                    of = slots.len(),
                    %error,
                    "the beacon node did not take what the cluster combined"
                );
            }
        }
    }

    /// Whether `key` is published for the first time (and remembers it).
    fn first_time(&self, key: &DutyKey) -> bool {
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if published.len() >= MAX_REMEMBERED {
            // Far more than a few epochs of a large cluster: forget the oldest slots.
            let horizon = key.slot.saturating_sub(64);
            published.retain(|held| held.slot >= horizon);
        }
        published.insert(*key)
    }
}

/// The metric label of a build failure.
fn fail_reason(error: &BuildError) -> FailReason {
    match error {
        BuildError::RootMismatch { .. } => FailReason::RootMismatch,
        BuildError::Missing(_) => FailReason::NothingToBuild,
    }
}

/// Whether the beacon node refused only because it had every item already:
/// each line of its message (but a "Multiple errors on ..." heading) names
/// an `..._ALREADY_KNOWN` error, as Lodestar answers for attestations.
fn only_already_known(error: &ClientError) -> bool {
    let ClientError::Status { message, .. } = error else {
        return false;
    };
    let mut reasons = message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("Multiple errors"))
        .peekable();
    reasons.peek().is_some() && reasons.all(|line| line.contains("ALREADY_KNOWN"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn already_known_refusals_are_taken_and_others_are_not() {
        let status = |message: &str| ClientError::Status {
            method: "POST",
            url: "http://127.0.0.1/eth/v1/beacon/pool/attestations".into(),
            status: 500,
            message: message.into(),
            failures: Vec::new(),
        };
        assert!(only_already_known(&status(
            "Multiple errors on submitPoolAttestations\nATTESTATION_ERROR_ATTESTATION_ALREADY_KNOWN\nATTESTATION_ERROR_ATTESTATION_ALREADY_KNOWN"
        )));
        assert!(only_already_known(&status(
            "ATTESTATION_ERROR_ATTESTATION_ALREADY_KNOWN"
        )));
        assert!(!only_already_known(&status(
            "Multiple errors on submitPoolAttestations\nATTESTATION_ERROR_ATTESTATION_ALREADY_KNOWN\nATTESTATION_ERROR_INVALID_SIGNATURE"
        )));
        assert!(!only_already_known(&status(
            "Multiple errors on submitPoolAttestations"
        )));
        assert!(!only_already_known(&status("")));
    }
}
