//! Process lifecycle of the real binaries: clean shutdown on SIGTERM, and config errors that
//! name the file, the key and the reason.

use std::{process::Command, time::Duration};

use rollcall_tests::{Cloud, CloudDb, Node, NodeOptions, bin_path, wait_for};

#[test]
fn both_servers_stop_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cloud = Cloud::start(&dir.path().join("cloud"), None).expect("cloud starts");
    let (_id, token) = cloud.register_node("hq").expect("registered");
    let mut node = Node::start(
        &dir.path().join("node"),
        &NodeOptions::synced(&cloud.url, token),
    )
    .expect("node starts");

    let status = node
        .process
        .stop(Duration::from_secs(20))
        .expect("node stopped by itself");
    assert!(
        status.success(),
        "node exit: {status}\n{}",
        node.process.log_text()
    );
    let log = node.process.log_text();
    assert!(
        log.contains("sync client stopped") && log.contains("rollcall-node stopped"),
        "{log}"
    );

    let status = cloud
        .process
        .stop(Duration::from_secs(20))
        .expect("cloud stopped by itself");
    assert!(status.success(), "cloud exit: {status}");
    assert!(cloud.process.log_text().contains("rollcall-cloud stopped"));
}

/// SIGTERM while the hourly purge is deleting: the cloud waits for the step under way (here held
/// up by a lock the test takes on the table), starts no other, and exits 0 — the purge is a job
/// of the workers the supervisor stops and awaits, not a task cut off mid-transaction.
#[test]
fn sigterm_during_a_purge_waits_for_it_and_exits_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = CloudDb::postgres().expect("a scratch PostgreSQL database (is PostgreSQL running?)");
    let CloudDb::Postgres(scratch) = &db else {
        unreachable!("postgres() makes a PostgreSQL database")
    };
    let admin_url = scratch.admin_url_here();
    // First start: the schema is made, then the cloud stops.
    let mut first = Cloud::start_on(&dir.path().join("first"), None, db.clone()).expect("cloud");
    assert!(
        first
            .process
            .stop(Duration::from_secs(20))
            .is_some_and(|s| s.success())
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let pg = runtime.block_on(async {
        let (client, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
            .await
            .expect("admin connection");
        tokio::spawn(conn);
        // SHARE blocks the purge's DELETE (ROW EXCLUSIVE) and nothing that only reads.
        client
            .batch_execute("BEGIN; LOCK TABLE browser_sessions IN SHARE MODE")
            .await
            .expect("lock");
        client
    });
    // The second start has a log of its own, and the key the first sealed the database with.
    let second = dir.path().join("second");
    std::fs::create_dir_all(&second).expect("second dir");
    std::fs::copy(
        dir.path().join("first").join("master.key"),
        second.join("master.key"),
    )
    .expect("master key");
    let mut cloud = Cloud::start_on(&second, None, db.clone()).expect("cloud");
    // The platform's hourly purge, run now.
    let (_, schedules) = cloud
        .admin_get("/api/v1/platform/job-schedules")
        .expect("platform schedules");
    let purge = schedules["items"]
        .as_array()
        .and_then(|items| items.iter().find(|s| s["name"] == "purge-expired"))
        .and_then(|s| s["id"].as_i64())
        .expect("the purge-expired schedule");
    let (status, run) = cloud
        .call(
            "POST",
            &format!("/api/v1/platform/job-schedules/{purge}/run"),
            Some(&cloud.admin_token),
            None,
            None,
        )
        .expect("run the purge");
    assert_eq!(status, 201, "{run}");
    let blocked = || {
        runtime.block_on(async {
            // A backend waiting for the purge's lock (pg_stat_activity may still show the
            // previous statement while the DELETE is being parsed, which is where it waits).
            pg.query_one(
                "SELECT count(*) FROM pg_locks
                  WHERE relation = 'browser_sessions'::regclass AND mode = 'RowExclusiveLock'
                    AND NOT granted",
                &[],
            )
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0)
                > 0
        })
    };
    wait_for(
        "the purge blocked on the lock",
        Duration::from_secs(30),
        blocked,
    );

    let log = cloud.process.log_path().to_owned();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    std::thread::scope(|s| {
        let stopping = s.spawn(|| cloud.process.stop(Duration::from_secs(60)));
        wait_for("the shutdown to begin", Duration::from_secs(20), || {
            read_log().contains("stopping background tasks")
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !stopping.is_finished(),
            "the cloud exited with its purge still waiting:\n{}",
            read_log()
        );
        runtime
            .block_on(pg.batch_execute("ROLLBACK"))
            .expect("unlock");
        let status = stopping.join().expect("stopper");
        assert!(
            status.is_some_and(|s| s.success()),
            "exit {status:?}\n{}",
            read_log()
        );
    });
    let text = read_log();
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("`{needle}` not logged:\n{text}"))
    };
    assert!(
        at("purge stopped by shutdown") < at("rollcall-cloud stopped"),
        "{text}"
    );
    assert!(
        !text.contains("purge finished"),
        "no other step started:\n{text}"
    );
}

#[test]
fn config_check_reports_file_key_and_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = NodeOptions::standalone();
    let good = Node::write_config(dir.path(), &opts, "127.0.0.1:0").expect("config");
    let out = Command::new(bin_path("rollcall-node").expect("built"))
        .args(["config", "check"])
        .arg(&good)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("site            hq"));

    let text = std::fs::read_to_string(&good).expect("read");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, text.replace("radius_m = 150", "radius_m = -5")).expect("write");
    let out = Command::new(bin_path("rollcall-node").expect("built"))
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml")
            && err.contains("geofence[0] (main-gate)")
            && err.contains("radius -5"),
        "{err}"
    );
}

#[test]
fn the_node_refuses_to_start_without_its_models() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = NodeOptions::standalone();
    let config = Node::write_config(dir.path(), &opts, "127.0.0.1:0").expect("config");
    let out = Command::new(bin_path("rollcall-node").expect("built"))
        .args(["run", "--config"])
        .arg(&config)
        .env("ROLLCALL_HOME", dir.path().join("empty-model-store"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cargo xtask fetch"), "{err}");
}
