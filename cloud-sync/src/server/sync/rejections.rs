//! What the cloud refused of each node's pushes (`sync_rejections`): the node keeps these
//! events as dead letters until its admin retries them; the cloud's admins see the same list
//! per node, newest first.

use serde::Serialize;

use crate::server::store::{
    Store, StoreError, TenantScope,
    exec::{Exec, in_tenant},
};

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
        let node = node_id.to_owned();
        in_tenant!(read self, scope, |tx| node_rejections(tx, &node, limit))
    }
}

/// Whether the tenant has node `node_id` (a list of its items is `None` otherwise, not empty).
pub(crate) async fn node_exists(tx: &impl Exec, node_id: &str) -> Result<bool, StoreError> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM nodes WHERE tenant_id = $1 AND id = $2",
            &[&tx.tenant(), &node_id],
            |_| Ok(()),
        )
        .await?
        .is_some())
}

const REJECTIONS: &str = "SELECT seq, event_id, reason, at_ms FROM sync_rejections
     WHERE tenant_id = $1 AND node_id = $2 ORDER BY seq DESC LIMIT $3";

async fn node_rejections(
    tx: &impl Exec,
    node_id: &str,
    limit: u32,
) -> Result<Option<Vec<Rejection>>, StoreError> {
    if !node_exists(tx, node_id).await? {
        return Ok(None);
    }
    let rows = tx
        .query(
            REJECTIONS,
            &[&tx.tenant(), &node_id, &i64::from(limit)],
            |r| {
                Ok(Rejection {
                    seq: r.get::<i64>(0)?.unsigned_abs(),
                    event_id: r.get(1)?,
                    reason: r.get(2)?,
                    at_ms: r.get(3)?,
                })
            },
        )
        .await?;
    Ok(Some(rows))
}
