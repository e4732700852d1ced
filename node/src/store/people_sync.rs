//! People pulled from the cloud, merged with the node's own edits by the rules of
//! [`rollcall_protocol::merge`]: every version of a person carries a hybrid logical clock
//! timestamp, the later one wins, an erasure wins over any edit, and the loser goes to
//! `person_history` (what it said, never its face vectors).
//!
//! A person the node holds has their version in `people.version`; one it dropped (unassigned
//! from the site, deleted by the node's admin, erased in the cloud) leaves a tombstone with the
//! version of that drop, so an older edit arriving late cannot bring them back.

use base64::Engine as _;
use rollcall_protocol::{
    merge::{Change, Clock, Hlc, Merged, Version},
    wire::{PersonChange, PersonState},
};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{NodeStore, StoreError, now_ms, template_context};

pub(super) const MIGRATION: &str = "ALTER TABLE people ADD COLUMN version TEXT;
    CREATE TABLE person_tombstones (
        person_id TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        erased INTEGER NOT NULL
    );
    CREATE TABLE person_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        person_id TEXT NOT NULL,
        version TEXT NOT NULL,
        state TEXT NOT NULL,
        outcome TEXT NOT NULL,
        at_ms INTEGER NOT NULL
    );
    CREATE INDEX person_history_by_person ON person_history (person_id, id);
    CREATE TABLE sync_cursors (
        stream TEXT PRIMARY KEY,
        cursor INTEGER NOT NULL
    );";

/// Who stamps the node's own edits.
pub(super) const NODE_ORIGIN: &str = "node";

/// What the in-memory gallery must do after a merge.
#[derive(Debug, Clone, PartialEq)]
pub enum GalleryChange {
    Keep,
    /// The person's templates are now exactly these vectors.
    Replace {
        person_id: String,
        vectors: Vec<Vec<f32>>,
    },
    Remove(String),
}

/// A version that lost, or was replaced, as `GET /api/v1/people/{id}/history` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PersonVersion {
    pub version: Hlc,
    /// What it said: `{"op": "assigned", "display_name": …, "templates": [ids]}`, …
    pub state: serde_json::Value,
    /// `replaced` (it was current until a later one won) or `lost` (it arrived and lost).
    pub outcome: String,
    pub at_ms: i64,
}

pub(super) fn to_text(h: &Hlc) -> String {
    serde_json::to_string(h).unwrap_or_default()
}

fn parse(what: &str, text: &str) -> Result<Hlc, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

/// The version of a node-held row written before versions existed: older than anything.
pub(super) fn ancient() -> Hlc {
    Hlc {
        ms: 0,
        counter: 0,
        origin: NODE_ORIGIN.into(),
    }
}

fn summary(state: &PersonState) -> serde_json::Value {
    match state {
        PersonState::Assigned {
            display_name,
            templates,
        } => assigned_summary(display_name, templates.iter().map(|t| t.id.as_str())),
        PersonState::Unassigned => serde_json::json!({ "op": "unassigned" }),
        PersonState::Erased => serde_json::json!({ "op": "erased" }),
    }
}

/// What an assigned version says: name and template ids (never vectors).
fn assigned_summary<'a>(
    display_name: &str,
    template_ids: impl Iterator<Item = &'a str>,
) -> serde_json::Value {
    serde_json::json!({
        "op": "assigned",
        "display_name": display_name,
        "templates": template_ids.collect::<Vec<_>>(),
    })
}

