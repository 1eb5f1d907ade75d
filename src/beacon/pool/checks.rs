//! The rules an attestation or an aggregate passes before the pool keeps it:
//! the p2p spec's `beacon_attestation_{subnet_id}` and
//! `beacon_aggregate_and_proof` gossip rules and the checks of
//! `process_attestation`, against the head state (the node's clock is the
//! head's slot). Every refusal is a [`PoolError`] naming the values.
//!
//! What a node with a fork choice checks and this one does differently:
//! - "block known" is "a block root the head state records" (the chain is
//!   the state's: no side branches), and the target must be the chain's
//!   checkpoint block of the target epoch (its root at the epoch's start);
//! - the source must be the justified checkpoint `process_attestation`
//!   requires (current for the current epoch, previous otherwise), so what
//!   the pool keeps could go into a block;
//! - an aggregate whose bits another aggregate already covers is kept all
//!   the same (the spec ignores it): every aggregator's duty is recorded.

use std::sync::Arc;

use crate::api::attestation::{
    Attestation, AttestationPhase0, SignedAggregateAndProof, SingleAttestation,
};
use crate::api::types::SignatureBytes;
use crate::api::SelectionBackend;
use crate::beacon::backend::{LoadedState, StateBackend};
use crate::crypto::batch::{decode_signatures, find_invalid, verify_signature_sets, SignatureSet};
use crate::crypto::{aggregate_public_keys, PublicKey, Signature};
use crate::spec::config::ATTESTATION_PROPAGATION_SLOT_RANGE;
use crate::spec::selection::{aggregator_modulo, is_aggregator};
use crate::spec::signing::{
    attestation_signing_root, compute_epoch_at_slot, selection_proof_signing_root,
};
use crate::spec::{
    AttestationData, Checkpoint, CommitteeIndex, Epoch, ForkName, Root, Slot, ValidatorIndex,
};
use crate::state::committee_cache::CommitteeCache;
use tree_hash::TreeHash;

