//! The nodes API: registration (and handover), listing, revocation, whoami, the tenant's signing
//! key and signed config bundles.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::server::http::problem::store_problem;
use crate::server::http::router::AppState;
use crate::server::{
    auth::{
        extract::{self as auth, Node},
        identity::Caller,
    },
    store::NodeInfo,
    users::store::Role,
};
use rollcall_protocol::bundle::ConfigBundle;
use rollcall_protocol::ids::SiteId;
use rollcall_protocol::wire::{NodeCredential, NodeIdentity, RegisterNode};
use rollcall_service::problem::{Json, Problem};

/// Who manages a tenant's nodes and their config bundles.
const NODE_ADMINS: &[Role] = &[Role::Owner, Role::Admin];

/// Registers a node for a site; the answer holds its token, shown this once.
#[utoipa::path(post, path = "/api/v1/nodes", tag = "nodes", request_body = RegisterNode,
    security(("bearer" = [])),
    responses((status = 201, body = NodeCredential)))]
pub(crate) async fn register_node(
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
        // The token is shown this once: a replay under an Idempotency-Key goes without it.
        axum::Extension(crate::server::http::idempotency::Secret(&["token"])),
        axum::Json(NodeCredential {
            node_id,
            tenant: scope.slug().to_owned(),
            site_id: req.site_id,
            token,
        }),
    ))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct NodeList {
    items: Vec<NodeInfo>,
}

/// The tenant's nodes, revoked ones included (never their tokens).
#[utoipa::path(get, path = "/api/v1/nodes", tag = "nodes",
    security(("bearer" = [])),
    responses((status = 200, body = NodeList)))]
pub(crate) async fn list_nodes(
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
pub(crate) async fn revoke_node(
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

/// A node checks its credential and the server's clock (`rollcall-node doctor`).
#[utoipa::path(get, path = "/api/v1/sync/whoami", tag = "sync",
    security(("node_token" = [])),
    responses((status = 200, body = NodeIdentity)))]
pub(crate) async fn whoami(
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
pub(crate) async fn signer(
    state: &AppState,
    scope: &crate::server::store::TenantScope,
) -> Result<rollcall_protocol::bundle::BundleSigner, Problem> {
    let secret = state
        .store
        .signing_secret(scope)
        .await
        .map_err(store_problem)?;
    Ok(rollcall_protocol::bundle::BundleSigner::from_secret(secret))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SigningKey {
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
pub(crate) async fn signing_key(
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
pub(crate) struct BundleRequest {
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
pub(crate) async fn sign_config_bundle(
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
