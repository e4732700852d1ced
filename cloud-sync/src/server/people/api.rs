//! `/api/v1/people` and `/api/v1/shifts`: the guards who check in — profile, the sites they are
//! assigned to, their shifts — and their face templates, which are accepted and counted but
//! never given back (the vectors are sealed in the database; only the tenant's nodes get them).

use std::sync::Arc;

use axum::{
    extract::{Path, Query, State, rejection::QueryRejection},
    http::StatusCode,
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::server::{
    auth::identity::Caller,
    http::{problem::store_problem, router::AppState},
    people::{
        shifts::{Shift, ShiftFilter},
        store::{NewPerson, PeopleFilter, Person, PersonPatch},
        templates::{NewTemplate, TemplateInfo},
        uploads::PersonHistoryEntry,
    },
    tenants::resolve as tenancy,
    users::store::Role,
};
use rollcall_protocol::ids::{ModelName, PersonId, SiteId};
use rollcall_service::problem::{Json, Problem};

const MANAGERS: &[Role] = &[Role::Owner, Role::Admin, Role::Supervisor];
const READERS: &[Role] = &[Role::Owner, Role::Admin, Role::Supervisor, Role::Auditor];
/// Erasing a person is for owners and admins.
const ERASERS: &[Role] = &[Role::Owner, Role::Admin];

/// Longest shift: a day.
const MAX_SHIFT_MS: i64 = 24 * 3600 * 1000;
const MAX_SITES: usize = 100;
/// Embedding lengths accepted (the embedders in use have 128-512).
const DIMS: std::ops::RangeInclusive<usize> = 64..=1024;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPersonRequest {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    id: String,
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$",
        max_length = 200
    )]
    display_name: String,
    /// Payroll number, badge id: at most 64 characters.
    #[schema(max_length = 64)]
    employee_ref: Option<String>,
    /// Sites they may check in at (at most 100; each must exist).
    #[serde(default)]
    site_ids: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PersonPatchRequest {
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$",
        max_length = 200
    )]
    display_name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "crate::server::http::present")]
    #[schema(max_length = 64)]
    employee_ref: Option<Option<String>>,
    active: Option<bool>,
    /// Replaces the assignments.
    site_ids: Option<Vec<String>>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PeopleQuery {
    /// Only people assigned to this site.
    site_id: Option<String>,
    /// Only active (or inactive) people.
    active: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PeopleList {
    items: Vec<Person>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewShiftRequest {
    person_id: String,
    site_id: String,
    /// Start, ms since the Unix epoch.
    starts_ms: i64,
    /// End (exclusive), after the start, at most 24 hours later.
    ends_ms: i64,
    #[schema(max_length = 500)]
    note: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ShiftQuery {
    person_id: Option<String>,
    site_id: Option<String>,
    /// Shifts ending after this time (ms since the Unix epoch).
    from_ms: Option<i64>,
    /// Shifts starting before this time.
    to_ms: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ShiftList {
    /// By start time; at most 1000.
    items: Vec<Shift>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTemplateRequest {
    /// The embedder that made the vector, e.g. `mobilefacenet-v1`.
    #[schema(pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    model: String,
    /// The face embedding: 64-1024 finite numbers, not all zero (stored L2-normalised).
    #[schema(min_items = 64, max_items = 1024)]
    embedding: Vec<f32>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TemplateList {
    items: Vec<TemplateInfo>,
}

fn checked_ref(r: &Option<String>) -> Result<Option<String>, Problem> {
    match r.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(r) if r.chars().count() > 64 || r.chars().any(char::is_control) => Err(
            Problem::bad_request("employee_ref: at most 64 characters, no control characters"),
        ),
        Some(r) => Ok(Some(r.to_owned())),
    }
}

fn checked_sites(sites: Vec<String>) -> Result<Vec<String>, Problem> {
    if sites.len() > MAX_SITES {
        return Err(Problem::bad_request(format!(
            "site_ids: at most {MAX_SITES} sites"
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, s) in sites.into_iter().enumerate() {
        if !SiteId::is_valid(&s) {
            return Err(Problem::bad_request(format!(
                "site_ids[{i}]: {}",
                SiteId::RULE
            )));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

fn no_person(id: &str) -> Problem {
    Problem::not_found(format!("no person `{id}`"))
}

/// The tenant's people, by id.
#[utoipa::path(get, path = "/api/v1/people", tag = "people", params(PeopleQuery),
    security(("bearer" = [])),
    responses((status = 200, body = PeopleList)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    q: Result<Query<PeopleQuery>, QueryRejection>,
) -> Result<axum::Json<PeopleList>, Problem> {
    caller.require(READERS, "list people")?;
    let q = crate::server::attendance::api::query(q)?;
    let items = state
        .store
        .people(
            &caller.scope,
            PeopleFilter {
                site_id: q.site_id,
                active: q.active,
            },
        )
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(PeopleList { items }))
}

/// A new person, active, assigned to the given sites.
#[utoipa::path(post, path = "/api/v1/people", tag = "people", request_body = NewPersonRequest,
    security(("bearer" = [])),
    responses((status = 201, body = Person)))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(req): Json<NewPersonRequest>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(MANAGERS, "add people")?;
    if !PersonId::is_valid(&req.id) {
        return Err(Problem::bad_request(
            "id: 1-64 letters, digits, _, . or -, starting with a letter or digit",
        ));
    }
    tenancy::check_display_name(&req.display_name)?;
    let person = NewPerson {
        id: req.id.clone(),
        display_name: req.display_name.trim().to_owned(),
        employee_ref: checked_ref(&req.employee_ref)?,
        site_ids: checked_sites(req.site_ids)?,
    };
    let audit = caller.audit(
        "person.create",
        Some(req.id),
        serde_json::json!({ "site_ids": person.site_ids }),
    );
    let person = state
        .store
        .create_person(&caller.scope, person, audit)
        .await
        .map_err(store_problem)?;
    Ok((StatusCode::CREATED, axum::Json(person)))
}

/// One person.
#[utoipa::path(get, path = "/api/v1/people/{id}", tag = "people",
    params(("id" = String, Path, description = "The person's id")),
    security(("bearer" = [])),
    responses((status = 200, body = Person)))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Person>, Problem> {
    caller.require(READERS, "see people")?;
    held(&state, &caller, &id).await.map(axum::Json)
}

/// The tenant's person `id`, or 404.
async fn held(state: &AppState, caller: &Caller, id: &str) -> Result<Person, Problem> {
    state
        .store
        .person(&caller.scope, id)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| no_person(id))
}

/// Renames a person, sets their reference, (de)activates them or replaces their sites.
#[utoipa::path(patch, path = "/api/v1/people/{id}", tag = "people", request_body = PersonPatchRequest,
    params(("id" = String, Path, description = "The person's id")),
    security(("bearer" = [])),
    responses((status = 200, body = Person)))]
pub(crate) async fn update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<PersonPatchRequest>,
) -> Result<axum::Json<Person>, Problem> {
    caller.require(MANAGERS, "change people")?;
    if let Some(name) = &req.display_name {
        tenancy::check_display_name(name)?;
    }
    let patch = PersonPatch {
        display_name: req.display_name.map(|n| n.trim().to_owned()),
        employee_ref: req.employee_ref.map(|r| checked_ref(&r)).transpose()?,
        active: req.active,
        site_ids: req.site_ids.map(checked_sites).transpose()?,
    };
    let audit = caller.audit(
        "person.update",
        Some(id.clone()),
        serde_json::json!({ "active": patch.active, "site_ids": patch.site_ids }),
    );
    state
        .store
        .update_person(&caller.scope, &id, patch, audit)
        .await
        .map_err(store_problem)?
        .map(axum::Json)
        .ok_or_else(|| no_person(&id))
}

/// Erases a person: profile, site assignments, shifts and face templates. Their attendance
/// events stay (they are facts) and still name their id.
#[utoipa::path(delete, path = "/api/v1/people/{id}", tag = "people",
    params(("id" = String, Path, description = "The person's id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Erased")))]
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    caller.require(ERASERS, "erase people")?;
    let audit = caller.audit("person.erase", Some(id.clone()), serde_json::Value::Null);
    if state
        .store
        .delete_person(&caller.scope, &id, audit)
        .await
        .map_err(store_problem)?
    {
        tracing::info!(tenant = %caller.scope.slug(), by = %caller.who(), person = %id, "person erased");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_person(&id))
    }
}

