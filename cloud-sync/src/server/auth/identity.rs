//! Who is calling a tenant's API, and the session endpoints: log in with email and password,
//! renew with a rotating refresh token (a reused one signs the whole login out), log out.
//!
//! A caller is the bootstrap administrator (the server's `--admin-token`, owner of the bootstrap
//! tenant), a user with a JWT access token, or — with no `Authorization` header — a user's
//! browser session cookie (`sessions`). The tenant comes from the credential and, when the
//! server has a base domain, from the host too; the two must agree.

use std::sync::Arc;

use axum::{
    extract::{FromRequestParts, State},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::server::{
    audit::store::Audit,
    auth::{extract as auth, sessions, tokens},
    http::{
        host::{self, HostTenant},
        problem::store_problem,
        rate_limit::{self, Slot},
        request_meta::RequestMeta,
        router::AppState,
    },
    store::TenantScope,
    users::store::{NewRefresh, RefreshUse, Role, User},
};
use rollcall_service::problem::{Json, Problem};

pub(crate) enum Actor {
    Bootstrap,
    User(User),
}

/// An authenticated caller of a tenant's API.
pub(crate) struct Caller {
    pub scope: TenantScope,
    pub actor: Actor,
    pub role: Role,
    pub meta: RequestMeta,
}

impl Caller {
    /// 403 unless the caller's role is one of `allowed`.
    pub fn require(&self, allowed: &[Role], what: &str) -> Result<(), Problem> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                format!("the `{}` role cannot {what}", self.role.as_str()),
            ))
        }
    }

    /// Who, for logs and the audit trail.
    pub fn who(&self) -> String {
        match &self.actor {
            Actor::Bootstrap => "bootstrap-admin".into(),
            Actor::User(u) => format!("user:{}", u.id),
        }
    }

    /// An audit entry of this caller's request.
    pub fn audit(
        &self,
        action: &'static str,
        target: Option<String>,
        detail: serde_json::Value,
    ) -> Audit {
        self.meta.audit(self.who(), action, target, detail)
    }

    pub fn user_id(&self) -> Option<&str> {
        match &self.actor {
            Actor::Bootstrap => None,
            Actor::User(u) => Some(&u.id),
        }
    }
}

/// The tenant the request's host names (400 for a malformed host, 404 for a host under the
/// base domain that is no tenant's).
pub(crate) fn host_tenant(headers: &HeaderMap, state: &AppState) -> Result<HostTenant, Problem> {
    let Some(value) = headers.get(header::HOST) else {
        return Ok(HostTenant::Unnamed);
    };
    let value = value
        .to_str()
        .map_err(|_| Problem::bad_request("the Host header is not a valid host name"))?;
    host::tenant_of_host(value, state.base_domain.as_deref()).map_err(|e| match e {
        host::HostError::Malformed => Problem::bad_request(e.to_string()),
        host::HostError::NotATenant(_) => Problem::not_found(e.to_string()),
    })
}

fn other_tenant() -> Problem {
    Problem::unauthorized("this credential belongs to another tenant than the host names")
}

pub(crate) fn agree(host: &HostTenant, slug: &str) -> Result<(), Problem> {
    match host {
        HostTenant::Named(h) if h != slug => Err(other_tenant()),
        _ => Ok(()),
    }
}

/// Spends one request of the tenant's and the caller's allowances; the verdict goes to the
/// response's `RateLimit-*` headers.
fn limit(parts: &Parts, state: &AppState, scope: &TenantScope, who: &str) -> Result<(), Problem> {
    let slot = parts.extensions.get::<Slot>();
    rate_limit::announced(state.limits.check_caller(scope.slug(), who), slot)?;
    Ok(())
}