/// Why the pool refuses an attestation or an aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The item does not decode or does not fit its schema.
    #[error("invalid item: {0}")]
    Malformed(String),
    /// The item is not of the form the chain's fork takes.
    #[error("the {given} form of an attestation is not taken at {fork}, which takes the {expected} form")]
    WrongForm {
        /// The form given.
        given: &'static str,
        /// The form expected.
        expected: &'static str,
        /// The chain's fork.
        fork: ForkName,
    },
    /// The slot is after the head's.
    #[error("slot {slot} is in the future: the head is at slot {head_slot}")]
    FutureSlot {
        /// The item's slot.
        slot: Slot,
        /// The head's slot.
        head_slot: Slot,
    },
    /// Before deneb: the slot is more than `ATTESTATION_PROPAGATION_SLOT_RANGE` behind the head.
    #[error("slot {slot} is more than ATTESTATION_PROPAGATION_SLOT_RANGE ({ATTESTATION_PROPAGATION_SLOT_RANGE}) slots before the head at slot {head_slot}")]
    SlotTooOld {
        /// The item's slot.
        slot: Slot,
        /// The head's slot.
        head_slot: Slot,
    },
    /// The slot's epoch is neither the head's previous nor its current epoch.
    #[error("slot {slot} is in epoch {epoch}; the head at slot {head_slot} takes epochs {previous}..={current} only")]
    EpochOutOfRange {
        /// The item's slot.
        slot: Slot,
        /// Its epoch.
        epoch: Epoch,
        /// The head's slot.
        head_slot: Slot,
        /// The head's previous epoch.
        previous: Epoch,
        /// The head's current epoch.
        current: Epoch,
    },
    /// `data.target.epoch` is not the epoch of `data.slot`.
    #[error("target epoch {target_epoch} is not epoch {epoch} of slot {slot}")]
    TargetEpochMismatch {
        /// The item's slot.
        slot: Slot,
        /// Its epoch.
        epoch: Epoch,
        /// The target's epoch.
        target_epoch: Epoch,
    },
    /// The committee index is not below the slot's committee count.
    #[error("committee index {committee_index} is out of range: slot {slot} has {committees_per_slot} committees")]
    CommitteeIndexOutOfRange {
        /// The item's slot.
        slot: Slot,
        /// The committee named.
        committee_index: CommitteeIndex,
        /// The slot's committee count.
        committees_per_slot: u64,
    },
    /// From electra on, `data.index` is 0.
    #[error("data.index is {index}; from electra on it must be 0")]
    NonZeroDataIndex {
        /// The index given.
        index: u64,
    },
    /// An electra aggregate names no committee or several.
    #[error("committee_bits name {count} committees; an aggregate names exactly one")]
    CommitteeBitsCount {
        /// How many bits are set.
        count: usize,
    },
    /// The aggregation bits are not as long as the committee.
    #[error("aggregation_bits hold {len} bits; committee {committee_index} of slot {slot} has {committee_length} members")]
    BitsLength {
        /// The bits' length.
        len: usize,
        /// The item's slot.
        slot: Slot,
        /// The committee.
        committee_index: CommitteeIndex,
        /// The committee's size.
        committee_length: usize,
    },
    /// An unaggregated attestation has not exactly one bit set.
    #[error("aggregation_bits have {count} bits set; an unaggregated attestation has exactly one")]
    NotUnaggregated {
        /// How many are set.
        count: usize,
    },
    /// An aggregate without a participant.
    #[error("aggregation_bits have no bit set: the aggregate has no participant")]
    EmptyAggregate,
    /// The attester or aggregator is not a member of the committee.
    #[error("validator {validator_index} is not in committee {committee_index} of slot {slot}")]
    NotInCommittee {
        /// The validator named.
        validator_index: ValidatorIndex,
        /// The item's slot.
        slot: Slot,
        /// The committee.
        committee_index: CommitteeIndex,
    },
    /// `beacon_block_root` is no block of this chain.
    #[error("beacon_block_root {root} is not a block of this chain (head block {head})")]
    UnknownBlock {
        /// The root voted for.
        root: Root,
        /// The head block's root.
        head: Root,
    },
    /// The target root is not the chain's checkpoint block of the target epoch.
    #[error("target root {given} of epoch {epoch} is not the chain's block root {expected} at the epoch's start")]
    WrongTargetRoot {
        /// The target epoch.
        epoch: Epoch,
        /// The root given.
        given: Root,
        /// The chain's root.
        expected: Root,
    },
    /// The source is not the justified checkpoint `process_attestation` requires.
    #[error("source (epoch {}, root {}) is not the justified checkpoint (epoch {}, root {}) for target epoch {target_epoch}", given.epoch, given.root, expected.epoch, expected.root)]
    WrongSource {
        /// The target epoch.
        target_epoch: Epoch,
        /// The source given.
        given: Checkpoint,
        /// The state's justified checkpoint.
        expected: Checkpoint,
    },
    /// The registry has no usable key for the validator.
    #[error("validator {index} has no usable public key in the state of {count} validators")]
    UnknownValidator {
        /// The index named.
        index: ValidatorIndex,
        /// Size of the registry.
        count: usize,
    },
    /// A signature is not a valid point.
    #[error("{field} does not decode: {reason}")]
    BadSignatureEncoding {
        /// Which signature.
        field: &'static str,
        /// The decoder's reason.
        reason: String,
    },
    /// An attestation's signature does not verify.
    #[error("signature does not verify against validator {validator_index}'s key over signing root {signing_root}")]
    BadSignature {
        /// The attester.
        validator_index: ValidatorIndex,
        /// What it should have signed.
        signing_root: Root,
    },
    /// The validator already attested to the target epoch with other data.
    #[error("validator {validator_index} already attested to target epoch {epoch} with other data (root {known}, now {given})")]
    PriorAttestationKnown {
        /// The attester.
        validator_index: ValidatorIndex,
        /// The target epoch.
        epoch: Epoch,
        /// The data root kept.
        known: Root,
        /// The data root given.
        given: Root,
    },
    /// The selection proof does not select the aggregator.
    #[error("validator {aggregator_index} is not an aggregator of committee {committee_index} at slot {slot}: its selection proof's hash is not 0 modulo {modulo} (committee of {committee_length})")]
    NotAnAggregator {
        /// The aggregator named.
        aggregator_index: ValidatorIndex,
        /// The item's slot.
        slot: Slot,
        /// The committee.
        committee_index: CommitteeIndex,
        /// The committee's size.
        committee_length: usize,
        /// `max(1, committee_length // TARGET_AGGREGATORS_PER_COMMITTEE)`.
        modulo: u64,
    },
    /// The selection proof does not verify.
    #[error("selection proof does not verify against validator {aggregator_index}'s key over signing root {signing_root} (slot {slot})")]
    BadSelectionProof {
        /// The aggregator.
        aggregator_index: ValidatorIndex,
        /// The slot signed.
        slot: Slot,
        /// What it should have signed.
        signing_root: Root,
    },
    /// The aggregator's signature over its `AggregateAndProof` does not verify.
    #[error("aggregator signature does not verify against validator {aggregator_index}'s key over the AggregateAndProof signing root {signing_root}")]
    BadAggregatorSignature {
        /// The aggregator.
        aggregator_index: ValidatorIndex,
        /// What it should have signed.
        signing_root: Root,
    },
    /// The aggregate's signature does not verify against its participants.
    #[error("aggregate signature does not verify against the keys of its {participants} participants over attestation signing root {signing_root}")]
    BadAggregateSignature {
        /// How many participants.
        participants: usize,
        /// What they should have signed.
        signing_root: Root,
    },
    /// The aggregator already published another aggregate for the epoch.
    #[error("aggregator {aggregator_index} already published another aggregate for target epoch {epoch} (slot {slot}, committee {committee_index})")]
    AggregatorAlreadySeen {
        /// The aggregator.
        aggregator_index: ValidatorIndex,
        /// The target epoch.
        epoch: Epoch,
        /// The slot of the one kept.
        slot: Slot,
        /// The committee of the one kept.
        committee_index: CommitteeIndex,
    },
}

