//! People enrolled, edited or removed at this node go up to the cloud: each person whose
//! version the node wrote itself waits in `person_outbox` until the cloud has merged their
//! latest version (the cloud keeps the loser of any conflict in its history). Triggers queue
//! every own version in the transaction that writes it — whichever code path writes it — and a
//! person's later edit re-queues them under a new upload id, so an acknowledgement of an older
//! upload never settles a newer edit. A version pulled from the cloud that wins drops the queued
//! one (it is in the node's history already).
//!
//! The node's own versions are stamped with origin `node` until the node learns its id from the
//! cloud (`GET /api/v1/sync/whoami`); it then renames them, so the versions the cloud sends
//! back are recognised as its own.

use base64::Engine as _;
use rollcall_protocol::{
    merge::Hlc,
    wire::{PersonState, PersonUpload, TemplateRecord},
};
use rusqlite::{OptionalExtension, params};

use super::{NodeStore, StoreError};

/// The queue, its triggers, and the people the node holds on its own version when it is made.
/// A version is the node's when its origin is `node`, the node's id (`node_origin`), or absent
/// (a row older than versions). Queuing a person again replaces their row: a new upload id is
/// given, and a dead letter becomes pending (the edit may have fixed what the cloud refused).
pub(super) const MIGRATION: &str = "
    CREATE TABLE node_origin (one INTEGER PRIMARY KEY CHECK (one = 1), origin TEXT NOT NULL);
    CREATE TABLE person_outbox (
        person_id TEXT PRIMARY KEY,
        id TEXT UNIQUE,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        done_ms INTEGER
    );
    CREATE TRIGGER people_queued AFTER INSERT ON people
        WHEN NEW.version IS NULL
          OR json_extract(NEW.version, '$.origin') IN ('node', (SELECT origin FROM node_origin))
    BEGIN
        INSERT OR REPLACE INTO person_outbox (person_id) VALUES (NEW.id);
    END;
    CREATE TRIGGER people_requeued AFTER UPDATE OF version ON people
        WHEN NEW.version IS NULL
          OR json_extract(NEW.version, '$.origin') IN ('node', (SELECT origin FROM node_origin))
    BEGIN
        INSERT OR REPLACE INTO person_outbox (person_id) VALUES (NEW.id);
    END;
    CREATE TRIGGER tombstones_queued AFTER INSERT ON person_tombstones
        WHEN NOT NEW.erased
         AND json_extract(NEW.version, '$.origin') IN ('node', (SELECT origin FROM node_origin))
    BEGIN
        INSERT OR REPLACE INTO person_outbox (person_id) VALUES (NEW.person_id);
    END;
    CREATE TRIGGER tombstones_requeued AFTER UPDATE OF version ON person_tombstones
        WHEN NOT NEW.erased
         AND json_extract(NEW.version, '$.origin') IN ('node', (SELECT origin FROM node_origin))
    BEGIN
        INSERT OR REPLACE INTO person_outbox (person_id) VALUES (NEW.person_id);
    END;
    INSERT INTO person_outbox (person_id)
        SELECT id FROM people WHERE version IS NULL OR json_extract(version, '$.origin') = 'node'
        UNION
        SELECT person_id FROM person_tombstones
         WHERE NOT erased AND json_extract(version, '$.origin') = 'node';";

/// A person version the cloud refused, kept until an admin retries it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PersonDeadLetter {
    pub upload_id: String,
    pub person_id: String,
    pub reason: Option<String>,
    pub attempts: i64,
    pub refused_ms: Option<i64>,
}

fn parse(person: &str, text: &str) -> Result<Hlc, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: format!("person {person}'s version"),
        reason: e.to_string(),
    })
}

