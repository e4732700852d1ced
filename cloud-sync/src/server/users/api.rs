//! `/api/v1/users`: a tenant's users and their roles. Owners manage everyone; admins manage
//! everyone but owners and cannot make one; nobody changes their own role or disables
//! themselves (no tenant locks itself out by accident).

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::server::{
    auth::{identity::Caller, passwords},
    http::{problem::store_problem, router::AppState},
    store::TenantScope,
    tenants::resolve as tenancy,
    users::store::{NewUser, Role, User},
};
use rollcall_service::problem::{Json, Problem};

const MANAGERS: &[Role] = &[Role::Owner, Role::Admin];
const READERS: &[Role] = &[Role::Owner, Role::Admin, Role::Auditor];

/// A normalised email address (trimmed, lowercase), or why it is refused. Only ASCII: a
/// look-alike letter of another script (the Cyrillic `о` in `bоb@acme.example`) would give a
/// second account that reads like the first; an international domain is written in its
/// `xn--` form.
pub fn normalise_email(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim().to_lowercase();
    if !email.is_ascii() {
        return Err(
            "email must be ASCII (letters of other scripts that look like Latin ones are refused; write an international domain as xn--…)",
        );
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err("email must look like name@example.com");
    };
    if email.len() > 254
        || local.is_empty()
        || local.len() > 64
        || domain.contains('@')
        || !domain.contains('.')
        || !crate::server::http::host::valid_hostname(domain)
        || local.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("email must look like name@example.com");
    }
    Ok(email)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUserRequest {
    email: String,
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$",
        max_length = 200
    )]
    display_name: String,
    role: Role,
    #[schema(min_length = 12)]
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserPatch {
    role: Option<Role>,
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$",
        max_length = 200
    )]
    display_name: Option<String>,
    disabled: Option<bool>,
}

/// Validates and hashes a new user (Argon2id through the bounded hashers, off the async
/// threads).
pub(crate) async fn prepare_user(
    hashers: &crate::server::auth::hashers::Hashers,
    email: &str,
    display_name: &str,
    role: Role,
    password: String,
) -> Result<NewUser, Problem> {
    let email = normalise_email(email).map_err(Problem::bad_request)?;
    tenancy::check_display_name(display_name)?;
    if let Some(why) = passwords::weakness(&password, &email) {
        return Err(Problem::bad_request(why));
    }
    let password_hash = hashers.hash(password).await?;
    Ok(NewUser {
        id: crate::server::auth::extract::new_id("usr")?,
        email,
        display_name: display_name.trim().to_owned(),
        role,
        password_hash,
    })
}

#[derive(Serialize, ToSchema)]
pub(crate) struct UserList {
    items: Vec<User>,
}

/// The tenant's users.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    security(("bearer" = [])),
    responses((status = 200, body = UserList)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<axum::Json<UserList>, Problem> {
    caller.require(READERS, "list users")?;
    let items = state
        .store
        .users(&caller.scope)
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(UserList { items }))
}

/// A new user. Only owners make owners.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUserRequest,
    security(("bearer" = [])),
    responses((status = 201, body = User)))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(req): Json<NewUserRequest>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(MANAGERS, "create users")?;
    if req.role == Role::Owner {
        caller.require(&[Role::Owner], "make an owner")?;
    }
    let new = prepare_user(
        &state.hashers,
        &req.email,
        &req.display_name,
        req.role,
        req.password,
    )
    .await?;
    let user = state
        .store
        .create_user(
            &caller.scope,
            new.clone(),
            caller.audit(
                "user.create",
                Some(new.id.clone()),
                serde_json::json!({ "role": new.role, "email": new.email }),
            ),
        )
        .await
        .map_err(store_problem)?;
    tracing::info!(tenant = %caller.scope.slug(), by = %caller.who(), user = %user.id, role = user.role.as_str(), "user created");
    Ok((StatusCode::CREATED, axum::Json(user)))
}

async fn find(state: &AppState, scope: &TenantScope, id: &str) -> Result<User, Problem> {
    state
        .store
        .user(scope, id)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| Problem::not_found(format!("no user `{id}`")))
}

/// One user (everyone may see themselves).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses((status = 200, body = User)))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<User>, Problem> {
    if caller.user_id() != Some(id.as_str()) {
        caller.require(READERS, "see other users")?;
    }
    Ok(axum::Json(find(&state, &caller.scope, &id).await?))
}

/// Changes a user's role, name or access (owners and admins); anyone may change their own
/// display name, nobody their own role or access.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UserPatch,
    params(("id" = String, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses((status = 200, body = User)))]
pub(crate) async fn update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(patch): Json<UserPatch>,
) -> Result<axum::Json<User>, Problem> {
    // Everyone may rename themselves; only managers change others.
    let own = caller.user_id() == Some(id.as_str());
    if !own {
        caller.require(MANAGERS, "change other users")?;
    }
    let target = find(&state, &caller.scope, &id).await?;
    if target.role == Role::Owner || patch.role == Some(Role::Owner) {
        caller.require(&[Role::Owner], "change or make an owner")?;
    }
    if own && (patch.role.is_some() || patch.disabled == Some(true)) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "self-lockout",
            "Cannot change your own access",
            "you cannot change your own role or disable yourself; ask another owner or admin",
        ));
    }
    if let Some(name) = &patch.display_name {
        tenancy::check_display_name(name)?;
    }
    let changes = serde_json::json!({
        "role": patch.role,
        "display_name": patch.display_name,
        "disabled": patch.disabled,
    });
    let user = state
        .store
        .update_user(
            &caller.scope,
            &id,
            patch.role,
            patch.display_name.map(|n| n.trim().to_owned()),
            patch.disabled,
            caller.audit("user.update", Some(id.clone()), changes),
        )
        .await
        .map_err(store_problem)?
        .ok_or_else(|| Problem::not_found(format!("no user `{id}`")))?;
    tracing::info!(tenant = %caller.scope.slug(), by = %caller.who(), user = %user.id, role = user.role.as_str(), disabled = user.disabled_ms.is_some(), "user changed");
    Ok(axum::Json(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_or_refused() {
        assert_eq!(
            normalise_email("  Guard@ACME.example ").as_deref(),
            Ok("guard@acme.example")
        );
        for bad in [
            "",
            "guard",
            "@acme.example",
            "guard@",
            "guard@acme",
            "a@b@c.d",
            "gu ard@acme.example",
            "guard@acme..example",
            "guard@-acme.example",
            "b\u{043E}b@acme.example",
            "bob@\u{0430}cme.example",
            "bob\u{202E}@acme.example",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad:?}");
        }
    }
}
