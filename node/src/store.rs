//! The node's SQLite file: people, face templates, attendance events and the sync outbox.
//!
//! INVARIANT: an event and its outbox row are written in one transaction with
//! `synchronous=FULL`, so an event the kiosk was told about is on disk and will be synced.

use std::path::Path;

use rollcall_protocol::wire::AttendanceEvent;

use crate::template_key::TemplateKey;

mod people_sync;
mod person_outbox;
mod record_outbox;
mod revocations;
mod site_config;
mod sync_status;
mod voice;
pub use people_sync::{GalleryChange, PersonVersion};
pub use record_outbox::{PendingRecords, RecordDeadLetter, RecordStats};
use rusqlite::{Connection, OptionalExtension, params};
pub use sync_status::SyncStatus;
#[cfg(test)]
pub(crate) use voice::test_voice;
pub use voice::{NewVoiceRecord, StoredVoice};

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
    #[error("stored row {what} is unreadable: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("no person with id `{0}`")]
    NoSuchPerson(String),
    #[error("a person with id `{0}` already exists")]
    PersonExists(String),
    #[error("person `{0}` was erased in the cloud; an erased id cannot be used again")]
    PersonErased(String),
    #[error("card `{0}` already belongs to someone else")]
    CardTaken(String),
    #[error("template key: {0}")]
    Key(#[from] crate::template_key::KeyError),
}

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE people (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE face_templates (
    id TEXT PRIMARY KEY,
    person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    vector BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    person_id TEXT,
    decision TEXT NOT NULL,
    node_time_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY REFERENCES events(seq),
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    done_ms INTEGER
);
CREATE INDEX outbox_pending ON outbox (state, seq);
"#,
    // Templates are sealed with the node's template key; rows written before are sealed when
    // the store is next opened (NodeStore::open).
    "ALTER TABLE face_templates ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;",
    // The sha256 of a check-in's frame, kept on the node only (it is not part of the synced
    // event), so that a resubmitted image is recognised as a replay.
    "ALTER TABLE events ADD COLUMN frame_sha256 TEXT;
     CREATE INDEX events_frame ON events (frame_sha256) WHERE frame_sha256 IS NOT NULL;",
    // Who did what to whom on this node (deleting a person, for a start).
    "CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL
    );",
    // The card a person presents at the reader (see `card::card_key`); one holder per card.
    "ALTER TABLE people ADD COLUMN card TEXT;
     CREATE UNIQUE INDEX people_card ON people (card) WHERE card IS NOT NULL;",
    // A granted check-in looks up the person's template count and recent events: without
    // these, both scanned whole tables (10 ms at 10 000 templates, see benches/checkin.rs).
    "CREATE INDEX face_templates_person ON face_templates (person_id);
     CREATE INDEX events_person ON events (person_id, node_time_ms) WHERE person_id IS NOT NULL;",
    // Alarms from the site's hardware: door forced or held open, reader offline, tamper.
    "CREATE TABLE alarms (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        pd INTEGER,
        detail TEXT NOT NULL
    );",
    // Check-in frames kept by the site's privacy policy, sealed, deleted after their TTL (and
    // with their event).
    "CREATE TABLE frames (
        event_seq INTEGER PRIMARY KEY REFERENCES events(seq) ON DELETE CASCADE,
        sealed BLOB NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX frames_created ON frames (created_ms);",
    people_sync::MIGRATION,
    sync_status::MIGRATION,
    record_outbox::MIGRATION,
    site_config::MIGRATION,
    person_outbox::MIGRATION,
    voice::MIGRATION,
    revocations::MIGRATION,
];

/// One line of the node's audit log.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

/// An alarm raised by the site's hardware.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Alarm {
    pub seq: i64,
    pub at_ms: i64,
    /// `door_forced`, `door_held_open`, `door_secured`, `reader_offline`, `reader_online`,
    /// `tamper`, `power_failure`.
    pub kind: String,
    pub pd: Option<u8>,
    pub detail: String,
}

/// An enrolled person.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Person {
    pub id: String,
    pub display_name: String,
    pub templates: u32,
    /// The card they present at the reader, if they have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
}

/// Selects people as [`person_row`] reads them; append a `WHERE`/`ORDER BY`.
const PERSON_SELECT: &str = "SELECT p.id, p.display_name,
        (SELECT COUNT(*) FROM face_templates t WHERE t.person_id = p.id), p.card
     FROM people p";

/// A failed insert into `people`: the card or the id was taken, or the database failed.
fn person_insert_error(e: rusqlite::Error, id: &str, card: Option<&str>) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, Some(msg))
            if f.code == rusqlite::ErrorCode::ConstraintViolation
                && msg.contains("people.card") =>
        {
            StoreError::CardTaken(card.unwrap_or_default().to_owned())
        }
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::PersonExists(id.to_owned())
        }
        e => e.into(),
    }
}

fn person_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Person> {
    Ok(Person {
        id: r.get(0)?,
        display_name: r.get(1)?,
        templates: r.get(2)?,
        card: r.get(3)?,
    })
}

