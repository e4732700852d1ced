//! The cloud's PostgreSQL backend: a connection pool, migrations at start-up under an advisory
//! lock (several replicas may start at once), and row-level security on every tenant-owned table.
//! Each transaction that touches tenant rows first sets `rollcall.tenant_id` (transaction-local),
//! and the policies compare every row's `tenant_id` with it; the server refuses to run as a
//! role that could bypass them.

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Transaction};
use tokio_postgres::NoTls;

use super::{
    NodeRow, StoreError, TenantScope,
    audit::{self, Audit, AuditEntry, with_ack},
    decode_event, encode_event,
    events_query::{EventFilter, PageStart},
    ingest,
    schema::{POSTGRES, PROTECT_TENANT_TABLES, TENANT_TABLES, tenant_tables_array},
};
use rollcall_protocol::wire::{AttendanceEvent, PushAck, PushBatch, StoredEvent};
use rollcall_service::clock::now_ms;

/// Serialises migrations between replicas that start together.
const MIGRATION_LOCK: i64 = 0x726f_6c6c_6361_6c6c; // "rollcall"

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

fn pool_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Pool(e.to_string())
}

impl PgStore {
    pub async fn open(url: &str, migrate_url: Option<&str>) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url.parse()?;
        let app_role = config.get_user().map(str::to_owned);
        if let Some(migrate_url) = migrate_url {
            let (mut client, conn) = tokio_postgres::connect(migrate_url, NoTls).await?;
            let driver = tokio::spawn(conn);
            let result = migrate(&mut client, app_role.as_deref()).await;
            drop(client);
            let _ = driver.await;
            result?;
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .build()
            .map_err(pool_err)?;
        let store = Self { pool };
        let mut client = store.client().await?;
        let row = client
            .query_one(
                "SELECT current_user::text, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .await?;
        if row.get::<_, bool>(1) {
            return Err(StoreError::BypassesRls { role: row.get(0) });
        }
        if migrate_url.is_none() {
            migrate(&mut client, None).await?;
        }
        for table in TENANT_TABLES {
            let protected: bool = client
                .query_one(
                    "SELECT coalesce((SELECT c.relrowsecurity AND c.relforcerowsecurity
                                        AND EXISTS (SELECT 1 FROM pg_policies p
                                                    WHERE p.schemaname = n.nspname AND p.tablename = c.relname)
                                      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                      WHERE c.relname = $1 AND n.nspname = current_schema()), false)",
                    &[table],
                )
                .await?
                .get(0);
            if !protected {
                return Err(StoreError::Unprotected {
                    table: (*table).to_owned(),
                });
            }
        }
        Ok(store)
    }

    pub(super) async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_err)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.query_one("SELECT 1", &[]).await?;
        Ok(())
    }

    pub async fn register_node(
        &self,
        scope: &TenantScope,
        node_id: &str,
        site_id: &str,
        token_sha256: &str,
        replaces: Option<&str>,
        audit: &Audit,
    ) -> Result<(), StoreError> {
        use super::node_handover::{MOVES, OLD, RETIRE, check};
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let watermark = match replaces {
            Some(old) => {
                // Locked: the old node's pushes wait for the handover, then fail to authenticate.
                let found = tx
                    .query_opt(&format!("{OLD} FOR UPDATE"), &[&scope.id, &old])
                    .await?
                    .map(|r| (r.get(0), r.get(1)));
                check(old, site_id, found)?
            }
            None => 0,
        };
        tx.execute(
            "INSERT INTO nodes (id, tenant_id, site_id, token_sha256, created_ms, watermark) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&node_id, &scope.id, &site_id, &token_sha256, &now_ms(), &watermark],
        )
        .await?;
        if let Some(old) = replaces {
            for sql in MOVES {
                tx.execute(*sql, &[&scope.id, &old, &node_id]).await?;
            }
            tx.execute(RETIRE, &[&scope.id, &old, &now_ms()]).await?;
        }
        append_audit(&tx, scope.id, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn ingest(
        &self,
        scope: &TenantScope,
        node: &NodeRow,
        batch: &PushBatch,
        master: Option<&crate::server::sealing::MasterKey>,
        audit: &Audit,
    ) -> Result<PushAck, StoreError> {
        let events = &batch.events;
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let received = now_ms();
        // One push per node at a time: a retried request racing its original waits here and
        // then sees the first one's rows as duplicates. The node's row stays locked until
        // commit, so concurrent pushes also move its watermark in turn.
        let lock = tx
            .prepare_cached("SELECT watermark FROM nodes WHERE id = $1 FOR UPDATE")
            .await?;
        let watermark: i64 = tx.query_one(&lock, &[&node.id]).await?.get(0);
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let seqs: Vec<i64> = events
            .iter()
            .map(|e| i64::try_from(e.seq).unwrap_or(i64::MAX))
            .collect();
        let mut existing = ingest::Existing::default();
        // This node's rows under the batch's sequence numbers: one range scan when the batch
        // is about contiguous (the usual case, and empty for new events).
        let (lo, hi) = (
            seqs.iter().copied().min().unwrap_or(0),
            seqs.iter().copied().max().unwrap_or(0),
        );
        let seq_set: std::collections::HashSet<i64> = seqs.iter().copied().collect();
        let rows = if hi.saturating_sub(lo) <= 4 * seqs.len() as i64 {
            let by_range = tx
                .prepare_cached(
                    "SELECT seq, id FROM events WHERE node_id = $1 AND seq BETWEEN $2 AND $3",
                )
                .await?;
            tx.query(&by_range, &[&node.id, &lo, &hi]).await?
        } else {
            tx.query(
                "SELECT seq, id FROM events WHERE node_id = $1 AND seq = ANY($2)",
                &[&node.id, &seqs],
            )
            .await?
        };
        for r in rows {
            let (seq, id): (i64, String) = (r.get(0), r.get(1));
            if seq_set.contains(&seq) {
                // Also known by id: a batch pushed again is all duplicates, no second look.
                existing
                    .by_id
                    .insert(id.clone(), (node.id.clone(), seq.unsigned_abs()));
                existing.by_seq.insert(seq.unsigned_abs(), id);
            }
        }
        // Optimistically, no id of the batch is stored yet: insert. If a unique key refuses a
        // row, its id is stored already (a duplicate under another sequence number, or another
        // node's): undo, look the ids up and judge the batch again.
        tx.batch_execute("SAVEPOINT ingest").await?;
        let mut plan = ingest::plan(node, events, &existing);
        let first = insert_events(&tx, scope, node, received, &plan.insert).await;
        if let Err(e) = first {
            let collided = matches!(&e, StoreError::Postgres(pg)
                if pg.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION));
            if !collided {
                return Err(e);
            }
            tx.batch_execute("ROLLBACK TO SAVEPOINT ingest").await?;
            for r in tx
                .query(
                    "SELECT id, node_id, seq FROM events WHERE tenant_id = $1 AND id = ANY($2)",
                    &[&scope.id, &ids],
                )
                .await?
            {
                existing
                    .by_id
                    .insert(r.get(0), (r.get(1), r.get::<_, i64>(2).unsigned_abs()));
            }
            plan = ingest::plan(node, events, &existing);
            insert_events(&tx, scope, node, received, &plan.insert).await?;
        }
        for (seq, e, reason) in &plan.settled_rejections {
            tx.execute(
                "INSERT INTO sync_rejections (tenant_id, node_id, seq, event_id, reason, at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[
                    &scope.id,
                    &node.id,
                    &i64::try_from(*seq).unwrap_or(i64::MAX),
                    &e.id,
                    reason,
                    &received,
                ],
            )
            .await?;
        }
        let above = tx
            .prepare_cached(
                "SELECT seq FROM events WHERE node_id = $1 AND seq > $2
                 UNION SELECT seq FROM sync_rejections WHERE node_id = $1 AND seq > $2
                 ORDER BY seq LIMIT $3",
            )
            .await?;
        let above: Vec<u64> = tx
            .query(
                &above,
                &[
                    &node.id,
                    &watermark,
                    &i64::from(ingest::SCAN_ABOVE_WATERMARK),
                ],
            )
            .await?
            .iter()
            .map(|r| r.get::<_, i64>(0).unsigned_abs())
            .collect();
        let (watermark, missing) = ingest::advance(watermark.unsigned_abs(), &above);
        let seen = tx
            .prepare_cached(
                "UPDATE nodes SET last_seen_ms = $1, watermark = $3, lag_ms = coalesce($4, lag_ms)
                 WHERE id = $2",
            )
            .await?;
        tx.execute(
            &seen,
            &[
                &received,
                &node.id,
                &i64::try_from(watermark).unwrap_or(i64::MAX),
                &ingest::lag_ms(&plan, received),
            ],
        )
        .await?;
        plan.ack.watermark = watermark;
        plan.ack.missing = missing;
        Self::ingest_records(&tx, scope, node, batch, received, &mut plan.ack).await?;
        if let (Some(master), false) = (master, batch.people.is_empty()) {
            let dek = Self::data_key_in(&tx, scope, master).await?;
            Self::ingest_people(&tx, scope, node, &batch.people, &dek, &mut plan.ack).await?;
        }
        append_audit(&tx, scope.id, &with_ack(audit, &plan.ack)).await?;
        tx.commit().await?;
        Ok(plan.ack)
    }

    pub async fn audit_entries(
        &self,
        scope: &TenantScope,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let rows = tx
            .query(
                "SELECT id, at_ms, actor, action, target, source, request_id, detail FROM audit_log
                 WHERE tenant_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
                &[&scope.id, &before, &i64::from(limit)],
            )
            .await?;
        tx.commit().await?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                id: r.get(0),
                at_ms: r.get(1),
                actor: r.get(2),
                action: r.get(3),
                target: r.get(4),
                source: r.get(5),
                request_id: r.get(6),
                detail: audit::parse_detail(r.get::<_, &str>(7)),
            })
            .collect())
    }

    pub async fn events(
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
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        // The order's column and direction are fixed strings chosen by `Sort`.
        let (col, dir, after_op) = (f.sort.column(), f.sort.direction(), f.sort.after());
        let rows = tx
            .query(
                &format!(
                    "SELECT id, node_id, received_ms, body FROM events
                     WHERE tenant_id = $1 AND ($2::text IS NULL OR site_id = $2)
                       AND ($3::text IS NULL OR person_id = $3) AND ($4::text IS NULL OR decision = $4)
                       AND ($5::bigint IS NULL OR node_time_ms >= $5) AND ($6::bigint IS NULL OR node_time_ms < $6)
                       AND ($7::bigint IS NULL OR (tenant_id, {col}, id) {after_op} ($1, $7, $8::text))
                     ORDER BY {col} {dir}, id {dir} LIMIT $9 OFFSET $10"
                ),
                &[
                    &scope.id,
                    &f.site_id,
                    &f.person_id,
                    &f.decision.map(|d| d.as_str()),
                    &f.from_ms,
                    &f.to_ms,
                    &after.map(|c| c.key),
                    &after.map(|c| c.id.as_str()),
                    &i64::from(limit),
                    &i64::from(offset),
                ],
            )
            .await?;
        tx.commit().await?;
        rows.into_iter()
            .map(|r| decode_event(r.get(0), r.get(1), r.get(2), r.get::<_, &str>(3)))
            .collect()
    }

    pub async fn event(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let row = tx
            .query_opt(
                "SELECT id, node_id, received_ms, body FROM events WHERE tenant_id = $1 AND id = $2",
                &[&scope.id, &id],
            )
            .await?;
        tx.commit().await?;
        row.map(|r| decode_event(r.get(0), r.get(1), r.get(2), r.get::<_, &str>(3)))
            .transpose()
    }
}

