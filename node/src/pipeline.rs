//! The check-in and enrolment pipelines: image bytes → faces → match → fraud → one durable
//! write. Blocking code: the HTTP layer runs it on the blocking pool.

use parking_lot::{Mutex, RwLock};
use std::sync::Arc;

use rollcall_fraud::{
    CheckInContext, Credential, FaceResult, Fix as GpsFix, Geofence, PastEvent, Policy, Verdict,
    assess,
};
use rollcall_protocol::wire::{AttendanceEvent, Decision, EventReason, Fix};
use rollcall_vision::{
    AnalyzedFace, Embedding, Engine, Gallery, Identification, QualityIssue, RgbImage,
};
use sha2::{Digest, Sha256};

use crate::{
    card::PresentedCard,
    config::KeepFrames,
    live::{LiveFeed, LiveItem},
    metrics::Metrics,
    store::{ImportedPerson, NodeStore, Person, StoreError, now_ms},
};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{0}")]
    Image(rollcall_vision::Error),
    #[error("no face found in the image")]
    NoFace,
    #[error("{} faces in the image; enrolment needs exactly one", .0)]
    SeveralFaces(usize),
    #[error("the face is not good enough: {}", issues_text(.0))]
    Quality(Vec<QualityIssue>),
    #[error("face engine failed: {0}")]
    Vision(rollcall_vision::Error),
    #[error(
        "this face already matches enrolled person `{other}` (similarity {similarity:.2}): not enrolling it as someone else"
    )]
    Duplicate { other: String, similarity: f32 },
    #[error("person already has {0} face templates, the most allowed")]
    TooManyTemplates(usize),
    #[error("{} of the enrolment photos cannot be used", .0.len())]
    UnusableFrames(Vec<FrameProblem>),
    #[error(
        "photos {first} and {second} do not show the same person (similarity {similarity:.2}, needs {threshold:.2})"
    )]
    DifferentPeople {
        first: usize,
        second: usize,
        similarity: f32,
        threshold: f32,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn issues_text(issues: &[QualityIssue]) -> String {
    issues
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why one photo of an enrolment cannot be used (photos are numbered from 1).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FrameProblem {
    pub frame: usize,
    pub code: String,
    pub text: String,
}

impl FrameProblem {
    fn of(frame: usize, e: &PipelineError) -> Self {
        let code = match e {
            PipelineError::Image(_) => "invalid_image".to_owned(),
            PipelineError::NoFace => "no_face".to_owned(),
            PipelineError::SeveralFaces(_) => "several_faces".to_owned(),
            PipelineError::Quality(issues) => issues
                .first()
                .map_or("face_quality", |i| i.code())
                .to_owned(),
            _ => "unusable".to_owned(),
        };
        Self {
            frame,
            code,
            text: e.to_string(),
        }
    }
}

/// What the enrolment page shows for one captured frame before anything is stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FaceCheck {
    /// The frame can be one of the enrolment photos.
    pub usable: bool,
    pub faces: usize,
    /// Every reason it cannot (codes and plain words).
    pub issues: Vec<FrameProblem>,
    pub eye_distance_px: Option<f32>,
    pub sharpness: Option<f32>,
    /// The enrolled person this face already matches, if any (enrolling it as someone else
    /// would be refused).
    pub matches_person: Option<String>,
}

/// A check-in's result, as the kiosk shows it.
#[derive(Debug, Clone)]
pub struct CheckInOutcome {
    pub event: AttendanceEvent,
    pub person: Option<Person>,
}

/// An enrolment's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Enrolled {
    pub template_id: String,
    pub person_id: String,
    pub eye_distance_px: f32,
    pub sharpness: Option<f32>,
}

/// Enrolment takes 1 to this many photos per person.
pub const MAX_TEMPLATES_PER_PERSON: usize = 5;

/// How far back, and how many of, a person's events the fraud rules see.
const HISTORY_MS: i64 = 24 * 3600 * 1000;
const HISTORY_EVENTS: u32 = 50;

/// What a card read at the reader leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum CardOutcome {
    /// Its holder, who now has the card window to show their face.
    Holder(Person),
    /// Refused (recorded as a denied attempt): what the reader's display says, and the holder
    /// of a revoked card.
    Refused {
        display: &'static str,
        holder: Option<String>,
    },
}

