//! The cloud's SQLite backend: one file, one connection behind a mutex (SQLite has one writer
//! anyway), WAL and `synchronous=FULL` as everywhere in rollcall.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Loaded, NodeInfo, NodeRow, StoreError, Tenant, TenantScope, TenantStatus,
    audit::{self, Audit, AuditEntry, with_ack},
    decode_event, encode_event,
    events_query::{EventFilter, PageStart},
    ingest, split_origins,
};
use rollcall_protocol::wire::{PushAck, PushBatch, StoredEvent};
use rollcall_service::{clock::now_ms, sqlite::open_migrated};

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tenants (
    id INTEGER PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_ms INTEGER NOT NULL
);
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    site_id TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER,
    last_seen_ms INTEGER
);
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    node_id TEXT NOT NULL REFERENCES nodes(id),
    site_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    person_id TEXT,
    decision TEXT NOT NULL,
    node_time_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (node_id, seq)
);
CREATE INDEX events_by_tenant_site ON events (tenant_id, site_id, node_time_ms);
"#,
    // Each tenant's Ed25519 key for node config bundles, and the last bundle serial per site.
    // The secret is stored as it is: protect the database file like the key it holds.
    "CREATE TABLE signing_keys (
        tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),
        secret BLOB NOT NULL CHECK (length(secret) = 32),
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE bundle_serials (
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        site_id TEXT NOT NULL,
        serial INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, site_id)
    );",
    // Tenants get a display name; events are keyed by (tenant, id), so one tenant's ids can
    // never collide with, or reveal, another's.
    "ALTER TABLE tenants ADD COLUMN name TEXT NOT NULL DEFAULT '';
    UPDATE tenants SET name = slug;
    CREATE TABLE events_v3 (
        id TEXT NOT NULL,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        node_id TEXT NOT NULL REFERENCES nodes(id),
        site_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        person_id TEXT,
        decision TEXT NOT NULL,
        node_time_ms INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (tenant_id, id),
        UNIQUE (node_id, seq)
    );
    INSERT INTO events_v3 (id, tenant_id, node_id, site_id, seq, person_id, decision, node_time_ms, received_ms, body)
        SELECT id, tenant_id, node_id, site_id, seq, person_id, decision, node_time_ms, received_ms, body FROM events;
    DROP TABLE events;
    ALTER TABLE events_v3 RENAME TO events;
    CREATE INDEX events_by_tenant_site ON events (tenant_id, site_id, node_time_ms);",
    // Users with roles, their refresh tokens (hashes only), and platform secrets (the access
    // token key). A refresh token's user is in its own tenant (composite foreign key).
    "CREATE TABLE users (
        id TEXT PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        email TEXT NOT NULL,
        display_name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'supervisor', 'guard', 'auditor')),
        password_hash TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        disabled_ms INTEGER,
        UNIQUE (tenant_id, email),
        UNIQUE (tenant_id, id)
    );
    CREATE TABLE refresh_tokens (
        token_sha256 TEXT PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        user_id TEXT NOT NULL,
        family TEXT NOT NULL,
        issued_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        used_ms INTEGER,
        revoked_ms INTEGER,
        FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
    );
    CREATE INDEX refresh_by_family ON refresh_tokens (tenant_id, family);
    CREATE INDEX refresh_by_user ON refresh_tokens (tenant_id, user_id);
    CREATE TABLE platform_secrets (
        name TEXT PRIMARY KEY,
        secret BLOB NOT NULL CHECK (length(secret) = 32),
        created_ms INTEGER NOT NULL
    );",
    // The audit trail, append-only.
    "CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        source TEXT,
        request_id TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX audit_by_tenant ON audit_log (tenant_id, id);
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;",
    // Newest-first listing of a tenant's events, and keyset paging on (node time, id).
    "CREATE INDEX events_by_tenant_time ON events (tenant_id, node_time_ms, id);",
    // Responses of requests sent with an Idempotency-Key (status NULL while the first runs).
    "CREATE TABLE idempotency_keys (
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        caller TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        status INTEGER,
        content_type TEXT,
        body BLOB,
        PRIMARY KEY (tenant_id, caller, key)
    );
    CREATE INDEX idempotency_by_age ON idempotency_keys (created_ms);",
    // Each tenant's CORS allow-list, one origin a line.
    "ALTER TABLE tenants ADD COLUMN cors_origins TEXT NOT NULL DEFAULT '';",
    "CREATE TABLE sites (
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        id TEXT NOT NULL,
        name TEXT NOT NULL,
        geofence TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, id)
    );",
    // Browser sessions (the session cookie); only the token's sha256.
    "CREATE TABLE browser_sessions (
        token_sha256 TEXT PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        user_id TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        revoked_ms INTEGER,
        FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
    );
    CREATE INDEX browser_sessions_by_user ON browser_sessions (tenant_id, user_id);",
    // People, their sites and shifts; face templates sealed with the tenant's data key.
    "CREATE TABLE people (
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        id TEXT NOT NULL,
        display_name TEXT NOT NULL,
        employee_ref TEXT,
        active INTEGER NOT NULL DEFAULT 1,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, id)
    );
    CREATE TABLE person_sites (
        tenant_id INTEGER NOT NULL,
        person_id TEXT NOT NULL,
        site_id TEXT NOT NULL,
        PRIMARY KEY (tenant_id, person_id, site_id),
        FOREIGN KEY (tenant_id, person_id) REFERENCES people (tenant_id, id),
        FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id)
    );
    CREATE INDEX person_sites_by_site ON person_sites (tenant_id, site_id);
    CREATE TABLE shifts (
        tenant_id INTEGER NOT NULL,
        id TEXT NOT NULL,
        person_id TEXT NOT NULL,
        site_id TEXT NOT NULL,
        starts_ms INTEGER NOT NULL,
        ends_ms INTEGER NOT NULL CHECK (ends_ms > starts_ms),
        note TEXT,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, id),
        FOREIGN KEY (tenant_id, person_id) REFERENCES people (tenant_id, id)
    );
    CREATE INDEX shifts_by_person ON shifts (tenant_id, person_id, starts_ms);
    CREATE INDEX shifts_by_site ON shifts (tenant_id, site_id, starts_ms);
    CREATE TABLE tenant_keys (
        tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),
        nonce BLOB NOT NULL,
        wrapped BLOB NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE face_templates (
        tenant_id INTEGER NOT NULL,
        id TEXT NOT NULL,
        person_id TEXT NOT NULL,
        model TEXT NOT NULL,
        dim INTEGER NOT NULL,
        nonce BLOB NOT NULL,
        sealed BLOB NOT NULL,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, id),
        FOREIGN KEY (tenant_id, person_id) REFERENCES people (tenant_id, id)
    );
    CREATE INDEX face_templates_by_person ON face_templates (tenant_id, person_id);",
    // Events listed by arrival (`sort=received_ms`), with keyset paging.
    "CREATE INDEX events_by_tenant_received ON events (tenant_id, received_ms, id);",
    // How far each node's sequence is held without a gap.
    "ALTER TABLE nodes ADD COLUMN watermark INTEGER NOT NULL DEFAULT 0;",
    // Sequence numbers of items the cloud refused (the node dead-letters them): settled, so
    // the watermark passes them.
    "CREATE TABLE sync_rejections (
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        node_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        PRIMARY KEY (node_id, seq)
    );",
    // The feed of changes to people that nodes pull, numbered per tenant in commit order and
    // stamped with the cloud's hybrid logical clock; erasures stay as tombstones.
    "CREATE TABLE person_changes (
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        change_id INTEGER NOT NULL,
        person_id TEXT NOT NULL,
        hlc_ms INTEGER NOT NULL,
        hlc_counter INTEGER NOT NULL,
        erased INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, change_id)
    );
    CREATE INDEX person_changes_by_person ON person_changes (tenant_id, person_id, change_id);",
    // How far behind each node was at its last push that brought events.
    "ALTER TABLE nodes ADD COLUMN lag_ms INTEGER;",
    // Alarms and audit lines pushed by nodes (see `records`), each stream numbered per node.
    "CREATE TABLE node_records (
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        site_id TEXT NOT NULL,
        stream TEXT NOT NULL CHECK (stream IN ('alarm', 'audit')),
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        node_time_ms INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (tenant_id, id),
        UNIQUE (node_id, stream, seq)
    );
    CREATE INDEX node_records_by_time ON node_records (tenant_id, stream, node_time_ms, id);",
    // A site's fraud policy (JSON of `rollcall_fraud::Policy`), given to its nodes; NULL: theirs.
    "ALTER TABLE sites ADD COLUMN fraud_policy TEXT;",
    // People versions pushed by nodes (`person_uploads`): a change in the feed records whose
    // version it is, and the versions that lost or were replaced are kept.
    "ALTER TABLE person_changes ADD COLUMN hlc_origin TEXT NOT NULL DEFAULT 'cloud';
    CREATE INDEX person_changes_by_hlc ON person_changes (tenant_id, hlc_ms, hlc_counter);
    CREATE TABLE person_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        person_id TEXT NOT NULL,
        hlc_ms INTEGER NOT NULL,
        hlc_counter INTEGER NOT NULL,
        hlc_origin TEXT NOT NULL,
        state TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('replaced', 'lost')),
        node_id TEXT NOT NULL,
        at_ms INTEGER NOT NULL
    );
    CREATE INDEX person_history_by_person ON person_history (tenant_id, person_id, id);",
    // Voice verification records join the pushed streams (`records`), their audio stored once
    // per tenant by digest (`voice_blobs`).
    "ALTER TABLE node_records RENAME TO node_records_before_voice;
    CREATE TABLE node_records (
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        site_id TEXT NOT NULL,
        stream TEXT NOT NULL CHECK (stream IN ('alarm', 'audit', 'voice')),
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        node_time_ms INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (tenant_id, id),
        UNIQUE (node_id, stream, seq)
    );
    INSERT INTO node_records SELECT * FROM node_records_before_voice;
    DROP TABLE node_records_before_voice;
    CREATE INDEX node_records_by_time ON node_records (tenant_id, stream, node_time_ms, id);
    CREATE TABLE voice_blobs (
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        body BLOB NOT NULL,
        node_id TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, sha256)
    );",
    // Cards the tenant's admins revoked (`revocations`), renumbered at each change for the
    // nodes' pull.
    "CREATE TABLE card_revocations (
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        card TEXT NOT NULL,
        revoked INTEGER NOT NULL,
        reason TEXT NOT NULL,
        changed_ms INTEGER NOT NULL,
        changed_by TEXT NOT NULL,
        change_id INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, card)
    );
    CREATE UNIQUE INDEX card_revocations_by_change ON card_revocations (tenant_id, change_id);",
    // Each record stream's watermark per node, and the refused records that settle their
    // sequence numbers (`records`).
    "CREATE TABLE node_stream_marks (
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        node_id TEXT NOT NULL,
        stream TEXT NOT NULL,
        watermark INTEGER NOT NULL,
        PRIMARY KEY (node_id, stream)
    );
    CREATE TABLE record_rejections (
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        node_id TEXT NOT NULL,
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL,
        id TEXT NOT NULL,
        reason TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        PRIMARY KEY (node_id, stream, seq)
    );",
];

