//! The node's HTTP API: kiosk check-ins, enrolment, local events, health and metrics.

use parking_lot::Mutex;
use std::{sync::Arc, time::Instant};

use axum::{
    Router,
    extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, State},
    http::{StatusCode, header, request::Parts},
    response::IntoResponse,
    routing::{get, post},
};
use base64::Engine as _;
use rollcall_fraud::Fix;
use rollcall_protocol::ids::PersonId;
use rollcall_service::problem::{Json, Problem, ProblemReason};
use serde::{Deserialize, Serialize};

use crate::{
    metrics::Metrics,
    pipeline::{Pipeline, PipelineError},
    store::{NodeStore, Person, StoreError},
};

pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    /// A card presented at the reader, waiting for its holder's face.
    pub cards: Arc<crate::card::CardGate>,
    pub live: Arc<crate::live::LiveFeed>,
    /// Fires when the node starts shutting down (ends the live feed's streams).
    pub stop: rollcall_service::shutdown::Shutdown,
    pub store: Arc<Mutex<NodeStore>>,
    pub metrics: Arc<Metrics>,
    pub admin_token: String,
    pub turnstile: Option<crate::turnstile::Turnstile>,
    /// Where the kiosk stands, for check-ins that come without a GPS fix.
    pub kiosk_position: Option<Fix>,
}

mod pages;
mod voice;

