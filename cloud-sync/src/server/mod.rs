//! The server, one folder per domain — `tenants`, `users`, `sites`, `nodes`, `people`, `cards`,
//! `sync`, `records`, `attendance`, `audit` — each with its HTTP handlers (`api.rs`) and its
//! storage (`store.rs` or a file named for what it keeps), and cross-cutting code in three
//! named places: `http` (the router, middleware, problem mapping, OpenAPI), `auth` (who is
//! calling) and `store` (the executor over both databases, their migrations and connections).

pub mod attendance;
pub mod audit;
pub mod auth;
pub mod cards;
pub mod http;
pub(crate) mod nodes;
pub mod people;
pub mod records;
pub mod sealing;
pub mod sites;
pub mod store;
pub mod sync;
pub mod tenants;
pub mod users;

pub use http::host::valid_hostname;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use rollcall_service::{shutdown::Shutdown, supervisor::Supervisor};

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
    /// Slug of the tenant this server starts with.
    pub tenant: String,
    /// With `rollcall.example`, the host `acme.rollcall.example` names tenant `acme`.
    pub base_domain: Option<String>,
    pub rate_limits: http::rate_limit::RateConfig,
    /// The file of the master key that seals face templates, and whether to make it when it
    /// is missing (a single SQLite server) or to refuse (replicas must share one key).
    pub master_key_file: PathBuf,
    pub create_master_key: bool,
    /// Where to write the bound address once listening (useful with port 0).
    pub addr_file: Option<PathBuf>,
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
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
}

/// Every minute: prunes the rate limiters' idle keys, and (hourly, first at start) purges what
/// has expired. Returns when `stop` fires, never in the middle of a purge step.
async fn maintenance(state: Arc<http::router::AppState>, mut stop: Shutdown) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    for minute in 0u64.. {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.wait() => return,
        }
        state.limits.prune();
        if minute % 60 == 0 {
            purge_expired(&state.store, &stop).await;
        }
        if stop.is_fired() {
            return;
        }
    }
}

/// Deletes every active tenant's ended browser sessions, superseded people changes and expired
/// idempotency keys. Each step is one transaction; a shutdown is looked at before each step, so
/// SIGTERM waits for the step under way and starts no other.
async fn purge_expired(store: &Store, stop: &Shutdown) {
    let tenants = match store.tenants().await {
        Ok(t) => t,
        Err(e) => return tracing::warn!(error = %e, "idempotency key purge skipped"),
    };
    tracing::info!(tenants = tenants.len(), "purge started");
    let stopped = || {
        let fired = stop.is_fired();
        if fired {
            tracing::info!("purge stopped by shutdown");
        }
        fired
    };
    for scope in tenants.iter().filter_map(store::Tenant::scope) {
        let day_ago = rollcall_service::clock::now_ms() - 24 * 3600 * 1000;
        let tenant = scope.slug();
        if stopped() {
            return;
        }
        log_purge(
            tenant,
            "ended browser sessions",
            store.purge_sessions(&scope, day_ago).await,
        );
        if stopped() {
            return;
        }
        log_purge(
            tenant,
            "superseded people changes",
            store.compact_person_changes(&scope).await,
        );
        if stopped() {
            return;
        }
        log_purge(
            tenant,
            "expired idempotency keys",
            store.idem_purge(&scope).await,
        );
    }
    tracing::info!("purge finished");
}

/// Logs what one purge of one tenant removed, or why it failed.
fn log_purge(tenant: &str, what: &str, outcome: Result<u64, store::StoreError>) {
    match outcome {
        Ok(0) => {}
        Ok(n) => tracing::info!(tenant, rows = n, "purged {what}"),
        Err(e) => tracing::warn!(tenant, error = %e, "purging {what} failed"),
    }
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
    let state = Arc::new(http::router::AppState {
        store,
        admin_token_sha256: auth::extract::token_hash(&config.admin_token),
        tenant: config.tenant.clone(),
        base_domain: config.base_domain.clone(),
        access,
        limits: http::rate_limit::RateLimits::new(config.rate_limits),
        tenants: tenants::cache::TenantCache::new(tenants::cache::TTL),
        metrics: http::metrics::Metrics::new(),
        master_key,
    });
    let mut supervisor = Supervisor::new();
    let maintained = state.clone();
    supervisor.spawn("maintenance", move |stop| maintenance(maintained, stop));
    let (listener, local) =
        rollcall_service::listen::bind(config.listen, config.addr_file.as_deref()).await?;
    tracing::info!(addr = %local, db = %config.database.describe(), tenant = %config.tenant, "rollcall-cloud listening on http://{local}");
    let served = axum::serve(
        listener,
        http::router::router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown({
        // The background loops stop with the listener, and are awaited below.
        let trigger = supervisor.trigger();
        async move {
            rollcall_service::shutdown::signal().await;
            tracing::info!("shutting down: finishing requests in flight");
            trigger.fire();
        }
    })
    .await;
    // Whether serving ended well or not, the loops are stopped and awaited before returning.
    let panicked = supervisor.shutdown().await;
    served.map_err(ServeError::Serve)?;
    tracing::info!(
        panicked = panicked.len(),
        "background tasks stopped; rollcall-cloud stopped"
    );
    Ok(())
}
