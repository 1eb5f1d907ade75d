//! The state-backed node's attestation routes over real HTTP on 127.0.0.1,
//! driven through the typed client, on interop genesis states (minimal
//! preset, 1,024 validators: 4 committees of 32 per slot) advanced through
//! empty slots, at deneb (phase0 forms) and fulu (electra forms), signed
//! with the interop keys: attestation data consistent with the state, the
//! pool's acceptance and every refusal named by index with the good items
//! kept, duplicates and conflicting votes, the aggregate of the pool checked
//! by its own signature, aggregates and each gossip rule they can break, and
//! one head event per advance of the devnet chain.

use std::sync::Arc;

use dv_aggregator::api::attestation::{
    AggregateAndProof, Attestation, AttestationElectra, AttestationPhase0, Bitfield,
    SignedAggregateAndProof, SingleAttestation,
};
use dv_aggregator::api::client::{BeaconNodeClient, ClientError};
use dv_aggregator::api::filters::Limits;
use dv_aggregator::api::types::SignatureBytes;
use dv_aggregator::beacon::backend::LoadedState;
use dv_aggregator::beacon::sidecar::{Sidecar, SidecarConfig, SidecarSource};
use dv_aggregator::crypto::interop::interop_secret_key;
use dv_aggregator::crypto::{PublicKey, Signature};
use dv_aggregator::devnet::chain::DevnetChain;
use dv_aggregator::spec::selection::is_aggregator;
use dv_aggregator::spec::signing::{attestation_signing_root, selection_proof_signing_root};
use dv_aggregator::spec::{AttestationData, ChainSpec, Checkpoint, ForkName, Root, Slot};
use dv_aggregator::state::interop_genesis_state;
use reqwest::Method;
use serde_json::{json, Value};
use tree_hash::TreeHash;

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const SSZ: &str = "application/octet-stream";

const VALIDATORS: u64 = 1024;
/// Epoch 2, not its first slot: the previous epoch is 1.
const HEAD: Slot = 21;

/// A state-backed node serving an interop genesis advanced to `slot`.
struct Node {
    node: Sidecar,
    client: BeaconNodeClient,
}

impl Node {
    async fn start(fork: ForkName, slot: Slot) -> Self {
        let spec = ChainSpec::minimal();
        let mut state = interop_genesis_state(&spec, fork, VALIDATORS, 0).unwrap();
        state.advance_empty_slots(slot).unwrap();
        let node = Sidecar::start(SidecarConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            source: SidecarSource::State(Box::new(state)),
            spec,
            limits: Limits::default(),
        })
        .await
        .unwrap();
        let client = BeaconNodeClient::new(&format!("http://{}", node.addr())).unwrap();
        Node { node, client }
    }

    fn loaded(&self) -> Arc<LoadedState> {
        self.node.backend().loaded().unwrap()
    }

    fn committee(&self, slot: Slot, index: u64) -> Vec<u64> {
        let loaded = self.loaded();
        loaded
            .committees
            .get_beacon_committee(slot, index)
            .unwrap()
            .to_vec()
    }

    fn signing_root(&self, data: &AttestationData) -> Root {
        let state = &self.loaded().state;
        attestation_signing_root(data, &state.fork(), state.genesis_validators_root())
    }

    fn selection_root(&self, slot: Slot) -> Root {
        let state = &self.loaded().state;
        selection_proof_signing_root(
            slot,
            &state.fork(),
            state.genesis_validators_root(),
            state.preset(),
        )
    }

    /// The phase0 attestation of member `position` of the data's committee,
    /// signed by `signer` (the member itself unless a test says otherwise).
    fn phase0(
        &self,
        data: AttestationData,
        position: usize,
        signer: Option<u64>,
    ) -> AttestationPhase0 {
        let committee = self.committee(data.slot, data.index);
        AttestationPhase0 {
            aggregation_bits: Bitfield::with_bit(committee.len(), position).unwrap(),
            data,
            signature: sign(
                signer.unwrap_or(committee[position]),
                self.signing_root(&data),
            ),
        }
    }

    /// The `SingleAttestation` of `attester` in committee `committee_index`.
    fn single(
        &self,
        data: AttestationData,
        committee_index: u64,
        attester: u64,
    ) -> SingleAttestation {
        SingleAttestation {
            committee_index,
            attester_index: attester,
            data,
            signature: sign(attester, self.signing_root(&data)),
        }
    }

    /// `aggregator`'s aggregate of `aggregate`, with its own selection proof.
    fn signed_aggregate(&self, aggregator: u64, aggregate: Attestation) -> SignedAggregateAndProof {
        let slot = aggregate.data().slot;
        let proof = sign(aggregator, self.selection_root(slot));
        self.sign_aggregate(aggregator, aggregate, proof, None)
    }

    /// Signs an `AggregateAndProof` (by `signer`, or the aggregator).
    fn sign_aggregate(
        &self,
        aggregator: u64,
        aggregate: Attestation,
        selection_proof: SignatureBytes,
        signer: Option<u64>,
    ) -> SignedAggregateAndProof {
        let message = AggregateAndProof {
            aggregator_index: aggregator,
            aggregate,
            selection_proof,
        };
        let state = &self.loaded().state;
        let root = message.signing_root(
            &state.fork(),
            state.genesis_validators_root(),
            state.preset(),
        );
        SignedAggregateAndProof {
            signature: sign(signer.unwrap_or(aggregator), root),
            message,
        }
    }

    /// Members of committee `index` at `slot` whose own selection proof makes
    /// them aggregators (`true`) or not (`false`).
    fn members_by_selection(&self, slot: Slot, index: u64, aggregators: bool) -> Vec<u64> {
        let committee = self.committee(slot, index);
        let root = self.selection_root(slot);
        let preset = self.loaded().state.preset().clone();
        committee
            .iter()
            .copied()
            .filter(|member| {
                is_aggregator(committee.len() as u64, &sign(*member, root).0, &preset)
                    == aggregators
            })
            .collect()
    }
}

