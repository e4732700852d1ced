//! HTTP routes of the cloud: health, metrics, node registration, sync push, event listing.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::{self, Node, PlatformAdmin},
    events_api,
    identity::{self, Caller},
    metrics::{Metrics, ResultLabel},
    store::{
        NodeInfo, Store, StoreError, Tenant, TenantStatus,
        audit::AuditEntry,
        users::{Role, User},
    },
    tenancy, tokens, users_api,
};
use rollcall_protocol::bundle::ConfigBundle;
use rollcall_protocol::ids::SiteId;
use rollcall_protocol::wire::{
    MAX_BATCH_ITEMS, NodeCredential, NodeIdentity, PROTOCOL_VERSION, PushAck, PushBatch,
    RegisterNode,
};
use rollcall_service::problem::{Json, Problem};

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
    /// Seals face templates (through each tenant's data key).
    pub master_key: super::sealing::MasterKey,
}

/// Every documented route: each `routes!` call registers the handlers of one path together with
/// their OpenAPI operations, so the document cannot miss or misspell a route.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    use super::{cors, openapi, people_api, sites_api};
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(openapi::document))
        .routes(routes!(events_api::version))
        .routes(routes!(register_node, list_nodes))
        .routes(routes!(revoke_node))
        .routes(routes!(push))
        .routes(routes!(whoami))
        .routes(routes!(super::sync_pull::pull_people))
        .routes(routes!(super::sync_pull::pull_site))
        .routes(routes!(super::sync_pull::pull_revocations))
        .routes(routes!(
            super::revocations_api::revoke,
            super::revocations_api::list
        ))
        .routes(routes!(super::revocations_api::reinstate))
        .routes(routes!(super::rejections_api::node_rejections))
        .routes(routes!(super::records_api::node_audit))
        .routes(routes!(super::records_api::node_voice))
        .routes(routes!(super::voice_api::put_blob))
        .routes(routes!(super::voice_api::audio))
        .routes(routes!(super::records_api::list_alarms))
        .routes(routes!(events_api::list_v1))
        .routes(routes!(events_api::get_v1))
        .routes(routes!(events_api::list_v2))
        .routes(routes!(events_api::get_v2))
        .routes(routes!(signing_key))
        .routes(routes!(sign_config_bundle))
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(get_tenant, update_tenant))
        .routes(routes!(identity::login))
        .routes(routes!(identity::refresh))
        .routes(routes!(identity::logout))
        .routes(routes!(identity::me))
        .routes(routes!(super::sessions::create, super::sessions::end))
        .routes(routes!(users_api::list, users_api::create))
        .routes(routes!(users_api::get, users_api::update))
        .routes(routes!(audit_log))
        .routes(routes!(sites_api::list, sites_api::create))
        .routes(routes!(
            sites_api::get,
            sites_api::update,
            sites_api::delete
        ))
        .routes(routes!(cors::get_settings, cors::patch_settings))
        .routes(routes!(people_api::list, people_api::create))
        .routes(routes!(
            people_api::get,
            people_api::update,
            people_api::delete
        ))
        .routes(routes!(
            people_api::list_templates,
            people_api::add_template
        ))
        .routes(routes!(people_api::delete_template))
        .routes(routes!(people_api::history))
        .routes(routes!(people_api::list_shifts, people_api::create_shift))
        .routes(routes!(people_api::delete_shift))
}

pub(crate) fn router(state: Arc<AppState>) -> Router {
    let (router, _) = routes().split_for_parts();
    router
        .route("/docs", get(super::openapi::page))
        // Only on matched routes: a method a path does not have is 405, whatever its headers.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::idempotency::layer,
        ))
        .fallback(|| async { Problem::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this path does not take this method; see /api/openapi.json",
            )
        })
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
        StoreError::Invalid(detail) => Problem::bad_request(detail),
        e => {
            tracing::error!(error = %e, "store error");
            Problem::internal("the database failed; the request was not applied")
        }
    }
}

#[derive(Serialize, ToSchema)]
struct Health {
    /// `ok` when the database answers.
    status: &'static str,
    service: &'static str,
    /// `sqlite` or `postgres`.
    database: &'static str,
}

