//! BLS signatures over BLS12-381 as the consensus spec uses them: `blst` in the
//! min_pk flavour (48-byte G1 public keys, 96-byte G2 signatures) with the
//! proof-of-possession ciphersuite. Owns the key and signature types, their
//! validated decoding, aggregation, and the scalar-field arithmetic that
//! threshold signing needs.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use blst::min_pk;
use blst::{blst_fr, blst_scalar, BLST_ERROR};
use rand::RngCore;
use zeroize::{Zeroize, Zeroizing};

/// Domain separation tag of the consensus spec's BLS ciphersuite.
pub const DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// Length of a compressed public key (a G1 point).
pub const PUBLIC_KEY_LEN: usize = 48;
/// Length of a compressed signature (a G2 point).
pub const SIGNATURE_LEN: usize = 96;
/// Length of a big-endian secret key.
pub const SECRET_KEY_LEN: usize = 32;

/// Why bytes are not a usable key or signature, or why an operation on them failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The input has the wrong length for its type.
    #[error("{what} must be {expected} bytes, got {got}")]
    InvalidLength {
        /// "public key", "signature" or "secret key".
        what: &'static str,
        /// The required length.
        expected: usize,
        /// The length that was given.
        got: usize,
    },
    /// The encoding is the point at infinity, which the spec forbids for keys and signatures.
    #[error("{what} {bytes} is the point at infinity")]
    Infinity {
        /// "public key" or "signature".
        what: &'static str,
        /// The offending bytes as 0x-hex.
        bytes: String,
    },
    /// The flags or the coordinate of a compressed point are malformed.
    #[error("{what} {bytes} is not a valid compressed point encoding")]
    BadEncoding {
        /// "public key" or "signature".
        what: &'static str,
        /// The offending bytes as 0x-hex.
        bytes: String,
    },
    /// The x coordinate has no point on the curve.
    #[error("{what} {bytes} is not a point on the curve")]
    NotOnCurve {
        /// "public key" or "signature".
        what: &'static str,
        /// The offending bytes as 0x-hex.
        bytes: String,
    },
    /// The point is on the curve but outside the prime-order subgroup.
    #[error("{what} {bytes} is not in the prime-order subgroup")]
    NotInSubgroup {
        /// "public key" or "signature".
        what: &'static str,
        /// The offending bytes as 0x-hex.
        bytes: String,
    },
    /// A secret key of zero has no public key the spec accepts.
    #[error("secret key is zero")]
    ZeroSecretKey,
    /// A secret key must be reduced modulo the group order r (its value is never printed).
    #[error("secret key is not below the group order r")]
    SecretKeyOutOfRange,
    /// Aggregating nothing is undefined in the current spec.
    #[error("cannot aggregate an empty list of {what}s")]
    EmptyAggregate {
        /// "signature" or "public key".
        what: &'static str,
    },
    /// Text that should be 0x-prefixed hex is not.
    #[error("{what} is not 0x-prefixed hex: {reason}")]
    Hex {
        /// "public key" or "signature".
        what: &'static str,
        /// What the hex decoder said.
        reason: String,
    },
}

fn point_error(what: &'static str, bytes: &[u8], err: BLST_ERROR) -> CryptoError {
    let bytes = format!("0x{}", hex::encode(bytes));
    match err {
        BLST_ERROR::BLST_PK_IS_INFINITY => CryptoError::Infinity { what, bytes },
        BLST_ERROR::BLST_POINT_NOT_ON_CURVE => CryptoError::NotOnCurve { what, bytes },
        BLST_ERROR::BLST_POINT_NOT_IN_GROUP => CryptoError::NotInSubgroup { what, bytes },
        _ => CryptoError::BadEncoding { what, bytes },
    }
}

fn check_length(what: &'static str, bytes: &[u8], expected: usize) -> Result<(), CryptoError> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(CryptoError::InvalidLength {
            what,
            expected,
            got: bytes.len(),
        })
    }
}

fn decode_hex(what: &'static str, text: &str) -> Result<Vec<u8>, CryptoError> {
    let digits = text.strip_prefix("0x").ok_or_else(|| CryptoError::Hex {
        what,
        reason: "missing 0x prefix".into(),
    })?;
    hex::decode(digits).map_err(|e| CryptoError::Hex {
        what,
        reason: e.to_string(),
    })
}