impl PoolError {
    /// A short stable name of the reason, for counting refusals.
    pub fn kind(&self) -> &'static str {
        match self {
            PoolError::Malformed(_) => "malformed",
            PoolError::WrongForm { .. } => "wrong_form",
            PoolError::FutureSlot { .. } => "future_slot",
            PoolError::SlotTooOld { .. } => "slot_too_old",
            PoolError::EpochOutOfRange { .. } => "epoch_out_of_range",
            PoolError::TargetEpochMismatch { .. } => "target_epoch_mismatch",
            PoolError::CommitteeIndexOutOfRange { .. } => "committee_index_out_of_range",
            PoolError::NonZeroDataIndex { .. } => "non_zero_data_index",
            PoolError::CommitteeBitsCount { .. } => "committee_bits_count",
            PoolError::BitsLength { .. } => "bits_length",
            PoolError::NotUnaggregated { .. } => "not_unaggregated",
            PoolError::EmptyAggregate => "empty_aggregate",
            PoolError::NotInCommittee { .. } => "not_in_committee",
            PoolError::UnknownBlock { .. } => "unknown_block",
            PoolError::WrongTargetRoot { .. } => "wrong_target_root",
            PoolError::WrongSource { .. } => "wrong_source",
            PoolError::UnknownValidator { .. } => "unknown_validator",
            PoolError::BadSignatureEncoding { .. } => "bad_signature_encoding",
            PoolError::BadSignature { .. } => "bad_signature",
            PoolError::PriorAttestationKnown { .. } => "prior_attestation_known",
            PoolError::NotAnAggregator { .. } => "not_an_aggregator",
            PoolError::BadSelectionProof { .. } => "bad_selection_proof",
            PoolError::BadAggregatorSignature { .. } => "bad_aggregator_signature",
            PoolError::BadAggregateSignature { .. } => "bad_aggregate_signature",
            PoolError::AggregatorAlreadySeen { .. } => "aggregator_already_seen",
        }
    }
}

/// The head state and the keys the checks of one request read.
pub(crate) struct Head<'a> {
    /// The head state.
    pub loaded: &'a LoadedState,
    /// Where validator keys come from (decompressed once, cached).
    pub backend: &'a StateBackend,
}

