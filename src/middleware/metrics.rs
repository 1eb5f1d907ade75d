//! The middleware's Prometheus metrics: counters of VC requests and items by
//! outcome and of peer sends, the peers' reachability, the attestation and
//! aggregation duties (agreed, combined, published, failed and why; the
//! latency from slot start to publication), agreement rounds, and the
//! partial store's own counters, rendered in the Prometheus text exposition format
//! (version 0.0.4) for `GET /metrics`.
//!
//! Every label value comes from a fixed set (endpoint and outcome names) or
//! from the cluster lock (operator indices), so the number of series is
//! bounded by the lock, whatever the requests hold.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::duty::Source;
use super::store::StoreStats;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How a VC request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RequestOutcome {
    /// Every item was answered.
    Complete,
    /// Some items had not reached the threshold by the deadline.
    Partial,
    /// Refused as a whole (bad body, no chain yet, beacon node error).
    Refused,
}

impl RequestOutcome {
    fn label(self) -> &'static str {
        match self {
            RequestOutcome::Complete => "complete",
            RequestOutcome::Partial => "partial",
            RequestOutcome::Refused => "refused",
        }
    }
}

/// What became of one item of a VC request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemResult {
    /// Answered with the combined selection proof.
    Combined,
    /// Fewer than the threshold of partials by the deadline.
    NotCombined,
    /// Refused: unknown validator, undecodable or invalid partial.
    Invalid,
}

impl ItemResult {
    fn label(self) -> &'static str {
        match self {
            ItemResult::Combined => "combined",
            ItemResult::NotCombined => "not_combined",
            ItemResult::Invalid => "invalid",
        }
    }
}

/// What a duty that the middleware publishes went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DutyEvent {
    /// The cluster agreed on what to sign (one per agreement instance).
    Agreed,
    /// The partials were combined and verified against the group key.
    Combined,
    /// Sent to the beacon node, which accepted it.
    Published,
    /// Not published, for the reason given.
    Failed(FailReason),
}

/// Why a combined duty was not published (a fixed set, as metric labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailReason {
    /// The beacon node answered with an error status.
    BeaconNodeRefused,
    /// The beacon node could not be reached or timed out.
    BeaconNodeUnreachable,
    /// This node has no duty, agreement or agreed object to build it from.
    NothingToBuild,
    /// The combined signature signs another root than the agreed one.
    RootMismatch,
    /// The agreement did not decide in time.
    NotAgreed,
}

impl DutyEvent {
    fn labels(self) -> (&'static str, &'static str) {
        match self {
            DutyEvent::Agreed => ("agreed", ""),
            DutyEvent::Combined => ("combined", ""),
            DutyEvent::Published => ("published", ""),
            DutyEvent::Failed(reason) => (
                "failed",
                match reason {
                    FailReason::BeaconNodeRefused => "beacon_node_refused",
                    FailReason::BeaconNodeUnreachable => "beacon_node_unreachable",
                    FailReason::NothingToBuild => "nothing_to_build",
                    FailReason::RootMismatch => "root_mismatch",
                    FailReason::NotAgreed => "not_agreed",
                },
            ),
        }
    }
}

/// Time from a slot's start to a duty's publication, by duty.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Latency {
    count: u64,
    sum_seconds: f64,
    max_seconds: f64,
}

