//! Chains and groups on both backends: a job that waits is not claimed before the jobs it waits
//! for are final; a chain's step after a failure is discarded, and so is the step after it; a
//! group's callback runs once, told how each member ended; waits on jobs that are not the
//! tenant's are refused with nothing stored.

use std::{sync::Arc, time::Duration};

use serde_json::json;

use crate::server::{
    jobs::{
        kinds,
        model::{Failure, Job, JobState, NewJob},
        registry::{Failed, KindOptions},
        replicas_suite::config,
        runner,
        store::{INVALID_JOB_WAITS, UNKNOWN_AWAITED_JOB},
        suite::{all, claim_req, job},
        waits::{Until, Waits, unmet},
    },
    store::{
        Store, TenantScope,
        suite::{audit, both, postgres, refused, sqlite, tenant_with_node},
    },
};

fn waiting(kind: &str, on: &[i64], until: Until) -> NewJob {
    NewJob {
        waits: Some(Waits {
            jobs: on.to_vec(),
            until,
        }),
        ..job(kind)
    }
}

async fn put(store: &Store, scope: &TenantScope, j: NewJob) -> Job {
    store
        .enqueue_job(scope, j, audit())
        .await
        .expect("enqueue")
        .job
}

both!(a_chain_step_is_claimed_only_after_the_jobs_it_waits_for_are_final);
async fn a_chain_step_is_claimed_only_after_the_jobs_it_waits_for_are_final(store: Store) {
    let (acme, _) = tenant_with_node(&store, "acme", "h1").await;
    let a = put(&store, &acme, job("probe")).await;
    let b = put(&store, &acme, waiting("probe", &[a.id], Until::Succeeded)).await;
    let c = put(&store, &acme, waiting("probe", &[b.id], Until::Succeeded)).await;
    assert_eq!(
        b.waits,
        Some(Waits {
            jobs: vec![a.id],
            until: Until::Succeeded
        })
    );
    let ids = |claimed: &[crate::server::jobs::model::Claimed]| {
        claimed.iter().map(|c| c.id).collect::<Vec<_>>()
    };
    let first = store
        .claim_jobs(claim_req(10, 10, 60_000))
        .await
        .expect("claim");
    assert_eq!(ids(&first), vec![a.id], "b and c wait");
    assert!(first[0].waits.is_none());
    let none = store
        .claim_jobs(claim_req(10, 10, 60_000))
        .await
        .expect("claim");
    assert!(none.is_empty(), "a is running: b still waits");
    assert!(store.complete_job(&first[0], None).await.expect("complete"));
    let second = store
        .claim_jobs(claim_req(10, 10, 60_000))
        .await
        .expect("claim");
    assert_eq!(
        ids(&second),
        vec![b.id],
        "a completed: b runs, c waits for b"
    );
    assert_eq!(
        store.job_waited(b.id).await.expect("waited"),
        vec![(a.id, JobState::Completed)]
    );
    store
        .fail_job(
            &second[0],
            Failure::Discard {
                message: "b gives up".into(),
            },
        )
        .await
        .expect("fail");
    let third = store
        .claim_jobs(claim_req(10, 10, 60_000))
        .await
        .expect("claim");
    assert_eq!(
        ids(&third),
        vec![c.id],
        "b is final (discarded): c is claimed"
    );
    let waited = store.job_waited(c.id).await.expect("waited");
    assert_eq!(waited, vec![(b.id, JobState::Discarded)]);
    assert!(
        unmet(Until::Succeeded, &waited).is_some_and(|why| why.contains(&b.id.to_string())),
        "the runner discards c, naming b"
    );
    // The pruner keeps a finished job while an unfinished one waits for it.
    assert_eq!(
        store
            .prune_jobs(JobState::Discarded, i64::MAX, 100)
            .await
            .expect("prune"),
        0,
        "c (running) waits for b"
    );
}

both!(waits_on_jobs_that_are_not_the_tenants_are_refused_storing_nothing);
async fn waits_on_jobs_that_are_not_the_tenants_are_refused_storing_nothing(store: Store) {
    let (acme, _) = tenant_with_node(&store, "acme", "h1").await;
    let (globex, _) = tenant_with_node(&store, "globex", "h2").await;
    let theirs = put(&store, &globex, job("probe")).await;
    let ours = put(&store, &acme, job("probe")).await;
    for (on, problem) in [
        (vec![theirs.id], &UNKNOWN_AWAITED_JOB),
        (vec![ours.id, theirs.id], &UNKNOWN_AWAITED_JOB),
        (vec![ours.id + theirs.id + 1000], &UNKNOWN_AWAITED_JOB),
        (vec![], &INVALID_JOB_WAITS),
        (vec![0], &INVALID_JOB_WAITS),
        ((1..=101).collect(), &INVALID_JOB_WAITS),
    ] {
        let r = store
            .enqueue_job(&acme, waiting("probe", &on, Until::Finished), audit())
            .await;
        assert!(refused(&r, problem), "{on:?}: {r:?}");
    }
    assert_eq!(all(&store, &acme).await.len(), 1, "nothing stored");
    // In a batch, one bad wait undoes the whole batch.
    let r = store
        .enqueue_jobs(
            &acme,
            vec![
                waiting("probe", &[ours.id], Until::Succeeded),
                waiting("probe", &[theirs.id], Until::Succeeded),
            ],
            audit(),
        )
        .await;
    assert!(refused(&r, &UNKNOWN_AWAITED_JOB), "{r:?}");
    assert_eq!(all(&store, &acme).await.len(), 1, "nothing stored");
}

