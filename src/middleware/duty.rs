//! What the middleware combines: the duty a partial signature belongs to
//! ([`DutyKey`]: a selection proof, an attestation or an `AggregateAndProof`
//! of one validator at one slot), where a partial came from ([`Source`]) and
//! the partial itself ([`Partial`]).
//!
//! A duty names its validator by the group public key, not by the validator
//! index: the cluster lock and the peer protocol know validators by key, and
//! the index is the beacon chain's business (the VC-facing routes resolve it).

use std::fmt;

use crate::crypto::{PublicKey, Signature};
use crate::spec::{Root, Slot};

/// What a duty's signature signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DutyKind {
    /// `get_slot_signature`: an attestation aggregator selection proof.
    AttestationSelection,
    /// `get_sync_committee_selection_proof` for one subcommittee; a validator
    /// sitting in several subcommittees has one duty per subcommittee.
    SyncSelection {
        /// The sync subcommittee the proof selects for.
        subcommittee_index: u64,
    },
    /// An attestation: the agreed `AttestationData` of the validator's
    /// committee (`get_attestation_signature`).
    Attestation,
    /// The validator's `AggregateAndProof`: the agreed aggregate and its
    /// combined selection proof (`get_aggregate_and_proof_signature`).
    AggregateAndProof,
}

impl DutyKind {
    /// Whether this is a selection proof, which a VC asks for and decides on
    /// (the other kinds are published to the beacon node once combined).
    pub fn is_selection(&self) -> bool {
        matches!(
            self,
            DutyKind::AttestationSelection | DutyKind::SyncSelection { .. }
        )
    }
}

/// One selection proof to combine: its kind, the validator (group key) and the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DutyKey {
    /// Attestation or sync selection (with its subcommittee).
    pub kind: DutyKind,
    /// The validator's group public key, as listed in the cluster lock.
    pub validator: PublicKey,
    /// The slot the proof is for.
    pub slot: Slot,
}

impl DutyKey {
    /// The attestation selection duty of `validator` at `slot`.
    pub fn attestation(validator: PublicKey, slot: Slot) -> Self {
        Self {
            kind: DutyKind::AttestationSelection,
            validator,
            slot,
        }
    }

    /// The attestation duty of `validator` at `slot`.
    pub fn attestation_signature(validator: PublicKey, slot: Slot) -> Self {
        Self {
            kind: DutyKind::Attestation,
            validator,
            slot,
        }
    }

    /// The aggregation duty of `validator` at `slot`.
    pub fn aggregate_and_proof(validator: PublicKey, slot: Slot) -> Self {
        Self {
            kind: DutyKind::AggregateAndProof,
            validator,
            slot,
        }
    }

    /// The sync selection duty of `validator` at `slot` for `subcommittee_index`.
    pub fn sync(validator: PublicKey, slot: Slot, subcommittee_index: u64) -> Self {
        Self {
            kind: DutyKind::SyncSelection { subcommittee_index },
            validator,
            slot,
        }
    }
}

impl fmt::Display for DutyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            DutyKind::AttestationSelection => write!(f, "attestation selection")?,
            DutyKind::SyncSelection { subcommittee_index } => {
                write!(f, "sync selection (subcommittee {subcommittee_index})")?
            }
            DutyKind::Attestation => write!(f, "attestation")?,
            DutyKind::AggregateAndProof => write!(f, "aggregate and proof")?,
        }
        write!(f, " of validator {} at slot {}", self.validator, self.slot)
    }
}

/// Who handed a partial to the store: this node's own VC or a peer operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// This node's validator client.
    Local,
    /// The peer operator with this index (from the cluster lock). A peer may
    /// relay another share's partial (catch-up after a restart): a partial is
    /// checked against the public share of its own share index, whoever sent it.
    Peer(u64),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Local => write!(f, "the local validator client"),
            Source::Peer(operator) => write!(f, "operator {operator}"),
        }
    }
}

/// A partial signature: the signature of `signing_root` by the key share `share_index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partial {
    /// The share index (1..=n) whose key share signed.
    pub share_index: u64,
    /// The signing root that was signed.
    pub signing_root: Root,
    /// The partial signature.
    pub signature: Signature,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;

    #[test]
    fn a_sync_duty_names_its_subcommittee_and_differs_per_subcommittee() {
        let validator = SecretKey::random().public_key();
        let first = DutyKey::sync(validator, 9, 0);
        let second = DutyKey::sync(validator, 9, 1);
        assert_ne!(first, second);
        assert_ne!(first, DutyKey::attestation(validator, 9));
        assert_eq!(
            second.to_string(),
            format!("sync selection (subcommittee 1) of validator {validator} at slot 9")
        );
        assert_eq!(Source::Peer(3).to_string(), "operator 3");
    }
}
