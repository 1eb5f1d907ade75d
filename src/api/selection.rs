//! The answer of `POST /eth/v1/validator/is_aggregator`, without HTTP: every
//! item checked against a [`SelectionBackend`], every slot signature verified
//! in one batch, then the spec's modulo rule.
//!
//! Two consensus functions live here privately until `spec::signing` and
//! `spec::selection` provide them: the selection-proof signing root and
//! `is_aggregator`.

use std::collections::HashMap;

use tree_hash::TreeHash;

use super::backend::{BackendError, SelectionBackend, SlotContext};
use super::error::{ApiError, ItemError};
use super::types::IsAggregatorRequestItem;
use crate::crypto::batch::{find_invalid, verify_signature_sets, SignatureSet};
use crate::crypto::{PublicKey, Signature};
use crate::spec::config::DOMAIN_SELECTION_PROOF;
use crate::spec::{Domain, Fork, ForkData, Root, SigningData, Slot};

/// Message of the 503 answer while the backend has no state.
pub const NOT_READY_MESSAGE: &str = "no beacon state loaded yet; try again later";

/// Answers an `is_aggregator` request: one boolean per item, in request
/// order, or every bad item named by its index.
pub fn answer_is_aggregator(
    backend: &dyn SelectionBackend,
    items: &[IsAggregatorRequestItem],
) -> Result<Vec<bool>, ApiError> {
    let parsed: Vec<Result<&IsAggregatorRequestItem, ItemError>> = items.iter().map(Ok).collect();
    answer_parsed(backend, &parsed)
}

/// Like [`answer_is_aggregator`], for items of which some already failed to
/// parse; those are reported along with the items that fail the checks.
pub(super) fn answer_parsed(
    backend: &dyn SelectionBackend,
    items: &[Result<&IsAggregatorRequestItem, ItemError>],
) -> Result<Vec<bool>, ApiError> {
    let mut failures = Vec::new();
    let mut contexts = SlotContexts::new(backend);
    let mut checked = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let outcome = match item {
            Ok(item) => check_item(backend, &mut contexts, item)?,
            Err(error) => Err(error.clone()),
        };
        match outcome {
            Ok(item) => checked.push((index, item)),
            Err(error) => failures.push((index, error)),
        }
    }
    failures.extend(invalid_signatures(&checked));
    if !failures.is_empty() {
        failures.sort_by_key(|(index, _)| *index);
        return Err(ApiError::InvalidItems {
            total: items.len(),
            failures,
        });
    }
    let target = backend.preset().TARGET_AGGREGATORS_PER_COMMITTEE;
    Ok(checked
        .iter()
        .map(|(_, item)| is_aggregator(item.committee_len, &item.slot_signature, target))
        .collect())
}

/// An item that passed every check but the signature verification.
struct CheckedItem {
    validator_index: u64,
    slot: Slot,
    committee_len: usize,
    pubkey: PublicKey,
    signature: Signature,
    slot_signature: [u8; 96],
    signing_root: Root,
}

/// The slot context and signing root of each slot of a request, fetched once.
struct SlotContexts<'a> {
    backend: &'a dyn SelectionBackend,
    by_slot: HashMap<Slot, Result<(SlotContext, Root), ItemError>>,
}

impl<'a> SlotContexts<'a> {
    fn new(backend: &'a dyn SelectionBackend) -> Self {
        Self {
            backend,
            by_slot: HashMap::new(),
        }
    }

