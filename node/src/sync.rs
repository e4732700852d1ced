//! The sync client: pushes the outbox to the cloud in batches, in sequence order, and never
//! blocks a check-in. Failures back off exponentially with jitter; items the cloud rejects
//! become dead letters so they never block the ones behind them. Batches travel as CBOR,
//! gzip-compressed; a cloud that answers 415 (an older release) gets JSON + gzip, and then plain
//! JSON, from then on. Each round also pulls the site's people (see `store::people_sync`).

use parking_lot::Mutex;
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering},
    },
    time::Duration,
};

use rollcall_protocol::{
    codec::Encoding,
    wire::{
        MAX_PEOPLE_PER_PUSH, NodeIdentity, PROTOCOL_VERSION, PeoplePage, PushAck, PushBatch,
        RevocationPage, STREAM_PEOPLE, STREAM_REVOCATIONS, SitePull,
    },
};
use rollcall_service::shutdown::Shutdown;

use crate::{
    config::CloudSection,
    metrics::Metrics,
    pipeline::Pipeline,
    store::{NodeStore, StoreError, now_ms},
};

const BATCH: u32 = 500;
/// Most voice samples uploaded before each push.
const BLOBS_PER_ROUND: u32 = 20;
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a node waits before asking a cloud that had no people pull again.
const PULL_RETRY_MS: i64 = 10 * 60 * 1000;

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("cloud unreachable: {}", crate::cloud_http::describe(.0))]
    Http(#[from] reqwest::Error),
    #[error("cloud answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Join(String),
    #[error("the cloud speaks sync protocol {0}, this node {PROTOCOL_VERSION}")]
    Protocol(u32),
    #[error("applying what was pulled: {0}")]
    Apply(String),
    #[error(transparent)]
    Site(#[from] crate::site_config::SiteConfigError),
    #[error("the cloud's answer is unreadable: {0}")]
    Decode(String),
}

pub struct SyncClient {
    http: reqwest::Client,
    url: String,
    people_url: String,
    site_url: String,
    whoami_url: String,
    blobs_url: String,
    revocations_url: String,
    token: String,
    interval: Duration,
    store: Arc<Mutex<NodeStore>>,
    /// Applies pulled people to the store and the live gallery (`None`: push only).
    pipeline: Option<Arc<Pipeline>>,
    metrics: Arc<Metrics>,
    /// The cloud refused a compressed push (an older server): send plain JSON.
    /// How far the cloud made pushes fall back: 0 CBOR + gzip, 1 JSON + gzip (a cloud without
    /// CBOR answered 415), 2 plain JSON (one without gzip either).
    fallback: AtomicU8,
    /// Until when (ms since the epoch) not to ask for people: a cloud of an older release
    /// answered 404; it is asked again after [`PULL_RETRY_MS`], in case it was upgraded.
    pull_paused_until_ms: AtomicI64,
    /// The same for the site's configuration.
    site_paused_until_ms: AtomicI64,
    /// The same for card revocations.
    revocations_paused_until_ms: AtomicI64,
    /// Whether the node's versions of people carry its id in the cloud (learnt once, from
    /// `whoami`): until then its people are not pushed.
    knows_its_id: AtomicBool,
}

impl SyncClient {
    pub fn new(
        cloud: &CloudSection,
        store: Arc<Mutex<NodeStore>>,
        pipeline: Option<Arc<Pipeline>>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let sync = |path: &str| format!("{}/api/v1/sync/{path}", cloud.url.trim_end_matches('/'));
        Ok(Self {
            http: crate::cloud_http::client(cloud, Duration::from_secs(30))?,
            url: sync("push"),
            people_url: sync("people"),
            site_url: sync("site"),
            whoami_url: sync("whoami"),
            blobs_url: sync("blobs"),
            revocations_url: sync("revocations"),
            token: cloud.node_token.clone(),
            interval: Duration::from_millis(cloud.sync_interval_ms),
            store,
            pipeline,
            metrics,
            fallback: AtomicU8::new(0),
            pull_paused_until_ms: AtomicI64::new(0),
            site_paused_until_ms: AtomicI64::new(0),
            revocations_paused_until_ms: AtomicI64::new(0),
            knows_its_id: AtomicBool::new(false),
        })
    }

    async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut NodeStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, SyncError> {
        self.with_store_or(f).await
    }

    /// Like [`Self::with_store`], for work that fails with a sync error of its own.
    async fn with_store_or<T: Send + 'static, E: Into<SyncError> + Send + 'static>(
        &self,
        f: impl FnOnce(&mut NodeStore) -> Result<T, E> + Send + 'static,
    ) -> Result<T, SyncError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&mut store.lock()))
            .await
            .map_err(|e| SyncError::Join(e.to_string()))?
            .map_err(Into::into)
    }

    /// Pushes until the outbox is empty or a push fails, counting the items settled in
    /// `settled` (progress made before a failure counts too).
    async fn drain(&self, settled: &mut usize) -> Result<(), SyncError> {
        // The other streams never hold events back: when they cannot go, events go alone.
        let people_limit = match self.learn_node_id().await {
            Ok(true) => MAX_PEOPLE_PER_PUSH as u32,
            Ok(false) => 0,
            Err(e) => {
                tracing::warn!(error = %e, "cannot learn the node's id: its people wait");
                0
            }
        };
        loop {
            // Voice records go up once their audio has.
            if let Err(e) = self.upload_audio().await {
                tracing::warn!(error = %e, "voice audio not uploaded: its records wait");
            }
            // Events and the other streams share a push but not its room: alarms, audit lines
            // and people never take an event's place (a cloud too old to store them ignores
            // them).
            let (events, records, people) = self
                .with_store(move |s| {
                    Ok((
                        s.pending(BATCH)?,
                        s.pending_records(BATCH)?,
                        s.pending_people(people_limit)?,
                    ))
                })
                .await?;
            if events.is_empty() && records.is_empty() && people.is_empty() {
                return Ok(());
            }
            let batch = PushBatch {
                protocol: PROTOCOL_VERSION,
                events,
                alarms: records.alarms,
                audit: records.audit,
                people,
                voice: records.voice,
            };
            let n = batch.len();
            let mut response = self.post(&batch).await?;
            while response.status() == reqwest::StatusCode::UNSUPPORTED_MEDIA_TYPE
                && self.fallback.load(Ordering::Relaxed) < 2
            {
                let level = self.fallback.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    level,
                    "the cloud refused the push's encoding: falling back to {}",
                    if level == 1 {
                        "JSON + gzip"
                    } else {
                        "plain JSON"
                    }
                );
                response = self.post(&batch).await?;
            }
            let ack: PushAck = decoded(response).await?;
            for r in &ack.rejected {
                tracing::warn!(id = %r.id, reason = %r.reason, "cloud rejected an item: moved to dead letters");
            }
            let missing: Vec<(u64, u64)> = ack.missing.iter().map(|g| (g.first, g.last)).collect();
            let lost_lines: Vec<(String, Vec<(u64, u64)>)> = ack
                .streams
                .iter()
                .filter(|m| !m.missing.is_empty())
                .map(|m| {
                    (
                        m.stream.clone(),
                        m.missing.iter().map(|g| (g.first, g.last)).collect(),
                    )
                })
                .collect();
            let done: Vec<String> = ack.accepted.into_iter().chain(ack.duplicate).collect();
            let rejected: Vec<(String, String)> =
                ack.rejected.into_iter().map(|r| (r.id, r.reason)).collect();
            let acknowledged = done.len() + rejected.len();
            self.with_store(move |s| s.apply_ack(&done, &rejected))
                .await?;
            // A long drain (a day offline) keeps its gauges current batch by batch.
            self.refresh_gauges().await;
            if !lost_lines.is_empty() {
                let queued = self
                    .with_store(move |s| {
                        lost_lines.iter().try_fold(0, |n, (stream, ranges)| {
                            Ok(n + s.resend_records(stream, ranges)?)
                        })
                    })
                    .await?;
                if queued > 0 {
                    tracing::warn!(
                        queued,
                        "the cloud lacks records this node sent before: queued again"
                    );
                    *settled += acknowledged;
                    continue;
                }
            }
            if !missing.is_empty() {
                // The cloud lost events it had acknowledged (a restored backup): send them again.
                let (queued, gone) = self.with_store(move |s| s.resend(&missing)).await?;
                tracing::warn!(
                    watermark = ack.watermark,
                    queued,
                    gone,
                    "the cloud lacks events this node sent before: queued again"
                );
                if queued > 0 {
                    *settled += acknowledged;
                    continue;
                }
            }
            self.metrics.sync_pushes.inc();
            *settled += acknowledged;
            if acknowledged < n {
                // The cloud answered for fewer items than sent: try again on the next round
                // rather than spinning on the same batch.
                return Ok(());
            }
        }
    }

    /// Uploads the audio of pending voice records that the cloud lacks, a few per round. A
    /// cloud of a release without blobs (404) gets none: those records wait.
    async fn upload_audio(&self) -> Result<(), SyncError> {
        let blobs = self
            .with_store(|s| s.blobs_to_upload(BLOBS_PER_ROUND))
            .await?;
        for (sha, body) in blobs {
            let response = self
                .http
                .put(format!("{}/{sha}", self.blobs_url))
                .bearer_auth(&self.token)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    rollcall_protocol::wav::CONTENT_TYPE,
                )
                .body(body)
                .send()
                .await?;
            let status = response.status();
            if status == reqwest::StatusCode::NOT_FOUND {
                return Ok(());
            }
            if matches!(status.as_u16(), 400 | 413 | 415 | 422) {
                // The cloud will never take this audio: its records become dead letters
                // rather than holding up the rest.
                let reason = format!(
                    "audio refused ({status}): {}",
                    response.text().await.unwrap_or_default()
                );
                tracing::warn!(%sha, %reason, "voice audio refused: its records moved to dead letters");
                self.with_store(move |s| s.refuse_blob(&sha, &reason))
                    .await?;
                continue;
            }
            if !status.is_success() {
                return Err(SyncError::Status {
                    status: status.as_u16(),
                    body: response.text().await.unwrap_or_default(),
                });
            }
            self.with_store(move |s| s.mark_blob(&sha, true)).await?;
        }
        Ok(())
    }

    /// Whether the node's versions of people carry its id in the cloud: asked of the cloud
    /// (`whoami`) until it answers, then remembered in the store. A cloud of a release without
    /// it (404) gets no people pushed.
    async fn learn_node_id(&self) -> Result<bool, SyncError> {
        if self.knows_its_id.load(Ordering::Relaxed) {
            return Ok(true);
        }
        if self.with_store(|s| s.node_origin()).await?.is_none() {
            let response = self
                .http
                .get(&self.whoami_url)
                .bearer_auth(&self.token)
                .send()
                .await?;
            if response.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(false);
            }
            let me: NodeIdentity = decoded(response).await?;
            self.with_store(move |s| s.adopt_origin(&me.node_id))
                .await?;
        }
        self.knows_its_id.store(true, Ordering::Relaxed);
        Ok(true)
    }

    /// Pulls the people changed since the node's cursor, page by page, and applies them; the
    /// cursor moves only once a page is applied (a cut pull re-applies it: nothing changes the
    /// second time). Returns how many changes were pulled.
    async fn pull_people(&self) -> Result<usize, SyncError> {
        let Some(pipeline) = &self.pipeline else {
            return Ok(0);
        };
        let mut pulled = 0;
        loop {
            let cursor = self.with_store(|s| s.sync_cursor(STREAM_PEOPLE)).await?;
            let Some(page) = self.people_page(cursor).await? else {
                return Ok(pulled);
            };
            let (pipeline, items) = (pipeline.clone(), page.items);
            let n = items.len();
            tokio::task::spawn_blocking(move || {
                items.iter().try_for_each(|change| {
                    pipeline
                        .apply_person_change(change)
                        .map(drop)
                        .map_err(|e| SyncError::Apply(format!("{}: {e}", change.id)))
                })
            })
            .await
            .map_err(|e| SyncError::Join(e.to_string()))??;
            let next = page.cursor;
            self.with_store(move |s| s.set_sync_cursor(STREAM_PEOPLE, next))
                .await?;
            pulled += n;
            if !page.more {
                return Ok(pulled);
            }
        }
    }

    /// The page of people after `cursor`; `None` from a cloud of a release without the pull
    /// (404): the node pauses asking, and its pushes are not held back by failing rounds.
    async fn people_page(&self, cursor: u64) -> Result<Option<PeoplePage>, SyncError> {
        let url = format!("{}?cursor={cursor}", self.people_url);
        let page: Option<PeoplePage> = self
            .pull(
                &url,
                &self.pull_paused_until_ms,
                "the cloud has no people to pull (an older release): pushing only for now",
            )
            .await?;
        match page {
            Some(p) if p.protocol != PROTOCOL_VERSION => Err(SyncError::Protocol(p.protocol)),
            page => Ok(page),
        }
    }

    /// Pulls the tenant's card revocations after the node's cursor, page by page; each page
    /// and the cursor are stored together. Returns how many cards changed.
    async fn pull_revocations(&self) -> Result<usize, SyncError> {
        let Some(pipeline) = &self.pipeline else {
            return Ok(0);
        };
        let mut pulled = 0;
        loop {
            let cursor = self
                .with_store(|s| s.sync_cursor(STREAM_REVOCATIONS))
                .await?;
            let Some(page) = self
                .pull::<RevocationPage>(
                    &format!("{}?cursor={cursor}", self.revocations_url),
                    &self.revocations_paused_until_ms,
                    "the cloud has no card revocations (an older release): the node's cards stand",
                )
                .await?
            else {
                return Ok(pulled);
            };
            if page.protocol != PROTOCOL_VERSION {
                return Err(SyncError::Protocol(page.protocol));
            }
            pulled += page.items.len();
            let (pipeline, more) = (pipeline.clone(), page.more);
            tokio::task::spawn_blocking(move || {
                pipeline.apply_revocations(&page.items, page.cursor)
            })
            .await
            .map_err(|e| SyncError::Join(e.to_string()))?
            .map_err(|e| SyncError::Apply(e.to_string()))?;
            if !more {
                return Ok(pulled);
            }
        }
    }

    /// Reads the site's configuration and puts a new version in force (stored first);
    /// whether it changed. A cloud of a release without it (404) is asked again later.
    async fn pull_site(&self) -> Result<bool, SyncError> {
        let Some(pipeline) = &self.pipeline else {
            return Ok(false);
        };
        let Some(pull) = self
            .pull::<SitePull>(
                &self.site_url,
                &self.site_paused_until_ms,
                "the cloud gives no site configuration (an older release): the fences in force stay",
            )
            .await?
        else {
            return Ok(false);
        };
        if pull.protocol != PROTOCOL_VERSION {
            return Err(SyncError::Protocol(pull.protocol));
        }
        let pipeline = pipeline.clone();
        self.with_store_or(move |s| crate::site_config::apply(&pipeline, s, pull.site.as_ref()))
            .await
    }

    /// GETs a pull; `None` while `paused_until_ms` is ahead, or from a cloud of a release
    /// without this pull (404), which pauses it for [`PULL_RETRY_MS`] (it may be upgraded).
    async fn pull<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        paused_until_ms: &AtomicI64,
        missing: &str,
    ) -> Result<Option<T>, SyncError> {
        if now_ms() < paused_until_ms.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let response = self.http.get(url).bearer_auth(&self.token).send().await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            paused_until_ms.store(now_ms() + PULL_RETRY_MS, Ordering::Relaxed);
            tracing::warn!(retry_in_s = PULL_RETRY_MS / 1000, "{missing}");
            return Ok(None);
        }
        decoded(response).await.map(Some)
    }

    /// One push of a batch, encoded as the fallback level says.
    async fn post(&self, batch: &PushBatch) -> Result<reqwest::Response, reqwest::Error> {
        let level = self.fallback.load(Ordering::Relaxed);
        let encoding = if level == 0 {
            Encoding::Cbor
        } else {
            Encoding::Json
        };
        let body = encoding.encode(batch);
        let request = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, encoding.content_type());
        let request = if level < 2 {
            request
                .header(reqwest::header::CONTENT_ENCODING, "gzip")
                .body(rollcall_protocol::gzip::compress(&body))
        } else {
            request.body(body)
        };
        request.send().await
    }

    async fn refresh_gauges(&self) {
        if let Ok(stats) = self.with_store(|s| s.outbox_stats()).await {
            self.metrics.observe_outbox(&stats);
        }
    }

    /// Runs until `shutdown` fires.
    pub async fn run(self, mut shutdown: Shutdown) {
        let mut failures = 0u32;
        tracing::info!(url = %self.url, "sync client started");
        loop {
            let mut settled = 0;
            let pushed = self.drain(&mut settled).await;
            if settled > 0 {
                tracing::info!(items = settled, "synced");
            }
            // Pulled whatever the push did: a push the cloud keeps refusing must not hold back a
            // template deleted in the cloud.
            let pulled = self.pull_people().await;
            if let Ok(n @ 1..) = pulled {
                tracing::info!(people = n, "pulled people from the cloud");
            }
            let site = self.pull_site().await;
            let revocations = self.pull_revocations().await;
            if let Ok(n @ 1..) = revocations {
                tracing::info!(cards = n, "pulled card revocations from the cloud");
            }
            let outcome = pushed
                .and(pulled.map(drop))
                .and(site.map(drop))
                .and(revocations.map(drop));
            failures = failures_after(failures, settled, outcome.is_ok());
            let at = now_ms();
            let text = outcome.as_ref().err().map(ToString::to_string);
            if let Some(text) = &text {
                self.metrics.sync_last_error_ms.set(at);
                let text = text.clone();
                let _ = self
                    .with_store(move |s| s.record_sync_error(at, &text))
                    .await;
            } else {
                self.metrics.sync_last_success_ms.set(at);
                let _ = self.with_store(move |s| s.record_sync_success(at)).await;
            }
            let wait = match outcome {
                Ok(()) => self.interval,
                Err(e) => {
                    self.metrics.sync_errors.inc();
                    let wait = backoff(self.interval, failures);
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "sync failed");
                    wait
                }
            };
            self.refresh_gauges().await;
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.wait() => break,
            }
        }
        tracing::info!("sync client stopped");
    }
}