/// A person to store with their face templates.
pub struct ImportedPerson {
    pub id: String,
    pub display_name: String,
    pub card: Option<String>,
    pub templates: Vec<Vec<f32>>,
}

/// A stored face template.
pub struct Template {
    pub person_id: String,
    pub vector: Vec<f32>,
}

/// An event with its sync state, for the local event list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LocalEvent {
    #[serde(flatten)]
    pub event: AttendanceEvent,
    pub sync_state: String,
}

/// Outbox totals for metrics and `doctor`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub pending: u64,
    pub dead: u64,
    pub oldest_pending_ms: Option<i64>,
    /// Alarms and audit lines waiting for the cloud, and refused by it.
    pub records: RecordStats,
}

pub struct NodeStore {
    conn: Connection,
    key: TemplateKey,
    /// Stamps the node's own edits of people (see `people_sync`).
    clock: std::cell::RefCell<rollcall_protocol::merge::Clock>,
}

/// What a sealed template is bound to: it cannot be moved to another row, person or model.
fn frame_context(event_id: &str) -> String {
    format!("rollcall-frame-v1|{event_id}")
}

fn template_context(id: &str, person_id: &str, model: &str) -> String {
    format!("rollcall-template-v1|{id}|{person_id}|{model}")
}

pub use rollcall_service::clock::now_ms;

impl NodeStore {
    /// Opens (and migrates) the database; templates are sealed and opened with `key`.
    pub fn open(path: &Path, key: TemplateKey) -> Result<Self, StoreError> {
        let conn = rollcall_service::sqlite::open_migrated(path, MIGRATIONS).map_err(|source| {
            StoreError::Open {
                path: path.display().to_string(),
                source,
            }
        })?;
        let clock = std::cell::RefCell::new(Self::resume_clock(&conn)?);
        let mut store = Self { conn, key, clock };
        store.seal_plain_templates()?;
        Ok(store)
    }

