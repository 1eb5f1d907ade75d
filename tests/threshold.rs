//! Threshold BLS against the oracle vectors (`tests/fixtures/oracle/*/vectors.json`,
//! `threshold_cases[]`), the fixed cross-implementation vector, property tests
//! and one test per error; plus batch verification.

use std::collections::HashMap;
use std::path::PathBuf;

use dv_aggregator::crypto::batch::{find_invalid, verify_signature_sets, SignatureSet};
use dv_aggregator::crypto::threshold::{
    combine_and_verify, combine_signatures, lagrange_coefficients, recover_public_key,
    recover_secret, split_secret, split_with_polynomial, verify_partial, ThresholdError,
};
use dv_aggregator::crypto::{CryptoError, PublicKey, SecretKey, Signature};
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    threshold_cases: Vec<ThresholdCase>,
}

#[derive(Deserialize)]
struct ThresholdCase {
    kind: String,
    threshold: u64,
    total: u64,
    group_secret: String,
    group_pubkey: String,
    signing_root: String,
    polynomial_coefficients: Vec<String>,
    shares: Vec<Share>,
    partial_signatures: Vec<Partial>,
    combined_signature: String,
    combinations: Vec<Combination>,
    corrupted_partial: Option<CorruptedPartial>,
}

#[derive(Deserialize)]
struct Share {
    index: u64,
    secret: String,
    pubshare: String,
}

#[derive(Deserialize)]
struct Partial {
    index: u64,
    signature: String,
    valid: bool,
}

#[derive(Deserialize)]
struct Combination {
    indices: Vec<u64>,
    lagrange_coefficients: Vec<String>,
    combined_signature: String,
    equals_group_signature: bool,
}

#[derive(Deserialize)]
struct CorruptedPartial {
    index: u64,
    method: String,
    signature: String,
    decodes_as_g2_subgroup_point: bool,
    combined_including_corrupted: Option<CombinedCheck>,
    combined_excluding_corrupted: CombinedCheck,
}

#[derive(Deserialize)]
struct CombinedCheck {
    indices: Vec<u64>,
    combined_signature: String,
    verifies_against_group_pubkey: bool,
}

fn bytes(text: &str) -> Vec<u8> {
    hex::decode(text.trim_start_matches("0x")).unwrap()
}

fn secret(text: &str) -> SecretKey {
    SecretKey::from_bytes(&bytes(text)).unwrap()
}

fn all_cases() -> Vec<(String, ThresholdCase)> {
    let oracle = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oracle");
    let mut folders: Vec<PathBuf> = std::fs::read_dir(&oracle)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    folders.sort();
    let mut cases = Vec::new();
    for folder in folders.iter().filter(|f| f.join("vectors.json").exists()) {
        let json = std::fs::read(folder.join("vectors.json")).unwrap();
        let vectors: Vectors = serde_json::from_slice(&json).unwrap();
        let name = folder.file_name().unwrap().to_string_lossy().to_string();
        for (i, case) in vectors.threshold_cases.into_iter().enumerate() {
            cases.push((format!("{name}#{i}"), case));
        }
    }
    assert_eq!(folders.len(), 8, "expected the 8 oracle folders");
    cases
}

fn partials_of(case: &ThresholdCase, indices: &[u64]) -> Vec<(u64, Signature)> {
    indices
        .iter()
        .map(|index| {
            let partial = case
                .partial_signatures
                .iter()
                .find(|p| p.index == *index)
                .unwrap();
            (*index, partial.signature.parse().unwrap())
        })
        .collect()
}

fn pubshares_of(case: &ThresholdCase) -> HashMap<u64, PublicKey> {
    case.shares
        .iter()
        .map(|s| (s.index, s.pubshare.parse().unwrap()))
        .collect()
}