/// Who is calling, checked in full (credential, host, tenant status, user still enabled),
/// without spending rate allowance.
pub(crate) async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, Problem> {
    if !parts.headers.contains_key(header::AUTHORIZATION)
        && let Some(cookie) =
            rollcall_service::cookie::find(&parts.headers, sessions::SESSION_COOKIE)
    {
        return sessions::authenticate(parts, state, cookie).await;
    }
    let token = auth::bearer(parts)?;
    let host = host_tenant(&parts.headers, state)?;
    if auth::is_admin_token(token, state) {
        agree(&host, &state.tenant)?;
        let scope = auth::active_scope(state, &state.tenant).await?;
        return Ok(Caller {
            scope,
            actor: Actor::Bootstrap,
            role: Role::Owner,
            meta: RequestMeta::of(parts),
        });
    }
    if !tokens::looks_like_jwt(token) {
        return Err(Problem::unauthorized("unknown credential"));
    }
    let claims = state
        .access
        .check(token)
        .map_err(|_| Problem::unauthorized("invalid or expired access token"))?;
    agree(&host, &claims.tenant)?;
    let scope = auth::active_scope(state, &claims.tenant).await?;
    let user = enabled_user(state, &scope, &claims.sub).await?;
    if !user.accepts_token_issued_at(claims.iat_ms) {
        return Err(Problem::unauthorized(
            "this access token was issued before the user was disabled; log in again",
        ));
    }
    Ok(Caller {
        scope,
        role: user.role,
        actor: Actor::User(user),
        meta: RequestMeta::of(parts),
    })
}

/// The user `id` of the tenant, if it exists and is not disabled (else 401: the credential no
/// longer stands for anyone).
pub(crate) async fn enabled_user(
    state: &AppState,
    scope: &TenantScope,
    id: &str,
) -> Result<User, Problem> {
    state
        .store
        .user(scope, id)
        .await
        .map_err(store_problem)?
        .filter(|u| u.disabled_ms.is_none())
        .ok_or_else(|| Problem::unauthorized("the user no longer exists or is disabled"))
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Problem> {
        let caller = authenticate(parts, state).await?;
        let key = match &caller.actor {
            Actor::Bootstrap => "bootstrap-admin",
            Actor::User(u) => u.id.as_str(),
        };
        limit(parts, state, &caller.scope, key)?;
        Ok(caller)
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    /// Needed when the host does not name the tenant.
    tenant: Option<String>,
    email: String,
    password: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Session {
    /// A JWT for `Authorization: Bearer`, valid for `expires_in` seconds.
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    expires_in: i64,
    /// Single use: trade it at `/api/v1/auth/refresh` for a new pair; valid 30 days.
    refresh_token: String,
    user: User,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    refresh_token: String,
}

fn bad_login() -> Problem {
    Problem::unauthorized("wrong tenant, email or password")
}

/// A fresh access token and refresh token (in `family`, or a new family for a login).
async fn session(
    state: &AppState,
    scope: &TenantScope,
    user: User,
    family: Option<String>,
    meta: &RequestMeta,
) -> Result<Session, Problem> {
    let action = if family.is_some() {
        "auth.refresh"
    } else {
        "auth.login"
    };
    let now_ms = rollcall_service::clock::now_ms();
    let access_token = state
        .access
        .issue(scope.slug(), &user.id, now_ms)
        .map_err(|e| Problem::internal(e.to_string()))?;
    let refresh_token =
        auth::new_tenant_token(scope.slug()).map_err(|e| Problem::internal(e.to_string()))?;
    let family = match family {
        Some(f) => f,
        None => auth::new_token().map_err(|e| Problem::internal(e.to_string()))?[..32].to_owned(),
    };
    state
        .store
        .insert_refresh(
            scope,
            NewRefresh {
                token_sha256: auth::token_hash(&refresh_token),
                user_id: user.id.clone(),
                family,
                expires_ms: now_ms + tokens::REFRESH_TTL_MS,
            },
            meta.audit(
                format!("user:{}", user.id),
                action,
                Some(user.id.clone()),
                serde_json::Value::Null,
            ),
        )
        .await
        .map_err(store_problem)?;
    Ok(Session {
        access_token,
        token_type: "Bearer",
        expires_in: tokens::ACCESS_TTL_S,
        refresh_token,
        user,
    })
}

/// Signs a user in: an access token (5 minutes) and a refresh token. Wrong tenant, email and
/// password all get the same answer.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, body = Session)))]
pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    meta: RequestMeta,
    slot: Option<axum::Extension<Slot>>,
    headers: HeaderMap,
    Json(req): Json<Login>,
) -> Result<impl IntoResponse, Problem> {
    let (scope, user) = check_login(&state, &meta, slot, &headers, req).await?;
    let session = session(&state, &scope, user, None, &meta).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(session)))
}