/// Hashing, 0x-hex `Display`/`Debug`/`FromStr` and serde as hex strings of a
/// point type with `from_bytes`/`to_bytes`; `$what` names it in errors.
macro_rules! impl_hex_encoding {
    ($type:ty, $what:literal) => {
        impl Hash for $type {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.to_bytes().hash(state);
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "0x{}", hex::encode(self.to_bytes()))
            }
        }

        impl fmt::Debug for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $type {
            type Err = CryptoError;

            /// Parses 0x-prefixed hex of the compressed encoding.
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::from_bytes(&decode_hex($what, text)?)
            }
        }

        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A BLS public key: a G1 point that is on the curve, in the subgroup and not infinity.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(min_pk::PublicKey);

impl PublicKey {
    /// Decodes a 48-byte compressed key, rejecting every point the spec's `KeyValidate` rejects.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        const WHAT: &str = "public key";
        check_length(WHAT, bytes, PUBLIC_KEY_LEN)?;
        let point =
            min_pk::PublicKey::uncompress(bytes).map_err(|e| point_error(WHAT, bytes, e))?;
        point.validate().map_err(|e| point_error(WHAT, bytes, e))?;
        Ok(Self(point))
    }

    /// The 48-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.compress()
    }

    /// Wraps a point computed by this crate; `None` for infinity, which no honest key is.
    pub(crate) fn from_point(point: min_pk::PublicKey) -> Option<Self> {
        let affine: &blst::blst_p1_affine = (&point).into();
        // SAFETY: reads a valid, initialised affine point.
        let infinity = unsafe { blst::blst_p1_affine_is_inf(affine) };
        (!infinity).then_some(Self(point))
    }

    pub(crate) fn as_blst(&self) -> &min_pk::PublicKey {
        &self.0
    }
}

impl_hex_encoding!(PublicKey, "public key");

/// A BLS signature: a G2 point in the subgroup. Decoding rejects infinity; a
/// signature computed here (aggregate, threshold combination) is in the
/// subgroup by construction.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(min_pk::Signature);

impl Signature {
    /// Decodes a 96-byte compressed signature, rejecting infinity, malformed,
    /// off-curve and non-subgroup points.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        const WHAT: &str = "signature";
        check_length(WHAT, bytes, SIGNATURE_LEN)?;
        let point =
            min_pk::Signature::uncompress(bytes).map_err(|e| point_error(WHAT, bytes, e))?;
        point
            .validate(true)
            .map_err(|e| point_error(WHAT, bytes, e))?;
        Ok(Self(point))
    }

    /// The 96-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        self.0.compress()
    }

    /// The spec's `Verify(pubkey, message, signature)`.
    pub fn verify(&self, pubkey: &PublicKey, message: &[u8]) -> bool {
        // Both points were validated when they were built, so blst can skip the subgroup checks.
        self.0.verify(false, message, DST, &[], &pubkey.0, false) == BLST_ERROR::BLST_SUCCESS
    }

    /// The spec's `FastAggregateVerify`: every key signed the same message; false for no keys.
    pub fn fast_aggregate_verify(&self, pubkeys: &[PublicKey], message: &[u8]) -> bool {
        let keys: Vec<&min_pk::PublicKey> = pubkeys.iter().map(|pk| &pk.0).collect();
        !keys.is_empty()
            && self.0.fast_aggregate_verify(false, message, DST, &keys) == BLST_ERROR::BLST_SUCCESS
    }

    /// The spec's `AggregateVerify`: key i signed message i; false for no keys
    /// or a count mismatch.
    pub fn aggregate_verify(&self, pubkeys: &[PublicKey], messages: &[&[u8]]) -> bool {
        let keys: Vec<&min_pk::PublicKey> = pubkeys.iter().map(|pk| &pk.0).collect();
        !keys.is_empty()
            && keys.len() == messages.len()
            && self.0.aggregate_verify(false, messages, DST, &keys, false)
                == BLST_ERROR::BLST_SUCCESS
    }

    pub(crate) fn from_point(point: min_pk::Signature) -> Self {
        Self(point)
    }

    pub(crate) fn as_blst(&self) -> &min_pk::Signature {
        &self.0
    }

    pub(crate) fn is_infinity(&self) -> bool {
        let affine: &blst::blst_p2_affine = (&self.0).into();
        // SAFETY: reads a valid, initialised affine point.
        unsafe { blst::blst_p2_affine_is_inf(affine) }
    }
}

