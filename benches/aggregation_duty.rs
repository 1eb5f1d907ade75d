//! The aggregation duty of a slot with 1,024 distributed validators, about
//! an eighth of which aggregate, through a 4-operator middleware cluster
//! (threshold 3) on loopback, against the pure crypto of the same work,
//! measured in the same run.
//!
//! The cluster and chain are the attester-duty bench's, on the mainnet
//! preset and its 12-second slots with 32,768 interop validators (6-second
//! slots leave too little of the slot after the attester duty on a 2-core
//! machine), every one distributed: each slot
//! has eight committees of 128 (aggregator modulo 128 / 16 = 8, so about an
//! eighth aggregate), 1,024 attesters. Each iteration is one slot: before it, the
//! four operators' clients post their 1,024 partial selection proofs to
//! `beacon_committee_selections` and learn from the combined proofs who
//! aggregates; at its start they attest (agreement, partials, combined,
//! accepted by the chain). Measured, from there: every client asks its
//! middleware for the aggregate of each committee where the cluster
//! aggregates (which starts the agreement on the slot's aggregates: fetch
//! from each beacon node, propose, check every aggregate's signature
//! against its 250 participants, decide), signs its partial
//! `AggregateAndProof`s with the combined selection proofs and posts them;
//! the middlewares verify, exchange, combine, verify against the group keys
//! and publish; the time ends when the chain has accepted the last of them.
//! The baseline is the crypto of that work alone, four operator threads at
//! once: each checks the agreed aggregates (one fast aggregate verification
//! per committee), signs its partials, decodes and batch-verifies everyone's,
//! combines three per duty and batch-verifies the combined; then the chain
//! verifies each aggregate's selection proof and aggregator signature (one
//! batch) and aggregate signature. Printed: cluster time / baseline time.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::duty_cluster::{on_operator_threads, DutyCluster, PartialsWork, FORK, OPERATORS};
use criterion::{criterion_group, criterion_main, Criterion};
use dv_aggregator::api::attestation::{
    AggregateAndProof, Attestation, AttestationElectra, Bitfield, SignedAggregateAndProof,
};
use dv_aggregator::api::types::{AttesterDuty, BeaconCommitteeSelection, SignatureBytes};
use dv_aggregator::api::ChainInfo;
use dv_aggregator::crypto::batch::{verify_signature_sets, SignatureSet};
use dv_aggregator::crypto::interop::interop_secret_key;
use dv_aggregator::crypto::{aggregate_signatures, PublicKey, SecretKey, Signature};
use dv_aggregator::spec::selection::is_aggregator;
use dv_aggregator::spec::{AttestationData, ChainSpec, CommitteeIndex, Root, Slot};
use tree_hash::TreeHash;

/// Mainnet preset and slots (12 s): 32 slots of eight committees of 128
/// (aggregator modulo 128 / 16 = 8), 1,024 attesters a slot.
const VALIDATORS: u64 = 32_768;

/// One aggregating duty: the validator, its committee and the combined
/// selection proof that made it an aggregator.
#[derive(Clone)]
struct Aggregation {
    duty: AttesterDuty,
    selection_proof: [u8; 96],
}

/// Before `slot`: every client posts its partial selection proofs of
/// `duties` (signed on its own thread); the duties whose combined proof
/// selects them.
async fn selections(
    cluster: &DutyCluster,
    slot: Slot,
    duties: &Arc<Vec<AttesterDuty>>,
) -> Vec<Aggregation> {
    let root = cluster.info.selection_proof_signing_root(slot);
    let requests = (1..=OPERATORS)
        .zip(&cluster.clients)
        .map(|(operator, client)| {
            let (shares, duties) = (Arc::clone(&cluster.shares), Arc::clone(duties));
            async move {
                let items = tokio::task::spawn_blocking(move || {
                    duties
                        .iter()
                        .map(|duty| BeaconCommitteeSelection {
                            validator_index: duty.validator_index,
                            slot,
                            selection_proof: SignatureBytes(
                                shares[duty.validator_index as usize][&operator]
                                    .sign(root.as_slice())
                                    .to_bytes(),
                            ),
                        })
                        .collect::<Vec<_>>()
                })
                .await
                .expect("signer");
                client
                    .beacon_committee_selections(&items)
                    .await
                    .expect("combined proofs")
            }
        });
    let answers = futures_util::future::join_all(requests).await;
    // Combined proofs are the same at every operator; partials are not.
    assert!(
        answers.iter().all(|answer| *answer == answers[0]),
        "the operators got different selection proofs for slot {slot}: not all combined"
    );
    let preset = &cluster.info.spec.preset;
    assert_eq!(answers[0].len(), duties.len());
    duties
        .iter()
        .zip(&answers[0])
        .filter_map(|(duty, combined)| {
            assert_eq!(combined.validator_index, duty.validator_index);
            let proof = combined.selection_proof.0;
            is_aggregator(duty.committee_length, &proof, preset).then(|| Aggregation {
                duty: duty.clone(),
                selection_proof: proof,
            })
        })
        .collect()
}