impl Head<'_> {
    /// The fork the chain is at.
    pub fn fork(&self) -> ForkName {
        self.loaded.state.fork_name()
    }

    /// Whether the chain takes electra's forms.
    pub fn is_electra(&self) -> bool {
        self.fork() >= ForkName::Electra
    }

    fn slot(&self) -> Slot {
        self.loaded.state.slot()
    }

    fn epoch_of(&self, slot: Slot) -> Epoch {
        compute_epoch_at_slot(slot, self.loaded.state.preset())
    }

    /// The key of validator `index`.
    pub fn pubkey(&self, index: ValidatorIndex) -> Result<PublicKey, PoolError> {
        self.backend
            .validator_pubkey(index)
            .ok_or(PoolError::UnknownValidator {
                index,
                count: self.loaded.state.validators().len(),
            })
    }

    /// The gossip rules on when: not after the head; before deneb within
    /// `ATTESTATION_PROPAGATION_SLOT_RANGE` slots of it; in the head's
    /// previous or current epoch (deneb's rule, and `process_attestation`'s
    /// on the target before it); the target's epoch the slot's.
    fn check_timing(&self, data: &AttestationData) -> Result<(), PoolError> {
        let (slot, head_slot) = (data.slot, self.slot());
        if slot > head_slot {
            return Err(PoolError::FutureSlot { slot, head_slot });
        }
        if self.fork() < ForkName::Deneb
            && slot.saturating_add(ATTESTATION_PROPAGATION_SLOT_RANGE) < head_slot
        {
            return Err(PoolError::SlotTooOld { slot, head_slot });
        }
        let epoch = self.epoch_of(slot);
        let (previous, current) = (
            self.loaded.state.get_previous_epoch(),
            self.loaded.state.get_current_epoch(),
        );
        if epoch < previous {
            return Err(PoolError::EpochOutOfRange {
                slot,
                epoch,
                head_slot,
                previous,
                current,
            });
        }
        if data.target.epoch != epoch {
            return Err(PoolError::TargetEpochMismatch {
                slot,
                epoch,
                target_epoch: data.target.epoch,
            });
        }
        Ok(())
    }

    /// The committee cache of a slot that passed [`Self::check_timing`].
    fn committees(&self, slot: Slot) -> Result<&Arc<CommitteeCache>, PoolError> {
        self.loaded
            .committees
            .for_slot(slot)
            .map_err(|_| PoolError::EpochOutOfRange {
                slot,
                epoch: self.epoch_of(slot),
                head_slot: self.slot(),
                previous: self.loaded.state.get_previous_epoch(),
                current: self.loaded.state.get_current_epoch(),
            })
    }

    /// Committee `index` of `slot`.
    fn committee(&self, slot: Slot, index: CommitteeIndex) -> Result<&[ValidatorIndex], PoolError> {
        let cache = self.committees(slot)?;
        cache
            .get_beacon_committee(slot, index)
            .map_err(|_| PoolError::CommitteeIndexOutOfRange {
                slot,
                committee_index: index,
                committees_per_slot: cache.committees_per_slot(),
            })
    }

    /// The roots a vote names: a block of the chain, the chain's checkpoint
    /// block as target, the justified checkpoint as source.
    fn check_roots(&self, data: &AttestationData) -> Result<(), PoolError> {
        let roots = self.loaded.chain_roots();
        if !roots.is_known_block(&data.beacon_block_root) {
            return Err(PoolError::UnknownBlock {
                root: data.beacon_block_root,
                head: roots.head_block_root(),
            });
        }
        let epoch = data.target.epoch;
        let expected = self.loaded.checkpoint_root(epoch).unwrap_or(Root::ZERO);
        if data.target.root != expected {
            return Err(PoolError::WrongTargetRoot {
                epoch,
                given: data.target.root,
                expected,
            });
        }
        let justified = self.loaded.justified_checkpoint_for(epoch);
        if data.source != justified {
            return Err(PoolError::WrongSource {
                target_epoch: epoch,
                given: data.source,
                expected: justified,
            });
        }
        Ok(())
    }

    fn signing_root(&self, data: &AttestationData) -> Root {
        let state = &self.loaded.state;
        attestation_signing_root(data, &state.fork(), state.genesis_validators_root())
    }

    /// A phase0 .. deneb unaggregated `Attestation`: the rules up to the
    /// one-vote-per-epoch rule, then the rest (roots, key) deferred.
    pub fn check_attestation(
        &self,
        attestation: &AttestationPhase0,
    ) -> Result<Candidate<Vote>, PoolError> {
        if self.is_electra() {
            return Err(self.wrong_form("phase0 Attestation", "SingleAttestation"));
        }
        let data = &attestation.data;
        self.check_timing(data)?;
        let committee = self.committee(data.slot, data.index)?;
        let bits = &attestation.aggregation_bits;
        let position = match bits.count_ones() {
            1 => bits.ones().next().unwrap_or_default(),
            count => return Err(PoolError::NotUnaggregated { count }),
        };
        check_bits_length(bits.len(), data.slot, data.index, committee.len())?;
        let seat = Seat {
            validator_index: committee[position],
            committee_index: data.index,
            position,
            committee_length: committee.len(),
        };
        Ok(self.vote(
            seat,
            data,
            attestation.tree_hash_root(),
            attestation.signature,
        ))
    }

    /// Electra's `SingleAttestation`: the rules up to the
    /// one-vote-per-epoch rule, then the rest (roots, key) deferred.
    pub fn check_single_attestation(
        &self,
        attestation: &SingleAttestation,
    ) -> Result<Candidate<Vote>, PoolError> {
        if !self.is_electra() {
            return Err(self.wrong_form("SingleAttestation", "phase0 Attestation"));
        }
        let data = &attestation.data;
        if data.index != 0 {
            return Err(PoolError::NonZeroDataIndex { index: data.index });
        }
        self.check_timing(data)?;
        let committee_index = attestation.committee_index;
        let committee = self.committee(data.slot, committee_index)?;
        let validator_index = attestation.attester_index;
        let position = committee
            .iter()
            .position(|member| *member == validator_index)
            .ok_or(PoolError::NotInCommittee {
                validator_index,
                slot: data.slot,
                committee_index,
            })?;
        let seat = Seat {
            validator_index,
            committee_index,
            position,
            committee_length: committee.len(),
        };
        Ok(self.vote(
            seat,
            data,
            attestation.tree_hash_root(),
            attestation.signature,
        ))
    }

    /// The candidate of a vote from `seat`, whose object has root
    /// `identity`, with the checks after the one-vote rule (roots, then the
    /// signer's key) as its rest.
    fn vote(
        &self,
        seat: Seat,
        data: &AttestationData,
        identity: Root,
        signature: SignatureBytes,
    ) -> Candidate<Vote> {
        let rest = self.check_roots(data).and_then(|()| {
            let signing_root = self.signing_root(data);
            let validator_index = seat.validator_index;
            Ok(Vote {
                position: seat.position,
                committee_length: seat.committee_length,
                signature: SignatureCheck {
                    pubkey: self.pubkey(validator_index)?,
                    message: signing_root,
                    signature: signature.0,
                    field: "signature",
                    invalid: PoolError::BadSignature {
                        validator_index,
                        signing_root,
                    },
                },
            })
        });
        Candidate {
            publisher: seat.validator_index,
            committee_index: seat.committee_index,
            data: *data,
            data_root: data.tree_hash_root(),
            identity,
            rest,
        }
    }

    /// A `SignedAggregateAndProof`: the rules up to the
    /// one-aggregate-per-epoch rule, then the rest (bits, selection,
    /// membership, roots, keys) deferred.
    pub fn check_aggregate(
        &self,
        signed: &SignedAggregateAndProof,
    ) -> Result<Candidate<AggregateProof>, PoolError> {
        let message = &signed.message;
        let aggregate = &message.aggregate;
        match (aggregate, self.is_electra()) {
            (Attestation::Phase0(_), true) => {
                return Err(self.wrong_form("phase0 aggregate", "electra aggregate"))
            }
            (Attestation::Electra(_), false) => {
                return Err(self.wrong_form("electra aggregate", "phase0 aggregate"))
            }
            _ => {}
        }
        let preset = self.loaded.state.preset();
        aggregate
            .check_lengths(preset)
            .map_err(|error| PoolError::Malformed(error.to_string()))?;
        let data = aggregate.data();
        let committee_index = match aggregate {
            Attestation::Phase0(_) => data.index,
            Attestation::Electra(electra) => {
                if data.index != 0 {
                    return Err(PoolError::NonZeroDataIndex { index: data.index });
                }
                match electra.committee_indices()[..] {
                    [index] => index,
                    ref indices => {
                        return Err(PoolError::CommitteeBitsCount {
                            count: indices.len(),
                        })
                    }
                }
            }
        };
        self.check_timing(data)?;
        let committee = self.committee(data.slot, committee_index)?;
        Ok(Candidate {
            publisher: message.aggregator_index,
            committee_index,
            data: *data,
            data_root: data.tree_hash_root(),
            identity: signed.tree_hash_root(preset),
            rest: self.aggregate_proof(signed, committee_index, committee),
        })
    }

    /// The checks after the one-aggregate rule.
    fn aggregate_proof(
        &self,
        signed: &SignedAggregateAndProof,
        committee_index: CommitteeIndex,
        committee: &[ValidatorIndex],
    ) -> Result<AggregateProof, PoolError> {
        let message = &signed.message;
        let aggregate = &message.aggregate;
        let data = aggregate.data();
        let preset = self.loaded.state.preset();
        let bits = aggregate.aggregation_bits();
        if bits.count_ones() == 0 {
            return Err(PoolError::EmptyAggregate);
        }
        check_bits_length(bits.len(), data.slot, committee_index, committee.len())?;
        let aggregator_index = message.aggregator_index;
        let committee_length = committee.len() as u64;
        if !is_aggregator(committee_length, &message.selection_proof.0, preset) {
            return Err(PoolError::NotAnAggregator {
                aggregator_index,
                slot: data.slot,
                committee_index,
                committee_length: committee.len(),
                modulo: aggregator_modulo(committee_length, preset),
            });
        }
        if !committee.contains(&aggregator_index) {
            return Err(PoolError::NotInCommittee {
                validator_index: aggregator_index,
                slot: data.slot,
                committee_index,
            });
        }
        self.check_roots(data)?;
        let participants: Vec<ValidatorIndex> =
            bits.ones().map(|position| committee[position]).collect();
        let state = &self.loaded.state;
        let (fork, genesis_validators_root) = (state.fork(), state.genesis_validators_root());
        let aggregator_key = self.pubkey(aggregator_index)?;
        let selection_root =
            selection_proof_signing_root(data.slot, &fork, genesis_validators_root, preset);
        let message_root = message.signing_root(&fork, genesis_validators_root, preset);
        let attestation_root = self.signing_root(data);
        let keys = participants
            .iter()
            .map(|index| self.pubkey(*index))
            .collect::<Result<Vec<_>, _>>()?;
        let participants_key = aggregate_public_keys(&keys)
            .map_err(|error| PoolError::Malformed(format!("participants' keys: {error}")))?;
        Ok(AggregateProof {
            signatures: [
                SignatureCheck {
                    pubkey: aggregator_key,
                    message: selection_root,
                    signature: message.selection_proof.0,
                    field: "selection_proof",
                    invalid: PoolError::BadSelectionProof {
                        aggregator_index,
                        slot: data.slot,
                        signing_root: selection_root,
                    },
                },
                SignatureCheck {
                    pubkey: aggregator_key,
                    message: message_root,
                    signature: signed.signature.0,
                    field: "signature",
                    invalid: PoolError::BadAggregatorSignature {
                        aggregator_index,
                        signing_root: message_root,
                    },
                },
                SignatureCheck {
                    pubkey: participants_key,
                    message: attestation_root,
                    signature: aggregate.signature().0,
                    field: "aggregate.signature",
                    invalid: PoolError::BadAggregateSignature {
                        participants: participants.len(),
                        signing_root: attestation_root,
                    },
                },
            ],
            participants,
        })
    }

    fn wrong_form(&self, given: &'static str, expected: &'static str) -> PoolError {
        PoolError::WrongForm {
            given,
            expected,
            fork: self.fork(),
        }
    }
}

