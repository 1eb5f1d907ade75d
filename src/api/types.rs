//! Beacon API wire types: the JSON shapes of every endpoint this project
//! serves or calls, in the Beacon API conventions (uint64 as quoted decimal
//! strings, bytes as `0x` hex, `{"data": ...}` envelopes, `{code, message}`
//! error bodies).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_utils::quoted_u64::require_quotes as quoted_u64;
use ssz_derive::{Decode, Encode};

use crate::spec::{CommitteeIndex, Epoch, Fork, Root, Slot, ValidatorIndex, Version};

/// Length of a compressed BLS signature (a G2 point).
pub const SIGNATURE_BYTES_LEN: usize = 96;
/// Length of a compressed BLS public key (a G1 point).
pub const PUBLIC_KEY_BYTES_LEN: usize = 48;

use crate::spec::hex::root as hex_root;
use crate::spec::hex::{array as hex_array, parse_hex_array, truncated};

macro_rules! hex_bytes_newtype {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub [u8; $len]);

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                hex_array::serialize(&self.0, serializer)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                hex_array::deserialize(deserializer).map(Self)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&serde_utils::hex::encode(self.0))
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                parse_hex_array(text).map(Self)
            }
        }

        /// SSZ: the bytes as they are (a fixed-size vector of bytes).
        impl ssz::Encode for $name {
            fn is_ssz_fixed_len() -> bool {
                true
            }

            fn ssz_fixed_len() -> usize {
                $len
            }

            fn ssz_bytes_len(&self) -> usize {
                $len
            }

            fn ssz_append(&self, buf: &mut Vec<u8>) {
                buf.extend_from_slice(&self.0);
            }
        }

        impl ssz::Decode for $name {
            fn is_ssz_fixed_len() -> bool {
                true
            }

            fn ssz_fixed_len() -> usize {
                $len
            }

            fn from_ssz_bytes(bytes: &[u8]) -> Result<Self, ssz::DecodeError> {
                <[u8; $len]>::from_ssz_bytes(bytes).map(Self)
            }
        }
    };
}

hex_bytes_newtype!(
    /// The 96 bytes of a compressed BLS signature exactly as they came over the
    /// wire; not yet checked to be a G2 point (see `crypto::Signature::from_bytes`).
    SignatureBytes,
    SIGNATURE_BYTES_LEN
);
hex_bytes_newtype!(
    /// The 48 bytes of a compressed BLS public key exactly as they came over the
    /// wire; not yet checked to be a G1 point.
    PublicKeyBytes,
    PUBLIC_KEY_BYTES_LEN
);

/// `Vec<u64>` as a list of quoted decimal strings.
mod quoted_u64_list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_utils::quoted_u64::Quoted;

    pub fn serialize<S: Serializer>(values: &[u64], serializer: S) -> Result<S::Ok, S::Error> {
        let quoted: Vec<Quoted<u64>> = values.iter().map(|&value| Quoted { value }).collect();
        quoted.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u64>, D::Error> {
        let quoted = Vec::<Quoted<u64>>::deserialize(deserializer)?;
        Ok(quoted.into_iter().map(|q| q.value).collect())
    }
}

/// The `{"data": ...}` envelope of every Beacon API reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenericResponse<T> {
    /// The payload.
    pub data: T,
}

/// The envelope of state queries: `{"execution_optimistic", "finalized", "data"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateResponse<T> {
    /// Whether the state is from an optimistically imported block (absent on old nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_optimistic: Option<bool>,
    /// Whether the state is finalized (absent on old nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalized: Option<bool>,
    /// The payload.
    pub data: T,
}

/// The envelope of duty queries: `{"dependent_root", "execution_optimistic", "data"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DutiesResponse<T> {
    /// The block root the duties depend on (attester and proposer duties;
    /// sync committee duties have none).
    #[serde(
        default,
        with = "crate::spec::hex::root_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub dependent_root: Option<Root>,
    /// Whether the duties come from an optimistically imported block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_optimistic: Option<bool>,
    /// The duties.
    pub data: T,
}

/// One failed item of a list request: its position in the request and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedFailure {
    /// Position of the item in the request list.
    pub index: usize,
    /// Why the item was rejected.
    pub message: String,
}

/// A Beacon API error body: `{"code", "message"}`, plus `failures` in the
/// indexed form that names the bad items of a list request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    /// The HTTP status code.
    pub code: u16,
    /// What went wrong.
    pub message: String,
    /// Every failed item, in request order (indexed form only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<IndexedFailure>,
}

