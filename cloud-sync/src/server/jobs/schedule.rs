//! Job schedules (beat): a cron expression in a time zone that enqueues a job of one kind per
//! slot, per tenant or for the platform (tenant 0). Every replica's scheduler looks for due
//! schedules; a slot is fired by advancing the schedule's `next_run_ms` by compare-and-set in
//! the transaction that enqueues its job (whose unique key names the slot), so each slot is
//! enqueued once however many replicas look, with no leader. Slots missed while no replica ran
//! follow the schedule's policy: run once (for the latest missed slot) or skip.

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::server::{
    jobs::{
        cron::{Cron, CronError, local_time, time_zone},
        model::NewJob,
        store::{enqueue_as, json},
    },
    store::{
        Store, StoreError, TenantScope,
        exec::{Exec, Row, in_platform, in_tenant},
    },
};
use rollcall_service::{clock::now_ms, problem::ProblemType};

/// What a schedule does with slots that passed while no replica ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// One job, for the latest missed slot.
    RunOnce,
    /// None: the schedule goes on from its next slot.
    Skip,
}

impl Missed {
    fn as_str(self) -> &'static str {
        match self {
            Missed::RunOnce => "run_once",
            Missed::Skip => "skip",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Missed::RunOnce, Missed::Skip]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Schedule {
    pub id: i64,
    pub name: String,
    pub cron: String,
    pub time_zone: String,
    pub kind: String,
    #[schema(value_type = Object)]
    pub args: Value,
    pub missed: Missed,
    pub paused: bool,
    /// The next slot (ms since the epoch).
    pub next_run_ms: i64,
    /// The next slot in the schedule's zone (RFC 3339 with its offset).
    pub next_run: String,
    /// The last slot a job was enqueued for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_slot_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_job_id: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
    #[serde(skip)]
    pub tenant_id: i64,
}

/// A schedule to create, already checked: its expression parses and its zone exists.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub name: String,
    pub cron: Cron,
    pub time_zone: String,
    pub kind: String,
    pub args: Value,
    pub missed: Missed,
    pub paused: bool,
}

/// What a change of a schedule may set (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct ScheduleChange {
    pub cron: Option<String>,
    pub time_zone: Option<String>,
    pub args: Option<Value>,
    pub missed: Option<Missed>,
    pub paused: Option<bool>,
}

/// What the schedule API refuses.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Cron(#[from] CronError),
    #[error("the tenant has a schedule named `{0}` already")]
    NameTaken(String),
    #[error("cron `{0}` has no slot in the next eight years")]
    NeverRuns(String),
}

pub const INVALID_SCHEDULE: ProblemType = ProblemType {
    slug: "invalid-schedule",
    title: "Invalid schedule",
    status: 422,
    meaning: "The cron expression does not parse, never comes, or the time zone is not one \
              of the tz database.",
};
pub const SCHEDULE_EXISTS: ProblemType = ProblemType {
    slug: "schedule-exists",
    title: "Schedule exists",
    status: 409,
    meaning: "The tenant has a schedule of that name.",
};

impl crate::server::store::Refused for ScheduleError {
    fn problem_type(&self) -> &'static ProblemType {
        match self {
            ScheduleError::Cron(_) | ScheduleError::NeverRuns(_) => &INVALID_SCHEDULE,
            ScheduleError::NameTaken(_) => &SCHEDULE_EXISTS,
        }
    }
}

/// The columns [`read`] reads, in order.
const COLUMNS: &str = "id, tenant_id, name, cron, time_zone, kind, args, missed, paused, \
                       next_run_ms, last_slot_ms, last_job_id, created_ms, updated_ms";

fn read(r: &Row<'_>) -> Result<Schedule, StoreError> {
    let id: i64 = r.get(0)?;
    let zone: String = r.get(4)?;
    let missed: String = r.get(7)?;
    let next_run_ms: i64 = r.get(9)?;
    let tz = time_zone(&zone).unwrap_or(TimeZone::UTC);
    Ok(Schedule {
        id,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        cron: r.get(3)?,
        kind: r.get(5)?,
        args: json(id, &r.get::<String>(6)?)?,
        missed: Missed::parse(&missed).ok_or_else(|| {
            StoreError::Inconsistent(format!("schedule {id} misses by `{missed}`"))
        })?,
        paused: r.get(8)?,
        next_run: local_time(&tz, next_run_ms),
        time_zone: zone,
        next_run_ms,
        last_slot_ms: r.get(10)?,
        last_job_id: r.get(11)?,
        created_ms: r.get(12)?,
        updated_ms: r.get(13)?,
    })
}

/// The first slot after `after` of `cron` in zone `zone`.
fn next_slot(cron: &Cron, zone: &str, after: i64) -> Result<i64, ScheduleError> {
    let tz = time_zone(zone)?;
    cron.next_after(&tz, after)
        .ok_or_else(|| ScheduleError::NeverRuns(cron.to_string()))
}

