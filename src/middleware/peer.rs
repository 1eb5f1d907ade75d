//! The middleware peer protocol: the wire format of `POST /dv/v1/partials`
//! (operators exchange partial signatures: selection proofs, attestations
//! and `AggregateAndProof`s) and of `POST /dv/v1/resend`
//! (a node that restarted asks a peer to send again every partial it holds
//! from a slot on), and how a request is authenticated with the node keys of
//! the cluster lock. The server side is
//! in [`super::peer_server`], the client side in [`super::peer_client`].
//!
//! Authentication: the sender signs `sha256(PEER_SIGNING_PREFIX ||
//! to_operator as 8 big-endian bytes || body)` with its BLS node key, over the
//! exact request body bytes, and sends its operator index and that signature
//! in [`OPERATOR_HEADER`] and [`SIGNATURE_HEADER`]. The recipient's index in
//! the message means a request for one peer cannot be replayed to another.
//! There is no replay window in time: a partial is self-authenticating (it
//! verifies against its public share) and storing it again is idempotent, so
//! a replayed request can only repeat what its sender already said; the node
//! key only keeps strangers out. For the same reason the message carries no
//! send time (`sent_at_slot`): a receiver refuses duties too far from its
//! own clock per partial, in the store, not per message.

use serde::{Deserialize, Serialize};
use serde_utils::quoted_u64::{require_quotes as quoted_u64, Quoted};
use sha2::{Digest, Sha256};

use super::duty::DutyKind;
use crate::api::types::{PublicKeyBytes, SignatureBytes};
use crate::cluster::{ClusterLock, NodeIdentity};
use crate::crypto::{PublicKey, Signature};
use crate::spec::{Root, Slot};

/// The path of the peer endpoint that takes partials.
pub const PARTIALS_PATH: &str = "/dv/v1/partials";
/// The path of the peer endpoint that asks for a re-send (catch-up after a restart).
pub const RESEND_PATH: &str = "/dv/v1/resend";
/// The path of the peer endpoint that takes agreement (QBFT) messages.
pub const CONSENSUS_PATH: &str = "/dv/v1/consensus";
/// Most agreement messages in one request.
pub const MAX_CONSENSUS_MESSAGES: usize = 256;
/// Header carrying the sender's operator index (decimal).
pub const OPERATOR_HEADER: &str = "x-dv-operator";
/// Header carrying the sender's node-key signature (`0x` + 96 bytes hex).
pub const SIGNATURE_HEADER: &str = "x-dv-signature";
/// Domain separation of the request signature from every other use of a
/// node key.
pub const PEER_SIGNING_PREFIX: &[u8] = b"dv-aggregator/peer/v1";
/// Most partials in one message: one per validator share of a 64k-key
/// cluster for one duty.
pub const MAX_PARTIALS_PER_MESSAGE: usize = 65_536;
/// Largest accepted request body. A partial takes up to about 512 bytes of
/// JSON, so a message of [`MAX_PARTIALS_PER_MESSAGE`] partials would not fit:
/// senders split their batches (see
/// [`super::peer_client::PARTIALS_PER_REQUEST`]); 16 MiB bounds the memory
/// of one request.
pub const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// Why a peer request does not authenticate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The operator header is absent.
    #[error("missing {OPERATOR_HEADER} header")]
    MissingOperator,
    /// The operator header is not a decimal u64.
    #[error("{OPERATOR_HEADER} header {0:?} is not an operator index")]
    BadOperator(String),
    /// The signature header is absent.
    #[error("missing {SIGNATURE_HEADER} header from operator {operator}")]
    MissingSignature {
        /// The claimed sender.
        operator: u64,
    },
    /// The signature header does not decode to a G2 point.
    #[error("{SIGNATURE_HEADER} header of operator {operator} does not decode: {reason}")]
    BadSignatureEncoding {
        /// The claimed sender.
        operator: u64,
        /// The decoding error.
        reason: String,
    },
    /// The lock has no operator with this index.
    #[error("operator {operator} is not in the cluster lock")]
    UnknownOperator {
        /// The claimed sender.
        operator: u64,
    },
    /// The claimed sender is this node itself.
    #[error("operator {operator} is this node's own index")]
    OwnIndex {
        /// The claimed sender.
        operator: u64,
    },
    /// The lock identifies the operator by a Charon ENR, which cannot sign
    /// our requests.
    #[error("operator {operator} has an ENR identity in the lock; the peer protocol authenticates BLS node keys only")]
    NotBlsIdentity {
        /// The claimed sender.
        operator: u64,
    },
    /// The signature does not verify against the operator's node key.
    #[error("signature of operator {operator} does not verify against its node key")]
    InvalidSignature {
        /// The claimed sender.
        operator: u64,
    },
}