#[derive(Default)]
struct Counters {
    duty_events: BTreeMap<(&'static str, DutyEvent), u64>,
    publish_latency: BTreeMap<&'static str, Latency>,
    agreement_rounds: BTreeMap<(&'static str, u64), u64>,
    requests: BTreeMap<(&'static str, RequestOutcome), u64>,
    items: BTreeMap<(&'static str, ItemResult), u64>,
    peer_up: BTreeMap<u64, bool>,
    peer_sends: BTreeMap<(u64, bool), u64>,
    refused_by_peer: BTreeMap<u64, u64>,
}

/// The middleware's counters; `Send + Sync`, shared behind an `Arc`.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

impl Metrics {
    /// Counts a VC request to `endpoint` that ended with `outcome`.
    pub fn request(&self, endpoint: &'static str, outcome: RequestOutcome) {
        bump(
            self.lock().requests.entry((endpoint, outcome)).or_default(),
            1,
        );
    }

    /// Counts `count` items of a VC request to `endpoint` that ended with `outcome`.
    pub fn items(&self, endpoint: &'static str, outcome: ItemResult, count: usize) {
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        bump(
            self.lock().items.entry((endpoint, outcome)).or_default(),
            count,
        );
    }

    /// Records the result of one send to peer `operator`; it is up while its
    /// last send succeeded.
    pub fn peer_send(&self, operator: u64, succeeded: bool) {
        let mut counters = self.lock();
        counters.peer_up.insert(operator, succeeded);
        bump(
            counters
                .peer_sends
                .entry((operator, succeeded))
                .or_default(),
            1,
        );
    }

    /// Counts partials of ours that peer `operator` refused.
    pub fn refused_by_peer(&self, operator: u64, count: usize) {
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        bump(
            self.lock().refused_by_peer.entry(operator).or_default(),
            count,
        );
    }

    /// Counts `count` duties of kind `duty` (`attestation`, `aggregate`) that
    /// went through `event`.
    pub fn duty_event(&self, duty: &'static str, event: DutyEvent, count: usize) {
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        bump(
            self.lock().duty_events.entry((duty, event)).or_default(),
            count,
        );
    }

    /// Records the time from a slot's start to a `duty`'s publication.
    pub fn publish_latency(&self, duty: &'static str, latency: std::time::Duration) {
        let mut counters = self.lock();
        let entry = counters.publish_latency.entry(duty).or_default();
        let seconds = latency.as_secs_f64();
        entry.count = entry.count.saturating_add(1);
        entry.sum_seconds += seconds;
        entry.max_seconds = entry.max_seconds.max(seconds);
    }

    /// Counts an agreement instance of `instance` (`attestation_data`,
    /// `aggregates`) that decided in `round` (rounds above 5 count as 5).
    pub fn agreement_decided(&self, instance: &'static str, round: u64) {
        bump(
            self.lock()
                .agreement_rounds
                .entry((instance, round.min(5)))
                .or_default(),
            1,
        );
    }

    /// Whether the last send to peer `operator` succeeded (`None` before the first).
    pub fn peer_up(&self, operator: u64) -> Option<bool> {
        self.lock().peer_up.get(&operator).copied()
    }

    /// The exposition of these counters and of the store's `stats`.
    pub fn render(&self, stats: &StoreStats) -> String {
        let mut out = String::new();
        render_store(&mut out, stats);
        let counters = self.lock();
        family(
            &mut out,
            "dv_selection_requests_total",
            "counter",
            "Validator-client selection requests, by endpoint and outcome.",
            counters
                .requests
                .iter()
                .map(|((endpoint, outcome), value)| {
                    (
                        format!("endpoint=\"{endpoint}\",outcome=\"{}\"", outcome.label()),
                        *value,
                    )
                }),
        );
        family(
            &mut out,
            "dv_selection_items_total",
            "counter",
            "Items of validator-client selection requests, by endpoint and outcome.",
            counters.items.iter().map(|((endpoint, outcome), value)| {
                (
                    format!("endpoint=\"{endpoint}\",outcome=\"{}\"", outcome.label()),
                    *value,
                )
            }),
        );
        family(
            &mut out,
            "dv_duties_total",
            "counter",
            "Attestation and aggregation duties by what they went through (failed: with the reason).",
            counters.duty_events.iter().map(|((duty, event), value)| {
                let (event, reason) = event.labels();
                let reason = if reason.is_empty() {
                    String::new()
                } else {
                    format!(",reason=\"{reason}\"")
                };
                (format!("duty=\"{duty}\",event=\"{event}\"{reason}"), *value)
            }),
        );
        family(
            &mut out,
            "dv_agreements_total",
            "counter",
            "Agreement instances decided, by instance kind and round (5 means 5 or more).",
            counters
                .agreement_rounds
                .iter()
                .map(|((instance, round), value)| {
                    (format!("instance=\"{instance}\",round=\"{round}\""), *value)
                }),
        );
        let _ = writeln!(
            out,
            "# HELP dv_publish_latency_seconds Time from the slot's start to a duty's publication.\n\
             # TYPE dv_publish_latency_seconds summary\n\
             # HELP dv_publish_latency_max_seconds The longest time from the slot's start to a duty's publication.\n\
             # TYPE dv_publish_latency_max_seconds gauge"
        );
        for (duty, latency) in &counters.publish_latency {
            let _ = writeln!(
                out,
                "dv_publish_latency_seconds_sum{{duty=\"{duty}\"}} {}\n\
                 dv_publish_latency_seconds_count{{duty=\"{duty}\"}} {}\n\
                 dv_publish_latency_max_seconds{{duty=\"{duty}\"}} {}",
                latency.sum_seconds, latency.count, latency.max_seconds
            );
        }
        family(
            &mut out,
            "dv_peer_up",
            "gauge",
            "1 if the last send to the peer succeeded, 0 if it failed.",
            counters
                .peer_up
                .iter()
                .map(|(operator, up)| (format!("operator=\"{operator}\""), u64::from(*up))),
        );
        family(
            &mut out,
            "dv_peer_sends_total",
            "counter",
            "Sends of partials to a peer (retries included), by result.",
            counters.peer_sends.iter().map(|((operator, ok), value)| {
                let result = if *ok { "ok" } else { "error" };
                (
                    format!("operator=\"{operator}\",result=\"{result}\""),
                    *value,
                )
            }),
        );
        family(
            &mut out,
            "dv_partials_refused_by_peer_total",
            "counter",
            "Partials of this node that a peer refused.",
            counters
                .refused_by_peer
                .iter()
                .map(|(operator, value)| (format!("operator=\"{operator}\""), *value)),
        );
        out
    }

    fn lock(&self) -> MutexGuard<'_, Counters> {
        // Counters stay consistent under a panic elsewhere: each update is one insert.
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn bump(counter: &mut u64, by: u64) {
    *counter = counter.saturating_add(by);
}

fn source_labels(source: &Source) -> String {
    match source {
        Source::Local => "source=\"local\"".to_string(),
        Source::Peer(operator) => format!("source=\"peer\",operator=\"{operator}\""),
    }
}

fn render_store(out: &mut String, stats: &StoreStats) {
    family(
        out,
        "dv_partials_received_total",
        "counter",
        "Partial signatures handed to the store, by sender.",
        stats
            .received
            .iter()
            .map(|(source, value)| (source_labels(source), *value)),
    );
    family(
        out,
        "dv_partials_rejected_total",
        "counter",
        "Partial signatures refused for the sender's fault, by sender.",
        stats
            .rejected
            .iter()
            .map(|(source, value)| (source_labels(source), *value)),
    );
    let plain = |value: u64| std::iter::once((String::new(), value));
    family(
        out,
        "dv_duties_combined_total",
        "counter",
        "Duties whose partials were combined into a signature verified against the group key.",
        plain(stats.combined),
    );
    family(
        out,
        "dv_combine_failures_total",
        "counter",
        "Combinations that did not verify against the group key.",
        plain(stats.combine_failures),
    );
    family(
        out,
        "dv_store_duties",
        "gauge",
        "Duties held by the partial store.",
        plain(u64::try_from(stats.duties).unwrap_or(u64::MAX)),
    );
    let latency = &stats.combine_latency;
    let _ = write!(
        out,
        "# HELP dv_combine_latency_seconds Time from a duty's first partial to its combination.\n\
         # TYPE dv_combine_latency_seconds summary\n\
         dv_combine_latency_seconds_sum {}\n\
         dv_combine_latency_seconds_count {}\n\
         # HELP dv_combine_latency_max_seconds The longest time from a duty's first partial to its combination.\n\
         # TYPE dv_combine_latency_max_seconds gauge\n\
         dv_combine_latency_max_seconds {}\n",
        latency.total.as_secs_f64(),
        latency.count,
        latency.max.as_secs_f64(),
    );
}

/// One metric family: its HELP and TYPE lines and a sample per label set.
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl Iterator<Item = (String, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_exposition_has_every_family_with_its_samples() {
        let metrics = Metrics::default();
        metrics.request("beacon_committee_selections", RequestOutcome::Partial);
        metrics.items("beacon_committee_selections", ItemResult::Combined, 3);
        metrics.items("beacon_committee_selections", ItemResult::NotCombined, 1);
        metrics.peer_send(2, true);
        metrics.peer_send(3, false);
        metrics.refused_by_peer(4, 5);
        metrics.duty_event("attestation", DutyEvent::Published, 2);
        metrics.duty_event(
            "attestation",
            DutyEvent::Failed(FailReason::BeaconNodeRefused),
            1,
        );
        metrics.publish_latency("attestation", Duration::from_millis(250));
        metrics.agreement_decided("attestation_data", 2);
        let mut stats = StoreStats::default();
        stats.received.insert(Source::Local, 4);
        stats.received.insert(Source::Peer(4), 7);
        stats.rejected.insert(Source::Peer(4), 7);
        stats.combined = 3;
        stats.combine_latency.count = 3;
        stats.combine_latency.total = Duration::from_millis(1500);
        stats.combine_latency.max = Duration::from_millis(900);
        let text = metrics.render(&stats);
        for line in [
            "dv_partials_received_total{source=\"local\"} 4",
            "dv_partials_received_total{source=\"peer\",operator=\"4\"} 7",
            "dv_partials_rejected_total{source=\"peer\",operator=\"4\"} 7",
            "dv_duties_combined_total 3",
            "dv_combine_latency_seconds_sum 1.5",
            "dv_combine_latency_seconds_count 3",
            "dv_combine_latency_max_seconds 0.9",
            "dv_selection_requests_total{endpoint=\"beacon_committee_selections\",outcome=\"partial\"} 1",
            "dv_selection_items_total{endpoint=\"beacon_committee_selections\",outcome=\"combined\"} 3",
            "dv_selection_items_total{endpoint=\"beacon_committee_selections\",outcome=\"not_combined\"} 1",
            "dv_peer_up{operator=\"2\"} 1",
            "dv_peer_up{operator=\"3\"} 0",
            "dv_peer_sends_total{operator=\"3\",result=\"error\"} 1",
            "dv_partials_refused_by_peer_total{operator=\"4\"} 5",
            "# TYPE dv_store_duties gauge",
            "dv_duties_total{duty=\"attestation\",event=\"published\"} 2",
            "dv_duties_total{duty=\"attestation\",event=\"failed\",reason=\"beacon_node_refused\"} 1",
            "dv_publish_latency_seconds_count{duty=\"attestation\"} 1",
            "dv_publish_latency_max_seconds{duty=\"attestation\"} 0.25",
            "dv_agreements_total{instance=\"attestation_data\",round=\"2\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // Every sample line belongs to a family declared before it.
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = name
                    .strip_suffix("_sum")
                    .or_else(|| name.strip_suffix("_count"))
                    .filter(|f| declared.contains(*f))
                    .unwrap_or(name);
                assert!(declared.contains(family), "{line}");
            }
        }
    }
}