/// What the node holds of a person now: the version and what it says.
fn current(
    tx: &Transaction<'_>,
    id: &str,
) -> Result<Option<(Version<()>, serde_json::Value)>, StoreError> {
    let held: Option<(Option<String>, String)> = tx
        .query_row(
            "SELECT version, display_name FROM people WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((version, name)) = held {
        let hlc = match version {
            Some(v) => parse(&format!("person {id}"), &v)?,
            None => ancient(),
        };
        let templates: Vec<String> = {
            let mut stmt = tx
                .prepare_cached("SELECT id FROM face_templates WHERE person_id = ?1 ORDER BY id")?;
            let rows = stmt.query_map([id], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        return Ok(Some((
            Version {
                hlc,
                change: Change::Edit { state: () },
            },
            assigned_summary(&name, templates.iter().map(String::as_str)),
        )));
    }
    let tomb: Option<(String, bool)> = tx
        .query_row(
            "SELECT version, erased FROM person_tombstones WHERE person_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    tomb.map(|(v, erased)| {
        let hlc = parse(&format!("tombstone {id}"), &v)?;
        Ok(if erased {
            (
                Version {
                    hlc,
                    change: Change::Erase,
                },
                serde_json::json!({ "op": "erased" }),
            )
        } else {
            (
                Version {
                    hlc,
                    change: Change::Edit { state: () },
                },
                serde_json::json!({ "op": "unassigned" }),
            )
        })
    })
    .transpose()
}

fn keep_history(
    tx: &Transaction<'_>,
    id: &str,
    version: &Hlc,
    state: &serde_json::Value,
    outcome: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO person_history (person_id, version, state, outcome, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, to_text(version), state.to_string(), outcome, now_ms()],
    )?;
    Ok(())
}

/// Drops a person's row and templates (and, for an erasure, their face in kept frames), and
/// leaves a tombstone at `version`.
fn drop_person(
    tx: &Transaction<'_>,
    id: &str,
    version: &Hlc,
    erased: bool,
) -> Result<(), StoreError> {
    tx.execute("DELETE FROM face_templates WHERE person_id = ?1", [id])?;
    if erased {
        tx.execute(
            "DELETE FROM frames WHERE event_seq IN (SELECT seq FROM events WHERE person_id = ?1)",
            [id],
        )?;
    }
    tx.execute("DELETE FROM people WHERE id = ?1", [id])?;
    tx.execute(
        "INSERT INTO person_tombstones (person_id, version, erased) VALUES (?1, ?2, ?3)
         ON CONFLICT (person_id) DO UPDATE SET version = excluded.version, erased = excluded.erased",
        params![id, to_text(version), erased],
    )?;
    Ok(())
}

fn decode_vector(b64: &str) -> Option<Vec<f32>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

