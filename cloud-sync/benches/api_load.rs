//! The attendance list under load, on both backends: `rollcall-cloud` in this process on
//! loopback, 10 000 events pushed through the sync API gzip-compressed as nodes send them (that
//! rate is printed too), then an
//! open-loop load of 500 requests/s for 10 s per scenario, 50 events a page: the first page in
//! v1 and v2, deep pages by v2 cursor, and — at 100 requests/s, since its cost grows with the
//! offset — deep pages by v1 offset (up to 9 000). Latency counts from when each request was
//! due, so a stalled server cannot hide its queue (no coordinated omission). Prints
//! p50/p90/p99/max and errors per backend and scenario. Next to the ingest rate it prints the
//! raw batched-insert rate of the same database (the same rows into a copy of the `events`
//! table with its indexes, 1000 a transaction, nothing else): the ceiling ingest is measured
//! against.
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
    attendance::query::{Cursor, Sort},
    http::rate_limit::RateConfig,
    serve,
};
use rollcall_protocol::codec::Encoding;
use rollcall_tests::ScratchDatabase;
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
        metrics_token: None,
        tenant: "acme".into(),
        base_domain: None,
        rate_limits: RateConfig {
            per_user: many,
            per_tenant: many,
            logins: many,
            logins_per_address: many,
            logins_global: many,
        },
        hashing: Default::default(),
        connections: Default::default(),
        master_key_file: dir.join("master.key"),
        create_master_key: true,
        addr_file: Some(addr_file.clone()),
        jobs: rollcall_cloud::server::jobs::runner::JobsConfig::default(),
        job_kinds: rollcall_cloud::server::jobs::kinds::registry(),
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

/// An event as the `events` table holds it.
struct RawRow {
    id: String,
    seq: i64,
    person_id: String,
    decision: String,
    node_time_ms: i64,
    body: String,
}

/// Rows like the ones the seed pushes.
fn raw_rows() -> Vec<RawRow> {
    (1..=EVENTS)
        .map(|n| {
            let body = json!({
                "id": format!("01K{n:023}"), "seq": n, "site_id": "hq",
                "person_id": format!("p{}", n % 300), "decision": "granted",
                "similarity": 0.8, "risk_score": 0.1, "position": null,
                "node_time_ms": 1_700_000_000_000i64 + i64::from(n) * 1000,
                "reasons": [{ "code": "low_accuracy", "text": "fix accuracy 80 m", "weight": 0.1 }],
            });
            RawRow {
                id: format!("01K{n:023}"),
                seq: i64::from(n),
                person_id: format!("p{}", n % 300),
                decision: "granted".to_owned(),
                node_time_ms: 1_700_000_000_000i64 + i64::from(n) * 1000,
                body: body.to_string(),
            }
        })
        .collect()
}

/// Rows a second into a copy of the server's `events` table (same indexes) in the server's own
/// SQLite file, 1000 a transaction, with the server's durability (WAL, `synchronous=FULL`).
fn raw_rate_sqlite(path: &std::path::Path, node_id: &str) -> Result<f64, Error> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let ddl: Vec<String> = {
        let mut stmt = conn.prepare(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'events' AND sql IS NOT NULL ORDER BY type DESC",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for sql in ddl {
        conn.execute_batch(
            &sql.replace("events_", "raw_events_")
                .replace(" events", " raw_events")
                .replace("\"events\"", "raw_events"),
        )?;
    }
    let rows = raw_rows();
    let start = Instant::now();
    for chunk in rows.chunks(BATCH as usize) {
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO raw_events (id, tenant_id, node_id, site_id, seq, person_id, decision, node_time_ms, received_ms, body)
                 VALUES (?1, 1, ?7, 'hq', ?2, ?3, ?4, ?5, 0, ?6)",
            )?;
            for r in chunk {
                insert.execute(rusqlite::params![
                    r.id,
                    r.seq,
                    r.person_id,
                    r.decision,
                    r.node_time_ms,
                    r.body,
                    node_id
                ])?;
            }
        }
        tx.commit()?;
    }
    Ok(f64::from(EVENTS) / start.elapsed().as_secs_f64())
}

