//! The answer of `POST /eth/v1/validator/is_aggregator`, without HTTP: every
//! item checked against a [`SelectionBackend`], every slot signature verified
//! in one batch, then the spec's modulo rule.

use std::collections::HashMap;

use super::backend::{BackendError, SelectionBackend, SlotContext};
use super::error::{ApiError, ItemError};
use super::types::IsAggregatorRequestItem;
use crate::crypto::batch::{self, find_invalid, verify_signature_sets, SignatureSet};
use crate::crypto::{PublicKey, Signature};
use crate::spec::selection::is_aggregator;
use crate::spec::signing::selection_proof_signing_root;
use crate::spec::{Root, Slot};

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
    let mut verifiable = Vec::with_capacity(checked.len());
    for ((index, item), signature) in checked.iter().zip(decode_signatures(&checked)) {
        match signature {
            Ok(signature) => verifiable.push((*index, item, signature)),
            Err(error) => failures.push((*index, error)),
        }
    }
    failures.extend(invalid_signatures(&verifiable));
    if !failures.is_empty() {
        failures.sort_by_key(|(index, _)| *index);
        return Err(ApiError::InvalidItems {
            total: items.len(),
            failures,
        });
    }
    let preset = backend.preset();
    Ok(checked
        .iter()
        .map(|(_, item)| is_aggregator(item.committee_len, &item.slot_signature, preset))
        .collect())
}

/// An item that passed every check but those of its signature.
struct CheckedItem {
    validator_index: u64,
    slot: Slot,
    committee_len: u64,
    pubkey: PublicKey,
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

    /// The slot's context; `Ok(Err(_))` names the item, `Err(_)` fails the whole request.
    fn get(&mut self, slot: Slot) -> Result<Result<&(SlotContext, Root), ItemError>, ApiError> {
        if !self.by_slot.contains_key(&slot) {
            let fetched = match self.backend.selection_context(slot) {
                Ok(context) => {
                    let root = selection_proof_signing_root(
                        slot,
                        &context.fork,
                        context.genesis_validators_root,
                        self.backend.preset(),
                    );
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
    Ok(CheckedItem {
        validator_index: item.validator_index,
        slot,
        committee_len: committee.len() as u64,
        pubkey,
        slot_signature: item.slot_signature.0,
        signing_root,
    })
}

/// Decodes every slot signature into a subgroup point, on all cores.
fn decode_signatures(checked: &[(usize, CheckedItem)]) -> Vec<Result<Signature, ItemError>> {
    let encoded: Vec<[u8; 96]> = checked
        .iter()
        .map(|(_, item)| item.slot_signature)
        .collect();
    batch::decode_signatures(&encoded)
        .into_iter()
        .map(|decoded| decoded.map_err(|error| ItemError::BadSignatureEncoding(error.to_string())))
        .collect()
}

/// Verifies every signature in one batch; only if the batch fails, one by one
/// to name the bad items.
fn invalid_signatures(items: &[(usize, &CheckedItem, Signature)]) -> Vec<(usize, ItemError)> {
    let sets: Vec<SignatureSet> = items
        .iter()
        .map(|(_, item, signature)| SignatureSet {
            pubkey: &item.pubkey,
            message: item.signing_root.0,
            signature,
        })
        .collect();
    if verify_signature_sets(&sets) {
        return Vec::new();
    }
    find_invalid(&sets)
        .into_iter()
        .filter_map(|position| items.get(position))
        .map(|(index, item, _)| {
            let error = ItemError::InvalidSignature {
                validator_index: item.validator_index,
                slot: item.slot,
            };
            (*index, error)
        })
        .collect()
}
