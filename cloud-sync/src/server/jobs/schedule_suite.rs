//! Schedules on both backends, on a simulated clock: two replicas firing the same schedules
//! over hours enqueue every slot once; missed slots run once or are skipped; paused schedules
//! and suspended tenants fire nothing; the pruner deletes finished jobs by age.

use serde_json::json;

use crate::server::{
    jobs::{
        beat::{Fired, tick},
        cron::{Cron, time_zone},
        kinds,
        model::JobState,
        schedule::{Missed, NewSchedule, ScheduleChange, insert, slot_key},
        store::enqueue,
    },
    store::{
        Store, TenantScope, TenantStatus,
        exec::{in_platform, in_tenant},
        suite::{Keep, audit, both_with_keep, postgres, reopen, sqlite, tenant_with_node},
    },
};

/// 2026-03-28T22:00:00Z: the night Berlin springs forward.
const T0: i64 = 1_774_735_200_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;

fn schedule(name: &str, cron: &str, zone: &str, missed: Missed) -> NewSchedule {
    NewSchedule {
        name: name.into(),
        cron: Cron::parse(cron).expect("valid"),
        time_zone: zone.into(),
        kind: "probe".into(),
        args: json!({ "note": name }),
        missed,
        paused: false,
    }
}

/// Creates `s` for `scope` as if at `now`; its id.
async fn create_at(store: &Store, scope: &TenantScope, s: NewSchedule, now: i64) -> i64 {
    in_tenant!(write store, scope, audit(), |tx| insert(tx, &s, now, false))
        .expect("schedule")
        .id
}

/// The slots of `cron` in `zone` in (from, to].
fn slots(cron: &str, zone: &str, from: i64, to: i64) -> Vec<i64> {
    let (cron, tz) = (
        Cron::parse(cron).expect("valid"),
        time_zone(zone).expect("zone"),
    );
    let mut out = vec![];
    let mut at = from;
    while let Some(next) = cron.next_after(&tz, at).filter(|n| *n <= to) {
        out.push(next);
        at = next;
    }
    out
}

fn everything() -> crate::server::jobs::admin::JobFilter {
    crate::server::jobs::admin::JobFilter {
        limit: 1000,
        ..Default::default()
    }
}

/// The unique keys of the tenant's jobs, sorted.
async fn job_keys(store: &Store, scope: &TenantScope) -> Vec<String> {
    let mut keys: Vec<String> = store
        .jobs(scope, everything())
        .await
        .expect("jobs")
        .into_iter()
        .filter_map(|j| j.unique_key)
        .collect();
    keys.sort();
    keys
}

both_with_keep!(two_replicas_enqueue_every_slot_once_over_simulated_hours);
async fn two_replicas_enqueue_every_slot_once_over_simulated_hours(a: Store, keep: Keep) {
    let b = reopen(&keep).await;
    let registry = kinds::registry();
    let (acme, _) = tenant_with_node(&a, "acme", "h1").await;
    let every20 = create_at(
        &a,
        &acme,
        schedule("every-20", "*/20 * * * *", "UTC", Missed::RunOnce),
        T0,
    )
    .await;
    // 02:30 does not exist in Berlin that night: it fires at 03:30 CEST.
    let nightly = create_at(
        &a,
        &acme,
        schedule("night", "30 2 * * *", "Europe/Berlin", Missed::Skip),
        T0,
    )
    .await;
    let end = T0 + 6 * HOUR;
    let mut fired: Vec<Fired> = vec![];
    let mut now = T0;
    while now <= end {
        let (x, y) = tokio::join!(tick(&a, &registry, now), tick(&b, &registry, now));
        fired.extend(x.expect("tick a"));
        fired.extend(y.expect("tick b"));
        now += 30_000;
    }
    let mut expected: Vec<String> = slots("*/20 * * * *", "UTC", T0, end)
        .into_iter()
        .map(|s| slot_key(every20, s))
        .chain(
            slots("30 2 * * *", "Europe/Berlin", T0, end)
                .into_iter()
                .map(|s| slot_key(nightly, s)),
        )
        .collect();
    expected.sort();
    assert_eq!(expected.len(), 18 + 1, "{expected:?}");
    assert!(expected.contains(&slot_key(nightly, T0 + 3 * HOUR + 30 * MIN)));
    let mut fired_keys: Vec<String> = fired
        .iter()
        .map(|f| slot_key(f.schedule, f.slot.expect("on time: a slot")))
        .collect();
    fired_keys.sort();
    assert_eq!(
        fired_keys, expected,
        "each slot fired by exactly one replica"
    );
    assert_eq!(job_keys(&a, &acme).await, expected);
    let shown = a.schedules(&acme).await.expect("list");
    let s = shown.iter().find(|s| s.id == every20).expect("every-20");
    assert_eq!(s.last_slot_ms, Some(end));
    assert_eq!(s.next_run_ms, end + 20 * MIN);
}

