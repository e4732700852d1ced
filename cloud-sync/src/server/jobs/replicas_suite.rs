//! The workers of several replicas on one database (two store handles in one process; the
//! test with two `rollcall-cloud` processes is in `tests/tests/jobs.rs`): two thousand jobs
//! worked by two replicas each run exactly once; on PostgreSQL a commit through one replica
//! wakes the workers of another at once (they would otherwise wait out a ten-minute poll),
//! and a job's handler that reads without naming a tenant sees only its own tenant's rows
//! (row-level security).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::server::{
    jobs::{
        kinds,
        metrics::{JobMetrics, Outcome},
        model::JobState,
        registry::{Done, Failed, KindOptions},
        runner::{self, JobsConfig, QueueConfig},
    },
    store::{
        Store, StoreError, TenantScope,
        exec::{Exec, in_tenant},
        suite::{Keep, audit, both_with_keep, postgres, reopen, sqlite, tenant_with_node},
    },
};

/// One `default` queue of `concurrency` workers, each tenant up to all of them.
pub(super) fn config(concurrency: u32, poll: Duration) -> JobsConfig {
    JobsConfig {
        queues: vec![QueueConfig {
            name: "default".into(),
            concurrency,
        }],
        tenant_cap: concurrency,
        poll,
        lease: Duration::from_secs(30),
        rescue_every: Duration::from_secs(5),
        grace: Duration::from_secs(5),
    }
}

/// Waits (bounded) until no job of any tenant is unfinished.
async fn drained(store: &Store, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left: i64 = store
            .job_depths()
            .await
            .expect("depths")
            .iter()
            .map(|(_, _, n)| n)
            .sum();
        if left == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{left} jobs still unfinished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

both_with_keep!(two_replicas_work_two_thousand_jobs_each_exactly_once);
async fn two_replicas_work_two_thousand_jobs_each_exactly_once(store: Store, keep: Keep) {
    const JOBS: usize = 2_000;
    const BATCH: usize = 500;
    let other = reopen(&keep).await;
    let mut tenants = Vec::new();
    for (slug, token) in [("acme", "a1"), ("globex", "g1"), ("initech", "i1")] {
        tenants.push(tenant_with_node(&store, slug, token).await.0);
    }
    let registry = Arc::new(kinds::registry());
    let (trigger, stop) = rollcall_service::shutdown::channel();
    let mut replicas = Vec::new();
    for replica in [store.clone(), other.clone()] {
        let metrics = JobMetrics::default();
        let run = tokio::spawn(runner::run(
            replica,
            registry.clone(),
            metrics.clone(),
            config(8, Duration::from_millis(200)),
            stop.clone(),
        ));
        replicas.push((metrics, run));
    }
    // Enqueued while both work, in batches, through either replica.
    for batch in 0..JOBS / BATCH {
        let scope = &tenants[batch % tenants.len()];
        let via = if batch % 2 == 0 { &store } else { &other };
        let jobs = (0..BATCH)
            .map(|i| {
                registry
                    .job("probe", json!({ "note": format!("{batch}-{i}") }))
                    .expect("a probe")
            })
            .collect();
        let enqueued = via
            .enqueue_jobs(scope, jobs, audit())
            .await
            .expect("enqueue");
        assert_eq!(enqueued.len(), BATCH);
    }
    drained(&store, Duration::from_secs(600)).await;
    trigger.fire();
    let mut completed = Vec::new();
    for (metrics, run) in replicas {
        run.await.expect("the replica's workers stop");
        completed.push(metrics.attempts("default", "probe", Outcome::Completed));
    }
    // The side effect of each job (a row the probe writes in the transaction that completes
    // it) exists once.
    let mut runs = Vec::new();
    for scope in &tenants {
        runs.extend(store.probe_runs(scope).await.expect("runs"));
    }
    assert_eq!(runs.len(), JOBS, "one side effect per job");
    let mut ids: Vec<i64> = runs.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), JOBS, "no job ran twice");
    // An attempt whose transaction failed (on SQLite, two handles on one file can wait out
    // the busy timeout under load) is retried; its side effect was rolled back with it.
    let retried = runs.iter().filter(|(_, attempt)| *attempt > 1).count();
    eprintln!("{retried} of {JOBS} jobs needed a second attempt");
    assert_eq!(completed.iter().sum::<u64>(), JOBS as u64, "{completed:?}");
    assert!(
        completed.iter().all(|n| *n > 0),
        "both replicas worked: {completed:?}"
    );
}

