//! `POST /api/v1/voice-verifications`: a phone or kiosk client that checked a guard's voice hands
//! the node the outcome and the audio it judged. The node checks both (the audio must be a WAV
//! file it can read — `rollcall_protocol::wav`), stores them in one transaction and sends them to
//! the cloud with its other records: the audio first, named by its sha256, then the record.

use std::sync::Arc;

use axum::{extract::State, http::StatusCode, response::IntoResponse};
use base64::Engine as _;
use rollcall_protocol::{wav, wire::invalid_voice_fields};
use rollcall_service::problem::{Json, Problem};
use serde::{Deserialize, Serialize};

use super::{Admin, AppState, blocking};
use crate::store::NewVoiceRecord;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VoiceRequest {
    /// Whom the speaker claimed to be.
    person_id: Option<String>,
    /// `verified`, `rejected` or `inconclusive`.
    outcome: String,
    /// The client's score, 0-1.
    score: Option<f32>,
    /// The client device that recorded it.
    device: String,
    /// The phrase the speaker was asked to say.
    phrase: Option<String>,
    /// The recording, a WAV file, base64.
    audio_base64: String,
}

#[derive(Serialize)]
struct VoiceStored {
    seq: i64,
    audio_sha256: String,
    duration_ms: u64,
}

fn invalid(kind: &str, detail: String) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        kind,
        "Voice verification refused",
        detail,
    )
}

pub(super) async fn record_voice(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Json(req): Json<VoiceRequest>,
) -> Result<impl IntoResponse, Problem> {
    if let Some(reason) = invalid_voice_fields(
        req.person_id.as_deref(),
        &req.outcome,
        req.score,
        &req.device,
        req.phrase.as_deref(),
    ) {
        let detail = reason.strip_prefix("invalid_record: ").unwrap_or(&reason);
        return Err(invalid("invalid-voice-record", detail.to_owned()));
    }
    let audio = base64::engine::general_purpose::STANDARD
        .decode(req.audio_base64.trim())
        .map_err(|e| invalid("invalid-audio", format!("audio_base64 is not base64: {e}")))?;
    let info = wav::inspect(&audio).map_err(|e| invalid("invalid-audio", e.to_string()))?;
    let record = NewVoiceRecord {
        person_id: req.person_id,
        outcome: req.outcome,
        score: req.score,
        device: req.device,
        phrase: req.phrase,
        audio,
        duration_ms: info.duration_ms,
    };
    let store = state.store.clone();
    let stored = blocking(move || Ok(store.lock().record_voice(&record)?)).await?;
    tracing::info!(seq = stored.seq, sha256 = %stored.audio_sha256, duration_ms = info.duration_ms, "voice verification recorded");
    Ok((
        StatusCode::CREATED,
        axum::Json(VoiceStored {
            seq: stored.seq,
            audio_sha256: stored.audio_sha256,
            duration_ms: info.duration_ms,
        }),
    ))
}