impl AuthError {
    /// The claimed sender, when the request named one.
    pub fn operator(&self) -> Option<u64> {
        match self {
            AuthError::MissingOperator | AuthError::BadOperator(_) => None,
            AuthError::MissingSignature { operator }
            | AuthError::BadSignatureEncoding { operator, .. }
            | AuthError::UnknownOperator { operator }
            | AuthError::OwnIndex { operator }
            | AuthError::NotBlsIdentity { operator }
            | AuthError::InvalidSignature { operator } => Some(*operator),
        }
    }

    /// Whether the sender failed to prove who it is (401), rather than being
    /// someone this node does not talk to (403).
    pub fn is_unauthenticated(&self) -> bool {
        matches!(
            self,
            AuthError::MissingOperator
                | AuthError::BadOperator(_)
                | AuthError::MissingSignature { .. }
                | AuthError::BadSignatureEncoding { .. }
                | AuthError::InvalidSignature { .. }
        )
    }
}

/// What a node-key signature of a request body signs: binds the protocol,
/// the recipient and the exact body bytes.
pub fn peer_signing_message(to_operator: u64, body: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(PEER_SIGNING_PREFIX);
    hasher.update(to_operator.to_be_bytes());
    hasher.update(body);
    hasher.finalize().into()
}

/// Who a request claims to come from, checked against the lock, with its
/// signature still to be verified over the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCredentials {
    /// The claimed sender, a BLS-identified peer in the lock.
    pub operator: u64,
    node_key: PublicKey,
    signature: Signature,
}

impl PeerCredentials {
    /// Checks the headers of a request to `self_index` against the lock: the
    /// sender is a BLS-identified operator other than this node, and the
    /// signature decodes. Cheap, so strangers are refused before their body
    /// is read.
    pub fn from_headers(
        lock: &ClusterLock,
        self_index: u64,
        operator_header: Option<&str>,
        signature_header: Option<&str>,
    ) -> Result<PeerCredentials, AuthError> {
        let operator_text = operator_header.ok_or(AuthError::MissingOperator)?;
        let operator: u64 = operator_text
            .trim()
            .parse()
            .map_err(|_| AuthError::BadOperator(operator_text.chars().take(32).collect()))?;
        let node_key = *bls_node_key(lock, self_index, operator)?;
        let signature_text = signature_header.ok_or(AuthError::MissingSignature { operator })?;
        let signature =
            signature_text
                .trim()
                .parse()
                .map_err(
                    |error: crate::crypto::CryptoError| AuthError::BadSignatureEncoding {
                        operator,
                        reason: error.to_string(),
                    },
                )?;
        Ok(PeerCredentials {
            operator,
            node_key,
            signature,
        })
    }

    /// Verifies the signature over the exact `body` sent to `self_index`;
    /// returns the authenticated sender.
    pub fn verify(&self, self_index: u64, body: &[u8]) -> Result<u64, AuthError> {
        let message = peer_signing_message(self_index, body);
        if self.signature.verify(&self.node_key, &message) {
            Ok(self.operator)
        } else {
            Err(AuthError::InvalidSignature {
                operator: self.operator,
            })
        }
    }
}

/// The BLS node key of `operator`, a peer of `self_index`.
fn bls_node_key(
    lock: &ClusterLock,
    self_index: u64,
    operator: u64,
) -> Result<&PublicKey, AuthError> {
    if operator == self_index {
        return Err(AuthError::OwnIndex { operator });
    }
    match lock.operator(operator).map(|o| &o.identity) {
        None => Err(AuthError::UnknownOperator { operator }),
        Some(NodeIdentity::Enr(_)) => Err(AuthError::NotBlsIdentity { operator }),
        Some(NodeIdentity::Bls(key)) => Ok(key),
    }
}

