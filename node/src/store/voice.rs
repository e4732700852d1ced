//! Voice verification records: a phone or kiosk client that checked a guard's voice hands the
//! node the outcome and the audio it judged. The record goes up with the other streams (queued
//! by a trigger in `record_outbox`, stream `voice`); its audio goes up first, apart, as a blob
//! named by its sha256 (the cloud stores each sample once, whichever record points at it). A
//! blob stays on the node until every record that points at it is stored in the cloud.

use rollcall_protocol::wire::VoiceRecord;
use rusqlite::params;

use super::{NodeStore, StoreError, now_ms};

pub(super) const MIGRATION: &str = "
    CREATE TABLE voice_blobs (
        sha256 TEXT PRIMARY KEY,
        body BLOB NOT NULL,
        uploaded_ms INTEGER
    );
    CREATE TABLE voice_records (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        person_id TEXT,
        outcome TEXT NOT NULL,
        score REAL,
        device TEXT NOT NULL,
        phrase TEXT,
        audio_sha256 TEXT NOT NULL,
        audio_bytes INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL
    );
    DROP TRIGGER alarms_queued;
    DROP TRIGGER audit_queued;
    ALTER TABLE record_outbox RENAME TO record_outbox_before_voice;
    CREATE TABLE record_outbox (
        stream TEXT NOT NULL CHECK (stream IN ('alarm', 'audit', 'voice')),
        seq INTEGER NOT NULL,
        id TEXT UNIQUE,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        done_ms INTEGER,
        PRIMARY KEY (stream, seq)
    );
    INSERT INTO record_outbox SELECT * FROM record_outbox_before_voice;
    DROP TABLE record_outbox_before_voice;
    CREATE INDEX record_outbox_pending ON record_outbox (state, stream, seq);
    CREATE TRIGGER alarms_queued AFTER INSERT ON alarms BEGIN
        INSERT INTO record_outbox (stream, seq) VALUES ('alarm', NEW.seq);
    END;
    CREATE TRIGGER audit_queued AFTER INSERT ON audit BEGIN
        INSERT INTO record_outbox (stream, seq) VALUES ('audit', NEW.seq);
    END;
    CREATE TRIGGER voice_queued AFTER INSERT ON voice_records BEGIN
        INSERT INTO record_outbox (stream, seq) VALUES ('voice', NEW.seq);
    END;";

/// A voice verification as a client reports it, its audio checked (`rollcall_protocol::wav`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewVoiceRecord {
    pub person_id: Option<String>,
    pub outcome: String,
    pub score: Option<f32>,
    pub device: String,
    pub phrase: Option<String>,
    pub audio: Vec<u8>,
    pub duration_ms: u64,
}

/// The stored record's sequence number and audio digest.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredVoice {
    pub seq: i64,
    pub audio_sha256: String,
}

/// Columns of a voice record, joined to its outbox row; append `WHERE …`.
pub(super) const VOICE: &str = "SELECT o.id, v.seq, v.person_id, v.outcome, v.score, v.device, v.phrase,
            v.audio_sha256, v.audio_bytes, v.duration_ms, v.at_ms, o.last_error, o.attempts, o.done_ms
     FROM record_outbox o JOIN voice_records v ON o.stream = 'voice' AND v.seq = o.seq";

/// [`VOICE`], only records whose audio the cloud holds; append `WHERE …`.
pub(super) const VOICE_READY: &str = "SELECT o.id, v.seq, v.person_id, v.outcome, v.score, v.device, v.phrase,
            v.audio_sha256, v.audio_bytes, v.duration_ms, v.at_ms, o.last_error, o.attempts, o.done_ms
     FROM record_outbox o JOIN voice_records v ON o.stream = 'voice' AND v.seq = o.seq
     JOIN voice_blobs b ON b.sha256 = v.audio_sha256 AND b.uploaded_ms IS NOT NULL";

