//! Where the beacon-node side gets its state: a state file, read once, or an
//! upstream beacon node, followed. The follower fetches
//! `GET /eth/v2/debug/beacon/states/head` as SSZ at start and again whenever
//! the head enters a new epoch, which it learns from the
//! `GET /eth/v1/events?topics=head` stream, or, when the stream is not
//! served or breaks, by polling `GET /eth/v1/node/syncing`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::backend::{LoadedState, StateBackend};
use crate::api::types::StateId;
use crate::api::{BeaconNodeClient, ClientError};
use crate::spec::{ChainSpec, Epoch, ForkName, Slot};
use crate::state::epoch_caches::EpochCommitteesError;
use crate::state::{decode_state, StateError};

/// Errors of loading a state.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read state file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Decode { what: String, source: StateError },
    #[error("{what}: {source}")]
    Committees {
        what: String,
        source: EpochCommitteesError,
    },
    #[error("upstream beacon node {url}: {source}")]
    Upstream { url: String, source: ClientError },
    #[error("upstream beacon node {url} says the head state is {fork:?}, which this config does not know")]
    UnknownConsensusVersion { url: String, fork: String },
    #[error("loading the state was interrupted: {0}")]
    Interrupted(String),
}

/// Decodes a state and builds its committee caches; `what` names the source in errors.
pub fn load_state_bytes(
    bytes: &[u8],
    spec: &ChainSpec,
    fork: Option<ForkName>,
    what: &str,
) -> Result<LoadedState, SourceError> {
    let state = decode_state(bytes, spec, fork).map_err(|source| SourceError::Decode {
        what: what.to_string(),
        source,
    })?;
    LoadedState::new(state).map_err(|source| SourceError::Committees {
        what: what.to_string(),
        source,
    })
}

/// Reads and loads a raw-SSZ state file.
pub fn load_state_file(
    path: &Path,
    spec: &ChainSpec,
    fork: Option<ForkName>,
) -> Result<LoadedState, SourceError> {
    let bytes = std::fs::read(path).map_err(|source| SourceError::Read {
        path: path.display().to_string(),
        source,
    })?;
    load_state_bytes(
        &bytes,
        spec,
        fork,
        &format!("state file {}", path.display()),
    )
}

/// How an upstream node is followed.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// Wait after a failed fetch, doubled up to `max_retry_delay`.
    pub retry_delay: Duration,
    /// Longest wait between retries.
    pub max_retry_delay: Duration,
    /// How often the head slot is polled when the event stream is unavailable.
    pub poll_interval: Duration,
}

impl FollowConfig {
    /// Retries from a quarter slot up to one slot; polls every half slot.
    pub fn for_spec(spec: &ChainSpec) -> Self {
        let slot = Duration::from_secs(spec.seconds_per_slot.max(1));
        FollowConfig {
            retry_delay: slot / 4,
            max_retry_delay: slot,
            poll_interval: slot / 2,
        }
    }
}

/// Keeps `backend` on the upstream node's head state until the task is
/// aborted: fetch, then wait for the next epoch, then fetch again. While the
/// upstream cannot be reached the backend keeps its last state (or, with none,
/// answers 503 saying why) and the follower retries with backoff.
pub async fn follow_upstream(
    backend: Arc<StateBackend>,
    client: BeaconNodeClient,
    config: FollowConfig,
) {
    let mut delay = config.retry_delay;
    loop {
        match fetch_head_state(&backend, &client).await {
            Ok(epoch) => {
                delay = config.retry_delay;
                wait_for_epoch_after(&client, epoch, backend.spec(), &config).await;
            }
            Err(error) => {
                warn!(%error, retry_in = ?delay, "cannot load the upstream head state");
                backend.set_waiting_for(error.to_string());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(config.max_retry_delay);
            }
        }
    }
}

/// Fetches, decodes and installs the upstream head state; returns its epoch.
async fn fetch_head_state(
    backend: &Arc<StateBackend>,
    client: &BeaconNodeClient,
) -> Result<Epoch, SourceError> {
    let url = client.base_url().to_string();
    let ssz = client
        .debug_state_ssz(StateId::Head)
        .await
        .map_err(|source| SourceError::Upstream {
            url: url.clone(),
            source,
        })?;
    let fork = match ssz.consensus_version.as_deref() {
        Some(name) => Some(ForkName::parse(&name.to_ascii_lowercase()).ok_or_else(|| {
            SourceError::UnknownConsensusVersion {
                url: url.clone(),
                fork: name.to_string(),
            }
        })?),
        None => None,
    };
    let spec = Arc::clone(backend.spec());
    let what = format!("head state of {url}");
    // Decoding and three shuffles take a second on mainnet: off the executor.
    let loaded =
        tokio::task::spawn_blocking(move || load_state_bytes(&ssz.bytes, &spec, fork, &what))
            .await
            .map_err(|e| SourceError::Interrupted(e.to_string()))??;
    let (slot, epoch) = (loaded.state.slot(), loaded.state.get_current_epoch());
    backend.set_state(loaded);
    info!(%url, slot, epoch, "loaded the upstream head state");
    Ok(epoch)
}

/// Returns once the upstream head is in an epoch after `epoch` (or the
/// upstream fails in a way that calls for a fresh fetch).
async fn wait_for_epoch_after(
    client: &BeaconNodeClient,
    epoch: Epoch,
    spec: &ChainSpec,
    config: &FollowConfig,
) {
    let slots_per_epoch = spec.preset.SLOTS_PER_EPOCH.max(1);
    match wait_on_head_events(client, epoch, slots_per_epoch).await {
        Ok(()) => return,
        Err(reason) => debug!(%reason, "head event stream unavailable; polling the head slot"),
    }
    loop {
        tokio::time::sleep(config.poll_interval).await;
        match client.node_syncing().await {
            Ok(syncing) if syncing.head_slot / slots_per_epoch > epoch => return,
            Ok(_) => {}
            // Let the fetch report the failure and back off.
            Err(_) => return,
        }
    }
}

/// Reads `GET /eth/v1/events?topics=head` until a head event's slot is in an
/// epoch after `epoch`. Errors say why the stream cannot be used.
async fn wait_on_head_events(
    client: &BeaconNodeClient,
    epoch: Epoch,
    slots_per_epoch: u64,
) -> Result<(), String> {
    let mut events = client.events(&["head"]).await.map_err(|e| e.to_string())?;
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| e.to_string())?;
        // Only the slot matters here: read it alone, whatever else a node sends.
        let slot = (event.event == "head")
            .then(|| head_event_slot(&event.data))
            .flatten();
        if slot.is_some_and(|slot| slot / slots_per_epoch > epoch) {
            return Ok(());
        }
    }
    Err(format!(
        "{}/eth/v1/events closed the stream",
        client.base_url()
    ))
}

fn head_event_slot(data: &str) -> Option<Slot> {
    let value: serde_json::Value = serde_json::from_str(data).ok()?;
    value.get("slot")?.as_str()?.parse().ok()
}
