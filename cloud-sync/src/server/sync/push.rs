//! `POST /api/v1/sync/push`: a node's batch, decoded, bounded and stored in one transaction.

use std::sync::Arc;

use axum::{extract::State, http::StatusCode};

use crate::server::http::problem::store_problem;
use crate::server::http::router::AppState;
use crate::server::{auth::extract::Node, http::metrics::ResultLabel};
use rollcall_protocol::wire::{MAX_BATCH_ITEMS, PROTOCOL_VERSION, PushAck, PushBatch};
use rollcall_service::problem::Problem;

/// A node pushes a batch of its outbox; the answer lists accepted, duplicate and rejected items.
#[utoipa::path(post, path = "/api/v1/sync/push", tag = "sync", request_body = PushBatch,
    description = "The body may also be CBOR (`Content-Type: application/cbor`, the same fields, about a third smaller); the answer then comes in CBOR too.",
    params(("Content-Encoding" = Option<String>, Header, description = "`gzip` for a compressed body; none for plain JSON")),
    security(("node_token" = [])),
    responses((status = 200, body = PushAck),
        (status = 413, description = "More than 1000 items", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn push(
    State(state): State<Arc<AppState>>,
    Node {
        scope,
        row: node,
        meta,
    }: Node,
    crate::server::sync::body::SyncBody {
        value: batch,
        encoding,
    }: crate::server::sync::body::SyncBody<PushBatch>,
) -> Result<crate::server::sync::body::SyncReply<PushAck>, Problem> {
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
    // Voice records carry audio and people their templates: each has a cap of its own.
    for (what, n, max) in [
        (
            "voice records",
            batch.voice.len(),
            rollcall_protocol::wire::MAX_VOICE_PER_PUSH,
        ),
        (
            "people",
            batch.people.len(),
            rollcall_protocol::wire::MAX_PEOPLE_PER_PUSH,
        ),
    ] {
        if n > max {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch-too-large",
                "Batch too large",
                format!("at most {max} {what} per push, got {n}"),
            ));
        }
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
        tracing::warn!(node = %node_id, id = ?r.id, reason = ?r.reason, "sync item rejected");
    }
    tracing::info!(node = %node_id, accepted = ack.accepted.len(), duplicate = ack.duplicate.len(), rejected = ack.rejected.len(), "sync push");
    Ok(crate::server::sync::body::SyncReply(encoding, ack))
}
