//! Validator lookup by public key without a hash map: the registry's keys
//! sorted once by their first eight bytes (ties broken by the whole key),
//! searched in O(log n). Building it sorts 16-byte entries, which on a
//! million validators is several times cheaper than filling a hash map of
//! 48-byte keys.

use std::cmp::Ordering;

use super::containers::{PublicKeyBytes, Validator};
use crate::spec::ValidatorIndex;

/// A sorted index of a registry's public keys.
#[derive(Debug, Clone, Default)]
pub(super) struct PubkeyIndex {
    /// `(key prefix, validator index)`, in key order, then index order.
    entries: Vec<(u64, ValidatorIndex)>,
}

/// The first eight bytes of a key: random enough that ties are rare, yet a
/// tie only costs a comparison of whole keys.
fn prefix(pubkey: &PublicKeyBytes) -> u64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&pubkey.0[..8]);
    u64::from_be_bytes(bytes)
}

/// The key of an entry; entries only hold indices of `validators`.
fn key_of(validators: &[Validator], index: ValidatorIndex) -> Option<&PublicKeyBytes> {
    usize::try_from(index)
        .ok()
        .and_then(|i| validators.get(i))
        .map(|v| &v.pubkey)
}

/// Orders an entry against a key: by prefix, then by the whole key.
fn compare(
    validators: &[Validator],
    entry: (u64, ValidatorIndex),
    pubkey: &PublicKeyBytes,
) -> Ordering {
    entry.0.cmp(&prefix(pubkey)).then_with(|| {
        key_of(validators, entry.1)
            .map(|k| k.0)
            .cmp(&Some(pubkey.0))
    })
}

impl PubkeyIndex {
    /// Indexes every validator of `validators`.
    pub(super) fn build(validators: &[Validator]) -> Self {
        let mut entries: Vec<(u64, ValidatorIndex)> = (0..)
            .zip(validators)
            .map(|(i, v)| (prefix(&v.pubkey), i))
            .collect();
        entries.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| key_of(validators, a.1).cmp(&key_of(validators, b.1)))
                .then(a.1.cmp(&b.1))
        });
        PubkeyIndex { entries }
    }

    /// The lowest index of a validator with `pubkey`; `validators` must be
    /// the registry the index was built from.
    pub(super) fn get(
        &self,
        validators: &[Validator],
        pubkey: &PublicKeyBytes,
    ) -> Option<ValidatorIndex> {
        let first = self
            .entries
            .partition_point(|entry| compare(validators, *entry, pubkey) == Ordering::Less);
        self.entries
            .get(first)
            .filter(|entry| compare(validators, **entry, pubkey) == Ordering::Equal)
            .map(|entry| entry.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(prefix: u8, tail: u8) -> PublicKeyBytes {
        let mut bytes = [prefix; 48];
        bytes[47] = tail;
        PublicKeyBytes(bytes)
    }

    #[test]
    fn shared_prefixes_and_repeated_keys_resolve_to_the_lowest_index() {
        let keys = [
            key(1, 9),
            key(1, 3),
            key(0, 0),
            key(1, 3),
            key(2, 1),
            key(1, 7),
        ];
        let validators: Vec<Validator> = keys.iter().map(|k| Validator::pending(*k)).collect();
        let index = PubkeyIndex::build(&validators);
        assert_eq!(index.get(&validators, &key(1, 9)), Some(0));
        assert_eq!(index.get(&validators, &key(1, 3)), Some(1));
        assert_eq!(index.get(&validators, &key(0, 0)), Some(2));
        assert_eq!(index.get(&validators, &key(2, 1)), Some(4));
        assert_eq!(index.get(&validators, &key(1, 7)), Some(5));
        assert_eq!(index.get(&validators, &key(1, 8)), None);
        assert_eq!(index.get(&validators, &key(3, 0)), None);
        assert_eq!(PubkeyIndex::default().get(&validators, &key(1, 9)), None);
    }
}
