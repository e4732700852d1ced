//! Background jobs through the real server on each backend: a job enqueued by the API runs on
//! the server's workers, is retried, answers its unique key, is cancelled and retried by API,
//! waits while its queue is paused, and bad input is refused with nothing stored; and a job
//! whose replica is killed mid-attempt (kill -9) runs again, once, on the next replica; chains
//! and groups run in order; and two cloud processes on one PostgreSQL database work ten
//! thousand jobs, each exactly once.

use std::time::Duration;

use rollcall_tests::{Cloud, CloudDb, on_each_backend, pg_bytes, wait_for};
use serde_json::{Value, json};

fn job(cloud: &Cloud, id: i64) -> Value {
    let (status, j) = cloud.admin_get(&format!("/api/v1/jobs/{id}")).expect("job");
    assert_eq!(status, 200, "{j}");
    j
}

fn enqueue(cloud: &Cloud, body: Value) -> (u16, Value) {
    cloud
        .call(
            "POST",
            "/api/v1/jobs",
            Some(&cloud.admin_token),
            Some(&body),
            None,
        )
        .expect("enqueue")
}

fn wait_state(cloud: &Cloud, id: i64, state: &str) -> Value {
    wait_for(
        &format!("job {id} {state}"),
        Duration::from_secs(30),
        || job(cloud, id)["state"] == state,
    );
    job(cloud, id)
}

#[test]
fn jobs_run_retry_and_are_managed_through_the_api() {
    on_each_backend(&["--job-poll-ms", "50"], |name, cloud, _dir| {
        let t = cloud.admin_token.clone();
        // A probe that fails its first attempt: retried after its back-off, then completed.
        let (status, e) = enqueue(
            cloud,
            json!({ "kind": "probe", "args": { "note": "n1", "fail_attempts": 1 } }),
        );
        assert_eq!(status, 201, "{name}: {e}");
        assert_eq!(e["existing"], false);
        let id = e["job"]["id"].as_i64().expect("id");
        let done = wait_state(cloud, id, "completed");
        assert_eq!(done["attempt"], 2, "{name}: {done}");
        assert_eq!(done["result"], json!({ "note": "n1", "attempt": 2 }));
        let errors = done["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]["error"]
                .as_str()
                .unwrap_or("")
                .contains("first 1 attempts")
        );
        assert!(
            done["request_id"]
                .as_str()
                .is_some_and(|r| r.starts_with("req-"))
        );

        // A unique key: the second enqueue names the first job.
        let later = json!({ "kind": "probe", "args": {}, "unique_key": "nightly:2026-12-04",
                            "scheduled_ms": 4_102_444_800_000_i64 });
        let (s1, first) = enqueue(cloud, later.clone());
        let (s2, second) = enqueue(cloud, later);
        assert_eq!((s1, s2), (201, 200), "{name}");
        assert_eq!(second["existing"], true);
        assert_eq!(first["job"]["id"], second["job"]["id"]);
        let held = first["job"]["id"].as_i64().expect("id");
        // Cancelled, cancelled again (refused), retried now: it runs.
        let cancel = |id: i64| {
            cloud
                .call(
                    "POST",
                    &format!("/api/v1/jobs/{id}/cancel"),
                    Some(&t),
                    None,
                    None,
                )
                .expect("cancel")
        };
        let (status, c) = cancel(held);
        assert_eq!(
            (status, c["state"].as_str()),
            (200, Some("cancelled")),
            "{name}: {c}"
        );
        let (status, p) = cancel(held);
        assert_eq!(
            (status, p["type"].as_str()),
            (409, Some("urn:rollcall:problem:job-finished")),
            "{name}: {p}"
        );
        let (status, r) = cloud
            .call(
                "POST",
                &format!("/api/v1/jobs/{held}/retry"),
                Some(&t),
                None,
                None,
            )
            .expect("retry");
        assert_eq!(status, 200, "{name}: {r}");
        wait_state(cloud, held, "completed");

        // Bad input: a clear problem, nothing stored.
        let (_, before) = cloud.admin_get("/api/v1/jobs").expect("list");
        let count = before["items"].as_array().map(Vec::len);
        for (body, status, kind) in [
            (json!({ "kind": "nope" }), 422, "unknown-job-kind"),
            (
                json!({ "kind": "probe", "args": { "sleep_ms": "soon" } }),
                422,
                "invalid-job-args",
            ),
            (
                json!({ "kind": "probe", "args": { "colour": 1 } }),
                422,
                "invalid-job-args",
            ),
            (
                json!({ "kind": "probe", "priority": 12 }),
                400,
                "bad-request",
            ),
        ] {
            let (got, p) = enqueue(cloud, body.clone());
            assert_eq!(got, status, "{name}: {body} → {p}");
            assert_eq!(
                p["type"],
                format!("urn:rollcall:problem:{kind}"),
                "{name}: {p}"
            );
        }
        let (_, after) = cloud.admin_get("/api/v1/jobs").expect("list");
        assert_eq!(
            after["items"].as_array().map(Vec::len),
            count,
            "{name}: nothing stored"
        );
        let (status, _) = cloud.admin_get("/api/v1/jobs/999999").expect("missing");
        assert_eq!(status, 404);

        // A paused queue starts nothing on any replica; resumed, the job runs.
        let pause = |paused: bool| {
            cloud
                .call(
                    "PUT",
                    "/api/v1/platform/job-queues/default",
                    Some(&t),
                    Some(&json!({ "paused": paused })),
                    None,
                )
                .expect("pause")
                .0
        };
        assert_eq!(pause(true), 204);
        let (_, e) = enqueue(cloud, json!({ "kind": "probe" }));
        let waiting = e["job"]["id"].as_i64().expect("id");
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(job(cloud, waiting)["state"], "available", "{name}: paused");
        }
        assert_eq!(pause(false), 204);
        wait_state(cloud, waiting, "completed");
        let (status, _) = cloud
            .call(
                "PUT",
                "/api/v1/platform/job-queues/nowhere",
                Some(&t),
                Some(&json!({ "paused": true })),
                None,
            )
            .expect("pause");
        assert_eq!(status, 404);

        let (_, listed) = cloud
            .admin_get("/api/v1/jobs?state=completed&kind=probe")
            .expect("list");
        assert_eq!(
            listed["items"].as_array().map(Vec::len),
            Some(3),
            "{name}: {listed}"
        );

        // The metrics count the attempts by how they ended, and the queue's depth.
        let metrics = cloud.metrics().expect("metrics");
        for line in [
            "rollcall_cloud_job_attempts_total{queue=\"default\",kind=\"probe\",outcome=\"completed\"} 3",
            "rollcall_cloud_job_attempts_total{queue=\"default\",kind=\"probe\",outcome=\"retried\"} 1",
            "rollcall_cloud_job_wait_seconds_count{queue=\"default\"} 4",
            "rollcall_cloud_job_run_seconds_count{queue=\"default\",kind=\"probe\"} 4",
            "rollcall_cloud_job_queue_depth{queue=\"default\",state=\"running\"} 0",
            "rollcall_cloud_job_queue_depth{queue=\"maintenance\",state=\"available\"}",
        ] {
            assert!(metrics.contains(line), "{name}: no {line} in\n{metrics}");
        }
    });
}

