//! Aggregator selection exactly as the consensus specs define it:
//! `is_aggregator` (phase0 validator guide) and `is_sync_committee_aggregator`
//! (altair validator guide).
//!
//! Both hash the *whole* selection proof. In a distributed validator each
//! operator holds only a partial signature, which is why the decision must be
//! taken on the combined proof.

use super::config::Preset;

/// `bytes_to_uint64(hash(selection_proof)[0:8])`: the little-endian `u64` that
/// both selection rules reduce modulo their target.
pub fn selection_proof_hash_prefix(selection_proof: &[u8; 96]) -> u64 {
    let digest = ethereum_hashing::hash_fixed(selection_proof);
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(prefix)
}

/// `max(1, len(committee) // TARGET_AGGREGATORS_PER_COMMITTEE)`.
pub fn aggregator_modulo(committee_length: u64, preset: &Preset) -> u64 {
    committee_length
        .checked_div(preset.TARGET_AGGREGATORS_PER_COMMITTEE)
        .unwrap_or(0)
        .max(1)
}

/// `is_aggregator(state, slot, index, slot_signature)`, given the length of the
/// committee at `(slot, index)`.
pub fn is_aggregator(committee_length: u64, selection_proof: &[u8; 96], preset: &Preset) -> bool {
    selection_proof_hash_prefix(selection_proof) % aggregator_modulo(committee_length, preset) == 0
}

/// `max(1, SYNC_COMMITTEE_SIZE // SYNC_COMMITTEE_SUBNET_COUNT // TARGET_AGGREGATORS_PER_SYNC_SUBCOMMITTEE)`.
pub fn sync_aggregator_modulo(preset: &Preset) -> u64 {
    preset
        .SYNC_COMMITTEE_SIZE
        .checked_div(preset.SYNC_COMMITTEE_SUBNET_COUNT)
        .and_then(|size| size.checked_div(preset.TARGET_AGGREGATORS_PER_SYNC_SUBCOMMITTEE))
        .unwrap_or(0)
        .max(1)
}

/// `is_sync_committee_aggregator(signature)`.
pub fn is_sync_committee_aggregator(selection_proof: &[u8; 96], preset: &Preset) -> bool {
    selection_proof_hash_prefix(selection_proof) % sync_aggregator_modulo(preset) == 0
}