async fn chains_and_groups_run_on_real_workers(store: Store) {
    let (acme, _) = tenant_with_node(&store, "acme", "h1").await;
    let mut kinds = kinds::registry();
    kinds.register(
        "nope",
        KindOptions::default(),
        |_run, _args: serde_json::Value| async move {
            Err::<crate::server::jobs::registry::Done, _>(Failed::Discard("never works".into()))
        },
    );
    let kinds = Arc::new(kinds);
    let probe = |note: &str| NewJob {
        args: json!({ "note": note }),
        ..job("probe")
    };
    // A chain a → b → c; a group g1, g2 (fails), g3 with a callback; a step after g2 and
    // one after that.
    let a = put(&store, &acme, probe("a")).await;
    let b = put(
        &store,
        &acme,
        NewJob {
            args: json!({"note": "b"}),
            ..waiting("probe", &[a.id], Until::Succeeded)
        },
    )
    .await;
    let c = put(
        &store,
        &acme,
        NewJob {
            args: json!({"note": "c"}),
            ..waiting("probe", &[b.id], Until::Succeeded)
        },
    )
    .await;
    let g1 = put(&store, &acme, probe("g1")).await;
    let g2 = put(&store, &acme, job("nope")).await;
    let g3 = put(&store, &acme, probe("g3")).await;
    let callback = put(
        &store,
        &acme,
        NewJob {
            args: json!({"note": "callback"}),
            ..waiting("probe", &[g1.id, g2.id, g3.id], Until::Finished)
        },
    )
    .await;
    let step = put(&store, &acme, waiting("probe", &[g2.id], Until::Succeeded)).await;
    let after = put(
        &store,
        &acme,
        waiting("probe", &[step.id], Until::Succeeded),
    )
    .await;
    let config = config(4, Duration::from_millis(20));
    let (trigger, stop) = rollcall_service::shutdown::channel();
    let metrics = crate::server::jobs::metrics::JobMetrics::default();
    let workers = tokio::spawn(runner::run(store.clone(), kinds, metrics, config, stop));
    // Real workers on a real clock: wait (bounded) for every job to reach a final state.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !all(&store, &acme).await.iter().all(|j| j.state.is_final()) {
        assert!(std::time::Instant::now() < deadline, "not all finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    trigger.fire();
    workers.await.expect("workers stop on shutdown");
    let jobs = all(&store, &acme).await;
    let get = |id: i64| jobs.iter().find(|j| j.id == id).cloned().expect("job");
    let (a, b, c) = (get(a.id), get(b.id), get(c.id));
    for j in [&a, &b, &c, &get(g1.id), &get(g3.id)] {
        assert_eq!(j.state, JobState::Completed, "{j:?}");
    }
    let done = |j: &Job| j.finished_ms.expect("finished");
    let start = |j: &Job| j.started_ms.expect("started");
    // Each step was told at its start that the one before had completed (its `waited`,
    // below), so it ran after that completion committed; a claim's start time is read before
    // its statement runs, so it may precede the other's finish time by a millisecond, but a
    // step's own finish never precedes its predecessor's.
    assert!(
        done(&b) >= done(&a) && done(&c) >= done(&b) && start(&c) >= start(&b),
        "in order: {a:?} {b:?} {c:?}"
    );
    assert_eq!(
        b.result,
        Some(json!({"note": "b", "attempt": 1, "waited": {a.id.to_string(): "completed"}}))
    );
    // The callback ran once, after the whole group, and was told g2 was discarded.
    let callback = get(callback.id);
    assert_eq!(callback.state, JobState::Completed);
    assert_eq!(
        callback.result,
        Some(json!({"note": "callback", "attempt": 1, "waited": {
            g1.id.to_string(): "completed",
            g2.id.to_string(): "discarded",
            g3.id.to_string(): "completed",
        }}))
    );
    let runs = store.probe_runs(&acme).await.expect("runs");
    assert_eq!(runs.iter().filter(|(id, _)| *id == callback.id).count(), 1);
    // The step after the failed member, and the one after it, were not run.
    let (step, after) = (get(step.id), get(after.id));
    assert_eq!(
        (step.state, after.state),
        (JobState::Discarded, JobState::Discarded)
    );
    assert!(
        step.errors[0].error.contains(&format!("job {}", g2.id)),
        "{:?}",
        step.errors
    );
    assert!(!runs.iter().any(|(id, _)| *id == step.id || *id == after.id));
}

both!(chains_and_groups_run_on_real_workers);
