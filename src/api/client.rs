//! `BeaconNodeClient`: a typed HTTP client (reqwest) for every Beacon API
//! endpoint this project serves or calls. Errors carry the HTTP status and
//! the server's own message; every request has a timeout.

use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::attestation::{
    Attestation, AttestationPhase0, SignedAggregateAndProof, SingleAttestation,
};
use super::sse::{EventParser, ServerEvent};
use super::ssz_list;
use super::types::{
    AttesterDuty, BeaconCommitteeSelection, BeaconCommitteeSubscription, CommitteeData,
    DutiesResponse, ErrorMessage, ForkResponseData, GenericResponse, GenesisData, HeadEvent,
    IndexedFailure, IsAggregatorRequestItem, ProposerDuty, StateId, StateResponse,
    SyncCommitteeSelection, SyncCommitteeSubscription, SyncDuty, SyncingData, ValidatorData,
    ValidatorId, ValidatorStatus, VersionData,
};
use crate::spec::{
    AttestationData, CommitteeIndex, Epoch, Fork, ForkName, Root, Slot, ValidatorIndex,
};

/// The header naming the fork of a versioned request or reply body.
pub const CONSENSUS_VERSION_HEADER: &str = "eth-consensus-version";

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

    /// `POST /eth/v1/validator/beacon_committee_subscriptions`.
    pub async fn beacon_committee_subscriptions(
        &self,
        subscriptions: &[BeaconCommitteeSubscription],
    ) -> Result<(), ClientError> {
        self.post_no_content(
            "/eth/v1/validator/beacon_committee_subscriptions",
            subscriptions,
        )
        .await
    }

    /// `POST /eth/v1/validator/sync_committee_subscriptions`.
    pub async fn sync_committee_subscriptions(
        &self,
        subscriptions: &[SyncCommitteeSubscription],
    ) -> Result<(), ClientError> {
        self.post_no_content(
            "/eth/v1/validator/sync_committee_subscriptions",
            subscriptions,
        )
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
            // `id=a&id=b`, not `id=a,b`: Lodestar reads the query with
            // Node's `querystring`, to which `a,b` is one id; every client
            // reads the repeated form.
            let list: Vec<String> = ids.iter().map(|id| format!("id={id}")).collect();
            path = format!("{path}?{}", list.join("&"));
        }
        Ok(self.get_json::<StateResponse<_>>(&path).await?.data)
    }

    /// `POST /eth/v1/beacon/states/{state_id}/validators` with body
    /// `{"ids": [...], "statuses": [...]}`; an empty list is sent as absent,
    /// which filters nothing.
    pub async fn post_state_validators(
        &self,
        state_id: StateId,
        ids: &[ValidatorId],
        statuses: &[ValidatorStatus],
    ) -> Result<Vec<ValidatorData>, ClientError> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(skip_serializing_if = "Vec::is_empty")]
            ids: Vec<String>,
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            statuses: &'a [ValidatorStatus],
        }
        let body = Body {
            ids: ids.iter().map(ToString::to_string).collect(),
            statuses,
        };
        let path = format!("/eth/v1/beacon/states/{state_id}/validators");
        Ok(self
            .post_json::<_, StateResponse<_>>(&path, &body)
            .await?
            .data)
    }

    /// The records of `ids` in the state: `POST .../validators`, or where
    /// the node does not serve it (404 or 405: the `POST` came later to the
    /// Beacon API; Lodestar 1.5.1 has only `GET`), `GET` with the ids in the
    /// query, 64 per request so that the URL stays near 6 kB.
    pub async fn validators_by_ids(
        &self,
        state_id: StateId,
        ids: &[ValidatorId],
    ) -> Result<Vec<ValidatorData>, ClientError> {
        const IDS_PER_GET: usize = 64;
        match self.post_state_validators(state_id, ids, &[]).await {
            Err(error) if matches!(error.status(), Some(404 | 405)) => {
                let mut records = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(IDS_PER_GET) {
                    records.extend(self.state_validators(state_id, chunk).await?);
                }
                Ok(records)
            }
            answer => answer,
        }
    }

    /// `GET /eth/v1/beacon/states/{state_id}/validators/{validator_id}`.
    pub async fn state_validator(
        &self,
        state_id: StateId,
        id: ValidatorId,
    ) -> Result<ValidatorData, ClientError> {
        let path = format!("/eth/v1/beacon/states/{state_id}/validators/{id}");
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

    /// `GET /eth/v1/validator/duties/proposer/{epoch}`.
    pub async fn proposer_duties(
        &self,
        epoch: Epoch,
    ) -> Result<DutiesResponse<Vec<ProposerDuty>>, ClientError> {
        self.get_json(&format!("/eth/v1/validator/duties/proposer/{epoch}"))
            .await
    }

    /// `GET /eth/v1/validator/attestation_data?slot&committee_index`.
    pub async fn attestation_data(
        &self,
        slot: Slot,
        committee_index: CommitteeIndex,
    ) -> Result<AttestationData, ClientError> {
        let path = format!(
            "/eth/v1/validator/attestation_data?slot={slot}&committee_index={committee_index}"
        );
        Ok(self
            .get_json::<GenericResponse<AttestationData>>(&path)
            .await?
            .data)
    }

    /// `POST /eth/v1/beacon/pool/attestations` (phase0 .. deneb attestations).
    pub async fn post_attestations_v1(
        &self,
        attestations: &[AttestationPhase0],
    ) -> Result<(), ClientError> {
        self.post_no_content("/eth/v1/beacon/pool/attestations", attestations)
            .await
    }

    /// `POST /eth/v2/beacon/pool/attestations` with `Eth-Consensus-Version`:
    /// electra's `SingleAttestation`s.
    pub async fn post_attestations_v2(
        &self,
        fork: ForkName,
        attestations: &[SingleAttestation],
    ) -> Result<(), ClientError> {
        self.post_versioned("/eth/v2/beacon/pool/attestations", fork, attestations)
            .await
    }

    /// `POST /eth/v2/beacon/pool/attestations` with `Eth-Consensus-Version`:
    /// phase0 .. deneb `Attestation`s.
    pub async fn post_attestations_v2_phase0(
        &self,
        fork: ForkName,
        attestations: &[AttestationPhase0],
    ) -> Result<(), ClientError> {
        self.post_versioned("/eth/v2/beacon/pool/attestations", fork, attestations)
            .await
    }

    /// `POST /eth/v1/beacon/pool/attestations` with an SSZ body
    /// (`List[Attestation]`).
    pub async fn post_attestations_v1_ssz(
        &self,
        attestations: &[AttestationPhase0],
    ) -> Result<(), ClientError> {
        let items: Vec<Vec<u8>> = attestations
            .iter()
            .map(AttestationPhase0::as_ssz_bytes)
            .collect();
        self.post_ssz(
            "/eth/v1/beacon/pool/attestations",
            None,
            ssz_list::encode_variable(&items),
        )
        .await
    }

    /// `POST /eth/v2/beacon/pool/attestations` with an SSZ body
    /// (`List[SingleAttestation]`, electra on).
    pub async fn post_attestations_v2_ssz(
        &self,
        fork: ForkName,
        attestations: &[SingleAttestation],
    ) -> Result<(), ClientError> {
        let body: Vec<u8> = attestations
            .iter()
            .flat_map(SingleAttestation::as_ssz_bytes)
            .collect();
        self.post_ssz("/eth/v2/beacon/pool/attestations", Some(fork), body)
            .await
    }

    /// `GET /eth/v1/validator/aggregate_attestation?attestation_data_root&slot`
    /// (phase0 .. deneb).
    pub async fn aggregate_attestation_v1(
        &self,
        attestation_data_root: Root,
        slot: Slot,
    ) -> Result<AttestationPhase0, ClientError> {
        let path = format!(
            "/eth/v1/validator/aggregate_attestation?attestation_data_root={attestation_data_root}&slot={slot}"
        );
        Ok(self
            .get_json::<GenericResponse<AttestationPhase0>>(&path)
            .await?
            .data)
    }

    /// `GET /eth/v2/validator/aggregate_attestation?attestation_data_root&slot&committee_index`.
    pub async fn aggregate_attestation_v2(
        &self,
        attestation_data_root: Root,
        slot: Slot,
        committee_index: CommitteeIndex,
    ) -> Result<Attestation, ClientError> {
        let path = format!(
            "/eth/v2/validator/aggregate_attestation?attestation_data_root={attestation_data_root}&slot={slot}&committee_index={committee_index}"
        );
        Ok(self
            .get_json::<GenericResponse<Attestation>>(&path)
            .await?
            .data)
    }

    /// `POST /eth/v1/validator/aggregate_and_proofs` (phase0 .. deneb aggregates).
    pub async fn post_aggregate_and_proofs_v1(
        &self,
        aggregates: &[SignedAggregateAndProof],
    ) -> Result<(), ClientError> {
        self.post_no_content("/eth/v1/validator/aggregate_and_proofs", aggregates)
            .await
    }

    /// `POST /eth/v2/validator/aggregate_and_proofs` with `Eth-Consensus-Version`.
    pub async fn post_aggregate_and_proofs_v2(
        &self,
        fork: ForkName,
        aggregates: &[SignedAggregateAndProof],
    ) -> Result<(), ClientError> {
        self.post_versioned("/eth/v2/validator/aggregate_and_proofs", fork, aggregates)
            .await
    }

    /// `POST /eth/v2/validator/aggregate_and_proofs` with an SSZ body
    /// (`List[SignedAggregateAndProof]`).
    pub async fn post_aggregate_and_proofs_v2_ssz(
        &self,
        fork: ForkName,
        aggregates: &[SignedAggregateAndProof],
    ) -> Result<(), ClientError> {
        let items: Vec<Vec<u8>> = aggregates
            .iter()
            .map(SignedAggregateAndProof::as_ssz_bytes)
            .collect();
        self.post_ssz(
            "/eth/v2/validator/aggregate_and_proofs",
            Some(fork),
            ssz_list::encode_variable(&items),
        )
        .await
    }

    /// `GET /eth/v1/events?topics=...`: the node's server-sent events, read
    /// as they come (the stream has no deadline; connecting has).
    pub async fn events(&self, topics: &[&str]) -> Result<EventStream, ClientError> {
        let url = self.url(&format!("/eth/v1/events?topics={}", topics.join(",")));
        let request = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        let response = send("GET", &url, request).await?;
        Ok(EventStream {
            url,
            response,
            parser: EventParser::default(),
            ready: std::collections::VecDeque::new(),
        })
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

    /// A POST whose success reply carries nothing the caller needs; its body
    /// is read (bounded) and dropped.
    async fn post_no_content<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(), ClientError> {
        let url = self.url(path);
        let request = self.http.post(&url).json(body).timeout(self.config.timeout);
        let response = send("POST", &url, request).await?;
        read_limited("POST", &url, response, self.config.max_json_bytes).await?;
        Ok(())
    }

    /// [`Self::post_no_content`] with the body's fork in `Eth-Consensus-Version`.
    async fn post_versioned<B: Serialize + ?Sized>(
        &self,
        path: &str,
        fork: ForkName,
        body: &B,
    ) -> Result<(), ClientError> {
        let url = self.url(path);
        let request = self
            .http
            .post(&url)
            .header(CONSENSUS_VERSION_HEADER, fork.as_str())
            .json(body)
            .timeout(self.config.timeout);
        let response = send("POST", &url, request).await?;
        read_limited("POST", &url, response, self.config.max_json_bytes).await?;
        Ok(())
    }

    /// A POST of an SSZ body, with `Eth-Consensus-Version` when `fork` is given.
    async fn post_ssz(
        &self,
        path: &str,
        fork: Option<ForkName>,
        body: Vec<u8>,
    ) -> Result<(), ClientError> {
        let url = self.url(path);
        let mut request = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .timeout(self.config.timeout);
        if let Some(fork) = fork {
            request = request.header(CONSENSUS_VERSION_HEADER, fork.as_str());
        }
        let response = send("POST", &url, request).await?;
        read_limited("POST", &url, response, self.config.max_json_bytes).await?;
        Ok(())
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

/// The events of a `GET /eth/v1/events` stream, as they arrive.
#[derive(Debug)]
pub struct EventStream {
    url: String,
    response: reqwest::Response,
    parser: EventParser,
    ready: std::collections::VecDeque<ServerEvent>,
}

impl EventStream {
    /// The next event; `None` once the node closes the stream.
    pub async fn next(&mut self) -> Option<Result<ServerEvent, ClientError>> {
        while self.ready.is_empty() {
            let chunk = match self.response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return None,
                Err(source) => {
                    return Some(Err(ClientError::Transport {
                        method: "GET",
                        url: self.url.clone(),
                        source,
                    }))
                }
            };
            match self.parser.push(&chunk) {
                Ok(events) => self.ready.extend(events),
                Err(error) => {
                    return Some(Err(ClientError::Decode {
                        method: "GET",
                        url: self.url.clone(),
                        reason: error.to_string(),
                    }))
                }
            }
        }
        self.ready.pop_front().map(Ok)
    }

    /// The next `head` event (other events are skipped), decoded.
    pub async fn next_head(&mut self) -> Option<Result<HeadEvent, ClientError>> {
        loop {
            let event = match self.next().await? {
                Ok(event) => event,
                Err(error) => return Some(Err(error)),
            };
            if event.event == "head" {
                return Some(serde_json::from_str(&event.data).map_err(|error| {
                    ClientError::Decode {
                        method: "GET",
                        url: self.url.clone(),
                        reason: format!(
                            "head event {}: {error}",
                            event.data.chars().take(300).collect::<String>()
                        ),
                    }
                }));
            }
        }
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
    match read_body_within(&mut response, limit).await {
        Ok(body) => Ok(Bytes::from(body)),
        Err(BodyReadError::TooLarge { .. }) => Err(ClientError::TooLarge {
            method,
            url: url.to_string(),
            limit,
        }),
        Err(BodyReadError::Read(source)) => Err(ClientError::Transport {
            method,
            url: url.to_string(),
            source,
        }),
    }
}

/// Why a response body was not read whole.
#[derive(Debug)]
pub(crate) enum BodyReadError {
    /// The announced length, or what arrived so far, passed the limit.
    TooLarge {
        /// The length that passed it.
        length: u64,
    },
    /// The connection failed mid-body.
    Read(reqwest::Error),
}

/// Reads a response body, refusing it as soon as its announced length or
/// what has arrived passes `limit` bytes.
pub(crate) async fn read_body_within(
    response: &mut reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, BodyReadError> {
    if let Some(length) = response.content_length().filter(|&length| length > limit) {
        return Err(BodyReadError::TooLarge { length });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyReadError::Read)? {
        let length = (body.len() as u64).saturating_add(chunk.len() as u64);
        if length > limit {
            return Err(BodyReadError::TooLarge { length });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    //! The client against a fake beacon node on 127.0.0.1:0 that answers in
    //! the Beacon API's JSON, written by hand from the fulu-mainnet oracle
    //! vectors, so that paths, queries, envelopes and decoding are all checked.

    use std::net::SocketAddr;
    use std::sync::Arc;

    use serde_json::{json, Value};
    use sha2::{Digest, Sha256};
    use warp::http::StatusCode;
    use warp::Filter;

    use super::*;
    use crate::api::test_support::{self, hex_bytes as hex, u64_list};
    use crate::api::types::PublicKeyBytes;
    use crate::spec::Root;

    const FOLDER: &str = "fulu-mainnet-1024";

    fn vectors() -> Arc<Value> {
        Arc::new(test_support::vectors(FOLDER))
    }

    fn quoted(value: &Value) -> Value {
        Value::String(value.as_u64().unwrap().to_string())
    }

    /// Attester duties of `indices` at `epoch`, found in the vectors' committees.
    fn attester_duties(v: &Value, epoch: u64, indices: &[u64]) -> Vec<Value> {
        let epoch = v["epochs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["epoch"] == epoch)
            .unwrap();
        let mut duties = Vec::new();
        for committee in epoch["committees"].as_array().unwrap() {
            let members = committee["members"].as_array().unwrap();
            for (position, member) in members.iter().enumerate() {
                if indices.contains(&member.as_u64().unwrap()) {
                    duties.push(json!({
                        "pubkey": format!("0x{}", "00".repeat(48)),
                        "validator_index": quoted(member),
                        "committee_index": quoted(&committee["committee_index"]),
                        "committee_length": members.len().to_string(),
                        "committees_at_slot": quoted(&epoch["committees_per_slot"]),
                        "validator_committee_index": position.to_string(),
                        "slot": quoted(&committee["slot"]),
                    }));
                }
            }
        }
        duties
    }

    /// The fake node: each route answers what a Beacon API node would.
    async fn fake_node(v: Arc<Value>) -> SocketAddr {
        let state = v["state"].clone();
        let version = warp::path!("eth" / "v1" / "node" / "version")
            .map(|| warp::reply::json(&json!({"data": {"version": "fake-node/v1.0.0"}})));
        let syncing = warp::path!("eth" / "v1" / "node" / "syncing").map({
            let slot = quoted(&state["slot"]);
            move || warp::reply::json(&json!({"data": {"head_slot": slot, "sync_distance": "0", "is_syncing": false}}))
        });
        let genesis = warp::path!("eth" / "v1" / "beacon" / "genesis").map({
            let v = v.clone();
            move || {
                warp::reply::json(&json!({"data": {
                    "genesis_time": quoted(&v["state"]["genesis_time"]),
                    "genesis_validators_root": v["state"]["genesis_validators_root"],
                    "genesis_fork_version": v["constants"]["GENESIS_FORK_VERSION"],
                }}))
            }
        });
        let spec = warp::path!("eth" / "v1" / "config" / "spec").map({
            let slots = quoted(&v["constants"]["SLOTS_PER_EPOCH"]);
            move || {
                warp::reply::json(
                    &json!({"data": {"SLOTS_PER_EPOCH": slots, "CONFIG_NAME": "mainnet"}}),
                )
            }
        });
        let fork = warp::path!("eth" / "v1" / "beacon" / "states" / String / "fork").map({
            let fork = state["fork"].clone();
            move |id: String| {
                let reply = json!({"execution_optimistic": false, "finalized": false, "data": {
                    "previous_version": fork["previous_version"],
                    "current_version": fork["current_version"],
                    "epoch": quoted(&fork["epoch"]),
                }});
                let status = if id == "head" {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                };
                let body = if id == "head" {
                    reply
                } else {
                    json!({"code": 404, "message": "State not found"})
                };
                warp::reply::with_status(warp::reply::json(&body), status)
            }
        });
        let validators = warp::path!("eth" / "v1" / "beacon" / "states" / "head" / "validators")
            .and(warp::query::raw())
            .map(|query: String| {
                // `id=a&id=b` or `id=a,b`, as the Beacon API allows both.
                let ids: Vec<String> = form_urlencoded::parse(query.as_bytes())
                    .filter(|(key, _)| key == "id")
                    .flat_map(|(_, value)| {
                        value.split(',').map(str::to_string).collect::<Vec<_>>()
                    })
                    .collect();
                let record = json!({
                    "pubkey": ids.get(1).cloned().unwrap_or_default(),
                    "withdrawal_credentials": format!("0x{}", "00".repeat(32)),
                    "effective_balance": "32000000000", "slashed": false,
                    "activation_eligibility_epoch": "0", "activation_epoch": "0",
                    "exit_epoch": "18446744073709551615", "withdrawable_epoch": "18446744073709551615",
                });
                let index = ids.first().cloned().unwrap_or_default();
                warp::reply::json(&json!({"data": [
                    {"index": index, "balance": "32000000000", "status": "active_ongoing", "validator": record}
                ]}))
            });
        let committees = warp::path!("eth" / "v1" / "beacon" / "states" / "head" / "committees")
            .and(warp::query::<std::collections::HashMap<String, String>>())
            .map({
                let v = v.clone();
                move |query: std::collections::HashMap<String, String>| {
                    let epoch: u64 = query["epoch"].parse().unwrap();
                    let epoch = v["epochs"].as_array().unwrap().iter().find(|e| e["epoch"] == epoch).unwrap();
                    let data: Vec<Value> = epoch["committees"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| {
                            let members: Vec<Value> = c["members"].as_array().unwrap().iter().map(quoted).collect();
                            json!({"index": quoted(&c["committee_index"]), "slot": quoted(&c["slot"]), "validators": members})
                        })
                        .collect();
                    warp::reply::json(&json!({"data": data}))
                }
            });
        let duties = warp::path!("eth" / "v1" / "validator" / "duties" / "attester" / u64)
            .and(warp::post())
            .and(warp::body::json())
            .map({
                let v = v.clone();
                move |epoch: u64, indices: Vec<String>| {
                    let indices: Vec<u64> = indices.iter().map(|i| i.parse().unwrap()).collect();
                    let root = format!("0x{}", "11".repeat(32));
                    warp::reply::json(&json!({"dependent_root": root, "data": attester_duties(&v, epoch, &indices)}))
                }
            });
        let sync_duties = warp::path!("eth" / "v1" / "validator" / "duties" / "sync" / u64)
            .and(warp::post())
            .and(warp::body::json())
            .map({
                let v = v.clone();
                move |_epoch: u64, indices: Vec<String>| {
                    let members = v["sync_committee"]["current_sync_committee_validator_indices"].as_array().unwrap();
                    let data: Vec<Value> = indices
                        .iter()
                        .map(|index| {
                            let positions: Vec<String> = members
                                .iter()
                                .enumerate()
                                .filter(|(_, m)| m.as_u64().unwrap().to_string() == *index)
                                .map(|(p, _)| p.to_string())
                                .collect();
                            let pubkey = format!("0x{}", "00".repeat(48));
                            json!({"pubkey": pubkey, "validator_index": index, "validator_sync_committee_indices": positions})
                        })
                        .collect();
                    warp::reply::json(&json!({"execution_optimistic": false, "data": data}))
                }
            });
        let ssz = warp::path!("eth" / "v2" / "debug" / "beacon" / "states" / "head")
            .and(warp::header::exact("accept", "application/octet-stream"))
            .map(|| {
                let bytes = std::fs::read(test_support::fixture_path(FOLDER, "state.ssz")).unwrap();
                warp::reply::with_header(bytes, "eth-consensus-version", "fulu")
            });
        let text_error = warp::path!("eth" / "v1" / "text_error")
            .map(|| warp::reply::with_status("upstream exploded", StatusCode::BAD_GATEWAY));
        let routes = version
            .or(syncing)
            .or(genesis)
            .or(spec)
            .or(fork)
            .or(validators)
            .or(committees)
            .or(duties)
            .or(sync_duties)
            .or(ssz)
            .or(text_error);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(routes).incoming(listener).run());
        addr
    }

    #[tokio::test]
    async fn every_call_decodes_what_a_beacon_node_sends() {
        let v = vectors();
        let addr = fake_node(v.clone()).await;
        let client = BeaconNodeClient::new(&format!("http://{addr}/")).unwrap();
        let state = &v["state"];

        assert_eq!(client.node_version().await.unwrap(), "fake-node/v1.0.0");
        assert_eq!(
            client.node_syncing().await.unwrap().head_slot,
            state["slot"].as_u64().unwrap()
        );

        let genesis = client.genesis().await.unwrap();
        assert_eq!(
            genesis.genesis_time,
            state["genesis_time"].as_u64().unwrap()
        );
        assert_eq!(
            genesis.genesis_validators_root.0,
            hex::<32>(&state["genesis_validators_root"])
        );
        assert_eq!(
            genesis.genesis_fork_version,
            hex::<4>(&v["constants"]["GENESIS_FORK_VERSION"])
        );

        let spec = client.config_spec().await.unwrap();
        assert_eq!(
            spec["SLOTS_PER_EPOCH"],
            quoted(&v["constants"]["SLOTS_PER_EPOCH"])
        );

        let fork = client.state_fork(StateId::Head).await.unwrap();
        let expected = Fork {
            previous_version: hex(&state["fork"]["previous_version"]),
            current_version: hex(&state["fork"]["current_version"]),
            epoch: state["fork"]["epoch"].as_u64().unwrap(),
        };
        assert_eq!(fork, expected);

        let case = &v["attestation_cases"][0];
        let pubkey = PublicKeyBytes(hex(&case["validator_pubkey"]));
        let index = case["validator_index"].as_u64().unwrap();
        let ids = [ValidatorId::Index(index), ValidatorId::PublicKey(pubkey)];
        let validators = client.state_validators(StateId::Head, &ids).await.unwrap();
        assert_eq!(
            (validators[0].index, validators[0].validator.pubkey),
            (index, pubkey)
        );
        assert_eq!(
            validators[0].validator.exit_epoch,
            crate::spec::FAR_FUTURE_EPOCH
        );

        let epoch = &v["epochs"][2];
        let committees = client
            .state_committees(StateId::Head, epoch["epoch"].as_u64())
            .await
            .unwrap();
        let listed = epoch["committees"].as_array().unwrap();
        assert_eq!(committees.len(), listed.len());
        for (got, want) in committees.iter().zip(listed) {
            let members = u64_list(&want["members"]);
            assert_eq!(
                (got.slot, got.index, &got.validators),
                (
                    want["slot"].as_u64().unwrap(),
                    want["committee_index"].as_u64().unwrap(),
                    &members
                )
            );
        }
    }

    #[tokio::test]
    async fn duties_and_the_ssz_state_come_through() {
        let v = vectors();
        let addr = fake_node(v.clone()).await;
        let client = BeaconNodeClient::new(&format!("http://{addr}")).unwrap();

        // Every case of the current epoch is an attester duty at its slot and position.
        let cases: Vec<&Value> = v["attestation_cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["epoch"] == 5)
            .collect();
        let indices: Vec<u64> = cases
            .iter()
            .map(|c| c["validator_index"].as_u64().unwrap())
            .collect();
        let duties = client.attester_duties(5, &indices).await.unwrap();
        assert_eq!(duties.dependent_root, Some(Root::from([0x11; 32])));
        for case in &cases {
            let duty = duties
                .data
                .iter()
                .find(|d| d.validator_index == case["validator_index"])
                .unwrap();
            assert_eq!(duty.slot, case["slot"].as_u64().unwrap());
            assert_eq!(
                duty.committee_length,
                case["committee_length"].as_u64().unwrap()
            );
            assert_eq!(
                duty.validator_committee_index,
                case["position_in_committee"].as_u64().unwrap()
            );
        }

        let sync_case = &v["sync_cases"][0];
        let sync = client
            .sync_duties(5, &[sync_case["validator_index"].as_u64().unwrap()])
            .await
            .unwrap();
        let positions = &sync.data[0].validator_sync_committee_indices;
        let subcommittee_size = v["sync_committee"]["subcommittee_size"].as_u64().unwrap();
        for position in sync_case["positions_in_subcommittee"].as_array().unwrap() {
            let global = sync_case["subcommittee_index"].as_u64().unwrap() * subcommittee_size
                + position.as_u64().unwrap();
            assert!(positions.contains(&global), "{positions:?} lacks {global}");
        }

        let state = client.debug_state_ssz(StateId::Head).await.unwrap();
        assert_eq!(state.consensus_version.as_deref(), Some("fulu"));
        assert_eq!(
            state.bytes.len() as u64,
            v["state"]["ssz_length"].as_u64().unwrap()
        );
        let digest = format!("0x{}", hex::encode(Sha256::digest(&state.bytes)));
        assert_eq!(digest, v["state"]["ssz_sha256"].as_str().unwrap());
    }

    #[tokio::test]
    async fn errors_carry_the_status_and_the_servers_message() {
        let addr = fake_node(vectors()).await;
        let client = BeaconNodeClient::new(&format!("http://{addr}")).unwrap();

        let error = client.state_fork(StateId::Finalized).await.unwrap_err();
        assert_eq!(error.status(), Some(404));
        assert!(
            error.to_string().ends_with("answered 404: State not found"),
            "{error}"
        );

        let error = client
            .get_json::<Value>("/eth/v1/text_error")
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(502));
        assert!(error.to_string().ends_with("upstream exploded"), "{error}");

        let tiny = ClientConfig {
            max_state_bytes: 1024,
            ..ClientConfig::default()
        };
        let small = BeaconNodeClient::with_config(&format!("http://{addr}"), tiny).unwrap();
        assert!(matches!(
            small.debug_state_ssz(StateId::Head).await,
            Err(ClientError::TooLarge { limit: 1024, .. })
        ));

        // Nothing listens on a port just released.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let down = BeaconNodeClient::new(&format!("http://{closed}")).unwrap();
        assert!(matches!(
            down.node_version().await,
            Err(ClientError::Transport { .. })
        ));

        assert!(matches!(
            BeaconNodeClient::new("ftp://x"),
            Err(ClientError::InvalidUrl { .. })
        ));
        assert!(matches!(
            BeaconNodeClient::new("not a url"),
            Err(ClientError::InvalidUrl { .. })
        ));
    }
}
