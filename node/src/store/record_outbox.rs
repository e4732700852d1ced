//! The outbox of the node's other streams: its alarms and its audit log go up to the cloud too,
//! each line once (idempotent by a ULID given before its first push), in its stream's sequence
//! order. Triggers queue every new line in the same transaction that writes it, so nothing a
//! guard or an installer did on the node can be recorded without being queued; lines written
//! before this table existed are queued by its migration.

use rollcall_protocol::wire::{AlarmRecord, AuditRecord, MAX_VOICE_PER_PUSH, VoiceRecord};
use rusqlite::params;

use super::{
    NodeStore, StoreError, now_ms,
    voice::{VOICE, VOICE_READY, voice_record},
};

pub(super) const MIGRATION: &str = "
    CREATE TABLE record_outbox (
        stream TEXT NOT NULL CHECK (stream IN ('alarm', 'audit')),
        seq INTEGER NOT NULL,
        id TEXT UNIQUE,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        done_ms INTEGER,
        PRIMARY KEY (stream, seq)
    );
    CREATE INDEX record_outbox_pending ON record_outbox (state, stream, seq);
    INSERT INTO record_outbox (stream, seq) SELECT 'alarm', seq FROM alarms;
    INSERT INTO record_outbox (stream, seq) SELECT 'audit', seq FROM audit;
    CREATE TRIGGER alarms_queued AFTER INSERT ON alarms BEGIN
        INSERT INTO record_outbox (stream, seq) VALUES ('alarm', NEW.seq);
    END;
    CREATE TRIGGER audit_queued AFTER INSERT ON audit BEGIN
        INSERT INTO record_outbox (stream, seq) VALUES ('audit', NEW.seq);
    END;";

/// Pending alarms and audit lines, oldest first in each stream.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PendingRecords {
    pub alarms: Vec<AlarmRecord>,
    pub audit: Vec<AuditRecord>,
    /// Voice verification records whose audio the cloud holds already.
    pub voice: Vec<VoiceRecord>,
}

impl PendingRecords {
    pub fn len(&self) -> usize {
        self.alarms.len() + self.audit.len() + self.voice.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An alarm, an audit line or a person version the cloud refused, kept until an admin retries it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecordDeadLetter {
    /// `alarm`, `audit` or `person` (then the record is `{"id": upload id, "person_id"}`).
    pub stream: String,
    /// The line as it was pushed.
    pub record: serde_json::Value,
    /// The cloud's reason.
    pub reason: Option<String>,
    /// How many times it was pushed.
    pub attempts: i64,
    /// When the cloud refused it.
    pub refused_ms: Option<i64>,
}

/// How many alarm and audit lines wait for the cloud, and how many it refused.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecordStats {
    pub pending: u64,
    pub dead: u64,
}

/// A stream's lines with their outbox columns; append `WHERE …`.
const ALARMS: &str =
    "SELECT o.id, a.seq, a.kind, a.pd, a.detail, a.at_ms, o.last_error, o.attempts, o.done_ms
     FROM record_outbox o JOIN alarms a ON o.stream = 'alarm' AND a.seq = o.seq";
const AUDIT: &str = "SELECT o.id, u.seq, u.actor, u.action, u.subject, u.detail, u.at_ms, o.last_error, o.attempts, o.done_ms
     FROM record_outbox o JOIN audit u ON o.stream = 'audit' AND u.seq = o.seq";

/// A line's outbox columns.
struct Outbox {
    reason: Option<String>,
    attempts: i64,
    done_ms: Option<i64>,
}

fn alarm_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlarmRecord> {
    Ok(AlarmRecord {
        id: r.get(0)?,
        seq: r.get::<_, i64>(1)?.unsigned_abs(),
        kind: r.get(2)?,
        pd: r.get(3)?,
        detail: r.get(4)?,
        node_time_ms: r.get(5)?,
    })
}

fn audit_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        id: r.get(0)?,
        seq: r.get::<_, i64>(1)?.unsigned_abs(),
        actor: r.get(2)?,
        action: r.get(3)?,
        subject: r.get(4)?,
        detail: r.get(5)?,
        node_time_ms: r.get(6)?,
    })
}

