//! The cloud's SQLite backend: one file, one writing connection behind a mutex (SQLite has one
//! writer anyway) and read connections beside it, WAL and `synchronous=FULL` as everywhere in
//! rollcall.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use parking_lot::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    NodeRow, StoreError, TenantScope,
    audit::{self, Audit, AuditEntry, with_ack},
    decode_event, encode_event,
    events_query::{EventFilter, PageStart},
    ingest,
    schema::SQLITE,
};
use rollcall_protocol::wire::{PushAck, PushBatch, StoredEvent};
use rollcall_service::{
    clock::now_ms,
    sqlite::{open_migrated, open_reader},
};

/// Appends an audit entry within the caller's transaction.
/// Appends an audit entry in the caller's transaction (the statement of [`Exec::append_audit`]).
///
/// [`Exec::append_audit`]: super::exec::Exec::append_audit
pub(super) fn append_audit(conn: &Connection, tenant_id: i64, a: &Audit) -> Result<(), StoreError> {
    use super::exec::Exec as _;
    super::exec::poll_now(super::exec::SqliteTx::on(conn, tenant_id).append_audit(a))
}

pub struct SqliteStore {
    pub(super) conn: Connection,
}

/// Read connections kept open between reads (more are opened while more reads run at once).
const IDLE_READERS: usize = 4;

