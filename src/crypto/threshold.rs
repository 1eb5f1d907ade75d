//! t-of-n threshold BLS as a distributed validator uses it: Shamir sharing of
//! a validator key over the scalar field, partial signatures by the share
//! holders, and Lagrange interpolation at x = 0 of t partials (in G2) or of t
//! public key shares (in G1). Share indices are `u64` in `1..=n`.
//!
//! Interpolation is the hot path of aggregator selection (one combination per
//! validator per slot). For share indices 1..n the Lagrange coefficients are
//! ratios of small integers, so the points are weighted by the small integer
//! numerators over their common denominator in one blst multi-scalar
//! multiplication, and at most one full-size multiplication (by the inverse of
//! the denominator) remains. Index sets whose integers overflow fall back to
//! field coefficients with one batched inversion.

use std::collections::{HashMap, HashSet};

use blst::min_pk;
use blst::MultiPoint;

use super::bls::{CryptoError, PublicKey, Scalar, SecretKey, Signature};

/// The largest share count (and share index) accepted; bounds the work an
/// untrusted index list can cause.
pub const MAX_SHARES: u64 = 1024;

/// Why a threshold operation failed, naming the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    /// The threshold is outside `2..=total` (split) or `1..=MAX_SHARES` (combine,
    /// where `total` is the number of shares given).
    #[error("threshold {threshold} is not valid for {total} shares")]
    InvalidThreshold {
        /// The requested threshold t.
        threshold: u64,
        /// The share count n it was checked against.
        total: u64,
    },
    /// More shares than [`MAX_SHARES`] were requested.
    #[error("share count {total} exceeds the maximum of {MAX_SHARES}")]
    TooManyShares {
        /// The requested share count.
        total: u64,
    },
    /// Shares are numbered from 1; index 0 would be the secret itself.
    #[error("share index 0 is not allowed: share indices start at 1")]
    ZeroIndex,
    /// A share index above [`MAX_SHARES`].
    #[error("share index {index} exceeds the maximum of {MAX_SHARES}")]
    IndexTooLarge {
        /// The offending index.
        index: u64,
    },
    /// The same share index was given twice.
    #[error("share index {index} appears more than once")]
    DuplicateIndex {
        /// The repeated index.
        index: u64,
    },
    /// Fewer shares or partials than the threshold.
    #[error("need {need} shares to reach the threshold, have {have}")]
    NotEnoughShares {
        /// How many were given.
        have: usize,
        /// The threshold t.
        need: u64,
    },
    /// The interpolation gave the point at infinity (or the zero scalar).
    #[error("interpolating share indices {indices:?} gives the point at infinity")]
    Infinity {
        /// The share indices that were combined.
        indices: Vec<u64>,
    },
    /// A partial names a share index the cluster has no public key share for.
    #[error("no public key share is known for share index {index}")]
    UnknownShare {
        /// The unknown index.
        index: u64,
    },
    /// Some partials do not verify against their public key shares. When at
    /// least t honest partials remain, `recovered` is their combination,
    /// already verified against the group key.
    #[error(
        "partial signatures of share indices {indices:?} do not verify against their public key shares; {}",
        if recovered.is_some() { "combined the honest partials instead" } else { "too few honest partials remain" }
    )]
    InvalidPartials {
        /// Every share index whose partial failed verification.
        indices: Vec<u64>,
        /// The group signature combined from honest partials, if enough remain.
        recovered: Option<Box<Signature>>,
    },
    /// Every partial verifies but their combination does not verify against the
    /// group key: the public key shares do not belong to that group key.
    #[error(
        "combination of share indices {indices:?} does not verify against group public key {group_pubkey} although every partial verifies"
    )]
    GroupKeyMismatch {
        /// The share indices that were combined.
        indices: Vec<u64>,
        /// The group key that was checked.
        group_pubkey: PublicKey,
    },
    /// A key or signature error (e.g. a share that evaluated to zero).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Splits `secret` into `total` shares `(index, f(index))` for `index` in
/// `1..=total`, where `f` is a random polynomial of degree `threshold - 1`
/// (coefficients from the OS CSPRNG) with `f(0) = secret`.
pub fn split_secret(
    secret: &SecretKey,
    threshold: u64,
    total: u64,
) -> Result<Vec<(u64, SecretKey)>, ThresholdError> {
    check_split(threshold, total)?;
    let mut coefficients = vec![secret.clone()];
    coefficients.extend((1..threshold).map(|_| SecretKey::random()));
    split_with_polynomial(&coefficients, total)
}

