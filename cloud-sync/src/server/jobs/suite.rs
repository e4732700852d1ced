//! The job queue on both backends: enqueue inside a transaction, unique keys under concurrent
//! inserts, claims with leases and tokens, rescue, the dead-letter queue and its re-drive,
//! fairness across tenants, pause, and the workers running real handlers (panics, time limits).

use std::{sync::Arc, time::Duration};

use serde_json::json;

use crate::server::{
    jobs::{
        admin::JobFilter,
        kinds,
        model::{Claimed, Failure, JobState, NewJob},
        registry::{Done, Failed, KindOptions, Registry},
        runner::{self, JobsConfig, QueueConfig},
        store::{ClaimRequest, JOB_FINISHED, JOB_NOT_RETRYABLE, enqueue},
    },
    store::{
        Store, StoreError, TenantScope,
        exec::in_tenant,
        suite::{audit, both, postgres, refused, sqlite, tenant_with_node},
    },
};
use rollcall_service::clock::now_ms;

pub(super) fn job(kind: &str) -> NewJob {
    NewJob {
        kind: kind.into(),
        queue: "default".into(),
        args: json!({}),
        priority: 0,
        scheduled_ms: None,
        max_attempts: 3,
        unique_key: None,
        actor: Some("test".into()),
        request_id: Some("req-test".into()),
        waits: None,
    }
}

pub(super) fn claim_req(limit: u32, cap: u32, lease_ms: i64) -> ClaimRequest<'static> {
    ClaimRequest {
        queue: "default",
        limit,
        tenant_cap: cap,
        worker: "w1",
        lease_ms,
    }
}

pub(super) async fn all(
    store: &Store,
    scope: &TenantScope,
) -> Vec<crate::server::jobs::model::Job> {
    store
        .jobs(
            scope,
            JobFilter {
                limit: 1000,
                ..JobFilter::default()
            },
        )
        .await
        .expect("jobs")
}

both!(a_job_exists_only_if_its_transaction_commits);
async fn a_job_exists_only_if_its_transaction_commits(store: Store) {
    let (acme, _) = tenant_with_node(&store, "acme", "h1").await;
    let undone: Result<(), StoreError> = in_tenant!(internal & store, &acme, |tx| async move {
        enqueue(tx, &job("probe")).await?;
        Err(StoreError::Inconsistent(
            "the caller's change failed".into(),
        ))
    });
    assert!(undone.is_err());
    assert!(
        all(&store, &acme).await.is_empty(),
        "rolled back with the caller"
    );
    let done = in_tenant!(internal & store, &acme, |tx| async move {
        enqueue(tx, &job("probe")).await
    })
    .expect("enqueue");
    assert!(!done.existing);
    let jobs = all(&store, &acme).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (
            jobs[0].state,
            jobs[0].attempt,
            jobs[0].request_id.as_deref()
        ),
        (JobState::Available, 0, Some("req-test"))
    );
}

both!(sixteen_concurrent_enqueues_of_a_unique_job_make_one);
async fn sixteen_concurrent_enqueues_of_a_unique_job_make_one(store: Store) {
    let (acme, _) = tenant_with_node(&store, "acme", "h1").await;
    let (globex, _) = tenant_with_node(&store, "globex", "h2").await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, acme) = (store.clone(), acme.clone());
        tasks.push(tokio::spawn(async move {
            let mut j = job("probe");
            j.unique_key = Some("report:2026-12".into());
            store.enqueue_job(&acme, j, audit()).await
        }));
    }
    let mut ids = Vec::new();
    let mut new = 0;
    for t in tasks {
        let e = t.await.expect("task").expect("enqueue");
        new += usize::from(!e.existing);
        ids.push(e.job.id);
    }
    assert_eq!(new, 1, "one insert, fifteen answers naming it");
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(all(&store, &acme).await.len(), 1);
    // The key is per tenant: another tenant's job with it is its own.
    let mut j = job("probe");
    j.unique_key = Some("report:2026-12".into());
    let other = store
        .enqueue_job(&globex, j, audit())
        .await
        .expect("enqueue");
    assert!(!other.existing);
    // Once the holder is cancelled, the key is free again.
    store
        .cancel_job(&acme, ids[0], audit())
        .await
        .expect("cancel");
    let mut j = job("probe");
    j.unique_key = Some("report:2026-12".into());
    let again = store.enqueue_job(&acme, j, audit()).await.expect("enqueue");
    assert!(!again.existing && again.job.id != ids[0]);
}

