//! The validator-client routes the state-backed node cannot serve, answered
//! `501 Not Implemented` with a Beacon API error body saying why, instead of
//! the 404 a validator client would take for a misconfigured URL.
//!
//! The node holds one state and its chain has no blocks (on the devnet every
//! slot is empty): it cannot produce, import or publish blocks, has no block
//! or header to return by id, keeps no sync committee message pool, has no
//! execution layer or builder for validator registrations and sees no
//! network to judge liveness by. Validator clients call these routes on
//! their own schedule (a proposer's slot, a sync committee member's slot,
//! doppelganger checks); with 501 they log the reason and carry on with the
//! duties the node does serve.
//!
//! Mount [`empty_chain_not_implemented`] after the served routes: it names
//! only the paths listed there, so it never shadows one of them.

use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::api::error::ApiError;

/// Why the node cannot produce blocks.
const NO_PRODUCTION: &str = "this devnet node holds one state and has no blocks: it cannot \
     produce blocks (it has no execution layer and no operation pool, and its chain takes no \
     blocks)";
/// Why the node cannot take blocks.
const NO_PUBLICATION: &str = "this devnet node holds one state and has no blocks: it cannot \
     import or publish blocks (its chain stays empty by design)";
/// Why the node has no block or header to return.
const NO_BLOCKS: &str = "this devnet node holds one state and has no blocks: it serves no block, \
     block root or block header by id";
/// Why sync committee messages and contributions are refused.
const NO_SYNC_POOL: &str = "this devnet node keeps no sync committee message pool: it can take \
     no sync committee message and produce or take no contribution";
/// Why validator registrations are refused.
const NO_BUILDER: &str = "this devnet node has no execution layer and no builder: validator \
     registrations have no use here";
/// Why liveness is unknown.
const NO_LIVENESS: &str = "this devnet node sees no network and no blocks: it cannot tell \
     whether a validator was live";

/// `501 Not Implemented`, naming the route and why: `endpoint` is its method
/// and path pattern (e.g. `GET /eth/v3/validator/blocks/{slot}`).
fn not_implemented(endpoint: &str, why: &str) -> Response {
    ApiError::NotImplemented(format!("{endpoint} is not implemented: {why}")).into_response()
}

/// Every validator-client route a block-less, single-state node cannot
/// serve, each answered 501 with a Beacon API error body naming the route
/// and why:
///
/// - block production: `GET /eth/v3/validator/blocks/{slot}`,
///   `GET /eth/v2/validator/blocks/{slot}`,
///   `GET /eth/v1/validator/blinded_blocks/{slot}`
/// - block publication: `POST /eth/v1/beacon/blocks`,
///   `POST /eth/v2/beacon/blocks`, `POST /eth/v1/beacon/blinded_blocks`,
///   `POST /eth/v2/beacon/blinded_blocks`
/// - blocks by id: `GET /eth/v1/beacon/blocks/{block_id}/root`,
///   `GET /eth/v1/beacon/headers/{block_id}`
/// - sync committees: `POST /eth/v1/beacon/pool/sync_committees`,
///   `GET /eth/v1/validator/sync_committee_contribution`,
///   `POST /eth/v1/validator/contribution_and_proofs`
/// - `POST /eth/v1/validator/register_validator`
/// - `POST /eth/v1/validator/liveness/{epoch}`
///
/// Any other path or method is rejected as not found. The request body is
/// not read.
pub fn empty_chain_not_implemented() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone
{
    let production = warp::path!("eth" / "v3" / "validator" / "blocks" / String)
        .map(|_slot: String| "GET /eth/v3/validator/blocks/{slot}")
        .or(warp::path!("eth" / "v2" / "validator" / "blocks" / String)
            .map(|_slot: String| "GET /eth/v2/validator/blocks/{slot}"))
        .unify()
        .or(
            warp::path!("eth" / "v1" / "validator" / "blinded_blocks" / String)
                .map(|_slot: String| "GET /eth/v1/validator/blinded_blocks/{slot}"),
        )
        .unify()
        .and(warp::get())
        .map(|endpoint: &str| not_implemented(endpoint, NO_PRODUCTION));
    let publication = warp::path!("eth" / "v1" / "beacon" / "blocks")
        .map(|| "POST /eth/v1/beacon/blocks")
        .or(warp::path!("eth" / "v2" / "beacon" / "blocks").map(|| "POST /eth/v2/beacon/blocks"))
        .unify()
        .or(warp::path!("eth" / "v1" / "beacon" / "blinded_blocks")
            .map(|| "POST /eth/v1/beacon/blinded_blocks"))
        .unify()
        .or(warp::path!("eth" / "v2" / "beacon" / "blinded_blocks")
            .map(|| "POST /eth/v2/beacon/blinded_blocks"))
        .unify()
        .and(warp::post())
        .map(|endpoint: &str| not_implemented(endpoint, NO_PUBLICATION));
    let by_id = warp::path!("eth" / "v1" / "beacon" / "blocks" / String / "root")
        .map(|_block_id: String| "GET /eth/v1/beacon/blocks/{block_id}/root")
        .or(warp::path!("eth" / "v1" / "beacon" / "headers" / String)
            .map(|_block_id: String| "GET /eth/v1/beacon/headers/{block_id}"))
        .unify()
        .and(warp::get())
        .map(|endpoint: &str| not_implemented(endpoint, NO_BLOCKS));
    let sync_messages = warp::path!("eth" / "v1" / "beacon" / "pool" / "sync_committees")
        .and(warp::post())
        .map(|| "POST /eth/v1/beacon/pool/sync_committees")
        .or(
            warp::path!("eth" / "v1" / "validator" / "sync_committee_contribution")
                .and(warp::get())
                .map(|| "GET /eth/v1/validator/sync_committee_contribution"),
        )
        .unify()
        .or(
            warp::path!("eth" / "v1" / "validator" / "contribution_and_proofs")
                .and(warp::post())
                .map(|| "POST /eth/v1/validator/contribution_and_proofs"),
        )
        .unify()
        .map(|endpoint: &str| not_implemented(endpoint, NO_SYNC_POOL));
    let registration = warp::path!("eth" / "v1" / "validator" / "register_validator")
        .and(warp::post())
        .map(|| not_implemented("POST /eth/v1/validator/register_validator", NO_BUILDER));
    let liveness = warp::path!("eth" / "v1" / "validator" / "liveness" / String)
        .and(warp::post())
        .map(|_epoch: String| {
            not_implemented("POST /eth/v1/validator/liveness/{epoch}", NO_LIVENESS)
        });

    production
        .or(publication)
        .unify()
        .or(by_id)
        .unify()
        .or(sync_messages)
        .unify()
        .or(registration)
        .unify()
        .or(liveness)
        .unify()
}