/// Evaluates the polynomial `f(x) = sum coefficients[k] * x^k` at `x = 1..=total`:
/// the shares a dealer with these coefficients hands out (`coefficients[0]` is
/// the group secret, their count is the threshold). [`split_secret`] calls this
/// with random coefficients; a known polynomial (e.g. from test vectors)
/// reproduces its shares.
pub fn split_with_polynomial(
    coefficients: &[SecretKey],
    total: u64,
) -> Result<Vec<(u64, SecretKey)>, ThresholdError> {
    let threshold = u64::try_from(coefficients.len()).unwrap_or(u64::MAX);
    check_split(threshold, total)?;
    let coefficients: Vec<Scalar> = coefficients.iter().map(Scalar::from_secret_key).collect();
    (1..=total)
        .map(|index| {
            let x = Scalar::from_u64(index);
            // Horner's rule from the highest coefficient down.
            let value = coefficients
                .iter()
                .rev()
                .fold(Scalar::from_u64(0), |acc, coefficient| {
                    acc.mul(&x).add(coefficient)
                });
            Ok((index, value.to_secret_key()?))
        })
        .collect()
}

/// Recovers the group secret from the first `threshold` shares (Lagrange interpolation at 0 in Fr).
pub fn recover_secret(
    shares: &[(u64, SecretKey)],
    threshold: u64,
) -> Result<SecretKey, ThresholdError> {
    let chosen = first_threshold(shares, threshold)?;
    let indices = indices_of(chosen);
    let secret = lagrange_at_zero(&indices)?
        .iter()
        .zip(chosen)
        .fold(Scalar::from_u64(0), |acc, (lambda, (_, share))| {
            acc.add(&lambda.mul(&Scalar::from_secret_key(share)))
        });
    secret
        .to_secret_key()
        .map_err(|_| ThresholdError::Infinity { indices })
}

/// Recovers the group public key from the first `threshold` public key shares
/// (Lagrange interpolation at 0 in G1).
pub fn recover_public_key(
    shares: &[(u64, PublicKey)],
    threshold: u64,
) -> Result<PublicKey, ThresholdError> {
    let (point, indices) = interpolate_first(shares, threshold, |key| *key.as_blst())?;
    PublicKey::from_point(point).ok_or(ThresholdError::Infinity { indices })
}

/// Combines the first `threshold` partial signatures (in the order given) into
/// the group signature (Lagrange interpolation at 0 in G2). The partials are
/// not verified here; see [`combine_and_verify`]. Every index in `partials` is
/// checked for zero, range and duplicates, not only the first `threshold`.
pub fn combine_signatures(
    partials: &[(u64, Signature)],
    threshold: u64,
) -> Result<Signature, ThresholdError> {
    let (point, indices) = interpolate_first(partials, threshold, |sig| *sig.as_blst())?;
    let combined = Signature::from_point(point);
    if combined.is_infinity() {
        return Err(ThresholdError::Infinity { indices });
    }
    Ok(combined)
}

/// Whether `partial` is the signature of `message` by the holder of the share behind `pubshare`.
pub fn verify_partial(pubshare: &PublicKey, message: &[u8], partial: &Signature) -> bool {
    partial.verify(pubshare, message)
}

