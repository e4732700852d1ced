//! The attendance list under load, on both backends: `rollcall-cloud` in this process on
//! loopback, 10 000 events pushed through the sync API (that rate is printed too), then an
//! open-loop load of 500 requests/s for 10 s per scenario, 50 events a page: the first page in
//! v1 and v2, deep pages by v2 cursor, and — at 100 requests/s, since its cost grows with the
//! offset — deep pages by v1 offset (up to 9 000). Latency counts from when each request was
//! due, so a stalled server cannot hide its queue (no coordinated omission). Prints
//! p50/p90/p99/max and errors per backend and scenario.
//!
//! `cargo bench -p rollcall-cloud --bench api_load` (or `cargo xtask bench`); needs PostgreSQL
//! on 127.0.0.1:5432 (`ROLLCALL_PG_ADMIN_URL` to point elsewhere). `ROLLCALL_LOAD_RPS` and
//! `ROLLCALL_LOAD_SECONDS` change the load (defaults 500 and 10).

use std::{
    net::SocketAddr,
    num::NonZeroU32,
    time::{Duration, Instant},
};

use rollcall_cloud::server::{
    Backend, Config,
    rate_limit::RateConfig,
    serve,
    store::{
        events_query::{Cursor, Sort},
        scratch::ScratchDatabase,
    },
};
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error + Send + Sync>;