fn check_bits_length(
    len: usize,
    slot: Slot,
    committee_index: CommitteeIndex,
    committee_length: usize,
) -> Result<(), PoolError> {
    if len != committee_length {
        return Err(PoolError::BitsLength {
            len,
            slot,
            committee_index,
            committee_length,
        });
    }
    Ok(())
}

/// One signature an item carries, with what to say when it does not verify.
#[derive(Debug, Clone)]
pub(crate) struct SignatureCheck {
    /// The signer's key (an aggregate's: its participants' keys aggregated).
    pub pubkey: PublicKey,
    /// The signing root.
    pub message: Root,
    /// The compressed signature.
    pub signature: [u8; 96],
    /// The field it came from, for a signature that does not decode.
    pub field: &'static str,
    /// The refusal when it does not verify.
    pub invalid: PoolError,
}

/// An attestation or aggregate that passed the rules before the spec's
/// one-per-epoch rule (the publisher is known), with the result of the
/// rules after it (which the pool applies only when that rule passes).
#[derive(Debug, Clone)]
pub(crate) struct Candidate<T> {
    /// The attester or aggregator.
    pub publisher: ValidatorIndex,
    /// The committee.
    pub committee_index: CommitteeIndex,
    /// What it votes for.
    pub data: AttestationData,
    /// `hash_tree_root(data)`.
    pub data_root: Root,
    /// `hash_tree_root` of the object as sent: the same object again has it.
    pub identity: Root,
    /// The later rules: what the signatures need, or the first refusal.
    pub rest: Result<T, PoolError>,
}

