//! The scheduler of one replica: every poll it fires the schedules whose slot has come (see
//! `schedule`). Any number of replicas run it; each slot is enqueued once. A slot found more
//! than [`MISSED_AFTER_MS`] late was missed (no replica ran): the schedule's policy says
//! whether one job runs for the latest missed slot or none.

use std::{sync::Arc, time::Duration};

use crate::server::{
    jobs::{
        cron::{Cron, time_zone},
        registry::Registry,
        schedule::{Due, Firing, Missed, slot_key},
    },
    store::{Store, StoreError},
};
use rollcall_service::{clock::now_ms, shutdown::Shutdown};

/// How late a slot may be found and still count as on time.
pub const MISSED_AFTER_MS: i64 = 60_000;
/// Most schedules fired by one tick (the rest on the next).
const PER_TICK: u32 = 100;

/// One schedule this replica fired.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub schedule: i64,
    /// The slot a job was enqueued for (none: the missed slots were skipped).
    pub slot: Option<i64>,
    pub job: Option<i64>,
}

/// How schedule `d` fires at `now`: the slot to run (if any) and the next one. A schedule
/// whose stored expression or kind no longer works moves on without a job, and says why.
fn plan(registry: &Registry, d: &Due, now: i64) -> (Firing, Option<String>) {
    let stalled = |why: String| {
        (
            Firing {
                id: d.id,
                tenant_id: d.tenant_id,
                from: d.next_run_ms,
                next: now + 3_600_000,
                slot: None,
            },
            Some(why),
        )
    };
    let (cron, tz) = match (Cron::parse(&d.cron), time_zone(&d.time_zone)) {
        (Ok(c), Ok(tz)) => (c, tz),
        (Err(e), _) | (_, Err(e)) => return stalled(e.to_string()),
    };
    let (slot, next) = if now - d.next_run_ms <= MISSED_AFTER_MS {
        (Some(d.next_run_ms), cron.next_after(&tz, d.next_run_ms))
    } else {
        let latest = cron
            .last_slot_by(&tz, d.next_run_ms, now, 100_000)
            .map_or(d.next_run_ms, |(slot, _)| slot);
        let slot = (d.missed == Missed::RunOnce).then_some(latest);
        (slot, cron.next_after(&tz, now))
    };
    // An expression with no slot left (a date past) stays due never again.
    let next = next.unwrap_or(i64::MAX);
    let Some(slot) = slot else {
        let firing = Firing {
            id: d.id,
            tenant_id: d.tenant_id,
            from: d.next_run_ms,
            next,
            slot: None,
        };
        return (firing, None);
    };
    match registry.job(&d.kind, d.args.clone()) {
        Ok(mut job) => {
            job.unique_key = Some(slot_key(d.id, slot));
            job.scheduled_ms = Some(slot);
            job.actor = Some(format!("schedule:{}", d.name));
            let firing = Firing {
                id: d.id,
                tenant_id: d.tenant_id,
                from: d.next_run_ms,
                next,
                slot: Some((slot, job)),
            };
            (firing, None)
        }
        Err(e) => stalled(e.to_string()),
    }
}

/// Fires every schedule due at `now` that no other replica fires first.
pub async fn tick(store: &Store, registry: &Registry, now: i64) -> Result<Vec<Fired>, StoreError> {
    let mut fired = Vec::new();
    for d in store.due_schedules(now, PER_TICK).await? {
        let (firing, trouble) = plan(registry, &d, now);
        let slot = firing.slot.as_ref().map(|(s, _)| *s);
        if let Some(job) = store.fire_schedule(firing).await? {
            match &trouble {
                Some(why) => tracing::warn!(schedule = d.id, name = %d.name, tenant = d.tenant_id,
                                            "schedule not run: {why}"),
                None if slot.is_none() => tracing::info!(schedule = d.id, name = %d.name,
                                                         "missed slots skipped"),
                None => {}
            }
            fired.push(Fired {
                schedule: d.id,
                slot,
                job,
            });
        }
    }
    Ok(fired)
}

/// Ticks every `poll` until `stop` fires.
pub(crate) async fn run(store: Store, registry: Arc<Registry>, poll: Duration, mut stop: Shutdown) {
    let mut every = tokio::time::interval(poll);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.wait() => return,
        }
        match tick(&store, &registry, now_ms()).await {
            Ok(fired) if !fired.is_empty() => {
                tracing::debug!(fired = fired.len(), "schedules fired")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "firing schedules failed"),
        }
    }
}
