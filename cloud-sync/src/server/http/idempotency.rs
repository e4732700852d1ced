//! `Idempotency-Key` on unsafe methods (POST, PUT, PATCH, DELETE) of the tenant API: a client
//! that retries after a lost answer gets the first answer again instead of a second effect.
//!
//! Keys belong to the caller (tenant and user or credential); the request is fingerprinted by
//! method, path, query and body. Same key and same request → the stored response, marked
//! `Idempotent-Replayed: true`; same key, different request → 422; the first request still
//! running → 409 (for up to two minutes: a request whose server died frees its key then).
//! Server errors (5xx) are not stored, so a retry runs again. Keys live 24 hours.
//!
//! The request runs in a task of its own, so a client that goes away mid-request does not
//! leave its key unfinished: the answer is stored for its retry. A replay is refused (403
//! `idempotency-role-changed`) once the caller's role is not the one the first request was
//! made in. An answer that holds a secret (a handler marks it [`Secret`], as node registration
//! does for the node's token) is stored without those fields and replayed so, with
//! `Idempotent-Withheld` naming them: a secret shown once is never kept in plain text.
//! Node sync is idempotent by item id already and is left alone.

use std::sync::Arc;

use axum::{
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

use crate::server::{
    auth::identity,
    http::{
        idempotency_keys::{Begin, Stored},
        problem::store_problem,
        router::AppState,
    },
};
use rollcall_service::problem::Problem;

pub const HEADER: &str = "idempotency-key";
const REPLAYED: &str = "idempotent-replayed";
const WITHHELD: &str = "idempotent-withheld";

/// A response extension: these top-level fields of the JSON answer are secrets, shown once;
/// they are not stored for replays.
#[derive(Debug, Clone, Copy)]
pub struct Secret(pub &'static [&'static str]);
/// Largest request body fingerprinted, and largest response stored.
const MAX_BODY: usize = 4 << 20;

/// A key: 1–255 visible ASCII characters.
fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

fn fingerprint(method: &Method, uri: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str());
    h.update([0]);
    h.update(uri);
    h.update([0]);
    h.update(body);
    hex::encode(h.finalize())
}

/// Whether requests of `method` to `path` take an `Idempotency-Key` (the OpenAPI document says
/// so for exactly these).
pub(crate) fn covers(method: &Method, path: &str) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) && path.starts_with("/api/")
        && !path.starts_with("/api/v1/sync/")
        && !path.starts_with("/api/v1/auth/")
}

fn applies(req: &Request) -> bool {
    covers(req.method(), req.uri().path()) && req.headers().contains_key(HEADER)
}

pub async fn layer(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if !applies(&req) {
        return next.run(req).await;
    }
    match run(state, req, next).await {
        Ok(r) | Err(r) => r,
    }
}

async fn run(state: Arc<AppState>, req: Request, next: Next) -> Result<Response, Response> {
    let (parts, body) = req.into_parts();
    let key = parts
        .headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|k| valid_key(k))
        .map(str::to_owned)
        .ok_or_else(|| {
            Problem::bad_request("Idempotency-Key must be 1-255 visible ASCII characters")
                .into_response()
        })?;
    // Only an authenticated caller has keys; anyone else goes on to be refused as usual.
    let Ok(caller) = identity::authenticate(&parts, &state).await else {
        return Ok(next.run(Request::from_parts(parts, body)).await);
    };
    let bytes = to_bytes(body, MAX_BODY).await.map_err(|_| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
            format!("a request with an Idempotency-Key may carry at most {MAX_BODY} bytes"),
        )
        .into_response()
    })?;
    let uri = parts.uri.to_string();
    let fp = fingerprint(&parts.method, &uri, &bytes);
    let (scope, who, role) = (caller.scope.clone(), caller.who(), caller.role.as_str());
    let begun = state
        .store
        .idem_begin(&scope, &who, role, &key, &fp)
        .await
        .map_err(|e| store_problem(e).into_response())?;
    match begun {
        Begin::Replay(stored) => return Ok(replay(stored)),
        Begin::Mismatch => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
                "this Idempotency-Key was used for a different request; use a new key for a new request",
            )
            .into_response());
        }
        Begin::InProgress => {
            let mut p = Problem::new(
                StatusCode::CONFLICT,
                "idempotency-in-progress",
                "Request in progress",
                "the first request with this Idempotency-Key has not finished; retry shortly",
            );
            p.retry_after_s = Some(1);
            return Err(p.into_response());
        }
        Begin::RoleChanged => {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "idempotency-role-changed",
                "Role changed",
                "this Idempotency-Key's request was made in another role than yours now: its answer is not replayed",
            )
            .into_response());
        }
        Begin::Started => {}
    }
    // Its own task: a client that goes away does not stop the request half-way, and its
    // answer is still stored for the retry.
    let request = Request::from_parts(parts, Body::from(bytes));
    let task = tokio::spawn(async move {
        let response = next.run(request).await;
        finish(&state, &scope, &who, &key, response).await
    });
    match task.await {
        Ok(answered) => answered,
        Err(e) => Err(Problem::internal(e.to_string()).into_response()),
    }
}

