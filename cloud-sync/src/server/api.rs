//! HTTP routes of the cloud: health, metrics, node registration, sync push, event listing.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use serde::Deserialize;

use super::{
    auth::{self, Node, PlatformAdmin},
    events_api,
    identity::{self, Caller},
    metrics::{Metrics, ResultLabel},
    store::{Store, StoreError, Tenant, TenantStatus, users::Role},
    tenancy, tokens, users_api,
};
use crate::{
    problem::{Json, Problem},
    protocol::{
        MAX_BATCH_ITEMS, NodeCredential, NodeIdentity, PROTOCOL_VERSION, PushAck, PushBatch,
        RegisterNode,
    },
};

pub(crate) struct AppState {
    pub store: Store,
    pub admin_token_sha256: String,
    /// The bootstrap tenant, administered with the bootstrap token.
    pub tenant: String,
    /// Hosts `<tenant>.<base_domain>` name their tenant.
    pub base_domain: Option<String>,
    pub access: tokens::AccessKeys,
    pub limits: super::rate_limit::RateLimits,
    pub tenants: super::tenant_cache::TenantCache,
    pub metrics: Metrics,
}

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/nodes", post(register_node).get(list_nodes))
        .route("/api/v1/nodes/{id}", axum::routing::delete(revoke_node))
        .route("/api/v1/sync/push", post(push))
        .route("/api/v1/sync/whoami", get(whoami))
        .route("/api/version", get(events_api::version))
        .route("/api/v1/events", get(events_api::list_v1))
        .route("/api/v1/events/{id}", get(events_api::get_v1))
        .route("/api/v2/events", get(events_api::list_v2))
        .route("/api/v2/events/{id}", get(events_api::get_v2))
        .route("/api/v1/signing-key", get(signing_key))
        .route("/api/v1/config-bundles", post(sign_config_bundle))
        .route(
            "/api/v1/platform/tenants",
            get(list_tenants).post(create_tenant),
        )
        .route(
            "/api/v1/platform/tenants/{slug}",
            get(get_tenant).patch(update_tenant),
        )
        .route("/api/v1/auth/login", post(identity::login))
        .route("/api/v1/auth/refresh", post(identity::refresh))
        .route("/api/v1/auth/logout", post(identity::logout))
        .route("/api/v1/me", get(identity::me))
        .route(
            "/api/v1/users",
            get(users_api::list).post(users_api::create),
        )
        .route(
            "/api/v1/users/{id}",
            get(users_api::get).patch(users_api::update),
        )
        .route("/api/v1/audit", get(audit_log))
        .route(
            "/api/v1/sites",
            get(super::sites_api::list).post(super::sites_api::create),
        )
        .route(
            "/api/v1/sites/{id}",
            get(super::sites_api::get)
                .patch(super::sites_api::update)
                .delete(super::sites_api::delete),
        )
        .route(
            "/api/v1/tenant",
            get(super::cors::get_settings).patch(super::cors::patch_settings),
        )
        .fallback(|| async { Problem::not_found("no such route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::idempotency::layer,
        ))
        .layer(axum::middleware::from_fn(super::rate_limit::headers))
        .layer(axum::middleware::from_fn(super::negotiate::json_only))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::cors::layer,
        ))
        .layer(axum::middleware::from_fn(super::request_meta::assign))
        .with_state(state)
}

/// Who manages a tenant's nodes and their config bundles.
const NODE_ADMINS: &[Role] = &[Role::Owner, Role::Admin];

/// A store failure as the client sees it: a conflict says what clashed; anything else is logged
/// and answered without internals.
pub(crate) fn store_problem(e: StoreError) -> Problem {
    match e {
        StoreError::Conflict(detail) => {
            Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
        }
        e => {
            tracing::error!(error = %e, "store error");
            Problem::internal("the database failed; the request was not applied")
        }
    }
}