/// PostgreSQL: workers that poll every ten minutes start a job enqueued through another
/// replica as soon as it commits, woken by its notification; the job waits for nothing else.
#[tokio::test]
async fn a_commit_on_one_replica_wakes_the_workers_of_another_postgres() {
    let (store, keep) = postgres().await;
    let other = reopen(&keep).await;
    let (acme, _) = tenant_with_node(&store, "acme", "a1").await;
    let registry = Arc::new(kinds::registry());
    let (trigger, stop) = rollcall_service::shutdown::channel();
    let workers = tokio::spawn(runner::run(
        other,
        registry.clone(),
        JobMetrics::default(),
        config(2, Duration::from_secs(600)),
        stop,
    ));
    for n in 0..3 {
        let job = registry
            .job("probe", json!({ "note": format!("wake {n}") }))
            .expect("a probe");
        let id = store
            .enqueue_job(&acme, job, audit())
            .await
            .expect("enqueue")
            .job
            .id;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = store.job(&acme, id).await.expect("job").expect("exists");
            if job.state == JobState::Completed {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} was not started: no wake-up reached the other replica"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    trigger.fire();
    workers.await.expect("workers stop");
}

/// The tenants whose node rows a transaction sees: without naming a tenant, and naming `other`.
async fn nodes_seen(tx: &impl Exec, other: i64) -> Result<Value, StoreError> {
    let all = tx
        .query("SELECT DISTINCT tenant_id FROM nodes", &[], |r| {
            r.get::<i64>(0)
        })
        .await?;
    let named = tx
        .query(
            "SELECT count(*) FROM nodes WHERE tenant_id = $1",
            &[&other],
            |r| r.get::<i64>(0),
        )
        .await?;
    Ok(json!({ "tenants": all, "named_other": named }))
}

/// PostgreSQL: a handler run for tenant A's job that reads the nodes table without naming a
/// tenant, or naming tenant B, sees A's rows only: the runner entered A's scope, and row-level
/// security holds there whatever the handler's SQL says.
#[tokio::test]
async fn a_job_handler_cannot_read_another_tenants_rows_postgres() {
    let (store, _keep) = postgres().await;
    let (acme, _) = tenant_with_node(&store, "acme", "a1").await;
    let (globex, _) = tenant_with_node(&store, "globex", "g1").await;
    let mut registry = kinds::registry();
    let other = globex.id();
    registry.register(
        "test.snoop",
        KindOptions {
            max_attempts: 1,
            ..KindOptions::default()
        },
        move |run, _args: Value| async move {
            let scope: TenantScope = run
                .scope
                .clone()
                .ok_or_else(|| Failed::Discard("no tenant".into()))?;
            let seen = in_tenant!(read & run.store, &scope, |tx| nodes_seen(tx, other))?;
            Ok(Done::Result(Some(seen)))
        },
    );
    let registry = Arc::new(registry);
    let id = store
        .enqueue_job(
            &acme,
            registry.job("test.snoop", json!({})).expect("job"),
            audit(),
        )
        .await
        .expect("enqueue")
        .job
        .id;
    let (trigger, stop) = rollcall_service::shutdown::channel();
    let workers = tokio::spawn(runner::run(
        store.clone(),
        registry,
        JobMetrics::default(),
        config(1, Duration::from_millis(50)),
        stop,
    ));
    drained(&store, Duration::from_secs(60)).await;
    trigger.fire();
    workers.await.expect("workers stop");
    let job = store.job(&acme, id).await.expect("job").expect("exists");
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(
        job.result,
        Some(json!({ "tenants": [acme.id()], "named_other": [0] })),
        "the handler saw only its own tenant's rows"
    );
}
