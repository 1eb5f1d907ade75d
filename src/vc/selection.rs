//! How the validator client decides "aggregate?" ([`SelectionStrategy`]) and
//! how it reads the answers of a distributed validator's middleware.
//!
//! - `Local`: the validator client holds whole keys and applies the spec's
//!   `is_aggregator` / `is_sync_committee_aggregator` to its own proofs.
//! - `Distributed`: the client holds key shares, so its proofs are partial and
//!   deciding on them would be wrong; it sends them to its beacon node (the
//!   middleware) and decides on what comes back:
//!   - [`SelectionEndpoint::Selections`] (default): the standard
//!     `beacon_committee_selections` / `sync_committee_selections`, which
//!     return the *combined* proofs. Each answer is matched to what was asked
//!     by (validator index, slot[, subcommittee]) — never by position — and
//!     verified against the validator's group key before it is trusted
//!     ([`match_answers`]).
//!   - [`SelectionEndpoint::IsAggregator`]: the seed's
//!     `POST /eth/v1/validator/is_aggregator`, whose reply is booleans in
//!     request order (its contract); a reply of the wrong length fails every
//!     item of that request. It has no sync form, so sync selections still go
//!     through `sync_committee_selections`.
//!
//! [`send_in_parts`] keeps one bad item from failing a whole batch: when the
//! node answers 400 naming bad items, those fail and the rest is sent again.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::str::FromStr;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tracing::warn;

use super::service::{blocking, MAX_ITEMS_PER_REQUEST};
use crate::api::types::SignatureBytes;
use crate::api::ClientError;
use crate::crypto::batch::{find_invalid, verify_signature_sets, SignatureSet};
use crate::crypto::{PublicKey, Signature};
use crate::spec::Root;

/// Which endpoint a validator client in distributed mode asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SelectionEndpoint {
    /// `beacon_committee_selections` / `sync_committee_selections`: combined proofs.
    #[default]
    Selections,
    /// The seed's `is_aggregator`: booleans (sync still asks `sync_committee_selections`).
    IsAggregator,
}

impl FromStr for SelectionEndpoint {
    type Err = String;

    /// `selections` or `is-aggregator`.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "selections" => Ok(SelectionEndpoint::Selections),
            "is-aggregator" => Ok(SelectionEndpoint::IsAggregator),
            _ => Err(format!(
                "unknown selection endpoint {text:?}: expected selections or is-aggregator"
            )),
        }
    }
}

/// How the validator client decides whether a validator aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SelectionStrategy {
    /// Decide on the client's own (whole-key) selection proofs.
    #[default]
    Local,
    /// Send partial proofs to the beacon node (the DV middleware) and decide
    /// on its combined answer.
    Distributed {
        /// The endpoint attestation selections go to.
        endpoint: SelectionEndpoint,
    },
}

/// One item sent to a selections endpoint: the key its answer is matched by
/// and what the answer must verify against.
#[derive(Debug, Clone, Copy)]
pub struct Asked<K> {
    /// `(validator_index, slot)` or `(validator_index, slot, subcommittee_index)`.
    pub key: K,
    /// The validator's group public key.
    pub group_pubkey: PublicKey,
    /// The signing root the selection proof signs.
    pub signing_root: Root,
}

/// Unrequested answers kept by value for logging; beyond that they are counted.
const MAX_UNREQUESTED_KEPT: usize = 16;

/// A selections reply matched to what was asked.
#[derive(Debug)]
pub struct Matched<K> {
    /// Per asked item, in the order asked: the verified combined proof, or why
    /// there is none.
    pub answers: Vec<Result<Signature, String>>,
    /// The first few answers for something not asked (ignored).
    pub unrequested: Vec<K>,
    /// How many answers were for something not asked.
    pub unrequested_count: usize,
}

/// Matches `replies` to `asked` by key and verifies each combined proof
/// against its validator's group key (one batch verification; items are
/// checked one by one only when the batch fails, to name them). A second
/// answer for the same key is ignored like an unrequested one.
pub fn match_answers<K: Copy + Eq + Hash>(
    asked: &[Asked<K>],
    replies: impl IntoIterator<Item = (K, SignatureBytes)>,
) -> Matched<K> {
    let position_of: HashMap<K, usize> = asked
        .iter()
        .enumerate()
        .map(|(position, item)| (item.key, position))
        .collect();
    let mut answers: Vec<Option<Result<Signature, String>>> = vec![None; asked.len()];
    let mut unrequested = Vec::new();
    let mut unrequested_count = 0usize;
    for (key, proof) in replies {
        let Some(slot) = position_of.get(&key).and_then(|&p| answers.get_mut(p)) else {
            unrequested_count = unrequested_count.saturating_add(1);
            if unrequested.len() < MAX_UNREQUESTED_KEPT {
                unrequested.push(key);
            }
            continue;
        };
        if slot.is_some() {
            unrequested_count = unrequested_count.saturating_add(1);
            if unrequested.len() < MAX_UNREQUESTED_KEPT {
                unrequested.push(key);
            }
            continue;
        }
        *slot = Some(
            Signature::from_bytes(&proof.0)
                .map_err(|error| format!("the combined selection proof does not decode: {error}")),
        );
    }
    let mut answers: Vec<Result<Signature, String>> = answers
        .into_iter()
        .map(|answer| {
            answer.unwrap_or_else(|| Err("the beacon node's reply has no answer for it".into()))
        })
        .collect();
    reject_unverified(asked, &mut answers);
    Matched {
        answers,
        unrequested,
        unrequested_count,
    }
}

