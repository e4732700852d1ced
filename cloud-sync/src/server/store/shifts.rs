//! Shifts: when a person is expected at a site. A shift is for an active person assigned to the
//! site, and a person's shifts never overlap (checked under a lock on the person's row, so two
//! concurrent bookings cannot both pass).

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

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Shift {
    pub id: String,
    pub person_id: String,
    pub site_id: String,
    /// Start, ms since the Unix epoch.
    pub starts_ms: i64,
    /// End (exclusive), ms since the Unix epoch.
    pub ends_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub created_ms: i64,
}

/// Which shifts a list shows: those overlapping `[from_ms, to_ms)`, of a person and/or site.
#[derive(Debug, Clone, Default)]
pub struct ShiftFilter {
    pub person_id: Option<String>,
    pub site_id: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// Most shifts one list returns.
pub const MAX_SHIFTS: i64 = 1000;

const COLUMNS: &str = "id, person_id, site_id, starts_ms, ends_ms, note, created_ms";

impl Store {
    /// A new shift; [`StoreError::Invalid`] for an unknown or inactive person, a site they are not
    /// assigned to, and [`StoreError::Conflict`] if it overlaps one of theirs.
    pub async fn create_shift(
        &self,
        scope: &TenantScope,
        shift: Shift,
        audit: Audit,
    ) -> Result<Shift, StoreError> {
        let scope = scope.clone();
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.create_shift(&scope, &shift, &audit)).await,
            Store::Postgres(p) => p.create_shift(&scope, &shift, &audit).await,
        }
    }

    /// Shifts by start time, at most [`MAX_SHIFTS`].
    pub async fn shifts(
        &self,
        scope: &TenantScope,
        filter: ShiftFilter,
    ) -> Result<Vec<Shift>, StoreError> {
        let scope = scope.clone();
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.shifts(&scope, &filter)).await,
            Store::Postgres(p) => p.shifts(&scope, &filter).await,
        }
    }

    pub async fn delete_shift(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: Audit,
    ) -> Result<bool, StoreError> {
        let (scope, id) = (scope.clone(), id.to_owned());
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.delete_shift(&scope, &id, &audit)).await,
            Store::Postgres(p) => p.delete_shift(&scope, &id, &audit).await,
        }
    }
}

/// Why a person cannot take a shift at a site, if they cannot.
fn refusal(person: Option<(bool, bool)>, shift: &Shift) -> Option<StoreError> {
    match person {
        None => Some(StoreError::Invalid(format!(
            "person_id: no person `{}`",
            shift.person_id
        ))),
        Some((false, _)) => Some(StoreError::Invalid(format!(
            "person `{}` is inactive",
            shift.person_id
        ))),
        Some((true, false)) => Some(StoreError::Invalid(format!(
            "person `{}` is not assigned to site `{}`",
            shift.person_id, shift.site_id
        ))),
        Some((true, true)) => None,
    }
}

fn overlap(shift: &Shift, other: &str) -> StoreError {
    StoreError::Conflict(format!(
        "person `{}` already has shift `{other}` at that time",
        shift.person_id
    ))
}