both!(only_the_lease_holder_finishes_an_attempt_and_expired_leases_are_rescued);
async fn only_the_lease_holder_finishes_an_attempt_and_expired_leases_are_rescued(store: Store) {
    let (acme, _) = tenant_with_node(&store, "acme", "h1").await;
    for _ in 0..3 {
        store
            .enqueue_job(&acme, job("probe"), audit())
            .await
            .expect("enqueue");
    }
    let claimed = store
        .claim_jobs(claim_req(2, 10, 60_000))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    assert!(
        claimed
            .iter()
            .all(|c| c.attempt == 1 && c.tenant_id == acme.id())
    );
    let forged = Claimed {
        lease_token: "not-the-token".into(),
        ..claimed[0].clone()
    };
    assert!(!store.complete_job(&forged, None).await.expect("complete"));
    assert_eq!(
        store
            .fail_job(
                &forged,
                Failure::Discard {
                    message: "x".into()
                }
            )
            .await
            .expect("fail"),
        None
    );
    assert!(
        store
            .complete_job(&claimed[0], Some(json!({"ok": true})))
            .await
            .expect("complete")
    );
    assert!(
        !store.complete_job(&claimed[0], None).await.expect("twice"),
        "once only"
    );
    let done = store
        .job(&acme, claimed[0].id)
        .await
        .expect("job")
        .expect("there");
    assert_eq!(
        (done.state, done.result),
        (JobState::Completed, Some(json!({"ok": true})))
    );

    // The second attempt's worker dies: its lease runs out and the job is taken back, its
    // attempt recorded as rescued; the dead worker's late completion is refused.
    let lost = &claimed[1];
    assert!(
        store
            .renew_job_leases(vec![(lost.id, lost.lease_token.clone())], now_ms() - 1)
            .await
            .expect("renew")
            .is_empty()
    );
    assert_eq!(store.rescue_jobs(now_ms()).await.expect("rescue"), (1, 0));
    assert_eq!(
        store.rescue_jobs(now_ms()).await.expect("rescue"),
        (0, 0),
        "once"
    );
    assert!(!store.complete_job(lost, None).await.expect("late"));
    assert_eq!(
        store
            .renew_job_leases(vec![(lost.id, lost.lease_token.clone())], now_ms())
            .await
            .expect("renew"),
        vec![lost.id],
        "the dead worker hears its lease is gone"
    );
    let rescued = store
        .job(&acme, lost.id)
        .await
        .expect("job")
        .expect("there");
    assert_eq!(rescued.state, JobState::Retryable);
    assert!(
        rescued.errors[0].rescued && rescued.errors[0].attempt == 1,
        "{:?}",
        rescued.errors
    );
    let again = store
        .claim_jobs(claim_req(5, 10, 60_000))
        .await
        .expect("claim");
    let second = again
        .iter()
        .find(|c| c.id == lost.id)
        .expect("claimed again");
    assert_eq!(second.attempt, 2, "the rescued attempt counted");
    assert_ne!(second.lease_token, lost.lease_token);
}