impl NodeStore {
    /// The origin the node stamps its versions with: its id in the cloud once known.
    pub fn node_origin(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT origin FROM node_origin", [], |r| r.get(0))
            .optional()?)
    }

    /// Takes the node's id in the cloud as the origin of its versions: those stamped `node`
    /// are renamed (and so queued again), and later edits carry it. Idempotent.
    pub fn adopt_origin(&mut self, node_id: &str) -> Result<(), StoreError> {
        if self.node_origin()?.as_deref() == Some(node_id) {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO node_origin (one, origin) VALUES (1, ?1)
             ON CONFLICT (one) DO UPDATE SET origin = excluded.origin",
            [node_id],
        )?;
        for (table, key) in [("people", "id"), ("person_tombstones", "person_id")] {
            let renamed: Vec<(String, String)> = {
                let mut stmt = tx.prepare(&format!(
                    "SELECT {key}, version FROM {table}
                     WHERE json_extract(version, '$.origin') = 'node'"
                ))?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<Result<_, _>>()?
            };
            for (id, version) in renamed {
                let hlc = Hlc {
                    origin: node_id.to_owned(),
                    ..parse(&id, &version)?
                };
                tx.execute(
                    &format!("UPDATE {table} SET version = ?2 WHERE {key} = ?1"),
                    params![id, super::people_sync::to_text(&hlc)],
                )?;
            }
        }
        tx.commit()?;
        let clock = Self::resume_clock(&self.conn)?;
        *self.clock.borrow_mut() = clock;
        tracing::info!(node = %node_id, "the node's own versions of people now carry its id");
        Ok(())
    }

    /// The clock's origin as stored (`node` until the node learns its id).
    pub(super) fn clock_origin(conn: &rusqlite::Connection) -> Result<String, StoreError> {
        Ok(conn
            .query_row("SELECT origin FROM node_origin", [], |r| r.get(0))
            .optional()?
            .unwrap_or_else(|| super::people_sync::NODE_ORIGIN.to_owned()))
    }

    /// The queued people, as the node holds each now, at most `limit`; each with an upload id
    /// given now if it has none yet. Queued people whose current version is no longer the
    /// node's (a pulled one won, or they were erased) leave the queue.
    pub fn pending_people(&mut self, limit: u32) -> Result<Vec<PersonUpload>, StoreError> {
        let origin = Self::clock_origin(&self.conn)?;
        let tx = self.conn.unchecked_transaction()?;
        let queued: Vec<(String, Option<String>)> = {
            let mut stmt = tx.prepare_cached(
                "SELECT person_id, id FROM person_outbox WHERE state = 'pending' ORDER BY rowid LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(queued.len());
        for (person_id, upload_id) in queued {
            let Some((hlc, state)) = self.held_version(&tx, &person_id)? else {
                tx.execute(
                    "DELETE FROM person_outbox WHERE person_id = ?1",
                    [&person_id],
                )?;
                continue;
            };
            if hlc.origin != origin && hlc.origin != super::people_sync::NODE_ORIGIN {
                tx.execute(
                    "DELETE FROM person_outbox WHERE person_id = ?1",
                    [&person_id],
                )?;
                continue;
            }
            let id = match upload_id {
                Some(id) => id,
                None => {
                    let id = ulid::Ulid::new().to_string();
                    tx.execute(
                        "UPDATE person_outbox SET id = ?2 WHERE person_id = ?1",
                        params![person_id, id],
                    )?;
                    id
                }
            };
            out.push(PersonUpload {
                id,
                person_id,
                hlc,
                state,
            });
        }
        tx.commit()?;
        Ok(out)
    }

    /// What the node holds of a person and since which version: assigned with their templates
    /// (vectors opened), or unassigned (removed here); `None` if erased or unknown.
    fn held_version(
        &self,
        tx: &rusqlite::Transaction<'_>,
        person_id: &str,
    ) -> Result<Option<(Hlc, PersonState)>, StoreError> {
        let person: Option<(String, Option<String>)> = tx
            .query_row(
                "SELECT display_name, version FROM people WHERE id = ?1",
                [person_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((display_name, version)) = person {
            let hlc = match version {
                Some(v) => parse(person_id, &v)?,
                None => super::people_sync::ancient(),
            };
            let mut stmt = tx.prepare_cached(
                "SELECT id, model, vector FROM face_templates WHERE person_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([person_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })?;
            let mut templates = Vec::new();
            for row in rows {
                let (id, model, sealed) = row?;
                let bytes = self.open_template(&id, person_id, &model, &sealed)?;
                templates.push(TemplateRecord {
                    id,
                    model,
                    vector: base64::engine::general_purpose::STANDARD.encode(bytes),
                });
            }
            return Ok(Some((
                hlc,
                PersonState::Assigned {
                    display_name,
                    templates,
                },
            )));
        }
        let tomb: Option<String> = tx
            .query_row(
                "SELECT version FROM person_tombstones WHERE person_id = ?1 AND NOT erased",
                [person_id],
                |r| r.get(0),
            )
            .optional()?;
        tomb.map(|v| Ok((parse(person_id, &v)?, PersonState::Unassigned)))
            .transpose()
    }

    /// Settles uploads the cloud answered, within the caller's transaction: merged (or known)
    /// ones leave the queue, refused ones become dead letters; ids that are not uploads are
    /// left alone.
    pub(super) fn settle_people(
        tx: &rusqlite::Transaction<'_>,
        done: &[String],
        rejected: &[(String, String)],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut sent =
            tx.prepare_cached("DELETE FROM person_outbox WHERE id = ?1 AND state = 'pending'")?;
        for id in done {
            sent.execute([id])?;
        }
        let mut dead = tx.prepare_cached(
            "UPDATE person_outbox SET state = 'dead', done_ms = ?1, attempts = attempts + 1, last_error = ?2
             WHERE id = ?3 AND state = 'pending'",
        )?;
        for (id, reason) in rejected {
            dead.execute(params![now, reason, id])?;
        }
        Ok(())
    }

    /// A version pulled from the cloud replaced the node's: what was queued of it is moot.
    pub(super) fn unqueue_person(
        tx: &rusqlite::Transaction<'_>,
        person_id: &str,
    ) -> Result<(), StoreError> {
        tx.execute(
            "DELETE FROM person_outbox WHERE person_id = ?1",
            [person_id],
        )?;
        Ok(())
    }

    /// Uploads the cloud refused, newest refusal first.
    pub(super) fn person_dead_letters(
        &self,
        limit: u32,
    ) -> Result<Vec<PersonDeadLetter>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, person_id, last_error, attempts, done_ms FROM person_outbox
             WHERE state = 'dead' ORDER BY done_ms DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok(PersonDeadLetter {
                upload_id: r.get(0)?,
                person_id: r.get(1)?,
                reason: r.get(2)?,
                attempts: r.get(3)?,
                refused_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Puts a refused upload back in the queue, within the caller's transaction; whether it
    /// was one.
    pub(super) fn retry_person(
        tx: &rusqlite::Transaction<'_>,
        id: &str,
    ) -> Result<bool, StoreError> {
        Ok(tx.execute(
            "UPDATE person_outbox SET state = 'pending', done_ms = NULL WHERE state = 'dead' AND id = ?1",
            [id],
        )? > 0)
    }

    /// How many people wait to go up, and how many the cloud refused.
    pub(super) fn person_queue_counts(&self) -> Result<(u64, u64), StoreError> {
        Ok(self.conn.query_row(
            "SELECT (SELECT COUNT(*) FROM person_outbox WHERE state = 'pending'),
                    (SELECT COUNT(*) FROM person_outbox WHERE state = 'dead')",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?.unsigned_abs(),
                    r.get::<_, i64>(1)?.unsigned_abs(),
                ))
            },
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{now_ms, tests_support::store};
    use rollcall_protocol::wire::PersonChange;

    use super::*;

    fn ids(s: &mut NodeStore) -> Vec<String> {
        s.pending_people(100)
            .expect("pending")
            .into_iter()
            .map(|u| u.person_id)
            .collect()
    }

    #[test]
    fn own_edits_are_queued_settled_and_requeued_by_later_edits() {
        let (_dir, mut s) = store();
        s.add_person("ann", "Ann", None).expect("ann");
        s.add_template("t1", "ann", "m", &[0.25, 0.5])
            .expect("template");
        let first = s.pending_people(10).expect("pending");
        assert_eq!(first.len(), 1);
        let PersonState::Assigned {
            display_name,
            templates,
        } = &first[0].state
        else {
            panic!("ann is assigned here: {:?}", first[0].state);
        };
        assert_eq!((display_name.as_str(), templates.len()), ("Ann", 1));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&templates[0].vector)
            .expect("base64");
        assert_eq!(
            bytes,
            [0.25f32, 0.5]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>()
        );
        assert_eq!(first[0].hlc.origin, "node");
        // The upload keeps its id until it is settled.
        assert_eq!(s.pending_people(10).expect("again")[0].id, first[0].id);
        // An edit after the push gets a new id: the ack of the old upload leaves it queued.
        s.add_template("t2", "ann", "m", &[0.5, 0.5])
            .expect("template");
        s.apply_ack(&[first[0].id.clone()], &[]).expect("ack");
        let second = s.pending_people(10).expect("pending");
        assert_eq!(second.len(), 1);
        assert_ne!(second[0].id, first[0].id);
        assert!(second[0].hlc > first[0].hlc);
        s.apply_ack(&[second[0].id.clone()], &[]).expect("ack");
        assert!(ids(&mut s).is_empty());
        // A removal at the node goes up as `unassigned`.
        s.delete_person("ann", "admin").expect("delete");
        let gone = s.pending_people(10).expect("pending");
        assert_eq!(gone[0].state, PersonState::Unassigned);
        // Refused: a dead letter with the reason, retried by its id.
        s.apply_ack(&[], &[(gone[0].id.clone(), "unknown_site: x".into())])
            .expect("ack");
        assert!(ids(&mut s).is_empty());
        let dead = s.person_dead_letters(10).expect("dead");
        assert_eq!(dead[0].reason.as_deref(), Some("unknown_site: x"));
        assert_eq!(s.person_queue_counts().expect("counts"), (0, 1));
        assert!(s.retry_dead_letter(&gone[0].id, "admin").expect("retry"));
        assert_eq!(ids(&mut s), ["ann"]);
    }

    #[test]
    fn pulled_versions_are_not_queued_and_a_winning_pull_unqueues_the_nodes() {
        let (_dir, mut s) = store();
        let pulled = |id: &str, ms: u64, origin: &str| PersonChange {
            id: id.into(),
            hlc: Hlc {
                ms,
                counter: 0,
                origin: origin.into(),
            },
            state: PersonState::Assigned {
                display_name: id.into(),
                templates: vec![],
            },
        };
        s.apply_person_change(&pulled("bob", 10, "cloud"), "m", None)
            .expect("bob");
        s.apply_person_change(&pulled("cy", 10, "node-2"), "m", None)
            .expect("cy");
        assert!(ids(&mut s).is_empty(), "other writers' versions stay down");
        s.add_person("dee", "Dee", None).expect("dee");
        assert_eq!(ids(&mut s), ["dee"]);
        let later = now_ms().unsigned_abs() + 60_000;
        s.apply_person_change(&pulled("dee", later, "cloud"), "m", None)
            .expect("dee");
        assert!(
            ids(&mut s).is_empty(),
            "the cloud's later version replaced the node's"
        );
    }

    #[test]
    fn learning_the_node_id_renames_own_versions_and_stamps_later_ones() {
        let (_dir, mut s) = store();
        s.add_person("ann", "Ann", None).expect("ann");
        let before = s.pending_people(10).expect("pending");
        s.adopt_origin("node-7").expect("adopt");
        assert_eq!(s.node_origin().expect("origin").as_deref(), Some("node-7"));
        let after = s.pending_people(10).expect("pending");
        assert_eq!(after[0].hlc.origin, "node-7");
        assert_eq!(
            (after[0].hlc.ms, after[0].hlc.counter),
            (before[0].hlc.ms, before[0].hlc.counter)
        );
        assert_ne!(
            after[0].id, before[0].id,
            "renamed is re-queued under a new id"
        );
        s.adopt_origin("node-7").expect("again");
        s.add_person("bo", "Bo", None).expect("bo");
        let bo = s.pending_people(10).expect("pending");
        let bo = bo.iter().find(|u| u.person_id == "bo").expect("bo queued");
        assert_eq!(bo.hlc.origin, "node-7");
        assert!(bo.hlc > after[0].hlc);
        // The cloud sends the node's own version back: known, nothing changes or queues.
        s.apply_ack(&[after[0].id.clone(), bo.id.clone()], &[])
            .expect("ack");
        let echo = PersonChange {
            id: "bo".into(),
            hlc: bo.hlc.clone(),
            state: PersonState::Assigned {
                display_name: "Bo".into(),
                templates: vec![],
            },
        };
        let (merged, _) = s.apply_person_change(&echo, "m", None).expect("echo");
        assert_eq!(merged, rollcall_protocol::merge::Merged::Known);
        assert!(ids(&mut s).is_empty());
    }

    #[test]
    fn people_enrolled_before_the_queue_existed_are_queued_by_its_migration() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE people (id TEXT PRIMARY KEY, display_name TEXT NOT NULL, version TEXT);
             CREATE TABLE person_tombstones (person_id TEXT PRIMARY KEY, version TEXT NOT NULL, erased INTEGER NOT NULL);
             INSERT INTO people VALUES ('old', 'Old', NULL),
                ('mine', 'Mine', '{\"ms\":5,\"counter\":0,\"origin\":\"node\"}'),
                ('pulled', 'Pulled', '{\"ms\":5,\"counter\":0,\"origin\":\"cloud\"}');
             INSERT INTO person_tombstones VALUES
                ('left', '{\"ms\":6,\"counter\":0,\"origin\":\"node\"}', 0),
                ('erased', '{\"ms\":6,\"counter\":0,\"origin\":\"cloud\"}', 1);",
        )
        .expect("old schema");
        conn.execute_batch(MIGRATION).expect("migrate");
        let mut stmt = conn
            .prepare("SELECT person_id FROM person_outbox ORDER BY person_id")
            .expect("select");
        let queued: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("ids");
        assert_eq!(queued, ["left", "mine", "old"]);
    }
}
