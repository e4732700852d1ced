//! `/api/v1/notifications` (a user's inbox), `/api/v1/me/notification-preferences` (their
//! channels, time zone and quiet hours), `/api/v1/notification-defaults` (the tenant's, for its
//! admins), `/api/v1/notification-kinds` and `/api/v1/mail-templates/{kind}`.

use std::sync::Arc;

use axum::{
    extract::{Path, Query, State, rejection::QueryRejection},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::server::{
    attendance::api as events_api,
    auth::identity::Caller,
    http::{problem::store_problem, router::AppState},
    notifications::{
        CRITICAL_NOTIFICATION, INVALID_MAIL_TEMPLATE, INVALID_NOTIFICATION_PREFERENCE, NO_INBOX,
        UNKNOWN_NOTIFICATION_KIND,
        inbox::Notification,
        kinds::{KINDS, Kind},
        prefs::{self, AppliedPref, KindPref, PrefError, SettingsChange},
        quiet::QuietHours,
        templates::{self, Templates},
    },
    users::store::Role,
};
use rollcall_service::{
    clock::now_ms,
    problem::{Json, Problem},
};

const MANAGERS: &[Role] = &[Role::Owner, Role::Admin];

fn inbox_user(caller: &Caller) -> Result<&str, Problem> {
    caller.user_id().ok_or_else(|| {
        Problem::of(
            &NO_INBOX,
            "the bootstrap administrator has no inbox: log in as a user",
        )
    })
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct InboxQuery {
    /// Only unread notifications.
    #[serde(default)]
    unread: bool,
    /// The `next` of the previous page.
    #[param(max_length = 64)]
    cursor: Option<String>,
    /// Most items, 1-200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Inbox {
    items: Vec<Notification>,
    /// The caller's unread notifications, all pages.
    unread: u64,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

fn valid_id(id: &str) -> bool {
    id.len() == 29 && id.starts_with("ntf_") && id[4..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The caller's notifications, newest first, with how many are unread.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications",
    params(InboxQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Inbox)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    q: Result<Query<InboxQuery>, QueryRejection>,
) -> Result<axum::Json<Inbox>, Problem> {
    let user = inbox_user(&caller)?;
    let q = events_api::query(q)?;
    let limit = match q.limit {
        None => 50,
        Some(n @ 1..=200) => n,
        Some(_) => return Err(Problem::bad_request("limit is 1-200")),
    };
    if let Some(c) = &q.cursor
        && !valid_id(c)
    {
        return Err(Problem::bad_request(
            "cursor: not a cursor this API gave out",
        ));
    }
    let page = state
        .store
        .inbox(&caller.scope, user, q.cursor, q.unread, limit)
        .await
        .map_err(store_problem)?;
    let next = (page.items.len() == limit as usize)
        .then(|| page.items.last().map(|n| n.id.clone()))
        .flatten();
    Ok(axum::Json(Inbox {
        items: page.items,
        unread: page.unread,
        next,
    }))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Unread {
    /// The caller's unread notifications left.
    unread: u64,
}

/// Marks one of the caller's notifications read (again is fine).
#[utoipa::path(post, path = "/api/v1/notifications/{id}/read", tag = "notifications",
    params(("id" = String, Path, description = "The notification's id")),
    security(("bearer" = [])),
    responses((status = 200, body = Unread)))]
pub(crate) async fn read(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Unread>, Problem> {
    let user = inbox_user(&caller)?;
    let missing = || {
        Problem::not_found(format!(
            "you have no notification `{}`",
            id.chars().take(64).collect::<String>()
        ))
    };
    if !valid_id(&id) {
        return Err(missing());
    }
    state
        .store
        .mark_read(&caller.scope, user, Some(id.clone()), now_ms())
        .await
        .map_err(store_problem)?
        .map(|unread| axum::Json(Unread { unread }))
        .ok_or_else(missing)
}

/// Marks all of the caller's notifications read.
#[utoipa::path(post, path = "/api/v1/notifications/read-all", tag = "notifications",
    security(("bearer" = [])),
    responses((status = 200, body = Unread)))]
pub(crate) async fn read_all(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<axum::Json<Unread>, Problem> {
    let user = inbox_user(&caller)?;
    let unread = state
        .store
        .mark_read(&caller.scope, user, None, now_ms())
        .await
        .map_err(store_problem)?
        .unwrap_or(0);
    Ok(axum::Json(Unread { unread }))
}

/// The kinds of notification, who cannot mute them and what mails by default.
#[utoipa::path(get, path = "/api/v1/notification-kinds", tag = "notifications",
    security(("bearer" = [])),
    responses((status = 200, body = [Kind])))]
pub(crate) async fn list_kinds(_caller: Caller) -> axum::Json<&'static [Kind]> {
    axum::Json(KINDS)
}

