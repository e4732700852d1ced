//! The audit trail: who did what to which object, when, from where, under which request. Every
//! write by a user, a node or the platform operator appends one entry in the same transaction
//! as the write itself, so there is no change without its entry. The table is append-only:
//! triggers refuse UPDATE and DELETE on both backends.

use serde::Serialize;

use crate::server::store::{Store, StoreError, TenantScope, exec::in_tenant};

/// One entry to append.
#[derive(Debug, Clone)]
pub struct Audit {
    /// `user:<id>`, `node:<id>`, `bootstrap-admin` or `platform`.
    pub actor: String,
    /// What was done: `user.create`, `node.revoke`, `sync.push`, …
    pub action: &'static str,
    /// The object acted on (its id), if any.
    pub target: Option<String>,
    /// Peer IP address.
    pub source: Option<String>,
    pub request_id: String,
    /// Extra facts (counts, changed fields); never secrets.
    pub detail: serde_json::Value,
}

/// An entry as the API lists it.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub request_id: String,
    pub detail: serde_json::Value,
}

impl Store {
    /// The tenant's audit entries, newest first, older than `before` (an entry id) if given.
    pub async fn audit_entries(
        &self,
        scope: &TenantScope,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        in_tenant!(read self, scope, |tx| tx.query(
            "SELECT id, at_ms, actor, action, target, source, request_id, detail FROM audit_log
             WHERE tenant_id = $1 AND (CAST($2 AS BIGINT) IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3",
            &[&tx.tenant(), &before, &i64::from(limit)],
            |r| Ok(AuditEntry {
                id: r.get(0)?,
                at_ms: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                source: r.get(5)?,
                request_id: r.get(6)?,
                detail: parse_detail(&r.get::<String>(7)?),
            }),
        ))
    }
}

pub(crate) fn detail_text(a: &Audit) -> String {
    a.detail.to_string()
}

pub(crate) fn parse_detail(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::String(text.to_owned()))
}

/// A push's entry, with what became of its items.
pub(crate) fn with_ack(a: &Audit, ack: &rollcall_protocol::wire::PushAck) -> Audit {
    let mut a = a.clone();
    a.detail = serde_json::json!({
        "accepted": ack.accepted.len(),
        "duplicate": ack.duplicate.len(),
        "rejected": ack.rejected.len(),
    });
    a
}