impl_hex_encoding!(Signature, "signature");

/// The spec's `Aggregate`: the sum of the signatures. An empty list is an error.
pub fn aggregate_signatures(signatures: &[Signature]) -> Result<Signature, CryptoError> {
    let points: Vec<&min_pk::Signature> = signatures.iter().map(|s| &s.0).collect();
    if points.is_empty() {
        return Err(CryptoError::EmptyAggregate { what: "signature" });
    }
    // Every input is already a validated subgroup point, so no group check here.
    min_pk::AggregateSignature::aggregate(&points, false)
        .map(|agg| Signature(agg.to_signature()))
        .map_err(|e| point_error("signature", &[], e))
}

/// The spec's `eth_aggregate_pubkeys`: the sum of the keys. An empty list is
/// an error, and so is a sum at infinity (keys that cancel out), which the
/// spec's final `KeyValidate` rejects.
pub fn aggregate_public_keys(keys: &[PublicKey]) -> Result<PublicKey, CryptoError> {
    const WHAT: &str = "aggregate public key";
    let points: Vec<&min_pk::PublicKey> = keys.iter().map(|k| &k.0).collect();
    if points.is_empty() {
        return Err(CryptoError::EmptyAggregate { what: "public key" });
    }
    // Every input is already a validated subgroup point, so no group check here.
    let sum = min_pk::AggregatePublicKey::aggregate(&points, false)
        .map_err(|e| point_error(WHAT, &[], e))?
        .to_public_key();
    PublicKey::from_point(sum).ok_or_else(|| CryptoError::Infinity {
        what: WHAT,
        bytes: format!("0x{}", hex::encode(sum.compress())),
    })
}

/// A BLS secret key: a scalar in 1..r. Zeroized on drop; `Debug` hides it.
#[derive(Clone)]
pub struct SecretKey(min_pk::SecretKey);

