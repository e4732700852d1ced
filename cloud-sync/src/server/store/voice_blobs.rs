//! The audio samples of voice verification records, stored once per tenant by their sha256
//! (`voice_blobs`): a node uploads a sample before the records that point at it
//! (`PUT /api/v1/sync/blobs/{sha256}`), and a record whose sample the cloud does not hold is
//! refused as `blob_missing` — the node then uploads it again. Samples are checked
//! (`rollcall_protocol::wav`) before they are stored.

use rusqlite::{OptionalExtension, params};

use super::{
    NodeRow, PgStore, SqliteStore, Store, StoreError, TenantScope, blocking, postgres::scoped,
};
use rollcall_protocol::wire::VoiceRecord;

const PUT: &str =
    "INSERT INTO voice_blobs (tenant_id, sha256, size, duration_ms, body, node_id, created_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, sha256) DO NOTHING";
const RECORD: &str =
    "SELECT body FROM node_records WHERE tenant_id = $1 AND stream = 'voice' AND id = $2";
const BODY: &str = "SELECT body FROM voice_blobs WHERE tenant_id = $1 AND sha256 = $2";

/// Whether `s` is a sha256 as the protocol writes it: 64 lowercase hex digits.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn sha_of(id: &str, body: &str) -> Result<String, StoreError> {
    Ok(super::records::decode::<VoiceRecord>(id, body)?.audio_sha256)
}

impl Store {
    /// Stores a checked sample under its digest (the caller has verified both); whether it
    /// was new.
    pub async fn put_voice_blob(
        &self,
        scope: &TenantScope,
        node: &NodeRow,
        sha256: String,
        body: Vec<u8>,
        duration_ms: u64,
    ) -> Result<bool, StoreError> {
        let (scope, node_id) = (scope.clone(), node.id.clone());
        let size = body.len() as i64;
        let duration = i64::try_from(duration_ms).unwrap_or(i64::MAX);
        let now = rollcall_service::clock::now_ms();
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| {
                    Ok(s.conn.execute(
                        &super::records::sqlite_sql(PUT),
                        params![scope.id, sha256, size, duration, body, node_id, now],
                    )? == 1)
                })
                .await
            }
            Store::Postgres(p) => {
                let mut client = p.client().await?;
                let tx = scoped(&mut client, &scope).await?;
                let n = tx
                    .execute(
                        PUT,
                        &[&scope.id, &sha256, &size, &duration, &body, &node_id, &now],
                    )
                    .await?;
                tx.commit().await?;
                Ok(n == 1)
            }
        }
    }

    /// The audio of the tenant's voice record `id`; `None` if there is no such record.
    pub async fn voice_audio(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let (scope, id) = (scope.clone(), id.to_owned());
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| {
                    let record: Option<String> = s
                        .conn
                        .query_row(
                            &super::records::sqlite_sql(RECORD),
                            params![scope.id, id],
                            |r| r.get(0),
                        )
                        .optional()?;
                    let Some(record) = record else {
                        return Ok(None);
                    };
                    let sha = sha_of(&id, &record)?;
                    Ok(s.conn
                        .query_row(
                            &super::records::sqlite_sql(BODY),
                            params![scope.id, sha],
                            |r| r.get(0),
                        )
                        .optional()?)
                })
                .await
            }
            Store::Postgres(p) => {
                let mut client = p.client().await?;
                let tx = scoped(&mut client, &scope).await?;
                let Some(record) = tx.query_opt(RECORD, &[&scope.id, &id]).await? else {
                    return Ok(None);
                };
                let sha = sha_of(&id, record.get(0))?;
                let body = tx
                    .query_opt(BODY, &[&scope.id, &sha])
                    .await?
                    .map(|r| r.get(0));
                tx.commit().await?;
                Ok(body)
            }
        }
    }
}

impl SqliteStore {
    /// Which of `digests` the tenant holds, within the caller's transaction.
    pub(super) fn held_blobs(
        tx: &rusqlite::Transaction<'_>,
        tenant_id: i64,
        digests: &[&str],
    ) -> Result<Vec<String>, StoreError> {
        let mut stmt = tx.prepare_cached(
            "SELECT sha256 FROM voice_blobs WHERE tenant_id = ?1 AND sha256 = ?2",
        )?;
        let mut held = Vec::new();
        for d in digests {
            if let Some(s) = stmt
                .query_row(params![tenant_id, d], |r| r.get(0))
                .optional()?
            {
                held.push(s);
            }
        }
        Ok(held)
    }
}

impl PgStore {
    /// Which of `digests` the tenant holds, within the caller's transaction.
    pub(super) async fn held_blobs(
        tx: &tokio_postgres::Transaction<'_>,
        tenant_id: i64,
        digests: &[&str],
    ) -> Result<Vec<String>, StoreError> {
        Ok(tx
            .query(
                "SELECT sha256 FROM voice_blobs WHERE tenant_id = $1 AND sha256 = ANY($2)",
                &[&tenant_id, &digests],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }
}
