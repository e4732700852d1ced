//! CORS with a per-tenant allow-list. A browser page on an allowed origin may call the tenant's
//! API at the tenant's host (`<tenant>.<base domain>`): preflights are answered (204, with the
//! methods and headers the API takes) and responses carry `Access-Control-Allow-Origin` for that
//! origin only. Any other origin, or a host that names no tenant, gets no CORS headers (and a
//! 403 problem for its preflight), so the browser keeps the page out. Credentials are bearer
//! tokens, never cookies: no `Allow-Credentials`.
//!
//! The tenant's owners and admins keep the list: `GET`/`PATCH /api/v1/tenant`.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use crate::server::{
    auth::identity::{self, Caller},
    http::{host::HostTenant, problem::store_problem, router::AppState},
    store::Tenant,
    users::store::Role,
};
use rollcall_service::problem::{Json, Problem};

const MAX_ORIGINS: usize = 20;
const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
const ALLOW_HEADERS: &str = "authorization, content-type, accept, idempotency-key, x-request-id";
const EXPOSE_HEADERS: &str = "x-request-id, ratelimit-limit, ratelimit-remaining, ratelimit-reset, retry-after, idempotent-replayed";

/// An origin as browsers send it, normalised: `https://host[:port]`, or plain `http` for
/// `localhost` and `127.0.0.1` (development). `None` if it is anything else.
pub fn normalise_origin(raw: &str) -> Option<String> {
    let raw = raw.trim().to_ascii_lowercase();
    let (scheme, rest) = raw.split_once("://")?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            (h, Some(p.parse::<u16>().ok().filter(|p| *p > 0)?))
        }
        _ => (rest, None),
    };
    if !crate::server::http::host::valid_hostname(host) {
        return None;
    }
    let local = host == "localhost" || host == "127.0.0.1";
    if scheme != "https" && !(scheme == "http" && local) {
        return None;
    }
    Some(match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    })
}

/// The allowed origin of this request, if its host names an active tenant whose list has it.
async fn allowed_origin(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let origin = normalise_origin(headers.get(header::ORIGIN)?.to_str().ok()?)?;
    let HostTenant::Named(slug) = identity::host_tenant(headers, state).ok()? else {
        return None;
    };
    let tenant = state.tenants.get(&state.store, &slug).await.ok()??;
    tenant.scope()?;
    tenant.cors_origins.contains(&origin).then_some(origin)
}

/// The middleware, on `/api/…`.
pub async fn layer(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api/") || !req.headers().contains_key(header::ORIGIN) {
        return next.run(req).await;
    }
    let allowed = allowed_origin(&state, req.headers()).await;
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let Some(origin) = allowed else {
            return Problem::new(
                StatusCode::FORBIDDEN,
                "cors-origin-not-allowed",
                "Origin not allowed",
                "this origin is not on the tenant's CORS allow-list (GET /api/v1/tenant)",
            )
            .into_response();
        };
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        set(h, header::ACCESS_CONTROL_ALLOW_ORIGIN, &origin);
        set(h, header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS);
        set(h, header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS);
        set(h, header::ACCESS_CONTROL_MAX_AGE, "600");
        set(
            h,
            header::VARY,
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        );
        return r;
    }
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = allowed {
        set(h, header::ACCESS_CONTROL_ALLOW_ORIGIN, &origin);
        set(h, header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
    }
    r
}

fn set(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsPatch {
    cors_origins: Vec<String>,
}

/// The caller's own tenant: slug, name, status, CORS allow-list.
#[utoipa::path(get, path = "/api/v1/tenant", tag = "tenant",
    security(("bearer" = [])),
    responses((status = 200, body = Tenant)))]
pub(crate) async fn get_settings(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<axum::Json<Tenant>, Problem> {
    caller.require(
        &[Role::Owner, Role::Admin, Role::Auditor],
        "see the tenant's settings",
    )?;
    let tenant = state
        .store
        .tenant(caller.scope.slug())
        .await
        .map_err(store_problem)?
        .ok_or_else(|| Problem::not_found("no such tenant"))?;
    Ok(axum::Json(tenant))
}

/// Replaces the CORS allow-list (at most 20 origins; https, or http on localhost).
#[utoipa::path(patch, path = "/api/v1/tenant", tag = "tenant", request_body = SettingsPatch,
    security(("bearer" = [])),
    responses((status = 200, body = Tenant)))]
pub(crate) async fn patch_settings(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(patch): Json<SettingsPatch>,
) -> Result<axum::Json<Tenant>, Problem> {
    caller.require(&[Role::Owner, Role::Admin], "change the tenant's settings")?;
    if patch.cors_origins.len() > MAX_ORIGINS {
        return Err(Problem::bad_request(format!(
            "cors_origins: at most {MAX_ORIGINS} origins"
        )));
    }
    let mut origins = Vec::new();
    for (i, raw) in patch.cors_origins.iter().enumerate() {
        let origin = normalise_origin(raw).ok_or_else(|| {
            Problem::bad_request(format!(
                "cors_origins[{i}]: `{raw}` is not an origin like https://admin.example.com (no path; http only for localhost)"
            ))
        })?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    let audit = caller.audit(
        "tenant.cors",
        Some(caller.scope.slug().to_owned()),
        serde_json::json!({ "cors_origins": origins }),
    );
    state
        .store
        .set_cors_origins(&caller.scope, origins, audit)
        .await
        .map_err(store_problem)?;
    state.tenants.forget(caller.scope.slug());
    get_settings(State(state), caller).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn origins_are_normalised_or_refused() {
        let n = |s| normalise_origin(s);
        assert_eq!(
            n("https://Admin.Acme.example").as_deref(),
            Some("https://admin.acme.example")
        );
        assert_eq!(
            n("https://admin.acme.example:8443").as_deref(),
            Some("https://admin.acme.example:8443")
        );
        assert_eq!(
            n("http://localhost:5173").as_deref(),
            Some("http://localhost:5173")
        );
        for bad in [
            "http://admin.acme.example",
            "https://admin.acme.example/",
            "https://a.example/path",
            "ftp://a.example",
            "https://",
            "admin.acme.example",
            "https://a.example:0",
            "https://a.example:99999",
            "https://user@a.example",
            "null",
            "*",
        ] {
            assert_eq!(n(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn normalising_is_idempotent(s in "\\PC{0,60}") {
            if let Some(o) = normalise_origin(&s) {
                prop_assert_eq!(normalise_origin(&o), Some(o.clone()));
            }
        }
    }
}