impl<T> Candidate<T> {
    /// The one-per-epoch rule's key: publisher and target epoch.
    pub fn key(&self) -> (ValidatorIndex, Epoch) {
        (self.publisher, self.data.target.epoch)
    }
}

/// Where an attester sits.
#[derive(Debug, Clone, Copy)]
struct Seat {
    validator_index: ValidatorIndex,
    committee_index: CommitteeIndex,
    position: usize,
    committee_length: usize,
}

/// What an unaggregated attestation adds once its signature verifies.
#[derive(Debug, Clone)]
pub(crate) struct Vote {
    /// The attester's position in its committee.
    pub position: usize,
    /// The committee's size.
    pub committee_length: usize,
    /// Its signature.
    pub signature: SignatureCheck,
}

/// What an aggregate adds once its signatures verify.
#[derive(Debug, Clone)]
pub(crate) struct AggregateProof {
    /// The participants, in committee order.
    pub participants: Vec<ValidatorIndex>,
    /// Selection proof, aggregator signature, aggregate signature.
    pub signatures: [SignatureCheck; 3],
}

/// Verifies the signatures of many items in one batch (one multi-pairing
/// grouped by signing root); one by one only when the batch fails, to name
/// the culprits. Per item: its decoded signatures, or the first refusal.
pub(crate) fn verify_signatures(
    items: &[&[SignatureCheck]],
) -> Vec<Result<Vec<Signature>, PoolError>> {
    let encoded: Vec<[u8; 96]> = items
        .iter()
        .flat_map(|checks| checks.iter().map(|check| check.signature))
        .collect();
    let mut decoded = decode_signatures(&encoded).into_iter();
    let mut results: Vec<Result<Vec<Signature>, PoolError>> = items
        .iter()
        .map(|checks| {
            let mut signatures = Vec::with_capacity(checks.len());
            let mut first_error = None;
            for check in checks.iter() {
                match decoded.next() {
                    Some(Ok(signature)) => signatures.push(signature),
                    Some(Err(error)) => {
                        first_error.get_or_insert(PoolError::BadSignatureEncoding {
                            field: check.field,
                            reason: error.to_string(),
                        });
                    }
                    None => {}
                }
            }
            match first_error {
                Some(error) => Err(error),
                None => Ok(signatures),
            }
        })
        .collect();
    // The sets of every item whose signatures all decoded.
    let mut owners = Vec::new();
    let mut sets = Vec::new();
    for (item, (checks, result)) in items.iter().zip(&results).enumerate() {
        if let Ok(signatures) = result {
            for (check, signature) in checks.iter().zip(signatures) {
                owners.push((item, check));
                sets.push(SignatureSet {
                    pubkey: &check.pubkey,
                    message: check.message.0,
                    signature,
                });
            }
        }
    }
    if verify_signature_sets(&sets) {
        return results;
    }
    let invalid: Vec<(usize, PoolError)> = find_invalid(&sets)
        .into_iter()
        .map(|position| {
            let (item, check) = owners[position];
            (item, check.invalid.clone())
        })
        .collect();
    for (item, error) in invalid {
        if results[item].is_ok() {
            results[item] = Err(error);
        }
    }
    results
}