/// Turns every decoded proof that does not verify against its group key over
/// its signing root into an error.
fn reject_unverified<K>(asked: &[Asked<K>], answers: &mut [Result<Signature, String>]) {
    let decoded: Vec<(usize, Signature)> = answers
        .iter()
        .enumerate()
        .filter_map(|(position, answer)| answer.as_ref().ok().map(|proof| (position, *proof)))
        .collect();
    let sets: Vec<SignatureSet> = decoded
        .iter()
        .map(|(position, proof)| SignatureSet {
            pubkey: &asked[*position].group_pubkey,
            message: asked[*position].signing_root.0,
            signature: proof,
        })
        .collect();
    if verify_signature_sets(&sets) {
        return;
    }
    for invalid in find_invalid(&sets) {
        let position = decoded[invalid].0;
        let item = &asked[position];
        answers[position] = Err(format!(
            "the combined selection proof does not verify against the validator's public key {} over signing root {}",
            item.group_pubkey, item.signing_root
        ));
    }
}

/// What [`send_in_parts`] sent and got back.
#[derive(Debug)]
pub struct Sent<R> {
    /// Positions (in the caller's items) of the items in the request `reply`
    /// answers, in the order sent.
    pub positions: Vec<usize>,
    /// Items the node refused by index, with its message; not sent again.
    pub refused: Vec<(usize, String)>,
    /// The reply to the request of `positions`.
    pub reply: Result<R, ClientError>,
}

/// Sends `items`; if the node answers 400 naming bad items (`failures`), those
/// are refused with the node's message and the rest is sent once more.
pub async fn send_in_parts<T, R, F, Fut>(items: &[T], send: F) -> Sent<R>
where
    T: Clone,
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = Result<R, ClientError>>,
{
    let mut positions: Vec<usize> = (0..items.len()).collect();
    let reply = send(items.to_vec()).await;
    let named = match &reply {
        Err(error) if error.status() == Some(400) && !error.failures().is_empty() => error
            .failures()
            .iter()
            .filter(|failure| failure.index < positions.len())
            .map(|failure| (failure.index, failure.message.clone()))
            .collect::<HashMap<usize, String>>(),
        _ => {
            return Sent {
                positions,
                refused: Vec::new(),
                reply,
            }
        }
    };
    let refused: Vec<(usize, String)> = named
        .iter()
        .map(|(&index, message)| (positions[index], message.clone()))
        .collect();
    positions = positions
        .into_iter()
        .enumerate()
        .filter(|(index, _)| !named.contains_key(index))
        .map(|(_, position)| position)
        .collect();
    if positions.is_empty() {
        return Sent {
            positions,
            refused,
            reply,
        };
    }
    let rest: Vec<T> = positions.iter().map(|&p| items[p].clone()).collect();
    Sent {
        reply: send(rest).await,
        positions,
        refused,
    }
}