impl NodeStore {
    /// The node's clock, resumed after every version it holds and its last event's stamp
    /// (across restarts).
    pub(super) fn resume_clock(conn: &rusqlite::Connection) -> Result<Clock, StoreError> {
        // The last event's stamp too: the clock stamps events as well as people.
        let mut stmt = conn.prepare(
            "SELECT version FROM people WHERE version IS NOT NULL
             UNION ALL SELECT version FROM person_tombstones
             UNION ALL SELECT * FROM (SELECT json_extract(body, '$.hlc') FROM events
                                      WHERE json_extract(body, '$.hlc') IS NOT NULL
                                      ORDER BY seq DESC LIMIT 1)",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut last: Option<Hlc> = None;
        for row in rows {
            let hlc = parse("a person's version", &row?)?;
            if last.as_ref().is_none_or(|l| hlc > *l) {
                last = Some(hlc);
            }
        }
        let mut clock = Clock::new(Self::clock_origin(conn)?);
        if let Some(last) = last {
            clock.observe(&last, 0);
        }
        Ok(clock)
    }

    /// The version, as stored, of an edit the node makes itself (an enrolment, a local
    /// deletion).
    pub(super) fn stamp_text(&self) -> String {
        to_text(&self.tick())
    }

    /// The node clock's next timestamp (people versions and events share the clock).
    pub(super) fn tick(&self) -> Hlc {
        self.clock.borrow_mut().tick(now_ms().max(0).unsigned_abs())
    }

    /// Refuses an id erased in the cloud; forgets the tombstone of one merely dropped (the
    /// node's new version is later than it).
    pub(super) fn clear_tombstone(tx: &rusqlite::Connection, id: &str) -> Result<(), StoreError> {
        let erased: Option<bool> = tx
            .query_row(
                "SELECT erased FROM person_tombstones WHERE person_id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        if erased == Some(true) {
            return Err(StoreError::PersonErased(id.to_owned()));
        }
        tx.execute("DELETE FROM person_tombstones WHERE person_id = ?1", [id])?;
        Ok(())
    }

    /// Leaves a (non-erasure) tombstone for a person the node's admin deleted.
    pub(super) fn tombstone_local_delete(
        tx: &Transaction<'_>,
        id: &str,
        stamp: &str,
    ) -> Result<(), StoreError> {
        tx.execute(
            "INSERT INTO person_tombstones (person_id, version, erased) VALUES (?1, ?2, 0)
             ON CONFLICT (person_id) DO UPDATE SET version = excluded.version",
            params![id, stamp],
        )?;
        Ok(())
    }

    /// Merges a person's version pulled from the cloud, in one transaction; templates of
    /// another model than `model`, or of another length than `dim` (the embedder's), are not
    /// kept — even into an empty gallery, which would otherwise adopt a wrong length and refuse
    /// every enrolment after. Says what the gallery must do.
    pub fn apply_person_change(
        &mut self,
        change: &PersonChange,
        model: &str,
        dim: Option<usize>,
    ) -> Result<(Merged, GalleryChange), StoreError> {
        self.clock
            .borrow_mut()
            .observe(&change.hlc, now_ms().max(0).unsigned_abs());
        let incoming = Version {
            hlc: change.hlc.clone(),
            change: match change.state {
                PersonState::Erased => Change::Erase,
                _ => Change::Edit { state: () },
            },
        };
        let tx = self.conn.transaction()?;
        let now = current(&tx, &change.id)?;
        let lost_before = tx
            .query_row(
                "SELECT 1 FROM person_history WHERE person_id = ?1 AND version = ?2",
                params![change.id, to_text(&change.hlc)],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if let Some((held, _)) = &now {
            if *held == incoming || lost_before {
                return Ok((Merged::Known, GalleryChange::Keep));
            }
            if !incoming.beats(held) {
                keep_history(
                    &tx,
                    &change.id,
                    &change.hlc,
                    &summary(&change.state),
                    "lost",
                )?;
                tx.commit()?;
                tracing::info!(person = %change.id, "a cloud version of a person lost to a later one here: kept in history");
                return Ok((Merged::Current, GalleryChange::Keep));
            }
        }
        if let Some((held, said)) = &now {
            keep_history(&tx, &change.id, &held.hlc, said, "replaced")?;
        }
        Self::unqueue_person(&tx, &change.id)?;
        let gallery = match &change.state {
            PersonState::Assigned {
                display_name,
                templates,
            } => {
                tx.execute(
                    "DELETE FROM person_tombstones WHERE person_id = ?1",
                    [&change.id],
                )?;
                tx.execute(
                    "INSERT INTO people (id, display_name, created_ms, version) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, version = excluded.version",
                    params![change.id, display_name, now_ms(), to_text(&change.hlc)],
                )?;
                tx.execute(
                    "DELETE FROM face_templates WHERE person_id = ?1",
                    [&change.id],
                )?;
                let mut vectors = Vec::new();
                for t in templates.iter().filter(|t| t.model == model) {
                    let Some(vector) = decode_vector(&t.vector) else {
                        tracing::warn!(person = %change.id, template = %t.id, "a pulled template is not a vector: skipped");
                        continue;
                    };
                    if dim.is_some_and(|d| d != vector.len()) {
                        tracing::warn!(person = %change.id, template = %t.id, length = vector.len(), embedder = ?dim, "a pulled template has another length than this node's embedder makes: skipped");
                        continue;
                    }
                    let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                    let sealed = self
                        .key
                        .seal(&template_context(&t.id, &change.id, model), &bytes)?;
                    tx.execute(
                        "INSERT INTO face_templates (id, person_id, model, vector, created_ms, sealed)
                         VALUES (?1, ?2, ?3, ?4, ?5, 1)
                         ON CONFLICT (id) DO UPDATE SET person_id = excluded.person_id, vector = excluded.vector",
                        params![t.id, change.id, model, sealed, now_ms()],
                    )?;
                    vectors.push(vector);
                }
                GalleryChange::Replace {
                    person_id: change.id.clone(),
                    vectors,
                }
            }
            PersonState::Unassigned | PersonState::Erased => {
                let erased = change.state == PersonState::Erased;
                drop_person(&tx, &change.id, &change.hlc, erased)?;
                GalleryChange::Remove(change.id.clone())
            }
        };
        tx.execute(
            "INSERT INTO audit (at_ms, actor, action, subject, detail) VALUES (?1, 'cloud', 'person.synced', ?2, ?3)",
            params![now_ms(), change.id, summary(&change.state)["op"].as_str().unwrap_or_default()],
        )?;
        tx.commit()?;
        Ok((Merged::Incoming, gallery))
    }

    /// Versions of a person that lost or were replaced, oldest first.
    pub fn person_versions(&self, id: &str) -> Result<Vec<PersonVersion>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT version, state, outcome, at_ms FROM person_history WHERE person_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get(2)?,
                r.get(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (version, state, outcome, at_ms) = row?;
            out.push(PersonVersion {
                version: parse("a history version", &version)?,
                state: serde_json::from_str(&state).unwrap_or(serde_json::Value::Null),
                outcome,
                at_ms,
            });
        }
        Ok(out)
    }

    /// Where the node is in a pull stream (0: from the start).
    pub fn sync_cursor(&self, stream: &str) -> Result<u64, StoreError> {
        let c: Option<i64> = self
            .conn
            .query_row(
                "SELECT cursor FROM sync_cursors WHERE stream = ?1",
                [stream],
                |r| r.get(0),
            )
            .optional()?;
        Ok(c.unwrap_or(0).max(0).unsigned_abs())
    }

    pub fn set_sync_cursor(&self, stream: &str, cursor: u64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO sync_cursors (stream, cursor) VALUES (?1, ?2)
             ON CONFLICT (stream) DO UPDATE SET cursor = excluded.cursor",
            params![stream, i64::try_from(cursor).unwrap_or(i64::MAX)],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::store;
    use super::*;
    use rollcall_protocol::wire::TemplateRecord;

    fn hlc(ms: u64) -> Hlc {
        Hlc {
            ms,
            counter: 0,
            origin: "cloud".into(),
        }
    }

    fn assigned(id: &str, ms: u64, name: &str, vectors: &[&[f32]]) -> PersonChange {
        PersonChange {
            id: id.into(),
            hlc: hlc(ms),
            state: PersonState::Assigned {
                display_name: name.into(),
                templates: vectors
                    .iter()
                    .enumerate()
                    .map(|(i, v)| TemplateRecord {
                        id: format!("{id}-t{i}"),
                        model: "m".into(),
                        vector: base64::engine::general_purpose::STANDARD
                            .encode(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()),
                    })
                    .collect(),
            },
        }
    }

    #[test]
    fn pulled_people_replace_older_versions_and_the_losers_are_kept() {
        let (_dir, mut s) = store();
        let (m, g) = s
            .apply_person_change(&assigned("ann", 10, "Ann", &[&[1.0, 0.0]]), "m", Some(2))
            .expect("apply");
        assert_eq!(m, Merged::Incoming);
        assert_eq!(
            g,
            GalleryChange::Replace {
                person_id: "ann".into(),
                vectors: vec![vec![1.0, 0.0]]
            }
        );
        assert_eq!(s.templates("m").expect("templates").len(), 1);
        // Re-delivered: nothing changes.
        let again = s
            .apply_person_change(&assigned("ann", 10, "Ann", &[&[1.0, 0.0]]), "m", Some(2))
            .expect("apply");
        assert_eq!(again.0, Merged::Known);
        // An older version arriving late loses, and is kept.
        let (m, _) = s
            .apply_person_change(&assigned("ann", 5, "Anne", &[]), "m", Some(2))
            .expect("apply");
        assert_eq!(m, Merged::Current);
        assert_eq!(
            s.person("ann").expect("p").expect("ann").display_name,
            "Ann"
        );
        // That loser delivered again (a page pulled twice) is known: kept once.
        let (m, _) = s
            .apply_person_change(&assigned("ann", 5, "Anne", &[]), "m", Some(2))
            .expect("apply");
        assert_eq!(m, Merged::Known);
        // A newer one with one template fewer: the template goes.
        s.apply_person_change(&assigned("ann", 20, "Ann B.", &[]), "m", Some(2))
            .expect("apply");
        assert!(s.templates("m").expect("templates").is_empty());
        // A template that is not a vector (bad base64, a length not a multiple of 4) is
        // skipped, the rest of the person applies.
        let mut bad = assigned("ann", 21, "Ann B.", &[&[0.5, 0.5]]);
        if let PersonState::Assigned { templates, .. } = &mut bad.state {
            templates.push(TemplateRecord {
                id: "bad-1".into(),
                model: "m".into(),
                vector: "!!!".into(),
            });
            templates.push(TemplateRecord {
                id: "bad-2".into(),
                model: "m".into(),
                vector: "AAAAAAA=".into(),
            });
            // Three numbers, where this embedder makes two: another model's, skipped.
            templates.push(TemplateRecord {
                id: "bad-3".into(),
                model: "m".into(),
                vector: base64::engine::general_purpose::STANDARD.encode([0u8; 12]),
            });
        }
        let (_, g) = s.apply_person_change(&bad, "m", Some(2)).expect("apply");
        assert!(matches!(g, GalleryChange::Replace { ref vectors, .. } if vectors.len() == 1));
        let history = s.person_versions("ann").expect("history");
        let outcomes: Vec<&str> = history.iter().map(|h| h.outcome.as_str()).collect();
        assert_eq!(outcomes, ["lost", "replaced", "replaced"]);
        assert_eq!(history[0].state["display_name"], "Anne");
    }

    #[test]
    fn an_erasure_beats_a_later_edit_and_the_id_stays_erased() {
        let (_dir, mut s) = store();
        s.apply_person_change(&assigned("bob", 10, "Bob", &[&[0.5, 0.5]]), "m", Some(2))
            .expect("apply");
        let erase = PersonChange {
            id: "bob".into(),
            hlc: hlc(11),
            state: PersonState::Erased,
        };
        let (_, g) = s.apply_person_change(&erase, "m", Some(2)).expect("apply");
        assert_eq!(g, GalleryChange::Remove("bob".into()));
        assert!(s.person("bob").expect("p").is_none());
        let (m, _) = s
            .apply_person_change(&assigned("bob", 99, "Bob", &[]), "m", Some(2))
            .expect("apply");
        assert_eq!(m, Merged::Current, "a later edit loses to the erasure");
        assert!(s.person("bob").expect("p").is_none());
        assert!(matches!(
            s.add_person("bob", "Bob", None),
            Err(StoreError::PersonErased(_))
        ));
    }

    #[test]
    fn a_local_enrolment_after_a_pull_wins_over_that_pull() {
        let (_dir, mut s) = store();
        s.apply_person_change(&assigned("cy", 10, "Cy", &[]), "m", Some(2))
            .expect("apply");
        // The node's own edit after the pull orders after it.
        s.add_template("local-1", "cy", "m", &[0.1, 0.2])
            .expect("template");
        let late = assigned("cy", 10, "Cy", &[]);
        let (m, _) = s
            .apply_person_change(
                &PersonChange {
                    hlc: hlc(10),
                    ..late
                },
                "m",
                Some(2),
            )
            .expect("apply");
        assert_eq!(m, Merged::Current);
        assert_eq!(s.templates("m").expect("templates").len(), 1);
        assert_eq!(s.sync_cursor("people").expect("cursor"), 0);
        s.set_sync_cursor("people", 42).expect("cursor");
        assert_eq!(s.sync_cursor("people").expect("cursor"), 42);
    }
}