/// The tenant and user a login names, once its password is checked (rate-limited per tenant
/// and address; an unknown tenant or email costs the same time as a wrong password).
pub(crate) async fn check_login(
    state: &AppState,
    meta: &RequestMeta,
    slot: Option<axum::Extension<Slot>>,
    headers: &HeaderMap,
    req: Login,
) -> Result<(TenantScope, User), Problem> {
    let slug = match (host_tenant(headers, state)?, req.tenant) {
        (HostTenant::Named(h), Some(t)) if h != t => {
            return Err(Problem::bad_request(format!(
                "the host names tenant `{h}` but the body says `{t}`"
            )));
        }
        (HostTenant::Named(h), _) => h,
        (HostTenant::Unnamed, Some(t)) => t,
        (HostTenant::Unnamed, None) => {
            return Err(Problem::bad_request(
                "say which tenant: use your tenant's host name or the `tenant` field",
            ));
        }
    };
    // Not a slug: no such tenant can exist (and no limiter key is made for it).
    if !crate::server::tenants::resolve::valid_slug(&slug) {
        return Err(bad_login());
    }
    // Guessing passwords is slow: a few attempts a minute per tenant and address.
    let slot = slot.map(|axum::Extension(s)| s);
    let source = meta.source.as_deref().unwrap_or("unknown");
    rate_limit::announced(state.limits.check_login(&slug, source), slot.as_ref())?;
    let email = req.email.trim().to_lowercase();
    // An unknown tenant costs the same hashing time as a wrong password (off the async threads).
    // A suspended tenant's credentials are checked too: only the right password learns of
    // the suspension, a wrong one gets the same 401 as anywhere.
    let (tenant, creds) = match state.store.tenant(&slug).await.map_err(store_problem)? {
        None => (None, None),
        Some(tenant) => {
            let checking = tenant.scope_to_check_a_credential();
            let creds = state
                .store
                .credentials(&checking, &email)
                .await
                .map_err(store_problem)?;
            (Some(tenant), creds)
        }
    };
    let (user, phc) = match creds {
        Some(c) => (Some(c.user), Some(c.password_hash)),
        None => (None, None),
    };
    let ok = state.hashers.verify(req.password, phc).await?;
    let user = match user {
        Some(u) if ok && u.disabled_ms.is_none() => u,
        Some(u) if ok => {
            tracing::warn!(tenant = %slug, user = %u.id, "login refused: user disabled");
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "user-disabled",
                "User disabled",
                "this account is disabled; ask your administrator",
            ));
        }
        _ => {
            tracing::warn!(tenant = %slug, "login failed");
            return Err(bad_login());
        }
    };
    let tenant = tenant.ok_or_else(bad_login)?;
    let scope = tenant.scope().ok_or_else(|| auth::suspended(&slug))?;
    tracing::info!(tenant = %slug, user = %user.id, "login");
    Ok((scope, user))
}