/// The committees of `aggregations`, ascending.
fn committees(aggregations: &[Aggregation]) -> Vec<CommitteeIndex> {
    let mut committees: Vec<CommitteeIndex> = aggregations
        .iter()
        .map(|a| a.duty.committee_index)
        .collect();
    committees.sort_unstable();
    committees.dedup();
    committees
}

/// One operator's partial signatures over the `AggregateAndProof`s of
/// `aggregations`, with the agreed `aggregates` by committee.
fn sign_aggregates(
    info: &ChainInfo,
    shares: &[BTreeMap<u64, SecretKey>],
    operator: u64,
    aggregations: &[Aggregation],
    aggregates: &BTreeMap<CommitteeIndex, Attestation>,
) -> Vec<SignedAggregateAndProof> {
    aggregations
        .iter()
        .map(|aggregation| {
            let message = AggregateAndProof {
                aggregator_index: aggregation.duty.validator_index,
                aggregate: aggregates[&aggregation.duty.committee_index].clone(),
                selection_proof: SignatureBytes(aggregation.selection_proof),
            };
            let root = info.aggregate_and_proof_signing_root(&message);
            let share = &shares[aggregation.duty.validator_index as usize][&operator];
            SignedAggregateAndProof {
                message,
                signature: SignatureBytes(share.sign(root.as_slice()).to_bytes()),
            }
        })
        .collect()
}

/// The aggregation of `aggregations` at `slot`, whose agreed attestation
/// data is `data`: from the clients' first aggregate request to the last
/// aggregate the chain accepted.
async fn aggregate(
    cluster: &DutyCluster,
    slot: Slot,
    data: &AttestationData,
    aggregations: &Arc<Vec<Aggregation>>,
) -> Duration {
    let started = Instant::now();
    let data_root = data.tree_hash_root();
    let committees = committees(aggregations);
    let clients = (1..=OPERATORS)
        .zip(&cluster.clients)
        .map(|(operator, client)| {
            let (info, shares, aggregations) = (
                Arc::clone(&cluster.info),
                Arc::clone(&cluster.shares),
                Arc::clone(aggregations),
            );
            let committees = committees.clone();
            async move {
                let mut aggregates = BTreeMap::new();
                for committee_index in committees {
                    let aggregate = client
                        .aggregate_attestation_v2(data_root, slot, committee_index)
                        .await
                        .expect("agreed aggregate");
                    aggregates.insert(committee_index, aggregate);
                }
                let signed = tokio::task::spawn_blocking(move || {
                    sign_aggregates(&info, &shares, operator, &aggregations, &aggregates)
                })
                .await
                .expect("signer");
                client
                    .post_aggregate_and_proofs_v2(FORK, &signed)
                    .await
                    .expect("partials taken");
            }
        });
    futures_util::future::join_all(clients).await;
    cluster
        .wait_until(slot, "aggregates", aggregations.len(), || {
            cluster
                .chain
                .node()
                .pool()
                .accepted_aggregates()
                .iter()
                .filter(|a| a.slot == slot)
                .count()
        })
        .await;
    started.elapsed()
}

/// One slot: selections before it (not measured), the attester duty at its
/// start (not measured), then the aggregation duty (measured).
fn cluster_slot(cluster: &mut DutyCluster) -> Duration {
    // Time before the slot for 4,000 partial selection proofs.
    let (slot, duties) = cluster.next_slot(Duration::from_secs(4));
    let cluster = &*cluster;
    cluster.runtime.block_on(async {
        let duties = Arc::new(duties);
        let aggregations = Arc::new(selections(cluster, slot, &duties).await);
        assert!(!aggregations.is_empty(), "nobody aggregates at slot {slot}");
        cluster.enter_slot(slot).await;
        let data = cluster.attest(slot, &duties).await;
        aggregate(cluster, slot, &data, &aggregations).await
    })
}

/// The electra aggregate of every member of a committee of `members`.
fn full_aggregate(
    info: &ChainInfo,
    data: &AttestationData,
    members: &[&AttesterDuty],
    signature: &Signature,
) -> Attestation {
    let mut aggregation_bits = Bitfield::zeros(members.len());
    for position in 0..members.len() {
        aggregation_bits.set(position).expect("in the committee");
    }
    let committees = info.spec.preset.MAX_COMMITTEES_PER_SLOT as usize;
    let committee_bits = Bitfield::with_bit(committees, members[0].committee_index as usize)
        .expect("a committee of the slot");
    Attestation::Electra(AttestationElectra {
        aggregation_bits,
        data: *data,
        signature: SignatureBytes(signature.to_bytes()),
        committee_bits,
    })
}

/// One aggregating committee as the crypto sees it.
struct CommitteeWork {
    members: Vec<PublicKey>,
    aggregate: Signature,
}

/// What the chain checks of one aggregation duty besides its signature.
struct DutyWork {
    selection_root: Root,
    selection_proof: Signature,
    committee: usize,
}

