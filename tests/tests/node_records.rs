//! A node's other streams reach the cloud, on SQLite and PostgreSQL: the alarms of the site's
//! hardware (a real OSDP peripheral forces the door and trips its tamper switch) and the node's
//! audit log (a person deleted at the node) arrive once each, with the node and site they came
//! from, and the admins list them with filters and paging. Pushed by hand, bad records are
//! refused one by one without blocking the rest, a replay changes nothing, and a push of more
//! than 1000 items of all streams together is refused whole.

use std::time::Duration;

use rollcall_tests::{Cloud, NodeOptions, node_on_reader, on_each_backend, sample_photo, wait_for};
use serde_json::{Value, json};

fn admin(cloud: &Cloud, path: &str) -> Value {
    let (status, body) = cloud.admin_get(path).expect("request");
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn items(body: &Value) -> Vec<Value> {
    body["items"].as_array().cloned().unwrap_or_default()
}

fn cloud_metrics(cloud: &Cloud) -> String {
    cloud.metrics().unwrap_or_default()
}

#[test]
fn alarms_and_the_node_audit_log_reach_the_cloud() {
    on_each_backend(&[], |backend, cloud, dir| {
        let (node_id, token) = cloud.register_node("hq").expect("registered");
        let opts = NodeOptions {
            door: Some((0, 2)),
            ..NodeOptions::synced(&cloud.url, token)
        };
        let Some((mut peer, node)) = node_on_reader(dir, opts) else {
            return;
        };
        // The door opens with no grant (forced), closes (secured); then the tamper switch.
        peer.set_inputs(101, &[1, 0]).expect("door open");
        wait_for("the forced alarm", Duration::from_secs(20), || {
            node.has_metric("rollcall_node_door_alarms_total{kind=\"forced\"} 1")
        });
        peer.set_inputs(101, &[0, 0]).expect("door closed");
        peer.set_local_status(101, true, false).expect("tamper");
        wait_for("the tamper alarm", Duration::from_secs(20), || {
            node.has_metric("rollcall_node_tamper_alarms_total 1")
        });
        // An installer deletes someone at the node: a line of its audit log.
        let photo = sample_photo("sample-obama").expect("photo");
        node.enrol("obama", "Barack Obama", &photo)
            .expect("enrolled");
        let (status, body) = node.http_delete("/api/v1/people/obama").expect("delete");
        assert!(status < 300, "{body}");

        let mut alarms = Vec::new();
        wait_for("the alarms in the cloud", Duration::from_secs(30), || {
            alarms = items(&admin(cloud, "/api/v1/alarms"));
            alarms.len() >= 3
        });
        let kinds: Vec<&str> = alarms.iter().filter_map(|a| a["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            ["tamper", "door_secured", "door_forced"],
            "{backend}: newest first, each once: {alarms:?}"
        );
        for a in &alarms {
            assert_eq!(
                (&a["node_id"], &a["site_id"], &a["pd"]),
                (&json!(node_id), &json!("hq"), &json!(101)),
                "{a}"
            );
            assert!(
                a["received_ms"].as_i64() >= a["node_time_ms"].as_i64(),
                "{a}"
            );
        }
        let seqs: Vec<_> = alarms.iter().filter_map(|a| a["seq"].as_u64()).collect();
        assert_eq!(seqs, [3, 2, 1], "{backend}: the node's alarm sequence");
        // Filters and paging.
        let tamper = items(&admin(cloud, "/api/v1/alarms?kind=tamper"));
        assert_eq!(tamper.len(), 1, "{backend}");
        assert!(items(&admin(cloud, "/api/v1/alarms?site_id=annex")).is_empty());
        assert_eq!(
            items(&admin(cloud, &format!("/api/v1/alarms?node_id={node_id}"))).len(),
            3
        );
        let mut paged = Vec::new();
        let mut path = "/api/v1/alarms?limit=2".to_owned();
        loop {
            let page = admin(cloud, &path);
            paged.extend(items(&page));
            match page["next"].as_str() {
                Some(next) => path = format!("/api/v1/alarms?limit=2&cursor={next}"),
                None => break,
            }
        }
        assert_eq!(paged, alarms, "{backend}: pages of 2 give the same list");
        let (status, p) = cloud
            .admin_get("/api/v1/alarms?cursor=garbage")
            .expect("request");
        assert_eq!(status, 400, "{p}");
        // A time window (node time) holds only what was raised in it.
        let forced = alarms[2]["node_time_ms"].as_i64().expect("time");
        let first = items(&admin(
            cloud,
            &format!("/api/v1/alarms?from_ms={forced}&to_ms={}", forced + 1),
        ));
        assert!(
            first.iter().all(|a| a["node_time_ms"] == forced)
                && first.iter().any(|a| a["kind"] == "door_forced"),
            "{backend}: {first:?}"
        );
        let (status, p) = cloud
            .admin_get(&format!("/api/v1/alarms?from_ms={forced}&to_ms={forced}"))
            .expect("request");
        assert_eq!(status, 400, "{p}");

        let mut audit = Vec::new();
        wait_for(
            "the node's audit log in the cloud",
            Duration::from_secs(30),
            || {
                audit = items(&admin(cloud, &format!("/api/v1/nodes/{node_id}/audit")));
                audit.iter().any(|l| l["action"] == "person.deleted")
            },
        );
        let deleted = audit
            .iter()
            .find(|l| l["action"] == "person.deleted")
            .expect("the deletion");
        assert_eq!(deleted["subject"], "obama", "{deleted}");
        assert!(
            deleted["detail"]
                .as_str()
                .is_some_and(|d| d.contains("Barack Obama")),
            "{deleted}"
        );
        let (status, _) = cloud
            .admin_get("/api/v1/nodes/no-such-node/audit")
            .expect("request");
        assert_eq!(status, 404);

        wait_for(
            "the node's record outbox to drain",
            Duration::from_secs(20),
            || node.has_metric("rollcall_node_outbox_records_pending 0"),
        );
        assert!(node.has_metric("rollcall_node_outbox_records_dead 0"));
        let metrics = cloud_metrics(cloud);
        for kind in ["door_forced", "door_secured", "tamper"] {
            assert!(
                metrics.contains(&format!("rollcall_cloud_alarms_total{{kind=\"{kind}\"}} 1")),
                "{backend}: {kind} counted once"
            );
        }
    });
}

fn alarm(n: u32, kind: &str) -> Value {
    json!({
        "id": format!("01HZZZZZZZZZZZZZZZZZZZA{n:03}"), "seq": n, "kind": kind, "pd": 0,
        "detail": "door 1", "node_time_ms": 1_700_000_000_000i64 + i64::from(n),
    })
}

fn event(n: u32) -> Value {
    json!({
        "id": format!("01HZZZZZZZZZZZZZZZZZZZ{n:04}"), "seq": n, "site_id": "hq",
        "person_id": null, "decision": "denied", "similarity": null, "risk_score": 0.0,
        "reasons": [], "position": null, "node_time_ms": 1_700_000_000_000i64 + i64::from(n),
    })
}

#[test]
fn bad_alarm_and_audit_records_are_refused_one_by_one() {
    on_each_backend(&[], |backend, cloud, _dir| {
        let (node_id, token) = cloud.register_node("hq").expect("registered");
        let push = |body: Value| {
            cloud
                .call("POST", "/api/v1/sync/push", Some(&token), Some(&body), None)
                .expect("push")
        };
        let line = json!({
            "id": "01HZZZZZZZZZZZZZZZZZZZV001", "seq": 1, "actor": "admin",
            "action": "person.deleted", "subject": "p1", "detail": "", "node_time_ms": 1,
        });
        let batch = json!({
            "protocol": 1,
            "events": [event(1)],
            "alarms": [alarm(1, "door_forced"), alarm(2, "Door Forced!"), alarm(3, "tamper"),
                       alarm(1, "door_forced")],
            "audit": [line, { "id": "01HZZZZZZZZZZZZZZZZZZZV002", "seq": 2, "actor": "",
                              "action": "x", "subject": "", "detail": "", "node_time_ms": 2 }],
        });
        let (status, ack) = push(batch.clone());
        assert_eq!(status, 200, "{backend}: {ack}");
        let ids = |key: &str| -> Vec<String> {
            ack[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(
            ids("accepted"),
            [
                "01HZZZZZZZZZZZZZZZZZZZ0001",
                "01HZZZZZZZZZZZZZZZZZZZA001",
                "01HZZZZZZZZZZZZZZZZZZZA003",
                "01HZZZZZZZZZZZZZZZZZZZV001"
            ],
            "{backend}: {ack}"
        );
        assert_eq!(
            ids("duplicate"),
            ["01HZZZZZZZZZZZZZZZZZZZA001"],
            "{backend}"
        );
        let reasons: Vec<&str> = ack["rejected"]
            .as_array()
            .map(|r| r.iter().filter_map(|x| x["reason"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(reasons.len(), 2, "{backend}: {ack}");
        assert!(
            reasons[0].contains("alarm kind") && reasons[1].contains("audit actor"),
            "{reasons:?}"
        );
        // The same push again: all duplicates but the refused ones, nothing more stored.
        let (_, again) = push(batch);
        assert_eq!(again["accepted"], json!([]), "{backend}: {again}");
        // (The alarm repeated within the batch is a duplicate both times.)
        assert_eq!(
            again["duplicate"].as_array().map(Vec::len),
            Some(5),
            "{again}"
        );
        assert_eq!(items(&admin(cloud, "/api/v1/alarms")).len(), 2, "{backend}");
        assert_eq!(
            items(&admin(cloud, &format!("/api/v1/nodes/{node_id}/audit"))).len(),
            1,
            "{backend}"
        );
        // Another id under a stored alarm sequence number is a conflict, not a second alarm.
        let mut other = alarm(3, "tamper");
        other["id"] = json!("01HZZZZZZZZZZZZZZZZZZZA999");
        let (_, ack) = push(json!({ "protocol": 1, "events": [], "alarms": [other] }));
        assert!(
            ack["rejected"][0]["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("sequence_conflict")),
            "{backend}: {ack}"
        );
        // 1000 items at most, of all streams together: 600 events and 401 alarms are refused
        // whole, nothing of them stored.
        let events: Vec<_> = (100..700).map(event).collect();
        let alarms: Vec<_> = (100..501).map(|n| alarm(n, "tamper")).collect();
        let (status, p) = push(json!({ "protocol": 1, "events": events, "alarms": alarms }));
        assert_eq!(status, 413, "{backend}: {p}");
        assert_eq!(
            items(&admin(cloud, "/api/v1/alarms?limit=500")).len(),
            2,
            "{backend}"
        );
        assert_eq!(cloud.events().expect("events").len(), 1, "{backend}");
    });
}