/// Shifts overlapping a time range, of a person and/or site.
#[utoipa::path(get, path = "/api/v1/shifts", tag = "people", params(ShiftQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ShiftList)))]
pub(crate) async fn list_shifts(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    q: Result<Query<ShiftQuery>, QueryRejection>,
) -> Result<axum::Json<ShiftList>, Problem> {
    caller.require(READERS, "see shifts")?;
    let q = crate::server::attendance::api::query(q)?;
    if let (Some(from), Some(to)) = (q.from_ms, q.to_ms)
        && from >= to
    {
        return Err(Problem::bad_request("from_ms must be before to_ms"));
    }
    let items = state
        .store
        .shifts(
            &caller.scope,
            ShiftFilter {
                person_id: q.person_id,
                site_id: q.site_id,
                from_ms: q.from_ms,
                to_ms: q.to_ms,
            },
        )
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(ShiftList { items }))
}

/// Books a shift for an active person at a site they are assigned to; it may not overlap
/// another of theirs (409).
#[utoipa::path(post, path = "/api/v1/shifts", tag = "people", request_body = NewShiftRequest,
    security(("bearer" = [])),
    responses((status = 201, body = Shift)))]
pub(crate) async fn create_shift(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(req): Json<NewShiftRequest>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(MANAGERS, "book shifts")?;
    if req.ends_ms <= req.starts_ms {
        return Err(Problem::bad_request("ends_ms must be after starts_ms"));
    }
    if req.ends_ms - req.starts_ms > MAX_SHIFT_MS {
        return Err(Problem::bad_request("a shift lasts at most 24 hours"));
    }
    let note = match req.note.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(n) if n.chars().count() > 500 || n.chars().any(|c| c.is_control() && c != '\n') => {
            return Err(Problem::bad_request(
                "note: at most 500 characters, no control characters",
            ));
        }
        Some(n) => Some(n.to_owned()),
    };
    let shift = Shift {
        id: crate::server::auth::extract::new_id("shf")?,
        person_id: req.person_id,
        site_id: req.site_id,
        starts_ms: req.starts_ms,
        ends_ms: req.ends_ms,
        note,
        created_ms: 0,
    };
    let audit = caller.audit(
        "shift.create",
        Some(shift.id.clone()),
        serde_json::json!({ "person_id": shift.person_id, "site_id": shift.site_id,
                            "starts_ms": shift.starts_ms, "ends_ms": shift.ends_ms }),
    );
    let shift = state
        .store
        .create_shift(&caller.scope, shift, audit)
        .await
        .map_err(store_problem)?;
    Ok((StatusCode::CREATED, axum::Json(shift)))
}