/// Combines the first `threshold` partials and verifies the result once
/// against `group_pubkey`, which for honest partials costs one verification
/// instead of t + 1.
///
/// Only when that check fails is every partial verified against its public
/// key share. Then the result is [`ThresholdError::InvalidPartials`] naming
/// every bad share index; if at least `threshold` honest partials remain, the
/// error carries their combination (first `threshold` honest ones, verified
/// against the group key) in `recovered`, so the caller can both report the
/// bad operators and keep working. Every partial index must have an entry in
/// `pubshares`.
pub fn combine_and_verify(
    group_pubkey: &PublicKey,
    message: &[u8],
    partials: &[(u64, Signature)],
    pubshares: &HashMap<u64, PublicKey>,
    threshold: u64,
) -> Result<Signature, ThresholdError> {
    if let Some((index, _)) = partials
        .iter()
        .find(|(index, _)| !pubshares.contains_key(index))
    {
        return Err(ThresholdError::UnknownShare { index: *index });
    }
    match combine_signatures(partials, threshold) {
        Ok(combined) if combined.verify(group_pubkey, message) => return Ok(combined),
        // Partials crafted to cancel out are as bad as ones that do not verify.
        Ok(_) | Err(ThresholdError::Infinity { .. }) => {}
        Err(other) => return Err(other),
    }
    let (honest, bad): (Vec<_>, Vec<_>) = partials.iter().copied().partition(|(index, partial)| {
        pubshares
            .get(index)
            .is_some_and(|pubshare| partial.verify(pubshare, message))
    });
    let group_key_mismatch = |chosen: &[(u64, Signature)]| ThresholdError::GroupKeyMismatch {
        indices: indices_of(
            chosen
                .iter()
                .take(usize::try_from(threshold).unwrap_or(usize::MAX)),
        ),
        group_pubkey: *group_pubkey,
    };
    if bad.is_empty() {
        return Err(group_key_mismatch(partials));
    }
    let recovered = match combine_signatures(&honest, threshold) {
        Ok(signature) if signature.verify(group_pubkey, message) => Some(Box::new(signature)),
        Ok(_) => return Err(group_key_mismatch(&honest)),
        Err(ThresholdError::NotEnoughShares { .. }) => None,
        Err(other) => return Err(other),
    };
    Err(ThresholdError::InvalidPartials {
        indices: indices_of(&bad),
        recovered,
    })
}

/// The Lagrange coefficients at x = 0 for `indices` (in that order), as
/// 32-byte big-endian scalars: `λ_i = Π_{j≠i} j / (j − i) mod r`.
pub fn lagrange_coefficients(indices: &[u64]) -> Result<Vec<[u8; 32]>, ThresholdError> {
    check_indices(indices.iter().copied())?;
    Ok(lagrange_at_zero(indices)?
        .iter()
        .map(|lambda| *lambda.to_be_bytes())
        .collect())
}

fn check_split(threshold: u64, total: u64) -> Result<(), ThresholdError> {
    if total > MAX_SHARES {
        return Err(ThresholdError::TooManyShares { total });
    }
    if threshold < 2 || threshold > total {
        return Err(ThresholdError::InvalidThreshold { threshold, total });
    }
    Ok(())
}

fn check_indices(indices: impl Iterator<Item = u64>) -> Result<(), ThresholdError> {
    let mut seen = HashSet::new();
    for index in indices {
        if index == 0 {
            return Err(ThresholdError::ZeroIndex);
        }
        if index > MAX_SHARES {
            return Err(ThresholdError::IndexTooLarge { index });
        }
        if !seen.insert(index) {
            return Err(ThresholdError::DuplicateIndex { index });
        }
    }
    Ok(())
}

/// Validates every index of `items` and returns the first `threshold` of them.
fn first_threshold<T>(items: &[(u64, T)], threshold: u64) -> Result<&[(u64, T)], ThresholdError> {
    if threshold == 0 || threshold > MAX_SHARES {
        return Err(ThresholdError::InvalidThreshold {
            threshold,
            total: u64::try_from(items.len()).unwrap_or(u64::MAX),
        });
    }
    check_indices(items.iter().map(|(index, _)| *index))?;
    let need = usize::try_from(threshold).unwrap_or(usize::MAX);
    items.get(..need).ok_or(ThresholdError::NotEnoughShares {
        have: items.len(),
        need: threshold,
    })
}

fn indices_of<'a, T: 'a>(items: impl IntoIterator<Item = &'a (u64, T)>) -> Vec<u64> {
    items.into_iter().map(|(index, _)| *index).collect()
}

/// `λ_i` in Fr for distinct non-zero indices, with one inversion for all
/// denominators (Montgomery's batch inversion).
fn lagrange_at_zero(indices: &[u64]) -> Result<Vec<Scalar>, ThresholdError> {
    let xs: Vec<Scalar> = indices.iter().map(|&x| Scalar::from_u64(x)).collect();
    let mut numerators = Vec::with_capacity(xs.len());
    let mut denominators = Vec::with_capacity(xs.len());
    for (i, xi) in xs.iter().enumerate() {
        let others = xs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, xj)| xj);
        let (numerator, denominator) = others.fold(
            (Scalar::from_u64(1), Scalar::from_u64(1)),
            |(num, den), xj| (num.mul(xj), den.mul(&xj.sub(xi))),
        );
        numerators.push(numerator);
        denominators.push(denominator);
    }
    let inverses = batch_inverse(&denominators).ok_or_else(|| ThresholdError::Infinity {
        indices: indices.to_vec(),
    })?;
    Ok(numerators
        .iter()
        .zip(&inverses)
        .map(|(num, inv)| num.mul(inv))
        .collect())
}