/// One partial selection proof: operator `share_index`'s signature share of
/// `signing_root` for validator `validator_pubkey` (the group key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "PartialItemJson<PublicKey, Signature>",
    into = "PartialItemJson<PublicKey, Signature>"
)]
pub struct PartialItem {
    /// The duty and, for sync selections, the subcommittee.
    pub duty: DutyKind,
    /// The slot of the duty.
    pub slot: Slot,
    /// The validator's group public key.
    pub validator_pubkey: PublicKey,
    /// The key share that made `signature`.
    pub share_index: u64,
    /// What `signature` signs.
    pub signing_root: Root,
    /// The partial signature.
    pub signature: Signature,
}

/// A [`PartialItem`] as it came over the wire, its key and signature not yet
/// decoded: a receiver looks the key up among its lock's validators instead
/// of decompressing it, and decodes a message's signatures on all cores.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "PartialItemJson<PublicKeyBytes, SignatureBytes>")]
pub struct RawPartialItem {
    /// The duty and, for sync selections, the subcommittee.
    pub duty: DutyKind,
    /// The slot of the duty.
    pub slot: Slot,
    /// The validator's group public key, compressed.
    pub validator_pubkey: PublicKeyBytes,
    /// The key share that made `signature`.
    pub share_index: u64,
    /// What `signature` signs.
    pub signing_root: Root,
    /// The partial signature, compressed.
    pub signature: SignatureBytes,
}

impl RawPartialItem {
    /// The item with its key and signature decoded.
    pub fn decoded(&self, validator_pubkey: PublicKey, signature: Signature) -> PartialItem {
        PartialItem {
            duty: self.duty,
            slot: self.slot,
            validator_pubkey,
            share_index: self.share_index,
            signing_root: self.signing_root,
            signature,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum DutyName {
    AttestationSelection,
    SyncSelection,
    Attestation,
    AggregateAndProof,
}

/// The JSON shape of a partial, over decoded (`PublicKey`, `Signature`) or
/// raw (`PublicKeyBytes`, `SignatureBytes`) key and signature:
/// `subcommittee_index` is present for sync selections only.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialItemJson<K, S> {
    duty: DutyName,
    #[serde(with = "quoted_u64")]
    slot: Slot,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subcommittee_index: Option<Quoted<u64>>,
    validator_pubkey: K,
    #[serde(with = "quoted_u64")]
    share_index: u64,
    #[serde(with = "serde_utils::b256_hex")]
    signing_root: Root,
    signature: S,
}

impl<K, S> PartialItemJson<K, S> {
    /// The duty the `duty` name and `subcommittee_index` describe together.
    fn duty_kind(&self) -> Result<DutyKind, String> {
        match (self.duty, &self.subcommittee_index) {
            (DutyName::AttestationSelection, None) => Ok(DutyKind::AttestationSelection),
            (DutyName::SyncSelection, Some(index)) => Ok(DutyKind::SyncSelection {
                subcommittee_index: index.value,
            }),
            (DutyName::Attestation, None) => Ok(DutyKind::Attestation),
            (DutyName::AggregateAndProof, None) => Ok(DutyKind::AggregateAndProof),
            (
                DutyName::AttestationSelection
                | DutyName::Attestation
                | DutyName::AggregateAndProof,
                Some(_),
            ) => Err(format!("{:?} takes no subcommittee_index", self.duty)),
            (DutyName::SyncSelection, None) => {
                Err("sync_selection needs a subcommittee_index".into())
            }
        }
    }

    fn from_parts(
        duty: DutyKind,
        slot: Slot,
        validator_pubkey: K,
        share_index: u64,
        signing_root: Root,
        signature: S,
    ) -> Self {
        let (duty, subcommittee_index) = match duty {
            DutyKind::AttestationSelection => (DutyName::AttestationSelection, None),
            DutyKind::Attestation => (DutyName::Attestation, None),
            DutyKind::AggregateAndProof => (DutyName::AggregateAndProof, None),
            DutyKind::SyncSelection { subcommittee_index } => (
                DutyName::SyncSelection,
                Some(Quoted {
                    value: subcommittee_index,
                }),
            ),
        };
        PartialItemJson {
            duty,
            slot,
            subcommittee_index,
            validator_pubkey,
            share_index,
            signing_root,
            signature,
        }
    }
}

impl TryFrom<PartialItemJson<PublicKey, Signature>> for PartialItem {
    type Error = String;

    fn try_from(json: PartialItemJson<PublicKey, Signature>) -> Result<Self, Self::Error> {
        Ok(PartialItem {
            duty: json.duty_kind()?,
            slot: json.slot,
            validator_pubkey: json.validator_pubkey,
            share_index: json.share_index,
            signing_root: json.signing_root,
            signature: json.signature,
        })
    }
}

impl TryFrom<PartialItemJson<PublicKeyBytes, SignatureBytes>> for RawPartialItem {
    type Error = String;

    fn try_from(
        json: PartialItemJson<PublicKeyBytes, SignatureBytes>,
    ) -> Result<Self, Self::Error> {
        Ok(RawPartialItem {
            duty: json.duty_kind()?,
            slot: json.slot,
            validator_pubkey: json.validator_pubkey,
            share_index: json.share_index,
            signing_root: json.signing_root,
            signature: json.signature,
        })
    }
}

impl From<PartialItem> for PartialItemJson<PublicKey, Signature> {
    fn from(item: PartialItem) -> Self {
        PartialItemJson::from_parts(
            item.duty,
            item.slot,
            item.validator_pubkey,
            item.share_index,
            item.signing_root,
            item.signature,
        )
    }
}

/// The body of `POST /dv/v1/partials`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartialsMessage<'a> {
    /// The sending operator; must equal [`OPERATOR_HEADER`].
    #[serde(with = "quoted_u64")]
    pub from_operator: u64,
    /// The partials, answered in this order.
    pub partials: &'a [PartialItem],
}

/// What the receiving node did with one partial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ItemOutcome {
    /// Stored.
    Accepted,
    /// Already stored; nothing changed.
    Duplicate,
    /// Not stored, for the reason given.
    Rejected {
        /// Why.
        message: String,
    },
}