/// Largest request body: a 12 MiB image, base64-encoded, plus JSON around it.
const MAX_BODY: usize = 17 * 1024 * 1024;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(to_kiosk))
        .route("/kiosk", get(kiosk_page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/checkins", post(check_in))
        .route("/api/v1/kiosk/card", get(waiting_card))
        .route("/api/v1/people", post(add_person).get(list_people))
        .route("/api/v1/people/{id}", axum::routing::delete(delete_person))
        .route("/api/v1/people/{id}/faces", post(enrol_face))
        .route("/api/v1/people/{id}/history", get(person_history))
        .route("/enrol", get(enrolment_page))
        .route("/api/v1/enrolment/check", post(check_enrolment_face))
        .route("/api/v1/enrolments", post(enrol_person))
        .route("/api/v1/audit", get(list_audit))
        .route("/api/v1/alarms", get(list_alarms))
        .route("/api/v1/live", get(live_feed))
        .route("/api/v1/events", get(list_events))
        .route("/api/v1/events/{id}/frame", get(event_frame))
        .route("/api/v1/dead-letters", get(list_dead_letters))
        .route(
            "/api/v1/dead-letters/records",
            get(list_record_dead_letters),
        )
        .route("/api/v1/dead-letters/{id}/retry", post(retry_dead_letter))
        .route("/api/v1/voice-verifications", post(voice::record_voice))
        .fallback(|| async { Problem::not_found("no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // Outermost: a foreign page's change is refused before its body is read.
        .layer(axum::middleware::from_fn(pages::guard))
        .with_state(state)
}

/// The caller holds the node's admin token (installers, the enrolment page).
struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Problem> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Problem::unauthorized("missing Authorization: Bearer <admin token>"))?;
        let expected = state.admin_token.as_bytes();
        let same = token.len() == expected.len()
            && token
                .bytes()
                .zip(expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            Ok(Admin)
        } else {
            Err(Problem::unauthorized("invalid admin token"))
        }
    }
}

fn problem_of(e: PipelineError) -> Problem {
    let unprocessable = |kind: &str, title: &str, detail: String| {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, kind, title, detail)
    };
    match e {
        PipelineError::Image(e) => {
            unprocessable("invalid-image", "Image cannot be used", e.to_string())
        }
        PipelineError::NoFace => unprocessable(
            "no-face",
            "No face found",
            "no face was found in the image; nothing was recorded".into(),
        ),
        PipelineError::SeveralFaces(n) => unprocessable(
            "several-faces",
            "Several faces",
            format!("{n} faces in the image; enrol from a photo of one person"),
        ),
        PipelineError::Quality(issues) => {
            let detail = format!(
                "{}; nothing was recorded",
                PipelineError::Quality(issues.clone())
            );
            unprocessable("face-quality", "Face not good enough", detail).with_reasons(
                issues
                    .iter()
                    .map(|i| ProblemReason {
                        code: i.code().into(),
                        text: i.to_string(),
                    })
                    .collect(),
            )
        }
        e @ PipelineError::Duplicate { .. } => Problem::new(
            StatusCode::CONFLICT,
            "duplicate-enrolment",
            "Face already enrolled",
            e.to_string(),
        ),
        PipelineError::UnusableFrames(problems) => {
            let detail = format!(
                "{}; nothing was stored",
                PipelineError::UnusableFrames(problems.clone())
            );
            let reasons = problems
                .iter()
                .map(|p| ProblemReason {
                    code: p.code.clone(),
                    text: format!("photo {}: {}", p.frame, p.text),
                })
                .collect();
            unprocessable(
                "enrolment-photos",
                "Enrolment photos cannot be used",
                detail,
            )
            .with_reasons(reasons)
        }
        e @ PipelineError::DifferentPeople { .. } => unprocessable(
            "different-people",
            "Photos of different people",
            format!("{e}; nothing was stored"),
        ),
        e @ PipelineError::TooManyTemplates(_) => Problem::new(
            StatusCode::CONFLICT,
            "too-many-templates",
            "Too many face templates",
            e.to_string(),
        ),
        PipelineError::Store(StoreError::NoSuchPerson(id)) => {
            Problem::not_found(format!("no person with id `{id}`"))
        }
        PipelineError::Store(StoreError::CardTaken(card)) => Problem::new(
            StatusCode::CONFLICT,
            "card-taken",
            "Card already issued",
            format!("card `{card}` already belongs to another person"),
        ),
        PipelineError::Store(StoreError::PersonExists(id)) => Problem::new(
            StatusCode::CONFLICT,
            "person-exists",
            "Person exists",
            format!("a person with id `{id}` already exists"),
        ),
        e @ PipelineError::Store(StoreError::PersonErased(_)) => Problem::new(
            StatusCode::CONFLICT,
            "person-erased",
            "Person erased",
            e.to_string(),
        ),
        PipelineError::Vision(e) => {
            tracing::error!(error = %e, "face engine failed");
            Problem::internal("the face engine failed; nothing was recorded")
        }
        PipelineError::Store(e) => {
            tracing::error!(error = %e, "store failed");
            Problem::internal("the database failed; nothing was recorded")
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PipelineError> + Send + 'static,
) -> Result<T, Problem> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Problem::internal(e.to_string()))?
        .map_err(problem_of)
}

