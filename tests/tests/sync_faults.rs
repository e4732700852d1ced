//! Sync under faults, on each cloud backend. The cloud is `kill -9`ed and stays away for a
//! simulated day while 10 000 check-ins pile up on the node (which itself crashes once). Then
//! the cloud comes back behind a proxy that cuts requests and responses midway, holds requests
//! back and sends them twice, the second copy arriving after newer pushes; mid-drain the cloud
//! and then the node are `kill -9`ed again and restarted. Every event must reach the cloud
//! exactly once, in sequence order, with nothing left pending and nothing in dead letters.
//!
//! `ROLLCALL_SYNC_FAULTS_SEED` replays an earlier run's faults and kill moments (the seed is
//! printed); `ROLLCALL_SYNC_FAULTS_EVENTS` sets the size of the day (default 10 000).

use std::{
    collections::{BTreeMap, HashSet},
    path::Path,
    time::{Duration, Instant},
};

use rollcall_node::{store::NodeStore, template_key::TemplateKey};
use rollcall_protocol::wire::{AttendanceEvent, Decision, Fix};
use rollcall_tests::{
    AT_GATE, Cloud, CloudDb, FaultProxy, Node, NodeOptions, Rng, sample_photo, wait_for,
};
use serde_json::Value;

const DAY_MS: i64 = 86_400_000;
const PENDING: &str = "rollcall_node_outbox_pending";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn photo(name: &str) -> Vec<u8> {
    sample_photo(name).unwrap_or_else(|e| panic!("{e}"))
}

/// The day the cloud was away: `n` check-ins over the last 24 hours, recorded by the node's
/// own store as its pipeline records a decision (the node is down meanwhile: running the face
/// pipeline 10 000 times would take the test's whole budget). Every third is a denial.
fn record_day(node_dir: &Path, n: u32) {
    let data = node_dir.join("data");
    let key = TemplateKey::load_or_create(&data.join("template.key")).expect("template key");
    let mut store = NodeStore::open(&data.join("node.sqlite"), key).expect("node store");
    let start = rollcall_node::store::now_ms() - DAY_MS;
    let (lat, lon, accuracy_m) = AT_GATE;
    for i in 0..n {
        let granted = i % 3 != 0;
        store
            .record_event(None, |seq| AttendanceEvent {
                id: ulid::Ulid::new().to_string(),
                seq,
                site_id: "hq".into(),
                person_id: granted.then(|| "obama".into()),
                decision: if granted {
                    Decision::Granted
                } else {
                    Decision::Denied
                },
                similarity: Some(if granted { 0.78 } else { 0.21 }),
                risk_score: 0.0,
                reasons: Vec::new(),
                position: Some(Fix {
                    lat,
                    lon,
                    accuracy_m,
                }),
                node_time_ms: start + i64::from(i) * DAY_MS / i64::from(n),
                card: None,
                hlc: None,
            })
            .expect("event recorded");
    }
}

/// Every event the cloud holds, walked through v2's cursors in the order it received them:
/// `(seq, id, node_id, received_ms)`.
fn cloud_events(cloud: &Cloud) -> Vec<(u64, String, String, i64)> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/api/v2/events?sort=received_ms&limit=1000{cursor}");
        let (status, page) = cloud.admin_get(&path).expect("events page");
        assert_eq!(status, 200, "{path}: {page}");
        for e in page["data"].as_array().expect("data") {
            out.push((
                e["seq"].as_u64().expect("seq"),
                e["id"].as_str().expect("id").to_owned(),
                e["node_id"].as_str().expect("node_id").to_owned(),
                e["received_ms"].as_i64().expect("received_ms"),
            ));
        }
        match page["page"]["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return out,
        }
    }
}

