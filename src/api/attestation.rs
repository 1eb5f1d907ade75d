//! The objects of the attester and aggregator duties as they travel: the
//! `Attestation` of phase0..deneb and its electra form (with
//! `committee_bits`), electra's `SingleAttestation`, `AggregateAndProof` and
//! `SignedAggregateAndProof`. Each has its Beacon API JSON (quoted integers,
//! `0x` hex, bitfields as the hex of their SSZ bytes), its SSZ encoding and
//! its `hash_tree_root`.
//!
//! The bitfields' limits depend on the preset (electra's aggregation bits
//! hold `MAX_VALIDATORS_PER_COMMITTEE * MAX_COMMITTEES_PER_SLOT` bits), so a
//! [`Bitfield`] carries its length at run time and the caller passes the
//! [`Preset`] where a limit matters: decoding SSZ, checking a JSON value
//! ([`Attestation::check_lengths`]) and hashing. The roots are checked
//! against `ssz_types`' compile-time bitfields and the Python spec's vectors.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_utils::quoted_u64::require_quotes as quoted_u64;
use ssz::{Decode, Encode};
use tree_hash::TreeHash;

use super::types::{SignatureBytes, SIGNATURE_BYTES_LEN};
use crate::spec::config::{DOMAIN_AGGREGATE_AND_PROOF, MAX_VALIDATORS_PER_COMMITTEE};
use crate::spec::hex::parse_hex_vec;
use crate::spec::signing::{compute_epoch_at_slot, compute_signing_root, get_domain};
use crate::spec::{AttestationData, CommitteeIndex, Fork, Preset, Root, ValidatorIndex};

/// SSZ length of `AttestationData`.
pub const ATTESTATION_DATA_SSZ_LEN: usize = 128;
/// SSZ length of a `SingleAttestation` (all of it is fixed-size).
pub const SINGLE_ATTESTATION_SSZ_LEN: usize =
    8 + 8 + ATTESTATION_DATA_SSZ_LEN + SIGNATURE_BYTES_LEN;
/// Bits of the largest bitlist of any preset (electra mainnet's aggregation
/// bits): the bound on a JSON bitfield before its preset is known.
const MAX_BITFIELD_BITS: usize = 2048 * 64;
/// SSZ offsets are four bytes.
const OFFSET_LEN: usize = 4;

/// Why an attestation object does not decode or does not fit its schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    /// A bitlist's SSZ bytes have no delimiter bit (empty, or a zero last byte).
    #[error("bitlist has no delimiter bit (its last byte must not be zero)")]
    NoDelimiter,
    /// A bitlist holds more bits than its limit.
    #[error("{field} has {len} bits, more than its limit of {max}")]
    TooManyBits {
        /// The field.
        field: &'static str,
        /// Its length in bits.
        len: usize,
        /// The schema's limit.
        max: u64,
    },
    /// A bitvector has the wrong number of bytes or bits set past its length.
    #[error("{field} must be {bytes} bytes with no bit set past bit {len}")]
    BadBitvector {
        /// The field.
        field: &'static str,
        /// The expected byte length.
        bytes: usize,
        /// The vector's length in bits.
        len: usize,
    },
    /// A bit index beyond the bitfield.
    #[error("bit {index} is outside a bitfield of {len} bits")]
    BitOutOfRange {
        /// The index asked for.
        index: usize,
        /// The bitfield's length.
        len: usize,
    },
    /// An SSZ body has the wrong size for its fixed part or offsets.
    #[error("SSZ {container} is {len} bytes; {expected}")]
    BadSszLength {
        /// The container.
        container: &'static str,
        /// The bytes given.
        len: usize,
        /// What was expected.
        expected: String,
    },
    /// An SSZ offset points elsewhere than the end of the fixed part.
    #[error("SSZ {container} has offset {offset}, expected {expected}")]
    BadSszOffset {
        /// The container.
        container: &'static str,
        /// The offset read.
        offset: usize,
        /// The only valid offset.
        expected: usize,
    },
    /// A fixed-size field does not decode.
    #[error("SSZ {container}: {reason}")]
    BadSsz {
        /// The container.
        container: &'static str,
        /// The decoder's reason.
        reason: String,
    },
    /// Two bitfields of different lengths cannot be combined.
    #[error("bitfields of {left} and {right} bits cannot be combined")]
    LengthMismatch {
        /// One length.
        left: usize,
        /// The other.
        right: usize,
    },
}

/// A bitlist or bitvector whose length is known at run time: bit `i` is bit
/// `i % 8` of byte `i / 8` (SSZ's order); bits past `len` are zero.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Bitfield {
    len: usize,
    bytes: Vec<u8>,
}