/// Liveness and readiness: the database answers.
#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses((status = 200, body = Health), (status = 500, description = "The database does not answer", body = Problem, content_type = "application/problem+json")))]
async fn healthz(State(state): State<Arc<AppState>>) -> Result<axum::Json<Health>, Problem> {
    state.store.ping().await.map_err(store_problem)?;
    Ok(axum::Json(Health {
        status: "ok",
        service: "rollcall-cloud",
        database: state.store.backend_name(),
    }))
}

/// Prometheus metrics (OpenMetrics text): requests, sync batches and items.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text")))]
async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// Registers a node for a site; the answer holds its token, shown this once.
#[utoipa::path(post, path = "/api/v1/nodes", tag = "nodes", request_body = RegisterNode,
    security(("bearer" = [])),
    responses((status = 201, body = NodeCredential)))]
async fn register_node(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(req): Json<RegisterNode>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(NODE_ADMINS, "register nodes")?;
    if !SiteId::is_valid(&req.site_id) {
        return Err(Problem::bad_request(format!(
            "site_id must be {}",
            SiteId::RULE
        )));
    }
    let scope = &caller.scope;
    let token =
        auth::new_tenant_token(scope.slug()).map_err(|e| Problem::internal(e.to_string()))?;
    let node_id = format!(
        "node-{}",
        &auth::new_token().map_err(|e| Problem::internal(e.to_string()))?[..16]
    );
    let hash = auth::token_hash(&token);
    if req
        .replaces
        .as_ref()
        .is_some_and(|r| r.is_empty() || r.chars().count() > 64)
    {
        return Err(Problem::bad_request("replaces: a node id, 1-64 characters"));
    }
    state
        .store
        .register_node_replacing(
            scope,
            &node_id,
            &req.site_id,
            &hash,
            req.replaces.as_deref(),
            caller.audit(
                "node.register",
                Some(node_id.clone()),
                serde_json::json!({ "site_id": req.site_id, "replaces": req.replaces }),
            ),
        )
        .await
        .map_err(store_problem)?;
    if let Some(old) = &req.replaces {
        tracing::warn!(node = %node_id, replaces = %old, "node registered in place of another: its credential is revoked, its history moved");
    }
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Entries older than this entry id (the `next_before` of the previous page).
    before: Option<i64>,
    /// Page size, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
struct AuditPage {
    items: Vec<AuditEntry>,
    /// Pass as `before` for the next page; absent on the last page.
    next_before: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct NodeList {
    items: Vec<NodeInfo>,
}

#[derive(Serialize, ToSchema)]
struct TenantList {
    items: Vec<Tenant>,
}

/// The tenant's audit trail, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    security(("bearer" = [])),
    responses((status = 200, body = AuditPage)))]
async fn audit_log(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<AuditPage>, Problem> {
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
    Ok(axum::Json(AuditPage { items, next_before }))
}

/// The tenant's nodes, revoked ones included (never their tokens).
#[utoipa::path(get, path = "/api/v1/nodes", tag = "nodes",
    security(("bearer" = [])),
    responses((status = 200, body = NodeList)))]
async fn list_nodes(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<axum::Json<NodeList>, Problem> {
    caller.require(&[Role::Owner, Role::Admin, Role::Auditor], "list nodes")?;
    let items = state
        .store
        .nodes(&caller.scope)
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(NodeList { items }))
}

/// Revokes a node's credential at once (a lost or stolen box): its next request is refused.
#[utoipa::path(delete, path = "/api/v1/nodes/{id}", tag = "nodes",
    params(("id" = String, Path, description = "The node's id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Revoked")))]
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

/// A node pushes a batch of its outbox; the answer lists accepted, duplicate and rejected items.
#[utoipa::path(post, path = "/api/v1/sync/push", tag = "sync", request_body = PushBatch,
    description = "The body may also be CBOR (`Content-Type: application/cbor`, the same fields, about a third smaller); the answer then comes in CBOR too.",
    params(("Content-Encoding" = Option<String>, Header, description = "`gzip` for a compressed body; none for plain JSON")),
    security(("node_token" = [])),
    responses((status = 200, body = PushAck),
        (status = 413, description = "More than 1000 items", body = Problem, content_type = "application/problem+json")))]
