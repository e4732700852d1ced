//! The cloud's storage, on two backends with one schema and one test suite: SQLite (one file,
//! the embedded default) and PostgreSQL (several replicas on one database, tenant isolation also
//! enforced by row-level security).
//!
//! Every tenant-owned row carries `tenant_id`, and every method that touches one takes a
//! [`TenantScope`]. A scope can only be had from a [`Tenant`] this module loaded, and only while
//! that tenant is active: a query that is not scoped to a resolved tenant does not compile.

mod entry;
pub(crate) mod exec;
pub(crate) mod postgres;
pub mod schema;
mod sqlite;
#[cfg(test)]
pub(crate) mod suite;

use std::path::PathBuf;

use serde::Serialize;

pub use crate::server::tenants::store::{Tenant, TenantScope, TenantStatus};
pub use postgres::PgStore;
use rollcall_protocol::wire::{AttendanceEvent, StoredEvent};
pub use sqlite::{SqliteHandle, SqliteStore};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rollcall_service::sqlite::OpenError,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("PostgreSQL: {}", pg_detail(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("PostgreSQL connection pool: {0}")]
    Pool(String),
    #[error(
        "PostgreSQL role `{role}` can bypass row-level security (superuser or BYPASSRLS): \
         connect as a role without them, so that tenant isolation is enforced by the database too"
    )]
    BypassesRls { role: String },
    #[error(
        "the PostgreSQL schema is at version {found}, newer than this program knows ({known}): \
         refusing to touch it (upgrade the program)"
    )]
    TooNew { found: i32, known: usize },
    /// A request a domain refuses, as one of its documented problem types.
    #[error("{0}")]
    Refused(Box<dyn Refused>),
    /// Rows the transaction just wrote are not there: a bug or a schema altered underneath.
    #[error("inconsistent database: {0}")]
    Inconsistent(String),
    #[error(transparent)]
    Seal(#[from] crate::server::sealing::SealError),
    #[error(
        "PostgreSQL table `{table}` is not protected by a forced row-level security policy: \
         the schema was altered outside rollcall; refusing to serve"
    )]
    Unprotected { table: String },
    #[error("the tenant's signing key cannot be read or made")]
    Key,
    #[error("stored event {id} is unreadable: {source}")]
    Corrupt {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("database task failed: {0}")]
    Task(String),
    /// A job's write came with a lease token that no longer holds (the job was cancelled or
    /// given to another worker): the transaction was rolled back.
    #[error("job {0}: its lease was lost, so this attempt's writes were undone")]
    LeaseLost(i64),
}

/// A domain's refusal: an error that is one of the domain's documented problem types (a person
/// that exists, an unknown site, an overlapping shift), never a database failure.
pub trait Refused: std::error::Error + Send + Sync + 'static {
    fn problem_type(&self) -> &'static rollcall_service::problem::ProblemType;
}

/// Makes each listed domain error a [`StoreError::Refused`].
macro_rules! refused {
    ($($e:ty),* $(,)?) => {$(
        impl From<$e> for StoreError {
            fn from(e: $e) -> Self {
                StoreError::Refused(Box::new(e))
            }
        }
    )*};
}
refused!(
    crate::server::tenants::store::TenantError,
    crate::server::users::store::UserError,
    crate::server::sites::store::SiteError,
    crate::server::nodes::store::NodeError,
    crate::server::people::store::PeopleError,
    crate::server::jobs::store::JobError,
    crate::server::jobs::schedule::ScheduleError,
);

/// The driver's own text is only "db error": say what the server said, or what failed below.
fn pg_detail(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Where the cloud keeps its data.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    /// One SQLite file, created if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database. `url` is what the server runs as (a role that cannot bypass
    /// row-level security); `migrate_url`, if given, a role that owns the schema and runs the
    /// migrations at start-up (otherwise `url`'s role does).
    Postgres {
        url: String,
        migrate_url: Option<String>,
    },
}

impl Backend {
    /// `postgres://…` or `postgresql://…` is PostgreSQL; anything else a SQLite file path
    /// (`sqlite:` prefix optional).
    pub fn parse(database: &str, migrate_url: Option<String>) -> Self {
        if database.starts_with("postgres://") || database.starts_with("postgresql://") {
            Backend::Postgres {
                url: database.to_owned(),
                migrate_url,
            }
        } else {
            Backend::Sqlite(PathBuf::from(
                database.strip_prefix("sqlite:").unwrap_or(database),
            ))
        }
    }

