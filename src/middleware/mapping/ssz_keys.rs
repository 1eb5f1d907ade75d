//! The SSZ encodings of the mapped answers and request bodies that carry
//! validator public keys, as Lodestar serves and sends them (the Beacon API
//! defines SSZ for validator identities and registrations; the duties'
//! containers are Lodestar's, the only node that answers them in SSZ). Each
//! is a list of one container; a body is decoded whole (SSZ decoding checks
//! every length and offset), its keys are mapped and it is encoded again,
//! which gives back the same bytes but for the keys, SSZ being canonical.

use ssz::{Decode, Encode};
use ssz_derive::{Decode, Encode};

use super::PubkeyMap;
use crate::api::types::{PublicKeyBytes, SignatureBytes};

/// The SSZ answers whose keys the mapping rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SszKeys {
    /// `List[AttesterDuty]`: 96-byte records, the key first.
    AttesterDuties,
    /// `List[ProposerDuty]`: 64-byte records (slot, validator_index, pubkey).
    ProposerDuties,
    /// `List[SyncDuty]`: variable-size (pubkey, validator_index, `List[uint64]`).
    SyncDuties,
    /// `List[ValidatorIdentity]`: 64-byte records (index, pubkey, activation_epoch).
    ValidatorIdentities,
}

/// A container with one validator public key.
trait Keyed: Encode + Decode {
    fn pubkey(&mut self) -> &mut PublicKeyBytes;
}

macro_rules! keyed {
    ($name:ident) => {
        impl Keyed for $name {
            fn pubkey(&mut self) -> &mut PublicKeyBytes {
                &mut self.pubkey
            }
        }
    };
}

/// Lodestar's `AttesterDutyType`.
#[derive(Encode, Decode)]
struct AttesterDuty {
    pubkey: PublicKeyBytes,
    validator_index: u64,
    committee_index: u64,
    committee_length: u64,
    committees_at_slot: u64,
    validator_committee_index: u64,
    slot: u64,
}
keyed!(AttesterDuty);

/// Lodestar's `ProposerDutyType` (its field order differs from the JSON's).
#[derive(Encode, Decode)]
struct ProposerDuty {
    slot: u64,
    validator_index: u64,
    pubkey: PublicKeyBytes,
}
keyed!(ProposerDuty);

/// Lodestar's `SyncDutyType`.
#[derive(Encode, Decode)]
struct SyncDuty {
    pubkey: PublicKeyBytes,
    validator_index: u64,
    validator_sync_committee_indices: Vec<u64>,
}
keyed!(SyncDuty);

/// The Beacon API's (and Lodestar's) `ValidatorIdentity`.
#[derive(Encode, Decode)]
struct ValidatorIdentity {
    index: u64,
    pubkey: PublicKeyBytes,
    activation_epoch: u64,
}
keyed!(ValidatorIdentity);

/// The builder specs' `ValidatorRegistrationV1`.
#[derive(Encode, Decode)]
struct ValidatorRegistration {
    fee_recipient: [u8; 20],
    gas_limit: u64,
    timestamp: u64,
    pubkey: PublicKeyBytes,
}

/// `SignedValidatorRegistrationV1`: 180 bytes.
#[derive(Encode, Decode)]
struct SignedValidatorRegistration {
    message: ValidatorRegistration,
    signature: SignatureBytes,
}

/// An SSZ answer of shape `keys` with its group keys replaced by this
/// operator's public shares, and how many were; or why it is not of that shape.
pub(super) fn map_ssz_keys(
    map: &PubkeyMap,
    keys: SszKeys,
    body: &[u8],
) -> Result<(Vec<u8>, usize), String> {
    match keys {
        SszKeys::AttesterDuties => map_list::<AttesterDuty>(map, body, "AttesterDuty"),
        SszKeys::ProposerDuties => map_list::<ProposerDuty>(map, body, "ProposerDuty"),
        SszKeys::SyncDuties => map_list::<SyncDuty>(map, body, "SyncDuty"),
        SszKeys::ValidatorIdentities => {
            map_list::<ValidatorIdentity>(map, body, "ValidatorIdentity")
        }
    }
}

