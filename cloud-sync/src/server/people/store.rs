//! A tenant's people (the guards who check in): profile, active flag and the sites they are
//! assigned to. Deleting a person erases them: assignments, shifts and face templates go in the
//! same transaction (their attendance events stay: they are facts).

use serde::Serialize;

use crate::server::store::Refused;
use rollcall_service::problem::ProblemType;

use crate::server::{
    audit::store::Audit,
    people::changes::{note_change, was_erased},
    store::{
        Store, StoreError, TenantScope,
        exec::{Dialect, Exec, in_tenant},
    },
};
use rollcall_service::clock::now_ms;

/// What the people's API refuses (people, their templates and shifts).
#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    #[error("person `{0}` already exists")]
    Exists(String),
    #[error("person `{0}` was erased; an erased id cannot be used again: choose another id")]
    Erased(String),
    #[error("site_ids: no site `{0}`")]
    UnknownSite(String),
    #[error("no person `{0}`")]
    NoPerson(String),
    #[error("person_id: no person `{0}`")]
    NoShiftPerson(String),
    #[error("person `{0}` is inactive")]
    Inactive(String),
    #[error("person `{person}` is not assigned to site `{site}`")]
    NotAssigned { person: String, site: String },
    #[error("person `{person}` already has shift `{other}` at that time")]
    ShiftOverlap { person: String, other: String },
    #[error("person `{0}` has {max} templates already; delete one first", max = super::templates::MAX_PER_PERSON)]
    TooManyTemplates(String),
    #[error("embedding: {0}")]
    TemplateDimension(super::model_dims::Mismatch),
}

pub const PERSON_EXISTS: ProblemType = ProblemType {
    slug: "person-exists",
    title: "Person exists",
    status: 409,
    meaning: "the tenant has a person with this id",
};
pub const PERSON_ERASED: ProblemType = ProblemType {
    slug: "person-erased",
    title: "Person erased",
    status: 409,
    meaning: "a person with this id was erased; nodes keep its tombstone, so the id is never reused",
};
pub const UNKNOWN_SITE: ProblemType = ProblemType {
    slug: "unknown-site",
    title: "Unknown site",
    status: 400,
    meaning: "the request names a site the tenant does not have",
};
pub const UNKNOWN_PERSON: ProblemType = ProblemType {
    slug: "unknown-person",
    title: "Unknown person",
    status: 400,
    meaning: "the request names a person the tenant does not have",
};
pub const PERSON_INACTIVE: ProblemType = ProblemType {
    slug: "person-inactive",
    title: "Person inactive",
    status: 400,
    meaning: "an inactive person gets no new shifts",
};
pub const NOT_ASSIGNED: ProblemType = ProblemType {
    slug: "not-assigned",
    title: "Not assigned to the site",
    status: 400,
    meaning: "a shift is only for a person assigned to its site",
};
pub const SHIFT_OVERLAP: ProblemType = ProblemType {
    slug: "shift-overlap",
    title: "Shifts overlap",
    status: 409,
    meaning: "the person already has a shift overlapping this one",
};
pub const TOO_MANY_TEMPLATES: ProblemType = ProblemType {
    slug: "too-many-templates",
    title: "Too many templates",
    status: 409,
    meaning: "the person has the most face templates one person may have",
};

pub const TEMPLATE_DIMENSION: ProblemType = ProblemType {
    slug: "template-dimension",
    title: "Wrong embedding length for the model",
    status: 409,
    meaning: "each model name stands for one embedding length in a tenant, fixed by its first template",
};

/// The problem types of this domain, for the OpenAPI document.
pub const PROBLEMS: &[&ProblemType] = &[
    &PERSON_EXISTS,
    &PERSON_ERASED,
    &UNKNOWN_SITE,
    &UNKNOWN_PERSON,
    &PERSON_INACTIVE,
    &NOT_ASSIGNED,
    &SHIFT_OVERLAP,
    &TOO_MANY_TEMPLATES,
    &TEMPLATE_DIMENSION,
];

impl Refused for PeopleError {
    fn problem_type(&self) -> &'static ProblemType {
        match self {
            PeopleError::Exists(_) => &PERSON_EXISTS,
            PeopleError::Erased(_) => &PERSON_ERASED,
            PeopleError::UnknownSite(_) => &UNKNOWN_SITE,
            PeopleError::NoPerson(_) | PeopleError::NoShiftPerson(_) => &UNKNOWN_PERSON,
            PeopleError::Inactive(_) => &PERSON_INACTIVE,
            PeopleError::NotAssigned { .. } => &NOT_ASSIGNED,
            PeopleError::ShiftOverlap { .. } => &SHIFT_OVERLAP,
            PeopleError::TooManyTemplates(_) => &TOO_MANY_TEMPLATES,
            PeopleError::TemplateDimension(_) => &TEMPLATE_DIMENSION,
        }
    }
}

