//! Throwaway PostgreSQL databases for tests and benchmarks: each gets its own database and its
//! own login role that owns it (not a superuser, so row-level security applies to it), and both
//! are dropped when the value is. Tests running in parallel never touch each other's data.

use tokio_postgres::NoTls;

/// Why a scratch database could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("no randomness for the database name: {0}")]
    Random(String),
}

/// `name` as a PostgreSQL identifier, double-quoted (our names never hold a quote; doubling
/// makes any that did harmless).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The server administrator connection used to create scratch databases:
/// `$ROLLCALL_PG_ADMIN_URL`, or the local PostgreSQL's `postgres` role over TCP.
pub fn admin_url() -> String {
    std::env::var("ROLLCALL_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database and its owner role, both named `name`, dropped on drop.
#[derive(Debug)]
pub struct ScratchDatabase {
    pub name: String,
    /// Connects as the owner role (no password: the local server trusts loopback).
    pub url: String,
    admin_url: String,
}

impl ScratchDatabase {
    /// Creates one through [`admin_url`].
    pub async fn create() -> Result<Self, ScratchError> {
        Self::create_with(&admin_url()).await
    }

    pub async fn create_with(admin_url: &str) -> Result<Self, ScratchError> {
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| ScratchError::Random(e.to_string()))?;
        let name = format!("rollcall_scratch_{}", hex::encode(suffix));
        let (client, conn) = tokio_postgres::connect(admin_url, NoTls).await?;
        let driver = tokio::spawn(conn);
        let ident = quote_ident(&name);
        client
            .batch_execute(&format!(
                "CREATE ROLE {ident} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
            ))
            .await?;
        client
            .batch_execute(&format!("CREATE DATABASE {ident} OWNER {ident}"))
            .await?;
        drop(client);
        let _ = driver.await;
        let config: tokio_postgres::Config = admin_url.parse()?;
        let host = config
            .get_hosts()
            .iter()
            .find_map(|h| match h {
                tokio_postgres::config::Host::Tcp(h) => Some(h.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "127.0.0.1".into());
        let port = config.get_ports().first().copied().unwrap_or(5432);
        Ok(Self {
            url: format!("postgres://{name}@{host}:{port}/{name}"),
            name,
            admin_url: admin_url.to_owned(),
        })
    }

    /// The same database through the administrator role (a superuser: row-level security does
    /// not apply to it), for tests that look behind the server's back.
    pub fn admin_url_here(&self) -> String {
        match self.admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{}", self.name),
            None => self.admin_url.clone(),
        }
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (admin_url, ident) = (self.admin_url.clone(), quote_ident(&self.name));
        // Its own thread and runtime: drop may run inside or outside an async context.
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let (client, conn) = tokio_postgres::connect(&admin_url, NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                let driver = tokio::spawn(conn);
                // One statement a call: a multi-statement string runs as one transaction
                // block, and DROP DATABASE refuses to run inside one.
                for sql in [
                    format!("DROP DATABASE IF EXISTS {ident} WITH (FORCE)"),
                    format!("DROP ROLE IF EXISTS {ident}"),
                ] {
                    client.batch_execute(&sql).await.map_err(|e| {
                        e.as_db_error()
                            .map_or_else(|| e.to_string(), |d| d.message().to_owned())
                    })?;
                }
                drop(client);
                let _ = driver.await;
                Ok(())
            })
        })
        .join();
        if let Ok(Err(e)) | Err(e) = dropped.map_err(|_| "panicked".to_owned()) {
            eprintln!("scratch database {} not dropped: {e}", self.name);
        }
    }
}