/// What applies to a user, every kind.
#[derive(Serialize, ToSchema)]
pub(crate) struct Preferences {
    /// IANA name; absent: UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    time_zone: Option<String>,
    /// Absent: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    quiet_hours: Option<QuietHours>,
    kinds: Vec<AppliedPref>,
}

/// A change of preferences: what is absent stays.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreferencesChange {
    /// An IANA time zone name (`Europe/Berlin`); `null` for UTC.
    #[serde(default, deserialize_with = "crate::server::http::present")]
    #[schema(value_type = Option<String>, max_length = 64)]
    time_zone: Option<Option<String>>,
    /// Mail that is not critical waits through these hours; `null` for none.
    #[serde(default, deserialize_with = "crate::server::http::present")]
    #[schema(value_type = Option<QuietHours>)]
    quiet_hours: Option<Option<QuietHours>>,
    /// Kinds to set (each once).
    #[serde(default)]
    #[schema(max_items = 64)]
    kinds: Vec<KindPref>,
}

fn pref_problem(e: PrefError) -> Problem {
    let (kind, field) = match &e {
        PrefError::UnknownKind(_) => (&UNKNOWN_NOTIFICATION_KIND, "kinds"),
        PrefError::Critical(_) => (&CRITICAL_NOTIFICATION, "kinds"),
        PrefError::DigestWindow(_) | PrefError::Twice(_) => {
            (&INVALID_NOTIFICATION_PREFERENCE, "kinds")
        }
        PrefError::Zone(_) => (&INVALID_NOTIFICATION_PREFERENCE, "time_zone"),
        PrefError::Quiet => (&INVALID_NOTIFICATION_PREFERENCE, "quiet_hours"),
    };
    Problem::unprocessable(kind.slug, field, e.to_string())
}

fn shown(a: prefs::Applied) -> Preferences {
    Preferences {
        time_zone: a.settings.time_zone,
        quiet_hours: a.settings.quiet_hours,
        kinds: a.kinds,
    }
}

/// The caller's notification preferences: every kind's channels as they apply and where each
/// came from, their time zone and quiet hours.
#[utoipa::path(get, path = "/api/v1/me/notification-preferences", tag = "notifications",
    security(("bearer" = [])),
    responses((status = 200, body = Preferences)))]
pub(crate) async fn my_preferences(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<axum::Json<Preferences>, Problem> {
    let user = inbox_user(&caller)?;
    let a = state
        .store
        .notification_prefs(&caller.scope, user)
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(shown(a)))
}

/// Changes the caller's preferences (a critical kind cannot be muted).
#[utoipa::path(patch, path = "/api/v1/me/notification-preferences", tag = "notifications",
    request_body = PreferencesChange,
    security(("bearer" = [])),
    responses((status = 200, body = Preferences)))]
pub(crate) async fn change_my_preferences(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(change): Json<PreferencesChange>,
) -> Result<axum::Json<Preferences>, Problem> {
    let user = inbox_user(&caller)?.to_owned();
    prefs::check(&change.kinds).map_err(pref_problem)?;
    let settings = SettingsChange {
        time_zone: change.time_zone,
        quiet_hours: change.quiet_hours,
    };
    prefs::check_settings(&settings).map_err(pref_problem)?;
    let audit = caller.audit(
        "notification_preferences.update",
        Some(user.clone()),
        serde_json::json!({ "kinds": change.kinds.iter().map(|k| &k.kind).collect::<Vec<_>>() }),
    );
    let a = state
        .store
        .set_notification_prefs(&caller.scope, &user, change.kinds, settings, audit)
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(shown(a)))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Defaults {
    kinds: Vec<AppliedPref>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DefaultsChange {
    #[schema(max_items = 64)]
    kinds: Vec<KindPref>,
}

/// The tenant's defaults: what applies to a user who did not choose.
#[utoipa::path(get, path = "/api/v1/notification-defaults", tag = "notifications",
    security(("bearer" = [])),
    responses((status = 200, body = Defaults)))]
