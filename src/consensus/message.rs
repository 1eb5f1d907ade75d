//! The QBFT wire messages: what is signed, how it is hashed, how it travels.
//!
//! A message is a [`MessageBody`] (type, instance, source, round and the
//! digests of the values it names), the source's signature over the body's
//! [digest](MessageBody::digest), the full value the body names and, for the
//! types that need one, a justification: other sources' signed bodies
//! ([`SignedBody`], without their own values or justifications).
//!
//! The signature covers the body only. Values are bound to it by their
//! digest ([`Value::digest`]), and every justification entry carries its own
//! source's signature, so a relay can neither change a value nor forge an
//! entry; a justification is checked on its own merits by the receiver
//! ([`super::qbft`]).
//!
//! The body digest is SHA-256 over a fixed binary encoding (not JSON, whose
//! byte form is not canonical):
//!
//! ```text
//! "dv-aggregator/qbft/v1/message"       29 bytes, domain separation
//! kind                                   1 byte  (1 PRE-PREPARE, 2 PREPARE, 3 COMMIT, 4 ROUND-CHANGE, 5 DECIDED)
//! instance                              32 bytes
//! source                                 8 bytes big-endian
//! round                                  8 bytes big-endian
//! value present                          1 byte  (0 or 1)
//! value digest                          32 bytes (zeros when absent)
//! prepared present                       1 byte  (0 or 1)
//! prepared round                         8 bytes big-endian (zeros when absent)
//! prepared value digest                 32 bytes (zeros when absent)
//! ```
//!
//! Messages travel as JSON. [`Message::decode_json`] bounds the body length;
//! deserialisation alone bounds justification lengths and signature sizes.

use std::fmt;

use serde::de::{self, DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// An operator's index in the cluster: `1..=n`, as in the cluster lock.
pub type NodeIndex = u64;
/// A QBFT round; the first round is 1.
pub type Round = u64;

/// Most nodes of one cluster the core accepts (bounds every per-source buffer).
pub const MAX_NODES: u64 = 256;
/// Most entries of one justification on the wire: a proposal carries at most
/// one ROUND-CHANGE and one PREPARE per node.
pub const MAX_JUSTIFICATION: usize = 2 * MAX_NODES as usize;
/// Longest signature accepted (a BLS signature is 96 bytes).
pub const MAX_SIGNATURE_BYTES: usize = 128;
/// Largest JSON message [`Message::decode_json`] reads.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Domain separation of a message digest from every other use of a node key.
const MESSAGE_DOMAIN: &[u8] = b"dv-aggregator/qbft/v1/message";
/// Domain separation of [`InstanceId::derive`].
const INSTANCE_DOMAIN: &[u8] = b"dv-aggregator/qbft/v1/instance";

/// A value the cluster agrees on (e.g. the attestation data of a slot).
///
/// Values are compared by digest only: two values with one digest are one
/// value to the protocol.
pub trait Value: Clone + fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// A canonical SHA-256 digest of the value (e.g. its SSZ hash tree root or
    /// SHA-256 of a fixed encoding), equal on every node for equal values.
    fn digest(&self) -> [u8; 32];
}

/// A node's signing key and the cluster's verifying keys, over 32-byte
/// digests. The middleware implements it with the cluster's BLS node keys.
pub trait NodeKeys: Send + Sync {
    /// This node's signature over `digest`.
    fn sign(&self, digest: &[u8; 32]) -> SignatureBytes;
    /// Whether `signature` is `source`'s signature over `digest` (false for an
    /// unknown source or a signature that does not decode).
    fn verify(&self, source: NodeIndex, digest: &[u8; 32], signature: &SignatureBytes) -> bool;
}

/// A SHA-256 digest of a value or a message body; `0x`-hex in JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; 32]);

/// The identity of one consensus instance (e.g. one duty kind at one slot);
/// `0x`-hex in JSON. Every message names it and is refused by other instances.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InstanceId(pub [u8; 32]);

impl InstanceId {
    /// `sha256(domain || len(label) as 8 bytes big-endian || label || number
    /// as 8 bytes big-endian)`: an instance per label (e.g. a duty kind) and
    /// number (e.g. a slot).
    pub fn derive(label: &str, number: u64) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(INSTANCE_DOMAIN);
        hasher.update((label.len() as u64).to_be_bytes());
        hasher.update(label.as_bytes());
        hasher.update(number.to_be_bytes());
        Self(hasher.finalize().into())
    }
}

/// A signature as opaque bytes (at most [`MAX_SIGNATURE_BYTES`]); `0x`-hex in
/// JSON. Its scheme is the [`NodeKeys`] implementation's business.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct SignatureBytes(Vec<u8>);