impl Bitfield {
    /// `len` zero bits.
    pub fn zeros(len: usize) -> Self {
        Self {
            len,
            bytes: vec![0; len.div_ceil(8)],
        }
    }

    /// `len` bits with only bit `index` set: an unaggregated attestation's
    /// aggregation bits.
    pub fn with_bit(len: usize, index: usize) -> Result<Self, AttestationError> {
        let mut bits = Self::zeros(len);
        bits.set(index)?;
        Ok(bits)
    }

    /// The number of bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the bitfield has no bits at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bit `index` (false past the end).
    pub fn get(&self, index: usize) -> bool {
        index < self.len && self.bytes[index / 8] & (1 << (index % 8)) != 0
    }

    /// Sets bit `index`.
    pub fn set(&mut self, index: usize) -> Result<(), AttestationError> {
        if index >= self.len {
            return Err(AttestationError::BitOutOfRange {
                index,
                len: self.len,
            });
        }
        self.bytes[index / 8] |= 1 << (index % 8);
        Ok(())
    }

    /// How many bits are set.
    pub fn count_ones(&self) -> usize {
        self.bytes
            .iter()
            .map(|byte| byte.count_ones() as usize)
            .sum()
    }

    /// The indices of the set bits, in order.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).filter(|index| self.get(*index))
    }

    /// Whether no bit is set in both.
    pub fn is_disjoint(&self, other: &Bitfield) -> bool {
        self.bytes
            .iter()
            .zip(&other.bytes)
            .all(|(left, right)| left & right == 0)
    }

    /// The union of two bitfields of the same length.
    pub fn union(&self, other: &Bitfield) -> Result<Bitfield, AttestationError> {
        if self.len != other.len {
            return Err(AttestationError::LengthMismatch {
                left: self.len,
                right: other.len,
            });
        }
        Ok(Bitfield {
            len: self.len,
            bytes: self
                .bytes
                .iter()
                .zip(&other.bytes)
                .map(|(left, right)| left | right)
                .collect(),
        })
    }

    /// Decodes the SSZ bytes of a bitlist (the bits and a delimiter bit).
    pub fn from_bitlist_bytes(bytes: &[u8]) -> Result<Self, AttestationError> {
        let (last, _) = bytes.split_last().ok_or(AttestationError::NoDelimiter)?;
        if *last == 0 {
            return Err(AttestationError::NoDelimiter);
        }
        let delimiter = 7 - last.leading_zeros() as usize;
        let len = (bytes.len() - 1) * 8 + delimiter;
        let mut field = Self::zeros(len);
        field.bytes.copy_from_slice(&bytes[..len.div_ceil(8)]);
        if delimiter > 0 {
            // The delimiter shares the last data byte: keep the bits below it.
            if let Some(byte) = field.bytes.last_mut() {
                *byte &= (1u8 << delimiter) - 1;
            }
        }
        Ok(field)
    }

    /// The SSZ bytes of the bitfield as a bitlist (with its delimiter bit).
    pub fn to_bitlist_bytes(&self) -> Vec<u8> {
        let mut bytes = self.bytes.clone();
        if self.len % 8 == 0 {
            bytes.push(1);
        } else if let Some(last) = bytes.last_mut() {
            *last |= 1 << (self.len % 8);
        }
        bytes
    }

    /// Decodes the SSZ bytes of a bitvector of `len` bits.
    pub fn from_bitvector_bytes(
        bytes: &[u8],
        len: usize,
        field: &'static str,
    ) -> Result<Self, AttestationError> {
        let bad = AttestationError::BadBitvector {
            field,
            bytes: len.div_ceil(8),
            len,
        };
        if bytes.len() != len.div_ceil(8) {
            return Err(bad);
        }
        let vector = Self {
            len,
            bytes: bytes.to_vec(),
        };
        if vector.count_ones() != vector.ones().count() {
            return Err(bad);
        }
        Ok(vector)
    }

    /// The SSZ bytes of the bitfield as a bitvector.
    pub fn to_bitvector_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `hash_tree_root` of the bitfield as a `Bitlist[max_len]`.
    pub fn bitlist_root(&self, max_len: u64) -> Root {
        let limit_chunks = usize::try_from(max_len.div_ceil(256)).unwrap_or(usize::MAX);
        tree_hash::mix_in_length(&tree_hash::merkle_root(&self.bytes, limit_chunks), self.len)
    }

    /// `hash_tree_root` of the bitfield as a `Bitvector[len]`.
    pub fn bitvector_root(&self) -> Root {
        tree_hash::merkle_root(&self.bytes, self.len.div_ceil(256))
    }

    fn check_bitlist(&self, field: &'static str, max: u64) -> Result<(), AttestationError> {
        if self.len as u64 > max {
            return Err(AttestationError::TooManyBits {
                field,
                len: self.len,
                max,
            });
        }
        Ok(())
    }
}