/// Sends `items` to a selections endpoint (in requests of at most
/// [`MAX_ITEMS_PER_REQUEST`], all at once, each through [`send_in_parts`]) and
/// matches each reply to `asked` by key, verifying every proof
/// ([`match_answers`], off the async workers). Per item: the verified combined
/// proof or why there is none, with the latency of its request; unrequested
/// answers are logged.
pub(super) async fn ask_selections<T, K, F, Fut>(
    items: &[T],
    asked: &[Asked<K>],
    endpoint: &'static str,
    send: F,
) -> Vec<(Result<Signature, String>, Duration)>
where
    T: Clone,
    K: Copy + Eq + std::hash::Hash + std::fmt::Debug + Send + 'static,
    F: Fn(Vec<T>) -> Fut + Copy,
    Fut: std::future::Future<Output = Result<Vec<(K, SignatureBytes)>, ClientError>>,
{
    let chunks = (0..items.len())
        .step_by(MAX_ITEMS_PER_REQUEST)
        .map(|start| {
            let end = items.len().min(start + MAX_ITEMS_PER_REQUEST);
            async move {
                let started = Instant::now();
                let sent = send_in_parts(&items[start..end], send).await;
                (start, started.elapsed(), sent)
            }
        });
    let mut results: Vec<(Result<Signature, String>, Duration)> =
        vec![(Err("not asked".into()), Duration::ZERO); items.len()];
    for (start, latency, sent) in join_all(chunks).await {
        for (position, message) in sent.refused {
            results[start + position] = (
                Err(format!("{endpoint}: the beacon node refused it: {message}")),
                latency,
            );
        }
        let reply = match sent.reply {
            Ok(reply) => reply,
            Err(error) => {
                for &position in &sent.positions {
                    results[start + position] = (Err(format!("{error}")), latency);
                }
                continue;
            }
        };
        let chunk_asked: Vec<Asked<K>> = sent.positions.iter().map(|&p| asked[start + p]).collect();
        let matched = match blocking(move || match_answers(&chunk_asked, reply)).await {
            Ok(matched) => matched,
            Err(reason) => {
                warn!(%reason, "verifying combined selection proofs failed");
                continue;
            }
        };
        if matched.unrequested_count > 0 {
            warn!(
                endpoint,
                count = matched.unrequested_count,
                first = ?matched.unrequested,
                "the beacon node answered for (validator_index, slot[, subcommittee_index]) that were not asked, or twice; ignored"
            );
        }
        for (&position, answer) in sent.positions.iter().zip(matched.answers) {
            results[start + position] = (answer, latency);
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::IndexedFailure;
    use crate::crypto::SecretKey;

    fn asked(count: u64) -> (Vec<SecretKey>, Vec<Asked<u64>>) {
        let keys: Vec<SecretKey> = (0..count).map(|_| SecretKey::random()).collect();
        let asked = keys
            .iter()
            .zip(0..)
            .map(|(key, slot)| Asked {
                key: slot,
                group_pubkey: key.public_key(),
                signing_root: Root::from([slot as u8; 32]),
            })
            .collect();
        (keys, asked)
    }

    fn proof(key: &SecretKey, item: &Asked<u64>) -> SignatureBytes {
        SignatureBytes(key.sign(item.signing_root.as_slice()).to_bytes())
    }

    #[test]
    fn answers_are_matched_by_key_whatever_their_order() {
        let (keys, asked) = asked(4);
        let replies: Vec<(u64, SignatureBytes)> = keys
            .iter()
            .zip(&asked)
            .rev()
            .map(|(key, item)| (item.key, proof(key, item)))
            .collect();
        let matched = match_answers(&asked, replies);
        for (position, answer) in matched.answers.iter().enumerate() {
            let expected = keys[position].sign(asked[position].signing_root.as_slice());
            assert_eq!(answer.as_ref(), Ok(&expected));
        }
        assert_eq!(matched.unrequested_count, 0);
    }

    #[test]
    fn missing_unrequested_repeated_and_unverified_answers_are_told_apart() {
        let (keys, asked) = asked(4);
        let stranger = SecretKey::random();
        let replies = vec![
            (0, proof(&keys[0], &asked[0])),
            // Item 1: a proof of another item's signing root.
            (1, proof(&keys[1], &asked[2])),
            // Item 2: bytes that are no signature.
            (2, SignatureBytes([0xff; 96])),
            // Item 3: not answered. Then: a key never asked, and item 0 again.
            (9, proof(&stranger, &asked[0])),
            (0, proof(&stranger, &asked[0])),
        ];
        let matched = match_answers(&asked, replies);
        assert!(matched.answers[0].is_ok());
        let error = |p: usize| matched.answers[p].clone().unwrap_err();
        assert!(error(1).contains("does not verify against"), "{}", error(1));
        assert!(error(1).contains(&keys[1].public_key().to_string()));
        assert!(error(2).contains("does not decode"), "{}", error(2));
        assert!(error(3).contains("no answer"), "{}", error(3));
        assert_eq!(matched.unrequested, vec![9, 0]);
        assert_eq!(matched.unrequested_count, 2);
    }

    #[tokio::test]
    async fn a_batch_refused_for_some_items_is_sent_again_without_them() {
        let calls = std::sync::Mutex::new(Vec::new());
        let sent = send_in_parts(&[10, 11, 12, 13], |items: Vec<u32>| {
            calls.lock().unwrap().push(items.clone());
            async move {
                if items.contains(&11) {
                    return Err(ClientError::Status {
                        method: "POST",
                        url: "http://x".into(),
                        status: 400,
                        message: "bad items".into(),
                        failures: vec![
                            IndexedFailure {
                                index: 1,
                                message: "eleven is bad".into(),
                            },
                            IndexedFailure {
                                index: 3,
                                message: "thirteen too".into(),
                            },
                            IndexedFailure {
                                index: 99,
                                message: "not an item".into(),
                            },
                        ],
                    });
                }
                Ok(items.len())
            }
        })
        .await;
        assert_eq!(
            *calls.lock().unwrap(),
            vec![vec![10, 11, 12, 13], vec![10, 12]]
        );
        assert_eq!(sent.positions, vec![0, 2]);
        let mut refused = sent.refused.clone();
        refused.sort();
        assert_eq!(
            refused,
            vec![
                (1, "eleven is bad".to_string()),
                (3, "thirteen too".to_string())
            ]
        );
        assert_eq!(sent.reply.unwrap(), 2);
    }

    #[test]
    fn endpoints_parse_by_their_flag_names() {
        assert_eq!("selections".parse(), Ok(SelectionEndpoint::Selections));
        assert_eq!("is-aggregator".parse(), Ok(SelectionEndpoint::IsAggregator));
        assert!("both".parse::<SelectionEndpoint>().is_err());
    }
}