/// The accepted events of a batch as one array per column, for a single `unnest` insert.
#[derive(Default)]
struct InsertColumns {
    id: Vec<String>,
    seq: Vec<i64>,
    person_id: Vec<Option<String>>,
    decision: Vec<&'static str>,
    node_time_ms: Vec<i64>,
    body: Vec<String>,
}

impl InsertColumns {
    fn push(&mut self, e: &AttendanceEvent) -> Result<(), StoreError> {
        self.id.push(e.id.clone());
        self.seq.push(i64::try_from(e.seq).unwrap_or(i64::MAX));
        self.person_id.push(e.person_id.clone());
        self.decision.push(e.decision.as_str());
        self.node_time_ms.push(e.node_time_ms);
        self.body.push(encode_event(e)?);
        Ok(())
    }
}

impl PgStore {
    /// Runs one read in the tenant's scope.
    pub(super) async fn query_scoped(
        &self,
        scope: &TenantScope,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let rows = tx.query(sql, params).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Runs one statement in the tenant's scope, in its own transaction; the rows changed.
    pub(super) async fn execute_scoped(
        &self,
        scope: &TenantScope,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let n = tx.execute(sql, params).await?;
        tx.commit().await?;
        Ok(n)
    }
}

/// Inserts pushed events in one statement (a unique key's refusal fails it whole).
async fn insert_events(
    tx: &Transaction<'_>,
    scope: &TenantScope,
    node: &NodeRow,
    received: i64,
    events: &[&AttendanceEvent],
) -> Result<u64, StoreError> {
    if events.is_empty() {
        return Ok(0);
    }
    let mut cols = InsertColumns::default();
    for e in events {
        cols.push(e)?;
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO events (id, tenant_id, node_id, site_id, seq, person_id, decision, node_time_ms, received_ms, body)
             SELECT u.id, $1, $2, $3, u.seq, u.person_id, u.decision, u.node_time_ms, $4, u.body
             FROM unnest($5::text[], $6::bigint[], $7::text[], $8::text[], $9::bigint[], $10::text[])
                  AS u(id, seq, person_id, decision, node_time_ms, body)",
        )
        .await?;
    Ok(tx
        .execute(
            &insert,
            &[
                &scope.id,
                &node.id,
                &node.site_id,
                &received,
                &cols.id,
                &cols.seq,
                &cols.person_id,
                &cols.decision,
                &cols.node_time_ms,
                &cols.body,
            ],
        )
        .await?)
}

/// Appends an audit entry within the caller's transaction (already scoped to `tenant_id`): the
/// statement of [`Exec::append_audit`].
///
/// [`Exec::append_audit`]: super::exec::Exec::append_audit
pub(super) async fn append_audit(
    tx: &Transaction<'_>,
    tenant_id: i64,
    a: &Audit,
) -> Result<(), StoreError> {
    use super::exec::Exec as _;
    super::exec::PgTx::on(tx, tenant_id).append_audit(a).await
}

/// Points the transaction's row-level security at one tenant.
pub(super) async fn enter_tenant(tx: &Transaction<'_>, tenant_id: i64) -> Result<(), StoreError> {
    let set = tx
        .prepare_cached("SELECT set_config('rollcall.tenant_id', $1, true)")
        .await?;
    tx.execute(&set, &[&tenant_id.to_string()]).await?;
    Ok(())
}

/// Takes the transaction-scoped advisory lock `lock` of one tenant: the tenant's writers of
/// one numbered sequence (the people feed, card revocations) commit in turn.
pub(super) async fn lock_tenant(
    tx: &tokio_postgres::Transaction<'_>,
    lock: i32,
    tenant_id: i64,
) -> Result<(), StoreError> {
    let key = i32::try_from(tenant_id).unwrap_or(i32::MAX);
    tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&lock, &key])
        .await?;
    Ok(())
}