impl fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits: String = (0..self.len)
            .map(|index| if self.get(index) { '1' } else { '0' })
            .collect();
        write!(f, "Bitfield({bits})")
    }
}

/// Serde of a bitlist as the `0x` hex of its SSZ bytes.
mod bitlist_hex {
    use super::*;

    pub fn serialize<S: Serializer>(bits: &Bitfield, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&serde_utils::hex::encode(bits.to_bitlist_bytes()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bitfield, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = parse_hex_vec(&text, MAX_BITFIELD_BITS / 8 + 1).map_err(D::Error::custom)?;
        Bitfield::from_bitlist_bytes(&bytes).map_err(D::Error::custom)
    }
}

/// Serde of a bitvector as the `0x` hex of its bytes; its length in bits is
/// provisionally all the bytes' bits until [`Attestation::check_lengths`]
/// knows the preset.
mod bitvector_hex {
    use super::*;

    pub fn serialize<S: Serializer>(bits: &Bitfield, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&serde_utils::hex::encode(bits.to_bitvector_bytes()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bitfield, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = parse_hex_vec(&text, MAX_BITFIELD_BITS / 8).map_err(D::Error::custom)?;
        Ok(Bitfield {
            len: bytes.len() * 8,
            bytes,
        })
    }
}

/// `hash_tree_root` of a 96-byte signature (`Vector[byte, 96]`).
fn signature_root(signature: &SignatureBytes) -> Root {
    tree_hash::merkle_root(&signature.0, 0)
}

/// `hash_tree_root` of a container from its fields' roots.
fn container_root(field_roots: &[Root]) -> Root {
    let bytes: Vec<u8> = field_roots
        .iter()
        .flat_map(|root| root.0.into_iter())
        .collect();
    tree_hash::merkle_root(&bytes, 0)
}

/// The limit of electra's aggregation bits:
/// `MAX_VALIDATORS_PER_COMMITTEE * MAX_COMMITTEES_PER_SLOT`.
pub fn electra_aggregation_bits_limit(preset: &Preset) -> u64 {
    MAX_VALIDATORS_PER_COMMITTEE.saturating_mul(preset.MAX_COMMITTEES_PER_SLOT)
}

fn committee_bits_len(preset: &Preset) -> usize {
    usize::try_from(preset.MAX_COMMITTEES_PER_SLOT).unwrap_or(usize::MAX)
}

/// `Attestation` of phase0 .. deneb: one committee, named in `data.index`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationPhase0 {
    /// Which committee members' signatures are aggregated.
    #[serde(with = "bitlist_hex")]
    pub aggregation_bits: Bitfield,
    /// What they vote for.
    pub data: AttestationData,
    /// The aggregate signature.
    pub signature: SignatureBytes,
}

/// `Attestation` of electra and later: `data.index` is 0 and
/// `committee_bits` names the committees, whose members' bits follow one
/// another in `aggregation_bits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationElectra {
    /// Which members of the named committees (concatenated) are aggregated.
    #[serde(with = "bitlist_hex")]
    pub aggregation_bits: Bitfield,
    /// What they vote for.
    pub data: AttestationData,
    /// The aggregate signature.
    pub signature: SignatureBytes,
    /// Which committees of the slot take part.
    #[serde(with = "bitvector_hex")]
    pub committee_bits: Bitfield,
}

/// An `Attestation` of either form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attestation {
    /// phase0 .. deneb.
    Phase0(AttestationPhase0),
    /// electra and later.
    Electra(AttestationElectra),
}

impl Serialize for Attestation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Attestation::Phase0(attestation) => attestation.serialize(serializer),
            Attestation::Electra(attestation) => attestation.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Attestation {
    /// The form is told by the presence of `committee_bits`; endpoints that
    /// know the fork check the form with [`Attestation::is_electra`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Either {
            #[serde(with = "bitlist_hex")]
            aggregation_bits: Bitfield,
            data: AttestationData,
            signature: SignatureBytes,
            #[serde(default, with = "option_bitvector_hex")]
            committee_bits: Option<Bitfield>,
        }
        let either = Either::deserialize(deserializer)?;
        Ok(match either.committee_bits {
            None => Attestation::Phase0(AttestationPhase0 {
                aggregation_bits: either.aggregation_bits,
                data: either.data,
                signature: either.signature,
            }),
            Some(committee_bits) => Attestation::Electra(AttestationElectra {
                aggregation_bits: either.aggregation_bits,
                data: either.data,
                signature: either.signature,
                committee_bits,
            }),
        })
    }
}

