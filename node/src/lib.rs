//! `rollcall-node`: the site daemon. Wires `vision`, `fraud` and the sync protocol together,
//! keeps everything in SQLite and serves the kiosk/installer API.
//!
//! Architecture invariant: a check-in is decided locally and written durably (event + outbox in
//! one transaction) before it is answered; the cloud is never waited on.

pub mod api;
pub mod card;
pub mod cloud_http;
pub mod config;
pub mod doctor;
pub mod flash;
pub mod live;
pub mod metrics;
pub mod osdp_tools;
pub mod pipeline;
pub mod retention;
pub mod site_config;
pub mod store;
pub mod sync;
pub mod template_key;
pub mod turnstile;
pub mod vision_setup;

use parking_lot::Mutex;
use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use rollcall_service::{shutdown, supervisor::Supervisor};

pub use config::{ConfigError, NodeConfig};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Key(#[from] template_key::KeyError),
    #[error(transparent)]
    Setup(#[from] vision_setup::SetupError),
    #[error("sync client: {0}")]
    Sync(#[from] reqwest::Error),
    #[error("OSDP port {port}: {source}")]
    Osdp {
        port: String,
        #[source]
        source: serialport::Error,
    },
    #[error(transparent)]
    Listen(#[from] rollcall_service::listen::ListenError),
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
}

/// Why [`run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM or Ctrl-C: the process should end.
    Stop,
    /// SIGHUP (a flashed config): run again on the config file as it now is.
    Reload,
}

/// Resolves on SIGHUP; never, where it cannot be listened to.
fn hangup() -> impl std::future::Future<Output = ()> {
    let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    async move {
        match signal {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: a flashed config needs a restart");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Runs the node until SIGTERM or Ctrl-C (or SIGHUP, to reload its config): loads models,
/// opens the store, serves the API and syncs; on shutdown, finishes in-flight requests and the
/// current sync round.
pub async fn run(config: NodeConfig, addr_file: Option<PathBuf>) -> Result<Exit, RunError> {
    let data_dir = &config.node.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|source| RunError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    // Listening for SIGHUP before the pid file names this process: a flash that reads the pid
    // must not find the signal's default action (termination) still in place.
    let reload = hangup();
    let pid_file = flash::pid_path(&config);
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).map_err(|source| {
        RunError::DataDir {
            path: pid_file.clone(),
            source,
        }
    })?;
    let key = template_key::TemplateKey::load_or_create(&config.template_key_path())?;
    let store = Arc::new(Mutex::new(store::NodeStore::open(
        &config.database_path(),
        key,
    )?));
    let metrics = Arc::new(metrics::Metrics::new());
    // The outbox gauges tell the truth from the first scrape, not 0 until the first sync.
    metrics.observe_outbox(&store.lock().outbox_stats()?);
    let live = Arc::new(live::LiveFeed::new());

    let engine = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || vision_setup::load_engine(&config))
            .await
            .map_err(|e| RunError::Serve(std::io::Error::other(e)))??
    };
    let pipeline = Arc::new(pipeline::Pipeline::new(
        engine,
        store.clone(),
        pipeline::PipelineSettings {
            site_id: config.node.site_id.clone(),
            match_threshold: config.vision.match_threshold,
            min_margin: config.vision.min_margin,
            learn: config.vision.learn_templates.then_some((
                config.vision.learn_min_similarity,
                config.vision.learn_max_similarity,
            )),
            policy: config.fraud.clone(),
            geofences: config.geofences(),
            require_card: config.osdp.as_ref().is_some_and(|o| o.require_card),
            keep_frames: config.privacy.keep_frames,
            graph_from: config.vision.graph_from,
            embedder: config.vision.embedder.clone(),
        },
        metrics.clone(),
        live.clone(),
    )?);
    // A kept configuration that cannot be used (a newer release's rules refuse it) must not keep
    // the gate shut: the file's fences and policy, and the kept one is dropped so that the
    // cloud's next answer is judged afresh (and its error shown by the sync status if it fails
    // again).
    {
        let mut store = store.lock();
        if let Err(e) = site_config::restore(&pipeline, &store) {
            tracing::error!(error = %e, "the site configuration kept from the cloud is unusable: the config file's geofences and policy are in force");
            store.set_site_config(None)?;
        }
    }

    // The node's background loops: stopped on shutdown and awaited before it exits.
    let mut supervisor = Supervisor::new();
    let stop = supervisor.stop_signal();
    let trigger = supervisor.trigger();
    match &config.cloud {
        Some(cloud) => {
            let client = sync::SyncClient::new(
                cloud,
                store.clone(),
                Some(pipeline.clone()),
                metrics.clone(),
            )?;
            supervisor.spawn("sync", move |stop| client.run(stop));
        }
        None => {
            tracing::warn!("no [cloud] section: running standalone, events stay in the outbox");
        }
    }

    let frame_ttl = (config.privacy.keep_frames != config::KeepFrames::None)
        .then(|| Duration::from_secs(u64::from(config.privacy.frame_ttl_hours) * 3600));
    if config.node.retention_days > 0 || frame_ttl.is_some() {
        let policy = retention::Policy {
            days: config.node.retention_days,
            standalone: config.cloud.is_none(),
            frame_ttl,
        };
        let store = store.clone();
        supervisor.spawn("retention", move |stop| retention::run(store, policy, stop));
    }

    let card_window = Duration::from_secs(config.osdp.as_ref().map_or(15, |o| o.card_window_s));
    let cards = Arc::new(card::CardGate::new(card_window));
    let (bus, turnstile) = match &config.osdp {
        Some(osdp) => {
            let on_card = card_handler(pipeline.clone(), cards.clone(), card_window);
            let (bus, t) =
                turnstile::start(osdp, metrics.clone(), store.clone(), live.clone(), on_card)
                    .map_err(|source| RunError::Osdp {
                        port: osdp.port.clone(),
                        source,
                    })?;
            tracing::info!(turnstile = %t.describe(), port = %osdp.port, "OSDP bus started");
            (Some(bus), Some(t))
        }
        None => {
            tracing::warn!("no [osdp] section: no turnstile relay will be driven");
            (None, None)
        }
    };
    let state = Arc::new(api::AppState {
        pipeline,
        cards,
        live,
        stop: stop.clone(),
        store,
        metrics,
        admin_token: config.http.admin_token.clone(),
        turnstile,
        kiosk_position: config.kiosk.as_ref().map(|k| rollcall_fraud::Fix {
            lat: k.lat,
            lon: k.lon,
            accuracy_m: k.accuracy_m,
            fix_time_ms: None,
            mock: false,
            satellites: None,
            provider: Some("kiosk".into()),
        }),
    });
    let (listener, local) =
        rollcall_service::listen::bind(config.http.listen, addr_file.as_deref()).await?;
    tracing::info!(addr = %local, site = %config.node.site_id, db = %config.database_path().display(), "rollcall-node listening on http://{local}");
    let exit = Arc::new(Mutex::new(Exit::Stop));
    let stop_or_reload = {
        let (exit, trigger) = (exit.clone(), trigger.clone());
        async move {
            tokio::select! {
                () = shutdown::signal() => {}
                () = reload => {
                    tracing::info!("SIGHUP: reloading the config");
                    *exit.lock() = Exit::Reload;
                }
            }
            // Before the server drains: long-lived responses (the live feed) end now.
            trigger.fire();
        }
    };
    // Connection limits and timeouts (a kiosk's check-in is unauthenticated by design: a
    // crowd of silent connections must not hold the node).
    rollcall_service::serve::serve(
        listener,
        api::router(state),
        rollcall_service::serve::ConnLimits::default(),
        Arc::default(),
        stop_or_reload,
    )
    .await;
    // Also when serving failed without a signal: the background tasks must end.
    supervisor.shutdown().await;
    if let Some(bus) = bus {
        let _ = tokio::task::spawn_blocking(move || bus.stop()).await;
        tracing::info!("OSDP bus stopped");
    }
    let exit = *exit.lock();
    if exit == Exit::Stop {
        let _ = std::fs::remove_file(&pid_file);
        tracing::info!("rollcall-node stopped");
    }
    Ok(exit)
}

/// A card read: its holder waits at the gate for their face (amber light and a prompt on the
/// reader); a revoked or unknown card is recorded as a denied attempt and refused at the
/// reader.
fn card_handler(
    pipeline: Arc<pipeline::Pipeline>,
    cards: Arc<card::CardGate>,
    window: Duration,
) -> turnstile::OnCard {
    Box::new(move |reader, pd, read| {
        let key = card::card_key(read);
        let feedback = match pipeline.card_presented(&key) {
            Ok(pipeline::CardOutcome::Holder(person)) => {
                let name = person.display_name.clone();
                cards.present(
                    card::PresentedCard {
                        card: key,
                        person_id: person.id,
                        display_name: person.display_name,
                        reader: pd,
                    },
                    Instant::now(),
                );
                reader.card_accepted(pd, &name, window)
            }
            Ok(pipeline::CardOutcome::Refused { display, .. }) => reader.card_refused(pd, display),
            Err(e) => {
                tracing::error!(card = %key, error = %e, "cannot handle a card read");
                reader.card_refused(pd, "Try again")
            }
        };
        if let Err(e) = feedback {
            tracing::warn!(error = %e, "reader feedback for a card failed");
        }
    })
}