/// One item of `POST /eth/v1/validator/is_aggregator`: "is this validator,
/// with this slot signature, an aggregator of its committee at this slot?"
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsAggregatorRequestItem {
    /// The validator that signed `slot_signature`.
    #[serde(with = "quoted_u64")]
    pub validator_index: ValidatorIndex,
    /// The validator's committee at `slot`.
    #[serde(with = "quoted_u64")]
    pub committee_index: CommitteeIndex,
    /// The number of committees at `slot`, as the validator's duties say.
    #[serde(with = "quoted_u64")]
    pub committees_at_slot: u64,
    /// The attestation slot.
    #[serde(with = "quoted_u64")]
    pub slot: Slot,
    /// `get_slot_signature(state, slot, privkey)`: the combined signature of a
    /// distributed validator.
    pub slot_signature: SignatureBytes,
}

/// One item of the standard `POST /eth/v1/validator/beacon_committee_selections`.
/// Its SSZ form (Lodestar's `BeaconCommitteeSelection` container, as its
/// validator client posts it) is the fields in order: 112 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct BeaconCommitteeSelection {
    /// The validator the proof belongs to.
    #[serde(with = "quoted_u64")]
    pub validator_index: ValidatorIndex,
    /// The attestation slot.
    #[serde(with = "quoted_u64")]
    pub slot: Slot,
    /// A partial selection proof in the request, the combined one in the reply.
    pub selection_proof: SignatureBytes,
}

/// One item of the standard `POST /eth/v1/validator/sync_committee_selections`.
/// Its SSZ form (Lodestar's `SyncCommitteeSelection` container) is the
/// fields in order: 120 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct SyncCommitteeSelection {
    /// The validator the proof belongs to.
    #[serde(with = "quoted_u64")]
    pub validator_index: ValidatorIndex,
    /// The sync-committee slot.
    #[serde(with = "quoted_u64")]
    pub slot: Slot,
    /// The sync subcommittee the proof is for.
    #[serde(with = "quoted_u64")]
    pub subcommittee_index: u64,
    /// A partial selection proof in the request, the combined one in the reply.
    pub selection_proof: SignatureBytes,
}

/// One item of `POST /eth/v1/validator/beacon_committee_subscriptions`: the
/// node should join the attestation subnet of this committee and, when
/// `is_aggregator`, collect its attestations for the validator to aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeaconCommitteeSubscription {
    /// The subscribing validator.
    #[serde(with = "quoted_u64")]
    pub validator_index: ValidatorIndex,
    /// The validator's committee at `slot`.
    #[serde(with = "quoted_u64")]
    pub committee_index: CommitteeIndex,
    /// The number of committees at `slot`, as the validator's duties say.
    #[serde(with = "quoted_u64")]
    pub committees_at_slot: u64,
    /// The slot the validator attests in.
    #[serde(with = "quoted_u64")]
    pub slot: Slot,
    /// Whether the validator was selected to aggregate its committee at `slot`.
    pub is_aggregator: bool,
}

/// One item of `POST /eth/v1/validator/sync_committee_subscriptions`. The
/// Beacon API gives it no `is_aggregator` field: sync aggregators are chosen
/// per slot and subcommittee, and the node subscribes to the subnets of
/// `sync_committee_indices` whether or not the validator aggregates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCommitteeSubscription {
    /// The subscribing validator.
    #[serde(with = "quoted_u64")]
    pub validator_index: ValidatorIndex,
    /// Every position of the validator in the sync committee.
    #[serde(with = "quoted_u64_list")]
    pub sync_committee_indices: Vec<u64>,
    /// The first epoch the subscription is no longer needed (exclusive end).
    #[serde(with = "quoted_u64")]
    pub until_epoch: Epoch,
}

/// `GET /eth/v1/node/version` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionData {
    /// The node's version string, e.g. `Lodestar/v1.5.1/...`.
    pub version: String,
}

/// `GET /eth/v1/node/syncing` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncingData {
    /// The node's head slot.
    #[serde(with = "quoted_u64")]
    pub head_slot: Slot,
    /// How many slots the head is behind the wall clock.
    #[serde(with = "quoted_u64")]
    pub sync_distance: u64,
    /// Whether the node is syncing.
    pub is_syncing: bool,
    /// Whether the head is optimistic (absent on old nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_optimistic: Option<bool>,
    /// Whether the execution layer is offline (absent on old nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub el_offline: Option<bool>,
}

/// `GET /eth/v1/beacon/genesis` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisData {
    /// Unix time of genesis, in seconds.
    #[serde(with = "quoted_u64")]
    pub genesis_time: u64,
    /// `genesis_validators_root`, part of every signing domain.
    #[serde(with = "hex_root")]
    pub genesis_validators_root: Root,
    /// `GENESIS_FORK_VERSION`.
    #[serde(with = "crate::spec::hex::array")]
    pub genesis_fork_version: Version,
}