mod option_bitvector_hex {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Bitfield>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "bitvector_hex")] Bitfield);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|wrapped| wrapped.0))
    }
}

impl AttestationPhase0 {
    /// The SSZ length of the fixed part: an offset, the data, the signature.
    const FIXED_LEN: usize = OFFSET_LEN + ATTESTATION_DATA_SSZ_LEN + SIGNATURE_BYTES_LEN;

    /// `hash_tree_root`.
    pub fn tree_hash_root(&self) -> Root {
        container_root(&[
            self.aggregation_bits
                .bitlist_root(MAX_VALIDATORS_PER_COMMITTEE),
            self.data.tree_hash_root(),
            signature_root(&self.signature),
        ])
    }

    /// The SSZ encoding.
    pub fn as_ssz_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(Self::FIXED_LEN + self.aggregation_bits.len() / 8 + 1);
        bytes.extend_from_slice(&(Self::FIXED_LEN as u32).to_le_bytes());
        bytes.extend_from_slice(&self.data.as_ssz_bytes());
        bytes.extend_from_slice(&self.signature.0);
        bytes.extend_from_slice(&self.aggregation_bits.to_bitlist_bytes());
        bytes
    }

    /// Decodes SSZ, checking the bitlist's limit.
    pub fn from_ssz_bytes(bytes: &[u8]) -> Result<Self, AttestationError> {
        let (fixed, bits) = split_fixed(bytes, Self::FIXED_LEN, "Attestation")?;
        let attestation = Self {
            aggregation_bits: Bitfield::from_bitlist_bytes(bits)?,
            data: decode_data(&fixed[OFFSET_LEN..], "Attestation")?,
            signature: decode_signature(&fixed[OFFSET_LEN + ATTESTATION_DATA_SSZ_LEN..]),
        };
        attestation
            .aggregation_bits
            .check_bitlist("aggregation_bits", MAX_VALIDATORS_PER_COMMITTEE)?;
        Ok(attestation)
    }
}

impl AttestationElectra {
    fn fixed_len(preset: &Preset) -> usize {
        OFFSET_LEN
            + ATTESTATION_DATA_SSZ_LEN
            + SIGNATURE_BYTES_LEN
            + committee_bits_len(preset).div_ceil(8)
    }

    /// `hash_tree_root` under `preset`'s limits.
    pub fn tree_hash_root(&self, preset: &Preset) -> Root {
        container_root(&[
            self.aggregation_bits
                .bitlist_root(electra_aggregation_bits_limit(preset)),
            self.data.tree_hash_root(),
            signature_root(&self.signature),
            self.committee_bits.bitvector_root(),
        ])
    }

    /// The SSZ encoding.
    pub fn as_ssz_bytes(&self) -> Vec<u8> {
        let fixed_len = OFFSET_LEN
            + ATTESTATION_DATA_SSZ_LEN
            + SIGNATURE_BYTES_LEN
            + self.committee_bits.to_bitvector_bytes().len();
        let mut bytes = Vec::with_capacity(fixed_len + self.aggregation_bits.len() / 8 + 1);
        bytes.extend_from_slice(&(fixed_len as u32).to_le_bytes());
        bytes.extend_from_slice(&self.data.as_ssz_bytes());
        bytes.extend_from_slice(&self.signature.0);
        bytes.extend_from_slice(self.committee_bits.to_bitvector_bytes());
        bytes.extend_from_slice(&self.aggregation_bits.to_bitlist_bytes());
        bytes
    }

    /// Decodes SSZ under `preset`'s limits.
    pub fn from_ssz_bytes(bytes: &[u8], preset: &Preset) -> Result<Self, AttestationError> {
        let (fixed, bits) = split_fixed(bytes, Self::fixed_len(preset), "Attestation")?;
        let committee_bits_at = OFFSET_LEN + ATTESTATION_DATA_SSZ_LEN + SIGNATURE_BYTES_LEN;
        let attestation = Self {
            aggregation_bits: Bitfield::from_bitlist_bytes(bits)?,
            data: decode_data(&fixed[OFFSET_LEN..], "Attestation")?,
            signature: decode_signature(&fixed[OFFSET_LEN + ATTESTATION_DATA_SSZ_LEN..]),
            committee_bits: Bitfield::from_bitvector_bytes(
                &fixed[committee_bits_at..],
                committee_bits_len(preset),
                "committee_bits",
            )?,
        };
        attestation.check_lengths(preset)?;
        Ok(attestation)
    }