/// The SQLite backend's connections: the one writer (SQLite has one anyway) behind a mutex,
/// and read connections beside it, so that a list does not wait for an ingest — in WAL mode a
/// reader sees the last commit while a write transaction is under way.
#[derive(Clone)]
pub struct SqliteHandle {
    pub(super) writer: Arc<Mutex<SqliteStore>>,
    readers: Arc<Readers>,
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
        })
    }

    /// Runs `f` on the writer, off the async threads.
    pub(super) async fn on_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut SqliteStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || f(&mut writer.lock()))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `f` on the writer's connection, off the async threads.
    pub(super) async fn on_writer<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.on_store(move |s| f(&mut s.conn)).await
    }

    /// Runs `f` on a read-only connection, off the async threads; it never waits for the
    /// writer.
    pub(super) async fn on_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let idle = readers.idle.lock().pop();
            let mut conn = match idle {
                Some(conn) => conn,
                None => open_reader(&readers.path).map_err(|e| StoreError::Open {
                    path: readers.path.display().to_string(),
                    source: e.into(),
                })?,
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
        Ok(Self { conn })
    }

    pub fn ping(&self) -> Result<(), StoreError> {
        self.conn.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }

    pub fn register_node(
        &mut self,
        scope: &TenantScope,
        node_id: &str,
        site_id: &str,
        token_sha256: &str,
        replaces: Option<&str>,
        audit: &Audit,
    ) -> Result<(), StoreError> {
        use super::node_handover::{MOVES, OLD, RETIRE, check};
        let tx = self.conn.transaction()?;
        let watermark = match replaces {
            Some(old) => {
                let found = tx
                    .query_row(
                        &super::exec::sqlite_placeholders(OLD),
                        params![scope.id, old],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                check(old, site_id, found)?
            }
            None => 0,
        };
        tx.execute(
            "INSERT INTO nodes (id, tenant_id, site_id, token_sha256, created_ms, watermark) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![node_id, scope.id, site_id, token_sha256, now_ms(), watermark],
        )?;
        if let Some(old) = replaces {
            for sql in MOVES {
                tx.execute(
                    &super::exec::sqlite_placeholders(sql),
                    params![scope.id, old, node_id],
                )?;
            }
            tx.execute(
                &super::exec::sqlite_placeholders(RETIRE),
                params![scope.id, old, now_ms()],
            )?;
        }
        append_audit(&tx, scope.id, audit)?;
        tx.commit()?;
        Ok(())
    }

    pub fn ingest(
        &mut self,
        scope: &TenantScope,
        node: &NodeRow,
        batch: &PushBatch,
        master: Option<&crate::server::sealing::MasterKey>,
        audit: &Audit,
    ) -> Result<PushAck, StoreError> {
        let events = &batch.events;
        // Templates of people pushed by the node are sealed with the tenant's data key.
        let dek = match master {
            Some(master) if !batch.people.is_empty() => Some(self.data_key(scope, master)?),
            _ => None,
        };
        let tx = self.conn.transaction()?;
        let received = now_ms();
        let mut existing = ingest::Existing::default();
        {
            let mut by_id = tx.prepare_cached(
                "SELECT node_id, seq FROM events WHERE tenant_id = ?1 AND id = ?2",
            )?;
            let mut by_seq =
                tx.prepare_cached("SELECT id FROM events WHERE node_id = ?1 AND seq = ?2")?;
            for e in events {
                if let Some((n, s)) = by_id
                    .query_row(params![scope.id, e.id], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                    })
                    .optional()?
                {
                    existing.by_id.insert(e.id.clone(), (n, s.unsigned_abs()));
                }
                let seq = i64::try_from(e.seq).unwrap_or(i64::MAX);
                if let Some(id) = by_seq
                    .query_row(params![node.id, seq], |r| r.get::<_, String>(0))
                    .optional()?
                {
                    existing.by_seq.insert(e.seq, id);
                }
            }
        }
        let plan = ingest::plan(node, events, &existing);
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (id, tenant_id, node_id, site_id, seq, person_id, decision, node_time_ms, received_ms, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for e in &plan.insert {
                insert.execute(params![
                    e.id,
                    scope.id,
                    node.id,
                    e.site_id,
                    e.seq as i64,
                    e.person_id,
                    e.decision.as_str(),
                    e.node_time_ms,
                    received,
                    encode_event(e)?
                ])?;
            }
        }
        {
            let mut settle = tx.prepare_cached(
                "INSERT INTO sync_rejections (tenant_id, node_id, seq, event_id, reason, at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            )?;
            for (seq, e, reason) in &plan.settled_rejections {
                settle.execute(params![
                    scope.id,
                    node.id,
                    i64::try_from(*seq).unwrap_or(i64::MAX),
                    e.id,
                    reason,
                    received
                ])?;
            }
        }
        let watermark: i64 = tx.query_row(
            "SELECT watermark FROM nodes WHERE id = ?1 AND tenant_id = ?2",
            params![node.id, scope.id],
            |r| r.get(0),
        )?;
        let above: Vec<u64> = {
            let mut stmt = tx.prepare_cached(
                "SELECT seq FROM events WHERE node_id = ?1 AND seq > ?2
                 UNION SELECT seq FROM sync_rejections WHERE node_id = ?1 AND seq > ?2
                 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![node.id, watermark, ingest::SCAN_ABOVE_WATERMARK],
                |r| r.get::<_, i64>(0),
            )?;
            rows.map(|r| r.map(i64::unsigned_abs))
                .collect::<Result<_, _>>()?
        };
        let (watermark, missing) = ingest::advance(watermark.unsigned_abs(), &above);
        tx.execute(
            "UPDATE nodes SET last_seen_ms = ?1, watermark = ?4, lag_ms = coalesce(?5, lag_ms)
             WHERE id = ?2 AND tenant_id = ?3",
            params![
                received,
                node.id,
                scope.id,
                i64::try_from(watermark).unwrap_or(i64::MAX),
                ingest::lag_ms(&plan, received)
            ],
        )?;
        let mut plan = plan;
        plan.ack.watermark = watermark;
        plan.ack.missing = missing;
        Self::ingest_records(&tx, scope, node, batch, received, &mut plan.ack)?;
        if let Some(dek) = &dek {
            Self::ingest_people(&tx, scope, node, &batch.people, dek, &mut plan.ack)?;
        }
        append_audit(&tx, scope.id, &with_ack(audit, &plan.ack))?;
        tx.commit()?;
        Ok(plan.ack)
    }

    pub fn audit_entries(
        &self,
        scope: &TenantScope,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, at_ms, actor, action, target, source, request_id, detail FROM audit_log
             WHERE tenant_id = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![scope.id, before, limit], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                at_ms: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                source: r.get(5)?,
                request_id: r.get(6)?,
                detail: audit::parse_detail(&r.get::<_, String>(7)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn events(
        &self,
        scope: &TenantScope,
        f: &EventFilter,
        start: &PageStart,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (offset, after) = match start {
            PageStart::Offset(n) => (*n, None),
            PageStart::After(c) => (0, Some(c)),
        };
        // The order's column and direction are fixed strings chosen by `Sort`.
        let (col, dir, after_op) = (f.sort.column(), f.sort.direction(), f.sort.after());
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE tenant_id = ?1 AND (?2 IS NULL OR site_id = ?2) AND (?3 IS NULL OR person_id = ?3)
               AND (?4 IS NULL OR decision = ?4) AND (?5 IS NULL OR node_time_ms >= ?5)
               AND (?6 IS NULL OR node_time_ms < ?6)
               AND (?7 IS NULL OR (tenant_id, {col}, id) {after_op} (?1, ?7, ?8))
             ORDER BY {col} {dir}, id {dir} LIMIT ?9 OFFSET ?10"
        ))?;
        let rows = stmt.query_map(
            params![
                scope.id,
                f.site_id,
                f.person_id,
                f.decision.map(|d| d.as_str()),
                f.from_ms,
                f.to_ms,
                after.map(|c| c.key),
                after.map(|c| c.id.as_str()),
                limit,
                offset
            ],
            event_columns,
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (id, node_id, received_ms, body) = row?;
            out.push(decode_event(id, node_id, received_ms, &body)?);
        }
        Ok(out)
    }

    pub fn event(&self, scope: &TenantScope, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = ?1 AND id = ?2"),
                params![scope.id, id],
                event_columns,
            )
            .optional()?;
        row.map(|(id, node_id, received_ms, body)| decode_event(id, node_id, received_ms, &body))
            .transpose()
    }
}

const EVENT_COLUMNS: &str = "id, node_id, received_ms, body";

fn event_columns(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, i64, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::server::store::{Backend, Store};

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