/// `GET /eth/v1/beacon/states/{state_id}/fork` data: the state's `Fork`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkResponseData {
    /// `fork.previous_version`.
    #[serde(with = "crate::spec::hex::array")]
    pub previous_version: Version,
    /// `fork.current_version`.
    #[serde(with = "crate::spec::hex::array")]
    pub current_version: Version,
    /// `fork.epoch`.
    #[serde(with = "quoted_u64")]
    pub epoch: Epoch,
}

impl From<ForkResponseData> for Fork {
    fn from(wire: ForkResponseData) -> Self {
        Fork {
            previous_version: wire.previous_version,
            current_version: wire.current_version,
            epoch: wire.epoch,
        }
    }
}

impl From<Fork> for ForkResponseData {
    fn from(fork: Fork) -> Self {
        ForkResponseData {
            previous_version: fork.previous_version,
            current_version: fork.current_version,
            epoch: fork.epoch,
        }
    }
}

/// The status of a validator as the Beacon API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidatorStatus {
    /// Deposited, not yet eligible for activation.
    PendingInitialized,
    /// Eligible, waiting in the activation queue.
    PendingQueued,
    /// Active, no exit scheduled.
    ActiveOngoing,
    /// Active, exit scheduled.
    ActiveExiting,
    /// Active and slashed.
    ActiveSlashed,
    /// Exited without being slashed.
    ExitedUnslashed,
    /// Exited after being slashed.
    ExitedSlashed,
    /// Withdrawable, balance not yet withdrawn.
    WithdrawalPossible,
    /// Withdrawn.
    WithdrawalDone,
}

/// The `Validator` record of a state, as the Beacon API writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorRecord {
    /// The validator's public key.
    pub pubkey: PublicKeyBytes,
    /// Withdrawal credentials.
    #[serde(with = "hex_root")]
    pub withdrawal_credentials: Root,
    /// Effective balance in Gwei.
    #[serde(with = "quoted_u64")]
    pub effective_balance: u64,
    /// Whether the validator was slashed.
    pub slashed: bool,
    /// `activation_eligibility_epoch`.
    #[serde(with = "quoted_u64")]
    pub activation_eligibility_epoch: Epoch,
    /// `activation_epoch`.
    #[serde(with = "quoted_u64")]
    pub activation_epoch: Epoch,
    /// `exit_epoch`.
    #[serde(with = "quoted_u64")]
    pub exit_epoch: Epoch,
    /// `withdrawable_epoch`.
    #[serde(with = "quoted_u64")]
    pub withdrawable_epoch: Epoch,
}

/// One entry of `GET /eth/v1/beacon/states/{state_id}/validators`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorData {
    /// The validator's index in the registry.
    #[serde(with = "quoted_u64")]
    pub index: ValidatorIndex,
    /// Balance in Gwei.
    #[serde(with = "quoted_u64")]
    pub balance: u64,
    /// Lifecycle status at the state's epoch.
    pub status: ValidatorStatus,
    /// The registry record.
    pub validator: ValidatorRecord,
}

/// One entry of `GET /eth/v1/beacon/states/{state_id}/committees`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitteeData {
    /// The committee index within its slot.
    #[serde(with = "quoted_u64")]
    pub index: CommitteeIndex,
    /// The committee's slot.
    #[serde(with = "quoted_u64")]
    pub slot: Slot,
    /// The members in committee order.
    #[serde(with = "quoted_u64_list")]
    pub validators: Vec<ValidatorIndex>,
}

/// One entry of `POST /eth/v1/validator/duties/attester/{epoch}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttesterDuty {
    /// The validator's public key.
    pub pubkey: PublicKeyBytes,
    /// The validator's index.
    #[serde(with = "quoted_u64")]
    pub validator_index: ValidatorIndex,
    /// The committee index within the slot.
    #[serde(with = "quoted_u64")]
    pub committee_index: CommitteeIndex,
    /// Number of members of the committee.
    #[serde(with = "quoted_u64")]
    pub committee_length: u64,
    /// Number of committees at the slot.
    #[serde(with = "quoted_u64")]
    pub committees_at_slot: u64,
    /// The validator's position in the committee.
    #[serde(with = "quoted_u64")]
    pub validator_committee_index: u64,
    /// The attestation slot.
    #[serde(with = "quoted_u64")]
    pub slot: Slot,
}