const EVENTS: u32 = 10_000;
const BATCH: u32 = 1000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn start(backend: Backend, dir: &std::path::Path) -> Result<(String, String), Error> {
    let addr_file = dir.join("addr");
    let token = "bench-admin-token-0123456789".to_owned();
    let many = NonZeroU32::new(1_000_000).unwrap_or(NonZeroU32::MAX);
    let config = Config {
        database: backend,
        listen: "127.0.0.1:0".parse::<SocketAddr>()?,
        admin_token: token.clone(),
        tenant: "acme".into(),
        base_domain: None,
        rate_limits: RateConfig {
            per_user: many,
            per_tenant: many,
            logins: many,
        },
        master_key_file: dir.join("master.key"),
        create_master_key: true,
        addr_file: Some(addr_file.clone()),
    };
    tokio::spawn(async move {
        if let Err(e) = serve(config).await {
            eprintln!("server: {e}");
        }
    });
    for _ in 0..600 {
        if let Ok(addr) = std::fs::read_to_string(&addr_file)
            && !addr.trim().is_empty()
        {
            return Ok((format!("http://{}", addr.trim()), token));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the server did not start".into())
}

async fn seed(http: &reqwest::Client, url: &str, admin: &str) -> Result<f64, Error> {
    let node: Value = http
        .post(format!("{url}/api/v1/nodes"))
        .bearer_auth(admin)
        .json(&json!({ "site_id": "hq" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = node["token"].as_str().ok_or("no node token")?.to_owned();
    let start = Instant::now();
    for b in 0..EVENTS / BATCH {
        let events: Vec<Value> = (1..=BATCH)
            .map(|i| {
                let n = b * BATCH + i;
                json!({
                    "id": format!("01J{n:023}"), "seq": n, "site_id": "hq",
                    "person_id": format!("p{}", n % 300), "decision": if n.is_multiple_of(7) { "denied" } else { "granted" },
                    "similarity": 0.8, "risk_score": 0.1, "position": null,
                    "node_time_ms": 1_700_000_000_000i64 + i64::from(n) * 1000,
                    "reasons": [{ "code": "low_accuracy", "text": "fix accuracy 80 m", "weight": 0.1 }],
                })
            })
            .collect();
        let ack: Value = http
            .post(format!("{url}/api/v1/sync/push"))
            .bearer_auth(&token)
            .json(&json!({ "protocol": 1, "events": events }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if ack["accepted"].as_array().map(Vec::len) != Some(BATCH as usize) {
            return Err(format!("batch {b} not fully accepted: {ack}").into());
        }
    }
    Ok(f64::from(EVENTS) / start.elapsed().as_secs_f64())
}

struct Figures {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    ok: usize,
    errors: usize,
}

#[derive(Clone, Copy)]
enum Scenario {
    V1First,
    V2First,
    V2Deep,
    V1Deep,
}

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::V1First => "v1 first page",
            Scenario::V2First => "v2 first page",
            Scenario::V2Deep => "v2 deep pages (cursor)",
            Scenario::V1Deep => "v1 deep pages (offset, 100/s)",
        }
    }

    fn path(self, i: u64) -> String {
        let n = 200 + (i * 7919) % 9500; // a spread of positions in the 10 000
        match self {
            Scenario::V1First => "/api/v1/events?limit=50".into(),
            Scenario::V2First => "/api/v2/events?limit=50".into(),
            Scenario::V1Deep => format!("/api/v1/events?limit=50&offset={}", n.min(9000)),
            Scenario::V2Deep => {
                let cursor = Cursor {
                    sort: Sort::default(),
                    key: 1_700_000_000_000 + n as i64 * 1000,
                    id: format!("01J{n:023}"),
                };
                format!("/api/v2/events?limit=50&cursor={}", cursor.encode())
            }
        }
    }
}

async fn load(http: &reqwest::Client, url: &str, admin: &str, scenario: Scenario) -> Figures {
    let rps = match scenario {
        Scenario::V1Deep => 100,
        _ => env_u64("ROLLCALL_LOAD_RPS", 500).max(1),
    };
    let seconds = env_u64("ROLLCALL_LOAD_SECONDS", 10).max(1);
    let total = rps * seconds;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rps));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..total {
        let due = ticker.tick().await;
        let (http, tx) = (http.clone(), tx.clone());
        let path = scenario.path(i);
        let (url, admin) = (url.to_owned(), admin.to_owned());
        tokio::spawn(async move {
            let ok = match http
                .get(format!("{url}{path}"))
                .bearer_auth(&admin)
                .send()
                .await
            {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            let _ = tx.send((due.elapsed(), ok));
        });
    }
    drop(tx);
    let mut ms = Vec::new();
    let mut errors = 0;
    while let Some((latency, ok)) = rx.recv().await {
        if ok {
            ms.push(latency.as_secs_f64() * 1000.0);
        } else {
            errors += 1;
        }
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        ms.get(((ms.len() as f64 * q) as usize).min(ms.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    Figures {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: ms.last().copied().unwrap_or(f64::NAN),
        ok: ms.len(),
        errors,
    }
}

async fn run() -> Result<(), Error> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let rps = env_u64("ROLLCALL_LOAD_RPS", 500);
    println!("attendance list at {rps} requests/s, 50 events a page, {EVENTS} events stored");
    println!("(latency from when each request was due; PostgreSQL on the same 2 cores)");
    for name in ["sqlite", "postgres"] {
        let dir = tempfile::tempdir()?;
        let scratch;
        let mut analyze = None;
        let backend = if name == "sqlite" {
            Backend::Sqlite(dir.path().join("cloud.sqlite"))
        } else {
            scratch = ScratchDatabase::create().await?;
            analyze = Some(scratch.admin_url_here());
            Backend::Postgres {
                url: scratch.url.clone(),
                migrate_url: None,
            }
        };
        let (url, admin) = start(backend, dir.path()).await?;
        let ingest = seed(&http, &url, &admin).await?;
        if let Some(db) = &analyze {
            // What autovacuum would do within its first minute: give the planner statistics.
            let (client, conn) = tokio_postgres::connect(db, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            client.batch_execute("ANALYZE").await?;
        }
        println!(
            "{name:<9} ingest through the sync API: {ingest:>8.0} events/s (batches of {BATCH})"
        );
        for scenario in [
            Scenario::V1First,
            Scenario::V2First,
            Scenario::V2Deep,
            Scenario::V1Deep,
        ] {
            let label = scenario.label();
            let f = load(&http, &url, &admin, scenario).await;
            println!(
                "{name:<9} {label:<32} p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  ({} ok, {} errors)",
                f.p50, f.p90, f.p99, f.max, f.ok, f.errors
            );
        }
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}
