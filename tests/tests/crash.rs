//! Crash safety: check-ins run in a loop while the node is `kill -9`ed at random moments and
//! restarted, again and again. Every check-in that got an answer must be in the database
//! exactly once, every event must have its outbox row (and no row its event missing), the
//! sequence numbers must have no gaps, and SQLite's integrity check must pass.
//!
//! `ROLLCALL_CRASH_KILLS` sets the number of kills (default 200); `ROLLCALL_CRASH_SEED`
//! replays the kill timings of an earlier run (the seed is printed).

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use base64::Engine as _;
use rollcall_tests::{AT_GATE, Node, NodeOptions, Rng, sample_photo};
use serde_json::{Value, json};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one round's client saw: the events it was told about, and requests cut by the kill.
#[derive(Default)]
struct Seen {
    answered: Vec<String>,
    cut: usize,
}

/// Posts check-ins to `url` back to back until `stop`, cycling through `bodies`.
fn check_in_loop(url: &str, bodies: &[Value], stop: &AtomicBool) -> Seen {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut seen = Seen::default();
    for body in bodies.iter().cycle() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let answer = client
            .post(format!("{url}/api/v1/checkins"))
            .json(body)
            .send()
            .and_then(|r| Ok((r.status().as_u16(), r.json::<Value>()?)));
        match answer {
            Ok((200, v)) => seen
                .answered
                .push(v["event_id"].as_str().expect("event id").to_owned()),
            Ok((status, v)) => panic!("check-in answered {status}: {v}"),
            Err(_) => seen.cut += 1,
        }
    }
    seen
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let kills: usize = env_or("ROLLCALL_CRASH_KILLS", 200);
    let seed: u64 = env_or("ROLLCALL_CRASH_SEED", Rng::clock_seed());
    eprintln!("crash test: {kills} kills, ROLLCALL_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let node_dir = dir.path().join("node");
    let photo = |name: &str| sample_photo(name).unwrap_or_else(|e| panic!("{e}"));
    let node = Node::start(&node_dir, &NodeOptions::standalone()).expect("node starts");
    node.enrol("obama", "Barack Obama", &photo("sample-obama"))
        .expect("enrolled");
    let config = node.config.clone();
    let (lat, lon, accuracy_m) = AT_GATE;
    let bodies: Vec<Value> = ["sample-obama2", "sample-biden", "sample-obama3"]
        .iter()
        .map(|name| {
            json!({
                "image_base64": base64::engine::general_purpose::STANDARD.encode(photo(name)),
                "position": { "lat": lat, "lon": lon, "accuracy_m": accuracy_m },
            })
        })
        .collect();

    let started = Instant::now();
    let (mut answered, mut cut) = (Vec::new(), 0);
    let mut node = Some(node);
    for round in 0..kills {
        let mut running = match node.take() {
            Some(n) => n,
            None => Node::start_with_config(&node_dir, &config)
                .unwrap_or_else(|e| panic!("restart after kill {round}: {e}")),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let client = {
            let (url, bodies, stop) = (running.url.clone(), bodies.clone(), stop.clone());
            std::thread::spawn(move || check_in_loop(&url, &bodies, &stop))
        };
        // Anywhere from right after start-up to a few check-ins in.
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        running.process.kill_hard();
        stop.store(true, Ordering::Relaxed);
        let seen = client.join().expect("client thread");
        answered.extend(seen.answered);
        cut += seen.cut;
    }
    eprintln!(
        "crash test: {kills} kills in {:.0} s, {} check-ins answered, {cut} cut by a kill",
        started.elapsed().as_secs_f64(),
        answered.len()
    );
    assert!(
        answered.len() >= kills / 4,
        "too few check-ins were answered ({}) for the kills to mean anything",
        answered.len()
    );
    assert!(cut > 0, "no kill ever landed on a check-in in flight");

    let db = rusqlite::Connection::open(node_dir.join("data/node.sqlite")).expect("open db");
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(integrity, "ok");
    let mut once = db
        .prepare("SELECT COUNT(*) FROM events WHERE id = ?1")
        .expect("prepare");
    for id in &answered {
        let n: i64 = once.query_row([id], |r| r.get(0)).expect("count");
        assert_eq!(n, 1, "answered event {id} is stored {n} times");
    }
    assert_eq!(
        answered.iter().collect::<HashSet<_>>().len(),
        answered.len(),
        "two answers named the same event"
    );
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).expect(sql) };
    let events = count("SELECT COUNT(*) FROM events");
    assert!(events >= answered.len() as i64);
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM events e LEFT JOIN outbox o ON o.seq = e.seq WHERE o.seq IS NULL"
        ),
        0,
        "events without their outbox row"
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM outbox o LEFT JOIN events e ON e.seq = o.seq WHERE e.seq IS NULL"
        ),
        0,
        "outbox rows without their event"
    );
    assert_eq!(
        count("SELECT MAX(seq) - MIN(seq) + 1 FROM events"),
        events,
        "sequence numbers have gaps"
    );
    drop(once);
    drop(db);

    // And the node still starts on the file and lists what it holds.
    let node = Node::start_with_config(&node_dir, &config).expect("restart at the end");
    let listed = node.get("/api/v1/people").map(|r| r.status().as_u16());
    assert!(matches!(listed, Ok(401)), "serving: {listed:?}");
    let (status, _) = node
        .check_in(&photo("sample-obama"), Some(AT_GATE))
        .expect("check-in");
    assert_eq!(status, 200);
}