/// Cancels a shift.
#[utoipa::path(delete, path = "/api/v1/shifts/{id}", tag = "people",
    params(("id" = String, Path, description = "The shift's id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Cancelled")))]
pub(crate) async fn delete_shift(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    caller.require(MANAGERS, "cancel shifts")?;
    let audit = caller.audit("shift.delete", Some(id.clone()), serde_json::Value::Null);
    if state
        .store
        .delete_shift(&caller.scope, &id, audit)
        .await
        .map_err(store_problem)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("no shift `{id}`")))
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// Versions to list, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PersonHistory {
    /// Newest first.
    items: Vec<PersonHistoryEntry>,
}

/// The versions of a person that lost a merge with a node's, or that a node's replaced
/// (people enrolled and edited at nodes are merged by their hybrid logical clocks: the later
/// wins, an erasure always wins, and nothing is dropped silently). Kept after an erasure.
#[utoipa::path(get, path = "/api/v1/people/{id}/history", tag = "people", params(("id" = String, Path, description = "The person's id"), HistoryQuery),
    security(("bearer" = [])),
    responses((status = 200, body = PersonHistory)))]
pub(crate) async fn history(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<axum::Json<PersonHistory>, Problem> {
    caller.require(READERS, "see people")?;
    let limit = crate::server::attendance::api::page_limit(
        crate::server::attendance::api::query(q)?.limit,
    )?;
    let items = state
        .store
        .person_history(&caller.scope, &id, limit)
        .await
        .map_err(store_problem)?;
    if items.is_empty() {
        held(&state, &caller, &id).await?;
    }
    Ok(axum::Json(PersonHistory { items }))
}

/// A person's face templates: what and when, never the vectors.
#[utoipa::path(get, path = "/api/v1/people/{id}/templates", tag = "people",
    params(("id" = String, Path, description = "The person's id")),
    security(("bearer" = [])),
    responses((status = 200, body = TemplateList)))]