/// One entry of `POST /eth/v1/validator/duties/sync/{epoch}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDuty {
    /// The validator's public key.
    pub pubkey: PublicKeyBytes,
    /// The validator's index.
    #[serde(with = "quoted_u64")]
    pub validator_index: ValidatorIndex,
    /// Every position of the validator in the sync committee (it may repeat).
    #[serde(with = "quoted_u64_list")]
    pub validator_sync_committee_indices: Vec<u64>,
}

/// One entry of `GET /eth/v1/validator/duties/proposer/{epoch}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposerDuty {
    /// The validator's public key.
    pub pubkey: PublicKeyBytes,
    /// The validator's index.
    #[serde(with = "quoted_u64")]
    pub validator_index: ValidatorIndex,
    /// The slot at which the validator proposes.
    #[serde(with = "quoted_u64")]
    pub slot: Slot,
}

/// The `{state_id}` path parameter of state queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateId {
    /// `head`.
    Head,
    /// `genesis`.
    Genesis,
    /// `finalized`.
    Finalized,
    /// `justified`.
    Justified,
    /// A slot number.
    Slot(Slot),
    /// A state root.
    Root(Root),
}

impl fmt::Display for StateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateId::Head => f.write_str("head"),
            StateId::Genesis => f.write_str("genesis"),
            StateId::Finalized => f.write_str("finalized"),
            StateId::Justified => f.write_str("justified"),
            StateId::Slot(slot) => write!(f, "{slot}"),
            StateId::Root(root) => f.write_str(&serde_utils::hex::encode(root)),
        }
    }
}

impl FromStr for StateId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "head" => Ok(StateId::Head),
            "genesis" => Ok(StateId::Genesis),
            "finalized" => Ok(StateId::Finalized),
            "justified" => Ok(StateId::Justified),
            _ if text.starts_with("0x") => parse_hex_array::<32>(text).map(|r| StateId::Root(r.into())),
            _ => text.parse().map(StateId::Slot).map_err(|_| {
                format!("invalid state id {:?}: expected head, genesis, finalized, justified, a slot or a 0x root", truncated(text))
            }),
        }
    }
}

/// A validator named by index or by public key, as in `?id=` of the validators query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValidatorId {
    /// A registry index.
    Index(ValidatorIndex),
    /// A public key.
    PublicKey(PublicKeyBytes),
}

impl fmt::Display for ValidatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValidatorId::Index(index) => write!(f, "{index}"),
            ValidatorId::PublicKey(pubkey) => f.write_str(&serde_utils::hex::encode(pubkey.0)),
        }
    }
}

