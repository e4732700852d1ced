//! A tenant's people (the guards who check in): profile, active flag and the sites they are
//! assigned to. Deleting a person erases them: assignments, shifts and face templates go in the
//! same transaction (their attendance events stay: they are facts).

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{
    PgStore, SqliteStore, Store, StoreError, TenantScope,
    audit::Audit,
    blocking,
    postgres::{append_audit as pg_audit, scoped},
    sqlite::append_audit,
};
use rollcall_service::clock::now_ms;

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
    /// A new person; [`StoreError::Conflict`] if the id is taken, [`StoreError::Invalid`] if a
    /// site is not the tenant's.
    pub async fn create_person(
        &self,
        scope: &TenantScope,
        person: NewPerson,
        audit: Audit,
    ) -> Result<Person, StoreError> {
        let scope = scope.clone();
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| s.create_person(&scope, &person, &audit)).await
            }
            Store::Postgres(p) => p.create_person(&scope, &person, &audit).await,
        }
    }

    pub async fn people(
        &self,
        scope: &TenantScope,
        filter: PeopleFilter,
    ) -> Result<Vec<Person>, StoreError> {
        let scope = scope.clone();
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.people(&scope, &filter, None)).await,
            Store::Postgres(p) => p.people(&scope, &filter, None).await,
        }
    }

    pub async fn person(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Option<Person>, StoreError> {
        let (scope, id) = (scope.clone(), id.to_owned());
        let all = PeopleFilter::default();
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| Ok(s.people(&scope, &all, Some(&id))?.pop())).await
            }
            Store::Postgres(p) => Ok(p.people(&scope, &all, Some(&id)).await?.pop()),
        }
    }

    /// `None` if the tenant has no such person.
    pub async fn update_person(
        &self,
        scope: &TenantScope,
        id: &str,
        patch: PersonPatch,
        audit: Audit,
    ) -> Result<Option<Person>, StoreError> {
        let (scope, id) = (scope.clone(), id.to_owned());
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| s.update_person(&scope, &id, &patch, &audit)).await
            }
            Store::Postgres(p) => p.update_person(&scope, &id, &patch, &audit).await,
        }
    }

    /// Erases a person: profile, assignments, shifts and templates; `false` if there was none.
    pub async fn delete_person(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: Audit,
    ) -> Result<bool, StoreError> {
        let (scope, id) = (scope.clone(), id.to_owned());
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.delete_person(&scope, &id, &audit)).await,
            Store::Postgres(p) => p.delete_person(&scope, &id, &audit).await,
        }
    }
}

/// What erasing a person removes, child tables first.
const ERASE: [&str; 4] = ["face_templates", "shifts", "person_sites", "people"];

/// An erased person's id stays erased: nodes hold a tombstone for it that beats any edit.
fn erased(id: &str) -> StoreError {
    StoreError::Conflict(format!(
        "person `{id}` was erased; an erased id cannot be used again: choose another id"
    ))
}

fn unknown_sites(wanted: &[String], known: &[String]) -> Result<(), StoreError> {
    match wanted.iter().find(|s| !known.contains(s)) {
        Some(s) => Err(StoreError::Invalid(format!("site_ids: no site `{s}`"))),
        None => Ok(()),
    }
}