    /// The slot's context; `Err(Ok(_))` names the item, `Err(Err(_))` fails the request.
    fn get(&mut self, slot: Slot) -> Result<Result<&(SlotContext, Root), ItemError>, ApiError> {
        if !self.by_slot.contains_key(&slot) {
            let fetched = match self.backend.selection_context(slot) {
                Ok(context) => {
                    let slots_per_epoch = self.backend.preset().SLOTS_PER_EPOCH;
                    let root = selection_proof_signing_root(
                        slot,
                        &context.fork,
                        context.genesis_validators_root,
                        slots_per_epoch,
                    )
                    .ok_or_else(|| {
                        ApiError::Internal("the backend's preset has SLOTS_PER_EPOCH = 0".into())
                    })?;
                    Ok((context, root))
                }
                Err(error @ BackendError::SlotOutOfRange { .. }) => {
                    Err(ItemError::SlotOutOfRange(error.to_string()))
                }
                Err(BackendError::NotReady(message)) => return Err(ApiError::NotReady(message)),
                Err(error @ BackendError::Internal(_)) => {
                    return Err(ApiError::Internal(error.to_string()))
                }
            };
            self.by_slot.insert(slot, fetched);
        }
        match self.by_slot.get(&slot) {
            Some(fetched) => Ok(fetched.as_ref().map_err(Clone::clone)),
            None => Err(ApiError::Internal(format!(
                "slot context of slot {slot} vanished"
            ))),
        }
    }
}

/// Every check of one item except signature verification, in the order a
/// reader of the request would make them.
fn check_item(
    backend: &dyn SelectionBackend,
    contexts: &mut SlotContexts,
    item: &IsAggregatorRequestItem,
) -> Result<Result<CheckedItem, ItemError>, ApiError> {
    let (context, signing_root) = match contexts.get(item.slot)? {
        Ok(found) => found,
        Err(error) => return Ok(Err(error)),
    };
    Ok(check_against_context(backend, context, *signing_root, item))
}

fn check_against_context(
    backend: &dyn SelectionBackend,
    context: &SlotContext,
    signing_root: Root,
    item: &IsAggregatorRequestItem,
) -> Result<CheckedItem, ItemError> {
    let slot = item.slot;
    if item.committees_at_slot != context.committees_per_slot {
        return Err(ItemError::WrongCommitteesAtSlot {
            slot,
            given: item.committees_at_slot,
            expected: context.committees_per_slot,
        });
    }
    if item.committee_index >= context.committees_per_slot {
        return Err(ItemError::CommitteeIndexOutOfRange {
            slot,
            committee_index: item.committee_index,
            committees_per_slot: context.committees_per_slot,
        });
    }
    let pubkey = backend
        .validator_pubkey(item.validator_index)
        .ok_or(ItemError::UnknownValidator(item.validator_index))?;
    let not_in_committee = ItemError::NotInCommittee {
        validator_index: item.validator_index,
        slot,
        committee_index: item.committee_index,
    };
    let committee = context
        .committees
        .get_beacon_committee(slot, item.committee_index)
        .ok_or_else(|| not_in_committee.clone())?;
    if !committee.contains(&item.validator_index) {
        return Err(not_in_committee);
    }
    let signature = Signature::from_bytes(&item.slot_signature.0)
        .map_err(|error| ItemError::BadSignatureEncoding(error.to_string()))?;
    Ok(CheckedItem {
        validator_index: item.validator_index,
        slot,
        committee_len: committee.len(),
        pubkey,
        signature,
        slot_signature: item.slot_signature.0,
        signing_root,
    })
}

/// Verifies every signature in one batch; only if the batch fails, one by one
/// to name the bad items.
fn invalid_signatures(checked: &[(usize, CheckedItem)]) -> Vec<(usize, ItemError)> {
    let sets: Vec<SignatureSet> = checked
        .iter()
        .map(|(_, item)| SignatureSet {
            pubkey: &item.pubkey,
            message: item.signing_root.0,
            signature: &item.signature,
        })
        .collect();
    if verify_signature_sets(&sets) {
        return Vec::new();
    }
    find_invalid(&sets)
        .into_iter()
        .filter_map(|position| checked.get(position))
        .map(|(index, item)| {
            let error = ItemError::InvalidSignature {
                validator_index: item.validator_index,
                slot: item.slot,
            };
            (*index, error)
        })
        .collect()
}