/// `/` is the kiosk (query kept: `/?auto=1` → `/kiosk?auto=1`).
async fn to_kiosk(
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> axum::response::Redirect {
    match query {
        Some(q) => axum::response::Redirect::temporary(&format!("/kiosk?{q}")),
        None => axum::response::Redirect::temporary("/kiosk"),
    }
}

/// The kiosk page: camera, check-in button, the decision in big letters.
async fn kiosk_page() -> impl IntoResponse {
    pages::KIOSK.answer()
}

async fn healthz(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, Problem> {
    let store = state.store.clone();
    blocking(move || Ok(store.lock().ping()?)).await?;
    Ok(axum::Json(
        serde_json::json!({ "status": "ok", "service": "rollcall-node" }),
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

fn decode_image(b64: &str) -> Result<Vec<u8>, Problem> {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| Problem::bad_request(format!("image_base64 is not valid base64: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckInBody {
    /// JPEG or PNG, base64.
    image_base64: String,
    position: Option<PositionBody>,
}

/// The context part of a multipart check-in.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CheckInContext {
    position: Option<PositionBody>,
}

/// A check-in request: JSON `{image_base64, position?}`, or `multipart/form-data` with an
/// `image` part (the JPEG/PNG bytes) and an optional `context` part (JSON `{position?}`), as a
/// camera or a native kiosk app sends it without base64's third more bytes.
struct CheckInRequest {
    image: Vec<u8>,
    position: Option<PositionBody>,
}

impl FromRequest<Arc<AppState>> for CheckInRequest {
    type Rejection = Problem;

    async fn from_request(
        req: axum::extract::Request,
        state: &Arc<AppState>,
    ) -> Result<Self, Problem> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !content_type.starts_with("multipart/form-data") {
            let Json(body) = Json::<CheckInBody>::from_request(req, state).await?;
            return Ok(Self {
                image: decode_image(&body.image_base64)?,
                position: body.position,
            });
        }
        let bad = |e: axum::extract::multipart::MultipartError| {
            Problem::new(
                e.status(),
                "invalid-body",
                "Invalid request body",
                e.body_text(),
            )
        };
        let mut form = axum::extract::Multipart::from_request(req, state)
            .await
            .map_err(|e| {
                Problem::new(
                    e.status(),
                    "invalid-body",
                    "Invalid request body",
                    e.body_text(),
                )
            })?;
        let (mut image, mut context) = (None, None);
        while let Some(field) = form.next_field().await.map_err(bad)? {
            match field.name() {
                Some("image") if image.is_none() => {
                    image = Some(field.bytes().await.map_err(bad)?.to_vec());
                }
                Some("context") if context.is_none() => {
                    let text = field.bytes().await.map_err(bad)?;
                    context = Some(serde_json::from_slice::<CheckInContext>(&text).map_err(
                        |e| Problem::bad_request(format!("the context part is not valid: {e}")),
                    )?);
                }
                Some(name @ ("image" | "context")) => {
                    return Err(Problem::bad_request(format!("more than one `{name}` part")));
                }
                other => {
                    return Err(Problem::bad_request(format!(
                        "unexpected part {:?}: a check-in has an `image` part and an optional `context` part",
                        other.unwrap_or("")
                    )));
                }
            }
        }
        let image = image.ok_or_else(|| Problem::bad_request("no `image` part"))?;
        Ok(Self {
            image,
            position: context.unwrap_or_default().position,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PositionBody {
    lat: f64,
    lon: f64,
    accuracy_m: f64,
}

impl PositionBody {
    /// A fix the kiosk could have measured; anything else is a malformed request.
    fn into_fix(self) -> Result<Fix, Problem> {
        if !(-90.0..=90.0).contains(&self.lat) {
            return Err(Problem::bad_request(format!(
                "position: latitude {} is outside [-90, 90]",
                self.lat
            )));
        }
        if !(-180.0..=180.0).contains(&self.lon) {
            return Err(Problem::bad_request(format!(
                "position: longitude {} is outside [-180, 180]",
                self.lon
            )));
        }
        if !(self.accuracy_m.is_finite() && self.accuracy_m >= 0.0) {
            return Err(Problem::bad_request(
                "position: accuracy_m must be zero or positive",
            ));
        }
        Ok(Fix {
            lat: self.lat,
            lon: self.lon,
            accuracy_m: self.accuracy_m,
            fix_time_ms: None,
            mock: false,
            satellites: None,
            provider: None,
        })
    }
}

/// What the kiosk may show of a person (not their card number).
#[derive(Serialize)]
struct KioskPerson {
    id: String,
    display_name: String,
}

#[derive(Serialize)]
struct CheckInResponse {
    event_id: String,
    seq: u64,
    decision: &'static str,
    person: Option<KioskPerson>,
    /// `face`, or `card_and_face` when a card was presented first.
    credential: &'static str,
    similarity: Option<f64>,
    risk_score: f64,
    reasons: Vec<rollcall_protocol::wire::EventReason>,
    /// `opened`, `closed` (not granted), `not_configured`, or `failed: <why>`.
    turnstile: String,
}

async fn check_in(
    State(state): State<Arc<AppState>>,
    body: CheckInRequest,
) -> Result<axum::Json<CheckInResponse>, Problem> {
    let image = body.image;
    // A fixed kiosk sends no fix: its configured position stands in for one.
    let position = match body.position {
        Some(p) => Some(p.into_fix()?),
        None => state.kiosk_position.clone(),
    };
    let pipeline = state.pipeline.clone();
    let card = state.cards.take(Instant::now());
    let presented = card.as_ref().map(|(c, _)| c.clone());
    // The decision is shown on the reader that read the card (the relay is the turnstile's).
    let reader = card.as_ref().map(|(c, _)| c.reader);
    let outcome = match blocking(move || pipeline.check_in(&image, position, presented)).await {
        Ok(o) => o,
        Err(p) => {
            state.metrics.rejected_frames.inc();
            // Nothing was decided: the card still waits for a usable frame.
            if let Some((c, at)) = card {
                state.cards.give_back(c, at);
            }
            return Err(p);
        }
    };
    let e = outcome.event;
    // The event is already durable: the gate opens only now, and a relay failure never loses it.
    let turnstile = match state.turnstile.clone() {
        None => "not_configured".to_owned(),
        Some(t) => {
            let decision = e.decision;
            let greeting = outcome.person.as_ref().map(|p| p.display_name.clone());
            let result = tokio::task::spawn_blocking(move || {
                let opened = (decision == rollcall_protocol::wire::Decision::Granted)
                    .then(|| t.open_for_one());
                if let Err(err) = t.signal(reader, decision) {
                    tracing::warn!(error = %err, "reader LED/buzzer feedback failed");
                }
                if let Some(name) =
                    greeting.filter(|_| decision == rollcall_protocol::wire::Decision::Granted)
                    && let Err(err) = t.greet(reader, &name)
                {
                    tracing::warn!(error = %err, "reader display feedback failed");
                }
                opened
            })
            .await;
            match result {
                Ok(None) => "closed".to_owned(),
                Ok(Some(Ok(()))) => {
                    state.metrics.turnstile_pulses.inc();
                    "opened".to_owned()
                }
                Ok(Some(Err(err))) => {
                    state.metrics.turnstile_failures.inc();
                    tracing::error!(event = %e.id, error = %err, "granted, but the turnstile did not open");
                    format!("failed: {err}")
                }
                Err(err) => format!("failed: {err}"),
            }
        }
    };
    Ok(axum::Json(CheckInResponse {
        turnstile,
        event_id: e.id,
        seq: e.seq,
        decision: e.decision.as_str(),
        credential: if e.card.is_some() {
            "card_and_face"
        } else {
            "face"
        },
        person: outcome.person.map(|p| KioskPerson {
            id: p.id,
            display_name: p.display_name,
        }),
        similarity: e.similarity,
        risk_score: e.risk_score,
        reasons: e.reasons,
    }))
}

/// The card waiting for a face, for the kiosk's prompt: whose it is and for how long.
async fn waiting_card(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let card = state
        .cards
        .peek(Instant::now())
        .map(|(c, left)| serde_json::json!({ "display_name": c.display_name, "seconds_left": left.as_secs_f64() }));
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({ "card": card })),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPerson {
    id: Option<String>,
    display_name: String,
    /// The card they present at the reader: `facility:number` or `raw:BITS:HEX`.
    card: Option<String>,
}

impl NewPerson {
    /// The person to create: id (a new ULID if none), trimmed name, normalised card.
    fn validate(self) -> Result<Person, Problem> {
        let id = self.id.unwrap_or_else(|| ulid::Ulid::new().to_string());
        // The cloud's rule, from the protocol: an id it would refuse would make this person a
        // dead letter on every push.
        let id = PersonId::parse(id)
            .map_err(|e| Problem::unprocessable("invalid-id", "id", e.to_string()))?
            .into_string();
        let display_name = self.display_name.trim().to_owned();
        if display_name.is_empty() || display_name.chars().count() > 200 {
            return Err(Problem::bad_request(
                "display_name must be 1-200 characters",
            ));
        }
        let card = self
            .card
            .as_deref()
            .map(crate::card::parse_card_key)
            .transpose()
            .map_err(|e| Problem::bad_request(format!("card: {e}")))?;
        Ok(Person {
            id,
            display_name,
            templates: 0,
            card,
        })
    }
}

async fn add_person(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Json(body): Json<NewPerson>,
) -> Result<impl IntoResponse, Problem> {
    let person = body.validate()?;
    let store = state.store.clone();
    let p = person.clone();
    blocking(move || {
        Ok(store
            .lock()
            .add_person(&p.id, &p.display_name, p.card.as_deref())?)
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(person)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEnrolment {
    id: Option<String>,
    display_name: String,
    card: Option<String>,
    /// 1 to 5 photos of the person, JPEG or PNG, base64.
    images_base64: Vec<String>,
}

/// Enrols a new person from several photos in one step (the enrolment page's confirm): all
/// photos are checked first, then the person and their templates are stored together.
async fn enrol_person(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Json(body): Json<NewEnrolment>,
) -> Result<impl IntoResponse, Problem> {
    let most = crate::pipeline::MAX_TEMPLATES_PER_PERSON;
    if !(1..=most).contains(&body.images_base64.len()) {
        return Err(Problem::bad_request(format!(
            "images_base64 must hold 1 to {most} photos, got {}",
            body.images_base64.len()
        )));
    }
    let mut person = NewPerson {
        id: body.id,
        display_name: body.display_name,
        card: body.card,
    }
    .validate()?;
    let images = body
        .images_base64
        .iter()
        .map(|b| decode_image(b))
        .collect::<Result<Vec<_>, _>>()?;
    let pipeline = state.pipeline.clone();
    let p = person.clone();
    person.templates = blocking(move || pipeline.enrol_person(&p, &images)).await? as u32;
    Ok((StatusCode::CREATED, axum::Json(person)))
}

/// Judges one captured frame for enrolment; nothing is stored.
async fn check_enrolment_face(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Json(body): Json<FaceBody>,
) -> Result<impl IntoResponse, Problem> {
    let image = decode_image(&body.image_base64)?;
    let pipeline = state.pipeline.clone();
    let check = blocking(move || pipeline.check_face(&image)).await?;
    Ok(axum::Json(check))
}

/// The supervisor's enrolment page: capture 3-5 frames with feedback, then confirm.
async fn enrolment_page() -> impl IntoResponse {
    pages::ENROLMENT.answer()
}

async fn list_people(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
) -> Result<impl IntoResponse, Problem> {
    items(&state, NodeStore::people).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaceBody {
    image_base64: String,
}

async fn enrol_face(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path(person_id): Path<String>,
    Json(body): Json<FaceBody>,
) -> Result<impl IntoResponse, Problem> {
    let image = decode_image(&body.image_base64)?;
    let pipeline = state.pipeline.clone();
    let enrolled = blocking(move || pipeline.enrol(&person_id, &image)).await?;
    Ok((StatusCode::CREATED, axum::Json(enrolled)))
}

/// Deletes a person and their face templates (204); their past events stay.
async fn delete_person(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path(person_id): Path<String>,
) -> Result<StatusCode, Problem> {
    let pipeline = state.pipeline.clone();
    blocking(move || pipeline.delete_person(&person_id, "admin")).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{"items": [...]}` of a store listing, read off the async threads.
async fn items<T: Serialize + Send + 'static>(
    state: &AppState,
    list: impl FnOnce(&NodeStore) -> Result<Vec<T>, StoreError> + Send + 'static,
) -> Result<axum::Json<serde_json::Value>, Problem> {
    let store = state.store.clone();
    let items = blocking(move || Ok(list(&store.lock())?)).await?;
    Ok(axum::Json(serde_json::json!({ "items": items })))
}

/// The site's hardware alarms, newest first.
/// The versions of a person that lost to another or were replaced by a later one (sync's
/// conflict rule keeps them), oldest first; empty for a person never in conflict.
async fn person_history(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path(person_id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    items(&state, move |s| s.person_versions(&person_id)).await
}

async fn list_alarms(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
) -> Result<impl IntoResponse, Problem> {
    items(&state, |s| s.alarms(1000)).await
}

async fn list_audit(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
) -> Result<impl IntoResponse, Problem> {
    items(&state, |s| s.audit(1000)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    limit: Option<u32>,
}

async fn list_events(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    query: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, Problem> {
    let Query(q) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request("limit must be between 1 and 1000"));
    }
    items(&state, move |s| s.events(limit)).await
}

/// Events the cloud refused, newest first, with its reasons: for an admin to fix the cause
/// and retry.
async fn list_dead_letters(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
) -> Result<impl IntoResponse, Problem> {
    items(&state, |s| s.dead_letters(1000)).await
}

/// Alarms and audit lines the cloud refused, newest first, with its reasons.
async fn list_record_dead_letters(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
) -> Result<impl IntoResponse, Problem> {
    items(&state, |s| s.record_dead_letters(1000)).await
}

/// Sends a dead letter (an event, an alarm or an audit line) again: it goes back to the
/// outbox, and the sync client pushes it next.
async fn retry_dead_letter(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path(event_id): Path<String>,
) -> Result<StatusCode, Problem> {
    let store = state.store.clone();
    let id = event_id.clone();
    let retried = blocking(move || Ok(store.lock().retry_dead_letter(&id, "admin")?)).await?;
    if retried {
        tracing::info!(event = %event_id, "dead letter queued again");
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(Problem::not_found(format!(
            "`{event_id}` is not a dead letter"
        )))
    }
}

/// The frame kept with an event (by `[privacy] keep_frames`), as it was posted.
async fn event_frame(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path(event_id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    let store = state.store.clone();
    let id = event_id.clone();
    let frame = blocking(move || Ok(store.lock().frame(&id)?))
        .await?
        .ok_or_else(|| {
            Problem::not_found(format!(
                "no frame is kept for event `{event_id}` (the site keeps none, or it expired)"
            ))
        })?;
    let content_type = if frame.starts_with(b"\x89PNG") {
        "image/png"
    } else {
        "image/jpeg"
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        frame,
    ))
}

/// Decisions and alarms as they happen, as Server-Sent Events (`event: decision|alarm|lagged`,
/// `data:` JSON), for a guard's monitor; a comment every 15 s keeps proxies from closing it.
async fn live_feed(State(state): State<Arc<AppState>>, _admin: Admin) -> impl IntoResponse {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio::sync::broadcast::error::RecvError;
    let start = (state.live.subscribe(), state.stop.clone());
    let items = futures_util::stream::unfold(start, |(mut rx, mut stop)| async move {
        let received = tokio::select! {
            r = rx.recv() => r,
            () = stop.wait() => return None,
        };
        let event = match received {
            Ok(item) => {
                let kind = match &item {
                    crate::live::LiveItem::Decision { .. } => "decision",
                    crate::live::LiveItem::Alarm { .. } => "alarm",
                };
                Event::default()
                    .event(kind)
                    .data(serde_json::to_string(&item).unwrap_or_default())
            }
            Err(RecvError::Lagged(n)) => Event::default()
                .event("lagged")
                .data(format!("{{\"missed\": {n}}}")),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok::<_, std::convert::Infallible>(event), (rx, stop)))
    });
    Sse::new(items).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
}
