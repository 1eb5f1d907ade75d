//! The devnet's report: each operator's decisions for each duty, set against
//! the ground truth, and what the chain accepted of the cluster's work (the
//! combined attestation of each attestation duty, the aggregate of each
//! aggregation duty), as table rows while the devnet runs, as JSON records
//! (`--report FILE`) and as a summary at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use super::truth::{DutyId, Truth};
use crate::api::types::BeaconCommitteeSubscription;
use crate::middleware::selections::AnsweredSelection;
use crate::middleware::DutyKind;
use crate::spec::{Epoch, Preset, Slot, ValidatorIndex};
use crate::vc::aggregate::{AggregateOutcome, AggregateRecord};
use crate::vc::attest::{AttestOutcome, AttestationRecord};
use crate::vc::{DecisionDuty, Outcome, SelectionDecision};

/// A duty: its slot, validator and kind.
type DutyKey = (Slot, ValidatorIndex, DutyId);

/// One duty's outcome across the cluster, as the JSON report holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// The slot's epoch.
    pub epoch: Epoch,
    /// The duty's slot.
    pub slot: Slot,
    /// The distributed validator.
    pub validator_index: ValidatorIndex,
    /// `attestation` or `sync`.
    pub duty: &'static str,
    /// The attestation duty's committee.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub committee_index: Option<u64>,
    /// The attestation duty's committee length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub committee_length: Option<u64>,
    /// The sync duty's subcommittee.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subcommittee_index: Option<u64>,
    /// What most operators decided (`null` if they split evenly or none decided).
    pub cluster_decision: Option<bool>,
    /// What the undivided key decides.
    pub ground_truth: bool,
    /// How many operators decided `cluster_decision`.
    pub operators_agreeing: u64,
    /// Operators in the cluster.
    pub operators: u64,
    /// The slowest operator's time from asking to its answer.
    pub latency_ms: Option<u64>,
    /// Attestation duties: how many operators' clients published their
    /// (partial) attestation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operators_attested: Option<u64>,
    /// Attestation duties: whether the chain accepted the cluster's attestation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attestation_accepted: Option<bool>,
    /// Aggregation duties (the ground truth aggregates, or some operator
    /// aggregated): how many operators' clients published their (partial)
    /// `AggregateAndProof`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate_published: Option<u64>,
    /// Aggregation duties: whether the chain accepted the cluster's aggregate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate_accepted: Option<bool>,
    /// Why operators failed to decide, attest or aggregate, if any did.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

impl Record {
    /// Whether every operator decided, and decided the ground truth.
    pub fn is_correct(&self) -> bool {
        self.operators_agreeing == self.operators
            && self.cluster_decision == Some(self.ground_truth)
    }

    /// Whether the chain has everything this duty owes it: the attestation
    /// of an attestation duty, and an aggregate exactly when the ground
    /// truth aggregates.
    pub fn chain_complete(&self) -> bool {
        self.duty != "attestation"
            || (self.attestation_accepted == Some(true)
                && self
                    .aggregate_accepted
                    .is_none_or(|accepted| accepted == self.ground_truth))
    }