/// A successful answer, decoded as its `Content-Type` says (JSON or CBOR); any other status
/// is an error carrying the body.
async fn decoded<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, SyncError> {
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(SyncError::Status {
            status: status.as_u16(),
            body,
        });
    }
    let encoding = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Encoding::from_content_type)
        .unwrap_or(Encoding::Json);
    let bytes = response.bytes().await?;
    encoding
        .decode(&bytes)
        .map_err(|e| SyncError::Decode(e.to_string()))
}

/// Failures in a row after a round that settled `settled` items and ended well (`ok`) or
/// not. Progress, even cut short, means the link works: a flaky network must not push the
/// retries of a long drain out to the back-off's cap.
fn failures_after(failures: u32, settled: usize, ok: bool) -> u32 {
    match (ok, settled) {
        (true, _) => 0,
        (false, 0) => failures.saturating_add(1),
        (false, _) => 1,
    }
}

/// Exponential back-off from `base`, capped, with up to 25% jitter so that many nodes coming
/// back online do not hit the cloud in step.
fn backoff(base: Duration, failures: u32) -> Duration {
    let exp = base
        .saturating_mul(1u32 << failures.min(10))
        .min(MAX_BACKOFF);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = exp.mul_f64((nanos % 1000) as f64 / 4000.0);
    exp + jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every golden answer of the cloud (`rollcall_protocol::golden`: the push's
    /// acknowledgement, the people, site and revocation pulls, whoami), in JSON and in CBOR, is
    /// read by the sync client's own decoding into the value it stands for: a cloud that answers
    /// as version 1 did is understood.
    #[tokio::test]
    async fn the_golden_answers_of_the_cloud_decode_as_the_client_reads_them() {
        use rollcall_protocol::golden::{self, Payload};
        let mut read = 0;
        for case in golden::cases() {
            for encoding in [Encoding::Json, Encoding::Cbor] {
                let bytes = std::fs::read(case.path(encoding)).expect("golden file");
                let answer = || {
                    reqwest::Response::from(
                        axum::http::Response::builder()
                            .header("content-type", encoding.content_type())
                            .body(bytes.clone())
                            .expect("response"),
                    )
                };
                let got = match &case.payload {
                    Payload::Ack(_) => Payload::Ack(decoded(answer()).await.expect("ack")),
                    Payload::People(_) => Payload::People(decoded(answer()).await.expect("people")),
                    Payload::Site(_) => Payload::Site(decoded(answer()).await.expect("site")),
                    Payload::Revocations(_) => {
                        Payload::Revocations(decoded(answer()).await.expect("revocations"))
                    }
                    Payload::Identity(_) => {
                        Payload::Identity(decoded(answer()).await.expect("identity"))
                    }
                    // What the node sends, or what reaches it by other roads (the bundle is
                    // read by `flash`, the credential by the installer).
                    _ => continue,
                };
                assert_eq!(got, case.payload, "{}", case.path(encoding).display());
                read += 1;
            }
        }
        assert_eq!(
            read, 12,
            "ack, two site pulls, people, revocations, whoami x 2 encodings"
        );
    }

    /// A cloud of an older release: JSON only (415 for CBOR), and with `gzip` false from before
    /// gzip bodies (415 for a compressed push); every item accepted otherwise. No cloud binary
    /// of that age exists to run, so this one stands in for it. With `broken`, its `whoami`
    /// and blob upload answer 500.
    async fn legacy_cloud(gzip: bool) -> String {
        stand_in_cloud(gzip, false).await
    }

    async fn stand_in_cloud(gzip: bool, broken: bool) -> String {
        async fn push(
            axum::extract::State(gzip): axum::extract::State<bool>,
            headers: axum::http::HeaderMap,
            body: axum::body::Bytes,
        ) -> Result<axum::Json<PushAck>, axum::http::StatusCode> {
            let json = headers
                .get(axum::http::header::CONTENT_TYPE)
                .is_some_and(|v| v == "application/json");
            let compressed = headers.contains_key(axum::http::header::CONTENT_ENCODING);
            if !json || (compressed && !gzip) {
                return Err(axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            let body = if compressed {
                rollcall_protocol::gzip::decompress_bounded(&body, 1 << 20)
                    .map_err(|_| axum::http::StatusCode::BAD_REQUEST)?
            } else {
                body.to_vec()
            };
            let batch: PushBatch =
                serde_json::from_slice(&body).map_err(|_| axum::http::StatusCode::BAD_REQUEST)?;
            Ok(axum::Json(PushAck {
                accepted: batch.events.into_iter().map(|e| e.id).collect(),
                ..PushAck::default()
            }))
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut app = axum::Router::new().route("/api/v1/sync/push", axum::routing::post(push));
        if broken {
            let fail = || async { axum::http::StatusCode::INTERNAL_SERVER_ERROR };
            app = app
                .route("/api/v1/sync/whoami", axum::routing::get(fail))
                .route("/api/v1/sync/blobs/{sha}", axum::routing::put(fail));
        }
        let app = app.with_state(gzip);
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn scratch_store(dir: &std::path::Path) -> NodeStore {
        NodeStore::open(
            &dir.join("n.sqlite"),
            crate::template_key::TemplateKey::from_bytes(&[1; 32]),
        )
        .expect("store")
    }

    /// A push-only client (no pipeline) of `store` to `url`.
    fn client_of(url: String, store: Arc<Mutex<NodeStore>>) -> SyncClient {
        SyncClient::new(
            &CloudSection {
                url,
                node_token: "acme.token".into(),
                sync_interval_ms: 1000,
                ca_file: None,
                ca_roots: vec![],
            },
            store,
            None,
            Arc::new(Metrics::new()),
        )
        .expect("client")
    }

    /// Pushes three events to `url`; the fallback level the client ended on.
    async fn push_three(url: String) -> u8 {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = scratch_store(dir.path());
        for _ in 0..3 {
            store
                .record_event(None, crate::store::test_event)
                .expect("event");
        }
        let store = Arc::new(Mutex::new(store));
        let client = client_of(url, store.clone());
        let mut settled = 0;
        client.drain(&mut settled).await.expect("drain");
        assert_eq!(settled, 3);
        let pending = store.lock().outbox_stats().expect("stats").pending;
        assert_eq!(pending, 0);
        // No people pull there either: asked once, then not again.
        assert!(
            client
                .people_page(0)
                .await
                .expect("404 is no error")
                .is_none()
        );
        let paused = client.pull_paused_until_ms.load(Ordering::Relaxed);
        assert!(paused > now_ms(), "asked again later, not at every round");
        assert!(client.people_page(0).await.expect("paused").is_none());
        client.fallback.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn older_clouds_get_json_and_then_plain_json_and_everything_arrives() {
        assert_eq!(push_three(legacy_cloud(true).await).await, 1, "JSON + gzip");
        assert_eq!(push_three(legacy_cloud(false).await).await, 2, "plain JSON");
    }

    /// A cloud whose other routes fail (here `whoami` and the audio upload): the node's events
    /// still go; its people and voice records wait.
    #[tokio::test]
    async fn events_go_even_when_the_other_streams_cannot() {
        let url = stand_in_cloud(true, true).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = scratch_store(dir.path());
        store
            .record_event(None, crate::store::test_event)
            .expect("event");
        store.add_person("ann", "Ann", None).expect("person");
        store
            .record_voice(&crate::store::test_voice(rollcall_protocol::wav::tone(
                440.0, 300,
            )))
            .expect("voice");
        let store = Arc::new(Mutex::new(store));
        let client = client_of(url, store.clone());
        let mut settled = 0;
        client.drain(&mut settled).await.expect("drain");
        assert_eq!(settled, 1, "the event");
        let stats = store.lock().outbox_stats().expect("stats");
        assert_eq!(stats.pending, 0);
        assert_eq!(
            stats.records.pending, 2,
            "the voice record and the person wait"
        );
    }

    #[test]
    fn progress_resets_the_back_off_even_when_the_round_fails() {
        assert_eq!(failures_after(5, 0, true), 0);
        assert_eq!(failures_after(5, 0, false), 6);
        assert_eq!(failures_after(5, 500, false), 1, "a batch got through");
        assert_eq!(failures_after(u32::MAX, 0, false), u32::MAX);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(500);
        let one = backoff(base, 1);
        assert!(one >= Duration::from_millis(1000) && one <= Duration::from_millis(1250));
        let many = backoff(base, 30);
        assert!(many >= MAX_BACKOFF && many <= MAX_BACKOFF.mul_f64(1.25));
    }
}