pub struct Pipeline {
    engine: Engine,
    gallery: RwLock<Gallery<String>>,
    store: Arc<Mutex<NodeStore>>,
    site_id: String,
    match_threshold: f32,
    min_margin: f32,
    learn: Option<(f32, f32)>,
    /// The fraud policy in force: the config file's `[fraud]`, or the cloud's for the site.
    policy: RwLock<Policy>,
    /// The config file's policy, back in force if the cloud drops the site's.
    file_policy: Policy,
    /// The fences in force: the config file's, or the cloud's outline of the site once it gave
    /// one (see `site_config`).
    geofences: RwLock<Vec<Geofence>>,
    /// The config file's fences, back in force if the cloud drops the site.
    file_geofences: Vec<Geofence>,
    require_card: bool,
    keep_frames: KeepFrames,
    /// The embedder's name: templates are read and written under it.
    embedder: String,
    /// The length of its vectors (`None` if it could not be measured): templates of another
    /// length, from an older database or pulled from the cloud, are skipped, never adopted.
    embedding_dim: Option<usize>,
    metrics: Arc<Metrics>,
    live: Arc<LiveFeed>,
}

/// Who the face in a check-in is, and why no one may be granted, if so.
struct FaceVerdict {
    /// The person the face matched (1:N, or the card holder when their card settled a near
    /// tie between them and someone else).
    face_person: Option<String>,
    /// The best similarity (to the card holder, when there is a card).
    similarity: Option<f32>,
    /// The lead of the best person over the second.
    margin: Option<f32>,
    refusal: Option<EventReason>,
}

fn refusal(code: &str, text: String) -> Option<EventReason> {
    Some(EventReason {
        code: code.into(),
        text,
        weight: 1.0,
    })
}

pub struct PipelineSettings {
    pub site_id: String,
    pub match_threshold: f32,
    pub min_margin: f32,
    /// `(min, max)` similarity for keeping a granted check-in's face as a template.
    pub learn: Option<(f32, f32)>,
    pub policy: Policy,
    pub geofences: Vec<Geofence>,
    /// Every check-in needs a card presented at the reader first (card + face).
    pub require_card: bool,
    /// Which check-in frames are kept (sealed) with their event.
    pub keep_frames: KeepFrames,
    /// From this many templates on, 1:N search goes through an HNSW graph.
    pub graph_from: usize,
    /// The embedder's name, under which templates are stored.
    pub embedder: String,
}

impl Pipeline {
    /// Builds the in-memory gallery from the store's templates.
    pub fn new(
        engine: Engine,
        store: Arc<Mutex<NodeStore>>,
        settings: PipelineSettings,
        metrics: Arc<Metrics>,
        live: Arc<LiveFeed>,
    ) -> Result<Self, StoreError> {
        let mut gallery = Gallery::new();
        let templates = store.lock().templates(&settings.embedder)?;
        let embedding_dim = Some(engine.embedding_dim()).filter(|d| *d > 0);
        for t in templates {
            let person = t.person_id.clone();
            if embedding_dim.is_some_and(|d| d != t.vector.len()) {
                tracing::warn!(%person, length = t.vector.len(), embedder = ?embedding_dim, "skipping a face template of another length than the embedder's");
                continue;
            }
            match Embedding::from_raw(t.vector).map(|e| gallery.insert(t.person_id, e)) {
                Some(Ok(())) => {}
                Some(Err(e)) => tracing::warn!(%person, error = %e, "skipping a face template"),
                None => tracing::warn!(%person, "skipping a zero face template"),
            }
        }
        let graph = rollcall_vision::AnnParams {
            min_templates: settings.graph_from,
            ..rollcall_vision::AnnParams::default()
        };
        // Valid by construction (the config refuses 0); a refusal would only cost speed.
        if let Err(e) = gallery.use_graph(graph) {
            tracing::warn!(error = %e, "no HNSW graph: every search scans");
        }
        tracing::info!(
            templates = gallery.len(),
            graph = gallery.has_graph(),
            "gallery loaded"
        );
        Ok(Self {
            engine,
            gallery: RwLock::new(gallery),
            store,
            site_id: settings.site_id,
            match_threshold: settings.match_threshold,
            min_margin: settings.min_margin,
            learn: settings.learn,
            policy: RwLock::new(settings.policy.clone()),
            file_policy: settings.policy,
            geofences: RwLock::new(settings.geofences.clone()),
            file_geofences: settings.geofences,
            require_card: settings.require_card,
            keep_frames: settings.keep_frames,
            embedder: settings.embedder,
            embedding_dim,
            metrics,
            live,
        })
    }