async fn push(
    State(state): State<Arc<AppState>>,
    Node {
        scope,
        row: node,
        meta,
    }: Node,
    super::sync_body::SyncBody {
        value: batch,
        encoding,
    }: super::sync_body::SyncBody<PushBatch>,
) -> Result<super::sync_body::SyncReply<PushAck>, Problem> {
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
    if batch.voice.len() > rollcall_protocol::wire::MAX_VOICE_PER_PUSH {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
            "Batch too large",
            format!(
                "at most {} voice records per push, got {}",
                rollcall_protocol::wire::MAX_VOICE_PER_PUSH,
                batch.voice.len()
            ),
        ));
    }
    if batch.len() > MAX_BATCH_ITEMS {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
            "Batch too large",
            format!(
                "at most {MAX_BATCH_ITEMS} items per push, got {}",
                batch.len()
            ),
        ));
    }
    let node_id = node.id.clone();
    let node_times: std::collections::HashMap<String, i64> = batch
        .events
        .iter()
        .map(|e| (e.id.clone(), e.node_time_ms))
        .collect();
    let alarm_kinds: std::collections::HashMap<String, String> = batch
        .alarms
        .iter()
        .map(|a| (a.id.clone(), a.kind.clone()))
        .collect();
    let ack = state
        .store
        .ingest_batch(
            &scope,
            &node,
            batch,
            Some(&state.master_key),
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
    for id in &ack.accepted {
        if let Some(kind) = alarm_kinds.get(id) {
            state.metrics.count_alarm(kind);
        }
    }
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
    let newest_accepted = ack
        .accepted
        .iter()
        .filter_map(|id| node_times.get(id))
        .max()
        .copied();
    let owed = state.metrics.record_push(
        scope.slug(),
        &node_id,
        &ack,
        newest_accepted,
        rollcall_service::clock::now_ms(),
    );
    if !ack.missing.is_empty() {
        tracing::warn!(node = %node_id, watermark = ack.watermark, owed, "node's sequence has gaps");
    }
    for r in &ack.rejected {
        tracing::warn!(node = %node_id, id = %r.id, reason = %r.reason, "sync item rejected");
    }
    tracing::info!(node = %node_id, accepted = ack.accepted.len(), duplicate = ack.duplicate.len(), rejected = ack.rejected.len(), "sync push");
    Ok(super::sync_body::SyncReply(encoding, ack))
}

/// A node checks its credential and the server's clock (`rollcall-node doctor`).
#[utoipa::path(get, path = "/api/v1/sync/whoami", tag = "sync",
    security(("node_token" = [])),
    responses((status = 200, body = NodeIdentity)))]
async fn whoami(
    Node {
        scope, row: node, ..
    }: Node,
) -> axum::Json<NodeIdentity> {
    axum::Json(NodeIdentity {
        node_id: node.id,
        site_id: node.site_id,
        tenant: scope.slug().to_owned(),
        server_time_ms: rollcall_service::clock::now_ms(),
    })
}

/// The tenant's bundle signer (its key is made on first use).
async fn signer(
    state: &AppState,
    scope: &super::store::TenantScope,
) -> Result<rollcall_protocol::bundle::BundleSigner, Problem> {
    let secret = state
        .store
        .signing_secret(scope)
        .await
        .map_err(store_problem)?;
    Ok(rollcall_protocol::bundle::BundleSigner::from_secret(secret))
}

#[derive(Serialize, ToSchema)]
struct SigningKey {
    tenant: String,
    /// Always `ed25519`.
    algorithm: &'static str,
    /// The public key, hex: `node.bundle_public_key` in a node's config.
    public_key: String,
    key_id: String,
}

/// The public key a node's config must trust (`node.bundle_public_key`) to accept this
/// tenant's config bundles.
#[utoipa::path(get, path = "/api/v1/signing-key", tag = "nodes",
    security(("bearer" = [])),
    responses((status = 200, body = SigningKey)))]