pub(crate) async fn defaults(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<axum::Json<Defaults>, Problem> {
    caller.require(MANAGERS, "see the tenant's notification defaults")?;
    let a = state
        .store
        .notification_prefs(&caller.scope, "")
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(Defaults { kinds: a.kinds }))
}

/// Changes the tenant's defaults.
#[utoipa::path(patch, path = "/api/v1/notification-defaults", tag = "notifications",
    request_body = DefaultsChange,
    security(("bearer" = [])),
    responses((status = 200, body = Defaults)))]
pub(crate) async fn change_defaults(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(change): Json<DefaultsChange>,
) -> Result<axum::Json<Defaults>, Problem> {
    caller.require(MANAGERS, "change the tenant's notification defaults")?;
    prefs::check(&change.kinds).map_err(pref_problem)?;
    let audit = caller.audit(
        "notification_defaults.update",
        None,
        serde_json::json!({ "kinds": change.kinds.iter().map(|k| &k.kind).collect::<Vec<_>>() }),
    );
    let a = state
        .store
        .set_notification_prefs(
            &caller.scope,
            "",
            change.kinds,
            SettingsChange::default(),
            audit,
        )
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(Defaults { kinds: a.kinds }))
}

fn template_kind(kind: &str) -> Result<&'static Kind, Problem> {
    if kind == "*" {
        // Checked against the first kind; every kind gives templates the same fields.
        return Ok(&KINDS[0]);
    }
    crate::server::notifications::kinds::kind(kind).ok_or_else(|| {
        Problem::not_found(format!(
            "`{}` is not a kind of notification, nor `*`",
            kind.chars().take(64).collect::<String>()
        ))
    })
}

/// The tenant's mail templates for kind `{kind}` (`*`: every kind without its own), or the
/// built-in ones.
#[utoipa::path(get, path = "/api/v1/mail-templates/{kind}", tag = "notifications",
    params(("kind" = String, Path, description = "A kind of notification, or `*`")),
    security(("bearer" = [])),
    responses((status = 200, body = Templates)))]
pub(crate) async fn get_template(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(kind): Path<String>,
) -> Result<axum::Json<Templates>, Problem> {
    caller.require(MANAGERS, "see the tenant's mail templates")?;
    template_kind(&kind)?;
    let t = state
        .store
        .mail_template(&caller.scope, &kind)
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(t.unwrap_or_else(templates::builtin)))
}

/// Replaces the tenant's mail templates for `{kind}`; checked by rendering them with sample
/// data first (a broken one is refused with the part and line).
#[utoipa::path(put, path = "/api/v1/mail-templates/{kind}", tag = "notifications",
    params(("kind" = String, Path, description = "A kind of notification, or `*`")),
    request_body = Templates,
    security(("bearer" = [])),
    responses((status = 200, body = Templates)))]
pub(crate) async fn put_template(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(kind): Path<String>,
    Json(t): Json<Templates>,
) -> Result<axum::Json<Templates>, Problem> {
    caller.require(MANAGERS, "change the tenant's mail templates")?;
    let k = template_kind(&kind)?;
    templates::check(&t, k)
        .map_err(|e| Problem::unprocessable(INVALID_MAIL_TEMPLATE.slug, e.part, e.why))?;
    let audit = caller.audit(
        "mail_template.put",
        Some(kind.clone()),
        serde_json::Value::Null,
    );
    state
        .store
        .put_mail_template(&caller.scope, &kind, &t, audit)
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(t))
}

/// Drops the tenant's mail templates for `{kind}` (back to `*`'s or the built-in ones).
#[utoipa::path(delete, path = "/api/v1/mail-templates/{kind}", tag = "notifications",
    params(("kind" = String, Path, description = "A kind of notification, or `*`")),
    security(("bearer" = [])),
    responses((status = 204, description = "Dropped")))]
pub(crate) async fn delete_template(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(kind): Path<String>,
) -> Result<StatusCode, Problem> {
    caller.require(MANAGERS, "change the tenant's mail templates")?;
    template_kind(&kind)?;
    let audit = caller.audit(
        "mail_template.delete",
        Some(kind.clone()),
        serde_json::Value::Null,
    );
    if state
        .store
        .delete_mail_template(&caller.scope, &kind, audit)
        .await
        .map_err(store_problem)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!(
            "the tenant has no templates of its own for `{kind}`"
        )))
    }
}
