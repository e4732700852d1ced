//! Who is calling: the platform operator, a tenant administrator or a registered node, by
//! bearer token. Tokens are random 256-bit values; only their sha256 is stored.

use std::sync::Arc;

use axum::{
    extract::FromRequestParts,
    http::{StatusCode, request::Parts},
};
use sha2::{Digest, Sha256};

use crate::server::{
    http::{request_meta::RequestMeta, router::AppState},
    store::{NodeRow, TenantScope},
};
use rollcall_service::problem::Problem;

pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh random token, hex-encoded.
pub(crate) fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

pub(crate) fn bearer(parts: &Parts) -> Result<&str, Problem> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthorized("missing Authorization: Bearer <token> header"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Problem::unauthorized("Authorization header must be `Bearer <token>`"))
}

/// Compares two equal-length hex digests without an early exit.
fn same_digest(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A node or refresh token: `<tenant slug>.<64 hex digits>`. The slug lets the server resolve
/// the tenant first and look the token up under that tenant's scope (row-level security on
/// PostgreSQL).
/// A fresh object id: `prefix` and 24 random hex digits (`usr_…`, `shf_…`, `tpl_…`).
pub(crate) fn new_id(prefix: &str) -> Result<String, Problem> {
    let token = new_token().map_err(|e| Problem::internal(e.to_string()))?;
    Ok(format!("{prefix}_{}", &token[..24]))
}

pub(crate) fn new_tenant_token(tenant: &str) -> Result<String, getrandom::Error> {
    Ok(format!("{tenant}.{}", new_token()?))
}

/// Whether `token` has the shape of a node or refresh token: a slug, a dot, 64 hex digits.
pub(crate) fn is_tenant_token(token: &str) -> bool {
    tenant_of_token(token).is_some_and(|slug| {
        let secret = &token[slug.len() + 1..];
        secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

pub(crate) fn tenant_of_token(token: &str) -> Option<&str> {
    token
        .split_once('.')
        .map(|(slug, _)| slug)
        .filter(|slug| crate::server::tenants::resolve::valid_slug(slug))
}

/// The active tenant named `slug`: unknown → 401 (the credential is not valid here), suspended
/// → 403 with a clear problem document.
pub(crate) async fn active_scope(state: &AppState, slug: &str) -> Result<TenantScope, Problem> {
    let tenant = state
        .tenants
        .get(&state.store, slug)
        .await
        .map_err(crate::server::http::problem::store_problem)?
        .ok_or_else(|| Problem::unauthorized("unknown tenant in credential"))?;
    tenant.scope().ok_or_else(|| suspended(slug))
}

pub(crate) fn suspended(slug: &str) -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "tenant-suspended",
        "Tenant suspended",
        format!(
            "tenant `{slug}` is suspended; its administrators can contact the platform operator"
        ),
    )
}

/// Whether `token` is the bootstrap administrator's.
pub(crate) fn is_admin_token(token: &str, state: &AppState) -> bool {
    same_digest(&token_hash(token), &state.admin_token_sha256)
}

/// The caller is the platform operator (the bootstrap administrator token): manages tenants.
pub(crate) struct PlatformAdmin(pub RequestMeta);

impl FromRequestParts<Arc<AppState>> for PlatformAdmin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Problem> {
        if is_admin_token(bearer(parts)?, state) {
            Ok(PlatformAdmin(RequestMeta::of(parts)))
        } else {
            Err(Problem::unauthorized(
                "invalid platform administrator token",
            ))
        }
    }
}

/// The caller may read `/metrics`, which names every tenant and node with their activity: the
/// platform operator's token, or the scrape-only `--metrics-token` (so a Prometheus
/// configuration need not hold the operator's token). Anyone else gets 401.
pub(crate) struct Scraper;

impl FromRequestParts<Arc<AppState>> for Scraper {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Problem> {
        let token = bearer(parts)?;
        let digest = token_hash(token);
        let scrape = state
            .metrics_token_sha256
            .as_deref()
            .is_some_and(|m| same_digest(&digest, m));
        if scrape || same_digest(&digest, &state.admin_token_sha256) {
            Ok(Scraper)
        } else {
            Err(Problem::unauthorized(
                "the metrics need the --metrics-token or the platform administrator token",
            ))
        }
    }
}

/// The caller is this registered, unrevoked node of an active tenant.
pub(crate) struct Node {
    pub scope: TenantScope,
    pub row: NodeRow,
    pub meta: RequestMeta,
}

impl FromRequestParts<Arc<AppState>> for Node {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Problem> {
        let token = bearer(parts)?;
        let unknown = || Problem::unauthorized("unknown or revoked node token");
        let slug = tenant_of_token(token).ok_or_else(unknown)?;
        if let crate::server::http::host::HostTenant::Named(host) =
            crate::server::auth::identity::host_tenant(&parts.headers, state)?
            && host != slug
        {
            return Err(unknown());
        }
        // The token is checked before the tenant's status is told: a made-up token of a
        // suspended tenant gets the same 401 as any other.
        let tenant = state
            .tenants
            .get(&state.store, slug)
            .await
            .map_err(crate::server::http::problem::store_problem)?
            .ok_or_else(unknown)?;
        let row = state
            .store
            .node_by_token_hash(&tenant.scope_to_check_a_credential(), &token_hash(token))
            .await
            .map_err(crate::server::http::problem::store_problem)?
            .ok_or_else(unknown)?;
        let scope = tenant.scope().ok_or_else(|| suspended(slug))?;
        // A node's allowance is its own, as a user's is (`--rate-limit-user`), then its
        // tenant's; the verdict goes to the RateLimit headers.
        let slot = parts
            .extensions
            .get::<crate::server::http::rate_limit::Slot>();
        let node = format!("node:{}", row.id);
        crate::server::http::rate_limit::announced(state.limits.check_caller(slug, &node), slot)?;
        Ok(Node {
            scope,
            row,
            meta: RequestMeta::of(parts),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_compare_exactly() {
        let a = token_hash("secret");
        assert!(same_digest(&a, &token_hash("secret")));
        assert!(!same_digest(&a, &token_hash("secreT")));
        assert!(!same_digest(&a, ""));
        assert_eq!(new_token().expect("random").len(), 64);
        assert_ne!(new_token().expect("random"), new_token().expect("random"));
        let node = new_tenant_token("acme").expect("random");
        assert_eq!(tenant_of_token(&node), Some("acme"));
        assert_eq!(tenant_of_token("no-dot"), None);
        assert_eq!(tenant_of_token("Bad_Slug.abc"), None);
        assert!(is_tenant_token(&node));
        for bad in [
            "acme.abc",
            "acme",
            "no-dot",
            &format!("{node}0"),
            &"x".repeat(70_000),
        ] {
            assert!(!is_tenant_token(bad), "{}", &bad[..bad.len().min(20)]);
        }
    }
}
