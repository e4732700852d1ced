//! Real time: a WebSocket hub that resumes and never stalls (#22).
//!
//! - `stream`: every published change, numbered per tenant in the transaction that makes it;
//!   `messages`: the message types and who publishes them.
//! - `wake`: how a commit tells the hubs (in process on SQLite; `pg_notify` to every replica
//!   on PostgreSQL, heard on the one listening connection of `jobs::wake`).
//! - `hub`: this replica's connections by tenant and the pump that fans new messages out,
//!   each connection behind a bounded queue (a slow consumer is closed, never waited for).
//! - `api` (tickets and the upgrade), `connection` (one connection's life), `frames` (the
//!   client's frames, topics and their authorisation, close codes), `tickets` (single-use
//!   tickets, stored so that any replica takes them), `catalogue` (every message type and its
//!   schema, and the AsyncAPI document made from them).

use std::sync::Arc;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::server::http::router::AppState;

pub(crate) mod api;
pub mod catalogue;
pub(crate) mod connection;
pub mod frames;
pub(crate) mod hub;
pub mod messages;
pub mod stream;
pub mod tickets;
pub(crate) mod wake;

/// This domain's routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(api::ticket))
        .routes(routes!(api::open))
        .routes(routes!(catalogue::serve))
}
