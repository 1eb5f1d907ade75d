//! The head of the chain as the beacon node announces it: a task reading
//! `GET /eth/v1/events?topics=head` (server-sent events) and publishing the
//! slot of each head event, so the attester duty can start as soon as the
//! slot's block arrived instead of waiting for a third of the slot.
//!
//! A beacon node that does not serve the stream (404, 501) is asked no more;
//! a broken stream is reopened after a backoff of a quarter slot up to one
//! slot. Only the `slot` of each event is read; a malformed event is skipped.

use std::time::Duration;

use serde::Deserialize;
use serde_utils::quoted_u64::require_quotes as quoted_u64;
use tokio::sync::watch;
use tracing::{debug, info};

use crate::spec::Slot;

/// Longest event line read; a head event is a few hundred bytes.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// The part of a head event the client reads.
#[derive(Deserialize)]
struct HeadEvent {
    #[serde(with = "quoted_u64")]
    slot: Slot,
}

/// Follows the head events of `base_url` until the receivers are dropped,
/// sending each head's slot; `slot_duration` paces reconnection.
pub async fn follow_head(base_url: String, slot_duration: Duration, heads: watch::Sender<Slot>) {
    let url = format!(
        "{}/eth/v1/events?topics=head",
        base_url.trim_end_matches('/')
    );
    let client = reqwest::Client::new();
    let mut backoff = slot_duration / 4;
    while !heads.is_closed() {
        match read_stream(&client, &url, &heads).await {
            Ok(()) => backoff = slot_duration / 4,
            Err(StreamEnd::NotServed(status)) => {
                info!(%status, "the beacon node serves no head events; attesting at a third of each slot");
                return;
            }
            Err(StreamEnd::Broken(reason)) => {
                debug!(%reason, retry_in_ms = backoff.as_millis(), "head event stream broke");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(slot_duration);
    }
}

enum StreamEnd {
    NotServed(reqwest::StatusCode),
    Broken(String),
}

async fn read_stream(
    client: &reqwest::Client,
    url: &str,
    heads: &watch::Sender<Slot>,
) -> Result<(), StreamEnd> {
    let mut response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(|error| StreamEnd::Broken(error.to_string()))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::NOT_IMPLEMENTED {
        return Err(StreamEnd::NotServed(status));
    }
    if !status.is_success() {
        return Err(StreamEnd::Broken(format!("HTTP {status}")));
    }
    let mut line = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| StreamEnd::Broken(error.to_string()))?
    {
        for byte in chunk {
            if byte != b'\n' {
                if line.len() < MAX_LINE_BYTES {
                    line.push(byte);
                }
                continue;
            }
            if let Some(slot) = head_slot(&line) {
                heads.send_if_modified(|current| {
                    let newer = slot > *current;
                    if newer {
                        *current = slot;
                    }
                    newer
                });
            }
            line.clear();
        }
    }
    Ok(())
}

/// The slot of a `data:` line of a head event.
fn head_slot(line: &[u8]) -> Option<Slot> {
    let text = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let data = text.strip_prefix("data:")?;
    serde_json::from_str::<HeadEvent>(data.trim())
        .ok()
        .map(|event| event.slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_slots_are_read_from_data_lines_only() {
        assert_eq!(
            head_slot(br#"data: {"slot":"12","block":"0x00"}"#),
            Some(12)
        );
        assert_eq!(head_slot(b"data:{\"slot\":\"7\"}\r"), Some(7));
        assert_eq!(head_slot(b"event: head"), None);
        assert_eq!(head_slot(br#"data: {"slot":12}"#), None);
        assert_eq!(head_slot(b"data: not json"), None);
    }
}
