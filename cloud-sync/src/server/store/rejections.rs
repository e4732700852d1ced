//! What the cloud refused of each node's pushes (`sync_rejections`): the node keeps these
//! events as dead letters until its admin retries them; the cloud's admins see the same list
//! per node, newest first.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{PgStore, SqliteStore, Store, StoreError, TenantScope, blocking, postgres::scoped};

/// One refused item.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rejection {
    /// The node's sequence number of the item.
    pub seq: u64,
    pub event_id: String,
    /// Why it was refused (`site_mismatch: …`, `id_conflict: …`, …).
    pub reason: String,
    /// When the cloud (last) refused it.
    pub at_ms: i64,
}

impl Store {
    /// The items the cloud refused from `node_id`, newest first, at most `limit`; `None` if
    /// the tenant has no such node.
    pub async fn node_rejections(
        &self,
        scope: &TenantScope,
        node_id: &str,
        limit: u32,
    ) -> Result<Option<Vec<Rejection>>, StoreError> {
        let (scope, node) = (scope.clone(), node_id.to_owned());
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.node_rejections(&scope, &node, limit)).await,
            Store::Postgres(p) => p.node_rejections(&scope, &node, limit).await,
        }
    }
}

pub(super) const NODE_EXISTS: &str = "SELECT 1 FROM nodes WHERE tenant_id = $1 AND id = $2";
const REJECTIONS: &str = "SELECT seq, event_id, reason, at_ms FROM sync_rejections
     WHERE tenant_id = $1 AND node_id = $2 ORDER BY seq DESC LIMIT $3";

fn rejection(seq: i64, event_id: String, reason: String, at_ms: i64) -> Rejection {
    Rejection {
        seq: seq.unsigned_abs(),
        event_id,
        reason,
        at_ms,
    }
}

impl SqliteStore {
    fn node_rejections(
        &self,
        scope: &TenantScope,
        node_id: &str,
        limit: u32,
    ) -> Result<Option<Vec<Rejection>>, StoreError> {
        let known = self
            .conn
            .query_row(
                &NODE_EXISTS.replace('$', "?"),
                params![scope.id, node_id],
                |_| Ok(()),
            )
            .optional()?;
        if known.is_none() {
            return Ok(None);
        }
        let mut stmt = self.conn.prepare_cached(&REJECTIONS.replace('$', "?"))?;
        let rows = stmt.query_map(params![scope.id, node_id, limit], |r| {
            Ok(rejection(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        Ok(Some(rows.collect::<Result<_, _>>()?))
    }
}

impl PgStore {
    async fn node_rejections(
        &self,
        scope: &TenantScope,
        node_id: &str,
        limit: u32,
    ) -> Result<Option<Vec<Rejection>>, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        if tx
            .query_opt(NODE_EXISTS, &[&scope.id, &node_id])
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let rows = tx
            .query(REJECTIONS, &[&scope.id, &node_id, &i64::from(limit)])
            .await?;
        tx.commit().await?;
        Ok(Some(
            rows.iter()
                .map(|r| rejection(r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect(),
        ))
    }
}
