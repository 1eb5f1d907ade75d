//! `BeaconNodeClient`: a typed HTTP client (reqwest) for every Beacon API
//! endpoint this project serves or calls. Errors carry the HTTP status and
//! the server's own message; every request has a timeout.

use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::{
    AttesterDuty, BeaconCommitteeSelection, CommitteeData, DutiesResponse, ErrorMessage,
    ForkResponseData, GenericResponse, GenesisData, IndexedFailure, IsAggregatorRequestItem,
    StateId, StateResponse, SyncCommitteeSelection, SyncDuty, SyncingData, ValidatorData,
    ValidatorId, VersionData,
};
use crate::spec::{Epoch, Fork, ValidatorIndex};

/// Why a call to a beacon node failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL cannot be used.
    #[error("invalid beacon node URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it is unusable.
        reason: String,
    },
    /// The node answered with an error status.
    #[error(
        "{method} {url} answered {status}: {message}{}",
        failures_suffix(failures)
    )]
    Status {
        /// `GET` or `POST`.
        method: &'static str,
        /// The full request URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The `message` of the error body, or the body itself if it is not a Beacon API error.
        message: String,
        /// The `failures` of an indexed error body.
        failures: Vec<IndexedFailure>,
    },
    /// The request did not complete (connection refused, timeout, ...).
    #[error("{method} {url} failed: {source}")]
    Transport {
        /// `GET` or `POST`.
        method: &'static str,
        /// The full request URL.
        url: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// The reply is not what the endpoint returns.
    #[error("{method} {url} returned an unreadable body: {reason}")]
    Decode {
        /// `GET` or `POST`.
        method: &'static str,
        /// The full request URL.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The reply is longer than the client accepts.
    #[error("{method} {url} returned more than {limit} bytes")]
    TooLarge {
        /// `GET` or `POST`.
        method: &'static str,
        /// The full request URL.
        url: String,
        /// The limit in bytes.
        limit: u64,
    },
}

fn failures_suffix(failures: &[IndexedFailure]) -> String {
    failures
        .iter()
        .map(|f| format!("; item {}: {}", f.index, f.message))
        .collect()
}

impl ClientError {
    /// The HTTP status, if the node answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The per-item failures of an indexed error body (empty otherwise).
    pub fn failures(&self) -> &[IndexedFailure] {
        match self {
            ClientError::Status { failures, .. } => failures,
            _ => &[],
        }
    }
}

/// A beacon state as SSZ bytes, with the fork the node says it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SszState {
    /// The `Eth-Consensus-Version` header (e.g. `deneb`), if the node sent one.
    pub consensus_version: Option<String>,
    /// The raw SSZ of the `BeaconState`.
    pub bytes: Bytes,
}

/// Timeouts and size bounds of a [`BeaconNodeClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Deadline of an ordinary request, connection included.
    pub timeout: Duration,
    /// Deadline of `debug_state_ssz`, whose reply is a whole state.
    pub state_timeout: Duration,
    /// Largest accepted JSON reply.
    pub max_json_bytes: u64,
    /// Largest accepted SSZ state.
    pub max_state_bytes: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(12),
            state_timeout: Duration::from_secs(300),
            max_json_bytes: 256 * 1024 * 1024,
            // A mainnet state is a few hundred MB; leave room to grow.
            max_state_bytes: 2 * 1024 * 1024 * 1024,
        }
    }
}

/// A typed client of one beacon node (or of this project's sidecar).
#[derive(Debug, Clone)]
pub struct BeaconNodeClient {
    http: reqwest::Client,
    base: String,
    config: ClientConfig,
}