fn sign(validator: u64, root: Root) -> SignatureBytes {
    SignatureBytes(
        interop_secret_key(validator)
            .sign(root.as_slice())
            .to_bytes(),
    )
}

fn pubkey(validator: u64) -> PublicKey {
    interop_secret_key(validator).public_key()
}

/// The failures of a refused request, as (index, message).
fn failures(error: &ClientError) -> Vec<(usize, String)> {
    assert_eq!(error.status(), Some(400), "{error}");
    error
        .failures()
        .iter()
        .map(|failure| (failure.index, failure.message.clone()))
        .collect()
}

/// Asserts that exactly the items `expected` failed, each with a message
/// holding every given fragment.
fn assert_failures(error: &ClientError, expected: &[(usize, &[&str])]) {
    let got = failures(error);
    let indices: Vec<usize> = got.iter().map(|(index, _)| *index).collect();
    let wanted: Vec<usize> = expected.iter().map(|(index, _)| *index).collect();
    assert_eq!(indices, wanted, "{got:#?}");
    for ((_, message), (index, fragments)) in got.iter().zip(expected) {
        for fragment in *fragments {
            assert!(
                message.contains(fragment),
                "item {index}: {message:?} lacks {fragment:?}"
            );
        }
    }
}

/// A raw request, for what the typed client cannot send: the status and
/// the JSON body (or the text as a JSON string).
async fn raw(
    node: &Node,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let url = format!("http://{}{path}", node.node.addr());
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.body(body).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Asserts a reply's status and that its message holds `fragment`.
fn assert_reply((status, body): &(u16, Value), expected: u16, fragment: &str) {
    assert_eq!(*status, expected, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attestation_data_names_the_chain_s_blocks_and_checkpoints() {
    for fork in [ForkName::Deneb, ForkName::Fulu] {
        let node = Node::start(fork, HEAD).await;
        let loaded = node.loaded();
        let state = &loaded.state;
        // The empty chain's one block: its header, whose state root slot 0 filled.
        let genesis_block = state.latest_block_header().tree_hash_root();
        assert_eq!(state.get_block_root_at_slot(0), Some(genesis_block));
        let electra = fork >= ForkName::Electra;

        for (slot, index) in [(HEAD, 2), (HEAD - 3, 1), (9, 0)] {
            let data = node.client.attestation_data(slot, index).await.unwrap();
            let epoch = slot / 8;
            assert_eq!(data.slot, slot);
            assert_eq!(data.index, if electra { 0 } else { index }, "{fork}");
            assert_eq!(
                Some(data.beacon_block_root),
                state.get_block_root_at_slot(slot.min(HEAD - 1))
            );
            assert_eq!(data.beacon_block_root, genesis_block);
            assert_eq!(
                data.target,
                Checkpoint {
                    epoch,
                    root: state.get_block_root_at_slot(epoch * 8).unwrap()
                }
            );
            let source = if epoch == 2 {
                state.current_justified_checkpoint()
            } else {
                state.previous_justified_checkpoint()
            };
            assert_eq!(data.source, source);
        }

        // Refusals name the value.
        let future = node.client.attestation_data(HEAD + 1, 0).await.unwrap_err();
        assert_eq!(future.status(), Some(400));
        assert!(
            future.to_string().contains(&format!("\"{}\"", HEAD + 1)),
            "{future}"
        );
        assert!(
            future.to_string().contains("the head is at slot 21"),
            "{future}"
        );
        let old = node.client.attestation_data(7, 0).await.unwrap_err();
        assert!(
            old.to_string()
                .contains("before the head's previous epoch 1"),
            "{old}"
        );
        let committee = node.client.attestation_data(HEAD, 4).await.unwrap_err();
        assert!(
            committee.to_string().contains("slot 21 has 4 committees"),
            "{committee}"
        );
        let reply = raw(
            &node,
            GET,
            "/eth/v1/validator/attestation_data?slot=21",
            None,
            vec![],
        )
        .await;
        if electra {
            assert_eq!((reply.0, &reply.1["data"]["index"]), (200, &json!("0")));
        } else {
            assert_reply(&reply, 400, "missing query parameter committee_index");
        }

        // What it returns is what the pool takes.
        let data = node.client.attestation_data(HEAD, 1).await.unwrap();
        let member = node.committee(HEAD, 1)[3];
        if electra {
            node.client
                .post_attestations_v2(fork, &[node.single(data, 1, member)])
                .await
                .unwrap();
        } else {
            node.client
                .post_attestations_v1(&[node.phase0(data, 3, None)])
                .await
                .unwrap();
        }
        let accepted = node.node.pool().accepted_attestations();
        assert_eq!(accepted.len(), 1);
        assert_eq!(
            (
                accepted[0].validator_index,
                accepted[0].slot,
                accepted[0].committee_index
            ),
            (member, HEAD, 1)
        );
        assert_eq!(accepted[0].data_root, data.tree_hash_root());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_an_epoch_start_the_target_is_the_head_block() {
    let node = Node::start(ForkName::Deneb, 16).await;
    let loaded = node.loaded();
    // The state at slot 16 has no root for slot 16 yet: the head is its block.
    assert_eq!(loaded.state.get_block_root_at_slot(16), None);
    let data = node.client.attestation_data(16, 0).await.unwrap();
    let head = loaded.state.get_block_root_at_slot(15).unwrap();
    assert_eq!(
        data.target,
        Checkpoint {
            epoch: 2,
            root: head
        }
    );
    assert_eq!(data.beacon_block_root, head);
    node.client
        .post_attestations_v1(&[node.phase0(data, 0, None)])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deneb_attestations_are_kept_from_v1_v2_json_and_ssz_and_aggregated() {
    let fork = ForkName::Deneb;
    let node = Node::start(fork, HEAD).await;
    let data = node.client.attestation_data(HEAD, 0).await.unwrap();
    let committee = node.committee(HEAD, 0);
    let made: Vec<AttestationPhase0> = (0..6).map(|p| node.phase0(data, p, None)).collect();

    node.client.post_attestations_v1(&made[0..2]).await.unwrap();
    node.client
        .post_attestations_v1_ssz(&made[2..4])
        .await
        .unwrap();
    node.client
        .post_attestations_v2_phase0(fork, &made[4..6])
        .await
        .unwrap();
    let kept: Vec<u64> = node
        .node
        .pool()
        .accepted_attestations()
        .iter()
        .map(|a| a.validator_index)
        .collect();
    assert_eq!(kept, committee[..6]);

    // v2 checks the version header.
    let wrong = node
        .client
        .post_attestations_v2_phase0(ForkName::Electra, &made[..1])
        .await
        .unwrap_err();
    assert!(
        wrong
            .to_string()
            .contains("\"electra\" is not the chain's fork deneb"),
        "{wrong}"
    );
    let body = serde_json::to_vec(&made[..1]).unwrap();
    let reply = raw(&node, POST, "/eth/v2/beacon/pool/attestations", None, body).await;
    assert_reply(&reply, 400, "the Eth-Consensus-Version header is required");

    // The pool's aggregate: the six bits, and a signature of the six keys.
    let data_root = data.tree_hash_root();
    let aggregate = node
        .client
        .aggregate_attestation_v1(data_root, HEAD)
        .await
        .unwrap();
    assert_eq!(aggregate.data, data);
    assert_eq!(
        aggregate.aggregation_bits.ones().collect::<Vec<_>>(),
        (0..6).collect::<Vec<_>>()
    );
    assert_eq!(aggregate.aggregation_bits.len(), committee.len());
    let keys: Vec<PublicKey> = committee[..6].iter().map(|v| pubkey(*v)).collect();
    let signature = Signature::from_bytes(&aggregate.signature.0).unwrap();
    assert!(signature.fast_aggregate_verify(&keys, node.signing_root(&data).as_slice()));
    let v2 = node
        .client
        .aggregate_attestation_v2(data_root, HEAD, 0)
        .await
        .unwrap();
    assert_eq!(v2, Attestation::Phase0(aggregate));
    for missing in [
        node.client
            .aggregate_attestation_v2(data_root, HEAD, 1)
            .await
            .unwrap_err(),
        node.client
            .aggregate_attestation_v1(Root::repeat_byte(7), HEAD)
            .await
            .unwrap_err(),
    ] {
        assert_eq!(missing.status(), Some(404), "{missing}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fulu_single_attestations_are_kept_from_json_and_ssz_and_aggregated() {
    let fork = ForkName::Fulu;
    let node = Node::start(fork, HEAD).await;
    let data = node.client.attestation_data(HEAD, 2).await.unwrap();
    assert_eq!(data.index, 0);
    let committee = node.committee(HEAD, 2);
    let made: Vec<SingleAttestation> = committee[..4]
        .iter()
        .map(|v| node.single(data, 2, *v))
        .collect();
    node.client
        .post_attestations_v2(fork, &made[..2])
        .await
        .unwrap();
    node.client
        .post_attestations_v2_ssz(fork, &made[2..])
        .await
        .unwrap();
    assert_eq!(node.node.pool().counts().attestations.accepted, 4);

    let retired = node.client.post_attestations_v1(&[]).await.unwrap_err();
    assert!(
        retired
            .to_string()
            .contains("use /eth/v2/beacon/pool/attestations"),
        "{retired}"
    );
    let retired = node
        .client
        .aggregate_attestation_v1(data.tree_hash_root(), HEAD)
        .await
        .unwrap_err();
    assert_eq!(retired.status(), Some(400), "{retired}");

    let aggregate = node
        .client
        .aggregate_attestation_v2(data.tree_hash_root(), HEAD, 2)
        .await
        .unwrap();
    let Attestation::Electra(electra) = aggregate else {
        panic!("phase0 form at fulu: {aggregate:?}");
    };
    assert_eq!(electra.committee_indices(), vec![2]);
    assert_eq!(
        electra.aggregation_bits.ones().collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    let keys: Vec<PublicKey> = committee[..4].iter().map(|v| pubkey(*v)).collect();
    let signature = Signature::from_bytes(&electra.signature.0).unwrap();
    assert!(signature.fast_aggregate_verify(&keys, node.signing_root(&data).as_slice()));
    // Electra's data does not name the committee: another committee has none.
    let other = node
        .client
        .aggregate_attestation_v2(data.tree_hash_root(), HEAD, 1)
        .await
        .unwrap_err();
    assert_eq!(other.status(), Some(404));
    // The v2 reply names its version.
    let path = format!(
        "/eth/v2/validator/aggregate_attestation?attestation_data_root={}&slot={HEAD}&committee_index=2",
        data.tree_hash_root()
    );
    let (status, reply) = raw(&node, GET, &path, None, vec![]).await;
    assert_eq!((status, &reply["version"]), (200, &json!("fulu")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refused_attestation_is_named_and_the_good_ones_kept() {
    let node = Node::start(ForkName::Deneb, HEAD).await;
    let data = node.client.attestation_data(HEAD, 0).await.unwrap();
    let committee = node.committee(HEAD, 0);
    let with = |change: &dyn Fn(&mut AttestationData)| {
        let mut changed = data;
        change(&mut changed);
        changed
    };
    let mut two_bits = node.phase0(data, 5, None);
    two_bits.aggregation_bits.set(6).unwrap();
    let mut long_bits = node.phase0(data, 7, None);
    long_bits.aggregation_bits = Bitfield::with_bit(committee.len() + 1, 7).unwrap();
    let mut infinity = node.phase0(data, 13, None);
    infinity.signature = SignatureBytes([0; 96]);
    infinity.signature.0[0] = 0xc0;
    let old_data = node.client.attestation_data(9, 0).await.unwrap();
    let mut old = node.phase0(old_data, 0, None);
    old.data.slot = 7;
    old.data.target.epoch = 0;
    let unknown_block = Root::repeat_byte(0xbb);
    // Committee 4 does not exist: the vote of member 3 of committee 0, renamed.
    let mut no_committee = node.phase0(data, 3, None);
    no_committee.data.index = 4;
    let items = vec![
        node.phase0(data, 0, None),
        node.phase0(with(&|d| d.slot = HEAD + 1), 1, None),
        node.phase0(with(&|d| d.target.epoch = 1), 2, None),
        no_committee,
        two_bits,
        long_bits,
        node.phase0(with(&|d| d.beacon_block_root = unknown_block), 8, None),
        node.phase0(with(&|d| d.target.root = Root::repeat_byte(0xcc)), 9, None),
        node.phase0(with(&|d| d.source.epoch = 1), 10, None),
        node.phase0(data, 11, Some(committee[12])),
        node.phase0(data, 12, None),
        infinity,
        old,
    ];
    let error = node.client.post_attestations_v1(&items).await.unwrap_err();
    let signing_root = format!("{}", node.signing_root(&data));
    let validator_11 = format!("validator {}'s key", committee[11]);
    assert_failures(
        &error,
        &[
            (1, &["slot 22 is in the future", "head is at slot 21"]),
            (2, &["target epoch 1 is not epoch 2 of slot 21"]),
            (3, &["committee index 4 is out of range", "4 committees"]),
            (4, &["2 bits set", "exactly one"]),
            (5, &["hold 33 bits", "has 32 members"]),
            (
                6,
                &["beacon_block_root 0xbbbb", "not a block of this chain"],
            ),
            (7, &["target root 0xcccc", "epoch 2"]),
            (8, &["source (epoch 1", "justified checkpoint (epoch 0"]),
            (
                9,
                &["signature does not verify", &validator_11, &signing_root],
            ),
            (11, &["signature does not decode", "infinity"]),
            (12, &["epoch 0", "takes epochs 1..=2"]),
        ],
    );
    let kept: Vec<u64> = node
        .node
        .pool()
        .accepted_attestations()
        .iter()
        .map(|a| a.validator_index)
        .collect();
    assert_eq!(kept, vec![committee[0], committee[12]]);
    let counts = node.node.pool().counts().attestations;
    assert_eq!(counts.accepted, 2);
    assert_eq!(counts.refused.values().sum::<u64>(), 11);
    assert_eq!(counts.refused["bad_signature"], 1);

    // A malformed item is named too, and the rest still kept.
    let good = serde_json::to_value(node.phase0(data, 14, None)).unwrap();
    let body = serde_json::to_vec(&json!([{"data": 1}, good])).unwrap();
    let reply = raw(&node, POST, "/eth/v1/beacon/pool/attestations", None, body).await;
    assert_reply(&reply, 400, "1 of 2 attestations were refused");
    let reply = reply.1;
    assert_eq!(reply["failures"][0]["index"], 0);
    let message = reply["failures"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("invalid item"), "{reply}");
    assert_eq!(reply["failures"].as_array().unwrap().len(), 1);
    assert_eq!(node.node.pool().accepted_attestations().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_single_attestations_are_named() {
    let fork = ForkName::Fulu;
    let node = Node::start(fork, HEAD).await;
    let data = node.client.attestation_data(HEAD, 1).await.unwrap();
    let committee = node.committee(HEAD, 1);
    let outsider = node.committee(HEAD, 0)[0];
    let mut indexed = node.single(data, 1, committee[1]);
    indexed.data.index = 1;
    let items = vec![
        node.single(data, 1, committee[0]),
        node.single(data, 1, outsider),
        indexed,
        node.single(data, 4, committee[2]),
    ];
    let error = node
        .client
        .post_attestations_v2(fork, &items)
        .await
        .unwrap_err();
    assert_failures(
        &error,
        &[
            (
                1,
                &[&format!(
                    "validator {outsider} is not in committee 1 of slot 21"
                )],
            ),
            (2, &["data.index is 1"]),
            (3, &["committee index 4 is out of range"]),
        ],
    );
    assert_eq!(node.node.pool().accepted_attestations().len(), 1);
    // A phase0 attestation is not what a fulu chain takes.
    let phase0 = AttestationPhase0 {
        aggregation_bits: Bitfield::with_bit(committee.len(), 0).unwrap(),
        data,
        signature: items[0].signature,
    };
    let error = node
        .client
        .post_attestations_v2_phase0(fork, &[phase0])
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_ignored_and_a_conflicting_vote_is_refused() {
    let node = Node::start(ForkName::Deneb, HEAD).await;
    let data = node.client.attestation_data(HEAD, 3).await.unwrap();
    let vote = node.phase0(data, 4, None);
    node.client
        .post_attestations_v1(std::slice::from_ref(&vote))
        .await
        .unwrap();
    node.client
        .post_attestations_v1(&[vote.clone(), vote.clone()])
        .await
        .unwrap();
    node.client
        .post_attestations_v1_ssz(std::slice::from_ref(&vote))
        .await
        .unwrap();
    let counts = node.node.pool().counts().attestations;
    assert_eq!((counts.accepted, counts.duplicates), (1, 3));
    assert_eq!(node.node.pool().accepted_attestations().len(), 1);

    // Another vote of the same validator for the same target epoch, validly
    // signed, is refused whatever it votes for.
    let mut other = data;
    other.beacon_block_root = Root::repeat_byte(0x11);
    let conflicting = node.phase0(other, 4, None);
    let error = node
        .client
        .post_attestations_v1(&[conflicting])
        .await
        .unwrap_err();
    let validator = node.committee(HEAD, 3)[4];
    assert_failures(
        &error,
        &[(
            0,
            &[
                &format!("validator {validator} already attested to target epoch 2"),
                &format!("{}", data.tree_hash_root()),
            ],
        )],
    );
    assert_eq!(
        node.node.pool().counts().attestations.refused["prior_attestation_known"],
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deneb_aggregates_pass_or_are_named_by_the_gossip_rule_they_break() {
    let fork = ForkName::Deneb;
    let node = Node::start(fork, HEAD).await;
    let data = node.client.attestation_data(HEAD, 0).await.unwrap();
    let committee = node.committee(HEAD, 0);
    let votes: Vec<AttestationPhase0> = (0..5).map(|p| node.phase0(data, p, None)).collect();
    node.client.post_attestations_v1(&votes).await.unwrap();
    let aggregate = node
        .client
        .aggregate_attestation_v1(data.tree_hash_root(), HEAD)
        .await
        .unwrap();
    let aggregators = node.members_by_selection(HEAD, 0, true);
    let others = node.members_by_selection(HEAD, 0, false);
    assert!(
        aggregators.len() >= 8 && !others.is_empty(),
        "{aggregators:?} {others:?}"
    );

    let good = node.signed_aggregate(aggregators[0], Attestation::Phase0(aggregate.clone()));
    node.client
        .post_aggregate_and_proofs_v1(std::slice::from_ref(&good))
        .await
        .unwrap();
    node.client
        .post_aggregate_and_proofs_v2(fork, std::slice::from_ref(&good))
        .await
        .unwrap();
    let kept = node.node.pool().accepted_aggregates();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (
            kept[0].aggregator_index,
            kept[0].slot,
            kept[0].committee_index
        ),
        (aggregators[0], HEAD, 0)
    );
    assert_eq!(kept[0].participants, committee[..5]);
    assert_eq!(kept[0].data_root, data.tree_hash_root());
    assert_eq!(node.node.pool().counts().aggregates.duplicates, 1);

    // A selection proof over another slot that still hashes to an aggregator.
    let (bad_proof_aggregator, bad_proof) = aggregators[1..]
        .iter()
        .find_map(|member| {
            let proof = sign(*member, node.selection_root(HEAD - 1));
            let preset = node.loaded().state.preset().clone();
            is_aggregator(committee.len() as u64, &proof.0, &preset).then_some((*member, proof))
        })
        .expect("one of the aggregators' other proofs selects");
    // A validator of another committee whose proof selects for this one.
    let outsider = node
        .committee(HEAD, 1)
        .into_iter()
        .find(|member| {
            let proof = sign(*member, node.selection_root(HEAD));
            let preset = node.loaded().state.preset().clone();
            is_aggregator(committee.len() as u64, &proof.0, &preset)
        })
        .unwrap();
    let free: Vec<u64> = aggregators
        .iter()
        .copied()
        .filter(|a| *a != bad_proof_aggregator && *a != aggregators[0])
        .collect();
    let with_bits = |bits: Bitfield| {
        let mut changed = aggregate.clone();
        changed.aggregation_bits = bits;
        Attestation::Phase0(changed)
    };
    let mut wrong_signature = aggregate.clone();
    wrong_signature.signature = votes[0].signature;
    let mut subset = aggregate.clone();
    subset.aggregation_bits = Bitfield::with_bit(committee.len(), 0).unwrap();
    subset.signature = votes[0].signature;
    let items = vec![
        node.signed_aggregate(others[0], Attestation::Phase0(aggregate.clone())),
        node.sign_aggregate(
            bad_proof_aggregator,
            Attestation::Phase0(aggregate.clone()),
            bad_proof,
            None,
        ),
        node.sign_aggregate(
            free[0],
            Attestation::Phase0(aggregate.clone()),
            sign(free[0], node.selection_root(HEAD)),
            Some(free[1]),
        ),
        node.signed_aggregate(free[2], Attestation::Phase0(wrong_signature)),
        node.signed_aggregate(outsider, Attestation::Phase0(aggregate.clone())),
        node.signed_aggregate(
            free[3],
            with_bits(Bitfield::with_bit(committee.len() + 1, 0).unwrap()),
        ),
        node.signed_aggregate(free[4], with_bits(Bitfield::zeros(committee.len()))),
        node.signed_aggregate(aggregators[0], Attestation::Phase0(subset)),
        node.signed_aggregate(free[5], Attestation::Phase0(aggregate.clone())),
    ];
    let error = node
        .client
        .post_aggregate_and_proofs_v1(&items)
        .await
        .unwrap_err();
    let not_aggregator = format!(
        "validator {} is not an aggregator of committee 0 at slot 21",
        others[0]
    );
    let bad_proof_text =
        format!("selection proof does not verify against validator {bad_proof_aggregator}'s key");
    let bad_signature = format!(
        "aggregator signature does not verify against validator {}'s key",
        free[0]
    );
    let outsider_text = format!("validator {outsider} is not in committee 0 of slot 21");
    let seen = format!(
        "aggregator {} already published another aggregate for target epoch 2",
        aggregators[0]
    );
    assert_failures(
        &error,
        &[
            (0, &[&not_aggregator]),
            (
                1,
                &[&bad_proof_text, &format!("{}", node.selection_root(HEAD))],
            ),
            (2, &[&bad_signature]),
            (
                3,
                &["aggregate signature does not verify against the keys of its 5 participants"],
            ),
            (4, &[&outsider_text]),
            (5, &["hold 33 bits"]),
            (6, &["no participant"]),
            (7, &[&seen]),
        ],
    );
    let kept: Vec<u64> = node
        .node
        .pool()
        .accepted_aggregates()
        .iter()
        .map(|a| a.aggregator_index)
        .collect();
    assert_eq!(kept, vec![aggregators[0], free[5]]);
    let refused = node.node.pool().counts().aggregates.refused;
    for kind in [
        "not_an_aggregator",
        "bad_selection_proof",
        "bad_aggregator_signature",
        "bad_aggregate_signature",
        "not_in_committee",
        "bits_length",
        "empty_aggregate",
        "aggregator_already_seen",
    ] {
        assert_eq!(refused.get(kind), Some(&1), "{kind}: {refused:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fulu_aggregates_are_taken_from_json_and_ssz() {
    let fork = ForkName::Fulu;
    let node = Node::start(fork, HEAD).await;
    let data = node.client.attestation_data(HEAD, 3).await.unwrap();
    let committee = node.committee(HEAD, 3);
    let singles: Vec<SingleAttestation> = committee[..3]
        .iter()
        .map(|v| node.single(data, 3, *v))
        .collect();
    node.client
        .post_attestations_v2(fork, &singles)
        .await
        .unwrap();
    let aggregate = node
        .client
        .aggregate_attestation_v2(data.tree_hash_root(), HEAD, 3)
        .await
        .unwrap();
    let aggregators = node.members_by_selection(HEAD, 3, true);
    let json = node.signed_aggregate(aggregators[0], aggregate.clone());
    let ssz = node.signed_aggregate(aggregators[1], aggregate.clone());
    node.client
        .post_aggregate_and_proofs_v2(fork, &[json])
        .await
        .unwrap();
    node.client
        .post_aggregate_and_proofs_v2_ssz(fork, &[ssz])
        .await
        .unwrap();
    let kept = node.node.pool().accepted_aggregates();
    assert_eq!(kept.len(), 2);
    assert!(kept
        .iter()
        .all(|a| a.participants == committee[..3] && a.committee_index == 3));

    let Attestation::Electra(electra) = aggregate else {
        panic!("{aggregate:?}");
    };
    let mut two_committees: AttestationElectra = electra.clone();
    two_committees.committee_bits.set(1).unwrap();
    let phase0 = AttestationPhase0 {
        aggregation_bits: electra.aggregation_bits.clone(),
        data,
        signature: electra.signature,
    };
    let items = vec![
        node.signed_aggregate(aggregators[2], Attestation::Electra(two_committees)),
        node.signed_aggregate(aggregators[3], Attestation::Phase0(phase0)),
    ];
    let error = node
        .client
        .post_aggregate_and_proofs_v2(fork, &items)
        .await
        .unwrap_err();
    assert_failures(
        &error,
        &[
            (0, &["committee_bits name 2 committees"]),
            (1, &["phase0 aggregate form", "electra aggregate"]),
        ],
    );
    let retired = node
        .client
        .post_aggregate_and_proofs_v1(&[])
        .await
        .unwrap_err();
    assert!(
        retired
            .to_string()
            .contains("/eth/v2/validator/aggregate_and_proofs"),
        "{retired}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_and_item_counts_are_bounded() {
    let node = Node::start(ForkName::Deneb, HEAD).await;
    // Every attester of a slot can aggregate: on minimal, at most
    // MAX_COMMITTEES_PER_SLOT * MAX_VALIDATORS_PER_COMMITTEE = 8,192.
    let body = format!("[{}]", vec!["{}"; 8_193].join(",")).into_bytes();
    let path = "/eth/v1/validator/aggregate_and_proofs";
    let reply = raw(&node, POST, path, None, body).await;
    assert_reply(&reply, 400, "more than 8192 items");
    let path = "/eth/v1/beacon/pool/attestations";
    let mut huge = vec![b' '; 33 * 1024 * 1024];
    huge[0] = b'[';
    let reply = raw(&node, POST, path, None, huge).await;
    assert_reply(&reply, 413, "exceeds the limit of 33554432 bytes");
    let reply = raw(&node, POST, path, Some("text/plain"), b"[]".to_vec()).await;
    assert_reply(&reply, 415, "unsupported content type \"text/plain\"");
    // An SSZ list whose first offset points past the body.
    let reply = raw(&node, POST, path, Some(SSZ), vec![64, 0, 0, 0]).await;
    assert_reply(&reply, 400, "offset 0 is 64");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_advance_of_the_chain_is_one_head_event() {
    let spec = ChainSpec::minimal();
    let chain = DevnetChain::start(spec, ForkName::Fulu, 256, 0)
        .await
        .unwrap();
    let client = BeaconNodeClient::new(&chain.url()).unwrap();
    let refused = client.events(&["head", "block"]).await.unwrap_err();
    assert_eq!(refused.status(), Some(400));
    assert!(
        refused
            .to_string()
            .contains("not served by this node: block"),
        "{refused}"
    );

    let mut events = client.events(&["head"]).await.unwrap();
    for slot in [1, 2, 7, 8, 10] {
        let loaded = chain.advance_to(slot).await.unwrap();
        // Advancing to where the chain already is moves nothing and says nothing.
        chain.advance_to(slot).await.unwrap();
        let event = tokio::time::timeout(std::time::Duration::from_secs(30), events.next_head())
            .await
            .expect("a head event per advance")
            .unwrap()
            .unwrap();
        let state = &loaded.state;
        let genesis_block = state.get_block_root_at_slot(0).unwrap();
        assert_eq!(event.slot, slot);
        assert_eq!(event.block, genesis_block);
        assert_eq!(event.state, state.hash_tree_root());
        assert_eq!(event.epoch_transition, slot == 8, "slot {slot}");
        let dependent = |epoch: u64| {
            (epoch * 8).checked_sub(1).map_or(genesis_block, |slot| {
                state.get_block_root_at_slot(slot).unwrap()
            })
        };
        let epoch = slot / 8;
        assert_eq!(
            event.previous_duty_dependent_root,
            dependent(epoch.saturating_sub(1))
        );
        assert_eq!(event.current_duty_dependent_root, dependent(epoch));
        assert!(!event.execution_optimistic);
    }
}
