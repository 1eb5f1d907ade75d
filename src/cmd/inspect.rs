//! `dv-aggregator inspect`: answers "why did my validator (not) aggregate?"
//! from a BeaconState file, with the same numbers the beacon node used.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::print_line;

use dv_aggregator::crypto::{PublicKey, Signature};
use dv_aggregator::spec::selection::{
    aggregator_modulo, is_aggregator, is_sync_committee_aggregator, sync_aggregator_modulo,
};
use dv_aggregator::spec::signing::{
    selection_proof_signing_root, sync_selection_proof_signing_root,
};
use dv_aggregator::spec::{ChainSpec, ForkName};
use dv_aggregator::state::epoch_caches::EpochCommittees;
use dv_aggregator::state::{decode_state, BeaconState};

/// `dv-aggregator inspect` subcommands.
#[derive(Debug, Subcommand)]
pub enum InspectCommand {
    /// Print the state's hash_tree_root as 0x-hex.
    StateRoot(StateArgs),
    /// Print every committee of an epoch (previous, current or next of the
    /// state) as the body of GET /eth/v1/beacon/states/{id}/committees?epoch=E.
    Committees {
        #[command(flatten)]
        state: StateArgs,
        /// The epoch: the state's previous, current or next.
        #[arg(long)]
        epoch: u64,
    },
    /// Decide whether a selection proof makes its validator an attestation
    /// aggregator at (slot, committee index), as the spec's is_aggregator does.
    IsAggregator {
        #[command(flatten)]
        state: StateArgs,
        #[arg(long)]
        slot: u64,
        #[arg(long)]
        committee_index: u64,
        /// The (combined) selection proof: a 96-byte BLS signature, 0x-hex.
        #[arg(long)]
        selection_proof: String,
        /// Also check that this validator is in the committee and that the
        /// proof verifies against its public key.
        #[arg(long)]
        validator_index: Option<u64>,
    },
    /// Decide whether a sync-committee selection proof makes its validator a
    /// sync aggregator, as the spec's is_sync_committee_aggregator does.
    SyncAggregator {
        #[command(flatten)]
        config: ConfigArgs,
        /// A state, needed only with --validator-index.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Override the fork detected from the state's fork version.
        #[arg(long)]
        fork: Option<String>,
        /// The selection proof: a 96-byte BLS signature, 0x-hex.
        #[arg(long)]
        selection_proof: String,
        /// Also check that this validator sits in --subcommittee-index at
        /// --slot and that the proof verifies against its public key.
        #[arg(long, requires_all = ["state", "slot", "subcommittee_index"])]
        validator_index: Option<u64>,
        #[arg(long)]
        slot: Option<u64>,
        #[arg(long)]
        subcommittee_index: Option<u64>,
    },
}

/// Which chain configuration to read the state with.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The preset of the state: mainnet or minimal.
    #[arg(long, default_value = "mainnet", conflicts_with = "config")]
    preset: String,
    /// A config.yaml, or the JSON body of GET /eth/v1/config/spec, instead of --preset.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// A state file and how to read it.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// A BeaconState as raw SSZ (e.g. GET /eth/v2/debug/beacon/states/{id} with
    /// Accept: application/octet-stream).
    #[arg(long)]
    state: PathBuf,
    #[command(flatten)]
    config: ConfigArgs,
    /// Override the fork detected from the state's fork.current_version.
    #[arg(long)]
    fork: Option<String>,
}

impl ConfigArgs {
    fn chain_spec(&self) -> anyhow::Result<ChainSpec> {
        match &self.config {
            Some(path) => ChainSpec::from_file(path)
                .with_context(|| format!("loading config {}", path.display())),
            None => Ok(ChainSpec::from_preset_name(&self.preset)?),
        }
    }
}

fn parse_fork(fork: Option<&str>) -> anyhow::Result<Option<ForkName>> {
    fork.map(|name| {
        ForkName::parse(name).with_context(|| {
            format!("unknown fork {name:?}: expected phase0, altair, bellatrix, capella, deneb, electra or fulu")
        })
    })
    .transpose()
}

fn load_state(path: &PathBuf, spec: &ChainSpec, fork: Option<&str>) -> anyhow::Result<BeaconState> {
    let bytes = std::fs::read(path).with_context(|| format!("reading state {}", path.display()))?;
    decode_state(&bytes, spec, parse_fork(fork)?)
        .with_context(|| format!("decoding state {}", path.display()))
}

impl StateArgs {
    fn load(&self) -> anyhow::Result<BeaconState> {
        load_state(
            &self.state,
            &self.config.chain_spec()?,
            self.fork.as_deref(),
        )
    }
}

fn parse_signature(text: &str) -> anyhow::Result<Signature> {
    let digits = text
        .strip_prefix("0x")
        .with_context(|| format!("selection proof {text:?} does not start with 0x"))?;
    let bytes =
        hex::decode(digits).with_context(|| format!("selection proof {text:?} is not hex"))?;
    if bytes.len() != 96 {
        bail!(
            "selection proof has {} bytes, a BLS signature has 96",
            bytes.len()
        );
    }
    Signature::from_bytes(&bytes).context("selection proof is not a valid BLS signature")
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    print_line(&serde_json::to_string(value)?)
}