pub(super) fn voice_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<VoiceRecord> {
    Ok(VoiceRecord {
        id: r.get(0)?,
        seq: r.get::<_, i64>(1)?.unsigned_abs(),
        person_id: r.get(2)?,
        outcome: r.get(3)?,
        score: r.get::<_, Option<f64>>(4)?.map(|s| s as f32),
        device: r.get(5)?,
        phrase: r.get(6)?,
        audio_sha256: r.get(7)?,
        audio_bytes: r.get::<_, i64>(8)?.unsigned_abs(),
        duration_ms: r.get::<_, i64>(9)?.unsigned_abs(),
        node_time_ms: r.get(10)?,
    })
}

impl NodeStore {
    /// Stores a voice verification and its audio (once per digest) in one transaction, and
    /// queues the record for the cloud.
    pub fn record_voice(&mut self, v: &NewVoiceRecord) -> Result<StoredVoice, StoreError> {
        use sha2::Digest as _;
        let sha = hex::encode(sha2::Sha256::digest(&v.audio));
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO voice_blobs (sha256, body) VALUES (?1, ?2) ON CONFLICT (sha256) DO NOTHING",
            params![sha, v.audio],
        )?;
        tx.execute(
            "INSERT INTO voice_records (at_ms, person_id, outcome, score, device, phrase, audio_sha256, audio_bytes, duration_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                now_ms(),
                v.person_id,
                v.outcome,
                v.score.map(f64::from),
                v.device,
                v.phrase,
                sha,
                v.audio.len() as i64,
                i64::try_from(v.duration_ms).unwrap_or(i64::MAX)
            ],
        )?;
        let seq = tx.last_insert_rowid();
        tx.commit()?;
        Ok(StoredVoice {
            seq,
            audio_sha256: sha,
        })
    }

    /// Audio of pending records that the cloud has not been given yet: `(sha256, bytes)`, at
    /// most `limit`.
    pub fn blobs_to_upload(&self, limit: u32) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT b.sha256, b.body FROM voice_blobs b
             WHERE b.uploaded_ms IS NULL AND EXISTS (
                SELECT 1 FROM voice_records v JOIN record_outbox o ON o.stream = 'voice' AND o.seq = v.seq
                 WHERE v.audio_sha256 = b.sha256 AND o.state = 'pending')
             LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The cloud holds this audio (`true`), or said it does not (`false`: it is sent again).
    pub fn mark_blob(&self, sha256: &str, uploaded: bool) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE voice_blobs SET uploaded_ms = ?2 WHERE sha256 = ?1",
            params![sha256, uploaded.then(now_ms)],
        )?;
        Ok(())
    }

    /// The cloud refused this audio for good: the pending records that point at it become dead
    /// letters with `reason`.
    pub fn refuse_blob(&mut self, sha256: &str, reason: &str) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        // Dead letters are retried by id: they get theirs now if they have none yet.
        Self::name_records(&tx)?;
        tx.execute(
            "UPDATE record_outbox SET state = 'dead', done_ms = ?3, attempts = attempts + 1, last_error = ?2
             WHERE stream = 'voice' AND state = 'pending'
               AND seq IN (SELECT seq FROM voice_records WHERE audio_sha256 = ?1)",
            params![sha256, reason, now_ms()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Drops the audio that every record pointing at it has delivered, within the caller's
    /// transaction (the cloud holds it; a dead letter keeps its audio for a retry).
    pub(super) fn drop_delivered_blobs(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
        tx.execute(
            "DELETE FROM voice_blobs WHERE uploaded_ms IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM voice_records v JOIN record_outbox o ON o.stream = 'voice' AND o.seq = v.seq
                 WHERE v.audio_sha256 = voice_blobs.sha256 AND o.state != 'sent')",
            [],
        )?;
        Ok(())
    }
}