/// A transaction whose row-level security sees only `scope`'s rows.
pub(super) async fn scoped<'a>(
    client: &'a mut Object,
    scope: &TenantScope,
) -> Result<Transaction<'a>, StoreError> {
    let tx = client.transaction().await?;
    enter_tenant(&tx, scope.id).await?;
    Ok(tx)
}

/// Brings the schema up to date in one transaction, under an advisory lock; grants the app role
/// (when it is not the one migrating) what it needs on the tables.
async fn migrate(
    client: &mut tokio_postgres::Client,
    grant_to: Option<&str>,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS rollcall_schema (version INT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
    )
    .await?;
    let version: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM rollcall_schema", &[])
        .await?
        .get(0);
    if version as usize > POSTGRES.sql.len() {
        return Err(StoreError::TooNew {
            found: version,
            known: POSTGRES.sql.len(),
        });
    }
    for (i, sql) in POSTGRES
        .sql
        .iter()
        .enumerate()
        .skip(version.max(0) as usize)
    {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO rollcall_schema (version, applied_ms) VALUES ($1, $2)",
            &[&(i as i32 + 1), &now_ms()],
        )
        .await?;
        tracing::info!(version = i + 1, "PostgreSQL schema migrated");
    }
    if (version.max(0) as usize) < POSTGRES.sql.len() {
        tx.execute(
            "SELECT set_config('rollcall.tenant_tables', $1, true)",
            &[&tenant_tables_array()],
        )
        .await?;
        tx.batch_execute(PROTECT_TENANT_TABLES).await?;
    }
    if let Some(role) = grant_to {
        let current: String = tx.query_one("SELECT current_user::text", &[]).await?.get(0);
        if current != role {
            let role = quote_ident(role);
            tx.batch_execute(&format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
                 GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};"
            ))
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// A PostgreSQL identifier, quoted.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
