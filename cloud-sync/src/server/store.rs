//! The cloud's SQLite store. Every tenant-owned table has `tenant_id`, and every method that
//! touches one takes the tenant id of the authenticated caller.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::protocol::{AttendanceEvent, PushAck, Rejected, StoredEvent};
use crate::sqlite::{now_ms, open_migrated};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: crate::sqlite::OpenError,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the tenant's signing key cannot be read or made")]
    Key,
    #[error("stored event {id} is unreadable: {source}")]
    Corrupt {
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

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
];

/// A registered node, as authentication finds it.
#[derive(Debug, Clone)]
pub struct NodeRow {
    pub id: String,
    pub tenant_id: i64,
    pub site_id: String,
}

pub struct CloudStore {
    conn: Connection,
}

impl CloudStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = open_migrated(path, MIGRATIONS).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self { conn })
    }

    /// Checks the database answers (for `/healthz`).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.conn.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }

    pub fn ensure_tenant(&self, slug: &str) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO tenants (slug, created_ms) VALUES (?1, ?2) ON CONFLICT (slug) DO NOTHING",
            params![slug, now_ms()],
        )?;
        Ok(self
            .conn
            .query_row("SELECT id FROM tenants WHERE slug = ?1", [slug], |r| {
                r.get(0)
            })?)
    }

    /// The tenant's bundle signing key, created on first use.
    pub fn signing_secret(&mut self, tenant_id: i64) -> Result<[u8; 32], StoreError> {
        let tx = self.conn.transaction()?;
        let existing: Option<Vec<u8>> = tx
            .query_row(
                "SELECT secret FROM signing_keys WHERE tenant_id = ?1",
                [tenant_id],
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
                    params![tenant_id, secret.to_vec(), now_ms()],
                )?;
                secret
            }
        };
        tx.commit()?;
        Ok(secret)
    }

    /// The next bundle serial of a site (1, 2, 3, …), taken for good.
    pub fn next_bundle_serial(&mut self, tenant_id: i64, site_id: &str) -> Result<u64, StoreError> {
        let serial: i64 = self.conn.query_row(
            "INSERT INTO bundle_serials (tenant_id, site_id, serial) VALUES (?1, ?2, 1)
             ON CONFLICT (tenant_id, site_id) DO UPDATE SET serial = serial + 1
             RETURNING serial",
            params![tenant_id, site_id],
            |r| r.get(0),
        )?;
        Ok(serial.unsigned_abs())
    }

    pub fn register_node(
        &self,
        tenant_id: i64,
        node_id: &str,
        site_id: &str,
        token_sha256: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO nodes (id, tenant_id, site_id, token_sha256, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![node_id, tenant_id, site_id, token_sha256, now_ms()],
        )?;
        Ok(())
    }

    pub fn node_by_token_hash(&self, hash: &str) -> Result<Option<NodeRow>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT n.id, n.tenant_id, n.site_id FROM nodes n JOIN tenants t ON t.id = n.tenant_id
                 WHERE n.token_sha256 = ?1 AND n.revoked_ms IS NULL AND t.status = 'active'",
                [hash],
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

    /// Stores a batch in one transaction: each event once (idempotent by id), duplicates
    /// acknowledged, invalid items rejected without blocking the others.
    pub fn ingest(
        &mut self,
        node: &NodeRow,
        events: &[AttendanceEvent],
    ) -> Result<PushAck, StoreError> {
        let tx = self.conn.transaction()?;
        let received = now_ms();
        let mut ack = PushAck::default();
        for e in events {
            if let Some(reason) = invalid(node, e) {
                ack.rejected.push(Rejected {
                    id: e.id.clone(),
                    reason,
                });
                continue;
            }
            let existing: Option<(String, i64)> = tx
                .query_row(
                    "SELECT node_id, seq FROM events WHERE id = ?1",
                    [&e.id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match existing {
                Some((owner, seq)) if owner == node.id && seq as u64 == e.seq => {
                    ack.duplicate.push(e.id.clone());
                    continue;
                }
                Some(_) => {
                    ack.rejected.push(Rejected {
                        id: e.id.clone(),
                        reason: "id_conflict: this id is already stored for another node or sequence number".into(),
                    });
                    continue;
                }
                None => {}
            }
            let seq_taken: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM events WHERE node_id = ?1 AND seq = ?2)",
                params![node.id, e.seq as i64],
                |r| r.get(0),
            )?;
            if seq_taken {
                ack.rejected.push(Rejected {
                    id: e.id.clone(),
                    reason: format!(
                        "sequence_conflict: sequence number {} is already stored with another id",
                        e.seq
                    ),
                });
                continue;
            }
            let body = serde_json::to_string(e).map_err(|source| StoreError::Corrupt {
                id: e.id.clone(),
                source,
            })?;
            tx.execute(
                "INSERT INTO events (id, tenant_id, node_id, site_id, seq, person_id, decision, node_time_ms, received_ms, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    e.id,
                    node.tenant_id,
                    node.id,
                    e.site_id,
                    e.seq as i64,
                    e.person_id,
                    e.decision.as_str(),
                    e.node_time_ms,
                    received,
                    body
                ],
            )?;
            ack.accepted.push(e.id.clone());
        }
        tx.execute(
            "UPDATE nodes SET last_seen_ms = ?1 WHERE id = ?2",
            params![received, node.id],
        )?;
        tx.commit()?;
        Ok(ack)
    }

    /// A tenant's events, newest first, optionally for one site.
    pub fn events(
        &self,
        tenant_id: i64,
        site_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, node_id, received_ms, body FROM events
             WHERE tenant_id = ?1 AND (?2 IS NULL OR site_id = ?2)
             ORDER BY node_time_ms DESC, seq DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![tenant_id, site_id, limit], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, node_id, received_ms, body) = row?;
            let event =
                serde_json::from_str(&body).map_err(|source| StoreError::Corrupt { id, source })?;
            out.push(StoredEvent {
                event,
                node_id,
                received_ms,
            });
        }
        Ok(out)
    }
}