/// Creates a schedule of the transaction's tenant (0: platform), its first slot after `now`;
/// with `keep_existing` a schedule of the same name is left as it is and returned.
pub(crate) async fn insert(
    tx: &impl Exec,
    s: &NewSchedule,
    now: i64,
    keep_existing: bool,
) -> Result<Schedule, StoreError> {
    let next = next_slot(&s.cron, &s.time_zone, now)?;
    let sql = format!(
        "INSERT INTO job_schedules (tenant_id, name, cron, time_zone, kind, args, missed, paused,
                                    next_run_ms, created_ms, updated_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
         ON CONFLICT (tenant_id, name) DO NOTHING RETURNING {COLUMNS}"
    );
    let made = tx
        .query_opt(
            &sql,
            &[
                &tx.tenant(),
                &s.name,
                &s.cron.as_str(),
                &s.time_zone,
                &s.kind,
                &s.args.to_string(),
                &s.missed.as_str(),
                &s.paused,
                &next,
                &now,
            ],
            read,
        )
        .await?;
    match made {
        Some(made) => Ok(made),
        None if keep_existing => by_name(tx, &s.name)
            .await?
            .ok_or_else(|| StoreError::Inconsistent(format!("schedule `{}` vanished", s.name))),
        None => Err(ScheduleError::NameTaken(s.name.clone()).into()),
    }
}

async fn by_name(tx: &impl Exec, name: &str) -> Result<Option<Schedule>, StoreError> {
    tx.query_opt(
        &format!("SELECT {COLUMNS} FROM job_schedules WHERE tenant_id = $1 AND name = $2"),
        &[&tx.tenant(), &name],
        read,
    )
    .await
}

async fn one(tx: &impl Exec, id: i64) -> Result<Option<Schedule>, StoreError> {
    tx.query_opt(
        &format!("SELECT {COLUMNS} FROM job_schedules WHERE tenant_id = $1 AND id = $2"),
        &[&tx.tenant(), &id],
        read,
    )
    .await
}

async fn list(tx: &impl Exec) -> Result<Vec<Schedule>, StoreError> {
    tx.query(
        &format!("SELECT {COLUMNS} FROM job_schedules WHERE tenant_id = $1 ORDER BY name"),
        &[&tx.tenant()],
        read,
    )
    .await
}

/// Applies `c` to schedule `id`; a new expression, zone, or a resume starts again from the
/// first slot after now (slots passed while paused are not run). `None` if there is none.
async fn update(
    tx: &impl Exec,
    id: i64,
    c: &ScheduleChange,
    now: i64,
) -> Result<Option<Schedule>, StoreError> {
    let Some(old) = one(tx, id).await? else {
        return Ok(None);
    };
    let cron_text = c.cron.clone().unwrap_or_else(|| old.cron.clone());
    let cron = Cron::parse(&cron_text).map_err(ScheduleError::from)?;
    let zone = c.time_zone.clone().unwrap_or_else(|| old.time_zone.clone());
    let paused = c.paused.unwrap_or(old.paused);
    let restart = c.cron.is_some() || c.time_zone.is_some() || (old.paused && !paused);
    let next = if restart {
        next_slot(&cron, &zone, now)?
    } else {
        old.next_run_ms
    };
    tx.execute(
        "UPDATE job_schedules SET cron = $3, time_zone = $4, args = $5, missed = $6, paused = $7,
                                  next_run_ms = $8, updated_ms = $9
         WHERE tenant_id = $1 AND id = $2",
        &[
            &tx.tenant(),
            &id,
            &cron.as_str(),
            &zone,
            &c.args.as_ref().unwrap_or(&old.args).to_string(),
            &c.missed.unwrap_or(old.missed).as_str(),
            &paused,
            &next,
            &now,
        ],
    )
    .await?;
    one(tx, id).await
}

async fn delete(tx: &impl Exec, id: i64) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "DELETE FROM job_schedules WHERE tenant_id = $1 AND id = $2",
            &[&tx.tenant(), &id],
        )
        .await?;
    Ok(n == 1)
}

/// A schedule whose slot has come, as the scheduler reads it.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub tenant_id: i64,
    pub name: String,
    pub cron: String,
    pub time_zone: String,
    pub kind: String,
    pub args: Value,
    pub missed: Missed,
    pub next_run_ms: i64,
}