#[test]
fn oracle_shares_come_from_the_polynomial() {
    for (name, case) in all_cases() {
        let coefficients: Vec<SecretKey> = case
            .polynomial_coefficients
            .iter()
            .map(|c| secret(c))
            .collect();
        assert_eq!(coefficients.len() as u64, case.threshold, "{name}");
        let shares = split_with_polynomial(&coefficients, case.total).unwrap();
        assert_eq!(shares.len(), case.shares.len(), "{name}");
        for ((index, share), expected) in shares.iter().zip(&case.shares) {
            assert_eq!(*index, expected.index, "{name}");
            assert_eq!(
                hex::encode(share.to_bytes().as_ref()),
                expected.secret[2..],
                "{name}"
            );
            assert_eq!(share.public_key().to_string(), expected.pubshare, "{name}");
        }
        let recovered = recover_secret(&shares, case.threshold).unwrap();
        assert_eq!(
            hex::encode(recovered.to_bytes().as_ref()),
            case.group_secret[2..],
            "{name}"
        );
        let group = secret(&case.group_secret);
        assert_eq!(group.public_key().to_string(), case.group_pubkey, "{name}");
        let pubshares: Vec<(u64, PublicKey)> = shares
            .iter()
            .rev()
            .map(|(i, s)| (*i, s.public_key()))
            .collect();
        let group_pubkey = recover_public_key(&pubshares, case.threshold).unwrap();
        assert_eq!(group_pubkey.to_string(), case.group_pubkey, "{name}");
    }
}

#[test]
fn oracle_partials_verify_as_marked() {
    for (name, case) in all_cases() {
        let message = bytes(&case.signing_root);
        let pubshares = pubshares_of(&case);
        for partial in &case.partial_signatures {
            let verifies = partial
                .signature
                .parse::<Signature>()
                .is_ok_and(|sig| verify_partial(&pubshares[&partial.index], &message, &sig));
            assert_eq!(verifies, partial.valid, "{name} partial {}", partial.index);
        }
        let group_pubkey: PublicKey = case.group_pubkey.parse().unwrap();
        let combined: Signature = case.combined_signature.parse().unwrap();
        assert!(combined.verify(&group_pubkey, &message), "{name}");
        assert_eq!(
            secret(&case.group_secret).sign(&message),
            combined,
            "{name}"
        );
    }
}

#[test]
fn oracle_combinations() {
    let mut checked = 0;
    for (name, case) in all_cases() {
        let message = bytes(&case.signing_root);
        let group_pubkey: PublicKey = case.group_pubkey.parse().unwrap();
        for combination in &case.combinations {
            let what = format!("{name} {:?}", combination.indices);
            let coefficients = lagrange_coefficients(&combination.indices).unwrap();
            let expected: Vec<Vec<u8>> = combination
                .lagrange_coefficients
                .iter()
                .map(|c| bytes(c))
                .collect();
            assert_eq!(
                coefficients.iter().map(|c| c.to_vec()).collect::<Vec<_>>(),
                expected,
                "{what}"
            );

            let partials = partials_of(&case, &combination.indices);
            let count = combination.indices.len() as u64;
            let combined = combine_signatures(&partials, count).unwrap();
            assert_eq!(
                combined.to_string(),
                combination.combined_signature,
                "{what}"
            );
            assert_eq!(
                combined.to_string() == case.combined_signature,
                combination.equals_group_signature,
                "{what}"
            );
            assert_eq!(
                combined.verify(&group_pubkey, &message),
                combination.equals_group_signature
            );
            if combination.equals_group_signature {
                // The fast path accepts at once with the case's real threshold.
                let fast = combine_and_verify(
                    &group_pubkey,
                    &message,
                    &partials,
                    &pubshares_of(&case),
                    case.threshold,
                );
                assert_eq!(fast.unwrap(), combined, "{what}");
            } else {
                assert!(matches!(
                    combine_signatures(&partials, case.threshold),
                    Err(ThresholdError::NotEnoughShares { .. })
                ));
            }
            checked += 1;
        }
    }
    assert!(checked >= 8 * 5 * 8, "only {checked} combinations");
}

