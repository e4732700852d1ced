//! A tenant's nodes as the admin API and node authentication see them, and what their config
//! bundles are signed and numbered with: written once for both backends over [`exec`].
//! (Registration, with its handover of a replaced node, is in the backend files still.)
//!
//! [`exec`]: crate::server::store::exec

use crate::server::store::Refused;
use crate::server::{
    audit::store::Audit,
    store::{
        NodeInfo, NodeRow, Store, StoreError, TenantScope,
        exec::{Exec, in_tenant},
    },
};
use rollcall_service::clock::now_ms;
use rollcall_service::problem::ProblemType;

/// What the nodes' API refuses.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("replaces: the tenant has no node `{0}`")]
    UnknownReplaced(String),
    #[error("replaces: node `{old}` serves site `{site}`, not `{wanted}`")]
    ReplacedElsewhere {
        old: String,
        site: String,
        wanted: String,
    },
}

pub const UNKNOWN_NODE: ProblemType = ProblemType {
    slug: "unknown-node",
    title: "Unknown node",
    status: 400,
    meaning: "the node to replace is not the tenant's",
};
pub const NODE_OF_ANOTHER_SITE: ProblemType = ProblemType {
    slug: "node-of-another-site",
    title: "Node of another site",
    status: 400,
    meaning: "a node can only replace a node of the same site",
};

/// The problem types of this domain, for the OpenAPI document.
pub const PROBLEMS: &[&ProblemType] = &[&UNKNOWN_NODE, &NODE_OF_ANOTHER_SITE];

impl Refused for NodeError {
    fn problem_type(&self) -> &'static ProblemType {
        match self {
            NodeError::UnknownReplaced(_) => &UNKNOWN_NODE,
            NodeError::ReplacedElsewhere { .. } => &NODE_OF_ANOTHER_SITE,
        }
    }
}

impl Store {
    /// The tenant's bundle signing key, created on first use (by whichever replica asks first:
    /// the others read the one that won).
    pub async fn signing_secret(&self, scope: &TenantScope) -> Result<[u8; 32], StoreError> {
        in_tenant!(internal self, scope, |tx| signing_secret(tx))
    }

    /// The next bundle serial of a site (1, 2, 3, …), taken for good.
    pub async fn next_bundle_serial(
        &self,
        scope: &TenantScope,
        site_id: &str,
        audit: Audit,
    ) -> Result<u64, StoreError> {
        let site = site_id.to_owned();
        in_tenant!(write self, scope, audit, |tx| async {
            next_bundle_serial(tx, &site).await.map(Serial)
        })
        .map(|s| s.0)
    }

    /// The tenant's unrevoked node with this token hash.
    pub async fn node_by_token_hash(
        &self,
        scope: &TenantScope,
        hash: &str,
    ) -> Result<Option<NodeRow>, StoreError> {
        let hash = hash.to_owned();
        in_tenant!(read self, scope, |tx| node_by_token_hash(tx, &hash))
    }

    /// The tenant's nodes, registered first first.
    pub async fn nodes(&self, scope: &TenantScope) -> Result<Vec<NodeInfo>, StoreError> {
        in_tenant!(read self, scope, |tx| nodes(tx))
    }

    /// Revokes a node's credential for good; `false` if the tenant has no such unrevoked node.
    pub async fn revoke_node(
        &self,
        scope: &TenantScope,
        node_id: &str,
        audit: Audit,
    ) -> Result<bool, StoreError> {
        let id = node_id.to_owned();
        in_tenant!(write self, scope, audit, |tx| revoke_node(tx, &id))
    }
}

/// A serial taken is always a change (audited).
struct Serial(u64);

crate::server::store::exec::always_changed!(Serial);

/// Read first (the common case takes no write lock); made when missing, and read again so that
/// two replicas making it at once both use the one that was stored.
async fn signing_secret(tx: &impl Exec) -> Result<[u8; 32], StoreError> {
    const READ: &str = "SELECT secret FROM signing_keys WHERE tenant_id = $1";
    let stored = tx
        .query_opt(READ, &[&tx.tenant()], |r| r.get::<Vec<u8>>(0))
        .await?;
    let secret = match stored {
        Some(secret) => secret,
        None => {
            let mut fresh = [0u8; 32];
            getrandom::fill(&mut fresh).map_err(|_| StoreError::Key)?;
            tx.execute(
                "INSERT INTO signing_keys (tenant_id, secret, created_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant_id) DO NOTHING",
                &[&tx.tenant(), &fresh.as_slice(), &now_ms()],
            )
            .await?;
            tx.query_opt(READ, &[&tx.tenant()], |r| r.get::<Vec<u8>>(0))
                .await?
                .ok_or(StoreError::Key)?
        }
    };
    secret.try_into().map_err(|_| StoreError::Key)
}

async fn next_bundle_serial(tx: &impl Exec, site_id: &str) -> Result<u64, StoreError> {
    let serial = tx
        .query_opt(
            "INSERT INTO bundle_serials (tenant_id, site_id, serial) VALUES ($1, $2, 1)
             ON CONFLICT (tenant_id, site_id) DO UPDATE SET serial = bundle_serials.serial + 1
             RETURNING serial",
            &[&tx.tenant(), &site_id],
            |r| r.get::<i64>(0),
        )
        .await?
        .ok_or_else(|| {
            StoreError::Inconsistent(format!("no bundle serial for site `{site_id}`"))
        })?;
    Ok(serial.unsigned_abs())
}

async fn node_by_token_hash(tx: &impl Exec, hash: &str) -> Result<Option<NodeRow>, StoreError> {
    tx.query_opt(
        "SELECT id, tenant_id, site_id FROM nodes
         WHERE token_sha256 = $1 AND tenant_id = $2 AND revoked_ms IS NULL",
        &[&hash, &tx.tenant()],
        |r| {
            Ok(NodeRow {
                id: r.get(0)?,
                tenant_id: r.get(1)?,
                site_id: r.get(2)?,
            })
        },
    )
    .await
}

async fn nodes(tx: &impl Exec) -> Result<Vec<NodeInfo>, StoreError> {
    tx.query(
        "SELECT id, site_id, created_ms, last_seen_ms, revoked_ms, watermark, lag_ms FROM nodes
         WHERE tenant_id = $1 ORDER BY created_ms, id",
        &[&tx.tenant()],
        |r| {
            Ok(NodeInfo {
                id: r.get(0)?,
                site_id: r.get(1)?,
                created_ms: r.get(2)?,
                last_seen_ms: r.get(3)?,
                revoked_ms: r.get(4)?,
                watermark: r.get::<i64>(5)?.unsigned_abs(),
                lag_ms: r.get(6)?,
            })
        },
    )
    .await
}

async fn revoke_node(tx: &impl Exec, node_id: &str) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "UPDATE nodes SET revoked_ms = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_ms IS NULL",
            &[&tx.tenant(), &node_id, &now_ms()],
        )
        .await?;
    Ok(n > 0)
}