    /// Seals templates stored before sealing existed, in one transaction.
    fn seal_plain_templates(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let plain: Vec<(String, String, String, Vec<u8>)> = {
            let mut stmt = tx.prepare(
                "SELECT id, person_id, model, vector FROM face_templates WHERE sealed = 0",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (id, person, model, vector) in &plain {
            let sealed = self
                .key
                .seal(&template_context(id, person, model), vector)?;
            tx.execute(
                "UPDATE face_templates SET vector = ?1, sealed = 1 WHERE id = ?2",
                params![sealed, id],
            )?;
        }
        tx.commit()?;
        if !plain.is_empty() {
            tracing::info!(
                templates = plain.len(),
                "sealed face templates stored in the clear"
            );
        }
        Ok(())
    }

    /// `PRAGMA integrity_check`, and a write transaction rolled back: the file is sound and
    /// writable.
    pub fn health_check(&self) -> Result<(), StoreError> {
        let verdict: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if verdict != "ok" {
            return Err(StoreError::Corrupt {
                what: "database".into(),
                reason: verdict,
            });
        }
        self.conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?;
        Ok(())
    }

    pub fn ping(&self) -> Result<(), StoreError> {
        self.conn.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }

    /// Adds a person, with the card they will present if they have one (already normalised by
    /// `card::parse_card_key`).
    pub fn add_person(
        &self,
        id: &str,
        display_name: &str,
        card: Option<&str>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        Self::clear_tombstone(&tx, id)?;
        tx.execute(
            "INSERT INTO people (id, display_name, created_ms, card, version) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, display_name, now_ms(), card, self.stamp_text()],
        )
        .map_err(|e| person_insert_error(e, id, card))?;
        tx.commit()?;
        Ok(())
    }

    pub fn person(&self, id: &str) -> Result<Option<Person>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("{PERSON_SELECT} WHERE p.id = ?1"),
                [id],
                person_row,
            )
            .optional()?)
    }

    /// The holder of a card.
    pub fn person_by_card(&self, card: &str) -> Result<Option<Person>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("{PERSON_SELECT} WHERE p.card = ?1"),
                [card],
                person_row,
            )
            .optional()?)
    }

    /// Deletes a person and all their face templates, and writes `person.deleted` to the audit
    /// log, in one transaction; returns how many templates went. Their past events stay: they
    /// are the attendance record (and age out with retention).
    pub fn delete_person(&mut self, id: &str, actor: &str) -> Result<u32, StoreError> {
        let stamp = self.stamp_text();
        let tx = self.conn.transaction()?;
        let name: Option<String> = tx
            .query_row("SELECT display_name FROM people WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(name) = name else {
            return Err(StoreError::NoSuchPerson(id.to_owned()));
        };
        let templates = tx.execute("DELETE FROM face_templates WHERE person_id = ?1", [id])?;
        // Their face in kept frames goes too; the events stay as the attendance record.
        tx.execute(
            "DELETE FROM frames WHERE event_seq IN (SELECT seq FROM events WHERE person_id = ?1)",
            [id],
        )?;
        tx.execute("DELETE FROM people WHERE id = ?1", [id])?;
        Self::tombstone_local_delete(&tx, id, &stamp)?;
        tx.execute(
            "INSERT INTO audit (at_ms, actor, action, subject, detail) VALUES (?1, ?2, 'person.deleted', ?3, ?4)",
            params![
                now_ms(),
                actor,
                id,
                format!("{name}; {templates} face template(s) deleted")
            ],
        )?;
        tx.commit()?;
        Ok(templates as u32)
    }

    /// Stores an alarm (durably: it is evidence, like an event).
    pub fn record_alarm(&self, kind: &str, pd: Option<u8>, detail: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO alarms (at_ms, kind, pd, detail) VALUES (?1, ?2, ?3, ?4)",
            params![now_ms(), kind, pd, detail],
        )?;
        Ok(())
    }

    /// The alarms, newest first.
    pub fn alarms(&self, limit: u32) -> Result<Vec<Alarm>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, at_ms, kind, pd, detail FROM alarms ORDER BY seq DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok(Alarm {
                seq: r.get(0)?,
                at_ms: r.get(1)?,
                kind: r.get(2)?,
                pd: r.get(3)?,
                detail: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The audit log, newest first.
    pub fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, at_ms, actor, action, subject, detail FROM audit ORDER BY seq DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok(AuditEntry {
                seq: r.get(0)?,
                at_ms: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                subject: r.get(4)?,
                detail: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn people(&self) -> Result<Vec<Person>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("{PERSON_SELECT} ORDER BY p.display_name, p.id"))?;
        let rows = stmt.query_map([], person_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Adds people with their templates of `model` in one transaction (an enrolment from
    /// several photos, a site's roll from another system): all or nothing.
    pub fn import_people(
        &mut self,
        model: &str,
        people: &[ImportedPerson],
    ) -> Result<(), StoreError> {
        let stamps: Vec<String> = people.iter().map(|_| self.stamp_text()).collect();
        let tx = self.conn.transaction()?;
        {
            let mut person = tx.prepare(
                "INSERT INTO people (id, display_name, created_ms, card, version) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut template = tx.prepare(
                "INSERT INTO face_templates (id, person_id, model, vector, created_ms, sealed) VALUES (?1, ?2, ?3, ?4, ?5, 1)",
            )?;
            let now = now_ms();
            for (p, stamp) in people.iter().zip(&stamps) {
                Self::clear_tombstone(&tx, &p.id)?;
                person
                    .execute(params![p.id, p.display_name, now, p.card, stamp])
                    .map_err(|e| person_insert_error(e, &p.id, p.card.as_deref()))?;
                for vector in &p.templates {
                    let id = ulid::Ulid::new().to_string();
                    let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                    let sealed = self
                        .key
                        .seal(&template_context(&id, &p.id, model), &bytes)?;
                    template.execute(params![id, p.id, model, sealed, now])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn add_template(
        &self,
        id: &str,
        person_id: &str,
        model: &str,
        vector: &[f32],
    ) -> Result<(), StoreError> {
        if self.person(person_id)?.is_none() {
            return Err(StoreError::NoSuchPerson(person_id.to_owned()));
        }
        let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
        let sealed = self
            .key
            .seal(&template_context(id, person_id, model), &bytes)?;
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO face_templates (id, person_id, model, vector, created_ms, sealed) VALUES (?1, ?2, ?3, ?4, ?5, 1)",
            params![id, person_id, model, sealed, now_ms()],
        )?;
        // A new template is an edit of the person: it orders after what the node has seen.
        tx.execute(
            "UPDATE people SET version = ?2 WHERE id = ?1",
            params![person_id, self.stamp_text()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A stored template's vector bytes (a whole number of little-endian `f32`s), opened.
    fn open_template(
        &self,
        id: &str,
        person_id: &str,
        model: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            what: format!("face template {id}"),
            reason,
        };
        let bytes = self
            .key
            .open(&template_context(id, person_id, model), sealed)
            .map_err(|e| corrupt(e.to_string()))?;
        if bytes.len() % 4 != 0 {
            return Err(corrupt(format!(
                "{} bytes is not a whole number of f32",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// Every template of `model`, to build the in-memory gallery at start.
    pub fn templates(&self, model: &str) -> Result<Vec<Template>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, person_id, vector FROM face_templates WHERE model = ?1")?;
        let rows = stmt.query_map([model], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, person_id, sealed) = row?;
            let bytes = self.open_template(&id, &person_id, model, &sealed)?;
            let vector = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            out.push(Template { person_id, vector });
        }
        Ok(out)
    }

    /// Records a decision: the event (which gets the next sequence number) and its outbox row,
    /// in one durable transaction. `build` receives the sequence number.
    /// Stores an event (and its outbox row) built for the next sequence number; `frame_sha256`
    /// is the hex sha256 of the check-in's frame, if it had one.
    pub fn record_event(
        &mut self,
        frame_sha256: Option<&str>,
        build: impl FnOnce(u64) -> AttendanceEvent,
    ) -> Result<AttendanceEvent, StoreError> {
        self.record_event_keeping(frame_sha256, None, build)
    }

    /// [`NodeStore::record_event`], keeping the check-in's frame (sealed) in the same
    /// transaction when `frame` is given.
    pub fn record_event_keeping(
        &mut self,
        frame_sha256: Option<&str>,
        frame: Option<&[u8]>,
        build: impl FnOnce(u64) -> AttendanceEvent,
    ) -> Result<AttendanceEvent, StoreError> {
        // Stamped before the transaction borrows the connection (a clock never goes back).
        let stamp = self.tick();
        let tx = self.conn.transaction()?;
        // AUTOINCREMENT never reuses a number, even after deletes: sequence numbers stay monotonic.
        let next: i64 = tx.query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0) + 1",
            [],
            |r| r.get(0),
        )?;
        let mut event = build(next as u64);
        if event.hlc.is_none() {
            event.hlc = Some(stamp);
        }
        let body = serde_json::to_string(&event).map_err(|e| StoreError::Corrupt {
            what: format!("event {}", event.id),
            reason: e.to_string(),
        })?;
        tx.execute(
            "INSERT INTO events (seq, id, person_id, decision, node_time_ms, body, frame_sha256)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                next,
                event.id,
                event.person_id,
                event.decision.as_str(),
                event.node_time_ms,
                body,
                frame_sha256
            ],
        )?;
        tx.execute("INSERT INTO outbox (seq) VALUES (?1)", [next])?;
        if let Some(frame) = frame {
            let sealed = self.key.seal(&frame_context(&event.id), frame)?;
            tx.execute(
                "INSERT INTO frames (event_seq, sealed, created_ms) VALUES (?1, ?2, ?3)",
                params![next, sealed, now_ms()],
            )?;
        }
        tx.commit()?;
        Ok(event)
    }

    /// The kept frame of an event, unsealed; `None` if none was kept (or it expired).
    pub fn frame(&self, event_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let sealed: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT f.sealed FROM frames f JOIN events e ON e.seq = f.event_seq WHERE e.id = ?1",
                [event_id],
                |r| r.get(0),
            )
            .optional()?;
        sealed
            .map(|s| {
                self.key
                    .open(&frame_context(event_id), &s)
                    .map_err(|_| StoreError::Corrupt {
                        what: format!("frame of event {event_id}"),
                        reason: "it does not open with this node's key".into(),
                    })
            })
            .transpose()
    }

    /// Deletes kept frames stored before `before_ms`; returns how many.
    pub fn prune_frames(&self, before_ms: i64) -> Result<usize, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM frames WHERE created_ms < ?1", [before_ms])?)
    }

    /// Newest events first.
    pub fn events(&self, limit: u32) -> Result<Vec<LocalEvent>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT e.id, e.body, o.state FROM events e JOIN outbox o ON o.seq = e.seq ORDER BY e.seq DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, body, sync_state) = row?;
            let event = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
                what: format!("event {id}"),
                reason: e.to_string(),
            })?;
            out.push(LocalEvent { event, sync_state });
        }
        Ok(out)
    }

    /// A person's events since `since_ms` (newest first, at most `limit`), as the fraud rules
    /// see them.
    pub fn person_history(
        &self,
        person_id: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<AttendanceEvent>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, body FROM events WHERE person_id = ?1 AND node_time_ms >= ?2
             ORDER BY seq DESC LIMIT ?3",
        )?;
        event_bodies(stmt.query(params![person_id, since_ms, limit])?)
    }

    /// When (node time, ms) a frame with this sha256 was last checked in, at or after
    /// `since_ms`.
    pub fn frame_seen(&self, frame_sha256: &str, since_ms: i64) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row(
            "SELECT MAX(node_time_ms) FROM events WHERE frame_sha256 = ?1 AND node_time_ms >= ?2",
            params![frame_sha256, since_ms],
            |r| r.get::<_, Option<i64>>(0),
        )?)
    }

    /// Deletes events older than `before_ms` (node time) that the cloud has acknowledged or
    /// rejected (and, with `unsynced_too` on a node without a cloud, pending ones); returns how
    /// many went. The sequence numbers of later events do not change.
    pub fn prune(&mut self, before_ms: i64, unsynced_too: bool) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let states = if unsynced_too {
            "('sent', 'dead', 'pending')"
        } else {
            "('sent', 'dead')"
        };
        let doomed = format!(
            "SELECT e.seq FROM events e JOIN outbox o ON o.seq = e.seq
             WHERE e.node_time_ms < ?1 AND o.state IN {states}"
        );
        tx.execute(
            &format!("DELETE FROM outbox WHERE seq IN ({doomed})"),
            [before_ms],
        )?;
        // Every event is written with its outbox row, so one without is one chosen above.
        let n = tx.execute(
            "DELETE FROM events WHERE node_time_ms < ?1 AND seq NOT IN (SELECT seq FROM outbox)",
            [before_ms],
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// The oldest pending outbox items, in sequence order.
    pub fn pending(&self, limit: u32) -> Result<Vec<AttendanceEvent>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT e.id, e.body FROM outbox o JOIN events e ON e.seq = o.seq
             WHERE o.state = 'pending' ORDER BY o.seq LIMIT ?1",
        )?;
        event_bodies(stmt.query([limit])?)
    }

    /// Applies the cloud's answer: acknowledged items (events, alarms, audit lines) are done,
    /// rejected ones become dead letters with the cloud's reason; anything unanswered stays
    /// pending.
    pub fn apply_ack(
        &mut self,
        done: &[String],
        rejected: &[(String, String)],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let now = now_ms();
        for id in done {
            tx.execute(
                "UPDATE outbox SET state = 'sent', done_ms = ?1, attempts = attempts + 1, last_error = NULL
                 WHERE seq = (SELECT seq FROM events WHERE id = ?2) AND state = 'pending'",
                params![now, id],
            )?;
        }
        for (id, reason) in rejected {
            tx.execute(
                "UPDATE outbox SET state = 'dead', done_ms = ?1, attempts = attempts + 1, last_error = ?2
                 WHERE seq = (SELECT seq FROM events WHERE id = ?3) AND state = 'pending'",
                params![now, reason, id],
            )?;
        }
        Self::settle_records(&tx, done, rejected, now)?;
        Self::settle_people(&tx, done, rejected, now)?;
        tx.commit()?;
        Ok(())
    }

    /// Events the cloud refused (dead letters), newest first, with the cloud's reason.
    pub fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT e.id, e.body, o.last_error, o.attempts, o.done_ms FROM outbox o JOIN events e ON e.seq = o.seq
             WHERE o.state = 'dead' ORDER BY o.seq DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, body, reason, attempts, refused_ms) = row?;
            let event = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
                what: format!("event {id}"),
                reason: e.to_string(),
            })?;
            out.push(DeadLetter {
                event,
                reason,
                attempts,
                refused_ms,
            });
        }
        Ok(out)
    }

    /// Puts a dead letter — an event, an alarm, an audit line, a voice record or a person's
    /// upload, by its id — back in the outbox (once its cause is fixed: the node's site, the
    /// cloud's registration); `false` if it is no dead letter. Recorded in the audit log.
    pub fn retry_dead_letter(&mut self, event_id: &str, actor: &str) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE outbox SET state = 'pending', done_ms = NULL
             WHERE state = 'dead' AND seq = (SELECT seq FROM events WHERE id = ?1)",
            [event_id],
        )? + usize::from(Self::retry_record(&tx, event_id)?)
            + usize::from(Self::retry_person(&tx, event_id)?);
        if n > 0 {
            tx.execute(
                "INSERT INTO audit (at_ms, actor, action, subject, detail) VALUES (?1, ?2, 'sync.retry', ?3, '')",
                params![now_ms(), actor, event_id],
            )?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    /// The cloud lacks these sequence numbers (`first..=last` ranges) although this node sent
    /// them — its database was restored from an older backup, say: what the node still has is
    /// queued again; returns (queued again, no longer here). Dead letters stay dead (the cloud
    /// settled them already), pending items are on their way.
    pub fn resend(&mut self, missing: &[(u64, u64)]) -> Result<(u64, u64), StoreError> {
        let tx = self.conn.transaction()?;
        let (mut queued, mut gone) = (0u64, 0u64);
        for &(first, last) in missing {
            let (first, last) = (
                i64::try_from(first).unwrap_or(i64::MAX),
                i64::try_from(last).unwrap_or(i64::MAX),
            );
            queued += tx.execute(
                "UPDATE outbox SET state = 'pending', done_ms = NULL WHERE state = 'sent' AND seq BETWEEN ?1 AND ?2",
                params![first, last],
            )? as u64;
            let here: i64 = tx.query_row(
                "SELECT COUNT(*) FROM events WHERE seq BETWEEN ?1 AND ?2",
                params![first, last],
                |r| r.get(0),
            )?;
            gone += (last - first + 1 - here).max(0).unsigned_abs();
        }
        tx.commit()?;
        Ok((queued, gone))
    }

    pub fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let records = self.record_stats()?;
        Ok(self.conn.query_row(
            "SELECT
                (SELECT COUNT(*) FROM outbox WHERE state = 'pending'),
                (SELECT COUNT(*) FROM outbox WHERE state = 'dead'),
                (SELECT MIN(e.node_time_ms) FROM outbox o JOIN events e ON e.seq = o.seq WHERE o.state = 'pending')",
            [],
            |r| {
                Ok(OutboxStats {
                    pending: r.get::<_, i64>(0)? as u64,
                    dead: r.get::<_, i64>(1)? as u64,
                    oldest_pending_ms: r.get(2)?,
                    records,
                })
            },
        )?)
    }
}

