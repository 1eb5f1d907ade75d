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

use super::bls::{PublicKey, Signature, DST};

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
/// names the bad items.
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

    let mut groups: HashMap<[u8; 32], (Vec<min_pk::PublicKey>, Vec<u8>)> = HashMap::new();
    for (set, random) in sets.iter().zip(&randoms) {
        let (pubkeys, scalars) = groups.entry(set.message).or_default();
        pubkeys.push(*set.pubkey.as_blst());
        scalars.extend_from_slice(random);
    }

    let mut pairing = Pairing::new(true, DST);
    let signature_affine: &blst::blst_p2_affine = (&aggregate_signature).into();
    // The aggregate signature enters the pairing once, with the first group.
    let mut signature_term: Option<&blst::blst_p2_affine> = Some(signature_affine);
    for (message, (pubkeys, scalars)) in &groups {
        let weighted_key = pubkeys.mult(scalars, RANDOM_BITS).to_public_key();
        let key_affine: &blst::blst_p1_affine = (&weighted_key).into();
        let result = match signature_term.take() {
            Some(signature) => pairing.aggregate(key_affine, false, signature, false, message, &[]),
            None => pairing.aggregate(key_affine, false, &(), false, message, &[]),
        };
        if result != BLST_ERROR::BLST_SUCCESS {
            return false;
        }
    }
    pairing.commit();
    pairing.finalverify(None)
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