impl BeaconNodeClient {
    /// A client of the node at `base_url` (e.g. `http://127.0.0.1:5052`) with
    /// the default [`ClientConfig`].
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        Self::with_config(base_url, ClientConfig::default())
    }

    /// A client of the node at `base_url` with the given timeouts and bounds.
    pub fn with_config(base_url: &str, config: ClientConfig) -> Result<Self, ClientError> {
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: base_url.to_string(),
            reason,
        };
        let parsed = reqwest::Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "scheme {:?} is not http or https",
                parsed.scheme()
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(BeaconNodeClient {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            config,
        })
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `POST /eth/v1/validator/is_aggregator`: one answer per item, in order.
    pub async fn is_aggregator(
        &self,
        items: &[IsAggregatorRequestItem],
    ) -> Result<Vec<bool>, ClientError> {
        self.post_data("/eth/v1/validator/is_aggregator", items)
            .await
    }

    /// `POST /eth/v1/validator/beacon_committee_selections`: the combined proofs.
    pub async fn beacon_committee_selections(
        &self,
        selections: &[BeaconCommitteeSelection],
    ) -> Result<Vec<BeaconCommitteeSelection>, ClientError> {
        self.post_data("/eth/v1/validator/beacon_committee_selections", selections)
            .await
    }

    /// `POST /eth/v1/validator/sync_committee_selections`: the combined proofs.
    pub async fn sync_committee_selections(
        &self,
        selections: &[SyncCommitteeSelection],
    ) -> Result<Vec<SyncCommitteeSelection>, ClientError> {
        self.post_data("/eth/v1/validator/sync_committee_selections", selections)
            .await
    }

    /// `GET /eth/v1/node/version`.
    pub async fn node_version(&self) -> Result<String, ClientError> {
        let reply: GenericResponse<VersionData> = self.get_json("/eth/v1/node/version").await?;
        Ok(reply.data.version)
    }

    /// `GET /eth/v1/node/syncing`.
    pub async fn node_syncing(&self) -> Result<SyncingData, ClientError> {
        Ok(self
            .get_json::<GenericResponse<SyncingData>>("/eth/v1/node/syncing")
            .await?
            .data)
    }

    /// `GET /eth/v1/beacon/genesis`.
    pub async fn genesis(&self) -> Result<GenesisData, ClientError> {
        Ok(self
            .get_json::<GenericResponse<GenesisData>>("/eth/v1/beacon/genesis")
            .await?
            .data)
    }

    /// `GET /eth/v1/config/spec`: every constant as the node writes it.
    pub async fn config_spec(
        &self,
    ) -> Result<serde_json::Map<String, serde_json::Value>, ClientError> {
        Ok(self
            .get_json::<GenericResponse<_>>("/eth/v1/config/spec")
            .await?
            .data)
    }

    /// `GET /eth/v1/beacon/states/{state_id}/fork`.
    pub async fn state_fork(&self, state_id: StateId) -> Result<Fork, ClientError> {
        let path = format!("/eth/v1/beacon/states/{state_id}/fork");
        let reply: StateResponse<ForkResponseData> = self.get_json(&path).await?;
        Ok(reply.data.into())
    }

    /// `GET /eth/v1/beacon/states/{state_id}/validators?id=...`; every
    /// validator when `ids` is empty.
    pub async fn state_validators(
        &self,
        state_id: StateId,
        ids: &[ValidatorId],
    ) -> Result<Vec<ValidatorData>, ClientError> {
        let mut path = format!("/eth/v1/beacon/states/{state_id}/validators");
        if !ids.is_empty() {
            let list: Vec<String> = ids.iter().map(ToString::to_string).collect();
            path = format!("{path}?id={}", list.join(","));
        }
        Ok(self.get_json::<StateResponse<_>>(&path).await?.data)
    }

    /// `GET /eth/v1/beacon/states/{state_id}/committees[?epoch=]`.
    pub async fn state_committees(
        &self,
        state_id: StateId,
        epoch: Option<Epoch>,
    ) -> Result<Vec<CommitteeData>, ClientError> {
        let mut path = format!("/eth/v1/beacon/states/{state_id}/committees");
        if let Some(epoch) = epoch {
            path = format!("{path}?epoch={epoch}");
        }
        Ok(self.get_json::<StateResponse<_>>(&path).await?.data)
    }

    /// `POST /eth/v1/validator/duties/attester/{epoch}`.
    pub async fn attester_duties(
        &self,
        epoch: Epoch,
        indices: &[ValidatorIndex],
    ) -> Result<DutiesResponse<Vec<AttesterDuty>>, ClientError> {
        self.post_json(
            &format!("/eth/v1/validator/duties/attester/{epoch}"),
            &quoted(indices),
        )
        .await
    }

    /// `POST /eth/v1/validator/duties/sync/{epoch}`.
    pub async fn sync_duties(
        &self,
        epoch: Epoch,
        indices: &[ValidatorIndex],
    ) -> Result<DutiesResponse<Vec<SyncDuty>>, ClientError> {
        self.post_json(
            &format!("/eth/v1/validator/duties/sync/{epoch}"),
            &quoted(indices),
        )
        .await
    }

    /// `GET /eth/v2/debug/beacon/states/{state_id}` as SSZ.
    pub async fn debug_state_ssz(&self, state_id: StateId) -> Result<SszState, ClientError> {
        let url = self.url(&format!("/eth/v2/debug/beacon/states/{state_id}"));
        let request = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/octet-stream")
            .timeout(self.config.state_timeout);
        let response = send("GET", &url, request).await?;
        let consensus_version = response
            .headers()
            .get("eth-consensus-version")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let bytes = read_limited("GET", &url, response, self.config.max_state_bytes).await?;
        Ok(SszState {
            consensus_version,
            bytes,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        let request = self.http.get(&url).timeout(self.config.timeout);
        self.json_reply("GET", &url, request).await
    }

    async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let request = self.http.post(&url).json(body).timeout(self.config.timeout);
        self.json_reply("POST", &url, request).await
    }

    async fn post_data<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        Ok(self
            .post_json::<B, GenericResponse<T>>(path, body)
            .await?
            .data)
    }

    async fn json_reply<T: DeserializeOwned>(
        &self,
        method: &'static str,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = send(method, url, request).await?;
        let bytes = read_limited(method, url, response, self.config.max_json_bytes).await?;
        serde_json::from_slice(&bytes).map_err(|error| ClientError::Decode {
            method,
            url: url.to_string(),
            reason: error.to_string(),
        })
    }
}

