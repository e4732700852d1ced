//! Browser sessions: a login that answers with a session cookie instead of tokens, for pages
//! served from the tenant's own host.
//!
//! - `__Host-rollcall_session`: the session token, `HttpOnly; Secure; SameSite=Lax; Path=/`, so
//!   no script can read it and other sites' forms and scripts do not send it (top-level links
//!   do, and GET changes nothing). The `__Host-` prefix pins it to this exact host.
//! - CSRF: every unsafe request (POST, PUT, PATCH, DELETE) authenticated by the cookie must
//!   carry `X-CSRF-Token`, a value derived from the session token (so nothing more is stored)
//!   and handed to the page at login and in the readable `__Host-rollcall_csrf` cookie. Another
//!   site can neither read it nor guess it; a request without it is refused with 403
//!   `csrf-failed` before anything runs.
//!
//! CORS never allows credentials, so only same-origin pages can use a session.

use std::sync::Arc;

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::server::{
    auth::{
        extract as auth,
        identity::{self, Actor, Caller, Login},
        session_store::NewSession,
    },
    http::{problem::store_problem, rate_limit::Slot, request_meta::RequestMeta, router::AppState},
    users::store::User,
};
use rollcall_service::problem::{Json, Problem};

pub const SESSION_COOKIE: &str = "__Host-rollcall_session";
pub const CSRF_COOKIE: &str = "__Host-rollcall_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session lasts 12 hours from login, then the user logs in again.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;

/// The CSRF token of a session: derived from its secret token, so it needs no storage and
/// cannot be made without the (HttpOnly) session cookie.
pub fn csrf_of(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"rollcall-csrf-v1\0");
    h.update(session_token.as_bytes());
    hex::encode(h.finalize())
}

/// Compares without an early exit.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn set_cookie(name: &str, value: &str, http_only: bool, max_age_s: i64) -> Option<HeaderValue> {
    let http_only = if http_only { "; HttpOnly" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; SameSite=Lax; Max-Age={max_age_s}{http_only}"
    ))
    .ok()
}

fn unsafe_method(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The caller of a request that carries a session cookie and no `Authorization` header.
pub(crate) async fn authenticate(
    parts: &Parts,
    state: &AppState,
    token: &str,
) -> Result<Caller, Problem> {
    let expired = || Problem::unauthorized("the session has ended; log in again");
    let slug = auth::tenant_of_token(token).ok_or_else(expired)?;
    identity::agree(&identity::host_tenant(&parts.headers, state)?, slug)?;
    if unsafe_method(&parts.method) {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !same(sent, &csrf_of(token)) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "csrf-failed",
                "CSRF token missing or wrong",
                "a request authenticated by the session cookie must send the session's X-CSRF-Token header",
            ));
        }
    }
    // The session is looked up before the tenant's status is told: a made-up cookie of a
    // suspended tenant gets the same 401 as any other.
    let tenant = state
        .tenants
        .get(&state.store, slug)
        .await
        .map_err(store_problem)?
        .ok_or_else(expired)?;
    let session = state
        .store
        .live_session(
            &tenant.scope_to_check_a_credential(),
            &auth::token_hash(token),
        )
        .await
        .map_err(store_problem)?
        .ok_or_else(expired)?;
    let scope = tenant.scope().ok_or_else(|| auth::suspended(slug))?;
    let user = identity::enabled_user(state, &scope, &session.user_id).await?;
    Ok(Caller {
        scope,
        role: user.role,
        actor: Actor::User(user),
        meta: RequestMeta::of(parts),
    })
}

#[derive(Serialize, ToSchema)]
pub(crate) struct BrowserSession {
    /// Send as `X-CSRF-Token` with every POST, PUT, PATCH and DELETE (also in the
    /// `__Host-rollcall_csrf` cookie).
    csrf_token: String,
    /// When the session ends (ms since the Unix epoch).
    expires_ms: i64,
    user: User,
}