    /// Checks the bitfields against `preset` (a JSON value's committee bits
    /// get their length here).
    pub fn check_lengths(&self, preset: &Preset) -> Result<(), AttestationError> {
        self.aggregation_bits
            .check_bitlist("aggregation_bits", electra_aggregation_bits_limit(preset))?;
        let len = committee_bits_len(preset);
        if self.committee_bits.len != len {
            // Re-read the bytes at the preset's length (JSON does not carry it).
            Bitfield::from_bitvector_bytes(&self.committee_bits.bytes, len, "committee_bits")?;
        }
        Ok(())
    }

    /// The committee indices whose bits are set, in order.
    pub fn committee_indices(&self) -> Vec<CommitteeIndex> {
        self.committee_bits
            .ones()
            .map(|index| index as u64)
            .collect()
    }
}

impl Attestation {
    /// What the attestation votes for.
    pub fn data(&self) -> &AttestationData {
        match self {
            Attestation::Phase0(attestation) => &attestation.data,
            Attestation::Electra(attestation) => &attestation.data,
        }
    }

    /// The aggregate signature.
    pub fn signature(&self) -> &SignatureBytes {
        match self {
            Attestation::Phase0(attestation) => &attestation.signature,
            Attestation::Electra(attestation) => &attestation.signature,
        }
    }

    /// The aggregation bits.
    pub fn aggregation_bits(&self) -> &Bitfield {
        match self {
            Attestation::Phase0(attestation) => &attestation.aggregation_bits,
            Attestation::Electra(attestation) => &attestation.aggregation_bits,
        }
    }

    /// Whether this is the electra form.
    pub fn is_electra(&self) -> bool {
        matches!(self, Attestation::Electra(_))
    }

    /// The one committee the attestation is for: `data.index` before
    /// electra, the single committee bit after; `None` when electra's bits
    /// name no committee or several.
    pub fn committee_index(&self) -> Option<CommitteeIndex> {
        match self {
            Attestation::Phase0(attestation) => Some(attestation.data.index),
            Attestation::Electra(attestation) => match attestation.committee_indices()[..] {
                [index] => Some(index),
                _ => None,
            },
        }
    }

    /// Checks the bitfields against `preset`.
    pub fn check_lengths(&self, preset: &Preset) -> Result<(), AttestationError> {
        match self {
            Attestation::Phase0(attestation) => attestation
                .aggregation_bits
                .check_bitlist("aggregation_bits", MAX_VALIDATORS_PER_COMMITTEE),
            Attestation::Electra(attestation) => attestation.check_lengths(preset),
        }
    }

    /// `hash_tree_root` under `preset`'s limits.
    pub fn tree_hash_root(&self, preset: &Preset) -> Root {
        match self {
            Attestation::Phase0(attestation) => attestation.tree_hash_root(),
            Attestation::Electra(attestation) => attestation.tree_hash_root(preset),
        }
    }

    /// The SSZ encoding.
    pub fn as_ssz_bytes(&self) -> Vec<u8> {
        match self {
            Attestation::Phase0(attestation) => attestation.as_ssz_bytes(),
            Attestation::Electra(attestation) => attestation.as_ssz_bytes(),
        }
    }

    /// Decodes SSZ of the phase0 form, or of the electra form when `electra`.
    pub fn from_ssz_bytes(
        bytes: &[u8],
        electra: bool,
        preset: &Preset,
    ) -> Result<Self, AttestationError> {
        if electra {
            AttestationElectra::from_ssz_bytes(bytes, preset).map(Attestation::Electra)
        } else {
            AttestationPhase0::from_ssz_bytes(bytes).map(Attestation::Phase0)
        }
    }
}

/// Electra's `SingleAttestation`: one validator's attestation, naming the
/// attester and its committee instead of carrying bits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SingleAttestation {
    /// The attester's committee.
    #[serde(with = "quoted_u64")]
    pub committee_index: CommitteeIndex,
    /// The attester.
    #[serde(with = "quoted_u64")]
    pub attester_index: ValidatorIndex,
    /// What it votes for (`index` 0).
    pub data: AttestationData,
    /// The attester's signature.
    pub signature: SignatureBytes,
}

impl SingleAttestation {
    /// `hash_tree_root`.
    pub fn tree_hash_root(&self) -> Root {
        container_root(&[
            self.committee_index.tree_hash_root(),
            self.attester_index.tree_hash_root(),
            self.data.tree_hash_root(),
            signature_root(&self.signature),
        ])
    }