/// An event the cloud refused, kept on the node until an admin retries it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub event: AttendanceEvent,
    /// The cloud's reason.
    pub reason: Option<String>,
    /// How many times it was pushed.
    pub attempts: i64,
    /// When the cloud refused it.
    pub refused_ms: Option<i64>,
}

/// Parses `(id, body)` rows into events; a body that does not parse is reported by id.
fn event_bodies(mut rows: rusqlite::Rows<'_>) -> Result<Vec<AttendanceEvent>, StoreError> {
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let (id, body): (String, String) = (row.get(0)?, row.get(1)?);
        out.push(
            serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
                what: format!("event {id}"),
                reason: e.to_string(),
            })?,
        );
    }
    Ok(out)
}

/// A denied face-only event with sequence number `seq`, for tests.
#[cfg(test)]
pub(crate) fn test_event(seq: u64) -> AttendanceEvent {
    AttendanceEvent {
        id: format!("01HZZZZZZZZZZZZZZZZZZZZZ{seq:02}"),
        seq,
        site_id: "hq".into(),
        person_id: None,
        decision: rollcall_protocol::wire::Decision::Denied,
        similarity: None,
        risk_score: 0.0,
        reasons: vec![],
        position: None,
        node_time_ms: 1000 + seq as i64,
        card: None,
        hlc: None,
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A fresh store in a temporary directory (keep the directory alive with it).
    pub fn store() -> (tempfile::TempDir, NodeStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = NodeStore::open(
            &dir.path().join("n.sqlite"),
            TemplateKey::from_bytes(&[42; 32]),
        )
        .expect("open");
        (dir, store)
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn key() -> TemplateKey {
        TemplateKey::from_bytes(&[42; 32])
    }

    #[test]
    fn events_are_stamped_by_the_nodes_clock_which_resumes_after_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("n.sqlite");
        let mut stamps: Vec<_> = {
            let mut store = NodeStore::open(&path, key()).expect("open");
            (0..2)
                .map(|_| {
                    store
                        .record_event(None, test_event)
                        .expect("record")
                        .hlc
                        .expect("stamped")
                })
                .collect()
        };
        assert!(stamps[0] < stamps[1], "{stamps:?}");
        assert_eq!(stamps[0].origin, "node");
        // An event stamped an hour ahead (the wall clock was then set back): kept as stamped.
        let ahead = rollcall_protocol::merge::Hlc {
            ms: now_ms().unsigned_abs() + 3_600_000,
            counter: 0,
            origin: "node".into(),
        };
        {
            let mut store = NodeStore::open(&path, key()).expect("open");
            let stamped = store
                .record_event(None, |seq| AttendanceEvent {
                    hlc: Some(ahead.clone()),
                    ..test_event(seq)
                })
                .expect("record");
            stamps.push(stamped.hlc.expect("stamped"));
        }
        // Reopened (a restart): the next stamp orders after the last, whatever the wall clock.
        let mut store = NodeStore::open(&path, key()).expect("reopen");
        let next = store
            .record_event(None, test_event)
            .expect("record")
            .hlc
            .expect("stamped");
        assert!(next > stamps[2], "{next:?} after {:?}", stamps[2]);
        let stored = store.pending(10).expect("pending");
        assert_eq!(
            stored[3].hlc.as_ref(),
            Some(&next),
            "the stamp travels with the event"
        );
    }

    #[test]
    fn templates_are_sealed_on_disk_and_need_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("n.sqlite");
        let store = NodeStore::open(&path, key()).expect("open");
        store.add_person("ann", "Ann", None).expect("person");
        store
            .add_template("t1", "ann", "m", &[0.25, 0.5])
            .expect("template");
        let raw: Vec<u8> = store
            .conn
            .query_row("SELECT vector FROM face_templates", [], |r| r.get(0))
            .expect("row");
        let plain: Vec<u8> = [0.25f32, 0.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert!(
            !raw.windows(plain.len()).any(|w| w == plain),
            "the embedding is stored in the clear"
        );
        drop(store);
        let other = NodeStore::open(&path, TemplateKey::from_bytes(&[1; 32])).expect("opens");
        let e = other.templates("m").err().expect("wrong key").to_string();
        assert!(e.contains("t1") && e.contains("key"), "{e}");
        assert_eq!(
            NodeStore::open(&path, key())
                .expect("open")
                .templates("m")
                .expect("key")
                .len(),
            1
        );
    }

    #[test]
    fn templates_stored_in_the_clear_are_sealed_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("n.sqlite");
        {
            let store = NodeStore::open(&path, key()).expect("open");
            store.add_person("ann", "Ann", None).expect("person");
            let plain: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
            store
                .conn
                .execute(
                    "INSERT INTO face_templates (id, person_id, model, vector, created_ms, sealed) VALUES ('old', 'ann', 'm', ?1, 0, 0)",
                    [plain],
                )
                .expect("an old clear row");
        }
        let store = NodeStore::open(&path, key()).expect("reopen seals");
        let sealed: i64 = store
            .conn
            .query_row(
                "SELECT sealed FROM face_templates WHERE id = 'old'",
                [],
                |r| r.get(0),
            )
            .expect("row");
        assert_eq!(sealed, 1);
        assert_eq!(store.templates("m").expect("open")[0].vector, [1.0, 2.0]);
    }

    use super::test_event as event;

    #[test]
    fn events_the_cloud_lost_are_sent_again_if_still_here() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = NodeStore::open(&dir.path().join("n.sqlite"), key()).expect("open");
        let ids: Vec<String> = (0..4)
            .map(|_| store.record_event(None, event).expect("record").id)
            .collect();
        // 1 and 2 sent, 3 refused (dead), 4 still pending.
        store
            .apply_ack(&ids[..2], &[(ids[2].clone(), "site_mismatch".into())])
            .expect("ack");
        // The cloud lacks 1..=4 and 9..=10: 1 and 2 go again; the dead letter and the pending one
        // stay as they are; 9 and 10 were never here.
        let (queued, gone) = store.resend(&[(1, 4), (9, 10)]).expect("resend");
        assert_eq!((queued, gone), (2, 2));
        let pending: Vec<u64> = store
            .pending(10)
            .expect("pending")
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(pending, [1, 2, 4]);
        assert_eq!(store.outbox_stats().expect("stats").dead, 1);
    }

    #[test]
    fn events_get_monotonic_sequence_numbers_and_outbox_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("n.sqlite");
        let mut store = NodeStore::open(&path, key()).expect("open");
        let a = store.record_event(None, event).expect("record");
        let b = store.record_event(None, event).expect("record");
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(store.outbox_stats().expect("stats").pending, 2);
        assert_eq!(store.pending(10).expect("pending").len(), 2);

        store
            .apply_ack(
                std::slice::from_ref(&a.id),
                &[(b.id.clone(), "site_mismatch".into())],
            )
            .expect("ack");
        let stats = store.outbox_stats().expect("stats");
        assert_eq!((stats.pending, stats.dead), (0, 1));
        // Frame hashes are remembered for replay checks, within the asked-for window.
        store.record_event(Some("ab12"), event).expect("record");
        assert_eq!(store.frame_seen("ab12", 0).expect("seen"), Some(1003));
        assert_eq!(store.frame_seen("ab12", 1004).expect("seen"), None);
        assert_eq!(store.frame_seen("cd34", 0).expect("seen"), None);

        // Retention: only acknowledged or rejected events before the cut-off go; pending stay.
        // Now: a (1001) sent, b (1002) dead, the frame event (1003) pending.
        assert_eq!(store.prune(1003, false).expect("prune"), 2);
        assert_eq!(store.events(10).expect("events").len(), 1);
        assert_eq!(store.prune(i64::MAX, false).expect("prune"), 0);
        assert_eq!(store.outbox_stats().expect("stats").pending, 1);

        drop(store);

        // Reopening keeps everything and continues the sequence.
        let mut store = NodeStore::open(&path, key()).expect("reopen");
        let c = store.record_event(None, event).expect("record");
        assert_eq!(c.seq, 4);
        let states: Vec<_> = store
            .events(10)
            .expect("events")
            .into_iter()
            .map(|e| e.sync_state)
            .collect();
        assert_eq!(states, ["pending", "pending"]);
        // Standalone, pending events age out too.
        assert_eq!(store.prune(i64::MAX, true).expect("prune"), 2);
        assert!(store.events(10).expect("events").is_empty());
        let d = store.record_event(None, event).expect("record");
        assert_eq!(d.seq, 5, "numbers are never reused");
    }

    #[test]
    fn a_reader_in_another_connection_does_not_block_the_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("n.sqlite");
        let mut store = NodeStore::open(&path, key()).expect("open");
        store.record_event(None, event).expect("first");
        // A report tool holding a read transaction open (WAL: readers see a snapshot).
        let reader = Connection::open(&path).expect("reader");
        reader.execute_batch("BEGIN").expect("begin");
        let count = |c: &Connection| -> i64 {
            c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
                .expect("count")
        };
        assert_eq!(count(&reader), 1);
        store
            .record_event(None, event)
            .expect("the writer commits while the reader reads");
        store.record_alarm("tamper", Some(1), "x").expect("alarm");
        assert_eq!(count(&reader), 1, "the reader keeps its snapshot");
        reader.execute_batch("COMMIT").expect("end");
        assert_eq!(count(&reader), 2);
        assert_eq!(store.alarms(10).expect("alarms")[0].kind, "tamper");
    }

    #[test]
    fn kept_frames_are_sealed_expire_and_go_with_their_event_or_person() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = NodeStore::open(&dir.path().join("n.sqlite"), key()).expect("open");
        store.add_person("ann", "Ann", None).expect("person");
        let jpeg = b"\xFF\xD8 a frame of ann \xFF\xD9".to_vec();
        let with_person = |seq| AttendanceEvent {
            person_id: Some("ann".into()),
            ..event(seq)
        };
        let a = store
            .record_event_keeping(Some("aa"), Some(&jpeg), with_person)
            .expect("record");
        let b = store
            .record_event_keeping(Some("bb"), Some(&jpeg), event)
            .expect("record");
        let c = store.record_event(Some("cc"), event).expect("record");
        assert_eq!(store.frame(&a.id).expect("frame"), Some(jpeg.clone()));
        assert_eq!(store.frame(&c.id).expect("frame"), None, "not kept");
        let raw: Vec<u8> = store
            .conn
            .query_row(
                "SELECT sealed FROM frames WHERE event_seq = ?1",
                [b.seq as i64],
                |r| r.get(0),
            )
            .expect("row");
        assert!(
            !raw.windows(jpeg.len()).any(|w| w == jpeg.as_slice()),
            "stored sealed, not in the clear"
        );
        // Deleting the person deletes their frames, not their events.
        store.delete_person("ann", "test").expect("delete");
        assert_eq!(store.frame(&a.id).expect("frame"), None);
        assert_eq!(store.events(10).expect("events").len(), 3);
        // The TTL, then an event's frame goes with the event.
        assert_eq!(store.prune_frames(now_ms() - 60_000).expect("prune"), 0);
        assert_eq!(store.prune_frames(now_ms() + 1).expect("prune"), 1);
        assert_eq!(store.frame(&b.id).expect("frame"), None);
        let d = store
            .record_event_keeping(Some("dd"), Some(&jpeg), event)
            .expect("record");
        store.prune(i64::MAX, true).expect("prune events");
        assert_eq!(store.frame(&d.id).expect("frame"), None);
        let left: i64 = store
            .conn
            .query_row("SELECT COUNT(*) FROM frames", [], |r| r.get(0))
            .expect("count");
        assert_eq!(left, 0);
    }

    #[test]
    fn a_card_has_one_holder_and_finds_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = NodeStore::open(&dir.path().join("n.sqlite"), key()).expect("open");
        store
            .add_person("ann", "Ann", Some("12:3456"))
            .expect("ann");
        store.add_person("bob", "Bob", None).expect("bob");
        store
            .add_person("cid", "Cid", None)
            .expect("cardless people do not clash");
        assert!(matches!(
            store.add_person("dan", "Dan", Some("12:3456")),
            Err(StoreError::CardTaken(c)) if c == "12:3456"
        ));
        assert!(
            store.person("dan").expect("query").is_none(),
            "nothing half-written"
        );
        let ann = store
            .person_by_card("12:3456")
            .expect("query")
            .expect("found");
        assert_eq!(
            (ann.id.as_str(), ann.card.as_deref()),
            ("ann", Some("12:3456"))
        );
        assert!(store.person_by_card("12:3457").expect("query").is_none());
    }

    #[test]
    fn an_import_is_all_or_nothing_and_its_templates_are_sealed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = NodeStore::open(&dir.path().join("n.sqlite"), key()).expect("open");
        let person = |id: &str, x: f32| ImportedPerson {
            id: id.into(),
            display_name: id.to_uppercase(),
            card: None,
            templates: vec![vec![x, 1.0]],
        };
        store
            .import_people("m", &[person("a", 0.5), person("b", -0.5)])
            .expect("import");
        let t = store.templates("m").expect("templates");
        assert_eq!(t.len(), 2);
        assert!(
            t.iter()
                .any(|t| t.person_id == "b" && t.vector == [-0.5, 1.0])
        );
        let sealed: i64 = store
            .conn
            .query_row("SELECT MIN(sealed) FROM face_templates", [], |r| r.get(0))
            .expect("query");
        assert_eq!(sealed, 1);
        // "a" exists: nothing of this batch is kept.
        assert!(matches!(
            store.import_people("m", &[person("c", 0.1), person("a", 0.2)]),
            Err(StoreError::PersonExists(id)) if id == "a"
        ));
        assert!(store.person("c").expect("query").is_none());
        assert_eq!(store.templates("m").expect("templates").len(), 2);
    }

    #[test]
    fn templates_round_trip_and_need_a_person() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = NodeStore::open(&dir.path().join("n.sqlite"), key()).expect("open");
        assert!(matches!(
            store.add_template("t0", "ghost", "m", &[1.0]),
            Err(StoreError::NoSuchPerson(_))
        ));
        store.add_person("ann", "Ann", None).expect("person");
        assert!(matches!(
            store.add_person("ann", "Ann again", None),
            Err(StoreError::PersonExists(_))
        ));
        store
            .add_template("t1", "ann", "m", &[0.5, -0.25])
            .expect("template");
        let t = store.templates("m").expect("templates");
        assert_eq!(t[0].vector, [0.5, -0.25]);
        assert!(store.templates("other").expect("templates").is_empty());
        assert_eq!(
            store
                .person("ann")
                .expect("query")
                .expect("found")
                .templates,
            1
        );
    }
}
