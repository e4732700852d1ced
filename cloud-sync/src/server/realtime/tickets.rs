//! The tickets that open a WebSocket: asked for with the caller's access token or session
//! (`POST /api/v1/realtime/tickets`), good once, for [`TICKET_TTL_MS`], at any replica (they are
//! stored, as their sha256 only). A ticket is `<tenant slug>.<64 hex>`, so the tenant is
//! resolved before it is looked up under that tenant's scope.

use crate::server::{
    store::{Store, StoreError, TenantScope, exec::in_tenant},
    users::store::{Role, parse_role},
};
use rollcall_service::clock::now_ms;

/// How long a ticket may wait to be used.
pub const TICKET_TTL_MS: i64 = 30_000;

/// Who a ticket stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// `None` for the platform operator's token.
    pub user_id: Option<String>,
    pub role: Role,
    /// The browser session it came from, if it came from one (the connection ends with it).
    pub session_sha256: Option<String>,
    /// When it was issued: the connection ends if the user is disabled after it.
    pub issued_ms: i64,
}

impl Store {
    pub async fn create_ws_ticket(
        &self,
        scope: &TenantScope,
        token_sha256: &str,
        ticket: Ticket,
    ) -> Result<(), StoreError> {
        let hash = token_sha256.to_owned();
        in_tenant!(internal self, scope, |tx| async {
            tx.execute(
                "INSERT INTO ws_tickets (token_sha256, tenant_id, user_id, role, session_sha256,
                                         issued_ms, expires_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &hash,
                    &tx.tenant(),
                    &ticket.user_id,
                    &ticket.role.as_str(),
                    &ticket.session_sha256,
                    &ticket.issued_ms,
                    &(ticket.issued_ms + TICKET_TTL_MS),
                ],
            )
            .await
            .map(drop)
        })
    }

    /// Spends a ticket: what it stands for if it is the tenant's, unexpired and unused (of two
    /// uses at once, one gets it).
    pub async fn use_ws_ticket(
        &self,
        scope: &TenantScope,
        token_sha256: &str,
    ) -> Result<Option<Ticket>, StoreError> {
        let hash = token_sha256.to_owned();
        in_tenant!(internal self, scope, |tx| tx.query_opt(
            "UPDATE ws_tickets SET used_ms = $3
             WHERE tenant_id = $1 AND token_sha256 = $2 AND used_ms IS NULL AND expires_ms > $3
             RETURNING user_id, role, session_sha256, issued_ms",
            &[&tx.tenant(), &hash, &now_ms()],
            |r| Ok(Ticket {
                user_id: r.get(0)?,
                role: parse_role(&r.get::<String>(1)?),
                session_sha256: r.get(2)?,
                issued_ms: r.get(3)?,
            }),
        ))
    }

    /// Deletes the tenant's tickets that expired before `before_ms`.
    pub async fn prune_ws_tickets(
        &self,
        scope: &TenantScope,
        before_ms: i64,
    ) -> Result<u64, StoreError> {
        in_tenant!(internal self, scope, |tx| tx.execute(
            "DELETE FROM ws_tickets WHERE tenant_id = $1 AND expires_ms < $2",
            &[&tx.tenant(), &before_ms],
        ))
    }
}
