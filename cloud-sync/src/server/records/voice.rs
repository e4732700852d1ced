//! The audio samples of voice verification records, stored once per tenant by their sha256
//! (`voice_blobs`): a node uploads a sample before the records that point at it
//! (`PUT /api/v1/sync/blobs/{sha256}`), and a record whose sample the cloud does not hold is
//! refused as `blob_missing` — the node then uploads it again. Samples are checked
//! (`rollcall_protocol::wav`) before they are stored.

use crate::server::store::{
    NodeRow, Store, StoreError, TenantScope,
    exec::{Exec, in_tenant},
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
    Ok(crate::server::records::store::decode::<VoiceRecord>(id, body)?.audio_sha256)
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
        let node_id = node.id.clone();
        let size = body.len() as i64;
        let duration = i64::try_from(duration_ms).unwrap_or(i64::MAX);
        let now = rollcall_service::clock::now_ms();
        in_tenant!(internal self, scope, |tx| async {
            let n = tx
                .execute(
                    PUT,
                    &[&tx.tenant(), &sha256, &size, &duration, &body, &node_id, &now],
                )
                .await?;
            Ok::<_, StoreError>(n == 1)
        })
    }

    /// The audio of the tenant's voice record `id`; `None` if there is no such record.
    pub async fn voice_audio(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let id = id.to_owned();
        in_tenant!(read self, scope, |tx| voice_audio(tx, &id))
    }
}

async fn voice_audio(tx: &impl Exec, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let record = tx
        .query_opt(RECORD, &[&tx.tenant(), &id], |r| r.get::<String>(0))
        .await?;
    let Some(record) = record else {
        return Ok(None);
    };
    let sha = sha_of(id, &record)?;
    tx.query_opt(BODY, &[&tx.tenant(), &sha], |r| r.get::<Vec<u8>>(0))
        .await
}

/// Which of `digests` the tenant holds, within the caller's transaction.
pub(crate) async fn held_blobs(
    tx: &impl Exec,
    digests: &[&str],
) -> Result<Vec<String>, StoreError> {
    if let Some(pg) = tx.postgres() {
        return pg
            .query_native(
                "SELECT sha256 FROM voice_blobs WHERE tenant_id = $1 AND sha256 = ANY($2)",
                &[&tx.tenant(), &digests],
                |r| r.get(0),
            )
            .await;
    }
    let mut held = Vec::new();
    for d in digests {
        if let Some(s) = tx
            .query_opt(
                "SELECT sha256 FROM voice_blobs WHERE tenant_id = $1 AND sha256 = $2",
                &[&tx.tenant(), d],
                |r| r.get(0),
            )
            .await?
        {
            held.push(s);
        }
    }
    Ok(held)
}
