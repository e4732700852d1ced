//! Who is calling: the extractors that authenticate a request (bootstrap token, node token,
//! access token, session cookie), access tokens and passwords, and the identity endpoints
//! (login, refresh, logout, browser sessions).

use std::sync::Arc;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::server::http::router::AppState;

pub(crate) mod extract;
pub mod hashers;
pub(crate) mod identity;
pub(crate) mod passwords;
pub mod session_store;
pub(crate) mod sessions;
pub(crate) mod tokens;

/// This domain's routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(identity::login))
        .routes(routes!(identity::refresh))
        .routes(routes!(identity::logout))
        .routes(routes!(identity::me))
        .routes(routes!(sessions::create, sessions::end))
}