both!(a_poison_job_is_discarded_with_its_errors_and_re_driven);
async fn a_poison_job_is_discarded_with_its_errors_and_re_driven(store: Store) {
    let (acme, _) = tenant_with_node(&store, "acme", "h1").await;
    let id = store
        .enqueue_job(&acme, job("probe"), audit())
        .await
        .expect("enqueue")
        .job
        .id;
    for n in 1..=3 {
        let c = store
            .claim_jobs(claim_req(1, 10, 60_000))
            .await
            .expect("claim");
        assert_eq!(c.len(), 1, "attempt {n} due at once");
        let failure = Failure::Error {
            message: format!("boom {n}"),
            retry_at_ms: 0,
        };
        let state = store.fail_job(&c[0], failure).await.expect("fail");
        assert_eq!(
            state,
            Some(if n < 3 {
                JobState::Retryable
            } else {
                JobState::Discarded
            })
        );
    }
    let dead = store
        .jobs(
            &acme,
            JobFilter {
                state: Some(JobState::Discarded),
                limit: 10,
                ..JobFilter::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(dead.len(), 1);
    let errors: Vec<&str> = dead[0].errors.iter().map(|e| e.error.as_str()).collect();
    assert_eq!(errors, ["boom 1", "boom 2", "boom 3"]);
    assert!(
        store
            .claim_jobs(claim_req(1, 10, 60_000))
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(
        store
            .redrive_jobs(&acme, "probe", audit())
            .await
            .expect("redrive"),
        1
    );
    let c = store
        .claim_jobs(claim_req(1, 10, 60_000))
        .await
        .expect("claim");
    assert_eq!((c[0].id, c[0].attempt, c[0].max_attempts), (id, 4, 4));
    assert!(store.complete_job(&c[0], None).await.expect("complete"));
    // Retry and cancel say why they refuse.
    let r = store.cancel_job(&acme, id, audit()).await;
    assert!(refused(&r, &JOB_FINISHED), "{r:?}");
    let fresh = store
        .enqueue_job(&acme, job("probe"), audit())
        .await
        .expect("enqueue")
        .job
        .id;
    let r = store.retry_job(&acme, fresh, audit()).await;
    assert!(refused(&r, &JOB_NOT_RETRYABLE), "{r:?}");
    let again = store
        .retry_job(&acme, id, audit())
        .await
        .expect("retry")
        .expect("there");
    assert_eq!(again.state, JobState::Available);
    assert_eq!(store.job(&acme, 999_999).await.expect("job"), None);
}

both!(tenants_take_turns_and_none_runs_more_than_its_cap);
async fn tenants_take_turns_and_none_runs_more_than_its_cap(store: Store) {
    let (acme, _) = tenant_with_node(&store, "acme", "h1").await;
    let (globex, _) = tenant_with_node(&store, "globex", "h2").await;
    for _ in 0..50 {
        store
            .enqueue_job(&acme, job("probe"), audit())
            .await
            .expect("enqueue");
    }
    let lone = store
        .enqueue_job(&globex, job("probe"), audit())
        .await
        .expect("enqueue")
        .job
        .id;
    let first = store
        .claim_jobs(claim_req(2, 10, 60_000))
        .await
        .expect("claim");
    assert!(
        first.iter().any(|c| c.id == lone),
        "globex's one job is not behind acme's burst"
    );
    // acme has one running; with a cap of 3 only two more of its jobs may start.
    let more = store
        .claim_jobs(claim_req(10, 3, 60_000))
        .await
        .expect("claim");
    assert_eq!(more.len(), 2);
    assert!(more.iter().all(|c| c.tenant_id == acme.id()));
    // Paused: nothing starts, on any replica; resumed: work goes on.
    store.pause_job_queue("default", true).await.expect("pause");
    assert!(
        store
            .claim_jobs(claim_req(10, 10, 60_000))
            .await
            .expect("claim")
            .is_empty()
    );
    store
        .pause_job_queue("default", false)
        .await
        .expect("resume");
    assert_eq!(
        store
            .claim_jobs(claim_req(10, 10, 60_000))
            .await
            .expect("claim")
            .len(),
        7
    );
    // Not due yet: not claimed.
    let mut later = job("probe");
    later.scheduled_ms = Some(now_ms() + 3_600_000);
    store
        .enqueue_job(&globex, later, audit())
        .await
        .expect("enqueue");
    let c = store
        .claim_jobs(claim_req(10, 100, 60_000))
        .await
        .expect("claim");
    assert!(c.iter().all(|c| c.tenant_id == acme.id()));
}

/// Test kinds: one that works, one that panics, one that hangs past its limit, one that fails
/// once; plus the server's own `probe`.
fn test_kinds() -> Registry {
    let mut r = kinds::registry();
    let quick = |attempts| KindOptions {
        max_attempts: attempts,
        timeout: Duration::from_millis(300),
        backoff: crate::server::jobs::backoff::Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
        },
        ..KindOptions::default()
    };
    r.register(
        "echo",
        quick(3),
        |_run, args: serde_json::Value| async move { Ok(Done::Result(Some(args))) },
    );
    r.register(
        "explode",
        quick(2),
        |_run, _args: serde_json::Value| async move {
            if true {
                panic!("handler blew up");
            }
            Ok(Done::Result(None))
        },
    );
    r.register(
        "hang",
        quick(1),
        |_run, _args: serde_json::Value| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Done::Result(None))
        },
    );
    r.register(
        "flaky",
        quick(3),
        |run, _args: serde_json::Value| async move {
            if run.job.attempt == 1 {
                Err(Failed::Retry("first attempt fails".into()))
            } else {
                Ok(Done::Result(Some(json!(run.job.attempt))))
            }
        },
    );
    r
}

