//! The audio of voice verification records: nodes upload each sample once, named by its sha256,
//! before the records that point at it; admins fetch a record's audio to listen to it.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Path, Request, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use sha2::Digest as _;

use crate::server::{
    auth::{extract::Node, identity::Caller},
    http::{problem::store_problem, router::AppState},
    records::voice::is_sha256,
    users::store::Role,
};
use rollcall_protocol::wav;
use rollcall_service::problem::Problem;

/// A node uploads the audio of its voice verification records (`Content-Type: audio/wav`, or
/// `application/octet-stream`; at most 2 MiB); stored once per tenant: uploading it again
/// changes nothing.
#[utoipa::path(put, path = "/api/v1/sync/blobs/{sha256}", tag = "sync",
    params(("sha256" = String, Path, description = "sha256 of the body, 64 lowercase hex digits", min_length = 64, max_length = 64, pattern = "^[0-9a-f]{64}$")),
    request_body(content((Vec<u8> = "audio/wav"), (Vec<u8> = "application/octet-stream")), description = "A WAV file: integer PCM or float, mono or stereo, 8-48 kHz, 0.2-60 s"),
    security(("node_token" = [])),
    responses((status = 201, description = "Stored"), (status = 200, description = "Held already"),
        (status = 400, description = "The body's digest is not the name", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Over 2 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not audio/wav", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not audio this cloud keeps", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn put_blob(
    State(state): State<Arc<AppState>>,
    Node {
        scope, row: node, ..
    }: Node,
    Path(sha256): Path<String>,
    request: Request,
) -> Result<StatusCode, Problem> {
    if !is_sha256(&sha256) {
        return Err(Problem::bad_request(
            "the blob's name is its sha256: 64 lowercase hex digits",
        ));
    }
    let media = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    if !matches!(
        media.as_deref(),
        Some("audio/wav" | "audio/x-wav" | "audio/wave" | "application/octet-stream")
    ) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "voice samples are uploaded as audio/wav (or application/octet-stream)",
        ));
    }
    let body = axum::body::to_bytes(request.into_body(), wav::MAX_AUDIO_BYTES)
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
                format!("a voice sample is at most {} bytes", wav::MAX_AUDIO_BYTES),
            )
        })?;
    if hex::encode(sha2::Sha256::digest(&body)) != sha256 {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "digest-mismatch",
            "Digest mismatch",
            "the body's sha256 is not the blob's name: it was cut or altered on the way",
        ));
    }
    let info = wav::inspect(&body).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-audio",
            "Audio cannot be kept",
            e.to_string(),
        )
    })?;
    let fresh = state
        .store
        .put_voice_blob(&scope, &node, sha256, body.to_vec(), info.duration_ms)
        .await
        .map_err(store_problem)?;
    Ok(if fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    })
}

/// The audio of a voice verification record, as the node uploaded it.
#[utoipa::path(get, path = "/api/v1/voice-verifications/{id}/audio", tag = "nodes",
    params(("id" = String, Path, description = "The voice record's id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The WAV file", content_type = "audio/wav", body = Vec<u8>)))]
pub(crate) async fn audio(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    caller.require(
        &[Role::Owner, Role::Admin, Role::Supervisor, Role::Auditor],
        "listen to voice verifications",
    )?;
    let audio = state
        .store
        .voice_audio(&caller.scope, &id)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| Problem::not_found(format!("no voice verification `{id}`")))?;
    Ok((
        [
            (header::CONTENT_TYPE, wav::CONTENT_TYPE),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        Body::from(audio),
    )
        .into_response())
}