fn map_list<T: Keyed>(
    map: &PubkeyMap,
    body: &[u8],
    name: &str,
) -> Result<(Vec<u8>, usize), String> {
    let mut items = Vec::<T>::from_ssz_bytes(body).map_err(|error| {
        format!(
            "an SSZ body of {} bytes is not a List[{name}]: {error:?}",
            body.len()
        )
    })?;
    let mut mapped = 0;
    for item in &mut items {
        if let Some(share) = map.public_share_of(item.pubkey()) {
            *item.pubkey() = *share;
            mapped += 1;
        }
    }
    Ok((items.as_ssz_bytes(), mapped))
}

/// The public keys of an SSZ `List[SignedValidatorRegistrationV1]`, in
/// order; `None` if the body is not one.
pub(super) fn registration_keys(body: &[u8]) -> Option<Vec<PublicKeyBytes>> {
    let registrations = Vec::<SignedValidatorRegistration>::from_ssz_bytes(body).ok()?;
    Some(
        registrations
            .into_iter()
            .map(|r| r.message.pubkey)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{split_cluster, CreateConfig};
    use crate::crypto::SecretKey;

    fn map() -> (PubkeyMap, PublicKeyBytes, PublicKeyBytes) {
        let secrets = [SecretKey::random()];
        let lock = split_cluster(&CreateConfig::in_memory(4, Some(3)), &secrets)
            .unwrap()
            .lock;
        let group = PublicKeyBytes(lock.validators[0].pubkey.to_bytes());
        let share = PublicKeyBytes(lock.validators[0].public_shares[&2].to_bytes());
        (PubkeyMap::new(&lock, 2).unwrap(), group, share)
    }

    #[test]
    fn fixed_records_have_their_keys_replaced_in_place() {
        let (map, group, share) = map();
        let other = PublicKeyBytes([0xa1; 48]);
        let proposers = [(9, 3, group), (10, 4, other)];
        let mut body = Vec::new();
        for (slot, index, key) in proposers {
            body.extend_from_slice(&u64::to_le_bytes(slot));
            body.extend_from_slice(&u64::to_le_bytes(index));
            body.extend_from_slice(&key.0);
        }
        let (mapped, count) = map_ssz_keys(&map, SszKeys::ProposerDuties, &body).unwrap();
        assert_eq!(count, 1);
        let mut expected = body.clone();
        expected[16..64].copy_from_slice(&share.0);
        assert_eq!(mapped, expected);
        // Not a whole number of records: named, never passed on.
        let error = map_ssz_keys(&map, SszKeys::ProposerDuties, &body[..100]).unwrap_err();
        assert!(
            error.contains("100 bytes is not a List[ProposerDuty]"),
            "{error}"
        );
        assert_eq!(
            map_ssz_keys(&map, SszKeys::AttesterDuties, &[]).unwrap().1,
            0
        );
    }

    #[test]
    fn sync_duties_keep_their_offsets_and_index_lists() {
        let (map, group, share) = map();
        let duties = vec![
            SyncDuty {
                pubkey: PublicKeyBytes([7; 48]),
                validator_index: 1,
                validator_sync_committee_indices: vec![3],
            },
            SyncDuty {
                pubkey: group,
                validator_index: 2,
                validator_sync_committee_indices: vec![5, 400],
            },
        ];
        let body = duties.as_ssz_bytes();
        // Two offsets, then 60 + 8 and 60 + 16 bytes.
        assert_eq!(body.len(), 8 + 68 + 76);
        let (mapped, count) = map_ssz_keys(&map, SszKeys::SyncDuties, &body).unwrap();
        assert_eq!(count, 1);
        let start = 8 + 68;
        let mut expected = body.clone();
        expected[start..start + 48].copy_from_slice(&share.0);
        assert_eq!(mapped, expected);
        let mut bad_offset = body.clone();
        bad_offset[0] = 12;
        assert!(map_ssz_keys(&map, SszKeys::SyncDuties, &bad_offset).is_err());
    }

    #[test]
    fn registrations_are_read_as_180_byte_records() {
        let (_, group, _) = map();
        let registration = SignedValidatorRegistration {
            message: ValidatorRegistration {
                fee_recipient: [1; 20],
                gas_limit: 30_000_000,
                timestamp: 1,
                pubkey: group,
            },
            signature: SignatureBytes([2; 96]),
        };
        let body = vec![registration].as_ssz_bytes();
        assert_eq!(body.len(), 180);
        assert_eq!(&body[36..84], &group.0);
        assert_eq!(registration_keys(&body), Some(vec![group]));
        assert_eq!(registration_keys(&body[..179]), None);
    }
}