/// Why an event cannot be stored, if it cannot.
fn invalid(node: &NodeRow, e: &AttendanceEvent) -> Option<String> {
    if ulid_like(&e.id).is_none() {
        return Some("invalid_id: event id must be a 26-character ULID".into());
    }
    if e.site_id != node.site_id {
        return Some(format!(
            "site_mismatch: this node is registered for site `{}`, not `{}`",
            node.site_id, e.site_id
        ));
    }
    if e.seq == 0 || e.seq > i64::MAX as u64 {
        return Some("invalid_seq: sequence numbers start at 1".into());
    }
    if !(0.0..=1.0).contains(&e.risk_score) {
        return Some("invalid_score: risk_score must be in [0, 1]".into());
    }
    None
}

fn ulid_like(id: &str) -> Option<()> {
    (id.len() == 26
        && id.bytes().all(|b| {
            b.is_ascii_digit()
                || (b.is_ascii_uppercase() && !matches!(b, b'I' | b'L' | b'O' | b'U'))
        }))
    .then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Decision;

    fn event(id: &str, seq: u64, site: &str) -> AttendanceEvent {
        AttendanceEvent {
            id: id.into(),
            seq,
            site_id: site.into(),
            person_id: Some("p".into()),
            decision: Decision::Granted,
            similarity: Some(0.9),
            risk_score: 0.0,
            reasons: vec![],
            position: None,
            node_time_ms: seq as i64,
            card: None,
        }
    }

    fn setup() -> (tempfile::TempDir, CloudStore, NodeRow) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CloudStore::open(&dir.path().join("c.sqlite")).expect("open");
        let t = store.ensure_tenant("acme").expect("tenant");
        assert_eq!(store.ensure_tenant("acme").expect("again"), t);
        store.register_node(t, "n1", "hq", "h1").expect("node");
        let node = store
            .node_by_token_hash("h1")
            .expect("query")
            .expect("found");
        (dir, store, node)
    }

    const A: &str = "01HZZZZZZZZZZZZZZZZZZZZZZA";
    const B: &str = "01HZZZZZZZZZZZZZZZZZZZZZZB";
    const C: &str = "01HZZZZZZZZZZZZZZZZZZZZZZC";

    #[test]
    fn ingest_is_idempotent_and_rejects_without_blocking() {
        let (_d, mut store, node) = setup();
        let ack = store
            .ingest(
                &node,
                &[
                    event(A, 1, "hq"),
                    event("bad", 2, "hq"),
                    event(B, 3, "other"),
                    event(C, 4, "hq"),
                ],
            )
            .expect("ingest");
        assert_eq!(ack.accepted, [A, C]);
        assert_eq!(ack.rejected.len(), 2);
        assert!(ack.rejected[0].reason.starts_with("invalid_id"));
        assert!(ack.rejected[1].reason.starts_with("site_mismatch"));
        let again = store.ingest(&node, &[event(A, 1, "hq")]).expect("ingest");
        assert_eq!(again.duplicate, [A]);
        let clash = store.ingest(&node, &[event(B, 1, "hq")]).expect("ingest");
        assert!(clash.rejected[0].reason.starts_with("sequence_conflict"));
        let stored = store.events(node.tenant_id, Some("hq"), 10).expect("list");
        assert_eq!(
            stored
                .iter()
                .map(|s| s.event.id.as_str())
                .collect::<Vec<_>>(),
            [C, A]
        );
    }

    #[test]
    fn each_tenant_keeps_one_signing_key_and_serials_only_grow() {
        let (_d, mut store, node) = setup();
        let acme = node.tenant_id;
        let key = store.signing_secret(acme).expect("key");
        assert_eq!(store.signing_secret(acme).expect("key"), key, "kept");
        let other = store.ensure_tenant("globex").expect("tenant");
        assert_ne!(store.signing_secret(other).expect("key"), key);
        let serials: Vec<u64> = (0..3)
            .map(|_| store.next_bundle_serial(acme, "hq").expect("serial"))
            .collect();
        assert_eq!(serials, [1, 2, 3]);
        assert_eq!(store.next_bundle_serial(acme, "depot").expect("serial"), 1);
        assert_eq!(store.next_bundle_serial(other, "hq").expect("serial"), 1);
    }

    #[test]
    fn tenants_do_not_see_each_other() {
        let (_d, mut store, node) = setup();
        store.ingest(&node, &[event(A, 1, "hq")]).expect("ingest");
        let other = store.ensure_tenant("globex").expect("tenant");
        assert!(store.events(other, None, 10).expect("list").is_empty());
        assert_eq!(
            store.events(node.tenant_id, None, 10).expect("list").len(),
            1
        );
    }

    #[test]
    fn reopening_keeps_data_and_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.sqlite");
        {
            let store = CloudStore::open(&path).expect("open");
            store.ensure_tenant("acme").expect("tenant");
        }
        let store = CloudStore::open(&path).expect("reopen");
        assert_eq!(store.ensure_tenant("acme").expect("tenant"), 1);
    }
}