/// The same on PostgreSQL: a copy of `events` with its indexes, 1000 rows a transaction by
/// `unnest` (the server's own way of inserting a batch).
async fn raw_rate_postgres(admin_url: &str, node_id: &str) -> Result<f64, Error> {
    let (mut client, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute("CREATE TABLE raw_events (LIKE events INCLUDING ALL)")
        .await?;
    let rows = raw_rows();
    let start = Instant::now();
    for chunk in rows.chunks(BATCH as usize) {
        let tx = client.transaction().await?;
        let text = |f: fn(&RawRow) -> &str| chunk.iter().map(f).collect::<Vec<&str>>();
        let (ids, persons, decisions, bodies) = (
            text(|r| &r.id),
            text(|r| &r.person_id),
            text(|r| &r.decision),
            text(|r| &r.body),
        );
        let seqs: Vec<i64> = chunk.iter().map(|r| r.seq).collect();
        let times: Vec<i64> = chunk.iter().map(|r| r.node_time_ms).collect();
        tx.execute(
            "INSERT INTO raw_events (id, tenant_id, node_id, site_id, seq, person_id, decision, node_time_ms, received_ms, body)
             SELECT u.id, 1, $7, 'hq', u.seq, u.person_id, u.decision, u.node_time_ms, 0, u.body
             FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[])
                  AS u(id, seq, person_id, decision, node_time_ms, body)",
            &[&ids, &seqs, &persons, &decisions, &times, &bodies, &node_id],
        )
        .await?;
        tx.commit().await?;
    }
    Ok(f64::from(EVENTS) / start.elapsed().as_secs_f64())
}

/// Pushes the events as one node; the rate and the node's id.
async fn seed(http: &reqwest::Client, url: &str, admin: &str) -> Result<(f64, String), Error> {
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
    let node_id = node["node_id"].as_str().ok_or("no node id")?.to_owned();
    // The bodies are made before the clock starts: the rate is the server's, not the client's
    // JSON building.
    let bodies: Vec<Vec<u8>> = (0..EVENTS / BATCH)
        .map(|b| {
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
            // CBOR and compressed, as nodes send them: the server's inflating and decoding are
            // part of the rate.
            let batch: rollcall_protocol::wire::PushBatch =
                serde_json::from_value(json!({ "protocol": 1, "events": events }))
                    .unwrap_or_else(|e| panic!("the bench's batch: {e}"));
            rollcall_protocol::gzip::compress(&Encoding::Cbor.encode(&batch))
        })
        .collect();
    let start = Instant::now();
    for (b, body) in bodies.into_iter().enumerate() {
        let answer = http
            .post(format!("{url}/api/v1/sync/push"))
            .bearer_auth(&token)
            .header("content-type", Encoding::CBOR)
            .header("content-encoding", "gzip")
            .body(body)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let ack: rollcall_protocol::wire::PushAck = Encoding::Cbor
            .decode(&answer)
            .map_err(|e| format!("batch {b}: the answer: {e}"))?;
        if ack.accepted.len() != BATCH as usize {
            return Err(format!("batch {b} not fully accepted: {ack:?}").into());
        }
    }
    Ok((f64::from(EVENTS) / start.elapsed().as_secs_f64(), node_id))
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
        let (ingest, node_id) = seed(&http, &url, &admin).await?;
        if let Some(db) = &analyze {
            // What autovacuum would do within its first minute: give the planner statistics.
            let (client, conn) = tokio_postgres::connect(db, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            client.batch_execute("ANALYZE").await?;
        }
        let raw = match &analyze {
            Some(admin_url) => raw_rate_postgres(admin_url, &node_id).await?,
            None => raw_rate_sqlite(&dir.path().join("cloud.sqlite"), &node_id)?,
        };
        println!(
            "{name:<9} ingest through the sync API: {ingest:>8.0} events/s (batches of {BATCH}); raw batched insert {raw:>8.0}/s; ingest = {:.0} % of raw",
            100.0 * ingest / raw
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