/// A person as the API shows one (never their face templates, only how many).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Person {
    pub id: String,
    pub display_name: String,
    /// The tenant's own reference (payroll number, badge id), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub employee_ref: Option<String>,
    /// An inactive person keeps their history but gets no new shifts.
    pub active: bool,
    /// The sites they may check in at.
    pub site_ids: Vec<String>,
    /// How many face templates are enrolled.
    pub templates: u32,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone)]
pub struct NewPerson {
    pub id: String,
    pub display_name: String,
    pub employee_ref: Option<String>,
    pub site_ids: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct PersonPatch {
    pub display_name: Option<String>,
    /// `Some(None)` clears it.
    pub employee_ref: Option<Option<String>>,
    pub active: Option<bool>,
    /// Replaces the assignments.
    pub site_ids: Option<Vec<String>>,
}

/// Which people a list shows.
#[derive(Debug, Clone, Default)]
pub struct PeopleFilter {
    pub site_id: Option<String>,
    pub active: Option<bool>,
}

impl Store {
    /// A new person; [`PeopleError::Exists`] if the id is taken, [`PeopleError::UnknownSite`] if a
    /// site is not the tenant's.
    pub async fn create_person(
        &self,
        scope: &TenantScope,
        person: NewPerson,
        audit: Audit,
    ) -> Result<Person, StoreError> {
        in_tenant!(write self, scope, audit, |tx| create(tx, &person))
    }

    pub async fn people(
        &self,
        scope: &TenantScope,
        filter: PeopleFilter,
    ) -> Result<Vec<Person>, StoreError> {
        in_tenant!(read self, scope, |tx| list(tx, &filter, None))
    }