    fn store(&self) -> parking_lot::MutexGuard<'_, NodeStore> {
        self.store.lock()
    }

    /// Decodes and analyses a frame; the largest face must pass the quality gates.
    fn best_face(&self, image: &[u8]) -> Result<(AnalyzedFace, usize, RgbImage), PipelineError> {
        let decoded = self.engine.decode(image).map_err(PipelineError::Image)?;
        let mut faces = self
            .engine
            .analyze(&decoded)
            .map_err(PipelineError::Vision)?;
        if faces.is_empty() {
            return Err(PipelineError::NoFace);
        }
        let count = faces.len();
        let best = faces.swap_remove(0);
        if !best.quality.passed() {
            return Err(PipelineError::Quality(best.quality.issues));
        }
        Ok((best, count, decoded))
    }

    /// The one good, embedded face an enrolment photo must show.
    fn enrolment_face(&self, image: &[u8]) -> Result<(AnalyzedFace, Embedding), PipelineError> {
        let (mut face, count, _) = self.best_face(image)?;
        if count > 1 {
            return Err(PipelineError::SeveralFaces(count));
        }
        let embedding = face.embedding.take().ok_or(PipelineError::NoFace)?;
        Ok((face, embedding))
    }

    /// The site this node serves.
    pub fn site_id(&self) -> &str {
        &self.site_id
    }

    /// Puts the cloud's fences and fraud policy of the site in force (`None`: the config file's
    /// again), with the version they came in (0 for the file's), which `/metrics` shows.
    pub fn set_cloud_config(
        &self,
        fences: Option<Vec<Geofence>>,
        policy: Option<Policy>,
        version_ms: i64,
    ) {
        let fences = fences.unwrap_or_else(|| self.file_geofences.clone());
        *self.geofences.write() = fences;
        let policy = policy.unwrap_or_else(|| self.file_policy.clone());
        *self.policy.write() = policy;
        self.metrics.site_config_version_ms.set(version_ms);
    }

    /// Judges a captured frame for enrolment without storing anything: the supervisor's
    /// feedback while capturing.
    pub fn check_face(&self, image: &[u8]) -> Result<FaceCheck, PipelineError> {
        let decoded = self.engine.decode(image).map_err(PipelineError::Image)?;
        let faces = self
            .engine
            .analyze(&decoded)
            .map_err(PipelineError::Vision)?;
        let mut issues = Vec::new();
        let best = faces.first();
        match best {
            None => issues.push(FrameProblem::of(1, &PipelineError::NoFace)),
            Some(face) => {
                for issue in &face.quality.issues {
                    issues.push(FrameProblem {
                        frame: 1,
                        code: issue.code().to_owned(),
                        text: issue.to_string(),
                    });
                }
                if faces.len() > 1 {
                    issues.push(FrameProblem::of(
                        1,
                        &PipelineError::SeveralFaces(faces.len()),
                    ));
                }
            }
        }
        let matches_person = best
            .and_then(|f| f.embedding.as_ref())
            .and_then(|e| {
                self.gallery
                    .read()
                    .top_k(e, 1)
                    .into_iter()
                    .find(|m| m.similarity >= self.match_threshold)
            })
            .map(|m| m.key);
        Ok(FaceCheck {
            usable: issues.is_empty() && best.is_some_and(|f| f.embedding.is_some()),
            faces: faces.len(),
            issues,
            eye_distance_px: best.map(|f| f.quality.eye_distance_px),
            sharpness: best.and_then(|f| f.quality.sharpness),
            matches_person,
        })
    }

    /// Enrols a new person from 1 to [`MAX_TEMPLATES_PER_PERSON`] photos, all or nothing:
    /// every photo must show one good face, all of the same person, and none may match
    /// someone already enrolled; then the person and their templates are stored in one
    /// transaction. Returns the number of templates.
    pub fn enrol_person(
        &self,
        person: &Person,
        images: &[Vec<u8>],
    ) -> Result<usize, PipelineError> {
        if images.is_empty() || images.len() > MAX_TEMPLATES_PER_PERSON {
            return Err(PipelineError::TooManyTemplates(images.len()));
        }
        let mut embeddings = Vec::with_capacity(images.len());
        let mut problems = Vec::new();
        for (i, image) in images.iter().enumerate() {
            match self.enrolment_face(image) {
                Ok((_, e)) => embeddings.push(e),
                Err(e @ (PipelineError::Vision(_) | PipelineError::Store(_))) => return Err(e),
                Err(e) => problems.push(FrameProblem::of(i + 1, &e)),
            }
        }
        if !problems.is_empty() {
            return Err(PipelineError::UnusableFrames(problems));
        }
        for (i, a) in embeddings.iter().enumerate() {
            for (j, b) in embeddings.iter().enumerate().skip(i + 1) {
                let similarity = a.cosine(b).map_err(PipelineError::Vision)?;
                if similarity < self.match_threshold {
                    return Err(PipelineError::DifferentPeople {
                        first: i + 1,
                        second: j + 1,
                        similarity,
                        threshold: self.match_threshold,
                    });
                }
            }
        }
        let mut gallery = self.gallery.write();
        for e in &embeddings {
            self.fits_as_template_of(&gallery, &person.id, e)?;
        }
        self.store().import_people(
            &self.embedder,
            &[ImportedPerson {
                id: person.id.clone(),
                display_name: person.display_name.clone(),
                card: person.card.clone(),
                templates: embeddings.iter().map(|e| e.as_slice().to_vec()).collect(),
            }],
        )?;
        for e in embeddings {
            gallery
                .insert(person.id.clone(), e)
                .map_err(PipelineError::Vision)?;
        }
        tracing::info!(person = %person.id, templates = images.len(), "person enrolled");
        Ok(images.len())
    }

    pub fn enrol(&self, person_id: &str, image: &[u8]) -> Result<Enrolled, PipelineError> {
        if self.store().person(person_id)?.is_none() {
            return Err(StoreError::NoSuchPerson(person_id.to_owned()).into());
        }
        let (face, embedding) = self.enrolment_face(image)?;
        // INVARIANT: the checks and the insert happen under one write lock, so two concurrent
        // enrolments cannot both pass the duplicate check.
        let mut gallery = self.gallery.write();
        let existing = gallery.templates_of(&person_id.to_owned());
        if existing >= MAX_TEMPLATES_PER_PERSON {
            return Err(PipelineError::TooManyTemplates(existing));
        }
        self.fits_as_template_of(&gallery, person_id, &embedding)?;
        let template_id = self.keep_template(&mut gallery, person_id, embedding)?;
        tracing::info!(person = %person_id, template = %template_id, "face enrolled");
        Ok(Enrolled {
            template_id,
            person_id: person_id.to_owned(),
            eye_distance_px: face.quality.eye_distance_px,
            sharpness: face.quality.sharpness,
        })
    }

    /// The person's events of the last day, as the fraud rules see them.
    fn history(&self, person_id: &str, now: i64) -> Result<Vec<PastEvent>, StoreError> {
        let events = self
            .store()
            .person_history(person_id, now - HISTORY_MS, HISTORY_EVENTS)?;
        Ok(events
            .into_iter()
            .map(|e| PastEvent {
                at_ms: e.node_time_ms,
                person_id: e.person_id,
                lat: e.position.map(|p| p.lat),
                lon: e.position.map(|p| p.lon),
                accuracy_m: e.position.map(|p| p.accuracy_m),
                inside: Vec::new(),
                ..PastEvent::default()
            })
            .collect())
    }

    /// Deletes a person, their templates (from the database and the live gallery) and logs it;
    /// returns how many templates went.
    pub fn delete_person(&self, person_id: &str, actor: &str) -> Result<u32, PipelineError> {
        // Under the gallery's write lock, so no check-in matches a half-deleted person.
        let mut gallery = self.gallery.write();
        let templates = self.store().delete_person(person_id, actor)?;
        gallery.remove(&person_id.to_owned());
        tracing::info!(person = %person_id, templates, actor, "person deleted");
        Ok(templates)
    }

    /// Merges a person's version pulled from the cloud (see `store::people_sync`) and brings
    /// the live gallery in line, under its write lock.
    pub fn apply_person_change(
        &self,
        change: &rollcall_protocol::wire::PersonChange,
    ) -> Result<rollcall_protocol::merge::Merged, PipelineError> {
        let mut gallery = self.gallery.write();
        let (merged, update) =
            self.store()
                .apply_person_change(change, &self.embedder, self.embedding_dim)?;
        match update {
            crate::store::GalleryChange::Keep => {}
            crate::store::GalleryChange::Remove(id) => gallery.remove(&id),
            crate::store::GalleryChange::Replace { person_id, vectors } => {
                gallery.remove(&person_id);
                for v in vectors {
                    let fitted = Embedding::from_raw(v)
                        .map(|e| gallery.insert(person_id.clone(), e).is_ok());
                    if fitted != Some(true) {
                        tracing::warn!(person = %person_id, "a pulled template does not fit the gallery: skipped");
                    }
                }
            }
        }
        Ok(merged)
    }

    /// An enrolment face may become `person_id`'s template: the gallery takes its dimension and
    /// it does not match anyone else at the match threshold (a duplicate enrolment).
    fn fits_as_template_of(
        &self,
        gallery: &Gallery<String>,
        person_id: &str,
        embedding: &Embedding,
    ) -> Result<(), PipelineError> {
        same_dimension(gallery, embedding)?;
        match gallery
            .top_k(embedding, 2)
            .into_iter()
            .find(|m| m.key != person_id && m.similarity >= self.match_threshold)
        {
            Some(other) => Err(PipelineError::Duplicate {
                other: other.key,
                similarity: other.similarity,
            }),
            None => Ok(()),
        }
    }

    /// The template update policy: keeps the face of a granted check-in as a new template when
    /// it matches the person clearly but differs from every template they have, up to
    /// [`MAX_TEMPLATES_PER_PERSON`].
    fn learn(&self, person_id: &str, embedding: &Embedding) -> Result<(), PipelineError> {
        let Some((min, max)) = self.learn else {
            return Ok(());
        };
        let mut gallery = self.gallery.write();
        let Some(similarity) = worth_learning(&gallery, person_id, embedding, (min, max)) else {
            return Ok(());
        };
        let template_id = self.keep_template(&mut gallery, person_id, embedding.clone())?;
        tracing::info!(person = %person_id, template = %template_id, similarity, "kept a check-in face as a new template");
        Ok(())
    }

    /// Stores a template and adds it to the gallery (whose write lock the caller holds);
    /// returns the template's id.
    fn keep_template(
        &self,
        gallery: &mut Gallery<String>,
        person_id: &str,
        embedding: Embedding,
    ) -> Result<String, PipelineError> {
        // Checked before anything is stored, so the insert below cannot fail.
        same_dimension(gallery, &embedding)?;
        let template_id = ulid::Ulid::new().to_string();
        self.store().add_template(
            &template_id,
            person_id,
            &self.embedder,
            embedding.as_slice(),
        )?;
        gallery
            .insert(person_id.to_owned(), embedding)
            .map_err(PipelineError::Vision)?;
        Ok(template_id)
    }

    /// Tells the live feed about a recorded decision.
    fn publish(&self, event: &AttendanceEvent, person: Option<&Person>, credential: &'static str) {
        self.live.publish(LiveItem::Decision {
            event_id: event.id.clone(),
            seq: event.seq,
            decision: event.decision.as_str(),
            person_id: event.person_id.clone(),
            display_name: person.map(|p| p.display_name.clone()),
            credential,
            reason: event.reasons.first().map(|r| r.text.clone()),
            at_ms: event.node_time_ms,
        });
    }

    /// Decides who the face is, 1:N, or 1:1 against the holder of a presented card.
    fn identify(&self, embedding: &Embedding, card: Option<&PresentedCard>) -> FaceVerdict {
        let gallery = self.gallery.read();
        self.metrics
            .observe_gallery(gallery.len(), gallery.strategy());
        let identification = gallery.identify(embedding, self.match_threshold, self.min_margin);
        let Some(card) = card else {
            return match identification {
                Identification::Match {
                    key,
                    similarity,
                    margin,
                } => FaceVerdict {
                    face_person: Some(key),
                    similarity: Some(similarity),
                    margin,
                    refusal: None,
                },
                Identification::Ambiguous { best, second } => FaceVerdict {
                    face_person: None,
                    similarity: Some(best.similarity),
                    margin: Some(best.similarity - second.similarity),
                    refusal: refusal(
                        "ambiguous_match",
                        format!(
                            "matches two enrolled people almost equally ({:.2} and {:.2}, need a lead of {:.2}): not deciding between them",
                            best.similarity, second.similarity, self.min_margin
                        ),
                    ),
                },
                Identification::NoMatch { best } => FaceVerdict {
                    face_person: None,
                    similarity: best.as_ref().map(|b| b.similarity),
                    margin: None,
                    refusal: refusal(
                        "no_match",
                        match best {
                            None => "no one is enrolled at this site".to_owned(),
                            Some(m) => format!(
                                "best similarity {:.2} is below the match threshold {:.2}",
                                m.similarity, self.match_threshold
                            ),
                        },
                    ),
                },
            };
        };
        let holder = &card.person_id;
        let to_holder = gallery.similarity_to(holder, embedding);
        let (face_person, margin) = match identification {
            Identification::Match { key, margin, .. } => (Some(key), margin),
            // The card settles a near tie, but only in its holder's favour.
            Identification::Ambiguous { best, second }
                if (&best.key == holder || &second.key == holder)
                    && to_holder.is_some_and(|s| s >= self.match_threshold) =>
            {
                (
                    Some(holder.clone()),
                    Some(best.similarity - second.similarity),
                )
            }
            Identification::Ambiguous { best, second } => {
                (None, Some(best.similarity - second.similarity))
            }
            Identification::NoMatch { .. } => (None, None),
        };
        let refusal = match to_holder {
            None => refusal(
                "not_enrolled",
                format!(
                    "the card of {} was presented, but no face of theirs is enrolled",
                    card.display_name
                ),
            ),
            Some(_) if face_person.as_ref() == Some(holder) => None,
            Some(s) => refusal(
                "card_face_mismatch",
                format!(
                    "the card belongs to {}, but the face is not theirs (similarity {s:.2}, needs {:.2} and to be the best match)",
                    card.display_name, self.match_threshold
                ),
            ),
        };
        FaceVerdict {
            face_person,
            similarity: to_holder,
            margin,
            refusal,
        }
    }

    /// A card read at the reader: its holder, who now has the card window to show their
    /// face; a card revoked in the cloud, or one no one holds, is recorded as a denied attempt
    /// and refused.
    pub fn card_presented(&self, card: &str) -> Result<CardOutcome, PipelineError> {
        let revoked = self.store().card_revocation(card)?;
        let holder = self.store().person_by_card(card)?;
        let (code, text, shown) = match (revoked, holder) {
            (Some(reason), holder) => (
                "card_revoked",
                format!("card {card} was revoked by the tenant's admins: {reason}"),
                CardOutcome::Refused {
                    display: "Card revoked",
                    holder: holder.map(|p| p.id),
                },
            ),
            (None, Some(person)) => {
                tracing::info!(person = %person.id, card, "card presented: waiting for the face");
                return Ok(CardOutcome::Holder(person));
            }
            (None, None) => (
                "unknown_card",
                format!("card {card} belongs to no one enrolled at this site"),
                CardOutcome::Refused {
                    display: "Unknown card",
                    holder: None,
                },
            ),
        };
        let person_id = match &shown {
            CardOutcome::Refused { holder, .. } => holder.clone(),
            CardOutcome::Holder(_) => None,
        };
        let site_id = self.site_id.clone();
        let now = now_ms();
        let event = self.store().record_event(None, |seq| AttendanceEvent {
            id: ulid::Ulid::new().to_string(),
            seq,
            site_id,
            person_id,
            decision: Decision::Denied,
            similarity: None,
            risk_score: 0.0,
            reasons: vec![EventReason {
                code: code.into(),
                text,
                weight: 1.0,
            }],
            position: None,
            node_time_ms: now,
            card: Some(card.to_owned()),
            hlc: None,
        })?;
        self.metrics.checkin(Decision::Denied);
        self.publish(&event, None, "card");
        tracing::info!(event = %event.id, seq = event.seq, card, code, "card refused: denied");
        Ok(shown)
    }

    /// Applies a page of card revocations pulled from the cloud.
    pub fn apply_revocations(
        &self,
        items: &[rollcall_protocol::wire::CardRevocation],
        cursor: u64,
    ) -> Result<(), PipelineError> {
        Ok(self.store().apply_revocations(items, cursor)?)
    }

    /// Checks a person in from a frame; with `card`, the face must be the card holder's.
    pub fn check_in(
        &self,
        image: &[u8],
        position: Option<GpsFix>,
        card: Option<PresentedCard>,
    ) -> Result<CheckInOutcome, PipelineError> {
        let (face, count, decoded) = self.best_face(image)?;
        let embedding = face.embedding.ok_or(PipelineError::NoFace)?;
        // Passive liveness of the face the decision is about (None when it is not configured).
        let passive = self
            .engine
            .passive_liveness(&decoded, &face.face)
            .map_err(PipelineError::Vision)?;
        if let Some(p) = &passive {
            self.metrics.observe_passive_liveness(p);
        }
        let FaceVerdict {
            face_person,
            similarity: best_similarity,
            margin,
            refusal: mut no_match,
        } = self.identify(&embedding, card.as_ref());
        if self.require_card && card.is_none() {
            no_match = refusal(
                "card_required",
                "this entrance needs your card and your face: present the card at the reader first"
                    .into(),
            );
        }
        let now = now_ms();
        // Whom the decision is about: the card holder, or whoever the face matched.
        let person_id = match &card {
            Some(c) => Some(c.person_id.clone()),
            None => face_person.clone(),
        };
        let history = match &person_id {
            Some(id) => self.history(id, now)?,
            None => Vec::new(),
        };
        // The kiosk is the device: a frame it has taken before, whoever it showed, is a replay.
        let frame_sha256 = hex::encode(Sha256::digest(image));
        let device_history = self
            .store()
            .frame_seen(&frame_sha256, now - HISTORY_MS)?
            .map(|at_ms| PastEvent {
                at_ms,
                frame_hash: Some(frame_sha256.clone()),
                ..PastEvent::default()
            })
            .into_iter()
            .collect();
        let assessment = assess(
            &CheckInContext {
                at_ms: now,
                fix: position.clone(),
                face: Some(FaceResult {
                    person_id: face_person.clone(),
                    similarity: best_similarity.map(f64::from),
                    margin: margin.filter(|_| face_person.is_some()).map(f64::from),
                    liveness: passive.map(|p| f64::from(p.liveness)),
                    faces_in_frame: count as u32,
                    frame_hash: Some(frame_sha256.clone()),
                    perceptual_hash: None,
                }),
                credential: match &card {
                    Some(c) => Credential::CardAndFace {
                        person_id: c.person_id.clone(),
                    },
                    None => Credential::Face,
                },
                person_id: person_id.clone(),
                history,
                device_history,
                geofences: self.geofences.read().clone(),
                ..CheckInContext::default()
            },
            // Read, not copied: a new policy from the cloud waits for this assessment.
            &self.policy.read(),
        );
        let mut reasons: Vec<EventReason> = assessment
            .reasons
            .iter()
            .map(|r| EventReason {
                code: r.code.as_str().to_owned(),
                text: r.text.clone(),
                weight: r.weight,
            })
            .collect();
        let decision = match (&person_id, no_match, assessment.verdict) {
            (_, Some(reason), _) => {
                reasons.insert(0, reason);
                Decision::Denied
            }
            (None, None, _) => Decision::Denied,
            (Some(_), None, Verdict::Allow) => Decision::Granted,
            (Some(_), None, Verdict::Review) => Decision::Review,
            (Some(_), None, Verdict::Deny) => Decision::Denied,
        };
        let similarity = best_similarity.map(f64::from);
        let site_id = self.site_id.clone();
        let keep = match self.keep_frames {
            KeepFrames::None => false,
            KeepFrames::Denied => decision != Decision::Granted,
            KeepFrames::All => true,
        };
        let event = self.store().record_event_keeping(
            Some(&frame_sha256),
            keep.then_some(image),
            |seq| AttendanceEvent {
                id: ulid::Ulid::new().to_string(),
                seq,
                site_id,
                person_id: person_id.clone(),
                decision,
                similarity,
                risk_score: assessment.score,
                reasons,
                position: position.map(|p| Fix {
                    lat: p.lat,
                    lon: p.lon,
                    accuracy_m: p.accuracy_m,
                }),
                node_time_ms: now,
                card: card.map(|c| c.card),
                hlc: None,
            },
        )?;
        self.metrics.checkin(decision);
        if decision == Decision::Granted
            && let Some(id) = &person_id
        {
            // The check-in is decided and recorded: failing to learn from it must not undo that.
            if let Err(e) = self.learn(id, &embedding) {
                tracing::warn!(person = %id, error = %e, "could not keep the check-in face as a template");
            }
        }
        let person = match &person_id {
            Some(id) => self.store().person(id)?,
            None => None,
        };
        let credential = if event.card.is_some() {
            "card_and_face"
        } else {
            "face"
        };
        self.publish(&event, person.as_ref(), credential);
        tracing::info!(event = %event.id, seq = event.seq, decision = decision.as_str(), person = ?person_id, similarity = ?similarity, "check-in");
        Ok(CheckInOutcome { event, person })
    }
}