    /// One row of the live table.
    pub fn table_row(&self) -> String {
        let duty = match (
            self.committee_index,
            self.committee_length,
            self.subcommittee_index,
        ) {
            (Some(index), Some(length), _) => format!("attestation c{index} (len {length})"),
            (_, _, Some(sub)) => format!("sync subcommittee {sub}"),
            _ => self.duty.to_string(),
        };
        let decision = match self.cluster_decision {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        let latency = self
            .latency_ms
            .map_or_else(|| "-".to_string(), |ms| format!("{ms} ms"));
        let accepted = |accepted: Option<bool>| match accepted {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        // No aggregate is a failure only where one was due.
        let aggregate = match self.aggregate_accepted {
            Some(false) if !self.ground_truth => "-",
            accepted_aggregate => accepted(accepted_aggregate),
        };
        format!(
            "{:>5}  {:>9}  {:<28}  {:<10}  {:>6}  {:<7}  {:>8}  {:<8}  {:<9}",
            self.slot,
            self.validator_index,
            duty,
            decision,
            format!("{}/{}", self.operators_agreeing, self.operators),
            if self.is_correct() { "yes" } else { "NO" },
            latency,
            accepted(self.attestation_accepted),
            aggregate,
        )
    }
}

/// The header of the live table.
pub fn table_header() -> String {
    format!(
        "{:>5}  {:>9}  {:<28}  {:<10}  {:>6}  {:<7}  {:>8}  {:<8}  {:<9}",
        "slot",
        "validator",
        "duty",
        "aggregator",
        "agreed",
        "= truth",
        "latency",
        "attested",
        "aggregate"
    )
}

/// What the devnet found, in numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Duties checked.
    pub duties: u64,
    /// Attestation duties among them.
    pub attestation_duties: u64,
    /// Sync duties among them.
    pub sync_duties: u64,
    /// Duties whose ground truth is "aggregate".
    pub aggregators: u64,
    /// Attestation duties among them.
    pub attestation_aggregators: u64,
    /// Duties every operator decided as the ground truth.
    pub correct: u64,
    /// Duties some operator decided otherwise, or not at all.
    pub incorrect: u64,
    /// Decisions for duties the ground truth does not have.
    pub unexpected_decisions: u64,
    /// Attestation duties whose beacon committee subscriptions were checked.
    pub subscriptions_checked: u64,
    /// Of those, duties whose subscriptions do not say what the ground truth
    /// says: an aggregator's must be posted with `is_aggregator` true at
    /// least as many times as there are operators (each client at least
    /// once), a non-aggregator's never (a client posts a duty it has not
    /// decided yet with false, and again with true once decided).
    pub subscriptions_wrong: u64,
    /// Attestation duties the chain accepted the cluster's attestation of.
    pub attestations_accepted: u64,
    /// Aggregation duties (the ground truth aggregates) whose aggregate the
    /// chain accepted.
    pub aggregates_accepted: u64,
    /// Aggregates the clients owe the chain: every aggregation duty of the
    /// ground truth when they hold combined selection proofs
    /// (`beacon_committee_selections`), none when they asked
    /// `is_aggregator`, whose booleans give them no proof to aggregate with.
    pub aggregates_expected: u64,
    /// Aggregates the chain accepted for duties where the ground truth does
    /// not aggregate.
    pub aggregates_unexpected: u64,
    /// Median of the records' latencies.
    pub median_latency_ms: Option<u64>,
    /// Largest of the records' latencies.
    pub max_latency_ms: Option<u64>,
}

impl Summary {
    /// Whether every decision and subscription equals the ground truth, and
    /// the chain accepted every attestation and exactly the aggregates
    /// expected.
    pub fn is_ok(&self) -> bool {
        self.incorrect == 0
            && self.unexpected_decisions == 0
            && self.subscriptions_wrong == 0
            && self.attestations_accepted == self.attestation_duties
            && self.aggregates_accepted == self.aggregates_expected
            && self.aggregates_unexpected == 0
    }
}

/// The whole report, as `--report FILE` writes it.
#[derive(Debug, Clone, Serialize)]
pub struct DevnetReport {
    /// One record per (epoch, slot, validator, duty kind).
    pub records: Vec<Record>,
    /// The totals.
    pub summary: Summary,
}

/// One operator's decision of one duty, as the report counts it.
#[derive(Debug, Clone)]
struct OperatorDecision {
    outcome: Outcome,
    latency: Duration,
}

/// Collects the ground truth and every operator's decisions.
pub struct ReportBuilder {
    operators: u64,
    aggregates_due: bool,
    /// Set when the clients are external: their decisions are read off what
    /// their middlewares answered them, decided with this preset's rules,
    /// and what each published is not seen (only what the chain accepted).
    external: Option<Preset>,
    truths: BTreeMap<DutyKey, Truth>,
    decisions: BTreeMap<DutyKey, BTreeMap<u64, OperatorDecision>>,
    answers: BTreeMap<DutyKey, BTreeMap<u64, AnsweredSelection>>,
    attestations: BTreeMap<(Slot, ValidatorIndex), BTreeMap<u64, AttestOutcome>>,
    aggregates: BTreeMap<(Slot, ValidatorIndex), BTreeMap<u64, AggregateOutcome>>,
    chain_attestations: BTreeSet<(Slot, ValidatorIndex)>,
    chain_aggregates: BTreeSet<(Slot, ValidatorIndex)>,
    records: Vec<Record>,
}

impl ReportBuilder {
    /// A report for a cluster of `operators`; `aggregates_due` says whether
    /// the clients can aggregate (they hold combined selection proofs).
    pub fn new(operators: u64, aggregates_due: bool) -> Self {
        ReportBuilder {
            operators,
            aggregates_due,
            external: None,
            truths: BTreeMap::new(),
            decisions: BTreeMap::new(),
            answers: BTreeMap::new(),
            attestations: BTreeMap::new(),
            aggregates: BTreeMap::new(),
            chain_attestations: BTreeSet::new(),
            chain_aggregates: BTreeSet::new(),
            records: Vec::new(),
        }
    }