/// Logs a browser in: the session travels in an HttpOnly cookie, never in the body.
#[utoipa::path(post, path = "/api/v1/auth/session", tag = "auth", request_body = Login,
    responses((status = 201, body = BrowserSession,
        headers(("Set-Cookie" = String, description = "The session (HttpOnly) and CSRF cookies")))))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    meta: RequestMeta,
    slot: Option<axum::Extension<Slot>>,
    headers: HeaderMap,
    Json(req): Json<Login>,
) -> Result<Response, Problem> {
    let (scope, user) = identity::check_login(&state, &meta, slot, &headers, req).await?;
    let token =
        auth::new_tenant_token(scope.slug()).map_err(|e| Problem::internal(e.to_string()))?;
    let expires_ms = rollcall_service::clock::now_ms() + SESSION_TTL_MS;
    state
        .store
        .create_session(
            &scope,
            NewSession {
                token_sha256: auth::token_hash(&token),
                user_id: user.id.clone(),
                expires_ms,
            },
            meta.audit(
                format!("user:{}", user.id),
                "auth.session",
                Some(user.id.clone()),
                serde_json::Value::Null,
            ),
        )
        .await
        .map_err(store_problem)?;
    tracing::info!(tenant = %scope.slug(), user = %user.id, "browser session started");
    let csrf_token = csrf_of(&token);
    let mut r = (
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(BrowserSession {
            csrf_token: csrf_token.clone(),
            expires_ms,
            user,
        }),
    )
        .into_response();
    let max_age = SESSION_TTL_MS / 1000;
    for c in [
        set_cookie(SESSION_COOKIE, &token, true, max_age),
        set_cookie(CSRF_COOKIE, &csrf_token, false, max_age),
    ]
    .into_iter()
    .flatten()
    {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

/// Logs a browser out: the session ends now and its cookies are cleared. Needs `X-CSRF-Token`
/// like any unsafe request.
#[utoipa::path(delete, path = "/api/v1/auth/session", tag = "auth",
    responses((status = 204, description = "Signed out; the cookies are cleared")))]
pub(crate) async fn end(
    State(state): State<Arc<AppState>>,
    parts: Parts,
) -> Result<Response, Problem> {
    if let Some(token) = rollcall_service::cookie::find(&parts.headers, SESSION_COOKIE) {
        match authenticate(&parts, &state, token).await {
            Ok(caller) => {
                state
                    .store
                    .end_session(
                        &caller.scope,
                        &auth::token_hash(token),
                        caller.audit("auth.session_end", None, serde_json::Value::Null),
                    )
                    .await
                    .map_err(store_problem)?;
            }
            // Already over (expired, ended, user disabled): only the cookies are left to clear.
            Err(p) if p.status == StatusCode::UNAUTHORIZED => {}
            Err(p) => return Err(p),
        }
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    for c in [
        set_cookie(SESSION_COOKIE, "", true, 0),
        set_cookie(CSRF_COOKIE, "", false, 0),
    ]
    .into_iter()
    .flatten()
    {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let a = csrf_of("acme.1111");
        assert_eq!(a, csrf_of("acme.1111"));
        assert_ne!(a, csrf_of("acme.1112"));
        assert_eq!(a.len(), 64);
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &a[..63]));
        assert!(!same(&a, ""));
    }

    #[test]
    fn cookies_are_host_bound_http_only_secure_and_lax() {
        let c = set_cookie(SESSION_COOKIE, "acme.1", true, 60).expect("cookie");
        let c = c.to_str().expect("ascii");
        for part in ["Path=/", "Secure", "SameSite=Lax", "HttpOnly", "Max-Age=60"] {
            assert!(c.contains(part), "{c}");
        }
        assert!(!c.contains("Domain"), "{c}");
        let c = set_cookie(CSRF_COOKIE, "x", false, 60).expect("cookie");
        assert!(!c.to_str().expect("ascii").contains("HttpOnly"));
    }
}