#[test]
fn a_chain_and_a_group_run_in_order_through_the_api() {
    on_each_backend(&["--job-poll-ms", "50"], |name, cloud, _dir| {
        let id = |e: &Value| e["job"]["id"].as_i64().expect("id");
        // A chain: b waits for a, which takes a while; b is not started before a completed.
        let (status, a) = enqueue(
            cloud,
            json!({ "kind": "probe", "args": { "note": "a", "sleep_ms": 500 } }),
        );
        assert_eq!(status, 201, "{name}: {a}");
        let (status, b) = enqueue(
            cloud,
            json!({ "kind": "probe", "args": { "note": "b" }, "waits": { "jobs": [id(&a)] } }),
        );
        assert_eq!(status, 201, "{name}: {b}");
        assert_eq!(
            b["job"]["waits"],
            json!({ "jobs": [id(&a)], "until": "succeeded" })
        );
        wait_state(cloud, id(&a), "running");
        assert_eq!(job(cloud, id(&b))["state"], "available", "{name}: b waits");
        let a_done = wait_state(cloud, id(&a), "completed");
        let b_done = wait_state(cloud, id(&b), "completed");
        assert!(b_done["started_ms"].as_i64() >= a_done["finished_ms"].as_i64());
        assert_eq!(
            b_done["result"]["waited"],
            json!({ id(&a).to_string(): "completed" }),
            "{name}"
        );
        // A group with a member that always fails, and a callback told how each ended.
        let (_, ok) = enqueue(cloud, json!({ "kind": "probe", "args": { "note": "ok" } }));
        let (_, bad) = enqueue(
            cloud,
            json!({ "kind": "probe", "args": { "note": "bad", "fail_attempts": 9 } }),
        );
        let (status, callback) = enqueue(
            cloud,
            json!({ "kind": "probe", "args": { "note": "callback" },
                    "waits": { "jobs": [id(&ok), id(&bad)], "until": "finished" } }),
        );
        assert_eq!(status, 201, "{name}: {callback}");
        let (_, step) = enqueue(
            cloud,
            json!({ "kind": "probe", "waits": { "jobs": [id(&bad)] } }),
        );
        // `bad` is retried with back-off until its last attempt; cancel it to end it now.
        let (status, _) = cloud
            .call(
                "POST",
                &format!("/api/v1/jobs/{}/cancel", id(&bad)),
                Some(&cloud.admin_token),
                None,
                None,
            )
            .expect("cancel");
        assert_eq!(status, 200, "{name}");
        let done = wait_state(cloud, id(&callback), "completed");
        assert_eq!(
            done["result"]["waited"],
            json!({ id(&ok).to_string(): "completed", id(&bad).to_string(): "cancelled" }),
            "{name}: {done}"
        );
        let skipped = wait_state(cloud, id(&step), "discarded");
        assert!(
            skipped["errors"][0]["error"]
                .as_str()
                .is_some_and(|e| e.contains(&format!("job {}", id(&bad)))),
            "{name}: {skipped}"
        );
        // Waits on no job, or on one that is not the tenant's: 422, nothing stored.
        let (_, before) = cloud.admin_get("/api/v1/jobs?limit=100").expect("list");
        for (waits, problem) in [
            (json!({ "jobs": [] }), "invalid-job-waits"),
            (
                json!({ "jobs": [id(&a), 987_654_321] }),
                "unknown-awaited-job",
            ),
        ] {
            let (status, p) = enqueue(cloud, json!({ "kind": "probe", "waits": waits }));
            assert_eq!(status, 422, "{name}: {p}");
            assert!(
                p["type"].as_str().is_some_and(|t| t.ends_with(problem)),
                "{name}: {p}"
            );
        }
        let (_, after) = cloud.admin_get("/api/v1/jobs?limit=100").expect("list");
        assert_eq!(before["items"], after["items"], "{name}: nothing stored");
    });
}