/// Inverts every element with a single field inversion; `None` if any is zero.
fn batch_inverse(values: &[Scalar]) -> Option<Vec<Scalar>> {
    let mut prefix = Vec::with_capacity(values.len());
    let mut running = Scalar::from_u64(1);
    for value in values {
        prefix.push(running.clone());
        running = running.mul(value);
    }
    let mut inverse_of_rest = running.inverse()?;
    let mut inverses: Vec<Scalar> = Vec::with_capacity(values.len());
    for (value, before) in values.iter().zip(&prefix).rev() {
        inverses.push(inverse_of_rest.mul(before));
        inverse_of_rest = inverse_of_rest.mul(value);
    }
    inverses.reverse();
    Some(inverses)
}

/// A group whose points blst can weight and sum in one multi-scalar multiplication.
trait GroupPoint: Copy {
    /// `Σ scalar_k · point_k`, scalars little-endian, `ceil(nbits / 8)` bytes each.
    fn multi_scalar_mul(points: &[Self], scalars: &[u8], nbits: usize) -> Self;
    fn negate(&self) -> Self;
}

/// Implements [`GroupPoint`] for a blst min_pk point type, given its blst
/// affine and projective types, their conversions and negation, and the
/// conversion of blst's aggregate back to the point type.
macro_rules! impl_group_point {
    ($point:ty, $affine:ty, $projective:ty, $from_affine:path, $cneg:path, $to_affine:path, $from_aggregate:ident) => {
        impl GroupPoint for $point {
            fn multi_scalar_mul(points: &[Self], scalars: &[u8], nbits: usize) -> Self {
                points.mult(scalars, nbits).$from_aggregate()
            }

            fn negate(&self) -> Self {
                let affine: &$affine = self.into();
                let mut point = <$projective>::default();
                let mut negated = <$affine>::default();
                // SAFETY: every pointer refers to a valid, initialised point.
                unsafe {
                    $from_affine(&mut point, affine);
                    $cneg(&mut point, true);
                    $to_affine(&mut negated, &point);
                }
                negated.into()
            }
        }
    };
}

impl_group_point!(
    min_pk::Signature,
    blst::blst_p2_affine,
    blst::blst_p2,
    blst::blst_p2_from_affine,
    blst::blst_p2_cneg,
    blst::blst_p2_to_affine,
    to_signature
);
impl_group_point!(
    min_pk::PublicKey,
    blst::blst_p1_affine,
    blst::blst_p1,
    blst::blst_p1_from_affine,
    blst::blst_p1_cneg,
    blst::blst_p1_to_affine,
    to_public_key
);

/// Interpolates at 0 the points of the first `threshold` items (all indices
/// validated); also returns the indices used.
fn interpolate_first<T, P: GroupPoint>(
    items: &[(u64, T)],
    threshold: u64,
    point_of: impl Fn(&T) -> P,
) -> Result<(P, Vec<u64>), ThresholdError> {
    let chosen = first_threshold(items, threshold)?;
    let points: Vec<(u64, P)> = chosen
        .iter()
        .map(|(index, item)| (*index, point_of(item)))
        .collect();
    Ok((interpolate_at_zero(&points)?, indices_of(chosen)))
}

/// `Σ λ_i · P_i` at x = 0 for distinct, validated, non-empty indices.
fn interpolate_at_zero<P: GroupPoint>(shares: &[(u64, P)]) -> Result<P, ThresholdError> {
    let indices = indices_of(shares);
    if shares.is_empty() {
        return Err(ThresholdError::NotEnoughShares { have: 0, need: 1 });
    }
    if let Some(weights) = IntegerWeights::new(&indices) {
        let points: Vec<P> = shares
            .iter()
            .zip(&weights.negative)
            .map(|((_, point), &negative)| if negative { point.negate() } else { *point })
            .collect();
        let scaled = P::multi_scalar_mul(&points, &weights.scalar_bytes(), weights.nbits());
        if weights.denominator == 1 {
            return Ok(scaled);
        }
        let inverse = Scalar::from_le_bytes_reduced(&weights.denominator.to_le_bytes())
            .inverse()
            .ok_or(ThresholdError::Infinity { indices })?;
        return Ok(P::multi_scalar_mul(
            &[scaled],
            inverse.to_le_bytes().as_ref(),
            255,
        ));
    }
    let lambdas = lagrange_at_zero(&indices)?;
    let scalars: Vec<u8> = lambdas
        .iter()
        .flat_map(|lambda| *lambda.to_le_bytes())
        .collect();
    let points: Vec<P> = shares.iter().map(|(_, point)| *point).collect();
    Ok(P::multi_scalar_mul(&points, &scalars, 255))
}

