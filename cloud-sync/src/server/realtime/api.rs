//! `/api/v1/realtime`: a ticket for a WebSocket, and the WebSocket itself. No token ever goes in
//! a URL (URLs land in proxy logs): the caller trades their access token or session for a
//! ticket good once for 30 s, and opens `GET /api/v1/realtime/ws?ticket=…`. A missing, unknown,
//! expired, spent or foreign ticket is refused with 401 before the upgrade.

use std::sync::Arc;

use axum::{
    extract::{Query, State, WebSocketUpgrade},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::server::{
    auth::{
        extract as auth,
        identity::{self, Actor, Caller},
        sessions,
    },
    http::{problem::store_problem, router::AppState},
    realtime::{
        frames,
        tickets::{TICKET_TTL_MS, Ticket},
    },
};
use rollcall_service::problem::Problem;

#[derive(Serialize, ToSchema)]
pub(crate) struct TicketAnswer {
    /// Open `GET /api/v1/realtime/ws?ticket=<this>` within `expires_in_ms`; good once.
    ticket: String,
    expires_in_ms: i64,
}

/// A single-use ticket that opens a WebSocket for the caller (30 s).
#[utoipa::path(post, path = "/api/v1/realtime/tickets", tag = "realtime",
    security(("bearer" = [])),
    responses((status = 201, body = TicketAnswer)))]
pub(crate) async fn ticket(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let token = auth::new_tenant_token(caller.scope.slug())
        .map_err(|e| Problem::internal(e.to_string()))?;
    // A ticket asked for with the session cookie ends with that session.
    let session_sha256 = (!headers.contains_key(header::AUTHORIZATION))
        .then(|| rollcall_service::cookie::find(&headers, sessions::SESSION_COOKIE))
        .flatten()
        .map(auth::token_hash);
    let user_id = match &caller.actor {
        Actor::User(u) => Some(u.id.clone()),
        Actor::Bootstrap => None,
    };
    let ticket = Ticket {
        user_id,
        role: caller.role,
        session_sha256,
        issued_ms: rollcall_service::clock::now_ms(),
    };
    state
        .store
        .create_ws_ticket(&caller.scope, &auth::token_hash(&token), ticket)
        .await
        .map_err(store_problem)?;
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(TicketAnswer {
            ticket: token,
            expires_in_ms: TICKET_TTL_MS,
        }),
    )
        .into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Open {
    /// A ticket from `POST /api/v1/realtime/tickets`.
    ticket: Option<String>,
}

/// The real-time connection (WebSocket, JSON text frames). Client frames: `subscribe`
/// `{topics, since?}`, `unsubscribe {topics}`, `ack {seq}`, `ping {id?}`; the server sends
/// `subscribed`, `unsubscribed`, `resync`, `pong`, `error` and the messages, each
/// `{type, topic, seq, time, data}`. Close codes: 4003 signed out (user disabled, session
/// ended), 4004 tenant suspended, 4008 slow consumer (resume with `since`), 1001 shutdown.
#[utoipa::path(get, path = "/api/v1/realtime/ws", tag = "realtime",
    params(Open),
    responses((status = 101, description = "Switched to the WebSocket protocol"),
        (status = 426, description = "Not a WebSocket handshake", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn open(
    State(state): State<Arc<AppState>>,
    Query(q): Query<Open>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, Problem> {
    let refused = || {
        Problem::unauthorized(
            "a ticket from POST /api/v1/realtime/tickets, used once within 30 s, is needed",
        )
    };
    let token = q.ticket.ok_or_else(refused)?;
    let slug = auth::tenant_of_token(&token).ok_or_else(refused)?;
    identity::agree(&identity::host_tenant(&headers, &state)?, slug).map_err(|_| refused())?;
    let upgrade = upgrade.map_err(|e| {
        Problem::new(
            StatusCode::UPGRADE_REQUIRED,
            "websocket-required",
            "WebSocket handshake required",
            e.to_string(),
        )
    })?;
    let tenant = state
        .tenants
        .get(&state.store, slug)
        .await
        .map_err(store_problem)?
        .ok_or_else(refused)?;
    let scope = tenant.scope().ok_or_else(refused)?;
    let ticket = state
        .store
        .use_ws_ticket(&scope, &auth::token_hash(&token))
        .await
        .map_err(store_problem)?
        .ok_or_else(refused)?;
    // Small buffers: an idle connection holds what it needs, not tungstenite's 128 KiB read
    // and write buffers (the client sends frames of at most 16 KiB; a larger read is
    // assembled outside the buffer).
    Ok(upgrade
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .max_message_size(frames::MAX_FRAME)
        .max_frame_size(frames::MAX_FRAME)
        .on_upgrade(move |socket| super::connection::run(state, scope, ticket, socket)))
}