pub(crate) async fn list_templates(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<TemplateList>, Problem> {
    caller.require(READERS, "see face templates")?;
    held(&state, &caller, &id).await?;
    let items = state
        .store
        .templates(&caller.scope, &id)
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(TemplateList { items }))
}

/// Enrols a face template for a person (at most 20 each): the vector is sealed with the
/// tenant's key and never shown again.
#[utoipa::path(post, path = "/api/v1/people/{id}/templates", tag = "people", request_body = NewTemplateRequest,
    params(("id" = String, Path, description = "The person's id")),
    security(("bearer" = [])),
    responses((status = 201, body = TemplateInfo)))]
pub(crate) async fn add_template(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<NewTemplateRequest>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(MANAGERS, "enrol faces")?;
    if !ModelName::is_valid(&req.model) {
        return Err(Problem::bad_request(
            "model: 1-64 of a-z, 0-9, _, . or -, starting with a letter or digit",
        ));
    }
    if !DIMS.contains(&req.embedding.len()) {
        return Err(Problem::bad_request(format!(
            "embedding: {}-{} numbers, got {}",
            DIMS.start(),
            DIMS.end(),
            req.embedding.len()
        )));
    }
    if req.embedding.iter().any(|x| !x.is_finite()) {
        return Err(Problem::bad_request(
            "embedding: every number must be finite",
        ));
    }
    let norm = req.embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_normal() {
        return Err(Problem::bad_request("embedding: must not be all zeros"));
    }
    let template = NewTemplate {
        id: crate::server::auth::extract::new_id("tpl")?,
        person_id: id.clone(),
        model: req.model,
        vector: req.embedding.iter().map(|x| x / norm).collect(),
    };
    let audit = caller.audit(
        "template.add",
        Some(id.clone()),
        serde_json::json!({ "template": template.id, "model": template.model,
                            "dim": template.vector.len() }),
    );
    let info = state
        .store
        .add_template(&caller.scope, &state.master_key, template, audit)
        .await
        .map_err(|e| match e {
            // The person is in the path: a missing one is 404, like every other path object.
            crate::server::store::StoreError::Refused(r)
                if r.problem_type() == &crate::server::people::store::UNKNOWN_PERSON =>
            {
                no_person(&id)
            }
            e => store_problem(e),
        })?;
    Ok((StatusCode::CREATED, axum::Json(info)))
}

/// Deletes one of a person's templates.
#[utoipa::path(delete, path = "/api/v1/people/{id}/templates/{template_id}", tag = "people",
    params(("id" = String, Path, description = "The person's id"),
           ("template_id" = String, Path, description = "The template's id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted")))]
pub(crate) async fn delete_template(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, template_id)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    caller.require(MANAGERS, "delete face templates")?;
    let audit = caller.audit(
        "template.delete",
        Some(id.clone()),
        serde_json::json!({ "template": template_id }),
    );
    if state
        .store
        .delete_template(&caller.scope, &id, &template_id, audit)
        .await
        .map_err(store_problem)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!(
            "no template `{template_id}` of person `{id}`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_ids_and_models_are_checked() {
        for ok in ["E-1042", "obama", "p1", "a.b_c-d", &"x".repeat(64)] {
            assert!(PersonId::is_valid(ok), "{ok}");
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(!PersonId::is_valid(bad), "{bad}");
        }
        assert!(ModelName::is_valid("mobilefacenet-v1"));
        for bad in ["", "Mobile", "-x", "a b"] {
            assert!(!ModelName::is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn employee_refs_are_trimmed_and_bounded() {
        assert_eq!(
            checked_ref(&Some("  E-1 ".into())).ok(),
            Some(Some("E-1".into()))
        );
        assert_eq!(checked_ref(&Some("   ".into())).ok(), Some(None));
        assert!(checked_ref(&Some("x".repeat(65))).is_err());
        assert!(checked_ref(&Some("a\u{7}".into())).is_err());
    }

    #[test]
    fn site_lists_are_checked_and_deduplicated() {
        assert_eq!(
            checked_sites(vec!["hq".into(), "annex".into(), "hq".into()]).ok(),
            Some(vec!["hq".to_owned(), "annex".to_owned()])
        );
        assert!(checked_sites(vec!["HQ".into()]).is_err());
        assert!(checked_sites((0..101).map(|i| format!("s{i}")).collect()).is_err());
    }
}
