//! Shifts: when a person is expected at a site. A shift is for an active person assigned to the
//! site, and a person's shifts never overlap (checked under a lock on the person's row, so two
//! concurrent bookings cannot both pass).

use serde::Serialize;

use crate::server::people::store::PeopleError;

use crate::server::{
    audit::store::Audit,
    store::{
        Store, StoreError, TenantScope,
        exec::{Exec, in_tenant},
    },
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
    /// A new shift; a [`PeopleError`] for an unknown or inactive person, a site they are not
    /// assigned to, or an overlap with one of theirs.
    pub async fn create_shift(
        &self,
        scope: &TenantScope,
        shift: Shift,
        audit: Audit,
    ) -> Result<Shift, StoreError> {
        in_tenant!(write self, scope, audit, |tx| create(tx, &shift))
    }

    /// Shifts by start time, at most [`MAX_SHIFTS`].
    pub async fn shifts(
        &self,
        scope: &TenantScope,
        filter: ShiftFilter,
    ) -> Result<Vec<Shift>, StoreError> {
        in_tenant!(read self, scope, |tx| list(tx, &filter))
    }

    pub async fn delete_shift(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: Audit,
    ) -> Result<bool, StoreError> {
        let id = id.to_owned();
        in_tenant!(write self, scope, audit, |tx| async {
            let n = tx
                .execute(
                    "DELETE FROM shifts WHERE tenant_id = $1 AND id = $2",
                    &[&tx.tenant(), &id],
                )
                .await?;
            Ok::<_, StoreError>(n > 0)
        })
    }
}

crate::server::store::exec::always_changed!(Shift);

/// Why a person cannot take a shift at a site, if they cannot.
fn refusal(person: Option<(bool, bool)>, shift: &Shift) -> Option<PeopleError> {
    let id = || shift.person_id.clone();
    match person {
        None => Some(PeopleError::NoShiftPerson(id())),
        Some((false, _)) => Some(PeopleError::Inactive(id())),
        Some((true, false)) => Some(PeopleError::NotAssigned {
            person: id(),
            site: shift.site_id.clone(),
        }),
        Some((true, true)) => None,
    }
}

async fn create(tx: &impl Exec, s: &Shift) -> Result<Shift, StoreError> {
    // The person's row is locked until commit (on SQLite the one writer does as much): their
    // bookings happen one at a time, so the check and the insert cannot interleave.
    let person = tx
        .query_opt(
            &format!(
                "SELECT active, EXISTS (SELECT 1 FROM person_sites
                                        WHERE tenant_id = $1 AND person_id = $2 AND site_id = $3)
                 FROM people WHERE tenant_id = $1 AND id = $2{}",
                tx.dialect().lock_rows()
            ),
            &[&tx.tenant(), &s.person_id, &s.site_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .await?;
    if let Some(e) = refusal(person, s) {
        return Err(e.into());
    }
    let clash: Option<String> = tx
        .query_opt(
            "SELECT id FROM shifts
             WHERE tenant_id = $1 AND person_id = $2 AND starts_ms < $4 AND ends_ms > $3 LIMIT 1",
            &[&tx.tenant(), &s.person_id, &s.starts_ms, &s.ends_ms],
            |r| r.get(0),
        )
        .await?;
    if let Some(other) = clash {
        return Err(PeopleError::ShiftOverlap {
            person: s.person_id.clone(),
            other,
        }
        .into());
    }
    let created_ms = now_ms();
    tx.execute(
        "INSERT INTO shifts (tenant_id, id, person_id, site_id, starts_ms, ends_ms, note, created_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &tx.tenant(),
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
    Ok(Shift {
        created_ms,
        ..s.clone()
    })
}

async fn list(tx: &impl Exec, f: &ShiftFilter) -> Result<Vec<Shift>, StoreError> {
    tx.query(
        &format!(
            "SELECT {COLUMNS} FROM shifts
             WHERE tenant_id = $1 AND (CAST($2 AS TEXT) IS NULL OR person_id = $2)
               AND (CAST($3 AS TEXT) IS NULL OR site_id = $3)
               AND (CAST($4 AS BIGINT) IS NULL OR ends_ms > $4)
               AND (CAST($5 AS BIGINT) IS NULL OR starts_ms < $5)
             ORDER BY starts_ms, id LIMIT $6"
        ),
        &[
            &tx.tenant(),
            &f.person_id,
            &f.site_id,
            &f.from_ms,
            &f.to_ms,
            &MAX_SHIFTS,
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
    )
    .await
}