    /// A report on external clients (see [`Self::add_answers`]), judged
    /// with `preset`'s selection rules.
    pub fn with_external_clients(mut self, preset: Preset) -> Self {
        self.external = Some(preset);
        self
    }

    /// Adds what `operator`'s middleware answered its external client. The
    /// client decides a duty on the combined proof it got, so that proof,
    /// decided with the duty's ground truth rules once the duty closes, is
    /// its decision; an item with no proof is a failed selection. A client
    /// asking twice for a duty keeps the first proof.
    pub fn add_answers(&mut self, operator: u64, answers: Vec<AnsweredSelection>) {
        for answer in answers {
            let duty = match answer.kind {
                DutyKind::SyncSelection { subcommittee_index } => {
                    DutyId::Sync { subcommittee_index }
                }
                _ => DutyId::Attestation,
            };
            let by_operator = self
                .answers
                .entry((answer.slot, answer.validator_index, duty))
                .or_default();
            if by_operator
                .get(&operator)
                .is_none_or(|kept| kept.combined.is_err())
            {
                by_operator.insert(operator, answer);
            }
        }
    }

    /// Adds what `operator`'s client did with its attestation duties.
    pub fn add_attestations(&mut self, operator: u64, records: Vec<AttestationRecord>) {
        for record in records {
            self.attestations
                .entry((record.slot, record.validator_index))
                .or_default()
                .insert(operator, record.outcome);
        }
    }

    /// Adds what `operator`'s client did with its aggregation duties.
    pub fn add_aggregates(&mut self, operator: u64, records: Vec<AggregateRecord>) {
        for record in records {
            self.aggregates
                .entry((record.slot, record.validator_index))
                .or_default()
                .insert(operator, record.outcome);
        }
    }

    /// Adds what the chain accepted: attestations and aggregates by (slot,
    /// validator index).
    pub fn add_chain(
        &mut self,
        attestations: impl IntoIterator<Item = (Slot, ValidatorIndex)>,
        aggregates: impl IntoIterator<Item = (Slot, ValidatorIndex)>,
    ) {
        self.chain_attestations.extend(attestations);
        self.chain_aggregates.extend(aggregates);
    }

    /// Adds an epoch's ground truth.
    pub fn add_truths(&mut self, truths: Vec<Truth>) {
        for truth in truths {
            self.truths
                .insert((truth.slot, truth.validator_index, truth.duty), truth);
        }
    }

    /// Adds `operator`'s decisions; a decision for a duty without ground
    /// truth (of an epoch the devnet did not reach, or that does not exist)
    /// is kept until [`Self::finish`], which counts those left over.
    pub fn add_decisions(&mut self, operator: u64, decisions: Vec<SelectionDecision>) {
        for decision in decisions {
            let duty = match decision.duty {
                DecisionDuty::Attestation { .. } => DutyId::Attestation,
                DecisionDuty::Sync { subcommittee_index } => DutyId::Sync { subcommittee_index },
            };
            let key = (decision.slot, decision.validator_index, duty);
            self.decisions.entry(key).or_default().insert(
                operator,
                OperatorDecision {
                    outcome: decision.outcome,
                    latency: decision.latency,
                },
            );
        }
    }

    /// The records of every duty at or before `slot`, now final (a validator
    /// client decides or fails a duty by its slot), in slot order.
    pub fn close_through(&mut self, slot: Slot) -> Vec<Record> {
        let closing: Vec<DutyKey> = self
            .truths
            .range(
                ..=(
                    slot,
                    ValidatorIndex::MAX,
                    DutyId::Sync {
                        subcommittee_index: u64::MAX,
                    },
                ),
            )
            .map(|(key, _)| *key)
            .collect();
        let mut closed = Vec::with_capacity(closing.len());
        for key in closing {
            if let Some(truth) = self.truths.remove(&key) {
                let mut decisions = self.decisions.remove(&key).unwrap_or_default();
                if let Some(preset) = &self.external {
                    let answers = self.answers.remove(&key).unwrap_or_default();
                    for (operator, answer) in answers {
                        decisions.insert(operator, decision_of_answer(&truth, answer, preset));
                    }
                }
                let mut record = record(&truth, &decisions, self.operators);
                if truth.duty == DutyId::Attestation {
                    self.add_duty_work(&mut record);
                }
                closed.push(record);
            }
        }
        self.records.extend(closed.iter().cloned());
        closed
    }