impl SecretKey {
    /// Decodes a 32-byte big-endian scalar, rejecting zero and values >= r.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        check_length("secret key", bytes, SECRET_KEY_LEN)?;
        if bytes.iter().all(|&b| b == 0) {
            return Err(CryptoError::ZeroSecretKey);
        }
        min_pk::SecretKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| CryptoError::SecretKeyOutOfRange)
    }

    /// The 32-byte big-endian encoding, wiped when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SECRET_KEY_LEN]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// A uniformly random key from the operating system's CSPRNG.
    pub fn random() -> Self {
        let mut bytes = Zeroizing::new([0u8; SECRET_KEY_LEN]);
        // Rejection sampling keeps the key uniform in 1..r; about half of all
        // 32-byte strings are below r, so this loops about twice.
        loop {
            rand::rngs::OsRng.fill_bytes(bytes.as_mut());
            if let Ok(key) = Self::from_bytes(bytes.as_ref()) {
                return key;
            }
        }
    }

    /// The spec's `SkToPk`.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.sk_to_pk())
    }

    /// The spec's `Sign`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message, DST, &[]))
    }

    fn as_scalar(&self) -> &blst_scalar {
        (&self.0).into()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// An element of the scalar field Fr (integers mod the group order r), held in
/// blst's Montgomery form and wiped on drop because it often carries secret
/// material (polynomial coefficients, shares).
#[derive(Clone)]
pub(crate) struct Scalar(blst_fr);

impl Drop for Scalar {
    fn drop(&mut self) {
        self.0.l.zeroize();
    }
}

impl Scalar {
    pub(crate) fn from_u64(value: u64) -> Self {
        let mut out = blst_fr::default();
        let limbs = [value, 0, 0, 0];
        // SAFETY: blst reads four limbs from `limbs` and writes `out`.
        unsafe { blst::blst_fr_from_uint64(&mut out, limbs.as_ptr()) };
        Self(out)
    }

    fn from_blst_scalar(scalar: &blst_scalar) -> Self {
        let mut out = blst_fr::default();
        // SAFETY: both pointers refer to valid, initialised values.
        unsafe { blst::blst_fr_from_scalar(&mut out, scalar) };
        Self(out)
    }

    pub(crate) fn from_secret_key(key: &SecretKey) -> Self {
        Self::from_blst_scalar(key.as_scalar())
    }

    /// Reduces little-endian bytes of any length modulo r.
    pub(crate) fn from_le_bytes_reduced(bytes: &[u8]) -> Self {
        let mut scalar = blst_scalar::default();
        // SAFETY: blst reads exactly `bytes.len()` bytes.
        unsafe { blst::blst_scalar_from_le_bytes(&mut scalar, bytes.as_ptr(), bytes.len()) };
        Self::from_blst_scalar(&scalar)
    }

    fn to_blst_scalar(&self) -> blst_scalar {
        let mut out = blst_scalar::default();
        // SAFETY: both pointers refer to valid, initialised values.
        unsafe { blst::blst_scalar_from_fr(&mut out, &self.0) };
        out
    }

    /// Little-endian bytes, the layout blst's scalar multiplications read.
    pub(crate) fn to_le_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.to_blst_scalar().b)
    }

    /// Big-endian bytes, the layout of secret keys and of the test vectors.
    pub(crate) fn to_be_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        let scalar = self.to_blst_scalar();
        // SAFETY: blst writes exactly 32 bytes into `out`.
        unsafe { blst::blst_bendian_from_scalar(out.as_mut_ptr(), &scalar) };
        out
    }

    pub(crate) fn to_secret_key(&self) -> Result<SecretKey, CryptoError> {
        SecretKey::from_bytes(self.to_be_bytes().as_ref())
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.0.l.iter().all(|&limb| limb == 0)
    }

    pub(crate) fn add(&self, other: &Self) -> Self {
        let mut out = blst_fr::default();
        // SAFETY: all pointers refer to valid, initialised field elements.
        unsafe { blst::blst_fr_add(&mut out, &self.0, &other.0) };
        Self(out)
    }

    pub(crate) fn sub(&self, other: &Self) -> Self {
        let mut out = blst_fr::default();
        // SAFETY: all pointers refer to valid, initialised field elements.
        unsafe { blst::blst_fr_sub(&mut out, &self.0, &other.0) };
        Self(out)
    }

    pub(crate) fn mul(&self, other: &Self) -> Self {
        let mut out = blst_fr::default();
        // SAFETY: all pointers refer to valid, initialised field elements.
        unsafe { blst::blst_fr_mul(&mut out, &self.0, &other.0) };
        Self(out)
    }

    /// The multiplicative inverse; `None` for zero.
    pub(crate) fn inverse(&self) -> Option<Self> {
        if self.is_zero() {
            return None;
        }
        let mut out = blst_fr::default();
        // SAFETY: both pointers refer to valid, initialised field elements.
        unsafe { blst::blst_fr_inverse(&mut out, &self.0) };
        Some(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_key_rejects_zero_and_order() {
        assert_eq!(
            SecretKey::from_bytes(&[0u8; 32]).unwrap_err(),
            CryptoError::ZeroSecretKey
        );
        let r = hex::decode("73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001")
            .unwrap();
        assert_eq!(
            SecretKey::from_bytes(&r).unwrap_err(),
            CryptoError::SecretKeyOutOfRange
        );
        let mut below = r.clone();
        below[31] = 0;
        assert!(SecretKey::from_bytes(&below).is_ok());
        assert!(matches!(
            SecretKey::from_bytes(&[1u8; 31]).unwrap_err(),
            CryptoError::InvalidLength { got: 31, .. }
        ));
    }

    #[test]
    fn secret_key_debug_hides_the_secret() {
        let key = SecretKey::random();
        let hex = hex::encode(key.to_bytes().as_ref());
        let debug = format!("{key:?}");
        assert!(!debug.contains(&hex) && debug.contains("redacted"));
    }

    #[test]
    fn decoding_names_infinity_length_and_encoding() {
        let mut inf = [0u8; 48];
        inf[0] = 0xc0;
        assert!(matches!(
            PublicKey::from_bytes(&inf),
            Err(CryptoError::Infinity { .. })
        ));
        let mut sig_inf = [0u8; 96];
        sig_inf[0] = 0xc0;
        assert!(matches!(
            Signature::from_bytes(&sig_inf),
            Err(CryptoError::Infinity { .. })
        ));
        assert!(matches!(
            PublicKey::from_bytes(&[0u8; 47]),
            Err(CryptoError::InvalidLength {
                expected: 48,
                got: 47,
                ..
            })
        ));
        // Uncompressed flag (top bit clear) is not accepted for a 48-byte key.
        assert!(matches!(
            PublicKey::from_bytes(&[0u8; 48]),
            Err(CryptoError::BadEncoding { .. })
        ));
    }

    #[test]
    fn decoding_names_off_curve_and_non_subgroup_points() {
        // Scan small x coordinates: some have no curve point, some are on the
        // curve but (the G1 cofactor being large) outside the subgroup.
        let (mut off_curve, mut off_group) = (false, false);
        for x in 1u8..=40 {
            let mut bytes = [0u8; 48];
            bytes[0] = 0x80;
            bytes[47] = x;
            match PublicKey::from_bytes(&bytes) {
                Err(CryptoError::NotOnCurve { .. }) => off_curve = true,
                Err(CryptoError::NotInSubgroup { .. }) => off_group = true,
                other => panic!("x={x}: {other:?}"),
            }
        }
        assert!(off_curve && off_group);
    }

    #[test]
    fn hex_round_trip_and_serde() {
        let key = SecretKey::random();
        let pk = key.public_key();
        let sig = key.sign(b"message");
        assert_eq!(pk.to_string().parse::<PublicKey>().unwrap(), pk);
        assert_eq!(sig.to_string().parse::<Signature>().unwrap(), sig);
        let json = serde_json::to_string(&(pk, sig)).unwrap();
        assert_eq!(
            serde_json::from_str::<(PublicKey, Signature)>(&json).unwrap(),
            (pk, sig)
        );
        assert!(sig.verify(&pk, b"message") && !sig.verify(&pk, b"other"));
    }

    #[test]
    fn aggregate_of_nothing_is_an_error() {
        assert_eq!(
            aggregate_signatures(&[]).unwrap_err(),
            CryptoError::EmptyAggregate { what: "signature" }
        );
    }

    #[test]
    fn aggregate_public_key_verifies_the_aggregate_signature() {
        let keys: Vec<SecretKey> = (0..3).map(|_| SecretKey::random()).collect();
        let pubkeys: Vec<PublicKey> = keys.iter().map(SecretKey::public_key).collect();
        let signatures: Vec<Signature> = keys.iter().map(|k| k.sign(b"m")).collect();
        let signature = aggregate_signatures(&signatures).unwrap();
        let aggregate = aggregate_public_keys(&pubkeys).unwrap();
        assert!(signature.verify(&aggregate, b"m"));
        // Two of the three keys do not sum to the key of all three.
        assert!(!signature.verify(&aggregate_public_keys(&pubkeys[..2]).unwrap(), b"m"));
        assert_eq!(aggregate_public_keys(&pubkeys[..1]).unwrap(), pubkeys[0]);
    }

    #[test]
    fn aggregate_public_keys_refuses_nothing_and_infinity() {
        assert_eq!(
            aggregate_public_keys(&[]).unwrap_err(),
            CryptoError::EmptyAggregate { what: "public key" }
        );
        let key = SecretKey::random();
        let negated = Scalar::from_u64(0)
            .sub(&Scalar::from_secret_key(&key))
            .to_secret_key()
            .unwrap();
        let cancelling = [key.public_key(), negated.public_key()];
        assert!(matches!(
            aggregate_public_keys(&cancelling),
            Err(CryptoError::Infinity {
                what: "aggregate public key",
                ..
            })
        ));
    }

    #[test]
    fn scalar_arithmetic_matches_integers() {
        let six = Scalar::from_u64(2).mul(&Scalar::from_u64(3));
        assert_eq!(six.to_be_bytes()[31], 6);
        let one = six.mul(&six.inverse().unwrap());
        assert_eq!(one.to_le_bytes()[0], 1);
        assert!(Scalar::from_u64(5).sub(&Scalar::from_u64(5)).is_zero());
        assert!(Scalar::from_u64(0).inverse().is_none());
        let minus_one = Scalar::from_u64(0).sub(&Scalar::from_u64(1));
        assert_eq!(
            minus_one.add(&Scalar::from_u64(1)).to_le_bytes().as_ref(),
            &[0u8; 32]
        );
    }
}
