//! The demo's background-jobs step: a chain of two jobs enqueued through the cloud's API (the
//! second waits for the first), run by the cloud's workers one after the other, and the
//! platform's own schedules with their next run.

use std::time::{Duration, Instant};

use rollcall_tests::Cloud;
use serde_json::{Value, json};

fn enqueue(cloud: &Cloud, body: &Value) -> anyhow::Result<i64> {
    let (status, e) = cloud.call(
        "POST",
        "/api/v1/jobs",
        Some(&cloud.admin_token),
        Some(body),
        None,
    )?;
    anyhow::ensure!(status == 201, "enqueueing a job: {status} {e}");
    e["job"]["id"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no job id in {e}"))
}

/// Runs the step, adding what went wrong to `wrong`.
pub fn run(cloud: &Cloud, wrong: &mut Vec<String>) -> anyhow::Result<()> {
    println!("\n== background jobs");
    let first = enqueue(
        cloud,
        &json!({ "kind": "probe", "args": { "note": "first step", "sleep_ms": 200 } }),
    )?;
    let second = enqueue(
        cloud,
        &json!({ "kind": "probe", "args": { "note": "second step" },
                 "waits": { "jobs": [first] } }),
    )?;
    let t = Instant::now();
    let mut jobs = (Value::Null, Value::Null);
    while t.elapsed() < Duration::from_secs(30) {
        jobs = (
            cloud.admin_get(&format!("/api/v1/jobs/{first}"))?.1,
            cloud.admin_get(&format!("/api/v1/jobs/{second}"))?.1,
        );
        if jobs.1["state"] == "completed" || jobs.1["state"] == "discarded" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for j in [&jobs.0, &jobs.1] {
        let took = j["finished_ms"].as_i64().zip(j["started_ms"].as_i64());
        println!(
            "  job {} ({}, \"{}\") {} on attempt {}{}",
            j["id"],
            j["kind"].as_str().unwrap_or("?"),
            j["args"]["note"].as_str().unwrap_or(""),
            j["state"].as_str().unwrap_or("?"),
            j["attempt"],
            took.map_or(String::new(), |(f, s)| format!(", ran {} ms", f - s)),
        );
    }
    let in_order = jobs.1["started_ms"].as_i64() >= jobs.0["finished_ms"].as_i64();
    if jobs.1["state"] != "completed" || !in_order {
        wrong.push(format!(
            "the chained jobs did not run one after the other: {} / {}",
            jobs.0, jobs.1
        ));
    } else {
        println!("  job {second} waited for job {first} and started after it finished");
    }
    let (_, schedules) = cloud.admin_get("/api/v1/platform/job-schedules")?;
    for s in schedules["items"].as_array().into_iter().flatten() {
        println!(
            "  platform schedule {:<14} {:<12} {}, next run {}",
            s["name"].as_str().unwrap_or("?"),
            s["cron"].as_str().unwrap_or("?"),
            s["time_zone"].as_str().unwrap_or("?"),
            s["next_run"].as_str().unwrap_or("?"),
        );
    }
    Ok(())
}
