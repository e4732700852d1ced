//! The job system end to end, on both backends: jobs enqueued in batches of 500 (over four
//! tenants) while the workers of one replica — and on PostgreSQL of two, each its own pool,
//! listener and workers on one database — run a no-op handler, until every job is completed;
//! printed as jobs/s next to the raw rate of the same database doing what a job costs at the
//! least (one insert in a batch, one update by id in a transaction of its own, as many at
//! once as there are workers). Then the latency from enqueue to start on an idle queue (the
//! commit wakes the workers: in process on SQLite, by `pg_notify` on PostgreSQL), p50/p99 of
//! 200 jobs one at a time.
//!
//! `cargo bench -p rollcall-cloud --bench jobs` (or `cargo xtask bench`); needs PostgreSQL on
//! 127.0.0.1:5432 (`ROLLCALL_PG_ADMIN_URL` to point elsewhere). `ROLLCALL_BENCH_JOBS` changes
//! how many jobs (default 10 000).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rollcall_cloud::server::{
    Backend,
    audit::store::Audit,
    jobs::{
        metrics::JobMetrics,
        registry::{Done, KindOptions, Registry},
        runner::{self, JobsConfig, QueueConfig},
    },
    store::{Store, TenantScope},
};
use rollcall_tests::ScratchDatabase;
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error + Send + Sync>;

const BATCH: usize = 500;
const WORKERS: u32 = 8;
const SAMPLES: usize = 200;

fn audit() -> Audit {
    Audit {
        actor: "bench".into(),
        action: "job.enqueue",
        target: None,
        source: None,
        request_id: "bench".into(),
        detail: json!({}),
    }
}

fn config() -> JobsConfig {
    JobsConfig {
        queues: vec![QueueConfig {
            name: "default".into(),
            concurrency: WORKERS,
        }],
        tenant_cap: WORKERS,
        ..JobsConfig::default()
    }
}

/// The bench's kinds: `bench.noop`, and `bench.stamp`, which says when it started.
fn kinds(started: tokio::sync::mpsc::UnboundedSender<(u64, Instant)>) -> Registry {
    let mut r = Registry::default();
    let options = KindOptions {
        max_attempts: 3,
        ..KindOptions::default()
    };
    r.register("bench.noop", options.clone(), |_run, _args: Value| async {
        Ok(Done::Result(None))
    });
    r.register("bench.stamp", options, move |_run, n: u64| {
        let started = started.clone();
        async move {
            let _ = started.send((n, Instant::now()));
            Ok(Done::Result(None))
        }
    });
    r
}

/// One database for a scenario: the backend to open, and PostgreSQL's scratch database.
struct Db {
    backend: Backend,
    _dir: tempfile::TempDir,
    scratch: Option<ScratchDatabase>,
}

async fn db(postgres: bool) -> Result<Db, Error> {
    let dir = tempfile::tempdir()?;
    if postgres {
        let scratch = ScratchDatabase::create().await?;
        Ok(Db {
            backend: Backend::Postgres {
                url: scratch.url.clone(),
                migrate_url: None,
            },
            _dir: dir,
            scratch: Some(scratch),
        })
    } else {
        Ok(Db {
            backend: Backend::Sqlite(dir.path().join("cloud.sqlite")),
            _dir: dir,
            scratch: None,
        })
    }
}

async fn tenants(store: &Store) -> Result<Vec<TenantScope>, Error> {
    let mut out = Vec::new();
    for slug in ["acme", "globex", "initech", "umbrella"] {
        let t = store.ensure_tenant(slug, slug).await?;
        out.push(t.scope().ok_or("tenant not active")?);
    }
    Ok(out)
}

/// Unfinished jobs of every tenant.
async fn unfinished(store: &Store) -> Result<i64, Error> {
    Ok(store.job_depths().await?.iter().map(|(_, _, n)| n).sum())
}

/// Jobs/s with `replicas` replicas working while `jobs` are enqueued.
async fn throughput(db: &Db, replicas: usize, jobs: usize) -> Result<f64, Error> {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let registry = Arc::new(kinds(tx));
    let mut stores = Vec::new();
    for _ in 0..replicas {
        stores.push(Store::open(&db.backend).await?);
    }
    let scopes = tenants(&stores[0]).await?;
    let (trigger, stop) = rollcall_service::shutdown::channel();
    let mut running = Vec::new();
    for store in &stores {
        running.push(tokio::spawn(runner::run(
            store.clone(),
            registry.clone(),
            JobMetrics::default(),
            config(),
            stop.clone(),
        )));
    }
    let start = Instant::now();
    for (b, chunk) in (0..jobs).collect::<Vec<_>>().chunks(BATCH).enumerate() {
        let batch = chunk
            .iter()
            .map(|_| registry.job("bench.noop", json!({})))
            .collect::<Result<Vec<_>, _>>()?;
        stores[b % stores.len()]
            .enqueue_jobs(&scopes[b % scopes.len()], batch, audit())
            .await?;
    }
    while unfinished(&stores[0]).await? > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rate = jobs as f64 / start.elapsed().as_secs_f64();
    trigger.fire();
    for r in running {
        r.await?;
    }
    Ok(rate)
}