#[test]
fn oracle_corrupted_partials() {
    let mut methods = Vec::new();
    for (name, case) in all_cases()
        .into_iter()
        .filter(|(_, c)| c.corrupted_partial.is_some())
    {
        let corrupted = case.corrupted_partial.as_ref().unwrap();
        assert_eq!(case.kind, "raw_message_corrupted_partial");
        let message = bytes(&case.signing_root);
        let group_pubkey: PublicKey = case.group_pubkey.parse().unwrap();
        let pubshares = pubshares_of(&case);
        let decoded = corrupted.signature.parse::<Signature>();
        assert_eq!(
            decoded.is_ok(),
            corrupted.decodes_as_g2_subgroup_point,
            "{name}"
        );
        let excluded = &corrupted.combined_excluding_corrupted;
        let honest = partials_of(&case, &excluded.indices);
        assert!(excluded.verifies_against_group_pubkey);
        assert_eq!(
            combine_signatures(&honest, case.threshold)
                .unwrap()
                .to_string(),
            excluded.combined_signature,
            "{name}"
        );
        match corrupted.method.as_str() {
            "wrong_message" => {
                let included = corrupted.combined_including_corrupted.as_ref().unwrap();
                let partials = partials_of(&case, &included.indices);
                let combined = combine_signatures(&partials, case.threshold).unwrap();
                assert_eq!(combined.to_string(), included.combined_signature, "{name}");
                assert!(!included.verifies_against_group_pubkey);
                assert!(!combined.verify(&group_pubkey, &message));
                // All partials, bad one first: the fast path names it and
                // recovers from the honest rest.
                let mut order = vec![corrupted.index];
                order.extend((1..=case.total).filter(|i| *i != corrupted.index));
                let all = partials_of(&case, &order);
                let outcome =
                    combine_and_verify(&group_pubkey, &message, &all, &pubshares, case.threshold);
                let expected_recovered: Signature = case.combined_signature.parse().unwrap();
                assert_eq!(
                    outcome.unwrap_err(),
                    ThresholdError::InvalidPartials {
                        indices: vec![corrupted.index],
                        recovered: Some(Box::new(expected_recovered))
                    },
                    "{name}"
                );
                // Exactly t partials with one bad: named, nothing recovered.
                let outcome = combine_and_verify(
                    &group_pubkey,
                    &message,
                    &partials,
                    &pubshares,
                    case.threshold,
                );
                assert_eq!(
                    outcome.unwrap_err(),
                    ThresholdError::InvalidPartials {
                        indices: vec![corrupted.index],
                        recovered: None
                    }
                );
            }
            "bit_flip" => {
                assert!(corrupted.combined_including_corrupted.is_none());
                assert!(matches!(
                    decoded,
                    Err(CryptoError::NotOnCurve { .. }
                        | CryptoError::NotInSubgroup { .. }
                        | CryptoError::BadEncoding { .. })
                ));
            }
            other => panic!("{name}: unknown corruption {other}"),
        }
        methods.push(corrupted.method.clone());
    }
    methods.sort();
    methods.dedup();
    assert_eq!(methods, ["bit_flip", "wrong_message"]);
}

/// The fixed cross-implementation vector (Obol's "hello obol!" test): any 3 of
/// 5 random shares combine to the same signature.
#[test]
fn cross_implementation_vector() {
    let group = secret("0x7356c7dab0220088158a8bba45894b164c04cf7de83149e2c4fab381e765ff38");
    let expected = "0xb46736c3a1fb5d7977acc6abf3cb3a10fd1a5aed301437022f28cf616326186654d747fda7cd530c2bf18c640e4c024b01d7ba38d90e4abe0cc5356ef63b8e20f717ef0a1f68c3292bd62b4f891345ecafa89a8604f8f6c3ce193dc239215adf";
    let message = b"hello obol!";
    let shares = split_secret(&group, 3, 5).unwrap();
    let partials: Vec<(u64, Signature)> = shares
        .iter()
        .map(|(index, share)| (*index, share.sign(message)))
        .collect();
    for chosen in [[0, 1, 2], [2, 3, 4], [4, 0, 2], [1, 3, 4]] {
        let subset: Vec<(u64, Signature)> = chosen.iter().map(|&k| partials[k]).collect();
        assert_eq!(
            combine_signatures(&subset, 3).unwrap().to_string(),
            expected
        );
    }
}