async fn healthz(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, Problem> {
    state.store.ping().await.map_err(store_problem)?;
    Ok(axum::Json(serde_json::json!({
        "status": "ok",
        "service": "rollcall-cloud",
        "database": state.store.backend_name(),
    })))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn register_node(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(req): Json<RegisterNode>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(NODE_ADMINS, "register nodes")?;
    if !super::sites_api::valid_site_id(&req.site_id) {
        return Err(Problem::bad_request(
            "site_id must be 1-64 characters of a-z, 0-9, - or _",
        ));
    }
    let scope = &caller.scope;
    let token =
        auth::new_tenant_token(scope.slug()).map_err(|e| Problem::internal(e.to_string()))?;
    let node_id = format!(
        "node-{}",
        &auth::new_token().map_err(|e| Problem::internal(e.to_string()))?[..16]
    );
    let hash = auth::token_hash(&token);
    state
        .store
        .register_node(
            scope,
            &node_id,
            &req.site_id,
            &hash,
            caller.audit(
                "node.register",
                Some(node_id.clone()),
                serde_json::json!({ "site_id": req.site_id }),
            ),
        )
        .await
        .map_err(store_problem)?;
    tracing::info!(node = %node_id, site = %req.site_id, "node registered");
    Ok((
        StatusCode::CREATED,
        axum::Json(NodeCredential {
            node_id,
            tenant: scope.slug().to_owned(),
            site_id: req.site_id,
            token,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Entries older than this entry id (the `next_before` of the previous page).
    before: Option<i64>,
    limit: Option<u32>,
}

/// The tenant's audit trail, newest first, a page at a time.
async fn audit_log(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<serde_json::Value>, Problem> {
    caller.require(
        &[Role::Owner, Role::Admin, Role::Auditor],
        "read the audit trail",
    )?;
    let Query(q) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let limit = events_api::page_limit(q.limit)?;
    let items = state
        .store
        .audit_entries(&caller.scope, q.before, limit)
        .await
        .map_err(store_problem)?;
    let next_before = (items.len() == limit as usize)
        .then(|| items.last().map(|e| e.id))
        .flatten();
    Ok(axum::Json(
        serde_json::json!({ "items": items, "next_before": next_before }),
    ))
}

async fn list_nodes(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<axum::Json<serde_json::Value>, Problem> {
    caller.require(&[Role::Owner, Role::Admin, Role::Auditor], "list nodes")?;
    let items = state
        .store
        .nodes(&caller.scope)
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(serde_json::json!({ "items": items })))
}

/// Revokes a node's credential at once (a lost or stolen box): its next request is refused.
async fn revoke_node(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    caller.require(NODE_ADMINS, "revoke nodes")?;
    if state
        .store
        .revoke_node(
            &caller.scope,
            &id,
            caller.audit("node.revoke", Some(id.clone()), serde_json::Value::Null),
        )
        .await
        .map_err(store_problem)?
    {
        tracing::warn!(tenant = %caller.scope.slug(), by = %caller.who(), node = %id, "node revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("no active node `{id}`")))
    }
}

async fn push(
    State(state): State<Arc<AppState>>,
    Node {
        scope,
        row: node,
        meta,
    }: Node,
    Json(batch): Json<PushBatch>,
) -> Result<axum::Json<PushAck>, Problem> {
    if batch.protocol != PROTOCOL_VERSION {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "protocol-version",
            "Unsupported protocol version",
            format!(
                "this server speaks sync protocol {PROTOCOL_VERSION}, the node sent {}",
                batch.protocol
            ),
        ));
    }
    if batch.events.len() > MAX_BATCH_ITEMS {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
            "Batch too large",
            format!(
                "at most {MAX_BATCH_ITEMS} items per push, got {}",
                batch.events.len()
            ),
        ));
    }
    let node_id = node.id.clone();
    let ack = state
        .store
        .ingest(
            &scope,
            &node,
            batch.events,
            meta.audit(
                format!("node:{node_id}"),
                "sync.push",
                None,
                serde_json::Value::Null,
            ),
        )
        .await
        .map_err(store_problem)?;
    state.metrics.sync_batches.inc();
    for (result, n) in [
        ("accepted", ack.accepted.len()),
        ("duplicate", ack.duplicate.len()),
        ("rejected", ack.rejected.len()),
    ] {
        state
            .metrics
            .sync_items
            .get_or_create(&ResultLabel { result })
            .inc_by(n as u64);
    }
    for r in &ack.rejected {
        tracing::warn!(node = %node_id, id = %r.id, reason = %r.reason, "sync item rejected");
    }
    tracing::info!(node = %node_id, accepted = ack.accepted.len(), duplicate = ack.duplicate.len(), rejected = ack.rejected.len(), "sync push");
    Ok(axum::Json(ack))
}

/// A node checks its credential and the server's clock (`rollcall-node doctor`).
async fn whoami(
    Node {
        scope, row: node, ..
    }: Node,
) -> axum::Json<NodeIdentity> {
    axum::Json(NodeIdentity {
        node_id: node.id,
        site_id: node.site_id,
        tenant: scope.slug().to_owned(),
        server_time_ms: crate::sqlite::now_ms(),
    })
}

/// The tenant's bundle signer (its key is made on first use).
async fn signer(
    state: &AppState,
    scope: &super::store::TenantScope,
) -> Result<crate::bundle::BundleSigner, Problem> {
    let secret = state
        .store
        .signing_secret(scope)
        .await
        .map_err(store_problem)?;
    Ok(crate::bundle::BundleSigner::from_secret(secret))
}

/// The public key a node's config must trust (`node.bundle_public_key`) to accept this
/// tenant's config bundles.
async fn signing_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<impl IntoResponse, Problem> {
    caller.require(NODE_ADMINS, "see the bundle signing key")?;
    let scope = caller.scope;
    let signer = signer(&state, &scope).await?;
    Ok(axum::Json(serde_json::json!({
        "tenant": scope.slug(),
        "algorithm": "ed25519",
        "public_key": signer.public_key_hex(),
        "key_id": signer.key_id(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleRequest {
    site_id: String,
    /// The node's complete config file.
    config_toml: String,
}

/// Signs a node config for a site: the installer downloads the bundle and runs
/// `rollcall-node flash BUNDLE` at the site.
async fn sign_config_bundle(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(req): Json<BundleRequest>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(NODE_ADMINS, "sign config bundles")?;
    let scope = caller.scope.clone();
    if !super::sites_api::valid_site_id(&req.site_id) {
        return Err(Problem::bad_request(
            "site_id must be 1-64 characters of a-z, 0-9, - or _",
        ));
    }
    if req.config_toml.len() > crate::bundle::MAX_BUNDLE_BYTES / 2 {
        return Err(Problem::bad_request("config_toml is larger than 512 KiB"));
    }
    // The node validates the whole config when it is flashed; here it must at least be TOML
    // and be for this site.
    let parsed: toml::Table = req
        .config_toml
        .parse()
        .map_err(|e| Problem::bad_request(format!("config_toml is not valid TOML: {e}")))?;
    let site_in_config = parsed
        .get("node")
        .and_then(|n| n.get("site_id"))
        .and_then(|v| v.as_str());
    if site_in_config != Some(req.site_id.as_str()) {
        return Err(Problem::bad_request(format!(
            "config_toml: node.site_id is {site_in_config:?}, but the bundle is for site `{}`",
            req.site_id
        )));
    }
    let signer = signer(&state, &scope).await?;
    let serial = state
        .store
        .next_bundle_serial(
            &scope,
            &req.site_id,
            caller.audit(
                "bundle.sign",
                Some(req.site_id.clone()),
                serde_json::json!({ "site_id": req.site_id }),
            ),
        )
        .await
        .map_err(store_problem)?;
    let bundle = signer.sign(
        scope.slug(),
        &req.site_id,
        serial,
        crate::sqlite::now_ms(),
        req.config_toml,
    );
    tracing::info!(site = %req.site_id, serial, key = %bundle.key_id, "config bundle signed");
    Ok((StatusCode::CREATED, axum::Json(bundle)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    slug: String,
    name: String,
    /// The tenant's first owner, who then manages its users.
    owner: Option<NewOwner>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOwner {
    email: String,
    display_name: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantPatch {
    name: Option<String>,
    status: Option<TenantStatus>,
}

fn check_name(name: &str) -> Result<(), Problem> {
    match tenancy::invalid_name(name) {
        Some(why) => Err(Problem::bad_request(why)),
        None => Ok(()),
    }
}

async fn list_tenants(
    State(state): State<Arc<AppState>>,
    _platform: PlatformAdmin,
) -> Result<axum::Json<serde_json::Value>, Problem> {
    let items = state.store.tenants().await.map_err(store_problem)?;
    Ok(axum::Json(serde_json::json!({ "items": items })))
}

/// A new tenant, active at once. Its slug is permanent (it names the tenant's host and is part
/// of its nodes' credentials).
async fn create_tenant(
    State(state): State<Arc<AppState>>,
    PlatformAdmin(meta): PlatformAdmin,
    Json(req): Json<NewTenant>,
) -> Result<impl IntoResponse, Problem> {
    if !tenancy::valid_slug(&req.slug) {
        return Err(Problem::bad_request(
            "slug must be 2-63 characters of a-z, 0-9 and -, not starting or ending with -",
        ));
    }
    check_name(&req.name)?;
    // Validate the owner before anything is written.
    let owner = match req.owner {
        Some(o) => {
            Some(users_api::prepare_user(&o.email, &o.display_name, Role::Owner, o.password).await?)
        }
        None => None,
    };
    let tenant = state
        .store
        .create_tenant(
            &req.slug,
            req.name.trim(),
            meta.audit(
                "platform".into(),
                "tenant.create",
                Some(req.slug.clone()),
                serde_json::json!({ "name": req.name.trim() }),
            ),
        )
        .await
        .map_err(store_problem)?;
    state.tenants.forget(&tenant.slug);
    tracing::info!(tenant = %tenant.slug, "tenant created");
    let mut body = serde_json::to_value(&tenant).map_err(|e| Problem::internal(e.to_string()))?;
    if let (Some(owner), Some(scope)) = (owner, tenant.scope()) {
        let user = state
            .store
            .create_user(
                &scope,
                owner.clone(),
                meta.audit(
                    "platform".into(),
                    "user.create",
                    Some(owner.id),
                    serde_json::json!({ "role": "owner" }),
                ),
            )
            .await
            .map_err(store_problem)?;
        body["owner"] =
            serde_json::to_value(&user).map_err(|e| Problem::internal(e.to_string()))?;
    }
    Ok((StatusCode::CREATED, axum::Json(body)))
}

async fn get_tenant(
    State(state): State<Arc<AppState>>,
    _platform: PlatformAdmin,
    Path(slug): Path<String>,
) -> Result<axum::Json<Tenant>, Problem> {
    state
        .store
        .tenant(&slug)
        .await
        .map_err(store_problem)?
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found(format!("no tenant `{slug}`")))
}

/// Renames, suspends or reactivates a tenant. A suspended tenant's nodes and administrators get
/// 403 `tenant-suspended` on every request until it is reactivated; nothing is deleted.
async fn update_tenant(
    State(state): State<Arc<AppState>>,
    PlatformAdmin(meta): PlatformAdmin,
    Path(slug): Path<String>,
    Json(patch): Json<TenantPatch>,
) -> Result<axum::Json<Tenant>, Problem> {
    if let Some(name) = &patch.name {
        check_name(name)?;
    }
    let status = patch.status;
    let tenant = state
        .store
        .update_tenant(
            &slug,
            patch.name.map(|n| n.trim().to_owned()),
            status,
            meta.audit(
                "platform".into(),
                "tenant.update",
                Some(slug.clone()),
                serde_json::json!({ "status": status.map(TenantStatus::as_str) }),
            ),
        )
        .await
        .map_err(store_problem)?
        .ok_or_else(|| Problem::not_found(format!("no tenant `{slug}`")))?;
    state.tenants.forget(&slug);
    if let Some(status) = status {
        tracing::warn!(tenant = %slug, status = status.as_str(), "tenant status changed");
    }
    Ok(axum::Json(tenant))
}