both_with_keep!(missed_slots_run_once_or_are_skipped_and_paused_ones_wait);
async fn missed_slots_run_once_or_are_skipped_and_paused_ones_wait(store: Store, _keep: Keep) {
    let registry = kinds::registry();
    let (acme, _) = tenant_with_node(&store, "acme", "h1").await;
    let once = create_at(
        &store,
        &acme,
        schedule("once", "0 * * * *", "UTC", Missed::RunOnce),
        T0,
    )
    .await;
    let skip = create_at(
        &store,
        &acme,
        schedule("skip", "0 * * * *", "UTC", Missed::Skip),
        T0,
    )
    .await;
    // Down from T0 to 5 h 10 min later: five slots passed.
    let back = T0 + 5 * HOUR + 10 * MIN;
    let mut fired = tick(&store, &registry, back).await.expect("tick");
    fired.sort_by_key(|f| f.schedule);
    assert_eq!(fired.len(), 2);
    assert_eq!(
        (fired[0].schedule, fired[0].slot),
        (once, Some(T0 + 5 * HOUR))
    );
    assert_eq!(
        (fired[1].schedule, fired[1].slot, fired[1].job),
        (skip, None, None)
    );
    assert_eq!(
        job_keys(&store, &acme).await,
        [slot_key(once, T0 + 5 * HOUR)]
    );
    for s in store.schedules(&acme).await.expect("list") {
        assert_eq!(s.next_run_ms, T0 + 6 * HOUR, "{}", s.name);
    }
    assert!(
        tick(&store, &registry, back + MIN)
            .await
            .expect("tick")
            .is_empty()
    );

    // Paused: its slots pass unfired; resumed: it goes on from the next slot after now.
    let pause = ScheduleChange {
        paused: Some(true),
        ..Default::default()
    };
    store
        .update_schedule(Some((&acme, audit())), once, pause)
        .await
        .expect("pause")
        .expect("exists");
    let fired = tick(&store, &registry, T0 + 6 * HOUR).await.expect("tick");
    assert_eq!(fired.iter().map(|f| f.schedule).collect::<Vec<_>>(), [skip]);
    let resume = ScheduleChange {
        paused: Some(false),
        ..Default::default()
    };
    let resumed = store
        .update_schedule(Some((&acme, audit())), once, resume)
        .await
        .expect("resume")
        .expect("exists");
    assert!(resumed.next_run_ms > rollcall_service::clock::now_ms());

    // A suspended tenant's schedules wait.
    let (beta, _) = tenant_with_node(&store, "beta", "h2").await;
    create_at(
        &store,
        &beta,
        schedule("b", "0 * * * *", "UTC", Missed::RunOnce),
        T0,
    )
    .await;
    store
        .update_tenant("beta", None, Some(TenantStatus::Suspended), audit())
        .await
        .expect("suspend");
    let fired = tick(&store, &registry, T0 + 7 * HOUR).await.expect("tick");
    assert!(fired.iter().all(|f| f.schedule == skip), "{fired:?}");
}

both_with_keep!(the_pruner_deletes_finished_jobs_past_their_retention);
async fn the_pruner_deletes_finished_jobs_past_their_retention(store: Store, _keep: Keep) {
    let (acme, _) = tenant_with_node(&store, "acme", "h1").await;
    let registry = kinds::registry();
    let mut ids = vec![];
    for _ in 0..3 {
        let job = registry.job("probe", json!({})).expect("job");
        let job = in_tenant!(write & store, &acme, audit(), |tx| enqueue(tx, &job))
            .expect("enqueue")
            .job;
        ids.push(job.id);
    }
    // One completed long ago, one cancelled now, one still waiting.
    let now = rollcall_service::clock::now_ms();
    let (old, recent) = (ids[0], ids[1]);
    in_platform!(&store, |tx| async move {
        tx.execute(
            "UPDATE jobs SET state = 'completed', finished_ms = $2 WHERE id = $1",
            &[&old, &(now - 2 * 86_400_000)],
        )
        .await?;
        tx.execute(
            "UPDATE jobs SET state = 'cancelled', finished_ms = $2 WHERE id = $1",
            &[&recent, &now],
        )
        .await
    })
    .expect("finish");
    let day_ago = now - 86_400_000;
    assert_eq!(
        store
            .prune_jobs(JobState::Completed, day_ago, 1000)
            .await
            .expect("prune"),
        1
    );
    assert_eq!(
        store
            .prune_jobs(JobState::Cancelled, day_ago, 1000)
            .await
            .expect("prune"),
        0
    );
    let left: Vec<i64> = store
        .jobs(&acme, everything())
        .await
        .expect("jobs")
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(left, [ids[2], ids[1]]);
}