/// Enqueue-to-start latencies (ms, sorted) of jobs enqueued one at a time on an idle queue.
async fn latency(db: &Db) -> Result<Vec<f64>, Error> {
    let (tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let registry = Arc::new(kinds(tx));
    let store = Store::open(&db.backend).await?;
    let scope = tenants(&store).await?.remove(0);
    let (trigger, stop) = rollcall_service::shutdown::channel();
    let workers = tokio::spawn(runner::run(
        store.clone(),
        registry.clone(),
        JobMetrics::default(),
        config(),
        stop,
    ));
    // Let the workers (and PostgreSQL's listener) settle before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut took = Vec::with_capacity(SAMPLES);
    for n in 0..SAMPLES as u64 {
        let before = Instant::now();
        store
            .enqueue_job(&scope, registry.job("bench.stamp", json!(n))?, audit())
            .await?;
        let (m, at) = started.recv().await.ok_or("the workers stopped")?;
        if m == n {
            took.push(at.duration_since(before).as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    trigger.fire();
    workers.await?;
    took.sort_by(f64::total_cmp);
    Ok(took)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

/// The raw rate on SQLite: rows into a copy of `jobs` in the same file (same durability),
/// inserted `BATCH` a transaction, then each updated by id in a transaction of its own.
fn raw_sqlite(path: &std::path::Path, jobs: usize) -> Result<f64, Error> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE raw_jobs (id INTEGER PRIMARY KEY, tenant_id INTEGER, kind TEXT, queue TEXT,
                                args TEXT, state TEXT, scheduled_ms INTEGER);
         CREATE INDEX raw_jobs_ready ON raw_jobs (queue, scheduled_ms, id)
             WHERE state = 'available';",
    )?;
    let start = Instant::now();
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(BATCH) {
        let tx = conn.transaction()?;
        let mut ids = Vec::with_capacity(chunk.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO raw_jobs (tenant_id, kind, queue, args, state, scheduled_ms)
                 VALUES (1, 'bench.noop', 'default', '{}', 'available', 0)",
            )?;
            for _ in chunk {
                insert.execute([])?;
                ids.push(tx.last_insert_rowid());
            }
        }
        tx.commit()?;
        for id in ids {
            conn.execute(
                "UPDATE raw_jobs SET state = 'completed' WHERE id = ?1",
                [id],
            )?;
        }
    }
    Ok(jobs as f64 / start.elapsed().as_secs_f64())
}

/// The raw rate on PostgreSQL: the same, the updates from `WORKERS` connections at once.
async fn raw_postgres(admin_url: &str, jobs: usize) -> Result<f64, Error> {
    let (client, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute("CREATE TABLE raw_jobs (LIKE jobs INCLUDING ALL)")
        .await?;
    let mut updaters = Vec::new();
    for _ in 0..WORKERS {
        let (c, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        updaters.push(Arc::new(c));
    }
    let start = Instant::now();
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(BATCH) {
        let n = i64::try_from(chunk.len())?;
        let ids: Vec<i64> = client
            .query(
                "INSERT INTO raw_jobs (tenant_id, kind, queue, args, state, priority, scheduled_ms,
                                       attempt, max_attempts, errors, created_ms)
                 SELECT 1, 'bench.noop', 'default', '{}', 'available', 0, 0, 0, 3, '[]', 0
                 FROM generate_series(1, $1::bigint) RETURNING id",
                &[&n],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut tasks = Vec::new();
        for (w, c) in updaters.iter().enumerate() {
            let (c, mine): (_, Vec<i64>) = (
                c.clone(),
                ids.iter()
                    .skip(w)
                    .step_by(WORKERS as usize)
                    .copied()
                    .collect(),
            );
            tasks.push(tokio::spawn(async move {
                for id in mine {
                    c.execute(
                        "UPDATE raw_jobs SET state = 'completed' WHERE id = $1",
                        &[&id],
                    )
                    .await?;
                }
                Ok::<(), tokio_postgres::Error>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
    }
    Ok(jobs as f64 / start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let jobs = std::env::var("ROLLCALL_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000usize);
    println!(
        "jobs end to end: {jobs} no-op jobs enqueued {BATCH} a transaction over 4 tenants, \
         {WORKERS} workers a replica (PostgreSQL on the same 2 cores)"
    );
    for (name, postgres, replicas) in [
        ("sqlite", false, 1),
        ("postgres", true, 1),
        ("postgres", true, 2),
    ] {
        let db = db(postgres).await?;
        let rate = throughput(&db, replicas, jobs).await?;
        let raw = match &db.scratch {
            Some(s) => raw_postgres(&s.admin_url_here(), jobs).await?,
            None => match &db.backend {
                Backend::Sqlite(path) => raw_sqlite(path, jobs)?,
                Backend::Postgres { .. } => {
                    return Err("PostgreSQL without a scratch database".into());
                }
            },
        };
        println!(
            "{name:<9} {replicas} replica(s): {rate:>7.0} jobs/s; raw insert + update {raw:>7.0}/s; jobs = {:.0} % of raw",
            100.0 * rate / raw
        );
    }
    for (name, postgres) in [("sqlite", false), ("postgres", true)] {
        let db = db(postgres).await?;
        let took = latency(&db).await?;
        println!(
            "{name:<9} enqueue to start on an idle queue: p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  ({} jobs)",
            pct(&took, 0.5),
            pct(&took, 0.99),
            took.last().copied().unwrap_or(f64::NAN),
            took.len()
        );
    }
    Ok(())
}