impl SignatureBytes {
    /// Wraps `bytes`, refusing more than [`MAX_SIGNATURE_BYTES`].
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() > MAX_SIGNATURE_BYTES {
            return Err(format!(
                "signature of {} bytes exceeds {MAX_SIGNATURE_BYTES}",
                bytes.len()
            ));
        }
        Ok(Self(bytes))
    }

    /// The signature's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for SignatureBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(&self.0))
    }
}

impl fmt::Debug for SignatureBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

macro_rules! hex32 {
    ($type:ident) => {
        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "0x{}", hex::encode(self.0))
            }
        }

        impl fmt::Debug for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let bytes = deserialize_hex(deserializer, HexLength::Exactly(32))?;
                let mut array = [0u8; 32];
                array.copy_from_slice(&bytes);
                Ok(Self(array))
            }
        }
    };
}

hex32!(Digest);
hex32!(InstanceId);

impl Serialize for SignatureBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SignatureBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_hex(deserializer, HexLength::AtMost(MAX_SIGNATURE_BYTES)).map(Self)
    }
}

/// How many bytes a hex string may hold.
#[derive(Clone, Copy)]
enum HexLength {
    Exactly(usize),
    AtMost(usize),
}

/// `0x`-hex of the bytes `length` allows; the string's length is checked
/// before it is decoded.
fn deserialize_hex<'de, D: Deserializer<'de>>(
    deserializer: D,
    length: HexLength,
) -> Result<Vec<u8>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| de::Error::custom("hex must start with 0x"))?;
    let fits = match length {
        HexLength::Exactly(bytes) => digits.len() == 2 * bytes,
        HexLength::AtMost(bytes) => digits.len() <= 2 * bytes,
    };
    if !fits {
        let (what, bytes) = match length {
            HexLength::Exactly(bytes) => ("", bytes),
            HexLength::AtMost(bytes) => ("at most ", bytes),
        };
        return Err(de::Error::custom(format!(
            "expected {what}{bytes} bytes of hex, got {} hex digits",
            digits.len()
        )));
    }
    hex::decode(digits).map_err(|e| de::Error::custom(format!("invalid hex: {e}")))
}

/// The five QBFT message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// The round leader's proposal.
    PrePrepare,
    /// A node accepted the round's proposal.
    Prepare,
    /// A node saw a quorum of PREPAREs for the round's value.
    Commit,
    /// A node moved to a round, with its prepared round and value, if any.
    RoundChange,
    /// A decision, justified by a quorum of COMMITs.
    Decided,
}

impl MessageKind {
    /// The byte of the kind in a message digest.
    pub fn code(self) -> u8 {
        match self {
            MessageKind::PrePrepare => 1,
            MessageKind::Prepare => 2,
            MessageKind::Commit => 3,
            MessageKind::RoundChange => 4,
            MessageKind::Decided => 5,
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MessageKind::PrePrepare => "PRE-PREPARE",
            MessageKind::Prepare => "PREPARE",
            MessageKind::Commit => "COMMIT",
            MessageKind::RoundChange => "ROUND-CHANGE",
            MessageKind::Decided => "DECIDED",
        })
    }
}

/// A ROUND-CHANGE's prepared round and value (digest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreparedRef {
    /// The round in which the source saw a quorum of PREPAREs.
    pub round: Round,
    /// The digest of the prepared value.
    pub value: Digest,
}

/// The signed fields of a message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    /// The message type.
    pub kind: MessageKind,
    /// The consensus instance.
    pub instance: InstanceId,
    /// The node that signed the body.
    pub source: NodeIndex,
    /// The round.
    pub round: Round,
    /// The digest of the value: PRE-PREPARE, PREPARE, COMMIT and DECIDED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Digest>,
    /// ROUND-CHANGE only: the source's prepared round and value, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepared: Option<PreparedRef>,
}

impl MessageBody {
    /// The digest the source signs (see the module documentation).
    pub fn digest(&self) -> Digest {
        let mut hasher = Sha256::new();
        hasher.update(MESSAGE_DOMAIN);
        hasher.update([self.kind.code()]);
        hasher.update(self.instance.0);
        hasher.update(self.source.to_be_bytes());
        hasher.update(self.round.to_be_bytes());
        match self.value {
            Some(value) => hasher.update([[1].as_slice(), &value.0].concat()),
            None => hasher.update([0u8; 33]),
        }
        match self.prepared {
            Some(prepared) => {
                hasher.update([1]);
                hasher.update(prepared.round.to_be_bytes());
                hasher.update(prepared.value.0);
            }
            None => hasher.update([0u8; 41]),
        }
        Digest(hasher.finalize().into())
    }