/// The gallery takes `embedding` (all templates have one dimension).
fn same_dimension(gallery: &Gallery<String>, embedding: &Embedding) -> Result<(), PipelineError> {
    match gallery.dim() {
        Some(dim) if dim != embedding.as_slice().len() => Err(PipelineError::Vision(
            rollcall_vision::Error::DimensionMismatch(dim, embedding.as_slice().len()),
        )),
        _ => Ok(()),
    }
}

/// The similarity to `person_id`'s closest template when `embedding` should become a new
/// template of theirs: they have room for one, and it is within `[min, max)` of the closest.
fn worth_learning(
    gallery: &Gallery<String>,
    person_id: &str,
    embedding: &Embedding,
    (min, max): (f32, f32),
) -> Option<f32> {
    let key = person_id.to_owned();
    if gallery.templates_of(&key) >= MAX_TEMPLATES_PER_PERSON {
        return None;
    }
    // A granted face's best match is this person's, so a short list holds their closest
    // template; a scan of the whole gallery would cost tens of ms at a million templates.
    gallery
        .top_k(embedding, MAX_TEMPLATES_PER_PERSON * 4)
        .into_iter()
        .find(|m| m.key == key)
        .map(|m| m.similarity)
        .filter(|s| (min..max).contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit vector at `degrees` from the x axis in the x/y plane, cosine = cos(angle).
    fn at(degrees: f32) -> Embedding {
        let r = degrees.to_radians();
        Embedding::from_raw(vec![r.cos(), r.sin(), 0.0]).expect("embedding")
    }

    #[test]
    fn only_clear_but_new_faces_are_learnt_and_only_while_there_is_room() {
        let mut gallery = Gallery::new();
        gallery.insert("ann".to_owned(), at(0.0)).expect("insert");
        gallery.insert("bob".to_owned(), at(90.0)).expect("insert");
        let bounds = (0.65, 0.9);
        // cos 35° = 0.82: a clear match that adds something.
        let s = worth_learning(&gallery, "ann", &at(35.0), bounds).expect("learnt");
        assert!((s - 0.819).abs() < 0.01, "{s}");
        // cos 10° = 0.98: nearly a copy of what is there.
        assert_eq!(worth_learning(&gallery, "ann", &at(10.0), bounds), None);
        // cos 60° = 0.5: too far to trust, though it is still closer to ann than to bob.
        assert_eq!(worth_learning(&gallery, "ann", &at(-60.0), bounds), None);
        // Compared with ann's own templates (0.5), not with whoever is closest (bob, at 0.87).
        assert_eq!(worth_learning(&gallery, "ann", &at(60.0), bounds), None);
        for _ in 1..MAX_TEMPLATES_PER_PERSON {
            gallery.insert("ann".to_owned(), at(-90.0)).expect("insert");
        }
        assert_eq!(
            worth_learning(&gallery, "ann", &at(35.0), bounds),
            None,
            "full"
        );
    }
}
