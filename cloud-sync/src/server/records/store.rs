//! Alarms, audit lines and voice verification records pushed by nodes (`node_records`):
//! immutable facts, stored once by id, in the transaction of the push that brought them. A voice
//! record is stored only once its audio is (see `voice`); `plan` judges each record. Each stream numbers its items per node
//! (1, 2, 3, …) apart from events: a second id under a node's sequence number is a conflict, the
//! same id again a duplicate. An invalid record is rejected without blocking the others.

use serde::Serialize;

use crate::server::{
    records::{
        plan::{Existing, Stream, has_records, keys, plan, to_i64},
        voice::held_blobs,
    },
    store::{
        NodeRow, Store, StoreError, TenantScope,
        exec::{Exec, Row, in_tenant},
    },
    sync::rejections::node_exists,
};
use rollcall_protocol::wire::{AlarmRecord, AuditRecord, PushAck, PushBatch, VoiceRecord};

/// An alarm as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredAlarm {
    #[serde(flatten)]
    pub alarm: AlarmRecord,
    pub node_id: String,
    pub site_id: String,
    pub received_ms: i64,
}

/// A line of a node's audit log as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredNodeAudit {
    #[serde(flatten)]
    pub line: AuditRecord,
    pub node_id: String,
    pub site_id: String,
    pub received_ms: i64,
}

/// A voice verification record as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredVoice {
    #[serde(flatten)]
    pub record: VoiceRecord,
    pub node_id: String,
    pub site_id: String,
    pub received_ms: i64,
}

/// Which alarms to list, newest (by node time) first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlarmFilter {
    pub site_id: Option<String>,
    pub node_id: Option<String>,
    pub kind: Option<String>,
    /// Only alarms raised at or after this node time (ms).
    pub from_ms: Option<i64>,
    /// Only alarms raised before this node time (ms).
    pub to_ms: Option<i64>,
    /// Only alarms before this (node time, id): the last item of the previous page.
    pub before: Option<(i64, String)>,
}

/// Decodes a stored record's body.
pub fn decode<T: serde::de::DeserializeOwned>(id: &str, body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
        id: id.to_owned(),
        source,
    })
}

/// Columns read back by [`ALARMS`] and [`NODE_AUDIT`]: id, node_id, site_id, received_ms, body.
pub const ALARMS: &str = "SELECT id, node_id, site_id, received_ms, body FROM node_records
     WHERE tenant_id = $1 AND stream = 'alarm'
       AND (CAST($2 AS TEXT) IS NULL OR site_id = $2) AND (CAST($3 AS TEXT) IS NULL OR node_id = $3)
       AND (CAST($4 AS TEXT) IS NULL OR kind = $4)
       AND (CAST($5 AS BIGINT) IS NULL OR (node_time_ms, id) < (CAST($5 AS BIGINT), CAST($6 AS TEXT)))
       AND (CAST($8 AS BIGINT) IS NULL OR node_time_ms >= $8) AND (CAST($9 AS BIGINT) IS NULL OR node_time_ms < $9)
     ORDER BY node_time_ms DESC, id DESC LIMIT $7";

/// A node's records of one stream (`$5`), newest first.
pub const NODE_STREAM: &str = "SELECT id, node_id, site_id, received_ms, body FROM node_records
     WHERE tenant_id = $1 AND stream = $5 AND node_id = $2
       AND (CAST($3 AS BIGINT) IS NULL OR seq < $3)
     ORDER BY seq DESC LIMIT $4";

pub const INSERT: &str = "INSERT INTO node_records
     (tenant_id, id, node_id, site_id, stream, seq, kind, node_time_ms, received_ms, body)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// Rows of a listing: (id, node id, site id, received, body) → the stored record.
fn stored_alarm(
    id: &str,
    node_id: String,
    site_id: String,
    received_ms: i64,
    body: &str,
) -> Result<StoredAlarm, StoreError> {
    Ok(StoredAlarm {
        alarm: decode(id, body)?,
        node_id,
        site_id,
        received_ms,
    })
}

/// A node's audit line from its listing row.
pub fn stored_audit(
    (id, node_id, site_id, received_ms, body): Listing,
) -> Result<StoredNodeAudit, StoreError> {
    Ok(StoredNodeAudit {
        line: decode(&id, &body)?,
        node_id,
        site_id,
        received_ms,
    })
}

/// A node's voice verification from its listing row.
pub fn stored_voice(
    (id, node_id, site_id, received_ms, body): Listing,
) -> Result<StoredVoice, StoreError> {
    Ok(StoredVoice {
        record: decode(&id, &body)?,
        node_id,
        site_id,
        received_ms,
    })
}