/// The body of `POST /dv/v1/resend`: send me again every partial you hold
/// for duties at or after `min_slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResendRequest {
    /// The asking operator; must equal [`OPERATOR_HEADER`].
    #[serde(with = "quoted_u64")]
    pub from_operator: u64,
    /// The first slot whose duties to re-send.
    #[serde(with = "quoted_u64")]
    pub min_slot: Slot,
}

/// The body of `POST /dv/v1/consensus`: agreement messages, each signed by
/// its own source (they may carry other nodes' messages as justification);
/// the request's node-key signature only says who delivered them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusMessages {
    /// The sending operator; must equal [`OPERATOR_HEADER`].
    #[serde(with = "quoted_u64")]
    pub from_operator: u64,
    /// The messages, answered in this order; their schema is the agreement's.
    pub messages: Vec<Box<serde_json::value::RawValue>>,
}

/// Where the peer endpoints deliver authenticated requests: the
/// middleware's partial store and its exchange with the peers.
pub trait PartialSink: Send + Sync {
    /// Takes the partials `from_operator` sent, and answers one outcome per
    /// item, in order. Called off the async workers: it may verify
    /// signatures.
    fn accept(&self, from_operator: u64, items: Vec<PartialItem>) -> Vec<ItemOutcome>;

    /// `Err(reason)` while the node cannot take partials yet (e.g. it has not
    /// learnt the chain from its beacon node): the endpoints answer 503, which
    /// the sender retries.
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }

    /// Counts `count` partials of `from_operator` that the endpoint refused
    /// before the sink saw them (malformed, of a validator outside the lock,
    /// a signature that does not decode), so the sender is named for them too.
    fn refused(&self, from_operator: u64, count: usize) {
        let _ = (from_operator, count);
    }

    /// Operator `from_operator` asks for every partial this node holds at or
    /// after `min_slot` (it restarted); the node sends them in the background.
    fn resend_requested(&self, from_operator: u64, min_slot: Slot) {
        let _ = (from_operator, min_slot);
    }

    /// Takes the agreement messages `from_operator` delivered and answers one
    /// outcome per message, in order. Called off the async workers.
    fn consensus(
        &self,
        from_operator: u64,
        messages: Vec<Box<serde_json::value::RawValue>>,
    ) -> Vec<ItemOutcome> {
        let _ = from_operator;
        messages
            .iter()
            .map(|_| ItemOutcome::Rejected {
                message: "this node takes no agreement messages".into(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_message_binds_recipient_and_body() {
        let base = peer_signing_message(2, b"{}");
        assert_ne!(base, peer_signing_message(3, b"{}"));
        assert_ne!(base, peer_signing_message(2, b"{ }"));
        let mut manual = Sha256::new();
        manual.update(b"dv-aggregator/peer/v1");
        manual.update([0, 0, 0, 0, 0, 0, 0, 2]);
        manual.update(b"{}");
        assert_eq!(base, <[u8; 32]>::from(manual.finalize()));
    }

    #[test]
    fn outcomes_have_the_documented_shape() {
        let outcomes = vec![
            ItemOutcome::Accepted,
            ItemOutcome::Duplicate,
            ItemOutcome::Rejected {
                message: "bad".into(),
            },
        ];
        let json = serde_json::to_string(&outcomes).unwrap();
        assert_eq!(
            json,
            r#"[{"status":"accepted"},{"status":"duplicate"},{"status":"rejected","message":"bad"}]"#
        );
        assert_eq!(
            serde_json::from_str::<Vec<ItemOutcome>>(&json).unwrap(),
            outcomes
        );
    }

    fn item(duty: DutyKind) -> PartialItem {
        let key = crate::crypto::SecretKey::random();
        PartialItem {
            duty,
            slot: 12,
            validator_pubkey: key.public_key(),
            share_index: 3,
            signing_root: Root::repeat_byte(0xab),
            signature: key.sign(b"root"),
        }
    }

    #[test]
    fn partials_follow_the_beacon_api_conventions() {
        let sync = item(DutyKind::SyncSelection {
            subcommittee_index: 2,
        });
        let json = serde_json::to_value(&sync).unwrap();
        assert_eq!(json["duty"], "sync_selection");
        assert_eq!(json["slot"], "12");
        assert_eq!(json["subcommittee_index"], "2");
        assert_eq!(json["share_index"], "3");
        assert_eq!(json["signing_root"], format!("0x{}", "ab".repeat(32)));
        assert_eq!(json["signature"], sync.signature.to_string());
        assert_eq!(serde_json::from_value::<PartialItem>(json).unwrap(), sync);

        let attestation = item(DutyKind::AttestationSelection);
        let json = serde_json::to_value(&attestation).unwrap();
        assert_eq!(json["duty"], "attestation_selection");
        assert!(json.get("subcommittee_index").is_none());
        let message = PartialsMessage {
            from_operator: 4,
            partials: std::slice::from_ref(&attestation),
        };
        assert_eq!(serde_json::to_value(message).unwrap()["from_operator"], "4");
    }

    #[test]
    fn partials_of_the_wrong_shape_do_not_parse() {
        let sync = serde_json::to_value(item(DutyKind::SyncSelection {
            subcommittee_index: 2,
        }))
        .unwrap();
        let edits: [(&str, serde_json::Value); 4] = [
            ("duty", "attestation_selection".into()),
            ("slot", 12.into()),
            ("duty", "aggregate".into()),
            ("extra", "1".into()),
        ];
        for (field, value) in edits {
            let mut bad = sync.clone();
            bad[field] = value;
            assert!(
                serde_json::from_value::<PartialItem>(bad).is_err(),
                "{field}"
            );
        }
        let mut no_subcommittee = sync;
        no_subcommittee
            .as_object_mut()
            .unwrap()
            .remove("subcommittee_index");
        assert!(serde_json::from_value::<PartialItem>(no_subcommittee).is_err());
    }
}
