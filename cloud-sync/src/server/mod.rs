//! The server: storage, authentication, the HTTP API, metrics.

mod api;
mod auth;
mod metrics;
mod store;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

pub use store::{CloudStore, StoreError};

/// Everything `rollcall-cloud serve` needs, validated by the binary.
#[derive(Debug, Clone)]
pub struct Config {
    /// SQLite file (created if missing).
    pub database: PathBuf,
    pub listen: SocketAddr,
    /// Bearer token of the bootstrap administrator (identity and roles come with the
    /// cloud-core issue).
    pub admin_token: String,
    /// Slug of the tenant this server starts with.
    pub tenant: String,
    /// Where to write the bound address once listening (useful with port 0).
    pub addr_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Listen(#[from] crate::listen::ListenError),
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
}

/// Runs the server until SIGTERM or Ctrl-C, then finishes in-flight requests and returns.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let store = CloudStore::open(&config.database)?;
    let tenant_id = store.ensure_tenant(&config.tenant)?;
    let state = Arc::new(api::AppState {
        store: Arc::new(std::sync::Mutex::new(store)),
        admin_token_sha256: auth::token_hash(&config.admin_token),
        tenant_id,
        tenant: config.tenant.clone(),
        metrics: metrics::Metrics::new(),
    });
    let (listener, local) = crate::listen::bind(config.listen, config.addr_file.as_deref()).await?;
    tracing::info!(addr = %local, db = %config.database.display(), tenant = %config.tenant, "rollcall-cloud listening on http://{local}");
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(crate::shutdown::signal())
        .await
        .map_err(ServeError::Serve)?;
    tracing::info!("rollcall-cloud stopped");
    Ok(())
}