    /// What a body says about itself: rounds start at 1; PRE-PREPARE,
    /// PREPARE, COMMIT and DECIDED name a value; a ROUND-CHANGE names none of
    /// its own, and its prepared round, if any, is an earlier round.
    pub fn check_shape(&self) -> Result<(), &'static str> {
        if self.round == 0 {
            return Err("rounds start at 1");
        }
        match (self.kind, self.value, self.prepared) {
            (MessageKind::RoundChange, Some(_), _) => {
                Err("a ROUND-CHANGE names no value of its own")
            }
            (MessageKind::RoundChange, None, Some(prepared))
                if prepared.round == 0 || prepared.round >= self.round =>
            {
                Err("prepared round must be in 1..round")
            }
            (MessageKind::RoundChange, None, _) => Ok(()),
            (_, _, Some(_)) => Err("only a ROUND-CHANGE has a prepared value"),
            (_, None, None) => Err("no value digest"),
            (_, Some(_), None) => Ok(()),
        }
    }

    /// The value digest this body names: its own, or a ROUND-CHANGE's prepared one.
    pub fn named_value(&self) -> Option<Digest> {
        self.value.or(self.prepared.map(|p| p.value))
    }
}

/// A body with its source's signature: what a justification is made of.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedBody {
    /// The signed fields.
    pub body: MessageBody,
    /// The source's signature over `body.digest()`.
    pub signature: SignatureBytes,
}

impl SignedBody {
    /// Signs `body` with `keys` (the caller's own key; `body.source` is the caller).
    pub fn sign(body: MessageBody, keys: &dyn NodeKeys) -> Self {
        let signature = keys.sign(&body.digest().0);
        Self { body, signature }
    }
}

/// A QBFT message as it travels: a signed body, the value it names and its
/// justification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound = "V: Value")]
pub struct Message<V> {
    /// The signed fields and signature.
    pub signed: SignedBody,
    /// The value whose digest the body names (absent from a ROUND-CHANGE
    /// without a prepared value).
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub value: Option<V>,
    /// PRE-PREPARE of round > 1: the ROUND-CHANGEs of the round and the
    /// PREPAREs of the highest prepared value among them; ROUND-CHANGE with a
    /// prepared value: its quorum of PREPAREs; DECIDED: a quorum of COMMITs;
    /// otherwise empty.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "bounded_justification"
    )]
    pub justification: Vec<SignedBody>,
}

fn none<V>() -> Option<V> {
    None
}

/// Why a message does not decode or is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The encoded message is longer than [`MAX_MESSAGE_BYTES`].
    #[error("message of {len} bytes exceeds {max}")]
    TooLarge {
        /// The encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The JSON does not decode into a message.
    #[error("message does not decode: {0}")]
    Json(String),
    /// The message's parts do not fit together.
    #[error("malformed {kind} of round {round}: {problem}")]
    Malformed {
        /// The message type.
        kind: MessageKind,
        /// The round.
        round: Round,
        /// What is wrong.
        problem: &'static str,
    },
}

impl<V: Value> Message<V> {
    /// Signs `body` with `keys` and assembles the message.
    pub fn new(
        body: MessageBody,
        value: Option<V>,
        justification: Vec<SignedBody>,
        keys: &dyn NodeKeys,
    ) -> Self {
        Self {
            signed: SignedBody::sign(body, keys),
            value,
            justification,
        }
    }

    /// The signed fields.
    pub fn body(&self) -> &MessageBody {
        &self.signed.body
    }

    /// Decodes a JSON message of at most [`MAX_MESSAGE_BYTES`] and checks
    /// that it is well formed ([`Message::check_well_formed`]).
    pub fn decode_json(bytes: &[u8]) -> Result<Self, MessageError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(MessageError::TooLarge {
                len: bytes.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        let message: Self =
            serde_json::from_slice(bytes).map_err(|e| MessageError::Json(e.to_string()))?;
        message.check_well_formed()?;
        Ok(message)
    }

    /// Checks what a message's own parts say about each other: the body's
    /// shape ([`MessageBody::check_shape`]) and the value it carries, exactly
    /// the one its body names. Justifications are checked by the instance,
    /// which knows the quorum.
    pub fn check_well_formed(&self) -> Result<(), MessageError> {
        let body = self.body();
        let malformed = |problem| MessageError::Malformed {
            kind: body.kind,
            round: body.round,
            problem,
        };
        body.check_shape().map_err(malformed)?;
        match (body.named_value(), &self.value) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(malformed("carries a value its body does not name")),
            (Some(_), None) => Err(malformed("does not carry the value its body names")),
            (Some(digest), Some(value)) if digest.0 == value.digest() => Ok(()),
            (Some(_), Some(_)) => Err(malformed("value does not match its digest")),
        }
    }
}