/// Lagrange coefficients at 0 as signed integers over one common denominator:
/// `λ_i = (negative_i ? -1 : 1) · magnitudes_i / denominator`, reduced by
/// their common divisor. For indices {1, 2, 3} this is 3, -3, 1 over 1.
struct IntegerWeights {
    magnitudes: Vec<u128>,
    negative: Vec<bool>,
    denominator: u128,
}

impl IntegerWeights {
    /// `None` when an intermediate product overflows `u128` (large index sets).
    fn new(indices: &[u64]) -> Option<Self> {
        let mut numerators = Vec::with_capacity(indices.len());
        let mut denominators = Vec::with_capacity(indices.len());
        let mut negative = Vec::with_capacity(indices.len());
        for (i, &xi) in indices.iter().enumerate() {
            let (mut num, mut den, mut sign) = (1u128, 1u128, false);
            for (_, &xj) in indices.iter().enumerate().filter(|(j, _)| *j != i) {
                num = num.checked_mul(u128::from(xj))?;
                den = den.checked_mul(u128::from(xj.abs_diff(xi)))?;
                sign ^= xj < xi;
            }
            numerators.push(num);
            denominators.push(den);
            negative.push(sign);
        }
        let denominator = denominators
            .iter()
            .try_fold(1u128, |acc, &den| lcm(acc, den))?;
        let mut magnitudes = numerators
            .iter()
            .zip(&denominators)
            .map(|(&num, &den)| num.checked_mul(denominator / den))
            .collect::<Option<Vec<u128>>>()?;
        let common = magnitudes.iter().fold(denominator, |acc, &m| gcd(acc, m));
        magnitudes.iter_mut().for_each(|m| *m /= common);
        Some(Self {
            magnitudes,
            negative,
            denominator: denominator / common,
        })
    }

    /// Bits of the largest magnitude: the scalar width of the multi-scalar multiplication.
    fn nbits(&self) -> usize {
        let largest = self.magnitudes.iter().copied().max().unwrap_or(1);
        (128 - largest.leading_zeros() as usize).max(1)
    }

    fn scalar_bytes(&self) -> Vec<u8> {
        let width = self.nbits().div_ceil(8);
        self.magnitudes
            .iter()
            .flat_map(|m| m.to_le_bytes().into_iter().take(width))
            .collect()
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn lcm(a: u128, b: u128) -> Option<u128> {
    (a / gcd(a, b)).checked_mul(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(indices: &[u64]) -> (Vec<i128>, u128) {
        let w = IntegerWeights::new(indices).unwrap();
        let signed = w
            .magnitudes
            .iter()
            .zip(&w.negative)
            .map(|(&m, &n)| if n { -(m as i128) } else { m as i128 })
            .collect();
        (signed, w.denominator)
    }

    #[test]
    fn integer_weights_are_the_lagrange_coefficients() {
        // Checked against the field coefficients (which the oracle vectors test).
        for indices in [
            vec![1, 2, 3],
            vec![2, 3, 4],
            vec![1, 3],
            vec![4, 1, 7, 10, 2, 9, 5],
        ] {
            let (signed, denominator) = weights(&indices);
            let inverse = Scalar::from_le_bytes_reduced(&denominator.to_le_bytes())
                .inverse()
                .unwrap();
            for (c, lambda) in signed.iter().zip(lagrange_at_zero(&indices).unwrap()) {
                let magnitude = Scalar::from_le_bytes_reduced(&c.unsigned_abs().to_le_bytes());
                let value = if *c < 0 {
                    Scalar::from_u64(0).sub(&magnitude)
                } else {
                    magnitude
                };
                assert_eq!(
                    *value.mul(&inverse).to_be_bytes(),
                    *lambda.to_be_bytes(),
                    "{indices:?}"
                );
            }
        }
        assert_eq!(weights(&[1, 2, 3]), (vec![3, -3, 1], 1));
        assert_eq!(weights(&[1, 3]), (vec![3, -1], 2));
    }

    #[test]
    fn integer_weights_give_up_on_overflow() {
        let indices: Vec<u64> = (1..=40).collect();
        assert!(IntegerWeights::new(&indices).is_none());
    }
}
