//! A node registered again (its credential leaked, its box replaced with the same disk) may
//! take over the node it replaces (`POST /api/v1/nodes` with `replaces`): in the registration's
//! transaction the old credential is revoked and everything the cloud holds of the old node —
//! its events, alarms, audit lines and voice records, the refusals that settled their numbers,
//! and its watermarks — moves to the new one. The node keeps its database and its sequence
//! numbers, so what it sends again is a duplicate and what it sends next continues the same
//! watermark; without the handover the new node would start at 0, be told it lacks everything
//! and have every re-sent item refused as another node's (`id_conflict`).

use crate::server::nodes::store::NodeError;
use crate::server::{
    audit::store::Audit,
    store::{
        Store, StoreError, TenantScope,
        exec::{Exec, in_tenant},
    },
};
use rollcall_service::clock::now_ms;

impl Store {
    pub async fn register_node(
        &self,
        scope: &TenantScope,
        node_id: &str,
        site_id: &str,
        token_sha256: &str,
        audit: Audit,
    ) -> Result<(), StoreError> {
        self.register_node_replacing(scope, node_id, site_id, token_sha256, None, audit)
            .await
    }

    /// Registers a node; with `replaces`, it takes over that node of the same site, in the
    /// same transaction.
    pub async fn register_node_replacing(
        &self,
        scope: &TenantScope,
        node_id: &str,
        site_id: &str,
        token_sha256: &str,
        replaces: Option<&str>,
        audit: Audit,
    ) -> Result<(), StoreError> {
        let (node, site, hash, old) = (
            node_id.to_owned(),
            site_id.to_owned(),
            token_sha256.to_owned(),
            replaces.map(str::to_owned),
        );
        in_tenant!(write self, scope, audit, |tx| register(
            tx,
            &node,
            &site,
            &hash,
            old.as_deref()
        ))
    }
}

async fn register(
    tx: &impl Exec,
    node_id: &str,
    site_id: &str,
    token_sha256: &str,
    replaces: Option<&str>,
) -> Result<(), StoreError> {
    let watermark = match replaces {
        Some(old) => {
            // Locked: the old node's pushes wait for the handover, then fail to authenticate.
            let found = tx
                .query_opt(
                    &format!("{OLD}{}", tx.dialect().lock_rows()),
                    &[&tx.tenant(), &old],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .await?;
            check(old, site_id, found)?
        }
        None => 0,
    };
    tx.execute(
        "INSERT INTO nodes (id, tenant_id, site_id, token_sha256, created_ms, watermark)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &node_id,
            &tx.tenant(),
            &site_id,
            &token_sha256,
            &now_ms(),
            &watermark,
        ],
    )
    .await?;
    if let Some(old) = replaces {
        for sql in MOVES {
            tx.execute(sql, &[&tx.tenant(), &old, &node_id]).await?;
        }
        tx.execute(RETIRE, &[&tx.tenant(), &old, &now_ms()]).await?;
    }
    Ok(())
}

/// The old node as the handover needs it: its site and event watermark.
const OLD: &str = "SELECT site_id, watermark FROM nodes WHERE tenant_id = $1 AND id = $2";

/// What moves to the new node (`$1` tenant, `$2` old node, `$3` new node).
const MOVES: &[&str] = &[
    "UPDATE events SET node_id = $3 WHERE tenant_id = $1 AND node_id = $2",
    "UPDATE sync_rejections SET node_id = $3 WHERE tenant_id = $1 AND node_id = $2",
    "UPDATE node_records SET node_id = $3 WHERE tenant_id = $1 AND node_id = $2",
    "UPDATE record_rejections SET node_id = $3 WHERE tenant_id = $1 AND node_id = $2",
    "UPDATE node_stream_marks SET node_id = $3 WHERE tenant_id = $1 AND node_id = $2",
];

/// Revokes the old node (`$3` now) and clears its watermark (it holds nothing any more).
const RETIRE: &str = "UPDATE nodes SET revoked_ms = coalesce(revoked_ms, $3), watermark = 0
     WHERE tenant_id = $1 AND id = $2";

/// Checks the node to replace: it must be the tenant's and serve the same site. Its watermark.
fn check(old: &str, site_id: &str, found: Option<(String, i64)>) -> Result<i64, StoreError> {
    match found {
        None => Err(NodeError::UnknownReplaced(old.to_owned()).into()),
        Some((site, _)) if site != site_id => Err(NodeError::ReplacedElsewhere {
            old: old.to_owned(),
            site,
            wanted: site_id.to_owned(),
        }
        .into()),
        Some((_, watermark)) => Ok(watermark),
    }
}