    /// Fills an attestation duty's record with what the operators' clients
    /// published and the chain accepted.
    fn add_duty_work(&mut self, record: &mut Record) {
        let at = (record.slot, record.validator_index);
        let attested = self.attestations.remove(&at).unwrap_or_default();
        let published = attested
            .values()
            .filter(|outcome| matches!(outcome, AttestOutcome::Published { .. }))
            .count() as u64;
        for (operator, outcome) in &attested {
            match outcome {
                AttestOutcome::Published { .. } => {}
                AttestOutcome::Slashable(reason) => record.failures.push(format!(
                    "operator {operator}: slashing protection: {reason}"
                )),
                AttestOutcome::Failed(reason) => record
                    .failures
                    .push(format!("operator {operator}: attestation: {reason}")),
            }
        }
        let observed = self.external.is_none();
        record.operators_attested = observed.then_some(published);
        record.attestation_accepted = Some(self.chain_attestations.contains(&at));
        let aggregated = self.aggregates.remove(&at).unwrap_or_default();
        let chain_aggregate = self.chain_aggregates.contains(&at);
        if (record.ground_truth && self.aggregates_due) || chain_aggregate || !aggregated.is_empty()
        {
            record.aggregate_published = observed.then(|| {
                aggregated
                    .values()
                    .filter(|outcome| matches!(outcome, AggregateOutcome::Published { .. }))
                    .count() as u64
            });
            record.aggregate_accepted = Some(chain_aggregate);
            for (operator, outcome) in &aggregated {
                if let AggregateOutcome::Failed(reason) = outcome {
                    record
                        .failures
                        .push(format!("operator {operator}: aggregate: {reason}"));
                }
            }
        }
    }