/// Settles a refused record's sequence number (see [`Settled`]).
const SETTLE: &str =
    "INSERT INTO record_rejections (tenant_id, node_id, stream, seq, id, reason, at_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";
/// A node's watermark in one stream.
const MARK: &str = "SELECT watermark FROM node_stream_marks WHERE node_id = $1 AND stream = $2";
const SET_MARK: &str =
    "INSERT INTO node_stream_marks (tenant_id, node_id, stream, watermark) VALUES ($1, $2, $3, $4)
     ON CONFLICT (node_id, stream) DO UPDATE SET watermark = excluded.watermark";
/// The stream's sequence numbers the cloud holds or has settled above the watermark.
const ABOVE: &str = "SELECT seq FROM (
        SELECT seq FROM node_records WHERE node_id = $1 AND stream = $2 AND seq > $3
        UNION SELECT seq FROM record_rejections WHERE node_id = $1 AND stream = $2 AND seq > $3) s
     ORDER BY seq LIMIT $4";

/// The streams a batch carries records of.
fn streams_of(batch: &PushBatch) -> Vec<Stream> {
    [
        (Stream::Alarm, batch.alarms.is_empty()),
        (Stream::Audit, batch.audit.is_empty()),
        (Stream::Voice, batch.voice.is_empty()),
    ]
    .into_iter()
    .filter_map(|(s, empty)| (!empty).then_some(s))
    .collect()
}

/// A stream's new watermark and gaps, from its stored watermark and what is held above it.
fn stream_mark(
    stream: Stream,
    watermark: i64,
    above: &[u64],
) -> rollcall_protocol::wire::StreamMark {
    let (watermark, missing) =
        crate::server::sync::ingest::advance(watermark.unsigned_abs(), above);
    rollcall_protocol::wire::StreamMark {
        stream: stream.as_str().to_owned(),
        watermark,
        missing,
    }
}

impl Store {
    /// The tenant's alarms, newest (by node time) first.
    pub async fn alarms(
        &self,
        scope: &TenantScope,
        filter: AlarmFilter,
        limit: u32,
    ) -> Result<Vec<StoredAlarm>, StoreError> {
        in_tenant!(read self, scope, |tx| alarms(tx, &filter, limit))
    }