impl SqliteStore {
    /// Runs one write and, when it changed rows, appends `audit` in the same transaction; the
    /// number of rows changed.
    pub(super) fn write_audited(
        &mut self,
        tenant_id: i64,
        sql: &str,
        params: impl rusqlite::Params,
        audit: &Audit,
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(sql, params)?;
        if n > 0 {
            append_audit(&tx, tenant_id, audit)?;
        }
        tx.commit()?;
        Ok(n)
    }
}

/// Appends an audit entry within the caller's transaction.
pub(super) fn append_audit(conn: &Connection, tenant_id: i64, a: &Audit) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO audit_log (tenant_id, at_ms, actor, action, target, source, request_id, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            tenant_id,
            now_ms(),
            a.actor,
            a.action,
            a.target,
            a.source,
            a.request_id,
            audit::detail_text(a)
        ],
    )?;
    Ok(())
}

pub struct SqliteStore {
    pub(super) conn: Connection,
}

const TENANT_COLUMNS: &str = "id, slug, name, status, created_ms, cors_origins";

fn tenant_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: r.get(0)?,
        slug: r.get(1)?,
        name: r.get(2)?,
        status: TenantStatus::parse(&r.get::<_, String>(3)?),
        created_ms: r.get(4)?,
        cors_origins: split_origins(&r.get::<_, String>(5)?),
        _loaded: Loaded,
    })
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = open_migrated(path, MIGRATIONS).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self { conn })
    }

    pub fn ping(&self) -> Result<(), StoreError> {
        self.conn.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }

    pub fn ensure_tenant(&self, slug: &str, name: &str) -> Result<Tenant, StoreError> {
        self.conn.execute(
            "INSERT INTO tenants (slug, name, created_ms) VALUES (?1, ?2, ?3) ON CONFLICT (slug) DO NOTHING",
            params![slug, name, now_ms()],
        )?;
        self.tenant(slug)?
            .ok_or_else(|| StoreError::Conflict(format!("tenant `{slug}` vanished")))
    }

    pub fn create_tenant(
        &mut self,
        slug: &str,
        name: &str,
        audit: &Audit,
    ) -> Result<Tenant, StoreError> {
        let tx = self.conn.transaction()?;
        let inserted = tx.execute(
            "INSERT INTO tenants (slug, name, created_ms) VALUES (?1, ?2, ?3) ON CONFLICT (slug) DO NOTHING",
            params![slug, name, now_ms()],
        )?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "tenant `{slug}` already exists"
            )));
        }
        append_audit(&tx, tx.last_insert_rowid(), audit)?;
        tx.commit()?;
        self.tenant(slug)?
            .ok_or_else(|| StoreError::Conflict(format!("tenant `{slug}` vanished")))
    }

    pub fn tenant(&self, slug: &str) -> Result<Option<Tenant>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE slug = ?1"),
                [slug],
                tenant_row,
            )
            .optional()?)
    }

    pub fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants ORDER BY slug"
        ))?;
        let rows = stmt.query_map([], tenant_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn update_tenant(
        &mut self,
        slug: &str,
        name: Option<String>,
        status: Option<TenantStatus>,
        audit: &Audit,
    ) -> Result<Option<Tenant>, StoreError> {
        let tx = self.conn.transaction()?;
        let id: Option<i64> = tx
            .query_row(
                "UPDATE tenants SET name = coalesce(?2, name), status = coalesce(?3, status)
                 WHERE slug = ?1 RETURNING id",
                params![slug, name, status.map(TenantStatus::as_str)],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = id {
            append_audit(&tx, id, audit)?;
        }
        tx.commit()?;
        self.tenant(slug)
    }

    pub fn set_cors_origins(
        &mut self,
        scope: &TenantScope,
        origins: &str,
        audit: &Audit,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE tenants SET cors_origins = ?2 WHERE id = ?1",
            params![scope.id, origins],
        )?;
        append_audit(&tx, scope.id, audit)?;
        tx.commit()?;
        Ok(())
    }

    pub fn signing_secret(&mut self, scope: &TenantScope) -> Result<[u8; 32], StoreError> {
        let tx = self.conn.transaction()?;
        let existing: Option<Vec<u8>> = tx
            .query_row(
                "SELECT secret FROM signing_keys WHERE tenant_id = ?1",
                [scope.id],
                |r| r.get(0),
            )
            .optional()?;
        let secret = match existing {
            Some(bytes) => bytes.try_into().map_err(|_| StoreError::Key)?,
            None => {
                let mut secret = [0u8; 32];
                getrandom::fill(&mut secret).map_err(|_| StoreError::Key)?;
                tx.execute(
                    "INSERT INTO signing_keys (tenant_id, secret, created_ms) VALUES (?1, ?2, ?3)",
                    params![scope.id, secret.to_vec(), now_ms()],
                )?;
                secret
            }
        };
        tx.commit()?;
        Ok(secret)
    }

    pub fn next_bundle_serial(
        &mut self,
        scope: &TenantScope,
        site_id: &str,
        audit: &Audit,
    ) -> Result<u64, StoreError> {
        let tx = self.conn.transaction()?;
        let serial: i64 = tx.query_row(
            "INSERT INTO bundle_serials (tenant_id, site_id, serial) VALUES (?1, ?2, 1)
             ON CONFLICT (tenant_id, site_id) DO UPDATE SET serial = serial + 1
             RETURNING serial",
            params![scope.id, site_id],
            |r| r.get(0),
        )?;
        append_audit(&tx, scope.id, audit)?;
        tx.commit()?;
        Ok(serial.unsigned_abs())
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
                        &super::records::sqlite_sql(OLD),
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
                    &super::records::sqlite_sql(sql),
                    params![scope.id, old, node_id],
                )?;
            }
            tx.execute(
                &super::records::sqlite_sql(RETIRE),
                params![scope.id, old, now_ms()],
            )?;
        }
        append_audit(&tx, scope.id, audit)?;
        tx.commit()?;
        Ok(())
    }

    pub fn node_by_token_hash(
        &self,
        scope: &TenantScope,
        hash: &str,
    ) -> Result<Option<NodeRow>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, tenant_id, site_id FROM nodes
                 WHERE token_sha256 = ?1 AND tenant_id = ?2 AND revoked_ms IS NULL",
                params![hash, scope.id],
                |r| {
                    Ok(NodeRow {
                        id: r.get(0)?,
                        tenant_id: r.get(1)?,
                        site_id: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn nodes(&self, scope: &TenantScope) -> Result<Vec<NodeInfo>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, site_id, created_ms, last_seen_ms, revoked_ms, watermark, lag_ms FROM nodes
             WHERE tenant_id = ?1 ORDER BY created_ms, id",
        )?;
        let rows = stmt.query_map([scope.id], |r| {
            Ok(NodeInfo {
                id: r.get(0)?,
                site_id: r.get(1)?,
                created_ms: r.get(2)?,
                last_seen_ms: r.get(3)?,
                revoked_ms: r.get(4)?,
                watermark: r.get::<_, i64>(5)?.unsigned_abs(),
                lag_ms: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn revoke_node(
        &mut self,
        scope: &TenantScope,
        node_id: &str,
        audit: &Audit,
    ) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE nodes SET revoked_ms = ?3 WHERE tenant_id = ?1 AND id = ?2 AND revoked_ms IS NULL",
            params![scope.id, node_id, now_ms()],
        )?;
        if n > 0 {
            append_audit(&tx, scope.id, audit)?;
        }
        tx.commit()?;
        Ok(n > 0)
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

    #[test]
    fn reopening_keeps_data_and_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.sqlite");
        {
            let store = SqliteStore::open(&path).expect("open");
            store.ensure_tenant("acme", "Acme").expect("tenant");
        }
        let store = SqliteStore::open(&path).expect("reopen");
        let t = store.ensure_tenant("acme", "other name").expect("tenant");
        assert_eq!((t.id, t.name.as_str()), (1, "Acme"));
    }

    #[test]
    fn a_version_2_database_is_migrated_with_its_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.sqlite");
        {
            let conn = open_migrated(&path, &MIGRATIONS[..2]).expect("v2");
            conn.execute_batch(
                "INSERT INTO tenants (slug, created_ms) VALUES ('acme', 1);
                 INSERT INTO nodes (id, tenant_id, site_id, token_sha256, created_ms) VALUES ('n1', 1, 'hq', 'h', 1);
                 INSERT INTO events VALUES ('01HZZZZZZZZZZZZZZZZZZZZZZA', 1, 'n1', 'hq', 1, NULL, 'granted', 5, 6,
                   '{\"id\":\"01HZZZZZZZZZZZZZZZZZZZZZZA\",\"seq\":1,\"site_id\":\"hq\",\"person_id\":null,\"decision\":\"granted\",\"similarity\":null,\"risk_score\":0.0,\"reasons\":[],\"position\":null,\"node_time_ms\":5}');",
            )
            .expect("v2 rows");
        }
        let store = SqliteStore::open(&path).expect("migrate");
        let acme = store.tenant("acme").expect("q").expect("kept");
        assert_eq!(acme.name, "acme");
        let scope = acme.scope().expect("active");
        let events = store
            .events(&scope, &EventFilter::default(), &PageStart::Offset(0), 10)
            .expect("events");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].received_ms, 6);
    }
}