/// A justification list of at most [`MAX_JUSTIFICATION`] entries, refused
/// as soon as the entry past the bound is reached.
fn bounded_justification<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<SignedBody>, D::Error> {
    struct Bounded;

    impl<'de> Visitor<'de> for Bounded {
        type Value = Vec<SignedBody>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {MAX_JUSTIFICATION} signed bodies")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::new();
            while let Some(entry) = seq.next_element()? {
                if entries.len() == MAX_JUSTIFICATION {
                    return Err(de::Error::custom(format!(
                        "justification has more than {MAX_JUSTIFICATION} entries"
                    )));
                }
                entries.push(entry);
            }
            Ok(entries)
        }
    }

    deserializer.deserialize_seq(Bounded)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A test value: a string hashed with SHA-256.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub(crate) struct Text(pub String);

    impl Value for Text {
        fn digest(&self) -> [u8; 32] {
            Sha256::digest(self.0.as_bytes()).into()
        }
    }

    /// TEST DOUBLE of node keys: node `i` "signs" a digest as
    /// `sha256("test-key" || i || digest)`; verification recomputes it for
    /// the claimed source, so a signature verifies for its own source and
    /// digest only, as a real scheme's does. Not a secret: tests only.
    pub(crate) struct TestKeys {
        pub(crate) index: NodeIndex,
        pub(crate) nodes: u64,
    }

    pub(crate) fn test_signature(index: NodeIndex, digest: &[u8; 32]) -> SignatureBytes {
        let mut hasher = Sha256::new();
        hasher.update(b"test-key");
        hasher.update(index.to_be_bytes());
        hasher.update(digest);
        SignatureBytes(hasher.finalize().to_vec())
    }

    impl NodeKeys for TestKeys {
        fn sign(&self, digest: &[u8; 32]) -> SignatureBytes {
            test_signature(self.index, digest)
        }

        fn verify(&self, source: NodeIndex, digest: &[u8; 32], signature: &SignatureBytes) -> bool {
            (1..=self.nodes).contains(&source) && test_signature(source, digest) == *signature
        }
    }

    fn sample_body() -> MessageBody {
        MessageBody {
            kind: MessageKind::RoundChange,
            instance: InstanceId([0x11; 32]),
            source: 3,
            round: 7,
            value: None,
            prepared: Some(PreparedRef {
                round: 5,
                value: Digest([0x22; 32]),
            }),
        }
    }

    /// The expected digests were computed apart from this code, with Python's
    /// hashlib over the layout the module documentation gives:
    /// `sha256(b"dv-aggregator/qbft/v1/message" + bytes([4]) + b"\x11"*32 +
    /// (3).to_bytes(8,"big") + (7).to_bytes(8,"big") + b"\x00"*33 + b"\x01" +
    /// (5).to_bytes(8,"big") + b"\x22"*32)`, and for the PREPARE
    /// `... bytes([2]) ... (1).to_bytes(8,"big") + b"\x01" + b"\x33"*32 + b"\x00"*41`.
    #[test]
    fn body_digest_matches_independent_encoding() {
        assert_eq!(
            sample_body().digest().to_string(),
            "0x3f9fcc52c276ed32ace687d01a9aa5628e27319bbc3cd79da4be1769ed743964"
        );
        let prepare = MessageBody {
            kind: MessageKind::Prepare,
            round: 1,
            value: Some(Digest([0x33; 32])),
            prepared: None,
            ..sample_body()
        };
        assert_eq!(
            prepare.digest().to_string(),
            "0x7d8375617aa43ed6c4e71f4ee32c4214fdb12710b9de3910d2fbbf7df4d1545c"
        );
    }

    #[test]
    fn every_field_changes_the_digest() {
        let base = sample_body();
        let variants = [
            MessageBody {
                kind: MessageKind::Commit,
                ..base.clone()
            },
            MessageBody {
                instance: InstanceId([0x12; 32]),
                ..base.clone()
            },
            MessageBody {
                source: 4,
                ..base.clone()
            },
            MessageBody {
                round: 8,
                ..base.clone()
            },
            MessageBody {
                prepared: None,
                ..base.clone()
            },
            MessageBody {
                prepared: Some(PreparedRef {
                    round: 4,
                    value: Digest([0x22; 32]),
                }),
                ..base.clone()
            },
        ];
        for variant in variants {
            assert_ne!(variant.digest(), base.digest(), "{variant:?}");
        }
    }

    fn signed_round_change(value: Option<Text>) -> Message<Text> {
        let mut body = sample_body();
        if value.is_none() {
            body.prepared = None;
        }
        let keys = TestKeys { index: 3, nodes: 4 };
        let justification = vec![SignedBody::sign(
            MessageBody {
                kind: MessageKind::Prepare,
                round: 5,
                value: body.prepared.map(|p| p.value),
                prepared: None,
                ..body.clone()
            },
            &keys,
        )];
        Message::new(body, value, justification, &keys)
    }

    #[test]
    fn json_round_trip_keeps_every_part() {
        let value = Text("attestation data".into());
        let mut message = signed_round_change(Some(value.clone()));
        message.signed.body.prepared = Some(PreparedRef {
            round: 5,
            value: Digest(value.digest()),
        });
        let json = serde_json::to_vec(&message).unwrap();
        let decoded = Message::<Text>::decode_json(&json).unwrap();
        assert_eq!(decoded, message);
        let text = String::from_utf8(json).unwrap();
        assert!(text.contains("\"kind\":\"round_change\""), "{text}");
    }

    #[test]
    fn decoding_is_bounded() {
        let too_large = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            Message::<Text>::decode_json(&too_large),
            Err(MessageError::TooLarge {
                len: MAX_MESSAGE_BYTES + 1,
                max: MAX_MESSAGE_BYTES
            })
        );

        let message = signed_round_change(None);
        let mut json: serde_json::Value = serde_json::to_value(&message).unwrap();
        let entry = serde_json::to_value(&message.signed).unwrap();
        json["justification"] = serde_json::Value::Array(vec![entry; MAX_JUSTIFICATION + 1]);
        let error = Message::<Text>::decode_json(&serde_json::to_vec(&json).unwrap()).unwrap_err();
        assert!(
            error.to_string().contains("more than 512 entries"),
            "{error}"
        );

        let mut json: serde_json::Value = serde_json::to_value(&message).unwrap();
        json["signed"]["signature"] = format!("0x{}", "ab".repeat(MAX_SIGNATURE_BYTES + 1)).into();
        let error = Message::<Text>::decode_json(&serde_json::to_vec(&json).unwrap()).unwrap_err();
        assert!(error.to_string().contains("at most 128 bytes"), "{error}");

        let mut json: serde_json::Value = serde_json::to_value(&message).unwrap();
        json["signed"]["body"]["instance"] = "0x1234".into();
        let error = Message::<Text>::decode_json(&serde_json::to_vec(&json).unwrap()).unwrap_err();
        assert!(error.to_string().contains("expected 32 bytes"), "{error}");
    }

    #[test]
    fn malformed_messages_are_named() {
        let value = Text("a".into());
        let keys = TestKeys { index: 1, nodes: 4 };
        let prepare = |value_digest: Option<Digest>, round, carried: Option<Text>| {
            Message::new(
                MessageBody {
                    kind: MessageKind::Prepare,
                    instance: InstanceId::default(),
                    source: 1,
                    round,
                    value: value_digest,
                    prepared: None,
                },
                carried,
                vec![],
                &keys,
            )
        };
        let value_digest = Digest(value.digest());
        let good = Some(value_digest);
        assert_eq!(
            prepare(good, 1, Some(value.clone())).check_well_formed(),
            Ok(())
        );
        let problem = |message: Message<Text>| match message.check_well_formed() {
            Err(MessageError::Malformed { problem, .. }) => problem,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            problem(prepare(good, 0, Some(value.clone()))),
            "rounds start at 1"
        );
        assert_eq!(problem(prepare(None, 1, None)), "no value digest");
        assert_eq!(
            problem(prepare(good, 1, None)),
            "does not carry the value its body names"
        );
        assert_eq!(
            problem(prepare(good, 1, Some(Text("b".into())))),
            "value does not match its digest"
        );

        let mut round_change = signed_round_change(None);
        round_change.signed.body.prepared = Some(PreparedRef {
            round: 7,
            value: value_digest,
        });
        round_change.value = Some(value);
        assert_eq!(problem(round_change), "prepared round must be in 1..round");
    }

    #[test]
    fn instance_ids_differ_by_label_and_number() {
        let a = InstanceId::derive("attester", 10);
        assert_eq!(a, InstanceId::derive("attester", 10));
        assert_ne!(a, InstanceId::derive("attester", 11));
        assert_ne!(a, InstanceId::derive("aggregator", 10));
    }
}
