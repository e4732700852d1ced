//! The server, one folder per domain — `tenants`, `users`, `sites`, `nodes`, `people`, `cards`,
//! `sync`, `records`, `attendance`, `audit`, `jobs`, `realtime`, `notifications` — each with its HTTP handlers (`api.rs`) and its
//! storage (`store.rs` or a file named for what it keeps), and cross-cutting code in three
//! named places: `http` (the router, middleware, problem mapping, OpenAPI), `auth` (who is
//! calling) and `store` (the executor over both databases, their migrations and connections).

pub mod attendance;
pub mod audit;
pub mod auth;
pub mod cards;
pub mod http;
pub mod jobs;
mod maintenance;
pub(crate) mod nodes;
pub mod notifications;
pub mod people;
pub mod realtime;
pub mod records;
pub mod sealing;
pub mod sites;
pub mod store;
pub mod sync;
pub mod tenants;
pub mod users;

pub use http::host::valid_hostname;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use rollcall_service::supervisor::Supervisor;

pub use store::{Backend, Store, StoreError};

/// Everything `rollcall-cloud serve` needs, validated by the binary.
#[derive(Debug, Clone)]
pub struct Config {
    /// SQLite file or PostgreSQL database.
    pub database: Backend,
    pub listen: SocketAddr,
    /// Bearer token of the bootstrap administrator (identity and roles come with the
    /// cloud-core issue).
    pub admin_token: String,
    /// A bearer token that reads `/metrics` and nothing else (else only `admin_token` does).
    pub metrics_token: Option<String>,
    /// Slug of the tenant this server starts with.
    pub tenant: String,
    /// With `rollcall.example`, the host `acme.rollcall.example` names tenant `acme`.
    pub base_domain: Option<String>,
    pub rate_limits: http::rate_limit::RateConfig,
    /// How many password hashes run at once, and how long a login waits for one.
    pub hashing: auth::hashers::HashConfig,
    /// Connections open at once, and how long a request's head and a whole request may take.
    pub connections: rollcall_service::serve::ConnLimits,
    /// The file of the master key that seals face templates, and whether to make it when it
    /// is missing (a single SQLite server) or to refuse (replicas must share one key).
    pub master_key_file: PathBuf,
    pub create_master_key: bool,
    /// Where to write the bound address once listening (useful with port 0).
    pub addr_file: Option<PathBuf>,
    /// How this replica's workers work the job queues.
    pub jobs: jobs::runner::JobsConfig,
    /// The job kinds it runs ([`jobs::kinds::registry`]).
    pub job_kinds: jobs::registry::Registry,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Listen(#[from] rollcall_service::listen::ListenError),
    #[error(transparent)]
    MasterKey(#[from] sealing::SealError),
    #[error(
        "master key file {path}: it does not open the data keys stored in this database \
         (not the key the database was sealed with); give the right --master-key-file"
    )]
    WrongMasterKey { path: PathBuf },
}

/// Runs the server until SIGTERM or Ctrl-C, then finishes in-flight requests and returns.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let master_key = if config.create_master_key {
        let (key, created) = sealing::MasterKey::load_or_create(&config.master_key_file)?;
        if created {
            tracing::warn!(file = %config.master_key_file.display(), "made a new master key: back it up with the database; without it, face templates cannot be read");
        }
        key
    } else {
        sealing::MasterKey::load(&config.master_key_file)?
    };
    let store = Store::open(&config.database).await?;
    let bootstrap = store.ensure_tenant(&config.tenant, &config.tenant).await?;
    if let Some(scope) = bootstrap.scope() {
        store
            .check_master_key(&scope, &master_key)
            .await
            .map_err(|e| match e {
                StoreError::Seal(sealing::SealError::Open) => ServeError::WrongMasterKey {
                    path: config.master_key_file.clone(),
                },
                e => ServeError::Store(e),
            })?;
    }
    let access = auth::tokens::AccessKeys::new(&store.platform_secret("access-token-hs256").await?);
    let hashers = auth::hashers::Hashers::new(config.hashing);
    let mut metrics = http::metrics::Metrics::new();
    hashers.register(metrics.registry_mut());
    let serve_counts = std::sync::Arc::new(rollcall_service::serve::ServeCounts::default());
    metrics.register_serve_counts(serve_counts.clone());
    let mut supervisor = Supervisor::new();
    let hub = Arc::new(realtime::hub::Hub::new(supervisor.stop_signal()));
    hub.register(metrics.registry_mut());
    let state = Arc::new(http::router::AppState {
        store,
        admin_token_sha256: auth::extract::token_hash(&config.admin_token),
        metrics_token_sha256: config
            .metrics_token
            .as_deref()
            .map(auth::extract::token_hash),
        tenant: config.tenant.clone(),
        base_domain: config.base_domain.clone(),
        access,
        limits: http::rate_limit::RateLimits::new(config.rate_limits),
        hashers,
        tenants: tenants::cache::TenantCache::new(tenants::cache::TTL),
        metrics,
        master_key,
        jobs: Arc::new(config.job_kinds.clone()),
        hub,
    });
    for schedule in jobs::kinds::builtin_schedules() {
        state.store.ensure_platform_schedule(schedule).await?;
    }
    let maintained = state.clone();
    supervisor.spawn("maintenance", move |stop| {
        maintenance::run(maintained, stop)
    });
    let (store, kinds, jobs) = (state.store.clone(), state.jobs.clone(), config.jobs.clone());
    let counted = state.metrics.jobs.clone();
    supervisor.spawn("jobs", move |stop| {
        jobs::runner::run(store, kinds, counted, jobs, stop)
    });
    let pumped = state.clone();
    supervisor.spawn("realtime", move |stop| realtime::hub::pump(pumped, stop));
    let (listener, local) =
        rollcall_service::listen::bind(config.listen, config.addr_file.as_deref()).await?;
    tracing::info!(addr = %local, db = %config.database.describe(), tenant = %config.tenant, "rollcall-cloud listening on http://{local}");
    let trigger = supervisor.trigger();
    // The background loops stop with the listener, and are awaited below.
    rollcall_service::serve::serve(
        listener,
        http::router::router(state.clone()),
        config.connections,
        serve_counts,
        async move {
            rollcall_service::shutdown::signal().await;
            tracing::info!("shutting down: finishing requests in flight");
            trigger.fire();
        },
    )
    .await;
    // Whether serving ended well or not, the loops are stopped and awaited before returning.
    let panicked = supervisor.shutdown().await;
    // The real-time connections closed with 1001 when the stop fired; wait for their tasks.
    state.hub.drained(std::time::Duration::from_secs(5)).await;
    tracing::info!(
        panicked = panicked.len(),
        "background tasks stopped; rollcall-cloud stopped"
    );
    Ok(())
}
