//! HTTP routes of the cloud: health, metrics, node registration, sync push, event listing.

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    extract::{Query, State},
    http::{StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use serde::Deserialize;

use super::{
    auth::{self, Admin, Node},
    metrics::{Metrics, ResultLabel},
    store::CloudStore,
};
use crate::{
    problem::{Json, Problem},
    protocol::{
        EventPage, MAX_BATCH_ITEMS, NodeCredential, NodeIdentity, PROTOCOL_VERSION, PushAck,
        PushBatch, RegisterNode,
    },
};

pub(crate) struct AppState {
    pub store: Arc<Mutex<CloudStore>>,
    pub admin_token_sha256: String,
    pub tenant_id: i64,
    pub tenant: String,
    pub metrics: Metrics,
}

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/nodes", post(register_node))
        .route("/api/v1/sync/push", post(push))
        .route("/api/v1/sync/whoami", get(whoami))
        .route("/api/v1/events", get(list_events))
        .route("/api/v1/signing-key", get(signing_key))
        .route("/api/v1/config-bundles", post(sign_config_bundle))
        .fallback(|| async { Problem::not_found("no such route") })
        .with_state(state)
}

/// Runs a store call off the async threads.
async fn with_store<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&mut CloudStore) -> Result<T, super::StoreError> + Send + 'static,
) -> Result<T, Problem> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || f(&mut store.lock().unwrap_or_else(|p| p.into_inner())))
        .await
        .map_err(|e| Problem::internal(e.to_string()))?
        .map_err(|e| {
            tracing::error!(error = %e, "store error");
            Problem::internal("the database failed; the request was not applied")
        })
}

async fn healthz(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, Problem> {
    with_store(&state, |s| s.ping()).await?;
    Ok(axum::Json(
        serde_json::json!({ "status": "ok", "service": "rollcall-cloud" }),
    ))
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

fn valid_site_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

async fn register_node(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Json(req): Json<RegisterNode>,
) -> Result<impl IntoResponse, Problem> {
    if !valid_site_id(&req.site_id) {
        return Err(Problem::bad_request(
            "site_id must be 1-64 characters of a-z, 0-9, - or _",
        ));
    }
    let token = auth::new_token().map_err(|e| Problem::internal(e.to_string()))?;
    let node_id = format!(
        "node-{}",
        &auth::new_token().map_err(|e| Problem::internal(e.to_string()))?[..16]
    );
    let hash = auth::token_hash(&token);
    let (tenant_id, id, site) = (state.tenant_id, node_id.clone(), req.site_id.clone());
    with_store(&state, move |s| {
        s.register_node(tenant_id, &id, &site, &hash)
    })
    .await?;
    tracing::info!(node = %node_id, site = %req.site_id, "node registered");
    Ok((
        StatusCode::CREATED,
        axum::Json(NodeCredential {
            node_id,
            tenant: state.tenant.clone(),
            site_id: req.site_id,
            token,
        }),
    ))
}

async fn push(
    State(state): State<Arc<AppState>>,
    Node(node): Node,
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
    let ack = with_store(&state, move |s| s.ingest(&node, &batch.events)).await?;
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
async fn whoami(State(state): State<Arc<AppState>>, Node(node): Node) -> axum::Json<NodeIdentity> {
    axum::Json(NodeIdentity {
        node_id: node.id,
        site_id: node.site_id,
        tenant: state.tenant.clone(),
        server_time_ms: crate::sqlite::now_ms(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    site_id: Option<String>,
    limit: Option<u32>,
}

async fn list_events(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    query: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<EventPage>, Problem> {
    let Query(q) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request("limit must be between 1 and 1000"));
    }
    let tenant_id = state.tenant_id;
    let items = with_store(&state, move |s| {
        s.events(tenant_id, q.site_id.as_deref(), limit)
    })
    .await?;
    Ok(axum::Json(EventPage { items }))
}

/// The tenant's bundle signer (its key is made on first use).
async fn signer(state: &AppState) -> Result<crate::bundle::BundleSigner, Problem> {
    let tenant_id = state.tenant_id;
    let secret = with_store(state, move |s| s.signing_secret(tenant_id)).await?;
    Ok(crate::bundle::BundleSigner::from_secret(secret))
}

/// The public key a node's config must trust (`node.bundle_public_key`) to accept this
/// tenant's config bundles.
async fn signing_key(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
) -> Result<impl IntoResponse, Problem> {
    let signer = signer(&state).await?;
    Ok(axum::Json(serde_json::json!({
        "tenant": state.tenant,
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
    _admin: Admin,
    Json(req): Json<BundleRequest>,
) -> Result<impl IntoResponse, Problem> {
    if !valid_site_id(&req.site_id) {
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
    let signer = signer(&state).await?;
    let (tenant_id, site) = (state.tenant_id, req.site_id.clone());
    let serial = with_store(&state, move |s| s.next_bundle_serial(tenant_id, &site)).await?;
    let bundle = signer.sign(
        &state.tenant,
        &req.site_id,
        serial,
        crate::sqlite::now_ms(),
        req.config_toml,
    );
    tracing::info!(site = %req.site_id, serial, key = %bundle.key_id, "config bundle signed");
    Ok((StatusCode::CREATED, axum::Json(bundle)))
}