    /// The SSZ encoding (240 bytes).
    pub fn as_ssz_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(SINGLE_ATTESTATION_SSZ_LEN);
        bytes.extend_from_slice(&self.committee_index.to_le_bytes());
        bytes.extend_from_slice(&self.attester_index.to_le_bytes());
        bytes.extend_from_slice(&self.data.as_ssz_bytes());
        bytes.extend_from_slice(&self.signature.0);
        bytes
    }

    /// Decodes its 240 SSZ bytes.
    pub fn from_ssz_bytes(bytes: &[u8]) -> Result<Self, AttestationError> {
        if bytes.len() != SINGLE_ATTESTATION_SSZ_LEN {
            return Err(AttestationError::BadSszLength {
                container: "SingleAttestation",
                len: bytes.len(),
                expected: format!("expected {SINGLE_ATTESTATION_SSZ_LEN}"),
            });
        }
        Ok(Self {
            committee_index: read_u64(&bytes[..8]),
            attester_index: read_u64(&bytes[8..16]),
            data: decode_data(&bytes[16..], "SingleAttestation")?,
            signature: decode_signature(&bytes[16 + ATTESTATION_DATA_SSZ_LEN..]),
        })
    }

    /// The same vote as an electra `Attestation`, given the attester's
    /// committee length and position in it.
    pub fn to_attestation(
        &self,
        committee_length: usize,
        position: usize,
        preset: &Preset,
    ) -> Result<AttestationElectra, AttestationError> {
        let committee = usize::try_from(self.committee_index).unwrap_or(usize::MAX);
        Ok(AttestationElectra {
            aggregation_bits: Bitfield::with_bit(committee_length, position)?,
            data: self.data,
            signature: self.signature,
            committee_bits: Bitfield::with_bit(committee_bits_len(preset), committee)?,
        })
    }
}

/// `AggregateAndProof`: the aggregator, its aggregate and its selection proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateAndProof {
    /// The aggregating validator.
    #[serde(with = "quoted_u64")]
    pub aggregator_index: ValidatorIndex,
    /// The aggregate it publishes.
    pub aggregate: Attestation,
    /// Its slot signature, which made it an aggregator.
    pub selection_proof: SignatureBytes,
}

impl AggregateAndProof {
    const FIXED_LEN: usize = 8 + OFFSET_LEN + SIGNATURE_BYTES_LEN;

    /// `hash_tree_root` under `preset`'s limits.
    pub fn tree_hash_root(&self, preset: &Preset) -> Root {
        container_root(&[
            self.aggregator_index.tree_hash_root(),
            self.aggregate.tree_hash_root(preset),
            signature_root(&self.selection_proof),
        ])
    }

    /// The signing root (`get_aggregate_and_proof_signature`):
    /// `DOMAIN_AGGREGATE_AND_PROOF` of the aggregate's slot's epoch.
    pub fn signing_root(
        &self,
        fork: &Fork,
        genesis_validators_root: Root,
        preset: &Preset,
    ) -> Root {
        let epoch = compute_epoch_at_slot(self.aggregate.data().slot, preset);
        let domain = get_domain(
            fork,
            genesis_validators_root,
            DOMAIN_AGGREGATE_AND_PROOF,
            epoch,
        );
        let root = self.tree_hash_root(preset);
        compute_signing_root(&root, domain)
    }

    /// The SSZ encoding.
    pub fn as_ssz_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(Self::FIXED_LEN + 300);
        bytes.extend_from_slice(&self.aggregator_index.to_le_bytes());
        bytes.extend_from_slice(&(Self::FIXED_LEN as u32).to_le_bytes());
        bytes.extend_from_slice(&self.selection_proof.0);
        bytes.extend_from_slice(&self.aggregate.as_ssz_bytes());
        bytes
    }

    /// Decodes SSZ with the aggregate in the phase0 form, or the electra
    /// form when `electra`.
    pub fn from_ssz_bytes(
        bytes: &[u8],
        electra: bool,
        preset: &Preset,
    ) -> Result<Self, AttestationError> {
        if bytes.len() < Self::FIXED_LEN {
            return Err(short("AggregateAndProof", bytes.len(), Self::FIXED_LEN));
        }
        check_offset(&bytes[8..12], Self::FIXED_LEN, "AggregateAndProof")?;
        Ok(Self {
            aggregator_index: read_u64(&bytes[..8]),
            selection_proof: decode_signature(&bytes[12..]),
            aggregate: Attestation::from_ssz_bytes(&bytes[Self::FIXED_LEN..], electra, preset)?,
        })
    }
}

/// `SignedAggregateAndProof`: the aggregator's signature over its `AggregateAndProof`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedAggregateAndProof {
    /// What is signed.
    pub message: AggregateAndProof,
    /// The aggregator's signature.
    pub signature: SignatureBytes,
}

impl SignedAggregateAndProof {
    const FIXED_LEN: usize = OFFSET_LEN + SIGNATURE_BYTES_LEN;

