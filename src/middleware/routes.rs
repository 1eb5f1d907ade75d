//! The routes the middleware serves its validator client itself, as warp
//! filters: `POST /eth/v1/validator/beacon_committee_selections`,
//! `.../sync_committee_selections`, `.../is_aggregator` and `GET /metrics`.
//! Everything else the VC sends goes to the public-key mapping and the
//! reverse proxy mounted behind these (see `service`).

use std::future::Future;
use std::sync::Arc;

use bytes::Buf;
use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::metrics::{Metrics, RequestOutcome, CONTENT_TYPE};
use super::selections::{
    Selections, BEACON_COMMITTEE_SELECTIONS, IS_AGGREGATOR, SYNC_COMMITTEE_SELECTIONS,
};
use super::store::PartialStore;
use crate::api::error::{ApiError, ItemError};
use crate::api::filters::{read_item_list, Limits};
use crate::api::types::GenericResponse;

/// The request headers a list endpoint reads.
struct ListHeaders {
    content_type: Option<String>,
    content_length: Option<u64>,
}

fn list_headers() -> impl Filter<Extract = (ListHeaders,), Error = Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and(warp::header::optional::<u64>("content-length"))
        .map(|content_type, content_length| ListHeaders {
            content_type,
            content_length,
        })
}

/// The middleware's own VC-facing routes.
pub fn middleware_routes(
    selections: Arc<Selections>,
    metrics: Arc<Metrics>,
    store: Arc<PartialStore>,
    limits: Limits,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let context = Context {
        selections,
        metrics: Arc::clone(&metrics),
        limits,
    };
    let beacon = list_route(
        warp::path!("eth" / "v1" / "validator" / "beacon_committee_selections"),
        BEACON_COMMITTEE_SELECTIONS,
        context.clone(),
        |s: Arc<Selections>, items| async move { s.beacon_committee_selections(items).await },
    );
    let sync = list_route(
        warp::path!("eth" / "v1" / "validator" / "sync_committee_selections"),
        SYNC_COMMITTEE_SELECTIONS,
        context.clone(),
        |s: Arc<Selections>, items| async move { s.sync_committee_selections(items).await },
    );
    let is_aggregator = list_route(
        warp::path!("eth" / "v1" / "validator" / "is_aggregator"),
        IS_AGGREGATOR,
        context,
        |s: Arc<Selections>, items| async move { s.is_aggregator(items).await },
    );
    let metrics_route = warp::path!("metrics").and(warp::get()).map(move || {
        let text = metrics.render(&store.stats());
        warp::reply::with_header(text, "content-type", CONTENT_TYPE).into_response()
    });
    beacon
        .or(sync)
        .unify()
        .or(is_aggregator)
        .unify()
        .or(metrics_route)
        .unify()
}

/// What every list route shares.
#[derive(Clone)]
struct Context {
    selections: Arc<Selections>,
    metrics: Arc<Metrics>,
    limits: Limits,
}

/// `POST path`: a JSON list of `T` answered by `handler`.
fn list_route<P, T, R, F, Fut>(
    path: P,
    endpoint: &'static str,
    context: Context,
    handler: F,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone
where
    P: Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static,
    T: DeserializeOwned + Send + 'static,
    R: Serialize,
    F: Fn(Arc<Selections>, Vec<Result<T, ItemError>>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R, ApiError>> + Send,
{
    path.and(warp::post())
        .and(list_headers())
        .and(warp::body::stream())
        .then(move |headers, body| {
            let context = context.clone();
            let handler = handler.clone();
            async move { serve_list(context, headers, body, endpoint, handler).await }
        })
}

/// Reads a JSON list request and answers it with `handler`'s data, or the
/// Beacon API error body.
async fn serve_list<T, R, S, B, F, Fut>(
    context: Context,
    headers: ListHeaders,
    body: S,
    endpoint: &'static str,
    handler: F,
) -> Response
where
    T: DeserializeOwned + Send + 'static,
    R: Serialize,
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
    F: FnOnce(Arc<Selections>, Vec<Result<T, ItemError>>) -> Fut,
    Fut: Future<Output = Result<R, ApiError>>,
{
    let Context {
        selections,
        metrics,
        limits,
    } = context;
    // Cheap refusals first, before a large body is read.
    let items = match selections.ready() {
        Ok(_) => {
            read_item_list::<T, _, _>(
                limits,
                headers.content_type.as_deref(),
                headers.content_length,
                body,
            )
            .await
        }
        Err(error) => Err(error),
    };
    let items = match items {
        Ok(items) => items,
        Err(error) => {
            metrics.request(endpoint, RequestOutcome::Refused);
            return error.into_response();
        }
    };
    match handler(selections, items).await {
        Ok(data) => warp::reply::json(&GenericResponse { data }).into_response(),
        Err(error) => error.into_response(),
    }
}
