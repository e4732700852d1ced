//! Chains and groups: a job that waits for other jobs of its tenant is not claimed until every
//! one of them is finished (completed, cancelled or discarded). A chain's next step waits
//! `until: succeeded` — if one of its jobs did not complete, it is discarded, saying which, and
//! so is the step after it. A group's callback waits `until: finished` — it runs once when all
//! of the group are final, and its handler is told how each ended (`JobRun::waited`).
//!
//! The claim reads `job_waits` (one row per job waited for); the job's `waits` column keeps
//! what it waits for as the API shows it. A job can only wait for jobs that exist already, so
//! waits never form a cycle.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::server::{
    jobs::{model::JobState, store::JobError},
    store::{Store, StoreError, exec::Exec, exec::in_platform},
};

/// Most jobs one job waits for.
pub const MAX_WAITS: usize = 100;

/// What a job waits for before it may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Waits {
    /// Ids of jobs of the same tenant (1 to 100).
    #[schema(min_items = 1, max_items = 100)]
    pub jobs: Vec<i64>,
    /// `succeeded` (a chain's next step; the default): run once all of them completed, be
    /// discarded if one did not; `finished` (a group's callback): run once all of them are
    /// final, however they ended.
    #[serde(default)]
    pub until: Until,
}

/// When a waiting job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Until {
    #[default]
    Succeeded,
    Finished,
}

impl Waits {
    /// The jobs waited for, each once, in order; refused if there are none, too many, or an id
    /// that cannot be a job's.
    pub fn ids(&self) -> Result<Vec<i64>, JobError> {
        let mut ids = self.jobs.clone();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() || ids.len() > MAX_WAITS || ids[0] < 1 {
            return Err(JobError::BadWaits(format!(
                "a job waits for 1 to {MAX_WAITS} jobs, by their ids (positive numbers)"
            )));
        }
        Ok(ids)
    }
}

/// The claim's condition on a candidate job `j`: nothing it waits for is unfinished (a job
/// waited for that was pruned is finished).
pub(crate) const READY: &str = "NOT EXISTS (
    SELECT 1 FROM job_waits d JOIN jobs w ON w.id = d.waits_for
    WHERE d.job_id = j.id AND w.state NOT IN ('completed', 'cancelled', 'discarded'))";

/// The pruner's condition on a finished job `j`: no unfinished job waits for it (so a job
/// always learns how the ones it waits for ended; one pruned anyway counts as completed).
pub(crate) const AWAITED_BY_NONE: &str = "NOT EXISTS (
    SELECT 1 FROM job_waits d JOIN jobs w ON w.id = d.job_id
    WHERE d.waits_for = j.id AND w.state NOT IN ('completed', 'cancelled', 'discarded'))";

/// The `waits` column of a job.
pub(crate) fn text(waits: Option<&Waits>) -> Option<String> {
    waits.and_then(|w| serde_json::to_string(w).ok())
}

/// Reads job `id`'s `waits` column.
pub(crate) fn parse(id: i64, text: Option<String>) -> Result<Option<Waits>, StoreError> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|source| StoreError::Corrupt {
            id: format!("job {id}"),
            source,
        })
    })
    .transpose()
}

/// Records what job `job_id` (just inserted for `tenant`) waits for; refused, undoing the
/// caller's transaction, if one of them is not a job of that tenant.
pub(crate) async fn record(
    tx: &impl Exec,
    tenant: i64,
    job_id: i64,
    waits_for: &[i64],
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare(
            "INSERT INTO job_waits (job_id, waits_for)
             SELECT $1, id FROM jobs WHERE id = $2 AND tenant_id = $3",
        )
        .await?;
    for id in waits_for {
        if tx.execute_prepared(&stmt, &[&job_id, id, &tenant]).await? == 0 {
            return Err(JobError::UnknownWait(*id).into());
        }
    }
    Ok(())
}

/// How each job that `job_id` waits for ended, by id; one no longer stored (pruned after it
/// finished, which the pruner avoids) counts as completed.
async fn outcomes(tx: &impl Exec, job_id: i64) -> Result<Vec<(i64, JobState)>, StoreError> {
    tx.query(
        "SELECT w.waits_for, j.state FROM job_waits w LEFT JOIN jobs j ON j.id = w.waits_for
         WHERE w.job_id = $1 ORDER BY w.waits_for",
        &[&job_id],
        |r| {
            let state: Option<String> = r.get(1)?;
            Ok((
                r.get::<i64>(0)?,
                state
                    .as_deref()
                    .and_then(JobState::parse)
                    .unwrap_or(JobState::Completed),
            ))
        },
    )
    .await
}

/// Why a job that waits `until` cannot run after `waited` ended so: the first that did not
/// complete, for a chain's step.
pub fn unmet(until: Until, waited: &[(i64, JobState)]) -> Option<String> {
    if until == Until::Finished {
        return None;
    }
    waited
        .iter()
        .find(|(_, s)| *s != JobState::Completed)
        .map(|(id, s)| {
            format!(
                "job {id}, which this one waits for, was {}: not run",
                s.as_str()
            )
        })
}

impl Store {
    /// How each job that job `id` waits for ended (see [`outcomes`]).
    pub async fn job_waited(&self, id: i64) -> Result<Vec<(i64, JobState)>, StoreError> {
        in_platform!(self, |tx| outcomes(tx, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn waits_are_between_one_and_a_hundred_positive_ids() {
        let w = |jobs: Vec<i64>| Waits {
            jobs,
            until: Until::Succeeded,
        };
        assert_eq!(w(vec![3, 1, 3]).ids().expect("ok"), vec![1, 3]);
        assert!(w(vec![]).ids().is_err());
        assert!(w(vec![0, 2]).ids().is_err());
        assert!(w((1..=101).collect()).ids().is_err());
        assert_eq!(w(vec![7; 200]).ids().expect("ok"), vec![7]);
    }

    fn state() -> impl Strategy<Value = JobState> {
        prop::sample::select(vec![
            JobState::Completed,
            JobState::Cancelled,
            JobState::Discarded,
        ])
    }

    proptest! {
        /// A chain's step runs exactly when every job it waits for completed; a group's
        /// callback always runs.
        #[test]
        fn a_step_runs_only_after_success_and_a_callback_always(
            waited in prop::collection::vec((1i64..1000, state()), 1..20)
        ) {
            let all_done = waited.iter().all(|(_, s)| *s == JobState::Completed);
            prop_assert_eq!(unmet(Until::Succeeded, &waited).is_none(), all_done);
            prop_assert!(unmet(Until::Finished, &waited).is_none());
        }
    }
}