/// Runs one `inspect` subcommand.
pub fn run(command: InspectCommand) -> anyhow::Result<()> {
    match command {
        InspectCommand::StateRoot(args) => {
            print_line(&format!("{:#x}", args.load()?.hash_tree_root()))
        }
        InspectCommand::Committees { state, epoch } => committees(&state.load()?, epoch),
        InspectCommand::IsAggregator {
            state,
            slot,
            committee_index,
            selection_proof,
            validator_index,
        } => {
            let proof = parse_signature(&selection_proof)?;
            attestation_aggregator(
                &state.load()?,
                slot,
                committee_index,
                &proof,
                validator_index,
            )
        }
        InspectCommand::SyncAggregator {
            config,
            state,
            fork,
            selection_proof,
            validator_index,
            slot,
            subcommittee_index,
        } => {
            let proof = parse_signature(&selection_proof)?;
            let spec = config.chain_spec()?;
            if let (Some(validator), Some(path), Some(slot), Some(subcommittee)) =
                (validator_index, &state, slot, subcommittee_index)
            {
                let state = load_state(path, &spec, fork.as_deref())?;
                check_sync_member(&state, validator, slot, subcommittee, &proof)?;
            }
            print_json(&SyncAggregatorReport {
                is_aggregator: is_sync_committee_aggregator(&proof.to_bytes(), &spec.preset),
                modulo: sync_aggregator_modulo(&spec.preset).to_string(),
            })
        }
    }
}

#[derive(Serialize)]
struct CommitteeJson {
    index: String,
    slot: String,
    validators: Vec<String>,
}

#[derive(Serialize)]
struct DataJson<T> {
    data: T,
}

fn committees(state: &BeaconState, epoch: u64) -> anyhow::Result<()> {
    let committees = EpochCommittees::from_state(state)?;
    let cache = committees.for_epoch(epoch)?;
    let data: Vec<CommitteeJson> = cache
        .committees()
        .map(|committee| CommitteeJson {
            index: committee.index.to_string(),
            slot: committee.slot.to_string(),
            validators: committee.members.iter().map(u64::to_string).collect(),
        })
        .collect();
    print_json(&DataJson { data })
}

#[derive(Serialize)]
struct AggregatorReport {
    is_aggregator: bool,
    committee_length: String,
    modulo: String,
}

#[derive(Serialize)]
struct SyncAggregatorReport {
    is_aggregator: bool,
    modulo: String,
}

fn attestation_aggregator(
    state: &BeaconState,
    slot: u64,
    committee_index: u64,
    proof: &Signature,
    validator_index: Option<u64>,
) -> anyhow::Result<()> {
    let committees = EpochCommittees::from_state(state)?;
    let committee = committees.get_beacon_committee(slot, committee_index)?;
    if let Some(validator) = validator_index {
        if !committee.contains(&validator) {
            bail!(
                "validator {validator} is not in committee {committee_index} of slot {slot} ({} members)",
                committee.len()
            );
        }
        let root = selection_proof_signing_root(
            slot,
            &state.fork(),
            state.genesis_validators_root(),
            state.preset(),
        );
        verify_validator_signature(state, validator, root.as_slice(), proof)?;
    }
    let length = committee.len() as u64;
    print_json(&AggregatorReport {
        is_aggregator: is_aggregator(length, &proof.to_bytes(), state.preset()),
        committee_length: length.to_string(),
        modulo: aggregator_modulo(length, state.preset()).to_string(),
    })
}

fn check_sync_member(
    state: &BeaconState,
    validator: u64,
    slot: u64,
    subcommittee_index: u64,
    proof: &Signature,
) -> anyhow::Result<()> {
    let period = state.sync_period_of_epoch(slot / state.preset().SLOTS_PER_EPOCH.max(1))?;
    let subcommittees = state.sync_subcommittee_indices(validator, period)?;
    if !subcommittees.contains(&subcommittee_index) {
        bail!(
            "validator {validator} is not in sync subcommittee {subcommittee_index} at slot {slot} (its subcommittees: {subcommittees:?})"
        );
    }
    let root = sync_selection_proof_signing_root(
        slot,
        subcommittee_index,
        &state.fork(),
        state.genesis_validators_root(),
        state.preset(),
    );
    verify_validator_signature(state, validator, root.as_slice(), proof)
}

fn verify_validator_signature(
    state: &BeaconState,
    validator: u64,
    signing_root: &[u8],
    proof: &Signature,
) -> anyhow::Result<()> {
    let record = state.validator(validator).with_context(|| {
        format!(
            "validator {validator} is not in the registry of {} validators",
            state.validators().len()
        )
    })?;
    let pubkey = PublicKey::from_bytes(&record.pubkey.0)
        .with_context(|| format!("validator {validator}'s public key is not a valid BLS key"))?;
    if !proof.verify(&pubkey, signing_root) {
        bail!(
            "selection proof does not verify against validator {validator}'s public key {pubkey} (signing root 0x{})",
            hex::encode(signing_root)
        );
    }
    Ok(())
}