impl SqliteStore {
    fn create_shift(
        &mut self,
        scope: &TenantScope,
        s: &Shift,
        audit: &Audit,
    ) -> Result<Shift, StoreError> {
        // SQLite has one writer at a time: the check and the insert cannot interleave.
        let tx = self.conn.transaction()?;
        let person = tx
            .query_row(
                "SELECT active, EXISTS (SELECT 1 FROM person_sites WHERE tenant_id = ?1 AND person_id = ?2 AND site_id = ?3)
                 FROM people WHERE tenant_id = ?1 AND id = ?2",
                params![scope.id, s.person_id, s.site_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some(e) = refusal(person, s) {
            return Err(e);
        }
        let clash: Option<String> = tx
            .query_row(
                "SELECT id FROM shifts WHERE tenant_id = ?1 AND person_id = ?2 AND starts_ms < ?4 AND ends_ms > ?3 LIMIT 1",
                params![scope.id, s.person_id, s.starts_ms, s.ends_ms],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(other) = clash {
            return Err(overlap(s, &other));
        }
        let created_ms = now_ms();
        tx.execute(
            "INSERT INTO shifts (tenant_id, id, person_id, site_id, starts_ms, ends_ms, note, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![scope.id, s.id, s.person_id, s.site_id, s.starts_ms, s.ends_ms, s.note, created_ms],
        )?;
        append_audit(&tx, scope.id, audit)?;
        tx.commit()?;
        Ok(Shift {
            created_ms,
            ..s.clone()
        })
    }

    fn shifts(&self, scope: &TenantScope, f: &ShiftFilter) -> Result<Vec<Shift>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM shifts
             WHERE tenant_id = ?1 AND (?2 IS NULL OR person_id = ?2) AND (?3 IS NULL OR site_id = ?3)
               AND (?4 IS NULL OR ends_ms > ?4) AND (?5 IS NULL OR starts_ms < ?5)
             ORDER BY starts_ms, id LIMIT ?6"
        ))?;
        let rows = stmt.query_map(
            params![
                scope.id,
                f.person_id,
                f.site_id,
                f.from_ms,
                f.to_ms,
                MAX_SHIFTS
            ],
            |r| {
                Ok(Shift {
                    id: r.get(0)?,
                    person_id: r.get(1)?,
                    site_id: r.get(2)?,
                    starts_ms: r.get(3)?,
                    ends_ms: r.get(4)?,
                    note: r.get(5)?,
                    created_ms: r.get(6)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn delete_shift(
        &mut self,
        scope: &TenantScope,
        id: &str,
        audit: &Audit,
    ) -> Result<bool, StoreError> {
        let n = self.write_audited(
            scope.id,
            "DELETE FROM shifts WHERE tenant_id = ?1 AND id = ?2",
            params![scope.id, id],
            audit,
        )?;
        Ok(n > 0)
    }
}

impl PgStore {
    async fn create_shift(
        &self,
        scope: &TenantScope,
        s: &Shift,
        audit: &Audit,
    ) -> Result<Shift, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        // The person's row is locked until commit: their bookings happen one at a time.
        let person = tx
            .query_opt(
                "SELECT active, EXISTS (SELECT 1 FROM person_sites WHERE tenant_id = $1 AND person_id = $2 AND site_id = $3)
                 FROM people WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
                &[&scope.id, &s.person_id, &s.site_id],
            )
            .await?
            .map(|r| (r.get(0), r.get(1)));
        if let Some(e) = refusal(person, s) {
            return Err(e);
        }
        let clash = tx
            .query_opt(
                "SELECT id FROM shifts WHERE tenant_id = $1 AND person_id = $2 AND starts_ms < $4 AND ends_ms > $3 LIMIT 1",
                &[&scope.id, &s.person_id, &s.starts_ms, &s.ends_ms],
            )
            .await?;
        if let Some(row) = clash {
            return Err(overlap(s, row.get(0)));
        }
        let created_ms = now_ms();
        tx.execute(
            "INSERT INTO shifts (tenant_id, id, person_id, site_id, starts_ms, ends_ms, note, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &scope.id,
                &s.id,
                &s.person_id,
                &s.site_id,
                &s.starts_ms,
                &s.ends_ms,
                &s.note,
                &created_ms,
            ],
        )
        .await?;
        pg_audit(&tx, scope.id, audit).await?;
        tx.commit().await?;
        Ok(Shift {
            created_ms,
            ..s.clone()
        })
    }

    async fn shifts(&self, scope: &TenantScope, f: &ShiftFilter) -> Result<Vec<Shift>, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let rows = tx
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM shifts
                     WHERE tenant_id = $1 AND ($2::text IS NULL OR person_id = $2)
                       AND ($3::text IS NULL OR site_id = $3)
                       AND ($4::bigint IS NULL OR ends_ms > $4) AND ($5::bigint IS NULL OR starts_ms < $5)
                     ORDER BY starts_ms, id LIMIT $6"
                ),
                &[
                    &scope.id,
                    &f.person_id,
                    &f.site_id,
                    &f.from_ms,
                    &f.to_ms,
                    &MAX_SHIFTS,
                ],
            )
            .await?;
        tx.commit().await?;
        Ok(rows
            .iter()
            .map(|r| Shift {
                id: r.get(0),
                person_id: r.get(1),
                site_id: r.get(2),
                starts_ms: r.get(3),
                ends_ms: r.get(4),
                note: r.get(5),
                created_ms: r.get(6),
            })
            .collect())
    }

    async fn delete_shift(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: &Audit,
    ) -> Result<bool, StoreError> {
        let n = self
            .write_audited(
                scope,
                "DELETE FROM shifts WHERE tenant_id = $1 AND id = $2",
                &[&scope.id, &id],
                audit,
            )
            .await?;
        Ok(n > 0)
    }
}