/// `compute_signing_root(slot, get_domain(state, DOMAIN_SELECTION_PROOF,
/// compute_epoch_at_slot(slot)))`: what `get_slot_signature` signs. `None`
/// if `slots_per_epoch` is 0.
///
/// Private until `spec::signing` provides it.
fn selection_proof_signing_root(
    slot: Slot,
    fork: &Fork,
    genesis_validators_root: Root,
    slots_per_epoch: u64,
) -> Option<Root> {
    let epoch = slot.checked_div(slots_per_epoch)?;
    let current_version = if epoch < fork.epoch {
        fork.previous_version
    } else {
        fork.current_version
    };
    let fork_data_root = ForkData {
        current_version,
        genesis_validators_root,
    }
    .tree_hash_root();
    let mut domain = [0u8; 32];
    domain[..4].copy_from_slice(&DOMAIN_SELECTION_PROOF);
    domain[4..].copy_from_slice(&fork_data_root.0[..28]);
    Some(
        SigningData {
            object_root: slot.tree_hash_root(),
            domain: Domain::from(domain),
        }
        .tree_hash_root(),
    )
}

/// The spec's `is_aggregator`: `bytes_to_uint64(hash(slot_signature)[0:8]) %
/// max(1, len(committee) // TARGET_AGGREGATORS_PER_COMMITTEE) == 0`.
///
/// Private until `spec::selection` provides it.
fn is_aggregator(committee_len: usize, slot_signature: &[u8; 96], target_aggregators: u64) -> bool {
    let modulo = (committee_len as u64)
        .checked_div(target_aggregators)
        .unwrap_or(0)
        .max(1);
    let hash = ethereum_hashing::hash_fixed(slot_signature);
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(prefix) % modulo == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Oracle folders of both presets.
    const FOLDERS: [&str; 2] = ["fulu-mainnet-1024", "deneb-minimal-2048"];

    fn vectors(folder: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/oracle/{folder}/vectors.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn hex<const N: usize>(value: &Value) -> [u8; N] {
        let mut bytes = [0u8; N];
        hex::decode_to_slice(&value.as_str().unwrap()[2..], &mut bytes).unwrap();
        bytes
    }

    fn u64_of(value: &Value) -> u64 {
        value.as_u64().unwrap()
    }

    #[test]
    fn signing_roots_match_every_attestation_case() {
        for folder in FOLDERS {
            let v = vectors(folder);
            let state = &v["state"];
            let fork = Fork {
                previous_version: hex(&state["fork"]["previous_version"]),
                current_version: hex(&state["fork"]["current_version"]),
                epoch: u64_of(&state["fork"]["epoch"]),
            };
            let gvr = Root::from(hex::<32>(&state["genesis_validators_root"]));
            let slots_per_epoch = u64_of(&v["constants"]["SLOTS_PER_EPOCH"]);
            let cases = v["attestation_cases"].as_array().unwrap();
            assert!(cases.len() > 100, "{folder}");
            for case in cases {
                let root = selection_proof_signing_root(
                    u64_of(&case["slot"]),
                    &fork,
                    gvr,
                    slots_per_epoch,
                );
                assert_eq!(
                    root,
                    Some(Root::from(hex::<32>(&case["signing_root"]))),
                    "{folder} {case}"
                );
            }
        }
    }

    #[test]
    fn is_aggregator_matches_pure_and_attestation_cases() {
        for folder in FOLDERS {
            let v = vectors(folder);
            let target = u64_of(&v["constants"]["TARGET_AGGREGATORS_PER_COMMITTEE"]);
            let pure = v["is_aggregator_pure_cases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c, "signature"));
            let attestation = v["attestation_cases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c, "selection_proof"));
            for (case, signature_key) in pure.chain(attestation) {
                let committee_len = usize::try_from(u64_of(&case["committee_length"])).unwrap();
                let expected = case["is_aggregator"].as_bool().unwrap();
                assert_eq!(
                    is_aggregator(committee_len, &hex(&case[signature_key]), target),
                    expected,
                    "{case}"
                );
            }
        }
    }

    #[test]
    fn zero_slots_per_epoch_gives_no_root_instead_of_a_panic() {
        assert_eq!(
            selection_proof_signing_root(5, &Fork::default(), Root::ZERO, 0),
            None
        );
    }
}