    pub async fn person(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Option<Person>, StoreError> {
        let id = id.to_owned();
        in_tenant!(read self, scope, |tx| one(tx, &id))
    }

    /// `None` if the tenant has no such person.
    pub async fn update_person(
        &self,
        scope: &TenantScope,
        id: &str,
        patch: PersonPatch,
        audit: Audit,
    ) -> Result<Option<Person>, StoreError> {
        let id = id.to_owned();
        in_tenant!(write self, scope, audit, |tx| update(tx, &id, &patch))
    }

    /// Erases a person: profile, assignments, shifts and templates; `false` if there was none.
    pub async fn delete_person(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: Audit,
    ) -> Result<bool, StoreError> {
        let id = id.to_owned();
        in_tenant!(write self, scope, audit, |tx| erase(tx, &id))
    }
}

crate::server::store::exec::always_changed!(Person);

/// What erasing a person removes, child tables first.
const ERASE: [&str; 4] = ["face_templates", "shifts", "person_sites", "people"];

/// An erased person's id stays erased: nodes hold a tombstone for it that beats any edit.
fn unknown_sites(wanted: &[String], known: &[String]) -> Result<(), StoreError> {
    match wanted.iter().find(|s| !known.contains(s)) {
        Some(s) => Err(PeopleError::UnknownSite(s.clone()).into()),
        None => Ok(()),
    }
}

async fn set_sites(tx: &impl Exec, id: &str, site_ids: &[String]) -> Result<(), StoreError> {
    let known: Vec<String> = tx
        .query(
            "SELECT id FROM sites WHERE tenant_id = $1",
            &[&tx.tenant()],
            |r| r.get(0),
        )
        .await?;
    unknown_sites(site_ids, &known)?;
    tx.execute(
        "DELETE FROM person_sites WHERE tenant_id = $1 AND person_id = $2",
        &[&tx.tenant(), &id],
    )
    .await?;
    for site in site_ids {
        tx.execute(
            "INSERT INTO person_sites (tenant_id, person_id, site_id) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&tx.tenant(), &id, site],
        )
        .await?;
    }
    Ok(())
}

async fn create(tx: &impl Exec, p: &NewPerson) -> Result<Person, StoreError> {
    let n = tx
        .execute(
            "INSERT INTO people
               (tenant_id, id, display_name, employee_ref, active, created_ms, updated_ms)
             VALUES ($1, $2, $3, $4, TRUE, $5, $5) ON CONFLICT DO NOTHING",
            &[
                &tx.tenant(),
                &p.id,
                &p.display_name,
                &p.employee_ref,
                &now_ms(),
            ],
        )
        .await?;
    if n == 0 {
        return Err(PeopleError::Exists(p.id.clone()).into());
    }
    if was_erased(tx, &p.id).await? {
        return Err(PeopleError::Erased(p.id.clone()).into());
    }
    set_sites(tx, &p.id, &p.site_ids).await?;
    note_change(tx, &p.id, false).await?;
    one(tx, &p.id)
        .await?
        .ok_or_else(|| StoreError::Inconsistent(format!("person `{}` vanished", p.id)))
}

async fn one(tx: &impl Exec, id: &str) -> Result<Option<Person>, StoreError> {
    Ok(list(tx, &PeopleFilter::default(), Some(id)).await?.pop())
}

/// The people `f` picks (or only `id`), by id.
pub(crate) async fn list(
    tx: &impl Exec,
    f: &PeopleFilter,
    id: Option<&str>,
) -> Result<Vec<Person>, StoreError> {
    // Each person's sites as one text, a line per site.
    let sites = match tx.dialect() {
        Dialect::Sqlite => {
            "(SELECT group_concat(site_id, char(10)) FROM
                (SELECT site_id FROM person_sites s
                 WHERE s.tenant_id = p.tenant_id AND s.person_id = p.id ORDER BY site_id))"
        }
        Dialect::Postgres => {
            "(SELECT string_agg(site_id, chr(10) ORDER BY site_id) FROM person_sites s
              WHERE s.tenant_id = p.tenant_id AND s.person_id = p.id)"
        }
    };
    tx.query(
        &format!(
            "SELECT p.id, p.display_name, p.employee_ref, p.active, p.created_ms, p.updated_ms,
                    {sites},
                    (SELECT count(*) FROM face_templates t
                     WHERE t.tenant_id = p.tenant_id AND t.person_id = p.id)
             FROM people p
             WHERE p.tenant_id = $1 AND (CAST($2 AS TEXT) IS NULL OR p.id = $2)
               AND (CAST($3 AS BOOLEAN) IS NULL OR p.active = $3)
               AND (CAST($4 AS TEXT) IS NULL OR EXISTS (SELECT 1 FROM person_sites s
                    WHERE s.tenant_id = p.tenant_id AND s.person_id = p.id AND s.site_id = $4))
             ORDER BY p.id"
        ),
        &[&tx.tenant(), &id, &f.active, &f.site_id],
        |r| {
            Ok(Person {
                id: r.get(0)?,
                display_name: r.get(1)?,
                employee_ref: r.get(2)?,
                active: r.get(3)?,
                created_ms: r.get(4)?,
                updated_ms: r.get(5)?,
                site_ids: split_lines(r.get::<Option<String>>(6)?.as_deref()),
                templates: u32::try_from(r.get::<i64>(7)?).unwrap_or(u32::MAX),
            })
        },
    )
    .await
}

async fn update(
    tx: &impl Exec,
    id: &str,
    patch: &PersonPatch,
) -> Result<Option<Person>, StoreError> {
    let n = tx
        .execute(
            "UPDATE people SET display_name = coalesce($3, display_name),
                    employee_ref = CASE WHEN $4 THEN $5 ELSE employee_ref END,
                    active = coalesce($6, active), updated_ms = $7
             WHERE tenant_id = $1 AND id = $2",
            &[
                &tx.tenant(),
                &id,
                &patch.display_name,
                &patch.employee_ref.is_some(),
                &patch.employee_ref.clone().flatten(),
                &patch.active,
                &now_ms(),
            ],
        )
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if let Some(sites) = &patch.site_ids {
        set_sites(tx, id, sites).await?;
    }
    note_change(tx, id, false).await?;
    one(tx, id).await
}

async fn erase(tx: &impl Exec, id: &str) -> Result<bool, StoreError> {
    let mut removed = 0;
    for table in ERASE {
        let column = if table == "people" { "id" } else { "person_id" };
        removed = tx
            .execute(
                &format!("DELETE FROM {table} WHERE tenant_id = $1 AND {column} = $2"),
                &[&tx.tenant(), &id],
            )
            .await?;
    }
    if removed > 0 {
        note_change(tx, id, true).await?;
    }
    Ok(removed > 0)
}

fn split_lines(s: Option<&str>) -> Vec<String> {
    s.map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}