impl NodeStore {
    /// The oldest pending lines, alarms first (at most `limit` in all), each with its id; lines
    /// that have none yet get one now, stamped with their own time, and keep it for good.
    pub fn pending_records(&mut self, limit: u32) -> Result<PendingRecords, StoreError> {
        let tx = self.conn.transaction()?;
        Self::name_records(&tx)?;
        tx.commit()?;
        let alarms = self.records(ALARMS, "pending", limit, alarm_record)?;
        let left = limit.saturating_sub(alarms.len() as u32);
        let audit = self.records(AUDIT, "pending", left, audit_record)?;
        let most = limit.min(MAX_VOICE_PER_PUSH as u32);
        let voice = self.records(VOICE_READY, "pending", most, voice_record)?;
        Ok(PendingRecords {
            alarms: alarms.into_iter().map(|(a, _)| a).collect(),
            audit: audit.into_iter().map(|(a, _)| a).collect(),
            voice: voice.into_iter().map(|(v, _)| v).collect(),
        })
    }

    /// Gives every pending line that has no id yet one, stamped with its own time; it keeps it
    /// for good (retries are idempotent).
    pub(super) fn name_records(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
        {
            let mut unnamed = tx.prepare(
                "SELECT o.stream, o.seq, coalesce(a.at_ms, u.at_ms, v.at_ms) FROM record_outbox o
                   LEFT JOIN alarms a ON o.stream = 'alarm' AND a.seq = o.seq
                   LEFT JOIN audit u ON o.stream = 'audit' AND u.seq = o.seq
                   LEFT JOIN voice_records v ON o.stream = 'voice' AND v.seq = o.seq
                  WHERE o.state = 'pending' AND o.id IS NULL",
            )?;
            let rows = unnamed
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut name =
                tx.prepare("UPDATE record_outbox SET id = ?1 WHERE stream = ?2 AND seq = ?3")?;
            for (stream, seq, at_ms) in rows {
                let at = u64::try_from(at_ms.unwrap_or_else(now_ms)).unwrap_or(0);
                let when = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at);
                let id = ulid::Ulid::from_datetime(when).to_string();
                name.execute(params![id, stream, seq])?;
            }
        }
        Ok(())
    }

    /// Lines of one stream in `state`, oldest first, each with its outbox columns.
    fn records<T>(
        &self,
        select: &str,
        state: &str,
        limit: u32,
        line: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<(T, Outbox)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{select} WHERE o.state = ?1 ORDER BY o.seq LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![state, limit], |r| {
            Ok((
                line(r)?,
                Outbox {
                    reason: r.get("last_error")?,
                    attempts: r.get("attempts")?,
                    done_ms: r.get("done_ms")?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks lines the cloud stored (or already had) as sent and refused ones as dead, within
    /// the caller's transaction; ids that are not lines are left alone.
    pub(super) fn settle_records(
        tx: &rusqlite::Transaction<'_>,
        done: &[String],
        rejected: &[(String, String)],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut sent = tx.prepare_cached(
            "UPDATE record_outbox SET state = 'sent', done_ms = ?1, attempts = attempts + 1, last_error = NULL
             WHERE id = ?2 AND state = 'pending'",
        )?;
        for id in done {
            sent.execute(params![now, id])?;
        }
        let mut dead = tx.prepare_cached(
            "UPDATE record_outbox SET state = 'dead', done_ms = ?1, attempts = attempts + 1, last_error = ?2
             WHERE id = ?3 AND state = 'pending'",
        )?;
        // The cloud lacks a voice record's audio (restored from an older backup, say): the
        // audio goes up again and the record stays pending.
        let mut lost_audio = tx.prepare_cached(
            "UPDATE voice_blobs SET uploaded_ms = NULL WHERE sha256 = (
                SELECT v.audio_sha256 FROM record_outbox o JOIN voice_records v ON o.stream = 'voice' AND v.seq = o.seq
                 WHERE o.id = ?1)",
        )?;
        let mut retry = tx.prepare_cached(
            "UPDATE record_outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1 AND state = 'pending'",
        )?;
        for (id, reason) in rejected {
            if reason.starts_with("blob_missing") && lost_audio.execute([id])? > 0 {
                retry.execute(params![id, reason])?;
                continue;
            }
            dead.execute(params![now, reason, id])?;
        }
        Self::drop_delivered_blobs(tx)?;
        Ok(())
    }

    /// The lines the cloud refused, newest refusal first, at most `limit`.
    pub fn record_dead_letters(&self, limit: u32) -> Result<Vec<RecordDeadLetter>, StoreError> {
        let dead =
            |stream: &str, record: Result<serde_json::Value, serde_json::Error>, o: Outbox| {
                record
                    .map(|record| RecordDeadLetter {
                        stream: stream.to_owned(),
                        record,
                        reason: o.reason,
                        attempts: o.attempts,
                        refused_ms: o.done_ms,
                    })
                    .map_err(|e| StoreError::Corrupt {
                        what: format!("{stream} dead letter"),
                        reason: e.to_string(),
                    })
            };
        let mut out = Vec::new();
        for (a, o) in self.records(ALARMS, "dead", u32::MAX, alarm_record)? {
            out.push(dead("alarm", serde_json::to_value(a), o)?);
        }
        for (a, o) in self.records(AUDIT, "dead", u32::MAX, audit_record)? {
            out.push(dead("audit", serde_json::to_value(a), o)?);
        }
        for (v, o) in self.records(VOICE, "dead", u32::MAX, voice_record)? {
            out.push(dead("voice", serde_json::to_value(v), o)?);
        }
        for p in self.person_dead_letters(limit)? {
            out.push(RecordDeadLetter {
                stream: "person".into(),
                record: serde_json::json!({ "id": p.upload_id, "person_id": p.person_id }),
                reason: p.reason,
                attempts: p.attempts,
                refused_ms: p.refused_ms,
            });
        }
        out.sort_by_key(|d| std::cmp::Reverse(d.refused_ms));
        out.truncate(limit as usize);
        Ok(out)
    }

    /// Puts a refused line back in the outbox, within the caller's transaction; whether it was
    /// one.
    pub(super) fn retry_record(
        tx: &rusqlite::Transaction<'_>,
        id: &str,
    ) -> Result<bool, StoreError> {
        Ok(tx.execute(
            "UPDATE record_outbox SET state = 'pending', done_ms = NULL WHERE state = 'dead' AND id = ?1",
            [id],
        )? > 0)
    }

    /// The cloud lacks these lines of `stream` (`first..=last` ranges) although this node sent
    /// them — its database was restored from an older backup, say: they are queued again, and
    /// a voice record whose audio has left the node since becomes a dead letter instead.
    /// Returns how many were queued again.
    pub fn resend_records(
        &mut self,
        stream: &str,
        missing: &[(u64, u64)],
    ) -> Result<u64, StoreError> {
        let tx = self.conn.transaction()?;
        let mut queued = 0;
        for &(first, last) in missing {
            let (first, last) = (
                i64::try_from(first).unwrap_or(i64::MAX),
                i64::try_from(last).unwrap_or(i64::MAX),
            );
            let again = tx.execute(
                "UPDATE record_outbox SET state = 'pending', done_ms = NULL
                 WHERE stream = ?1 AND state = 'sent' AND seq BETWEEN ?2 AND ?3",
                params![stream, first, last],
            )? as u64;
            let audio_gone = tx.execute(
                "UPDATE record_outbox SET state = 'dead', done_ms = ?3,
                        last_error = 'the cloud lost it after it was delivered, and its audio is no longer on this node'
                 WHERE stream = 'voice' AND ?4 = 'voice' AND state = 'pending' AND seq BETWEEN ?1 AND ?2
                   AND NOT EXISTS (SELECT 1 FROM voice_records v JOIN voice_blobs b ON b.sha256 = v.audio_sha256
                                   WHERE v.seq = record_outbox.seq)",
                params![first, last, now_ms(), stream],
            )? as u64;
            queued += again.saturating_sub(audio_gone);
        }
        tx.commit()?;
        Ok(queued)
    }

    /// Alarms, audit lines and people versions waiting for the cloud, and refused by it.
    pub fn record_stats(&self) -> Result<RecordStats, StoreError> {
        let (people_pending, people_dead) = self.person_queue_counts()?;
        let lines = self.conn.query_row(
            "SELECT
                (SELECT COUNT(*) FROM record_outbox WHERE state = 'pending'),
                (SELECT COUNT(*) FROM record_outbox WHERE state = 'dead')",
            [],
            |r| {
                Ok(RecordStats {
                    pending: r.get::<_, i64>(0)?.unsigned_abs(),
                    dead: r.get::<_, i64>(1)?.unsigned_abs(),
                })
            },
        )?;
        Ok(RecordStats {
            pending: lines.pending + people_pending,
            dead: lines.dead + people_dead,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::tests_support::store;

    #[test]
    fn alarms_and_audit_lines_are_queued_named_once_and_settled() {
        let (_dir, mut s) = store();
        s.record_alarm("door_forced", Some(0), "door 1")
            .expect("alarm");
        s.record_alarm("reader_offline", Some(1), "PD 1")
            .expect("alarm");
        s.add_person("p1", "Ann", None).expect("person");
        s.delete_person("p1", "admin").expect("delete");
        let first = s.pending_records(10).expect("pending");
        assert_eq!(first.alarms.len(), 2);
        assert_eq!(
            (first.alarms[0].seq, first.alarms[0].kind.as_str()),
            (1, "door_forced")
        );
        assert_eq!(first.alarms[1].pd, Some(1));
        let deleted = first
            .audit
            .iter()
            .find(|a| a.action == "person.deleted")
            .expect("the deletion is queued");
        assert_eq!(
            (deleted.actor.as_str(), deleted.subject.as_str()),
            ("admin", "p1")
        );
        // Ids are ULIDs, given once: asking again gives the same ones.
        let again = s.pending_records(10).expect("pending");
        assert_eq!(again, first);
        assert!(first.alarms.iter().all(|a| a.id.len() == 26));
        // The limit counts both streams, alarms first.
        let one = s.pending_records(1).expect("pending");
        assert_eq!((one.alarms.len(), one.audit.len()), (1, 0));

        let done = vec![first.alarms[0].id.clone(), deleted.id.clone()];
        let refused = vec![(first.alarms[1].id.clone(), "invalid_record: x".to_owned())];
        s.apply_ack(&done, &refused).expect("ack");
        let left = s.pending_records(10).expect("pending");
        assert!(left.alarms.is_empty());
        assert!(left.audit.iter().all(|a| a.id != deleted.id));
        let stats = s.record_stats().expect("stats");
        assert_eq!(stats.dead, 1);
        // (and the person removed here waits to go up to the cloud as well)
        assert_eq!(stats.pending, left.len() as u64 + 1);
        // The refused alarm is listed with the cloud's reason, and goes back by the events' retry.
        let dead = s.record_dead_letters(10).expect("dead letters");
        assert_eq!(dead.len(), 1);
        assert_eq!(
            (
                dead[0].stream.as_str(),
                &dead[0].record["kind"],
                dead[0].attempts
            ),
            ("alarm", &serde_json::json!("reader_offline"), 1)
        );
        assert_eq!(dead[0].reason.as_deref(), Some("invalid_record: x"));
        assert!(
            s.retry_dead_letter(&first.alarms[1].id, "admin")
                .expect("retry")
        );
        assert!(s.record_dead_letters(10).expect("dead letters").is_empty());
        assert!(
            !s.retry_dead_letter(&first.alarms[1].id, "admin")
                .expect("again")
        );
    }

    #[test]
    fn lines_a_restored_cloud_lost_are_sent_again_and_voice_without_its_audio_is_dead() {
        let (_dir, mut s) = store();
        for kind in ["tamper", "door_forced", "reader_offline"] {
            s.record_alarm(kind, Some(0), "").expect("alarm");
        }
        let voice = s
            .record_voice(&crate::store::test_voice(rollcall_protocol::wav::tone(
                440.0, 300,
            )))
            .expect("voice");
        s.mark_blob(&voice.audio_sha256, true).expect("uploaded");
        let sent = s.pending_records(10).expect("pending");
        let ids: Vec<String> = sent
            .alarms
            .iter()
            .map(|a| a.id.clone())
            .chain(sent.voice.iter().map(|v| v.id.clone()))
            .collect();
        s.apply_ack(&ids, &[]).expect("ack");
        assert!(s.pending_records(10).expect("pending").alarms.is_empty());
        // The cloud lost alarms 2..3 and the voice record (its audio already left the node).
        assert_eq!(s.resend_records("alarm", &[(2, 3)]).expect("resend"), 2);
        assert_eq!(s.resend_records("voice", &[(1, 1)]).expect("resend"), 0);
        let again = s.pending_records(10).expect("pending");
        let seqs: Vec<u64> = again.alarms.iter().map(|a| a.seq).collect();
        assert_eq!(seqs, [2, 3]);
        assert_eq!(
            again.alarms[0].id, sent.alarms[1].id,
            "same ids: idempotent"
        );
        let dead = s.record_dead_letters(10).expect("dead");
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].stream, "voice");
    }

    #[test]
    fn lines_written_before_the_outbox_existed_are_queued_by_its_migration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.sqlite");
        {
            let conn = rusqlite::Connection::open(&path).expect("open");
            conn.execute_batch(
                "CREATE TABLE alarms (seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL,
                    kind TEXT NOT NULL, pd INTEGER, detail TEXT NOT NULL);
                 CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL,
                    actor TEXT NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL);
                 INSERT INTO alarms (at_ms, kind, pd, detail) VALUES (1700000000000, 'tamper', 2, 'lid open');",
            )
            .expect("old tables");
            conn.execute_batch(super::MIGRATION).expect("migrate");
            conn.execute(
                "INSERT INTO audit (at_ms, actor, action, subject, detail) VALUES (1, 'a', 'b', 'c', '')",
                [],
            )
            .expect("a new line");
            let queued: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM record_outbox WHERE id IS NULL",
                    [],
                    |r| r.get(0),
                )
                .expect("count");
            assert_eq!(
                queued, 2,
                "the old alarm by the migration, the new line by its trigger"
            );
        }
    }
}