/// A verified voice record of `audio` (300 ms of it), for tests.
#[cfg(test)]
pub(crate) fn test_voice(audio: Vec<u8>) -> NewVoiceRecord {
    NewVoiceRecord {
        person_id: None,
        outcome: "verified".into(),
        score: None,
        device: "phone".into(),
        phrase: None,
        audio,
        duration_ms: 300,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::store;
    use super::*;

    fn sample(outcome: &str, audio: Vec<u8>) -> NewVoiceRecord {
        NewVoiceRecord {
            person_id: Some("E-1042".into()),
            outcome: outcome.into(),
            score: Some(0.9),
            device: "phone-7".into(),
            phrase: Some("four two seven".into()),
            audio,
            duration_ms: 1_000,
        }
    }

    #[test]
    fn records_wait_for_their_audio_and_the_audio_goes_once_delivered() {
        let (_dir, mut s) = store();
        let audio = rollcall_protocol::wav::tone(440.0, 1_000);
        let first = s
            .record_voice(&sample("verified", audio.clone()))
            .expect("first");
        let second = s
            .record_voice(&sample("rejected", audio.clone()))
            .expect("second");
        assert_eq!(first.audio_sha256, second.audio_sha256, "one blob for both");
        assert_eq!(first.audio_sha256.len(), 64);
        // Not pushed before the cloud has the audio.
        assert!(s.pending_records(10).expect("pending").voice.is_empty());
        let blobs = s.blobs_to_upload(10).expect("blobs");
        assert_eq!(blobs, vec![(first.audio_sha256.clone(), audio)]);
        s.mark_blob(&first.audio_sha256, true).expect("uploaded");
        assert!(s.blobs_to_upload(10).expect("blobs").is_empty());
        let pending = s.pending_records(10).expect("pending").voice;
        assert_eq!(pending.len(), 2);
        assert_eq!(
            (
                pending[0].seq,
                pending[0].outcome.as_str(),
                pending[0].audio_bytes
            ),
            (1, "verified", 32_044)
        );
        // The cloud lost the audio: the record stays pending and the audio goes up again.
        s.apply_ack(
            &[],
            &[(pending[0].id.clone(), "blob_missing: upload it".into())],
        )
        .expect("ack");
        assert_eq!(s.blobs_to_upload(10).expect("blobs").len(), 1);
        assert!(s.record_dead_letters(10).expect("dead").is_empty());
        s.mark_blob(&first.audio_sha256, true).expect("uploaded");
        // One record stored, the other refused: the audio stays for the dead letter's retry.
        let ids: Vec<String> = pending.iter().map(|v| v.id.clone()).collect();
        s.apply_ack(&ids[..1], &[(ids[1].clone(), "invalid_record: x".into())])
            .expect("ack");
        let held: i64 = s
            .conn
            .query_row("SELECT COUNT(*) FROM voice_blobs", [], |r| r.get(0))
            .expect("count");
        assert_eq!(held, 1);
        let dead = s.record_dead_letters(10).expect("dead");
        assert_eq!(
            (dead[0].stream.as_str(), &dead[0].record["outcome"]),
            ("voice", &serde_json::json!("rejected"))
        );
        assert!(s.retry_dead_letter(&ids[1], "admin").expect("retry"));
        let again = s.pending_records(10).expect("pending").voice;
        s.apply_ack(&[again[0].id.clone()], &[]).expect("ack");
        let held: i64 = s
            .conn
            .query_row("SELECT COUNT(*) FROM voice_blobs", [], |r| r.get(0))
            .expect("count");
        assert_eq!(held, 0, "every record delivered: the audio is dropped");
    }

    #[test]
    fn audio_the_cloud_refuses_for_good_turns_its_records_into_dead_letters() {
        let (_dir, mut s) = store();
        let v = s
            .record_voice(&sample(
                "verified",
                rollcall_protocol::wav::tone(300.0, 500),
            ))
            .expect("record");
        s.refuse_blob(&v.audio_sha256, "audio refused (422)")
            .expect("refuse");
        assert!(s.blobs_to_upload(10).expect("blobs").is_empty());
        let dead = s.record_dead_letters(10).expect("dead");
        assert_eq!(dead[0].reason.as_deref(), Some("audio refused (422)"));
    }
}