impl FromStr for ValidatorId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.starts_with("0x") {
            text.parse().map(ValidatorId::PublicKey)
        } else {
            text.parse().map(ValidatorId::Index).map_err(|_| {
                format!(
                    "invalid validator id {:?}: expected an index or a 0x public key",
                    truncated(text)
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item_json(signature: &str) -> String {
        format!(
            r#"{{"validator_index":"7","committee_index":"1","committees_at_slot":"4","slot":"43","slot_signature":"{signature}"}}"#
        )
    }

    #[test]
    fn item_round_trips_with_quoted_integers_and_lower_case_hex() {
        let signature = format!("0x{}", "ab".repeat(96));
        let item: IsAggregatorRequestItem = serde_json::from_str(&item_json(&signature)).unwrap();
        assert_eq!(item.validator_index, 7);
        assert_eq!(item.slot_signature.0, [0xab; 96]);
        assert_eq!(serde_json::to_string(&item).unwrap(), item_json(&signature));
    }

    #[test]
    fn upper_case_hex_is_accepted_and_written_back_lower_case() {
        let item: IsAggregatorRequestItem =
            serde_json::from_str(&item_json(&format!("0x{}", "AB".repeat(96)))).unwrap();
        assert_eq!(item.slot_signature.0, [0xab; 96]);
        assert!(serde_json::to_string(&item)
            .unwrap()
            .contains(&"ab".repeat(96)));
    }

    #[test]
    fn unquoted_integers_are_rejected() {
        let json =
            item_json(&format!("0x{}", "00".repeat(96))).replace(r#""slot":"43""#, r#""slot":43"#);
        let err = serde_json::from_str::<IsAggregatorRequestItem>(&json).unwrap_err();
        assert!(err.to_string().contains("quotes are required"), "{err}");
    }

    #[test]
    fn wrong_signature_length_says_how_long_it_was() {
        let err = serde_json::from_str::<IsAggregatorRequestItem>(&item_json(&format!(
            "0x{}",
            "00".repeat(95)
        )))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("expected 96 bytes (192 hex digits) after 0x, got 190"),
            "{err}"
        );
    }

    #[test]
    fn hex_without_prefix_or_with_bad_digits_is_rejected() {
        let no_prefix =
            serde_json::from_str::<IsAggregatorRequestItem>(&item_json(&"00".repeat(96)));
        assert!(no_prefix
            .unwrap_err()
            .to_string()
            .contains("must start with 0x"));
        let bad_digit = format!("0x{}zz", "00".repeat(95));
        let err =
            serde_json::from_str::<IsAggregatorRequestItem>(&item_json(&bad_digit)).unwrap_err();
        assert!(err.to_string().contains("invalid hex"), "{err}");
    }

    #[test]
    fn error_bodies_have_both_forms() {
        let plain = ErrorMessage {
            code: 503,
            message: "not ready".into(),
            failures: vec![],
        };
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"code":503,"message":"not ready"}"#
        );
        let indexed = ErrorMessage {
            code: 400,
            message: "1 of 2 items are invalid".into(),
            failures: vec![IndexedFailure {
                index: 1,
                message: "invalid signature".into(),
            }],
        };
        let json = serde_json::to_string(&indexed).unwrap();
        assert_eq!(
            json,
            r#"{"code":400,"message":"1 of 2 items are invalid","failures":[{"index":1,"message":"invalid signature"}]}"#
        );
        assert_eq!(
            serde_json::from_str::<ErrorMessage>(&json).unwrap(),
            indexed
        );
    }

    #[test]
    fn state_and_validator_ids_round_trip() {
        for text in [
            "head",
            "genesis",
            "finalized",
            "justified",
            "12345",
            &format!("0x{}", "0f".repeat(32)),
        ] {
            assert_eq!(text.parse::<StateId>().unwrap().to_string(), text);
        }
        assert!("0x12".parse::<StateId>().is_err());
        assert!("latest".parse::<StateId>().is_err());
        for text in ["42", &format!("0x{}", "aa".repeat(48))] {
            assert_eq!(text.parse::<ValidatorId>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn subscriptions_are_written_as_the_beacon_api_spells_them() {
        let beacon = BeaconCommitteeSubscription {
            validator_index: 7,
            committee_index: 1,
            committees_at_slot: 4,
            slot: 43,
            is_aggregator: true,
        };
        let json = r#"{"validator_index":"7","committee_index":"1","committees_at_slot":"4","slot":"43","is_aggregator":true}"#;
        assert_eq!(serde_json::to_string(&beacon).unwrap(), json);
        assert_eq!(
            serde_json::from_str::<BeaconCommitteeSubscription>(json).unwrap(),
            beacon
        );
        let sync = SyncCommitteeSubscription {
            validator_index: 7,
            sync_committee_indices: vec![3, 130],
            until_epoch: 256,
        };
        let json =
            r#"{"validator_index":"7","sync_committee_indices":["3","130"],"until_epoch":"256"}"#;
        assert_eq!(serde_json::to_string(&sync).unwrap(), json);
        assert_eq!(
            serde_json::from_str::<SyncCommitteeSubscription>(json).unwrap(),
            sync
        );
    }

    #[test]
    fn duties_accept_a_missing_dependent_root() {
        let json = r#"{"data":[{"pubkey":"0x"#.to_string()
            + &"11".repeat(48)
            + r#"","validator_index":"3","validator_sync_committee_indices":["1","9"]}]}"#;
        let duties: DutiesResponse<Vec<SyncDuty>> = serde_json::from_str(&json).unwrap();
        assert_eq!(duties.dependent_root, None);
        assert_eq!(duties.data[0].validator_sync_committee_indices, vec![1, 9]);
    }
}

/// The data of a `head` event of `GET /eth/v1/events?topics=head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadEvent {
    /// The head's slot.
    #[serde(with = "quoted_u64")]
    pub slot: Slot,
    /// The head block's root.
    #[serde(with = "hex_root")]
    pub block: Root,
    /// The root of the head state.
    #[serde(with = "hex_root")]
    pub state: Root,
    /// Whether the head moved into a new epoch.
    pub epoch_transition: bool,
    /// `get_block_root_at_slot(state, compute_start_slot_at_epoch(epoch - 1) - 1)`
    /// (the genesis block root on underflow).
    #[serde(with = "hex_root")]
    pub previous_duty_dependent_root: Root,
    /// `get_block_root_at_slot(state, compute_start_slot_at_epoch(epoch) - 1)`
    /// (the genesis block root on underflow).
    #[serde(with = "hex_root")]
    pub current_duty_dependent_root: Root,
    /// Whether the head block was imported optimistically.
    pub execution_optimistic: bool,
}
