//! Batch verification of many (public key, signing root, signature) triples,
//! grouped by message.
//!
//! Every item i gets a random non-zero 64-bit scalar r_i (so that invalid
//! signatures cannot cancel each other out). Items that share a message m are
//! folded into one pairing term: the batch holds iff
//! `e(g1, Σ_i r_i·sig_i) = Π_m e(Σ_{i∈m} r_i·pk_i, H(m))`. A request of one
//! slot, where every selection proof signs the same root, thus costs about
//! one verification plus two multi-scalar multiplications with 64-bit scalars.

use std::collections::HashMap;

use blst::min_pk;
use blst::{MultiPoint, Pairing, BLST_ERROR};
use rand::Rng;

use super::bls::{CryptoError, PublicKey, Signature, DST};

/// One signature to check: `signature` over the 32-byte signing root `message` by `pubkey`.
#[derive(Debug, Clone, Copy)]
pub struct SignatureSet<'a> {
    /// The signer's public key.
    pub pubkey: &'a PublicKey,
    /// The signing root that was signed.
    pub message: [u8; 32],
    /// The signature to check.
    pub signature: &'a Signature,
}

/// Width of the random blinding scalars: 2^-64 chance that a bad batch passes.
const RANDOM_BITS: usize = 64;

/// Whether every set verifies (with overwhelming probability). An empty batch
/// has nothing wrong in it and gives `true`. On `false`, [`find_invalid`]
/// names the bad items. Distinct messages are hashed and paired on all cores.
pub fn verify_signature_sets(sets: &[SignatureSet]) -> bool {
    if sets.is_empty() {
        return true;
    }
    let mut rng = rand::thread_rng();
    let randoms: Vec<[u8; 8]> = sets
        .iter()
        .map(|_| rng.gen_range(1..=u64::MAX).to_le_bytes())
        .collect();

    let signatures: Vec<min_pk::Signature> =
        sets.iter().map(|set| *set.signature.as_blst()).collect();
    let aggregate_signature = signatures
        .mult(&randoms.concat(), RANDOM_BITS)
        .to_signature();
    let mut signature_term = blst::blst_fp12::default();
    Pairing::aggregated(
        &mut signature_term,
        <&blst::blst_p2_affine>::from(&aggregate_signature),
    );

    let groups = group_by_message(sets, &randoms);
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(groups.len());
    let pairings: Vec<Option<Pairing>> = if workers <= 1 {
        vec![pair_groups(&groups)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = groups
                .chunks(groups.len().div_ceil(workers))
                .map(|chunk| scope.spawn(|| pair_groups(chunk)))
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().ok().flatten())
                .collect()
        })
    };
    let mut pairings = pairings.into_iter();
    let Some(Some(mut accumulated)) = pairings.next() else {
        return false;
    };
    for pairing in pairings {
        match pairing {
            Some(pairing) if accumulated.merge(&pairing) == BLST_ERROR::BLST_SUCCESS => {}
            _ => return false,
        }
    }
    accumulated.finalverify(Some(&signature_term))
}

/// The items of one message: their public keys and blinding scalars, in batch order.
struct MessageGroup {
    message: [u8; 32],
    pubkeys: Vec<min_pk::PublicKey>,
    scalars: Vec<u8>,
}

fn group_by_message(sets: &[SignatureSet], randoms: &[[u8; 8]]) -> Vec<MessageGroup> {
    let mut positions: HashMap<[u8; 32], usize> = HashMap::new();
    let mut groups: Vec<MessageGroup> = Vec::new();
    for (set, random) in sets.iter().zip(randoms) {
        let position = *positions.entry(set.message).or_insert_with(|| {
            groups.push(MessageGroup {
                message: set.message,
                pubkeys: vec![],
                scalars: vec![],
            });
            groups.len() - 1
        });
        if let Some(group) = groups.get_mut(position) {
            group.pubkeys.push(*set.pubkey.as_blst());
            group.scalars.extend_from_slice(random);
        }
    }
    groups
}

/// Accumulates `e(Σ r_i·pk_i, H(m))` of every group; `None` if blst rejects a term.
fn pair_groups(groups: &[MessageGroup]) -> Option<Pairing<'static>> {
    let mut pairing = Pairing::new(true, DST);
    for group in groups {
        let result = match group.pubkeys.as_slice() {
            // A lone key is weighted inside the pairing, skipping the MSM set-up.
            [pubkey] => pairing.mul_n_aggregate(
                <&blst::blst_p1_affine>::from(pubkey),
                false,
                &(),
                false,
                &group.scalars,
                RANDOM_BITS,
                &group.message,
                &[],
            ),
            pubkeys => {
                let weighted = pubkeys.mult(&group.scalars, RANDOM_BITS).to_public_key();
                let affine: &blst::blst_p1_affine = (&weighted).into();
                pairing.aggregate(affine, false, &(), false, &group.message, &[])
            }
        };
        if result != BLST_ERROR::BLST_SUCCESS {
            return None;
        }
    }
    pairing.commit();
    Some(pairing)
}

/// Fewest signatures worth a thread of their own (a decode costs about 0.1 ms).
const MIN_DECODES_PER_THREAD: usize = 256;

/// Decodes many compressed signatures into subgroup points (the costliest
/// per-item step of checking a batch), spread over the available cores; one
/// result per input, in order.
pub fn decode_signatures(encoded: &[[u8; 96]]) -> Vec<Result<Signature, CryptoError>> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let per_thread = encoded.len().div_ceil(threads).max(MIN_DECODES_PER_THREAD);
    std::thread::scope(|scope| {
        let parts: Vec<_> = encoded
            .chunks(per_thread)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|bytes| Signature::from_bytes(bytes))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|part| {
                part.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// The positions of the sets whose signature does not verify, checked one by
/// one: the slow path after [`verify_signature_sets`] returned `false`.
pub fn find_invalid(sets: &[SignatureSet]) -> Vec<usize> {
    sets.iter()
        .enumerate()
        .filter(|(_, set)| !set.signature.verify(set.pubkey, &set.message))
        .map(|(position, _)| position)
        .collect()
}