/// Validator indices as the Beacon API writes them in duty requests.
fn quoted(indices: &[ValidatorIndex]) -> Vec<String> {
    indices.iter().map(ToString::to_string).collect()
}

/// Sends a request; an error status becomes [`ClientError::Status`] with the
/// server's message.
async fn send(
    method: &'static str,
    url: &str,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, ClientError> {
    let transport = |source| ClientError::Transport {
        method,
        url: url.to_string(),
        source,
    };
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = read_limited(method, url, response, MAX_ERROR_BODY_BYTES).await?;
    let (message, failures) = match serde_json::from_slice::<ErrorMessage>(&body) {
        Ok(error) => (error.message, error.failures),
        Err(_) => (String::from_utf8_lossy(&body).into_owned(), Vec::new()),
    };
    Err(ClientError::Status {
        method,
        url: url.to_string(),
        status: status.as_u16(),
        message,
        failures,
    })
}

/// Error bodies name at most every item of a maximal request.
const MAX_ERROR_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// Reads a reply body, refusing it once it passes `limit` bytes.
async fn read_limited(
    method: &'static str,
    url: &str,
    mut response: reqwest::Response,
    limit: u64,
) -> Result<Bytes, ClientError> {
    let too_large = || ClientError::TooLarge {
        method,
        url: url.to_string(),
        limit,
    };
    if response
        .content_length()
        .is_some_and(|length| length > limit)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| ClientError::Transport {
            method,
            url: url.to_string(),
            source,
        })?
    {
        if (body.len() as u64).saturating_add(chunk.len() as u64) > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}
