//! The cloud's SQLite backend: one file, one writing connection behind a mutex (SQLite has one
//! writer anyway) and read connections beside it, WAL and `synchronous=FULL` as everywhere in
//! rollcall.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use parking_lot::Mutex;

use rusqlite::Connection;

use crate::server::store::{StoreError, schema::SQLITE};
use rollcall_service::sqlite::{open_migrated, open_reader};

/// The writing connection.
pub struct SqliteStore {
    pub(crate) conn: Connection,
}

/// Read connections kept open between reads (more are opened while more reads run at once).
const IDLE_READERS: usize = 4;

/// Prepared statements each connection keeps: more than the store's distinct statements, so a
/// busy writer does not evict a push's statements between pushes (rusqlite keeps 16).
const STATEMENT_CACHE: usize = 256;

/// The SQLite backend's connections: the one writer (SQLite has one anyway) behind a mutex,
/// and read connections beside it, so that a list does not wait for an ingest — in WAL mode a
/// reader sees the last commit while a write transaction is under way.
#[derive(Clone)]
pub struct SqliteHandle {
    pub(crate) writer: Arc<Mutex<SqliteStore>>,
    readers: Arc<Readers>,
    /// Counts the commits that enqueued jobs: the workers of this process watch it.
    pub(crate) wake: crate::server::jobs::wake::Wake,
    /// The tenants whose stream got new messages: this process's real-time hub watches it.
    pub(crate) stream: crate::server::realtime::wake::StreamWake,
}

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl SqliteHandle {
    /// Opens (creating and migrating) the writer; readers open as reads need them.
    pub fn open(path: PathBuf) -> Result<Self, StoreError> {
        let writer = SqliteStore::open(&path)?;
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(Readers {
                path,
                idle: Mutex::new(Vec::new()),
            }),
            wake: crate::server::jobs::wake::new_wake(),
            stream: crate::server::realtime::wake::StreamWake::default(),
        })
    }

    /// Runs `f` on the writer's connection, off the async threads.
    pub(crate) async fn on_writer<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || f(&mut writer.lock().conn))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `f` on a read-only connection, off the async threads; it never waits for the
    /// writer.
    pub(crate) async fn on_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let idle = readers.idle.lock().pop();
            let mut conn = match idle {
                Some(conn) => conn,
                None => {
                    let conn = open_reader(&readers.path).map_err(|e| StoreError::Open {
                        path: readers.path.display().to_string(),
                        source: e.into(),
                    })?;
                    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                    conn
                }
            };
            let out = f(&mut conn);
            let mut idle = readers.idle.lock();
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = open_migrated(path, SQLITE.sql).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Self { conn })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::server::{
        attendance::query::{EventFilter, PageStart},
        store::{Backend, Store},
    };

    #[tokio::test]
    async fn reopening_keeps_data_and_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = Backend::Sqlite(dir.path().join("c.sqlite"));
        {
            let store = Store::open(&backend).await.expect("open");
            store.ensure_tenant("acme", "Acme").await.expect("tenant");
        }
        let store = Store::open(&backend).await.expect("reopen");
        let t = store
            .ensure_tenant("acme", "other name")
            .await
            .expect("tenant");
        assert_eq!((t.id, t.name.as_str()), (1, "Acme"));
    }

    #[tokio::test]
    async fn a_version_2_database_is_migrated_with_its_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.sqlite");
        {
            let conn = open_migrated(&path, &SQLITE.sql[..2]).expect("v2");
            conn.execute_batch(
                "INSERT INTO tenants (slug, created_ms) VALUES ('acme', 1);
                 INSERT INTO nodes (id, tenant_id, site_id, token_sha256, created_ms) VALUES ('n1', 1, 'hq', 'h', 1);
                 INSERT INTO events VALUES ('01HZZZZZZZZZZZZZZZZZZZZZZA', 1, 'n1', 'hq', 1, NULL, 'granted', 5, 6,
                   '{\"id\":\"01HZZZZZZZZZZZZZZZZZZZZZZA\",\"seq\":1,\"site_id\":\"hq\",\"person_id\":null,\"decision\":\"granted\",\"similarity\":null,\"risk_score\":0.0,\"reasons\":[],\"position\":null,\"node_time_ms\":5}');",
            )
            .expect("v2 rows");
        }
        let store = Store::open(&Backend::Sqlite(path)).await.expect("migrate");
        let acme = store.tenant("acme").await.expect("q").expect("kept");
        assert_eq!(acme.name, "acme");
        let scope = acme.scope().expect("active");
        let events = store
            .events(&scope, EventFilter::default(), PageStart::Offset(0), 10)
            .await
            .expect("events");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].received_ms, 6);
    }
}