/// Unpaused schedules due at `now`, of the platform and of active tenants, oldest slot first.
async fn due(tx: &impl Exec, now: i64, limit: u32) -> Result<Vec<Due>, StoreError> {
    tx.query(
        "SELECT s.id, s.tenant_id, s.name, s.cron, s.time_zone, s.kind, s.args, s.missed,
                s.next_run_ms
         FROM job_schedules s
         WHERE NOT s.paused AND s.next_run_ms <= $1
           AND (s.tenant_id = 0 OR EXISTS (SELECT 1 FROM tenants t
                                           WHERE t.id = s.tenant_id AND t.status = 'active'))
         ORDER BY s.next_run_ms, s.id LIMIT $2",
        &[&now, &i64::from(limit)],
        |r| {
            let id: i64 = r.get(0)?;
            let missed: String = r.get(7)?;
            Ok(Due {
                id,
                tenant_id: r.get(1)?,
                name: r.get(2)?,
                cron: r.get(3)?,
                time_zone: r.get(4)?,
                kind: r.get(5)?,
                args: json(id, &r.get::<String>(6)?)?,
                missed: Missed::parse(&missed).unwrap_or(Missed::RunOnce),
                next_run_ms: r.get(8)?,
            })
        },
    )
    .await
}

/// What firing a due schedule does: move `next_run_ms` from `from` to `next`, and enqueue
/// `job` for `slot` (none when the slot is skipped).
#[derive(Debug, Clone)]
pub struct Firing {
    pub id: i64,
    pub tenant_id: i64,
    pub from: i64,
    pub next: i64,
    pub slot: Option<(i64, NewJob)>,
}

/// Fires one schedule if no one else did: the compare-and-set on `next_run_ms` and the enqueue
/// commit together. `None` if another replica fired it first, else the job's id (if any).
async fn fire(tx: &impl Exec, f: &Firing) -> Result<Option<Option<i64>>, StoreError> {
    let moved = tx
        .execute(
            "UPDATE job_schedules SET next_run_ms = $3, updated_ms = $4
             WHERE id = $1 AND next_run_ms = $2 AND NOT paused",
            &[&f.id, &f.from, &f.next, &now_ms()],
        )
        .await?;
    if moved == 0 {
        return Ok(None);
    }
    let Some((slot, job)) = &f.slot else {
        return Ok(Some(None));
    };
    let job = enqueue_as(tx, f.tenant_id, job).await?.job;
    tx.execute(
        "UPDATE job_schedules SET last_slot_ms = $2, last_job_id = $3 WHERE id = $1",
        &[&f.id, slot, &job.id],
    )
    .await?;
    Ok(Some(Some(job.id)))
}

/// The unique key of a schedule's job for one slot.
pub fn slot_key(schedule: i64, slot_ms: i64) -> String {
    format!("schedule:{schedule}:{slot_ms}")
}

impl Store {
    /// Creates a schedule of the tenant, audited.
    pub async fn create_schedule(
        &self,
        scope: &TenantScope,
        s: NewSchedule,
        audit: crate::server::audit::store::Audit,
    ) -> Result<Schedule, StoreError> {
        let now = now_ms();
        in_tenant!(write self, scope, audit, |tx| insert(tx, &s, now, false))
    }

    /// Creates the platform's schedule `s` unless one of its name exists (an operator's edits
    /// of a built-in schedule are kept across restarts).
    pub async fn ensure_platform_schedule(&self, s: NewSchedule) -> Result<Schedule, StoreError> {
        let now = now_ms();
        in_platform!(self, |tx| insert(tx, &s, now, true))
    }

    pub async fn schedules(&self, scope: &TenantScope) -> Result<Vec<Schedule>, StoreError> {
        in_tenant!(read self, scope, |tx| list(tx))
    }

    pub async fn platform_schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        in_platform!(self, |tx| list(tx))
    }

    pub async fn schedule(
        &self,
        scope: &TenantScope,
        id: i64,
    ) -> Result<Option<Schedule>, StoreError> {
        in_tenant!(read self, scope, |tx| one(tx, id))
    }

    /// Changes a schedule of the tenant, audited (`None`: one of the platform's).
    pub async fn update_schedule(
        &self,
        tenant: Option<(&TenantScope, crate::server::audit::store::Audit)>,
        id: i64,
        change: ScheduleChange,
    ) -> Result<Option<Schedule>, StoreError> {
        let now = now_ms();
        match tenant {
            Some((scope, audit)) => {
                in_tenant!(write self, scope, audit, |tx| update(tx, id, &change, now))
            }
            None => in_platform!(self, |tx| update(tx, id, &change, now)),
        }
    }

    pub async fn delete_schedule(
        &self,
        scope: &TenantScope,
        id: i64,
        audit: crate::server::audit::store::Audit,
    ) -> Result<bool, StoreError> {
        in_tenant!(write self, scope, audit, |tx| delete(tx, id))
    }

    /// Schedules due at `now` (see [`due`]).
    pub async fn due_schedules(&self, now: i64, limit: u32) -> Result<Vec<Due>, StoreError> {
        in_platform!(self, |tx| due(tx, now, limit))
    }

    /// Fires one due schedule (see [`fire`]).
    pub async fn fire_schedule(&self, f: Firing) -> Result<Option<Option<i64>>, StoreError> {
        in_platform!(self, |tx| fire(tx, &f))
    }
}

crate::server::store::exec::always_changed!(Schedule);
