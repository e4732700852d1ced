//! The per-tenant stream: every published change, numbered in the transaction that makes it.
//! A publisher reserves its numbers by raising its tenant's head row (`stream_heads`), which it
//! holds locked until commit — so number 11 never commits before 10, and a client resuming
//! after 10 cannot miss it. The hub fans messages out from here and a reconnecting client reads
//! its gap here; messages older than the retention window are purged (`maintenance`), and a
//! gap reaching past them is answered with `resync`.

use serde::Serialize;

use crate::server::store::{
    Store, StoreError, TenantScope,
    exec::{Exec, in_tenant},
};
use rollcall_service::clock::now_ms;

/// How long messages are kept for resuming clients.
pub const RETENTION_MS: i64 = 24 * 3600 * 1000;

/// A change to publish: its topic (`tenant`, `site:<id>`, `user:<id>`, `role:<role>`), its
/// message type and its data (one documented schema per type, `realtime::messages`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub topic: String,
    pub kind: &'static str,
    pub data: serde_json::Value,
}

/// A message of the stream, as clients get it (the envelope).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    #[serde(rename = "type")]
    pub kind: String,
    pub topic: String,
    /// The tenant's stream number: increasing, without gaps.
    pub seq: i64,
    /// When it was published (ms since the Unix epoch).
    pub time: i64,
    pub data: serde_json::Value,
}

/// The numbers the stream of a tenant holds: `oldest` (none when empty) to `head`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub oldest: Option<i64>,
    pub head: i64,
}

/// Appends `messages` to the transaction's tenant's stream, in order; the last number, or
/// `None` when there was nothing to publish. The hubs hear of it once the transaction commits.
pub(crate) async fn publish(
    tx: &impl Exec,
    messages: &[NewMessage],
) -> Result<Option<i64>, StoreError> {
    if messages.is_empty() {
        return Ok(None);
    }
    let n = messages.len() as i64;
    let last: i64 = tx
        .query_opt(
            "INSERT INTO stream_heads (tenant_id, seq) VALUES ($1, $2)
             ON CONFLICT (tenant_id) DO UPDATE SET seq = stream_heads.seq + excluded.seq
             RETURNING seq",
            &[&tx.tenant(), &n],
            |r| r.get(0),
        )
        .await?
        .ok_or_else(|| StoreError::Inconsistent("the stream head was not returned".into()))?;
    let first = last - n + 1;
    let now = now_ms();
    let data: Vec<String> = messages.iter().map(|m| m.data.to_string()).collect();
    match tx.postgres() {
        Some(pg) => {
            let seqs: Vec<i64> = (first..=last).collect();
            let topics: Vec<&str> = messages.iter().map(|m| m.topic.as_str()).collect();
            let kinds: Vec<&str> = messages.iter().map(|m| m.kind).collect();
            pg.execute_native(
                "INSERT INTO stream_messages (tenant_id, seq, topic, kind, data, created_ms)
                 SELECT $1, u.seq, u.topic, u.kind, u.data, $2
                 FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[])
                      AS u(seq, topic, kind, data)",
                &[&pg.tenant(), &now, &seqs, &topics, &kinds, &data],
            )
            .await?;
        }
        None => {
            let insert = tx
                .prepare(
                    "INSERT INTO stream_messages (tenant_id, seq, topic, kind, data, created_ms)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .await?;
            for (i, (m, d)) in messages.iter().zip(&data).enumerate() {
                tx.execute_prepared(
                    &insert,
                    &[
                        &tx.tenant(),
                        &(first + i as i64),
                        &m.topic,
                        &m.kind,
                        d,
                        &now,
                    ],
                )
                .await?;
            }
        }
    }
    tx.published().await?;
    Ok(Some(last))
}

fn read_message(r: &crate::server::store::exec::Row<'_>) -> Result<Message, StoreError> {
    let data: String = r.get(3)?;
    Ok(Message {
        seq: r.get(0)?,
        topic: r.get(1)?,
        kind: r.get(2)?,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
        time: r.get(4)?,
    })
}

impl Store {
    /// The tenant's messages after `after`, oldest first, at most `limit`.
    pub async fn stream_after(
        &self,
        scope: &TenantScope,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        in_tenant!(read self, scope, |tx| tx.query(
            "SELECT seq, topic, kind, data, created_ms FROM stream_messages
             WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&tx.tenant(), &after, &i64::from(limit)],
            read_message,
        ))
    }

    /// The oldest number the tenant's stream still holds and its head.
    pub async fn stream_bounds(&self, scope: &TenantScope) -> Result<Bounds, StoreError> {
        in_tenant!(read self, scope, |tx| async {
            let (oldest, head): (Option<i64>, Option<i64>) = tx
                .query_opt(
                    "SELECT (SELECT min(seq) FROM stream_messages WHERE tenant_id = $1),
                            (SELECT seq FROM stream_heads WHERE tenant_id = $1)",
                    &[&tx.tenant()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .await?
                .unwrap_or((None, None));
            Ok::<_, StoreError>(Bounds {
                oldest,
                head: head.unwrap_or(0),
            })
        })
    }

    /// Deletes the tenant's messages published before `before_ms`; how many went.
    pub async fn prune_stream(
        &self,
        scope: &TenantScope,
        before_ms: i64,
    ) -> Result<u64, StoreError> {
        in_tenant!(internal self, scope, |tx| tx.execute(
            "DELETE FROM stream_messages WHERE tenant_id = $1 AND created_ms < $2",
            &[&tx.tenant(), &before_ms],
        ))
    }

    /// Publishes messages in a transaction of their own (changes that have no other write).
    pub async fn publish(
        &self,
        scope: &TenantScope,
        messages: Vec<NewMessage>,
    ) -> Result<Option<i64>, StoreError> {
        in_tenant!(internal self, scope, |tx| publish(tx, &messages))
    }
}