/// Trades a refresh token for a new pair. A refresh token used twice signs out every session of
/// its login (401 `refresh-reused`).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Session)))]
pub(crate) async fn refresh(
    State(state): State<Arc<AppState>>,
    meta: RequestMeta,
    headers: HeaderMap,
    Json(req): Json<RefreshRequest>,
) -> Result<impl IntoResponse, Problem> {
    let invalid = || Problem::unauthorized("invalid or expired refresh token");
    let slug = auth::tenant_of_token(&req.refresh_token).ok_or_else(invalid)?;
    agree(&host_tenant(&headers, &state)?, slug)?;
    let tenant = state
        .tenants
        .get(&state.store, slug)
        .await
        .map_err(store_problem)?
        .ok_or_else(invalid)?;
    let hash = auth::token_hash(&req.refresh_token);
    let Some(scope) = tenant.scope() else {
        // Only the holder of a live token learns that the tenant is suspended; the token is
        // not spent, so it still works once the tenant is active again.
        let live = state
            .store
            .refresh_is_live(&tenant.scope_to_check_a_credential(), &hash)
            .await
            .map_err(store_problem)?;
        return Err(if live {
            auth::suspended(slug)
        } else {
            invalid()
        });
    };
    let used = state
        .store
        .use_refresh(&scope, &hash)
        .await
        .map_err(store_problem)?;
    let (user_id, family) = match used {
        RefreshUse::Fresh { user_id, family } => (user_id, family),
        RefreshUse::Reused { family } => {
            tracing::warn!(tenant = %slug, family = %family, "refresh token reused: the login's sessions are revoked");
            return Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "refresh-reused",
                "Refresh token reused",
                "this refresh token was used before; every session of this login has been signed out",
            ));
        }
        RefreshUse::Invalid => return Err(invalid()),
    };
    let user = state
        .store
        .user(&scope, &user_id)
        .await
        .map_err(store_problem)?
        .filter(|u| u.disabled_ms.is_none())
        .ok_or_else(invalid)?;
    let session = session(&state, &scope, user, Some(family), &meta).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(session)))
}

/// Ends a login: its refresh token and every one rotated from the same login stop working.
/// Access tokens already issued expire on their own within minutes.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "Signed out (also when the token was unknown; 400 when it is no refresh token at all)")))]
pub(crate) async fn logout(
    State(state): State<Arc<AppState>>,
    meta: RequestMeta,
    headers: HeaderMap,
    Json(req): Json<RefreshRequest>,
) -> Result<StatusCode, Problem> {
    // Something that is no refresh token at all is a mistake worth saying (an unknown one is not).
    if !auth::is_tenant_token(&req.refresh_token) {
        return Err(Problem::bad_request(
            "refresh_token: not a refresh token (the refresh_token of a login or a refresh)",
        ));
    }
    let Some(slug) = auth::tenant_of_token(&req.refresh_token) else {
        return Ok(StatusCode::NO_CONTENT);
    };
    // Another tenant's host signs nobody out: the token is refused as at refresh.
    agree(&host_tenant(&headers, &state)?, slug)?;
    let Some(scope) = state
        .store
        .tenant(slug)
        .await
        .map_err(store_problem)?
        .and_then(|t| t.scope())
    else {
        return Ok(StatusCode::NO_CONTENT);
    };
    state
        .store
        .revoke_refresh_family(
            &scope,
            &auth::token_hash(&req.refresh_token),
            meta.audit(
                "session".into(),
                "auth.logout",
                None,
                serde_json::Value::Null,
            ),
        )
        .await
        .map_err(store_problem)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Me {
    tenant: String,
    role: Role,
    /// How the audit trail names the caller.
    who: String,
    /// Absent for the bootstrap admin token, which is no user.
    user: Option<User>,
}

/// The caller's own profile and role.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = Me)))]
pub(crate) async fn me(caller: Caller) -> axum::Json<Me> {
    let user = match &caller.actor {
        Actor::User(u) => Some(u.clone()),
        Actor::Bootstrap => None,
    };
    axum::Json(Me {
        tenant: caller.scope.slug().to_owned(),
        role: caller.role,
        who: caller.who(),
        user,
    })
}