/// The node's pending count once it drops to `at_most` (polled fast, so that a kill lands
/// mid-drain); `None` if the drain finished first.
fn pending_drops_to(node: &Node, at_most: f64) -> Option<f64> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(180) {
        match node.metric(PENDING) {
            Some(0.0) => return None,
            Some(p) if p <= at_most => return Some(p),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    panic!("the outbox stayed above {at_most} for three minutes");
}

fn a_day_offline_then_faults(backend: CloudDb) {
    let seed: u64 = env_or("ROLLCALL_SYNC_FAULTS_SEED", Rng::clock_seed());
    let day: u32 = env_or("ROLLCALL_SYNC_FAULTS_EVENTS", 10_000);
    let name = backend.name();
    eprintln!("sync faults ({name}): {day} events, ROLLCALL_SYNC_FAULTS_SEED={seed}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let (cloud_dir, node_dir) = (dir.path().join("cloud"), dir.path().join("node"));
    let mut cloud = Cloud::start_with(&cloud_dir, None, backend.clone(), &[]).expect("cloud");
    let (node_id, token) = cloud.register_node("hq").expect("node registered");
    let proxy = FaultProxy::start(cloud.addr().expect("addr"), seed).expect("proxy");
    let opts = NodeOptions {
        sync_interval_ms: 100,
        ..NodeOptions::synced(&proxy.url, token)
    };
    let mut node = Node::start(&node_dir, &opts).expect("node");
    node.enrol("obama", "Barack Obama", &photo("sample-obama"))
        .expect("enrolled");
    node.decide(&photo("sample-obama2"), Some(AT_GATE));
    wait_for(
        "the first check-in in the cloud",
        Duration::from_secs(30),
        || cloud.events().is_ok_and(|e| e.len() == 1),
    );

    // The cloud dies and stays away for the day; the node crashes once meanwhile.
    cloud.process.kill_hard();
    node.process.kill_hard();
    let started = Instant::now();
    record_day(&node_dir, day);
    eprintln!(
        "sync faults ({name}): the day's {day} check-ins recorded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let config = node.config.clone();
    node = Node::start_with_config(&node_dir, &config).expect("node restarts");
    // The day's last check-ins go through the node's pipeline, decided with no cloud.
    let faces = [
        "sample-obama3",
        "sample-biden",
        "sample-obama2",
        "sample-obama",
    ];
    for face in faces.iter().cycle().take(12) {
        node.decide(&photo(face), Some(AT_GATE));
    }
    let total = 1 + day + 12;
    let held = f64::from(total - 1);
    wait_for("the outbox gauge", Duration::from_secs(30), || {
        node.metric(PENDING) == Some(held)
    });
    assert!(
        proxy.stats().refused > 0,
        "the node tried the cloud while it was away"
    );

    // Back, behind a faulty network; kill -9 the cloud and then the node mid-drain.
    proxy.set_faulty(true);
    let started = Instant::now();
    cloud = Cloud::start_with(&cloud_dir, None, backend.clone(), &[]).expect("cloud restarts");
    proxy.set_upstream(cloud.addr().expect("addr"));
    let cloud_kill_at = held * (50 + rng.below(30)) as f64 / 100.0;
    let at = pending_drops_to(&node, cloud_kill_at).expect("the cloud is killed mid-drain");
    // Anywhere in the life of the next push: before it, in the request, in the transaction.
    std::thread::sleep(Duration::from_millis(rng.below(150)));
    cloud.process.kill_hard();
    eprintln!("sync faults ({name}): cloud killed with {at} events pending");
    cloud = Cloud::start_with(&cloud_dir, None, backend.clone(), &[]).expect("cloud restarts");
    proxy.set_upstream(cloud.addr().expect("addr"));
    let node_kill_at = held * (10 + rng.below(30)) as f64 / 100.0;
    let at = pending_drops_to(&node, node_kill_at).expect("the node is killed mid-drain");
    std::thread::sleep(Duration::from_millis(rng.below(150)));
    node.process.kill_hard();
    eprintln!("sync faults ({name}): node killed with {at} events pending");
    node = Node::start_with_config(&node_dir, &config).expect("node restarts");
    wait_for("the outbox to drain", Duration::from_secs(300), || {
        node.metric(PENDING) == Some(0.0)
    });
    let drained = started.elapsed();
    // Late duplicates are still on their way (up to 1.5 s): let them land before counting.
    std::thread::sleep(Duration::from_secs(2));
    proxy.set_faulty(false);
    let stats = proxy.stats();
    eprintln!(
        "sync faults ({name}): drained in {:.1} s through {stats:?}",
        drained.as_secs_f64()
    );
    assert!(
        stats.cut_requests > 0
            && stats.cut_responses > 0
            && stats.delayed > 0
            && stats.duplicated > 0,
        "every fault was met: {stats:?}"
    );

    // Exactly once, and in sequence order: whatever the cloud took in one push came after
    // everything it took before.
    let db = rusqlite::Connection::open(node_dir.join("data/node.sqlite")).expect("node db");
    let outbox: Vec<(String, Option<String>, i64)> = db
        .prepare("SELECT state, last_error, COUNT(*) FROM outbox GROUP BY state, last_error")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let events = cloud_events(&cloud);
    let seqs: std::collections::BTreeSet<u64> = events.iter().map(|e| e.0).collect();
    let lacking: Vec<u64> = (1..=u64::from(total))
        .filter(|s| !seqs.contains(s))
        .collect();
    assert_eq!(
        events.len(),
        total as usize,
        "events in the cloud; lacking seqs {:?}…; node outbox {outbox:?}",
        &lacking[..lacking.len().min(20)]
    );
    let ids: HashSet<&str> = events.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "an event is stored twice");
    assert!(events.iter().all(|e| e.2 == node_id), "foreign node ids");
    let mut pushes: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for (seq, _, _, received) in &events {
        let span = pushes.entry(*received).or_insert((*seq, *seq));
        *span = (span.0.min(*seq), span.1.max(*seq));
    }
    let spans: Vec<(u64, u64)> = pushes.into_values().collect();
    for pair in spans.windows(2) {
        assert!(
            pair[0].1 < pair[1].0,
            "a push took seq {}..={} after one that took {}..={}",
            pair[1].0,
            pair[1].1,
            pair[0].0,
            pair[0].1
        );
    }
    let mut by_seq: Vec<(u64, String)> = events.into_iter().map(|e| (e.0, e.1)).collect();
    by_seq.sort();
    let local: Vec<(u64, String)> = db
        .prepare("SELECT seq, id FROM events ORDER BY seq")
        .expect("prepare")
        .query_map([], |r| Ok((r.get::<_, i64>(0)?.unsigned_abs(), r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        by_seq, local,
        "the cloud holds the node's events, seq for seq"
    );
    let unsent: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE state <> 'sent'",
            [],
            |r| r.get(0),
        )
        .expect("outbox");
    assert_eq!(unsent, 0, "outbox items pending or dead: {outbox:?}");
    assert!(
        node.admin_list("/api/v1/dead-letters")
            .expect("dead letters")
            .is_empty()
    );
    let (_, nodes) = cloud.admin_get("/api/v1/nodes").expect("nodes");
    let me: Vec<&Value> = nodes["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|n| n["id"] == node_id.as_str())
        .collect();
    assert_eq!(me.len(), 1, "{nodes}");
    assert_eq!(me[0]["watermark"], u64::from(total), "{}", me[0]);
}

#[test]
fn a_day_offline_then_a_faulty_network_and_kills_lose_and_duplicate_nothing_on_sqlite() {
    a_day_offline_then_faults(CloudDb::Sqlite);
}

#[test]
fn a_day_offline_then_a_faulty_network_and_kills_lose_and_duplicate_nothing_on_postgres() {
    a_day_offline_then_faults(
        CloudDb::postgres().expect("a scratch PostgreSQL database (is PostgreSQL running?)"),
    );
}