/// The crypto of one slot's aggregation duty, without anything else.
struct CryptoWork {
    committees: Vec<CommitteeWork>,
    attestation_root: Root,
    duties: Vec<DutyWork>,
    /// The `AggregateAndProof` partials, in duty order.
    partials: PartialsWork,
}

impl CryptoWork {
    /// The work of a slot like `cluster`'s next: its committees' aggregates
    /// of full participation, and as many aggregators (with the combined
    /// proofs of the undivided keys) as selection picks.
    fn new(cluster: &mut DutyCluster) -> Self {
        let slot = cluster.slot + 1;
        let info = Arc::clone(&cluster.info);
        let data = AttestationData {
            slot,
            ..AttestationData::default()
        };
        let attestation_root = info.attestation_signing_root(&data);
        let selection_root = info.selection_proof_signing_root(slot);
        let duties = cluster.duties_at(slot);
        let mut by_committee: BTreeMap<CommitteeIndex, Vec<&AttesterDuty>> = BTreeMap::new();
        for duty in &duties {
            by_committee
                .entry(duty.committee_index)
                .or_default()
                .push(duty);
        }
        let mut committees = Vec::new();
        let mut work = Vec::new();
        let mut signed = Vec::new();
        for members in by_committee.values_mut() {
            members.sort_by_key(|duty| duty.validator_committee_index);
            let keys: Vec<SecretKey> = members
                .iter()
                .map(|duty| interop_secret_key(duty.validator_index))
                .collect();
            let signatures: Vec<Signature> = keys
                .iter()
                .map(|key| key.sign(attestation_root.as_slice()))
                .collect();
            let committee = committees.len();
            let aggregate_signature = aggregate_signatures(&signatures).expect("an aggregate");
            let aggregate = full_aggregate(&info, &data, members, &aggregate_signature);
            for (duty, key) in members.iter().zip(&keys) {
                let proof = key.sign(selection_root.as_slice());
                if !is_aggregator(duty.committee_length, &proof.to_bytes(), &info.spec.preset) {
                    continue;
                }
                let message = AggregateAndProof {
                    aggregator_index: duty.validator_index,
                    aggregate: aggregate.clone(),
                    selection_proof: SignatureBytes(proof.to_bytes()),
                };
                let index = duty.validator_index as usize;
                signed.push((
                    info.aggregate_and_proof_signing_root(&message),
                    cluster.groups[index],
                    cluster.shares[index].clone(),
                ));
                work.push(DutyWork {
                    selection_root,
                    selection_proof: proof,
                    committee,
                });
            }
            committees.push(CommitteeWork {
                members: keys.iter().map(SecretKey::public_key).collect(),
                aggregate: aggregate_signature,
            });
        }
        CryptoWork {
            committees,
            attestation_root,
            duties: work,
            partials: PartialsWork::new(signed),
        }
    }

    fn verify_aggregates(&self) {
        for committee in &self.committees {
            assert!(committee
                .aggregate
                .fast_aggregate_verify(&committee.members, self.attestation_root.as_slice()));
        }
    }

    /// One operator's share of the work: its node checks the agreed
    /// aggregates, then the partials' work ([`PartialsWork::operator`]).
    fn operator(&self, operator: u64) -> Vec<Signature> {
        self.verify_aggregates();
        self.partials.operator(operator)
    }

    /// What the chain verifies of each published aggregate: the selection
    /// proof and the aggregator's signature in one batch, then the
    /// aggregate's signature.
    fn chain(&self, combined: &[Signature]) {
        let sets: Vec<SignatureSet> = self
            .duties
            .iter()
            .zip(self.partials.duties())
            .zip(combined)
            .flat_map(|((duty, (root, group)), signature)| {
                [
                    SignatureSet {
                        pubkey: group,
                        message: duty.selection_root.0,
                        signature: &duty.selection_proof,
                    },
                    SignatureSet {
                        pubkey: group,
                        message: root.0,
                        signature,
                    },
                ]
            })
            .collect();
        assert!(verify_signature_sets(&sets));
        for duty in &self.duties {
            let committee = &self.committees[duty.committee];
            assert!(committee
                .aggregate
                .fast_aggregate_verify(&committee.members, self.attestation_root.as_slice()));
        }
    }

    /// The four operators at once, then the chain's verification.
    fn run(&self) -> Duration {
        let started = Instant::now();
        let combined = on_operator_threads(|operator| self.operator(operator));
        self.chain(&combined);
        started.elapsed()
    }
}

fn bench(c: &mut Criterion) {
    let mut cluster = DutyCluster::start(ChainSpec::mainnet(), VALIDATORS);
    let work = CryptoWork::new(&mut cluster);
    println!(
        "aggregation duty: {} of {} duties aggregate, in {} committees",
        work.duties.len(),
        cluster.per_slot(),
        work.committees.len()
    );
    common::duty_cluster::bench_against_crypto(
        c,
        "aggregation_duty_1024",
        (
            "first aggregate request to last aggregate accepted / pure crypto of the same work",
            3.0,
        ),
        || work.run(),
        || cluster_slot(&mut cluster),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
