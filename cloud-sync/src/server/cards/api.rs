//! Card revocations for the tenant's admins: a lost or stolen card, or one whose holder left, is
//! revoked once here and refused at every site's readers as soon as each node has pulled it.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::server::{
    auth::identity::Caller,
    cards::store::RevokedCard,
    http::{problem::store_problem, router::AppState},
    users::store::Role,
};
use rollcall_protocol::ids::CardKey;
use rollcall_service::problem::{Json, Problem};

const WRITERS: &[Role] = &[Role::Owner, Role::Admin, Role::Supervisor];
const READERS: &[Role] = &[Role::Owner, Role::Admin, Role::Supervisor, Role::Auditor];

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeRequest {
    /// `facility:number` as printed on the card (e.g. `12:3456`), or `raw:<bits>:<hex>`.
    #[schema(max_length = 80)]
    card: String,
    /// Why (lost, stolen, left the company): shown to the site's admins.
    #[schema(min_length = 1, max_length = 200)]
    reason: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RevokedList {
    items: Vec<RevokedCard>,
}

fn card_of(raw: &str) -> Result<String, Problem> {
    if raw.chars().count() > 80 {
        return Err(Problem::bad_request("card: at most 80 characters"));
    }
    CardKey::parse(raw)
        .map(CardKey::into_string)
        .map_err(|e| Problem::bad_request(format!("card: {e}")))
}

/// Revokes a card at every site: each node refuses it at its readers (`card_revoked`) from its
/// next sync round, whoever holds it. Revoking it again updates the reason.
#[utoipa::path(post, path = "/api/v1/card-revocations", tag = "cards", request_body = RevokeRequest,
    security(("bearer" = [])),
    responses((status = 201, body = RevokedCard)))]
pub(crate) async fn revoke(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(req): Json<RevokeRequest>,
) -> Result<(StatusCode, axum::Json<RevokedCard>), Problem> {
    caller.require(WRITERS, "revoke cards")?;
    let card = card_of(&req.card)?;
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 || reason.chars().any(char::is_control) {
        return Err(Problem::bad_request(
            "reason: 1-200 characters, no control characters",
        ));
    }
    let audit = caller.audit(
        "card.revoked",
        Some(card.clone()),
        serde_json::json!({ "reason": reason }),
    );
    let revoked_ms = state
        .store
        .set_card_revoked(&caller.scope, &card, true, reason, audit)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| Problem::internal("the revocation was not stored"))?;
    tracing::warn!(tenant = %caller.scope.slug(), by = %caller.who(), %card, "card revoked");
    let revoked = RevokedCard {
        card,
        reason: reason.to_owned(),
        revoked_ms,
        revoked_by: caller.who(),
    };
    Ok((StatusCode::CREATED, axum::Json(revoked)))
}

/// The tenant's revoked cards, most recently revoked first.
#[utoipa::path(get, path = "/api/v1/card-revocations", tag = "cards",
    security(("bearer" = [])),
    responses((status = 200, body = RevokedList)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<axum::Json<RevokedList>, Problem> {
    caller.require(READERS, "see revoked cards")?;
    let items = state
        .store
        .revoked_cards(&caller.scope)
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(RevokedList { items }))
}

/// Reinstates a revoked card: the nodes accept it again from their next sync round.
#[utoipa::path(delete, path = "/api/v1/card-revocations/{card}", tag = "cards",
    params(("card" = String, Path, description = "The card, as it was revoked (`12:3456`)", max_length = 80)),
    security(("bearer" = [])),
    responses((status = 204, description = "Reinstated"), (status = 404, description = "Not revoked", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn reinstate(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(card): Path<String>,
) -> Result<StatusCode, Problem> {
    caller.require(WRITERS, "reinstate cards")?;
    let card = card_of(&card).map_err(|_| {
        Problem::not_found(format!(
            "no revoked card `{}`",
            card.chars().take(80).collect::<String>()
        ))
    })?;
    let audit = caller.audit(
        "card.reinstated",
        Some(card.clone()),
        serde_json::Value::Null,
    );
    if state
        .store
        .set_card_revoked(&caller.scope, &card, false, "", audit)
        .await
        .map_err(store_problem)?
        .is_some()
    {
        tracing::warn!(tenant = %caller.scope.slug(), by = %caller.who(), %card, "card reinstated");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("no revoked card `{card}`")))
    }
}