    /// The SSZ encoding.
    pub fn as_ssz_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(Self::FIXED_LEN + 400);
        bytes.extend_from_slice(&(Self::FIXED_LEN as u32).to_le_bytes());
        bytes.extend_from_slice(&self.signature.0);
        bytes.extend_from_slice(&self.message.as_ssz_bytes());
        bytes
    }

    /// Decodes SSZ (electra form of the aggregate when `electra`).
    pub fn from_ssz_bytes(
        bytes: &[u8],
        electra: bool,
        preset: &Preset,
    ) -> Result<Self, AttestationError> {
        let (fixed, message) = split_fixed(bytes, Self::FIXED_LEN, "SignedAggregateAndProof")?;
        Ok(Self {
            signature: decode_signature(&fixed[OFFSET_LEN..]),
            message: AggregateAndProof::from_ssz_bytes(message, electra, preset)?,
        })
    }

    /// `hash_tree_root` under `preset`'s limits.
    pub fn tree_hash_root(&self, preset: &Preset) -> Root {
        container_root(&[
            self.message.tree_hash_root(preset),
            signature_root(&self.signature),
        ])
    }
}

fn short(container: &'static str, len: usize, fixed_len: usize) -> AttestationError {
    AttestationError::BadSszLength {
        container,
        len,
        expected: format!("its fixed part alone is {fixed_len}"),
    }
}

/// Splits a container with one variable field placed last (at the end of
/// the fixed part) and whose offset comes first.
fn split_fixed<'a>(
    bytes: &'a [u8],
    fixed_len: usize,
    container: &'static str,
) -> Result<(&'a [u8], &'a [u8]), AttestationError> {
    if bytes.len() < fixed_len {
        return Err(short(container, bytes.len(), fixed_len));
    }
    check_offset(&bytes[..OFFSET_LEN], fixed_len, container)?;
    Ok(bytes.split_at(fixed_len))
}