    /// Checks the subscriptions the beacon node received for the validators
    /// of the records, then totals everything.
    pub fn finish(self, subscriptions: &[BeaconCommitteeSubscription]) -> DevnetReport {
        // Decisions left over for slots already reported had no duty to match.
        let last_reported = self.records.iter().map(|r| r.slot).max();
        let unexpected = self
            .decisions
            .keys()
            .chain(self.answers.keys())
            .filter(|(slot, _, _)| last_reported.is_some_and(|last| *slot <= last))
            .count() as u64;
        let mut summary = Summary {
            unexpected_decisions: unexpected,
            ..Summary::default()
        };
        let mut posted_true: BTreeMap<(Slot, ValidatorIndex), u64> = BTreeMap::new();
        for subscription in subscriptions {
            let count = posted_true
                .entry((subscription.slot, subscription.validator_index))
                .or_default();
            *count += u64::from(subscription.is_aggregator);
        }
        for record in self.records.iter().filter(|r| r.duty == "attestation") {
            if let Some(trues) = posted_true.get(&(record.slot, record.validator_index)) {
                summary.subscriptions_checked += 1;
                // Each operator's client posts an aggregator's subscription
                // with true at least once (Lighthouse repeats it in the
                // slots ahead), a non-aggregator's never.
                let right = if record.ground_truth {
                    *trues >= self.operators
                } else {
                    *trues == 0
                };
                if !right {
                    summary.subscriptions_wrong += 1;
                }
            }
        }
        let mut latencies: Vec<u64> = Vec::new();
        for record in &self.records {
            summary.duties += 1;
            if record.duty == "attestation" {
                summary.attestation_duties += 1;
            } else {
                summary.sync_duties += 1;
            }
            summary.aggregators += u64::from(record.ground_truth);
            if record.duty == "attestation" {
                summary.attestation_aggregators += u64::from(record.ground_truth);
                summary.aggregates_expected +=
                    u64::from(record.ground_truth && self.aggregates_due);
                summary.attestations_accepted +=
                    u64::from(record.attestation_accepted == Some(true));
                match (record.ground_truth, record.aggregate_accepted) {
                    (true, Some(true)) => summary.aggregates_accepted += 1,
                    (false, Some(true)) => summary.aggregates_unexpected += 1,
                    _ => {}
                }
            }
            if record.is_correct() {
                summary.correct += 1;
            } else {
                summary.incorrect += 1;
            }
            latencies.extend(record.latency_ms);
        }
        latencies.sort_unstable();
        summary.median_latency_ms = latencies.get(latencies.len() / 2).copied();
        summary.max_latency_ms = latencies.last().copied();
        DevnetReport {
            records: self.records,
            summary,
        }
    }
}

/// The decision an external client takes on what its middleware answered.
fn decision_of_answer(
    truth: &Truth,
    answer: AnsweredSelection,
    preset: &Preset,
) -> OperatorDecision {
    let outcome = match answer.combined {
        Ok(proof) => Outcome::Decided {
            is_aggregator: truth.decides(&proof.to_bytes(), preset),
            selection_proof: Some(proof),
        },
        Err(reason) => Outcome::Failed { reason },
    };
    OperatorDecision {
        outcome,
        latency: answer.latency,
    }
}

/// One duty's record from its ground truth and the operators' decisions.
fn record(truth: &Truth, decisions: &BTreeMap<u64, OperatorDecision>, operators: u64) -> Record {
    let mut votes: BTreeMap<bool, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut latency: Option<Duration> = None;
    for (operator, decision) in decisions {
        match &decision.outcome {
            Outcome::Decided { is_aggregator, .. } => {
                *votes.entry(*is_aggregator).or_default() += 1;
                latency = Some(latency.map_or(decision.latency, |l| l.max(decision.latency)));
            }
            Outcome::Failed { reason } => failures.push(format!("operator {operator}: {reason}")),
        }
    }
    let missing = operators.saturating_sub(decisions.len() as u64);
    if missing > 0 {
        failures.push(format!("{missing} operators recorded no decision"));
    }
    let (yes, no) = (
        votes.get(&true).copied().unwrap_or(0),
        votes.get(&false).copied().unwrap_or(0),
    );
    let cluster_decision = match yes.cmp(&no) {
        std::cmp::Ordering::Greater => Some(true),
        std::cmp::Ordering::Less => Some(false),
        std::cmp::Ordering::Equal => None,
    };
    let (committee_index, committee_length) = truth.committee.unzip();
    Record {
        epoch: truth.epoch,
        slot: truth.slot,
        validator_index: truth.validator_index,
        duty: match truth.duty {
            DutyId::Attestation => "attestation",
            DutyId::Sync { .. } => "sync",
        },
        committee_index,
        committee_length,
        subcommittee_index: match truth.duty {
            DutyId::Sync { subcommittee_index } => Some(subcommittee_index),
            DutyId::Attestation => None,
        },
        cluster_decision,
        ground_truth: truth.is_aggregator,
        operators_agreeing: yes.max(no),
        operators,
        latency_ms: latency.map(|l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX)),
        operators_attested: None,
        attestation_accepted: None,
        aggregate_published: None,
        aggregate_accepted: None,
        failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{SecretKey, Signature};
    use crate::spec::selection::is_aggregator;

    fn truth(slot: Slot, validator_index: u64, is_aggregator: bool) -> Truth {
        Truth {
            epoch: slot / 8,
            slot,
            validator_index,
            duty: DutyId::Attestation,
            committee: Some((1, 64)),
            is_aggregator,
        }
    }

    fn decision(slot: Slot, validator_index: u64, outcome: Outcome, ms: u64) -> SelectionDecision {
        SelectionDecision {
            epoch: slot / 8,
            slot,
            validator_index,
            validator: SecretKey::random().public_key(),
            duty: DecisionDuty::Attestation {
                committee_index: 1,
                committee_length: 64,
            },
            outcome,
            latency: Duration::from_millis(ms),
        }
    }

    fn decided(is_aggregator: bool) -> Outcome {
        Outcome::Decided {
            is_aggregator,
            selection_proof: None,
        }
    }

    #[test]
    fn a_duty_is_correct_only_when_every_operator_decides_the_truth() {
        let mut report = ReportBuilder::new(3, true);
        report.add_truths(vec![
            truth(3, 7, true),
            truth(4, 8, false),
            truth(5, 9, true),
        ]);
        for operator in 1..=3 {
            report.add_decisions(operator, vec![decision(3, 7, decided(true), 10 * operator)]);
        }
        report.add_decisions(1, vec![decision(4, 8, decided(false), 5)]);
        report.add_decisions(2, vec![decision(4, 8, decided(true), 5)]);
        report.add_decisions(
            3,
            vec![decision(
                4,
                8,
                Outcome::Failed {
                    reason: "no answer".into(),
                },
                0,
            )],
        );
        let closed = report.close_through(4);
        assert_eq!(closed.len(), 2);
        assert!(closed[0].is_correct());
        assert_eq!(closed[0].latency_ms, Some(30));
        assert_eq!(closed[0].operators_agreeing, 3);
        assert!(!closed[1].is_correct());
        assert_eq!(closed[1].cluster_decision, None);
        assert_eq!(closed[1].failures, ["operator 3: no answer"]);
        // A decision nobody expected is counted when the report ends.
        report.add_decisions(1, vec![decision(5, 10, decided(true), 1)]);
        let closed = report.close_through(5);
        assert_eq!(closed[0].failures, ["3 operators recorded no decision"]);
        // Duty (3, 7) aggregates: posted false first (undecided), then true by
        // each operator: right. Duty (4, 8) does not: one true is wrong.
        let subscription = |slot, validator_index, is_aggregator| BeaconCommitteeSubscription {
            validator_index,
            committee_index: 1,
            committees_at_slot: 4,
            slot,
            is_aggregator,
        };
        let mut subscriptions = vec![subscription(3, 7, false)];
        subscriptions.extend((0..3).map(|_| subscription(3, 7, true)));
        subscriptions.extend([subscription(4, 8, false), subscription(4, 8, true)]);
        let summary = report.finish(&subscriptions).summary;
        assert_eq!(
            (summary.duties, summary.correct, summary.incorrect),
            (3, 1, 2)
        );
        assert_eq!(summary.unexpected_decisions, 1);
        assert_eq!(
            (summary.subscriptions_checked, summary.subscriptions_wrong),
            (2, 1)
        );
        assert_eq!(summary.aggregators, 2);
        assert!(!summary.is_ok());
        let header = table_header();
        assert!(header.contains("aggregator") && header.contains("= truth"));
    }

    #[test]
    fn external_clients_are_judged_by_the_combined_proofs_their_middlewares_answered() {
        let preset = Preset::minimal();
        let proof = |seed: u8| SecretKey::random().sign(&[seed; 32]);
        let (right, wrong, late) = (proof(1), proof(2), proof(3));
        let decides = |proof: &Signature| is_aggregator(64, &proof.to_bytes(), &preset);
        let answer = |slot, validator_index, combined: Result<Signature, &str>| AnsweredSelection {
            validator_index,
            slot,
            kind: DutyKind::AttestationSelection,
            combined: combined.map_err(str::to_string),
            latency: Duration::from_millis(7),
        };
        let mut report = ReportBuilder::new(3, true).with_external_clients(preset.clone());
        report.add_truths(vec![
            truth(3, 7, decides(&right)),
            truth(4, 8, !decides(&wrong)),
            truth(5, 9, decides(&late)),
        ]);
        for operator in 1..=3 {
            report.add_answers(
                operator,
                vec![answer(3, 7, Ok(right)), answer(4, 8, Ok(wrong))],
            );
        }
        // A failed answer gives way to a later proof; a proof is kept over a
        // later failure; operator 3 never asked.
        report.add_answers(
            1,
            vec![answer(5, 9, Err("no quorum")), answer(5, 9, Ok(late))],
        );
        report.add_answers(
            2,
            vec![answer(5, 9, Ok(late)), answer(5, 9, Err("no quorum"))],
        );
        let closed = report.close_through(5);
        assert_eq!(closed.len(), 3);
        assert!(closed[0].is_correct(), "{:?}", closed[0]);
        assert_eq!(closed[0].operators_agreeing, 3);
        assert_eq!(closed[0].latency_ms, Some(7));
        // Attestations are judged by the chain only: the clients' own
        // records are not seen.
        assert_eq!(closed[0].operators_attested, None);
        assert!(!closed[1].is_correct());
        assert_eq!(closed[1].cluster_decision, Some(!closed[1].ground_truth));
        assert!(!closed[2].is_correct());
        assert_eq!(closed[2].operators_agreeing, 2);
        assert_eq!(closed[2].failures, ["1 operators recorded no decision"]);
    }
}