#[test]
fn a_job_whose_replica_is_killed_runs_again_once_on_the_next() {
    for backend in CloudDb::both().expect("backends") {
        let name = backend.name();
        let dir = tempfile::tempdir().expect("tempdir");
        let args = ["--job-lease-ms", "1000", "--job-poll-ms", "50"];
        let mut first = Cloud::start_with(&dir.path().join("cloud"), None, backend.clone(), &args)
            .expect("first replica");
        let (status, e) = enqueue(
            &first,
            json!({ "kind": "probe", "args": { "note": "k", "sleep_ms": 3000 } }),
        );
        assert_eq!(status, 201, "{name}: {e}");
        let id = e["job"]["id"].as_i64().expect("id");
        wait_state(&first, id, "running");
        first.process.kill_hard();
        let second = Cloud::start_with(&dir.path().join("cloud"), None, backend, &args)
            .expect("second replica");
        let done = wait_state(&second, id, "completed");
        assert_eq!(done["attempt"], 2, "{name}: {done}");
        assert_eq!(
            done["result"],
            json!({ "note": "k", "attempt": 2 }),
            "{name}"
        );
        let errors = done["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 1, "{name}: {done}");
        assert_eq!(
            errors[0]["rescued"], true,
            "{name}: the killed attempt is recorded as rescued"
        );
        assert_eq!(errors[0]["attempt"], 1);
    }
}

/// One number `sql` returns, read past the server (and its row-level security).
fn pg_number(db: &rollcall_tests::scratch::ScratchDatabase, sql: &str) -> i64 {
    let rows = pg_bytes(db, &format!("SELECT convert_to(({sql})::text, 'UTF8')")).expect(sql);
    let text = String::from_utf8(rows[0].clone()).expect("utf-8");
    text.parse().expect("a number")
}

#[test]
fn two_cloud_processes_on_one_postgres_work_ten_thousand_jobs_each_exactly_once() {
    const JOBS: usize = 10_000;
    const BATCH: usize = 1_000;
    let backend = CloudDb::postgres().expect("a scratch PostgreSQL database");
    let CloudDb::Postgres(db) = backend.clone() else {
        unreachable!("asked for PostgreSQL")
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let args = [
        "--job-poll-ms",
        "200",
        "--job-concurrency",
        "8",
        "--job-tenant-cap",
        "16",
    ];
    let (one, two) = Cloud::two_replicas(dir.path(), backend, &args).expect("two replicas");
    // Enqueued in batches through both replicas, while both already work.
    for b in 0..JOBS / BATCH {
        let cloud = if b % 2 == 0 { &one } else { &two };
        let jobs: Vec<Value> = (0..BATCH)
            .map(|i| json!({ "kind": "probe", "args": { "note": format!("n{}", b * BATCH + i) } }))
            .collect();
        let (status, done) = cloud
            .call(
                "POST",
                "/api/v1/jobs/batch",
                Some(&cloud.admin_token),
                Some(&json!({ "jobs": jobs })),
                None,
            )
            .expect("batch");
        assert_eq!(status, 201, "{done}");
        assert_eq!(done["jobs"].as_array().map(Vec::len), Some(BATCH));
    }
    wait_for("every job final", Duration::from_secs(600), || {
        pg_number(
            &db,
            "SELECT count(*) FROM jobs WHERE kind = 'probe' \
                 AND state NOT IN ('completed', 'cancelled', 'discarded')",
        ) == 0
    });
    let n = JOBS as i64;
    assert_eq!(
        pg_number(
            &db,
            "SELECT count(*) FROM jobs WHERE kind = 'probe' AND state = 'completed'"
        ),
        n,
        "none lost"
    );
    assert_eq!(
        pg_number(&db, "SELECT count(*) FROM job_probe_runs"),
        n,
        "one side effect each"
    );
    assert_eq!(
        pg_number(&db, "SELECT count(DISTINCT job_id) FROM job_probe_runs"),
        n,
        "none twice"
    );
    assert_eq!(
        pg_number(
            &db,
            "SELECT count(DISTINCT split_part(worker, ':', 1)) FROM jobs WHERE kind = 'probe'"
        ),
        2,
        "both processes worked the queue"
    );
    let retried = pg_number(
        &db,
        "SELECT count(*) FROM jobs WHERE kind = 'probe' AND attempt > 1",
    );
    eprintln!("{retried} of {JOBS} jobs needed a second attempt");
}

/// The id of the platform schedule `name`, and the list it was found in.
fn platform_schedule(cloud: &Cloud, name: &str) -> (i64, Value) {
    let (status, list) = cloud
        .admin_get("/api/v1/platform/job-schedules")
        .expect("platform schedules");
    assert_eq!(status, 200, "{list}");
    let id = list["items"]
        .as_array()
        .and_then(|items| items.iter().find(|s| s["name"] == name))
        .and_then(|s| s["id"].as_i64())
        .unwrap_or_else(|| panic!("no platform schedule {name}: {list}"));
    (id, list)
}

#[test]
fn schedules_are_managed_through_the_api_and_the_platform_runs_its_own() {
    on_each_backend(&["--job-poll-ms", "50"], |name, cloud, _dir| {
        let t = cloud.admin_token.clone();
        let call = |method: &str, path: &str, body: Option<Value>| {
            cloud
                .call(method, path, Some(&t), body.as_ref(), None)
                .expect("request")
        };
        // Bad input: a clear problem each, nothing stored.
        for (body, status, problem, says) in [
            (
                json!({ "name": "m", "cron": "61 * * * *", "kind": "probe" }),
                422,
                "invalid-schedule",
                "minute: 61",
            ),
            (
                json!({ "name": "m", "cron": "@daily", "time_zone": "Mars/Base", "kind": "probe" }),
                422,
                "invalid-schedule",
                "Mars/Base",
            ),
            (
                json!({ "name": "m", "cron": "0 0 31 2 *", "kind": "probe" }),
                422,
                "invalid-schedule",
                "no month",
            ),
            (
                json!({ "name": "m", "cron": "@daily", "kind": "maintenance.purge" }),
                422,
                "unknown-job-kind",
                "probe",
            ),
            (
                json!({ "name": "m", "cron": "@daily", "kind": "probe", "args": { "bogus": 1 } }),
                422,
                "invalid-job-args",
                "bogus",
            ),
            (
                json!({ "name": " m", "cron": "@daily", "kind": "probe" }),
                400,
                "bad-request",
                "name",
            ),
        ] {
            let (s, p) = call("POST", "/api/v1/job-schedules", Some(body.clone()));
            assert_eq!(s, status, "{name}: {body} → {p}");
            assert!(
                p["type"].as_str().is_some_and(|t| t.ends_with(problem)),
                "{name}: {p}"
            );
            assert!(
                p["detail"].as_str().is_some_and(|d| d.contains(says)),
                "{name}: {p}"
            );
        }
        let (_, none) = call("GET", "/api/v1/job-schedules", None);
        assert_eq!(none["items"], json!([]), "{name}: nothing stored");

        // Made, shown with its next run in its zone; a second of the name is refused.
        let morning = json!({ "name": "morning", "cron": "0 6 * * mon-fri",
                              "time_zone": "Europe/Berlin", "kind": "probe",
                              "args": { "note": "sched" } });
        let (s, made) = call("POST", "/api/v1/job-schedules", Some(morning.clone()));
        assert_eq!(s, 201, "{name}: {made}");
        let id = made["id"].as_i64().expect("id");
        let next = made["next_run"].as_str().expect("next run");
        assert!(next.contains("T06:00:00+0"), "{name}: {made}");
        assert_eq!(made["missed"], "run_once");
        let (s, p) = call("POST", "/api/v1/job-schedules", Some(morning));
        assert_eq!(s, 409, "{name}: {p}");
        assert!(
            p["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("schedule-exists"))
        );

        // Changed: paused, then a new expression; a bad one changes nothing.
        let path = format!("/api/v1/job-schedules/{id}");
        let (s, paused) = call("PATCH", &path, Some(json!({ "paused": true })));
        assert_eq!(
            (s, &paused["paused"]),
            (200, &json!(true)),
            "{name}: {paused}"
        );
        let (s, p) = call("PATCH", &path, Some(json!({ "cron": "* * * * * *" })));
        assert_eq!(s, 422, "{name}: {p}");
        let (s, changed) = call(
            "PATCH",
            &path,
            Some(json!({ "cron": "*/5 * * * *", "paused": false })),
        );
        assert_eq!(s, 200, "{name}: {changed}");
        assert_eq!(changed["cron"], "*/5 * * * *");
        assert_eq!(changed["paused"], false);
        assert!(
            changed["next_run_ms"].as_i64() < made["next_run_ms"].as_i64().map(|n| n + 1),
            "{name}: {changed}"
        );

        // Run now: its job runs with its arguments.
        let (s, run) = call("POST", &format!("{path}/run"), None);
        assert_eq!(s, 201, "{name}: {run}");
        let job_id = run["job"]["id"].as_i64().expect("job id");
        let done = wait_state(cloud, job_id, "completed");
        assert_eq!(done["result"]["note"], "sched", "{name}: {done}");

        // Deleted: gone.
        assert_eq!(call("DELETE", &path, None).0, 204);
        assert_eq!(call("GET", &path, None).0, 404);
        assert_eq!(call("DELETE", &path, None).0, 404);
        assert_eq!(call("GET", "/api/v1/job-schedules/abc", None).0, 404);

        // The platform's own schedules: the purge and the pruner, hourly.
        let (purge, list) = platform_schedule(cloud, "purge-expired");
        let (prune, _) = platform_schedule(cloud, "prune-jobs");
        assert!(
            list.to_string().contains("maintenance.purge"),
            "{name}: {list}"
        );
        let (s, run) = call(
            "POST",
            &format!("/api/v1/platform/job-schedules/{purge}/run"),
            None,
        );
        assert_eq!(s, 201, "{name}: {run}");
        wait_for("the purge to finish", Duration::from_secs(30), || {
            cloud.process.log_text().contains("purge finished")
        });
        // The pruner told to keep completed jobs no time: the job run above (and its result) goes.
        let (s, p) = call(
            "PATCH",
            &format!("/api/v1/platform/job-schedules/{prune}"),
            Some(json!({ "args": { "completed_s": 0 } })),
        );
        assert_eq!(s, 200, "{name}: {p}");
        let (s, p) = call(
            "PATCH",
            &format!("/api/v1/platform/job-schedules/{prune}"),
            Some(json!({ "args": { "completed": 0 } })),
        );
        assert_eq!(s, 422, "{name}: {p}");
        assert_eq!(
            call(
                "POST",
                &format!("/api/v1/platform/job-schedules/{prune}/run"),
                None
            )
            .0,
            201
        );
        wait_for(
            "the pruner to delete the finished job",
            Duration::from_secs(30),
            || {
                cloud
                    .admin_get(&format!("/api/v1/jobs/{job_id}"))
                    .is_ok_and(|(s, _)| s == 404)
            },
        );
    });
}