    /// For logs: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite(path) => format!("sqlite:{}", path.display()),
            Backend::Postgres { url, .. } => redact_password(url),
        }
    }
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

/// A node as the admin API lists it (never its token).
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize)]
pub struct NodeInfo {
    pub id: String,
    pub site_id: String,
    pub created_ms: i64,
    pub last_seen_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<i64>,
    /// The cloud holds every event of this node with sequence numbers 1..=watermark.
    pub watermark: u64,
    /// How far behind the node was at its last push that brought events: receipt time minus
    /// the node time of the newest of them (a node offline for a day catches up with a lag of
    /// a day, then of seconds). Absent before its first events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_ms: Option<i64>,
}

/// A registered node, as authentication finds it.
#[derive(Debug, Clone)]
pub struct NodeRow {
    pub id: String,
    pub tenant_id: i64,
    pub site_id: String,
}

/// The cloud's storage: cheap to clone, safe to share between requests.
#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteHandle),
    Postgres(PgStore),
}

impl Store {
    /// The marks of tenants whose stream got new messages (this process's hub watches them).
    pub(crate) fn stream_wake(&self) -> crate::server::realtime::wake::StreamWake {
        match self {
            Store::Sqlite(s) => s.stream.clone(),
            Store::Postgres(p) => p.stream.clone(),
        }
    }

    pub async fn open(backend: &Backend) -> Result<Self, StoreError> {
        match backend {
            Backend::Sqlite(path) => {
                let path = path.clone();
                let store = tokio::task::spawn_blocking(move || SqliteHandle::open(path))
                    .await
                    .map_err(|e| StoreError::Task(e.to_string()))??;
                Ok(Store::Sqlite(store))
            }
            Backend::Postgres { url, migrate_url } => Ok(Store::Postgres(
                PgStore::open(url, migrate_url.as_deref()).await?,
            )),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Checks the database answers (for `/healthz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        exec::in_platform!(self, |tx| async {
            tx.query("SELECT 1", &[], |_| Ok(())).await?;
            Ok::<_, StoreError>(())
        })
    }
}

pub(crate) fn decode_event(
    id: String,
    node_id: String,
    received_ms: i64,
    body: &str,
) -> Result<StoredEvent, StoreError> {
    let event = serde_json::from_str(body).map_err(|source| StoreError::Corrupt { id, source })?;
    Ok(StoredEvent {
        event,
        node_id,
        received_ms,
    })
}

pub(crate) fn encode_event(e: &AttendanceEvent) -> Result<String, StoreError> {
    serde_json::to_string(e).map_err(|source| StoreError::Corrupt {
        id: e.id.clone(),
        source,
    })
}

/// Node `n1` of tenant 1 at site `hq`, for the tests.
#[cfg(test)]
pub(crate) fn test_node() -> NodeRow {
    NodeRow {
        id: "n1".into(),
        tenant_id: 1,
        site_id: "hq".into(),
    }
}

/// A granted event of site `site` for the tests.
#[cfg(test)]
pub(crate) fn test_event(id: &str, seq: u64, site: &str) -> AttendanceEvent {
    AttendanceEvent {
        id: id.into(),
        seq,
        site_id: site.into(),
        person_id: Some("p".into()),
        decision: rollcall_protocol::wire::Decision::Granted,
        similarity: Some(0.9),
        risk_score: 0.0,
        reasons: vec![],
        position: None,
        node_time_ms: 1_700_000_000_000 + seq as i64,
        card: None,
        hlc: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_told_by_the_url() {
        assert_eq!(
            Backend::parse("cloud.sqlite", None),
            Backend::Sqlite("cloud.sqlite".into())
        );
        assert_eq!(
            Backend::parse("sqlite:/var/x.db", None),
            Backend::Sqlite("/var/x.db".into())
        );
        assert!(matches!(
            Backend::parse("postgresql://u@h/db", None),
            Backend::Postgres { .. }
        ));
        assert_eq!(
            Backend::parse("postgres://app:s3cret@db:5432/rc", None).describe(),
            "postgres://app@db:5432/rc"
        );
    }
}
