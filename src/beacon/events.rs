//! `GET /eth/v1/events?topics=head` on the state-backed node: a server-sent
//! event stream with one `head` event each time the backend's state moves to
//! a new slot (the chain's head advancing), written as the Beacon API writes
//! it (see [`LoadedState::head_event`](super::backend::LoadedState)).
//!
//! The node has no other events: any other topic is refused with 400 naming
//! it. A subscriber that falls more than the backend's channel capacity
//! behind misses the oldest events (logged); keep-alive comments keep an
//! idle stream open through proxies.

use std::convert::Infallible;
use std::sync::Arc;

use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tracing::warn;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::sse::Event;
use warp::{Filter, Rejection, Reply};

use super::backend::{HeadUpdate, StateBackend};
use crate::api::error::error_reply;

/// The topics this node serves.
pub const SERVED_TOPICS: [&str; 1] = ["head"];

/// Why an event stream request is refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventsError {
    /// No `topics` parameter, or an empty one.
    #[error("missing query parameter topics (this node serves: head)")]
    NoTopics,
    /// Topics this node does not serve.
    #[error("topics not served by this node: {}; it serves: head", .0.join(", "))]
    Unserved(Vec<String>),
}

/// The topics of `?topics=a,b&topics=c`, refused unless every one is served.
pub fn parse_topics(query: &str) -> Result<Vec<String>, EventsError> {
    let topics: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "topics")
        .flat_map(|(_, value)| {
            value
                .split(',')
                .map(str::trim)
                .filter(|topic| !topic.is_empty())
                .map(|topic| topic.chars().take(64).collect::<String>())
                .collect::<Vec<_>>()
        })
        .collect();
    if topics.is_empty() {
        return Err(EventsError::NoTopics);
    }
    let unserved: Vec<String> = topics
        .iter()
        .filter(|topic| !SERVED_TOPICS.contains(&topic.as_str()))
        .cloned()
        .collect();
    if unserved.is_empty() {
        Ok(topics)
    } else {
        Err(EventsError::Unserved(unserved))
    }
}

/// The event stream route over `backend`.
pub fn event_routes(
    backend: Arc<StateBackend>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("eth" / "v1" / "events")
        .and(warp::get())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(move |query: String| match parse_topics(&query) {
            // Subscribe now, so no head change after the request is missed.
            Ok(_) => warp::sse::reply(
                warp::sse::keep_alive().stream(head_events(backend.subscribe_heads())),
            )
            .into_response(),
            Err(error) => error_reply(StatusCode::BAD_REQUEST, error.to_string()),
        })
}

/// One `head` event per update received.
fn head_events(receiver: Receiver<HeadUpdate>) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        loop {
            let update = match receiver.recv().await {
                Ok(update) => update,
                Err(RecvError::Lagged(missed)) => {
                    warn!(
                        missed,
                        "a head event subscriber fell behind; events were skipped"
                    );
                    continue;
                }
                Err(RecvError::Closed) => return None,
            };
            // The state's root is a whole-state hash (once per state).
            let event =
                tokio::task::spawn_blocking(move || update.loaded.head_event(update.previous_slot))
                    .await
                    .ok()?;
            match Event::default().event("head").json_data(&event) {
                Ok(event) => return Some((Ok(event), receiver)),
                Err(error) => warn!(%error, "cannot write a head event"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_read_from_lists_and_repeats() {
        assert_eq!(parse_topics("topics=head"), Ok(vec!["head".to_string()]));
        assert_eq!(
            parse_topics("topics=head,%20head"),
            Ok(vec!["head".into(), "head".into()])
        );
        assert_eq!(parse_topics(""), Err(EventsError::NoTopics));
        assert_eq!(parse_topics("topics="), Err(EventsError::NoTopics));
        let error = parse_topics("topics=head,block&topics=attestation").unwrap_err();
        assert_eq!(
            error,
            EventsError::Unserved(vec!["block".into(), "attestation".into()])
        );
        assert!(error.to_string().contains("block, attestation"), "{error}");
    }
}