async fn signing_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<axum::Json<SigningKey>, Problem> {
    caller.require(NODE_ADMINS, "see the bundle signing key")?;
    let scope = caller.scope;
    let signer = signer(&state, &scope).await?;
    Ok(axum::Json(SigningKey {
        tenant: scope.slug().to_owned(),
        algorithm: "ed25519",
        public_key: signer.public_key_hex(),
        key_id: signer.key_id(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BundleRequest {
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    site_id: String,
    /// The node's complete config file.
    config_toml: String,
}

/// Signs a node config for a site: the installer downloads the bundle and runs
/// `rollcall-node flash BUNDLE` at the site.
#[utoipa::path(post, path = "/api/v1/config-bundles", tag = "nodes", request_body = BundleRequest,
    security(("bearer" = [])),
    responses((status = 201, body = ConfigBundle)))]
async fn sign_config_bundle(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(req): Json<BundleRequest>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(NODE_ADMINS, "sign config bundles")?;
    let scope = caller.scope.clone();
    if !SiteId::is_valid(&req.site_id) {
        return Err(Problem::bad_request(format!(
            "site_id must be {}",
            SiteId::RULE
        )));
    }
    if req.config_toml.len() > rollcall_protocol::bundle::MAX_BUNDLE_BYTES / 2 {
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
        rollcall_service::clock::now_ms(),
        req.config_toml,
    );
    tracing::info!(site = %req.site_id, serial, key = %bundle.key_id, "config bundle signed");
    Ok((StatusCode::CREATED, axum::Json(bundle)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$")]
    slug: String,
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        max_length = 200
    )]
    name: String,
    /// The tenant's first owner, who then manages its users.
    owner: Option<NewOwner>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewOwner {
    email: String,
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        max_length = 200
    )]
    display_name: String,
    #[schema(min_length = 12)]
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TenantPatch {
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        max_length = 200
    )]
    name: Option<String>,
    status: Option<TenantStatus>,
}

#[derive(Serialize, ToSchema)]
struct CreatedTenant {
    #[serde(flatten)]
    tenant: Tenant,
    /// The first owner, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<User>,
}

/// Every tenant (platform operators only).
#[utoipa::path(get, path = "/api/v1/platform/tenants", tag = "platform",
    security(("bearer" = [])),
    responses((status = 200, body = TenantList)))]
async fn list_tenants(
    State(state): State<Arc<AppState>>,
    _platform: PlatformAdmin,
) -> Result<axum::Json<TenantList>, Problem> {
    let items = state.store.tenants().await.map_err(store_problem)?;
    Ok(axum::Json(TenantList { items }))
}

/// A new tenant, active at once. Its slug is permanent (it names the tenant's host and is part
/// of its nodes' credentials).
#[utoipa::path(post, path = "/api/v1/platform/tenants", tag = "platform", request_body = NewTenant,
    security(("bearer" = [])),
    responses((status = 201, body = CreatedTenant)))]
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
    tenancy::check_name(&req.name)?;
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
    let mut created = CreatedTenant {
        tenant,
        owner: None,
    };
    if let (Some(owner), Some(scope)) = (owner, created.tenant.scope()) {
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
        created.owner = Some(user);
    }
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// One tenant (platform operators only).
#[utoipa::path(get, path = "/api/v1/platform/tenants/{slug}", tag = "platform",
    params(("slug" = String, Path, description = "The tenant's slug")),
    security(("bearer" = [])),
    responses((status = 200, body = Tenant)))]
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
#[utoipa::path(patch, path = "/api/v1/platform/tenants/{slug}", tag = "platform", request_body = TenantPatch,
    params(("slug" = String, Path, description = "The tenant's slug")),
    security(("bearer" = [])),
    responses((status = 200, body = Tenant)))]
async fn update_tenant(
    State(state): State<Arc<AppState>>,
    PlatformAdmin(meta): PlatformAdmin,
    Path(slug): Path<String>,
    Json(patch): Json<TenantPatch>,
) -> Result<axum::Json<Tenant>, Problem> {
    if let Some(name) = &patch.name {
        tenancy::check_name(name)?;
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