    /// A node's audit log as it pushed it, newest first, before sequence number `before` if
    /// given; `None` if the tenant has no such node.
    pub async fn node_audit(
        &self,
        scope: &TenantScope,
        node_id: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Option<Vec<StoredNodeAudit>>, StoreError> {
        let node = node_id.to_owned();
        in_tenant!(read self, scope, |tx| node_stream(tx, &node, Stream::Audit, before, limit))?
            .map(|rows| rows.into_iter().map(stored_audit).collect())
            .transpose()
    }

    /// A node's voice verification records before sequence number `before`, newest first;
    /// `None` if the tenant has no such node.
    pub async fn node_voice(
        &self,
        scope: &TenantScope,
        node_id: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Option<Vec<StoredVoice>>, StoreError> {
        let node = node_id.to_owned();
        in_tenant!(read self, scope, |tx| node_stream(tx, &node, Stream::Voice, before, limit))?
            .map(|rows| rows.into_iter().map(stored_voice).collect())
            .transpose()
    }
}

/// Judges and writes a push's records within the push's transaction; the alarms it stored
/// (published and notified with the push's events).
pub(crate) async fn ingest_records(
    tx: &impl Exec,
    node: &NodeRow,
    batch: &PushBatch,
    received_ms: i64,
    ack: &mut PushAck,
) -> Result<Vec<crate::server::realtime::messages::AlarmData>, StoreError> {
    if !has_records(batch) {
        return Ok(Vec::new());
    }
    let (ids, seqs, blobs) = keys(batch);
    let mut existing = Existing {
        blobs: held_blobs(tx, &blobs).await?.into_iter().collect(),
        ..Existing::default()
    };
    let read = |r: &Row<'_>| -> Result<(String, String, String, i64), StoreError> {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    };
    let held = match tx.postgres() {
        // One round trip for the whole batch.
        Some(pg) => {
            let streams: Vec<&str> = seqs.iter().map(|(s, _)| s.as_str()).collect();
            let seqs: Vec<i64> = seqs.iter().map(|&(_, q)| q).collect();
            pg.query_native(
                "SELECT id, node_id, stream, seq FROM node_records WHERE tenant_id = $1 AND id = ANY($2)
                 UNION
                 SELECT r.id, r.node_id, r.stream, r.seq FROM node_records r
                   JOIN unnest($4::text[], $5::bigint[]) AS k (stream, seq)
                     ON r.stream = k.stream AND r.seq = k.seq
                  WHERE r.node_id = $3",
                &[&tx.tenant(), &ids, &node.id, &streams, &seqs],
                read,
            )
            .await?
        }
        // In process: a lookup per key costs no round trip.
        None => {
            let mut held = Vec::new();
            for id in ids {
                held.extend(
                    tx.query_opt(
                        "SELECT id, node_id, stream, seq FROM node_records
                         WHERE tenant_id = $1 AND id = $2",
                        &[&tx.tenant(), &id],
                        read,
                    )
                    .await?,
                );
            }
            for (stream, seq) in seqs {
                held.extend(
                    tx.query_opt(
                        "SELECT id, node_id, stream, seq FROM node_records
                         WHERE node_id = $1 AND stream = $2 AND seq = $3",
                        &[&node.id, &stream.as_str(), &seq],
                        read,
                    )
                    .await?,
                );
            }
            held
        }
    };
    for (id, node_id, stream, seq) in held {
        existing.hold(node, id, node_id, &stream, seq);
    }
    let planned = plan(node, batch, &existing, ack)?;
    let live = planned
        .rows
        .iter()
        .filter(|r| r.stream == Stream::Alarm)
        .map(|r| crate::server::realtime::messages::alarm_data(node, r, received_ms))
        .collect();
    for r in planned.rows {
        tx.execute(
            INSERT,
            &[
                &tx.tenant(),
                &r.id,
                &node.id,
                &node.site_id,
                &r.stream.as_str(),
                &r.seq,
                &r.kind,
                &r.node_time_ms,
                &received_ms,
                &r.body,
            ],
        )
        .await?;
    }
    for s in &planned.settled {
        tx.execute(
            SETTLE,
            &[
                &tx.tenant(),
                &node.id,
                &s.stream.as_str(),
                &s.seq,
                &s.id,
                &s.reason,
                &received_ms,
            ],
        )
        .await?;
    }
    for stream in streams_of(batch) {
        let watermark: i64 = tx
            .query_opt(MARK, &[&node.id, &stream.as_str()], |r| r.get(0))
            .await?
            .unwrap_or(0);
        let above: Vec<u64> = tx
            .query(
                ABOVE,
                &[
                    &node.id,
                    &stream.as_str(),
                    &watermark,
                    &i64::from(crate::server::sync::ingest::SCAN_ABOVE_WATERMARK),
                ],
                |r| Ok(r.get::<i64>(0)?.unsigned_abs()),
            )
            .await?;
        let mark = stream_mark(stream, watermark, &above);
        tx.execute(
            SET_MARK,
            &[
                &tx.tenant(),
                &node.id,
                &stream.as_str(),
                &to_i64(mark.watermark),
            ],
        )
        .await?;
        ack.streams.push(mark);
    }
    Ok(live)
}

/// The alarms `f` picks, newest (by node time) first.
async fn alarms(
    tx: &impl Exec,
    f: &AlarmFilter,
    limit: u32,
) -> Result<Vec<StoredAlarm>, StoreError> {
    let rows = tx
        .query(
            ALARMS,
            &[
                &tx.tenant(),
                &f.site_id,
                &f.node_id,
                &f.kind,
                &f.before.as_ref().map(|b| b.0),
                &f.before.as_ref().map(|b| b.1.as_str()),
                &i64::from(limit),
                &f.from_ms,
                &f.to_ms,
            ],
            listing_row,
        )
        .await?;
    rows.into_iter()
        .map(|(id, node, site, received, body)| stored_alarm(&id, node, site, received, &body))
        .collect()
}

/// A node's records of `stream` before sequence number `before`, newest first; `None` if the
/// tenant has no such node.
async fn node_stream(
    tx: &impl Exec,
    node_id: &str,
    stream: Stream,
    before: Option<u64>,
    limit: u32,
) -> Result<Option<Vec<Listing>>, StoreError> {
    if !node_exists(tx, node_id).await? {
        return Ok(None);
    }
    let rows = tx
        .query(
            NODE_STREAM,
            &[
                &tx.tenant(),
                &node_id,
                &before.map(to_i64),
                &i64::from(limit),
                &stream.as_str(),
            ],
            listing_row,
        )
        .await?;
    Ok(Some(rows))
}

/// A listed record's (id, node id, site id, received, body).
pub type Listing = (String, String, String, i64, String);

fn listing_row(r: &Row<'_>) -> Result<Listing, StoreError> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}