/// Stores the answer of a started key (without its secrets) and gives it back; a server error
/// frees the key instead.
async fn finish(
    state: &AppState,
    scope: &crate::server::store::TenantScope,
    who: &str,
    key: &str,
    response: Response,
) -> Result<Response, Response> {
    let (resp_parts, resp_body) = response.into_parts();
    let Ok(resp_bytes) = to_bytes(resp_body, MAX_BODY).await else {
        let _ = state.store.idem_abandon(scope, who, key).await;
        return Err(Problem::internal("the response could not be read back").into_response());
    };
    if resp_parts.status.is_server_error() {
        let _ = state.store.idem_abandon(scope, who, key).await;
    } else {
        let secret = resp_parts.extensions.get::<Secret>().copied();
        let stored = Stored {
            status: resp_parts.status.as_u16(),
            content_type: resp_parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            body: match secret {
                Some(Secret(fields)) => withhold(&resp_bytes, fields),
                None => resp_bytes.to_vec(),
            },
        };
        if let Err(e) = state.store.idem_finish(scope, who, key, stored).await {
            // The effect happened and the client gets its answer; only a replay is lost.
            tracing::error!(error = %e, key = %key, "idempotent response not stored");
        }
    }
    Ok(Response::from_parts(resp_parts, Body::from(resp_bytes)))
}

/// The JSON answer without its secret top-level `fields`, and a `withheld` list naming them;
/// an answer that is not a JSON object is not kept at all (an empty body).
fn withhold(body: &[u8], fields: &[&str]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut object)) => {
            for field in fields {
                object.remove(*field);
            }
            object.insert("withheld".into(), serde_json::json!(fields));
            serde_json::to_vec(&object).unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

fn replay(stored: Stored) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let withheld = serde_json::from_slice::<serde_json::Value>(&stored.body)
        .ok()
        .and_then(|v| {
            v["withheld"].as_array().map(|f| {
                f.iter()
                    .filter_map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
        });
    let mut r = (status, stored.body).into_response();
    if let Ok(ct) = HeaderValue::from_str(&stored.content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    r.headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    if let Some(value) = withheld.and_then(|w| HeaderValue::from_str(&w).ok()) {
        r.headers_mut().insert(WITHHELD, value);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_fingerprints() {
        assert!(valid_key("order-2026-11-25/42"));
        assert!(!valid_key(""));
        assert!(!valid_key("has space"));
        assert!(!valid_key(&"k".repeat(256)));
        let a = fingerprint(&Method::POST, "/api/v1/users", b"{}");
        assert_eq!(a, fingerprint(&Method::POST, "/api/v1/users", b"{}"));
        assert_ne!(a, fingerprint(&Method::PATCH, "/api/v1/users", b"{}"));
        assert_ne!(a, fingerprint(&Method::POST, "/api/v1/users?x=1", b"{}"));
        assert_ne!(a, fingerprint(&Method::POST, "/api/v1/users", b"{ }"));
    }

    #[test]
    fn secrets_are_not_kept_for_replays() {
        let kept = withhold(br#"{"node_id":"n1","token":"acme.s3cret"}"#, &["token"]);
        let kept: serde_json::Value = serde_json::from_slice(&kept).expect("JSON");
        assert_eq!(
            kept,
            serde_json::json!({"node_id": "n1", "withheld": ["token"]})
        );
        assert!(
            withhold(b"acme.s3cret", &["token"]).is_empty(),
            "not JSON: nothing kept"
        );
        let r = replay(Stored {
            status: 201,
            content_type: "application/json".into(),
            body: serde_json::to_vec(&kept).expect("encode"),
        });
        assert_eq!(r.headers()[WITHHELD], "token");
        assert_eq!(r.headers()[REPLAYED], "true");
    }
}