fn check_offset(
    bytes: &[u8],
    expected: usize,
    container: &'static str,
) -> Result<(), AttestationError> {
    let mut offset = [0u8; OFFSET_LEN];
    offset.copy_from_slice(&bytes[..OFFSET_LEN]);
    let offset = u32::from_le_bytes(offset) as usize;
    if offset != expected {
        return Err(AttestationError::BadSszOffset {
            container,
            offset,
            expected,
        });
    }
    Ok(())
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

fn decode_data(bytes: &[u8], container: &'static str) -> Result<AttestationData, AttestationError> {
    AttestationData::from_ssz_bytes(&bytes[..ATTESTATION_DATA_SSZ_LEN]).map_err(|error| {
        AttestationError::BadSsz {
            container,
            reason: format!("AttestationData: {error:?}"),
        }
    })
}

fn decode_signature(bytes: &[u8]) -> SignatureBytes {
    let mut signature = [0u8; SIGNATURE_BYTES_LEN];
    signature.copy_from_slice(&bytes[..SIGNATURE_BYTES_LEN]);
    SignatureBytes(signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssz_types::typenum::{U2048, U4, U64, U8192};
    use ssz_types::{BitList, BitVector};

    fn sample_data(slot: u64, index: u64) -> AttestationData {
        AttestationData {
            slot,
            index,
            beacon_block_root: Root::repeat_byte(1),
            source: crate::spec::Checkpoint {
                epoch: 2,
                root: Root::repeat_byte(2),
            },
            target: crate::spec::Checkpoint {
                epoch: 3,
                root: Root::repeat_byte(3),
            },
        }
    }

    fn reference_bitlist<N: ssz_types::typenum::Unsigned + Clone>(bits: &Bitfield) -> BitList<N> {
        let mut reference = BitList::<N>::with_capacity(bits.len()).unwrap();
        for index in bits.ones() {
            reference.set(index, true).unwrap();
        }
        reference
    }

    #[test]
    fn bitlists_encode_and_hash_as_ssz_types_does() {
        for len in [0usize, 1, 7, 8, 9, 63, 64, 65, 255, 256, 257, 2048] {
            let mut bits = Bitfield::zeros(len);
            for index in (0..len).filter(|index| index % 3 == 1 || *index + 1 == len) {
                bits.set(index).unwrap();
            }
            let reference = reference_bitlist::<U2048>(&bits);
            assert_eq!(
                bits.to_bitlist_bytes(),
                reference.as_ssz_bytes(),
                "len {len}"
            );
            assert_eq!(
                bits.bitlist_root(2048),
                reference.tree_hash_root(),
                "len {len}"
            );
            let big = reference_bitlist::<U8192>(&bits);
            assert_eq!(bits.bitlist_root(8192), big.tree_hash_root(), "len {len}");
            let decoded = Bitfield::from_bitlist_bytes(&bits.to_bitlist_bytes()).unwrap();
            assert_eq!(decoded, bits, "len {len}");
        }
    }

    #[test]
    fn bitvectors_hash_as_ssz_types_does() {
        let mut bits = Bitfield::zeros(64);
        bits.set(5).unwrap();
        bits.set(63).unwrap();
        let mut reference = BitVector::<U64>::new();
        reference.set(5, true).unwrap();
        reference.set(63, true).unwrap();
        assert_eq!(bits.bitvector_root(), reference.tree_hash_root());
        assert_eq!(bits.to_bitvector_bytes(), &reference.as_ssz_bytes()[..]);
        let mut small = Bitfield::zeros(4);
        small.set(2).unwrap();
        let mut reference = BitVector::<U4>::new();
        reference.set(2, true).unwrap();
        assert_eq!(small.bitvector_root(), reference.tree_hash_root());
        assert!(Bitfield::from_bitvector_bytes(&[0x10], 4, "committee_bits").is_err());
        assert!(Bitfield::from_bitvector_bytes(&[0x04, 0], 4, "committee_bits").is_err());
    }

    #[test]
    fn bad_bitlists_are_named() {
        assert_eq!(
            Bitfield::from_bitlist_bytes(&[]),
            Err(AttestationError::NoDelimiter)
        );
        assert_eq!(
            Bitfield::from_bitlist_bytes(&[1, 0]),
            Err(AttestationError::NoDelimiter)
        );
        assert!(matches!(
            Bitfield::with_bit(4, 4),
            Err(AttestationError::BitOutOfRange { index: 4, len: 4 })
        ));
    }

    #[test]
    fn attestations_round_trip_through_json_and_ssz() {
        let minimal = Preset::minimal();
        let phase0 = AttestationPhase0 {
            aggregation_bits: Bitfield::with_bit(62, 17).unwrap(),
            data: sample_data(43, 2),
            signature: SignatureBytes([7; 96]),
        };
        let json = serde_json::to_string(&phase0).unwrap();
        assert!(json.contains("\"slot\":\"43\""), "{json}");
        let back: Attestation = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Attestation::Phase0(phase0.clone()));
        assert_eq!(
            AttestationPhase0::from_ssz_bytes(&phase0.as_ssz_bytes()).unwrap(),
            phase0
        );

        let electra = AttestationElectra {
            aggregation_bits: Bitfield::with_bit(62, 17).unwrap(),
            data: sample_data(43, 0),
            signature: SignatureBytes([7; 96]),
            committee_bits: Bitfield::with_bit(4, 3).unwrap(),
        };
        let json = serde_json::to_string(&electra).unwrap();
        let back: Attestation = serde_json::from_str(&json).unwrap();
        back.check_lengths(&minimal).unwrap();
        assert_eq!(back.committee_index(), Some(3));
        assert_eq!(
            back.tree_hash_root(&minimal),
            electra.tree_hash_root(&minimal)
        );
        let ssz = electra.as_ssz_bytes();
        assert_eq!(
            AttestationElectra::from_ssz_bytes(&ssz, &minimal).unwrap(),
            electra
        );
        assert!(matches!(
            AttestationElectra::from_ssz_bytes(&ssz, &Preset::mainnet()),
            Err(AttestationError::BadSszOffset { .. })
        ));
        assert!(matches!(
            AttestationPhase0::from_ssz_bytes(&ssz[..100]),
            Err(AttestationError::BadSszLength { .. })
        ));
    }

    #[test]
    fn aggregate_and_proof_round_trips_through_ssz() {
        let preset = Preset::mainnet();
        let aggregate = AggregateAndProof {
            aggregator_index: 9,
            aggregate: Attestation::Phase0(AttestationPhase0 {
                aggregation_bits: Bitfield::with_bit(31, 0).unwrap(),
                data: sample_data(100, 0),
                signature: SignatureBytes([3; 96]),
            }),
            selection_proof: SignatureBytes([4; 96]),
        };
        let signed = SignedAggregateAndProof {
            message: aggregate,
            signature: SignatureBytes([5; 96]),
        };
        let back = SignedAggregateAndProof::from_ssz_bytes(&signed.as_ssz_bytes(), false, &preset)
            .unwrap();
        assert_eq!(back, signed);
        let json = serde_json::to_string(&signed).unwrap();
        let back: SignedAggregateAndProof = serde_json::from_str(&json).unwrap();
        assert_eq!(back, signed);
        let single = SingleAttestation {
            committee_index: 1,
            attester_index: 77,
            data: sample_data(100, 0),
            signature: SignatureBytes([6; 96]),
        };
        assert_eq!(
            SingleAttestation::from_ssz_bytes(&single.as_ssz_bytes()).unwrap(),
            single
        );
    }
}
