//! Notifications (#22): an inbox per user, made in the transaction of the change that causes
//! it and delivered live on the user's topic; preferences per user × kind × channel over the
//! tenant's defaults (critical kinds cannot be muted); quiet hours in the user's zone and
//! digests; mail over SMTP sent by jobs, from per-tenant templates.
//!
//! - `kinds` (what can be notified, to whom, which are critical), `inbox` (the rows, their live
//!   messages and mail jobs, the inbox's reads), `prefs` and `quiet` (who wants what, when),
//! - `templates` (minijinja, text and HTML parts), `mail` (the SMTP transport), `jobs` (the
//!   mail and digest jobs), `sources` (the notifications of what nodes push),
//! - `api` (the endpoints).

use std::sync::Arc;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::server::http::{problem::Refusals, router::AppState};
use rollcall_service::problem::ProblemType;

pub(crate) mod api;
pub mod inbox;
pub mod jobs;
pub mod kinds;
pub mod mail;
pub mod prefs;
pub mod quiet;
pub mod sources;
#[cfg(test)]
mod suite;
pub mod templates;

/// This domain's routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(api::list))
        .routes(routes!(api::read))
        .routes(routes!(api::read_all))
        .routes(routes!(api::list_kinds))
        .routes(routes!(api::my_preferences, api::change_my_preferences))
        .routes(routes!(api::defaults, api::change_defaults))
        .routes(routes!(
            api::get_template,
            api::put_template,
            api::delete_template
        ))
}

pub const NO_INBOX: ProblemType = ProblemType {
    slug: "no-inbox",
    title: "No inbox",
    status: 409,
    meaning: "the caller is the bootstrap administrator, who is no user and has no inbox",
};
pub const UNKNOWN_NOTIFICATION_KIND: ProblemType = ProblemType {
    slug: "unknown-notification-kind",
    title: "Unknown notification kind",
    status: 422,
    meaning: "a preference names a kind that GET /api/v1/notification-kinds does not list",
};
pub const CRITICAL_NOTIFICATION: ProblemType = ProblemType {
    slug: "critical-notification",
    title: "Critical notification",
    status: 422,
    meaning: "a critical kind (door forced, tamper, fraud review) cannot be muted or digested",
};
pub const INVALID_NOTIFICATION_PREFERENCE: ProblemType = ProblemType {
    slug: "invalid-notification-preference",
    title: "Invalid notification preference",
    status: 422,
    meaning: "a digest window, time zone or quiet hours that cannot be used, or a kind twice",
};
pub const INVALID_MAIL_TEMPLATE: ProblemType = ProblemType {
    slug: "invalid-mail-template",
    title: "Invalid mail template",
    status: 422,
    meaning: "a mail template that does not render (its part and line are named)",
};

/// The problem types of this domain, for the OpenAPI document.
pub const PROBLEMS: &[&ProblemType] = &[
    &NO_INBOX,
    &UNKNOWN_NOTIFICATION_KIND,
    &CRITICAL_NOTIFICATION,
    &INVALID_NOTIFICATION_PREFERENCE,
    &INVALID_MAIL_TEMPLATE,
];

const PREFERENCE_REFUSALS: &[&ProblemType] = &[
    &UNKNOWN_NOTIFICATION_KIND,
    &CRITICAL_NOTIFICATION,
    &INVALID_NOTIFICATION_PREFERENCE,
];

pub(crate) const REFUSALS: &[Refusals] = &[
    Refusals {
        operation: "get /api/v1/notifications",
        types: &[&NO_INBOX],
    },
    Refusals {
        operation: "post /api/v1/notifications/{id}/read",
        types: &[&NO_INBOX],
    },
    Refusals {
        operation: "post /api/v1/notifications/read-all",
        types: &[&NO_INBOX],
    },
    Refusals {
        operation: "get /api/v1/me/notification-preferences",
        types: &[&NO_INBOX],
    },
    Refusals {
        operation: "patch /api/v1/me/notification-preferences",
        types: &[
            &NO_INBOX,
            &UNKNOWN_NOTIFICATION_KIND,
            &CRITICAL_NOTIFICATION,
            &INVALID_NOTIFICATION_PREFERENCE,
        ],
    },
    Refusals {
        operation: "patch /api/v1/notification-defaults",
        types: PREFERENCE_REFUSALS,
    },
    Refusals {
        operation: "put /api/v1/mail-templates/{kind}",
        types: &[&INVALID_MAIL_TEMPLATE],
    },
];