impl SqliteStore {
    fn set_sites(
        tx: &rusqlite::Transaction<'_>,
        scope: &TenantScope,
        id: &str,
        site_ids: &[String],
    ) -> Result<(), StoreError> {
        let known: Vec<String> = {
            let mut stmt = tx.prepare_cached("SELECT id FROM sites WHERE tenant_id = ?1")?;
            let rows = stmt.query_map([scope.id], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        unknown_sites(site_ids, &known)?;
        tx.execute(
            "DELETE FROM person_sites WHERE tenant_id = ?1 AND person_id = ?2",
            params![scope.id, id],
        )?;
        for site in site_ids {
            tx.execute(
                "INSERT INTO person_sites (tenant_id, person_id, site_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                params![scope.id, id, site],
            )?;
        }
        Ok(())
    }

    fn create_person(
        &mut self,
        scope: &TenantScope,
        p: &NewPerson,
        audit: &Audit,
    ) -> Result<Person, StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "INSERT INTO people (tenant_id, id, display_name, employee_ref, active, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5) ON CONFLICT DO NOTHING",
            params![scope.id, p.id, p.display_name, p.employee_ref, now_ms()],
        )?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "person `{}` already exists",
                p.id
            )));
        }
        if Self::was_erased(&tx, scope.id, &p.id)? {
            return Err(erased(&p.id));
        }
        Self::set_sites(&tx, scope, &p.id, &p.site_ids)?;
        append_audit(&tx, scope.id, audit)?;
        Self::note_person_change(&tx, scope.id, &p.id, false)?;
        tx.commit()?;
        self.people(scope, &PeopleFilter::default(), Some(&p.id))?
            .pop()
            .ok_or_else(|| StoreError::Conflict(format!("person `{}` vanished", p.id)))
    }

    pub(super) fn people(
        &self,
        scope: &TenantScope,
        f: &PeopleFilter,
        id: Option<&str>,
    ) -> Result<Vec<Person>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.id, p.display_name, p.employee_ref, p.active, p.created_ms, p.updated_ms,
                    (SELECT group_concat(site_id, char(10)) FROM
                        (SELECT site_id FROM person_sites s
                         WHERE s.tenant_id = p.tenant_id AND s.person_id = p.id ORDER BY site_id)),
                    (SELECT count(*) FROM face_templates t
                     WHERE t.tenant_id = p.tenant_id AND t.person_id = p.id)
             FROM people p
             WHERE p.tenant_id = ?1 AND (?2 IS NULL OR p.id = ?2) AND (?3 IS NULL OR p.active = ?3)
               AND (?4 IS NULL OR EXISTS (SELECT 1 FROM person_sites s
                    WHERE s.tenant_id = p.tenant_id AND s.person_id = p.id AND s.site_id = ?4))
             ORDER BY p.id",
        )?;
        let rows = stmt.query_map(params![scope.id, id, f.active, f.site_id], |r| {
            Ok(Person {
                id: r.get(0)?,
                display_name: r.get(1)?,
                employee_ref: r.get(2)?,
                active: r.get(3)?,
                created_ms: r.get(4)?,
                updated_ms: r.get(5)?,
                site_ids: split_lines(r.get::<_, Option<String>>(6)?.as_deref()),
                templates: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn update_person(
        &mut self,
        scope: &TenantScope,
        id: &str,
        patch: &PersonPatch,
        audit: &Audit,
    ) -> Result<Option<Person>, StoreError> {
        let tx = self.conn.transaction()?;
        let exists = tx
            .query_row(
                "SELECT 1 FROM people WHERE tenant_id = ?1 AND id = ?2",
                params![scope.id, id],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !exists {
            return Ok(None);
        }
        tx.execute(
            "UPDATE people SET display_name = coalesce(?3, display_name),
                    employee_ref = CASE WHEN ?4 THEN ?5 ELSE employee_ref END,
                    active = coalesce(?6, active), updated_ms = ?7
             WHERE tenant_id = ?1 AND id = ?2",
            params![
                scope.id,
                id,
                patch.display_name,
                patch.employee_ref.is_some(),
                patch.employee_ref.clone().flatten(),
                patch.active,
                now_ms()
            ],
        )?;
        if let Some(sites) = &patch.site_ids {
            Self::set_sites(&tx, scope, id, sites)?;
        }
        append_audit(&tx, scope.id, audit)?;
        Self::note_person_change(&tx, scope.id, id, false)?;
        tx.commit()?;
        Ok(self
            .people(scope, &PeopleFilter::default(), Some(id))?
            .pop())
    }

    fn delete_person(
        &mut self,
        scope: &TenantScope,
        id: &str,
        audit: &Audit,
    ) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let mut removed = 0;
        for table in ERASE {
            let column = if table == "people" { "id" } else { "person_id" };
            removed = tx.execute(
                &format!("DELETE FROM {table} WHERE tenant_id = ?1 AND {column} = ?2"),
                params![scope.id, id],
            )?;
        }
        if removed > 0 {
            append_audit(&tx, scope.id, audit)?;
            Self::note_person_change(&tx, scope.id, id, true)?;
        }
        tx.commit()?;
        Ok(removed > 0)
    }
}

fn split_lines(s: Option<&str>) -> Vec<String> {
    s.map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

impl PgStore {
    async fn set_sites(
        tx: &tokio_postgres::Transaction<'_>,
        scope: &TenantScope,
        id: &str,
        site_ids: &[String],
    ) -> Result<(), StoreError> {
        let known: Vec<String> = tx
            .query("SELECT id FROM sites WHERE tenant_id = $1", &[&scope.id])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        unknown_sites(site_ids, &known)?;
        tx.execute(
            "DELETE FROM person_sites WHERE tenant_id = $1 AND person_id = $2",
            &[&scope.id, &id],
        )
        .await?;
        tx.execute(
            "INSERT INTO person_sites (tenant_id, person_id, site_id)
             SELECT $1, $2, s FROM unnest($3::text[]) AS s ON CONFLICT DO NOTHING",
            &[&scope.id, &id, &site_ids],
        )
        .await?;
        Ok(())
    }

    async fn create_person(
        &self,
        scope: &TenantScope,
        p: &NewPerson,
        audit: &Audit,
    ) -> Result<Person, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let n = tx
            .execute(
                "INSERT INTO people (tenant_id, id, display_name, employee_ref, active, created_ms, updated_ms)
                 VALUES ($1, $2, $3, $4, true, $5, $5) ON CONFLICT DO NOTHING",
                &[&scope.id, &p.id, &p.display_name, &p.employee_ref, &now_ms()],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "person `{}` already exists",
                p.id
            )));
        }
        if Self::was_erased(&tx, scope.id, &p.id).await? {
            return Err(erased(&p.id));
        }
        Self::set_sites(&tx, scope, &p.id, &p.site_ids).await?;
        pg_audit(&tx, scope.id, audit).await?;
        Self::note_person_change(&tx, scope.id, &p.id, false).await?;
        let person = Self::people_in(&tx, scope, &PeopleFilter::default(), Some(&p.id))
            .await?
            .pop();
        tx.commit().await?;
        person.ok_or_else(|| StoreError::Conflict(format!("person `{}` vanished", p.id)))
    }

    async fn people_in(
        tx: &tokio_postgres::Transaction<'_>,
        scope: &TenantScope,
        f: &PeopleFilter,
        id: Option<&str>,
    ) -> Result<Vec<Person>, StoreError> {
        let rows = tx
            .query(
                "SELECT p.id, p.display_name, p.employee_ref, p.active, p.created_ms, p.updated_ms,
                        coalesce((SELECT array_agg(site_id ORDER BY site_id) FROM person_sites s
                                  WHERE s.tenant_id = p.tenant_id AND s.person_id = p.id), '{}'),
                        (SELECT count(*) FROM face_templates t
                         WHERE t.tenant_id = p.tenant_id AND t.person_id = p.id)
                 FROM people p
                 WHERE p.tenant_id = $1 AND ($2::text IS NULL OR p.id = $2)
                   AND ($3::bool IS NULL OR p.active = $3)
                   AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM person_sites s
                        WHERE s.tenant_id = p.tenant_id AND s.person_id = p.id AND s.site_id = $4))
                 ORDER BY p.id",
                &[&scope.id, &id, &f.active, &f.site_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Person {
                id: r.get(0),
                display_name: r.get(1),
                employee_ref: r.get(2),
                active: r.get(3),
                created_ms: r.get(4),
                updated_ms: r.get(5),
                site_ids: r.get(6),
                templates: u32::try_from(r.get::<_, i64>(7)).unwrap_or(u32::MAX),
            })
            .collect())
    }

    async fn people(
        &self,
        scope: &TenantScope,
        f: &PeopleFilter,
        id: Option<&str>,
    ) -> Result<Vec<Person>, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let people = Self::people_in(&tx, scope, f, id).await?;
        tx.commit().await?;
        Ok(people)
    }

    async fn update_person(
        &self,
        scope: &TenantScope,
        id: &str,
        patch: &PersonPatch,
        audit: &Audit,
    ) -> Result<Option<Person>, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let n = tx
            .execute(
                "UPDATE people SET display_name = coalesce($3, display_name),
                        employee_ref = CASE WHEN $4 THEN $5 ELSE employee_ref END,
                        active = coalesce($6, active), updated_ms = $7
                 WHERE tenant_id = $1 AND id = $2",
                &[
                    &scope.id,
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
            Self::set_sites(&tx, scope, id, sites).await?;
        }
        pg_audit(&tx, scope.id, audit).await?;
        Self::note_person_change(&tx, scope.id, id, false).await?;
        let person = Self::people_in(&tx, scope, &PeopleFilter::default(), Some(id))
            .await?
            .pop();
        tx.commit().await?;
        Ok(person)
    }

    async fn delete_person(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: &Audit,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let mut removed = 0;
        for table in ERASE {
            let column = if table == "people" { "id" } else { "person_id" };
            removed = tx
                .execute(
                    &format!("DELETE FROM {table} WHERE tenant_id = $1 AND {column} = $2"),
                    &[&scope.id, &id],
                )
                .await?;
        }
        if removed > 0 {
            pg_audit(&tx, scope.id, audit).await?;
            Self::note_person_change(&tx, scope.id, id, true).await?;
        }
        tx.commit().await?;
        Ok(removed > 0)
    }
}
