//! A tenant's people: the admin API, their storage with sites, face templates (sealed) and
//! shifts, the feed of changes the nodes pull, and the merge of people the nodes push.

use std::sync::Arc;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::server::http::{problem::Refusals, router::AppState};

pub(crate) mod api;
pub mod changes;
pub(crate) mod model_dims;
pub mod shifts;
pub mod store;
pub mod templates;
pub mod uploads;

/// This domain's routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(api::list, api::create))
        .routes(routes!(api::get, api::update, api::delete))
        .routes(routes!(api::list_templates, api::add_template))
        .routes(routes!(api::delete_template))
        .routes(routes!(api::history))
        .routes(routes!(api::list_shifts, api::create_shift))
        .routes(routes!(api::delete_shift))
}

/// The problem types of this domain each operation can refuse with (the OpenAPI document lists
/// them on the operation).
pub(crate) const REFUSALS: &[Refusals] = &[
    Refusals {
        operation: "post /api/v1/people",
        types: &[
            &store::PERSON_EXISTS,
            &store::PERSON_ERASED,
            &store::UNKNOWN_SITE,
        ],
    },
    Refusals {
        operation: "patch /api/v1/people/{id}",
        types: &[&store::UNKNOWN_SITE],
    },
    Refusals {
        operation: "post /api/v1/people/{id}/templates",
        types: &[
            &store::UNKNOWN_PERSON,
            &store::TOO_MANY_TEMPLATES,
            &store::TEMPLATE_DIMENSION,
        ],
    },
    Refusals {
        operation: "post /api/v1/shifts",
        types: &[
            &store::UNKNOWN_PERSON,
            &store::PERSON_INACTIVE,
            &store::NOT_ASSIGNED,
            &store::SHIFT_OVERLAP,
        ],
    },
];