async fn runner_works_real_handlers(store: Store) {
    let (acme, _) = tenant_with_node(&store, "acme", "h1").await;
    let kinds = Arc::new(test_kinds());
    for (kind, args) in [
        ("echo", json!({"n": 7})),
        ("explode", json!({})),
        ("hang", json!({})),
        ("flaky", json!({})),
        ("probe", json!({"note": "hello", "fail_attempts": 1})),
        ("probe", json!({"sleep_ms": "soon"})),
    ] {
        // The last one skips the registry's check, as a job stored by an older server would.
        let j = kinds
            .job(kind, args.clone())
            .unwrap_or_else(|_| NewJob { args, ..job(kind) });
        store.enqueue_job(&acme, j, audit()).await.expect("enqueue");
    }
    let config = JobsConfig {
        queues: vec![QueueConfig {
            name: "default".into(),
            concurrency: 3,
        }],
        tenant_cap: 3,
        poll: Duration::from_millis(20),
        lease: Duration::from_secs(5),
        rescue_every: Duration::from_secs(1),
        grace: Duration::from_secs(1),
    };
    let (trigger, stop) = rollcall_service::shutdown::channel();
    let metrics = crate::server::jobs::metrics::JobMetrics::default();
    let workers = tokio::spawn(runner::run(
        store.clone(),
        kinds.clone(),
        metrics.clone(),
        config,
        stop,
    ));
    // Real workers on a real clock: wait (bounded) for every job to reach a final state.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = all(&store, &acme).await;
        if jobs.iter().all(|j| j.state.is_final()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not all finished: {jobs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    trigger.fire();
    workers.await.expect("workers stop on shutdown");
    let jobs = all(&store, &acme).await;
    let find = |kind: &str, n: usize| {
        jobs.iter()
            .rev()
            .filter(|j| j.kind == kind)
            .nth(n)
            .cloned()
            .expect("job")
    };
    let echo = find("echo", 0);
    assert_eq!(
        (echo.state, echo.result.clone()),
        (JobState::Completed, Some(json!({"n": 7})))
    );
    let explode = find("explode", 0);
    assert_eq!((explode.state, explode.attempt), (JobState::Discarded, 2));
    assert!(
        explode
            .errors
            .iter()
            .all(|e| e.error.contains("panicked: handler blew up")),
        "{:?}",
        explode.errors
    );
    let hang = find("hang", 0);
    assert_eq!(hang.state, JobState::Discarded);
    assert!(
        hang.errors[0].error.contains("timed out"),
        "{:?}",
        hang.errors
    );
    let flaky = find("flaky", 0);
    assert_eq!(
        (flaky.state, flaky.result.clone(), flaky.errors.len()),
        (JobState::Completed, Some(json!(2)), 1)
    );
    let probe = find("probe", 0);
    assert_eq!(probe.state, JobState::Completed, "{probe:?}");
    assert_eq!(probe.result, Some(json!({"note": "hello", "attempt": 2})));
    let bad = find("probe", 1);
    assert_eq!(
        (bad.state, bad.attempt),
        (JobState::Discarded, 1),
        "arguments that do not fit: no retry"
    );
    // The probe's write and its completion were one commit: one recorded attempt, the second.
    assert_eq!(
        store.probe_runs(&acme).await.expect("runs"),
        vec![(probe.id, 2)]
    );
    // Every attempt was counted by how it ended, and the queue reads empty.
    metrics.set_depth(&kinds.queues(), &store.job_depths().await.expect("depths"));
    let mut registry = prometheus_client::registry::Registry::with_prefix("rollcall_cloud");
    metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    for (kind, outcome, n) in [
        ("echo", "completed", 1),
        ("explode", "retried", 1),
        ("explode", "discarded", 1),
        ("hang", "discarded", 1),
        ("flaky", "retried", 1),
        ("flaky", "completed", 1),
        ("probe", "retried", 1),
        ("probe", "completed", 1),
        ("probe", "discarded", 1),
    ] {
        let line = format!(
            "rollcall_cloud_job_attempts_total{{queue=\"default\",kind=\"{kind}\",outcome=\"{outcome}\"}} {n}\n"
        );
        assert!(text.contains(&line), "no {line} in\n{text}");
    }
    assert!(
        text.contains("rollcall_cloud_job_run_seconds_count{queue=\"default\",kind=\"probe\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("rollcall_cloud_job_wait_seconds_count{queue=\"default\"} 9"),
        "{text}"
    );
    for state in ["available", "retryable", "running"] {
        let line =
            format!("rollcall_cloud_job_queue_depth{{queue=\"default\",state=\"{state}\"}} 0\n");
        assert!(text.contains(&line), "no {line} in\n{text}");
    }
}

#[tokio::test]
async fn workers_run_handlers_catching_panics_and_time_limits_sqlite() {
    let (store, _keep) = sqlite().await;
    runner_works_real_handlers(store).await;
}

#[tokio::test]
async fn workers_run_handlers_catching_panics_and_time_limits_postgres() {
    let (store, _keep) = postgres().await;
    runner_works_real_handlers(store).await;
}

#[test]
fn unknown_kinds_and_arguments_that_do_not_fit_are_refused_before_storing() {
    let kinds = kinds::registry();
    assert!(matches!(
        kinds.job("nope", json!({})),
        Err(crate::server::jobs::store::JobError::UnknownKind(..))
    ));
    assert!(matches!(
        kinds.job("probe", json!({"sleep_ms": "x"})),
        Err(crate::server::jobs::store::JobError::BadArgs { .. })
    ));
    assert!(matches!(
        kinds.job("probe", json!({"unknown": 1})),
        Err(crate::server::jobs::store::JobError::BadArgs { .. })
    ));
    let ok = kinds.job("probe", json!({"note": "n"})).expect("fits");
    assert_eq!((ok.queue.as_str(), ok.max_attempts), ("default", 5));
}