#[test]
fn large_thresholds_use_field_coefficients() {
    // 40 indices overflow the integer weights; the field path must agree.
    let group = SecretKey::random();
    let shares = split_secret(&group, 40, 45).unwrap();
    let partials: Vec<(u64, Signature)> = shares
        .iter()
        .skip(5)
        .map(|(index, share)| (*index, share.sign(b"m")))
        .collect();
    assert_eq!(combine_signatures(&partials, 40).unwrap(), group.sign(b"m"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn any_t_of_n_reproduce_the_group_signature(
        (threshold, total, order) in (2u64..=7).prop_flat_map(|t| (Just(t), t..=10))
            .prop_flat_map(|(t, n)| (Just(t), Just(n), Just((1..=n).collect::<Vec<u64>>()).prop_shuffle())),
    ) {
        let group = SecretKey::random();
        let message = b"selection proof root";
        let shares = split_secret(&group, threshold, total).unwrap();
        let partial = |index: u64| {
            let (_, share) = shares.iter().find(|(i, _)| *i == index).unwrap();
            (index, share.sign(message))
        };
        let t = threshold as usize;
        let chosen: Vec<(u64, Signature)> = order[..t].iter().map(|&i| partial(i)).collect();
        prop_assert_eq!(combine_signatures(&chosen, threshold).unwrap(), group.sign(message));
        let too_few = &chosen[..t - 1];
        let interpolated = combine_signatures(too_few, threshold - 1).unwrap();
        prop_assert_ne!(interpolated, group.sign(message));
    }
}

/// A fresh 3-of-4 sharing and every share's partial signature of `b"m"`.
struct Sample {
    group: SecretKey,
    shares: Vec<(u64, SecretKey)>,
    partials: Vec<(u64, Signature)>,
}

fn sample_partials() -> Sample {
    let group = SecretKey::random();
    let shares = split_secret(&group, 3, 4).unwrap();
    let partials = shares.iter().map(|(i, s)| (*i, s.sign(b"m"))).collect();
    Sample {
        group,
        shares,
        partials,
    }
}

#[test]
fn errors_name_the_culprit() {
    let Sample {
        group,
        shares,
        partials,
    } = sample_partials();
    let mut duplicate = partials.clone();
    duplicate[2].0 = 1;
    assert_eq!(
        combine_signatures(&duplicate, 3).unwrap_err(),
        ThresholdError::DuplicateIndex { index: 1 }
    );
    let mut zero = partials.clone();
    zero[1].0 = 0;
    assert_eq!(
        combine_signatures(&zero, 3).unwrap_err(),
        ThresholdError::ZeroIndex
    );
    assert_eq!(
        combine_signatures(&partials[..2], 3).unwrap_err(),
        ThresholdError::NotEnoughShares { have: 2, need: 3 }
    );
    assert_eq!(
        recover_secret(&shares[..2], 3).unwrap_err(),
        ThresholdError::NotEnoughShares { have: 2, need: 3 }
    );
    assert_eq!(
        split_secret(&group, 5, 4).unwrap_err(),
        ThresholdError::InvalidThreshold {
            threshold: 5,
            total: 4
        }
    );
    assert_eq!(
        split_secret(&group, 1, 4).unwrap_err(),
        ThresholdError::InvalidThreshold {
            threshold: 1,
            total: 4
        }
    );
    assert_eq!(
        split_secret(&group, 3, 5000).unwrap_err(),
        ThresholdError::TooManyShares { total: 5000 }
    );
    let mut far = partials.clone();
    far[0].0 = u64::MAX;
    assert_eq!(
        combine_signatures(&far, 3).unwrap_err(),
        ThresholdError::IndexTooLarge { index: u64::MAX }
    );
    // {1, 2} weighs 2, -1: a point at index 1 and its double at index 2 cancel.
    let sigma = partials[0].1;
    let doubled = dv_aggregator::crypto::aggregate_signatures(&[sigma, sigma]).unwrap();
    assert_eq!(
        combine_signatures(&[(1, sigma), (2, doubled)], 2).unwrap_err(),
        ThresholdError::Infinity {
            indices: vec![1, 2]
        }
    );
    let scalar = |value: u8| {
        let mut bytes = [0u8; 32];
        bytes[31] = value;
        SecretKey::from_bytes(&bytes).unwrap().public_key()
    };
    assert_eq!(
        recover_public_key(&[(1, scalar(1)), (2, scalar(2))], 2).unwrap_err(),
        ThresholdError::Infinity {
            indices: vec![1, 2]
        }
    );
}

#[test]
fn fast_path_reports_unknown_shares_and_mismatched_keys() {
    let Sample {
        group,
        shares,
        partials,
    } = sample_partials();
    let pubshares: HashMap<u64, PublicKey> =
        shares.iter().map(|(i, s)| (*i, s.public_key())).collect();
    let group_pubkey = group.public_key();
    assert_eq!(
        combine_and_verify(&group_pubkey, b"m", &partials, &pubshares, 3).unwrap(),
        group.sign(b"m")
    );
    let mut fewer = pubshares.clone();
    fewer.remove(&4);
    assert_eq!(
        combine_and_verify(&group_pubkey, b"m", &partials, &fewer, 3).unwrap_err(),
        ThresholdError::UnknownShare { index: 4 }
    );
    let other = SecretKey::random().public_key();
    assert_eq!(
        combine_and_verify(&other, b"m", &partials, &pubshares, 3).unwrap_err(),
        ThresholdError::GroupKeyMismatch {
            indices: vec![1, 2, 3],
            group_pubkey: other
        }
    );
}

/// Batch-verifies item i = (pubkeys[i], messages[i], signatures[i]) and, one
/// by one, names the invalid items.
fn check_batch(
    pubkeys: &[PublicKey],
    messages: &[[u8; 32]],
    signatures: &[Signature],
) -> (bool, Vec<usize>) {
    let sets: Vec<SignatureSet> = pubkeys
        .iter()
        .zip(messages)
        .zip(signatures)
        .map(|((pubkey, message), signature)| SignatureSet {
            pubkey,
            message: *message,
            signature,
        })
        .collect();
    (verify_signature_sets(&sets), find_invalid(&sets))
}

/// Six keys; `roots[i % roots.len()]` is item i's message.
fn signed_batch(
    roots: &[[u8; 32]],
) -> (
    Vec<SecretKey>,
    Vec<PublicKey>,
    Vec<[u8; 32]>,
    Vec<Signature>,
) {
    let keys: Vec<SecretKey> = (0..6).map(|_| SecretKey::random()).collect();
    let pubkeys = keys.iter().map(SecretKey::public_key).collect();
    let messages: Vec<[u8; 32]> = (0..6).map(|i| roots[i % roots.len()]).collect();
    let signatures = keys.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
    (keys, pubkeys, messages, signatures)
}

/// Six items over `roots` (item i signs `roots[i % len]`) verify as a batch;
/// after item `bad` signs `roots[wrong]` instead, the batch fails and
/// `find_invalid` names exactly that item.
fn one_bad_item_is_named(roots: &[[u8; 32]], bad: usize, wrong: usize) {
    let (keys, pubkeys, messages, mut signatures) = signed_batch(roots);
    assert_eq!(
        check_batch(&pubkeys, &messages, &signatures),
        (true, vec![])
    );
    signatures[bad] = keys[bad].sign(&roots[wrong]);
    assert_eq!(
        check_batch(&pubkeys, &messages, &signatures),
        (false, vec![bad])
    );
}

#[test]
fn batch_with_one_bad_signature_fails_and_names_it() {
    // Two slots' roots, mixed: items 0, 2, 4 sign root A, items 1, 3, 5 root B.
    one_bad_item_is_named(&[[0xaa; 32], [0xbb; 32]], 3, 0);
    assert!(verify_signature_sets(&[]));
}

#[test]
fn batch_of_distinct_messages_names_the_bad_item() {
    let roots: Vec<[u8; 32]> = (0..6u8).map(|n| [n; 32]).collect();
    one_bad_item_is_named(&roots, 2, 3);
}

#[test]
fn batch_of_swapped_signatures_fails() {
    // Each signature is valid for the other key: sums agree without blinding.
    let (a, b) = (SecretKey::random(), SecretKey::random());
    let (pa, pb) = (a.public_key(), b.public_key());
    let (sa, sb) = (a.sign(&[1; 32]), b.sign(&[1; 32]));
    let swapped = [
        SignatureSet {
            pubkey: &pa,
            message: [1; 32],
            signature: &sb,
        },
        SignatureSet {
            pubkey: &pb,
            message: [1; 32],
            signature: &sa,
        },
    ];
    assert!(!verify_signature_sets(&swapped));
    assert_eq!(find_invalid(&swapped), vec![0, 1]);
}

#[test]
fn fast_path_treats_cancelling_partials_as_bad() {
    // 2-of-3: {1, 2} weighs 2, -1, so σ_2 = 2·σ_1 makes the first two cancel.
    let group = SecretKey::random();
    let shares = split_secret(&group, 2, 3).unwrap();
    let pubshares: HashMap<u64, PublicKey> =
        shares.iter().map(|(i, s)| (*i, s.public_key())).collect();
    let partial = |k: usize| shares[k].1.sign(b"m");
    let doubled = dv_aggregator::crypto::aggregate_signatures(&[partial(0), partial(0)]).unwrap();
    let partials = [(1, partial(0)), (2, doubled), (3, partial(2))];
    assert_eq!(
        combine_and_verify(&group.public_key(), b"m", &partials, &pubshares, 2).unwrap_err(),
        ThresholdError::InvalidPartials {
            indices: vec![2],
            recovered: Some(Box::new(group.sign(b"m")))
        }
    );
    assert_eq!(
        combine_signatures(&partials, 0).unwrap_err(),
        ThresholdError::InvalidThreshold {
            threshold: 0,
            total: 3
        }
    );
}
