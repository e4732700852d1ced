//! The cloud on each of its backends, SQLite and PostgreSQL, with real nodes syncing to it:
//! the same behaviour from both, and the platform operator's tenant controls.

use std::time::Duration;

use rollcall_tests::{AT_GATE, Cloud, Node, NodeOptions, on_each_backend, sample_photo, wait_for};
use serde_json::json;

fn photo(name: &str) -> Vec<u8> {
    sample_photo(name).expect("cargo xtask fetch has run")
}

/// Check-ins reach the cloud once each, on either backend; suspending the tenant stops its
/// node's sync with a clear 403 (the node keeps its events) and reactivating it lets them in.
#[test]
fn nodes_sync_to_either_backend_and_a_suspended_tenant_is_held_back() {
    on_each_backend(&[], |name, cloud, dir| {
        let (status, health) = cloud.admin_get("/healthz").expect("healthz");
        assert_eq!(
            (status, health["database"].as_str()),
            (200, Some(name)),
            "{health}"
        );
        let (_id, token) = cloud.register_node("hq").expect("registered");
        assert!(
            token.starts_with("acme."),
            "{name}: node tokens name their tenant: {token}"
        );
        let node = Node::start(
            &dir.join("node"),
            &NodeOptions::synced(&cloud.url, token.clone()),
        )
        .expect("node starts");
        node.enrol("obama", "Barack Obama", &photo("sample-obama"))
            .expect("enrolled");
        let granted = node.decide(&photo("sample-obama2"), Some(AT_GATE));
        assert_eq!(granted["decision"], "granted", "{name}: {granted}");
        let denied = node.decide(&photo("sample-biden"), Some(AT_GATE));
        assert_eq!(denied["decision"], "denied", "{name}: {denied}");
        wait_for("two events in the cloud", Duration::from_secs(30), || {
            cloud.events().map(|e| e.len() == 2).unwrap_or(false)
        });

        let (status, t) = cloud
            .admin_patch(
                "/api/v1/platform/tenants/acme",
                &json!({ "status": "suspended" }),
            )
            .expect("suspend");
        assert_eq!(
            (status, t["status"].as_str()),
            (200, Some("suspended")),
            "{name}: {t}"
        );
        // Everyone of the tenant is refused with the same clear problem.
        let (status, problem) = cloud.admin_get("/api/v1/events").expect("events");
        assert_eq!(status, 403, "{name}: {problem}");
        assert_eq!(problem["type"], "urn:rollcall:problem:tenant-suspended");
        let whoami = reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/sync/whoami", cloud.url))
            .bearer_auth(&token)
            .send()
            .expect("whoami");
        assert_eq!(whoami.status().as_u16(), 403, "{name}");
        // The node goes on deciding; its event waits.
        let third = node.decide(&photo("sample-obama3"), Some(AT_GATE));
        assert_eq!(third["decision"], "granted", "{name}: {third}");
        std::thread::sleep(Duration::from_secs(1));
        let (status, _) = cloud
            .admin_patch(
                "/api/v1/platform/tenants/acme",
                &json!({ "status": "active" }),
            )
            .expect("resume");
        assert_eq!(status, 200);
        wait_for("the held-back event", Duration::from_secs(30), || {
            cloud.events().map(|e| e.len() == 3).unwrap_or(false)
        });
        let events = cloud.events().expect("events");
        let mut ids: Vec<_> = events.iter().filter_map(|e| e["id"].as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 3, "{name}: each event once: {events:?}");
        assert!(
            cloud.process.log_text().contains("tenant status changed"),
            "{name}: suspension is logged"
        );
    });
}

/// The platform operator's tenant API: validation, conflicts, unknown tenants, and a token
/// from no tenant at all.
#[test]
fn tenants_are_managed_by_the_platform_operator() {
    on_each_backend(&[], |name, cloud, _dir| {
        let (status, t) = cloud
            .admin_post(
                "/api/v1/platform/tenants",
                &json!({ "slug": "globex", "name": " Globex Corp " }),
            )
            .expect("create");
        assert_eq!(status, 201, "{name}: {t}");
        assert_eq!(
            (t["slug"].as_str(), t["name"].as_str(), t["status"].as_str()),
            (Some("globex"), Some("Globex Corp"), Some("active"))
        );
        assert!(t.get("id").is_none(), "internal ids stay inside: {t}");
        let (status, p) = cloud
            .admin_post(
                "/api/v1/platform/tenants",
                &json!({ "slug": "globex", "name": "Again" }),
            )
            .expect("create");
        assert_eq!(
            (status, p["type"].as_str()),
            (409, Some("urn:rollcall:problem:tenant-exists")),
            "{name}: {p}"
        );
        for (body, why) in [
            (json!({ "slug": "Globex", "name": "x" }), "slug"),
            (json!({ "slug": "-x", "name": "x" }), "slug"),
            (json!({ "slug": "ok-slug", "name": "" }), "name"),
            (json!({ "slug": "ok-slug", "name": "a\u{7}b" }), "control"),
            (
                json!({ "slug": "ok-slug", "name": "x", "extra": 1 }),
                "unknown field",
            ),
        ] {
            let (status, p) = cloud
                .admin_post("/api/v1/platform/tenants", &body)
                .expect("create");
            assert!(matches!(status, 400 | 422), "{name}: {body} → {status} {p}");
            assert!(
                p["detail"].as_str().unwrap_or_default().contains(why),
                "{name}: {body} → {p}"
            );
        }
        let (status, list) = cloud.admin_get("/api/v1/platform/tenants").expect("list");
        assert_eq!(status, 200);
        let slugs: Vec<_> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|t| t["slug"].as_str())
            .collect();
        assert_eq!(slugs, ["acme", "globex"], "{name}");
        let (status, _) = cloud
            .admin_get("/api/v1/platform/tenants/nope")
            .expect("get");
        assert_eq!(status, 404);
        let (status, _) = cloud
            .admin_patch(
                "/api/v1/platform/tenants/nope",
                &json!({ "status": "suspended" }),
            )
            .expect("patch");
        assert_eq!(status, 404);
        let (status, _) = cloud
            .admin_patch(
                "/api/v1/platform/tenants/globex",
                &json!({ "status": "deleted" }),
            )
            .expect("patch");
        assert!(
            matches!(status, 400 | 422),
            "{name}: unknown status → {status}"
        );
        // Node tokens that name no tenant, or a tenant that does not exist, are simply unknown.
        for token in ["deadbeef", "nope.deadbeef", "globex.deadbeef", ".x"] {
            let r = reqwest::blocking::Client::new()
                .get(format!("{}/api/v1/sync/whoami", cloud.url))
                .bearer_auth(token)
                .send()
                .expect("whoami");
            assert_eq!(r.status().as_u16(), 401, "{name}: {token}");
        }
        let r = reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/platform/tenants", cloud.url))
            .bearer_auth("not-the-admin-token")
            .send()
            .expect("list");
        assert_eq!(r.status().as_u16(), 401);
    });
}

/// A lost node is revoked by its tenant's admin and refused at once; another tenant can neither
/// see nor revoke it.
#[test]
fn a_revoked_node_is_refused_at_once() {
    on_each_backend(&[], |name, cloud, _dir| {
        let (node_id, token) = cloud.register_node("hq").expect("registered");
        let whoami = |token: &str| {
            cloud
                .call("GET", "/api/v1/sync/whoami", Some(token), None, None)
                .expect("whoami")
                .0
        };
        assert_eq!(whoami(&token), 200, "{name}");
        let (status, nodes) = cloud.admin_get("/api/v1/nodes").expect("nodes");
        assert_eq!(status, 200);
        assert_eq!(nodes["items"][0]["id"], node_id.as_str(), "{name}: {nodes}");
        assert!(nodes["items"][0].get("token").is_none() && !nodes.to_string().contains(&token));
        assert!(
            nodes["items"][0]["last_seen_ms"].is_null(),
            "{name}: never pushed yet"
        );

        let globex = &cloud.tenant_with_owner("globex").expect("tenant B");
        let (status, theirs) = cloud
            .call("GET", "/api/v1/nodes", Some(globex), None, None)
            .expect("list");
        assert_eq!(
            (status, theirs["items"].as_array().map(Vec::len)),
            (200, Some(0)),
            "{name}"
        );
        let revoke = |by: &str| {
            cloud
                .call(
                    "DELETE",
                    &format!("/api/v1/nodes/{node_id}"),
                    Some(by),
                    None,
                    None,
                )
                .expect("revoke")
                .0
        };
        assert_eq!(revoke(globex), 404, "{name}: not across tenants");
        assert_eq!(whoami(&token), 200, "{name}: untouched");

        assert_eq!(revoke(&cloud.admin_token), 204, "{name}");
        assert_eq!(whoami(&token), 401, "{name}: revoked");
        let push = cloud
            .call(
                "POST",
                "/api/v1/sync/push",
                Some(&token),
                Some(&json!({ "protocol": 1, "events": [] })),
                None,
            )
            .expect("push");
        assert_eq!(push.0, 401, "{name}");
        assert_eq!(revoke(&cloud.admin_token), 404, "{name}: already revoked");
        assert!(cloud.process.log_text().contains("node revoked"));

        // The audit trail: who did what, from where, under which request — per tenant.
        let (status, audit) = cloud.admin_get("/api/v1/audit").expect("audit");
        assert_eq!(status, 200, "{name}: {audit}");
        let items = audit["items"].as_array().expect("items");
        let actions: Vec<_> = items.iter().filter_map(|e| e["action"].as_str()).collect();
        assert_eq!(
            actions,
            ["node.revoke", "node.register"],
            "{name}: newest first: {audit}"
        );
        for e in items {
            assert_eq!(e["actor"], "bootstrap-admin", "{name}: {e}");
            assert_eq!(e["target"], node_id.as_str(), "{name}: {e}");
            assert_eq!(e["source"], "127.0.0.1", "{name}: {e}");
            let request = e["request_id"].as_str().expect("request id");
            assert!(
                cloud.process.log_text().contains(request),
                "{name}: the log carries request {request}"
            );
        }
        let (_, theirs) = cloud
            .call("GET", "/api/v1/audit", Some(globex), None, None)
            .expect("audit");
        let theirs: Vec<_> = theirs["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        assert_eq!(
            theirs,
            ["auth.login", "user.create", "tenant.create"],
            "{name}"
        );
    });
}

/// Every response carries a request id: the client's when it sent a sane one.
#[test]
fn responses_carry_request_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(&dir.path().join("cloud"), None).expect("cloud starts");
    let http = reqwest::blocking::Client::new();
    let id = |value: Option<&str>| {
        let mut req = http.get(format!("{}/api/v1/events", cloud.url));
        if let Some(v) = value {
            req = req.header("x-request-id", v);
        }
        let r = req.send().expect("request");
        assert_eq!(r.status().as_u16(), 401, "no credential");
        r.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned()
    };
    assert_eq!(id(Some("trace-42")), "trace-42");
    let fresh = id(None);
    assert!(fresh.starts_with("req-") && fresh.len() > 10, "{fresh}");
    assert_ne!(id(None), fresh);
    let replaced = id(Some("bad id with spaces"));
    assert!(replaced.starts_with("req-"), "{replaced}");

    // Content negotiation: JSON or nothing, said with a problem document (and its request id).
    let r = http
        .get(format!("{}/api/v1/events", cloud.url))
        .bearer_auth(&cloud.admin_token)
        .header("accept", "application/xml")
        .send()
        .expect("xml");
    assert_eq!(r.status().as_u16(), 406);
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = http
        .get(format!("{}/api/v1/events", cloud.url))
        .bearer_auth(&cloud.admin_token)
        .header("accept", "text/html, application/json;q=0.8")
        .send()
        .expect("json");
    assert_eq!(r.status().as_u16(), 200);
    // Metrics stay text for Prometheus.
    let r = http
        .get(format!("{}/metrics", cloud.url))
        .bearer_auth(&cloud.admin_token)
        .header("accept", "text/plain")
        .send()
        .expect("metrics");
    assert_eq!(r.status().as_u16(), 200);
}

/// Pushes may come as JSON or CBOR, gzip- or zstd-compressed or not; a bomb, a corrupt or truncated stream, a truncated body,
/// another protocol version, more than 1000 items, another encoding or another media type is
/// refused whole, before anything is stored; a replayed batch is all duplicates.
#[test]
fn pushes_may_be_gzipped_and_bad_or_replayed_ones_store_nothing() {
    on_each_backend(&[], |name, cloud, _dir| {
        let (_, token) = cloud.register_node("hq").expect("registered");
        let http = reqwest::blocking::Client::new();
        let send = |body: Vec<u8>, content_type: &str, encoding: Option<&str>| {
            let mut req = http
                .post(format!("{}/api/v1/sync/push", cloud.url))
                .bearer_auth(&token)
                .header("content-type", content_type)
                .body(body);
            if let Some(e) = encoding {
                req = req.header("content-encoding", e);
            }
            let r = req.send().expect("push");
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().unwrap_or_default())
        };
        let batch = |seqs: std::ops::RangeInclusive<u32>| {
            let events: Vec<_> = seqs.map(|n| pushed_event(n, "granted")).collect();
            serde_json::to_vec(&json!({ "protocol": 1, "events": events })).expect("json")
        };
        let plain = batch(1..=200);
        let gzipped = rollcall_protocol::gzip::compress(&plain);
        assert!(
            gzipped.len() * 5 < plain.len(),
            "{} → {}",
            plain.len(),
            gzipped.len()
        );
        let (status, ack) = send(gzipped, "application/json", Some("gzip"));
        assert_eq!(
            (status, ack["accepted"].as_array().map(Vec::len)),
            (200, Some(200)),
            "{name}: {ack}"
        );
        let bomb = rollcall_protocol::gzip::compress(&vec![b' '; 64 << 20]);
        let junk = b"\x1f\x8b\x08 certainly not deflate".to_vec();
        let next = batch(201..=210);
        let truncated_json = next[..next.len() / 2].to_vec();
        let next_gz = rollcall_protocol::gzip::compress(&next);
        let truncated_gzip = next_gz[..next_gz.len() / 2].to_vec();
        let mut future: serde_json::Value = serde_json::from_slice(&next).expect("json");
        future["protocol"] = json!(2);
        let too_many: Vec<_> = (1001..=2001).map(|n| pushed_event(n, "granted")).collect();
        let too_many =
            serde_json::to_vec(&json!({ "protocol": 1, "events": too_many })).expect("json");
        for (why, body, content_type, encoding, wanted) in [
            (
                "a truncated body",
                truncated_json,
                "application/json",
                None,
                400,
            ),
            (
                "a truncated gzip body",
                truncated_gzip,
                "application/json",
                Some("gzip"),
                400,
            ),
            (
                "another protocol version",
                serde_json::to_vec(&future).expect("json"),
                "application/json",
                None,
                400,
            ),
            ("1001 items", too_many, "application/json", None, 413),
            ("a gzip bomb", bomb, "application/json", Some("gzip"), 413),
            ("corrupt gzip", junk, "application/json", Some("gzip"), 400),
            (
                "a zstd bomb",
                rollcall_protocol::zstd::compress(&vec![b' '; 64 << 20]),
                "application/json",
                Some("zstd"),
                413,
            ),
            (
                "corrupt zstd",
                b"\x28\xb5\x2f\xfd certainly not a frame".to_vec(),
                "application/json",
                Some("zstd"),
                400,
            ),
            (
                "brotli",
                batch(201..=201),
                "application/json",
                Some("br"),
                415,
            ),
            ("not JSON", batch(202..=202), "text/plain", None, 415),
        ] {
            let (status, p) = send(body, content_type, encoding);
            assert_eq!(status, wanted, "{name}: {why}: {p}");
            assert!(
                p["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("urn:rollcall:problem:")),
                "{p}"
            );
        }
        // CBOR, plain or gzip-compressed: the same batch type, answered in CBOR.
        use rollcall_protocol::codec::Encoding;
        let cbor_batch = |seqs: std::ops::RangeInclusive<u32>| {
            let events: Vec<_> = seqs.map(|n| pushed_event(n, "granted")).collect();
            let batch: rollcall_protocol::wire::PushBatch =
                serde_json::from_value(json!({ "protocol": 1, "events": events })).expect("batch");
            Encoding::Cbor.encode(&batch)
        };
        let cbor = cbor_batch(211..=220);
        assert!(cbor.len() < batch(211..=220).len(), "CBOR is the smaller");
        for (body, encoding) in [
            (cbor.clone(), None),
            (
                rollcall_protocol::gzip::compress(&cbor_batch(221..=230)),
                Some("gzip"),
            ),
            (
                rollcall_protocol::zstd::compress(&cbor_batch(231..=240)),
                Some("zstd"),
            ),
        ] {
            let mut req = http
                .post(format!("{}/api/v1/sync/push", cloud.url))
                .bearer_auth(&token)
                .header("content-type", "application/cbor")
                .body(body);
            if let Some(e) = encoding {
                req = req.header("content-encoding", e);
            }
            let r = req.send().expect("push");
            assert_eq!(r.status().as_u16(), 200, "{name}");
            assert_eq!(
                r.headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok()),
                Some("application/cbor")
            );
            let ack: rollcall_protocol::wire::PushAck = Encoding::Cbor
                .decode(&r.bytes().expect("body"))
                .expect("a CBOR ack");
            assert_eq!(ack.accepted.len(), 10, "{name}: {ack:?}");
        }
        for (why, body, wanted) in [
            ("truncated CBOR", cbor[..cbor.len() / 2].to_vec(), 400),
            (
                "CBOR of another shape",
                Encoding::Cbor.encode(&vec![1u8, 2, 3]),
                422,
            ),
        ] {
            let (status, p) = send(body, "application/cbor", None);
            assert_eq!(status, wanted, "{name}: {why}: {p}");
        }
        // A batch replayed (a copy captured on the wire, or the node's own retry) changes
        // nothing: every item is a duplicate.
        let (status, ack) = send(
            rollcall_protocol::gzip::compress(&plain),
            "application/json",
            Some("gzip"),
        );
        assert_eq!(
            (
                status,
                ack["accepted"].as_array().map(Vec::len),
                ack["duplicate"].as_array().map(Vec::len),
                &ack["watermark"]
            ),
            (200, Some(0), Some(200), &json!(200)),
            "{name}: {ack}"
        );
        // The refused pushes' 201..=210 were never stored: the gap below the CBOR ones shows.
        assert_eq!(
            ack["missing"],
            json!([{ "first": 201, "last": 210 }]),
            "{name}"
        );
        let (_, all) = cloud
            .admin_get("/api/v1/events?limit=1000")
            .expect("events");
        assert_eq!(
            all["items"].as_array().map(Vec::len),
            Some(230),
            "{name}: nothing else stored"
        );
    });
}

/// Pushes `events` as the node with `token`; status and answer.
fn push(cloud: &Cloud, token: &str, events: Vec<serde_json::Value>) -> (u16, serde_json::Value) {
    cloud
        .call(
            "POST",
            "/api/v1/sync/push",
            Some(token),
            Some(&json!({ "protocol": 1, "events": events })),
            None,
        )
        .expect("push")
}

fn pushed_event(n: u32, decision: &str) -> serde_json::Value {
    json!({
        "id": format!("01HZZZZZZZZZZZZZZZZZZZ{n:04}"), "seq": n, "site_id": "hq",
        "person_id": format!("p{}", n % 2), "decision": decision, "similarity": 0.8,
        "risk_score": 0.1, "position": null, "node_time_ms": 1_700_000_000_000i64 + i64::from(n) * 1000,
        "reasons": [{ "code": "low_accuracy", "weight": 0.1, "text": "fix accuracy 80 m" }],
    })
}

/// A node's sequence as the cloud holds it: the watermark and the gaps in each acknowledgement,
/// in the node list and in `/metrics`.
#[test]
fn each_push_says_how_far_the_nodes_sequence_is_held() {
    on_each_backend(&[], |name, cloud, _dir| {
        let (node, token) = cloud.register_node("hq").expect("registered");
        let push = |seqs: &[u32]| {
            let events = seqs.iter().map(|&n| pushed_event(n, "granted")).collect();
            push(cloud, &token, events)
        };
        let (status, ack) = push(&[1, 2, 5]);
        assert_eq!(status, 200, "{name}: {ack}");
        assert_eq!(
            (&ack["watermark"], &ack["missing"]),
            (&json!(2), &json!([{ "first": 3, "last": 4 }])),
            "{name}: {ack}"
        );
        let (_, nodes) = cloud.admin_get("/api/v1/nodes").expect("nodes");
        assert_eq!(nodes["items"][0]["watermark"], 2, "{name}: {nodes}");
        // The events were made in 2023: the node is that far behind.
        let lag = nodes["items"][0]["lag_ms"].as_i64().unwrap_or(0);
        assert!(lag > 86_400_000, "{name}: {nodes}");
        let metrics = cloud.metrics().expect("metrics");
        for line in [
            format!("rollcall_cloud_node_watermark{{tenant=\"acme\",node=\"{node}\"}} 2"),
            format!("rollcall_cloud_node_missing_events{{tenant=\"acme\",node=\"{node}\"}} 2"),
        ] {
            assert!(metrics.contains(&line), "{name}: {line} in\n{metrics}");
        }
        let (_, ack) = push(&[3, 4]);
        assert_eq!(
            (&ack["watermark"], ack.get("missing")),
            (&json!(5), None),
            "{name}: {ack}"
        );
    });
}

/// Attendance in API v1 (offset) and v2 (cursor, envelope): the same events, the same filters,
/// field-level refusals, one event with its reasons, and `GET /api/version`.
#[test]
fn attendance_is_listed_in_v1_and_v2_with_filters_and_paging() {
    on_each_backend(&[], |name, cloud, _dir| {
        let (_, token) = cloud.register_node("hq").expect("registered");
        let events: Vec<_> = (1..=25)
            .map(|n| pushed_event(n, if n % 5 == 0 { "denied" } else { "granted" }))
            .collect();
        let (status, ack) = push(cloud, &token, events);
        assert_eq!(
            (status, ack["accepted"].as_array().map(Vec::len)),
            (200, Some(25)),
            "{name}: {ack}"
        );

        let (status, version) = cloud
            .call("GET", "/api/version", None, None, None)
            .expect("version");
        assert_eq!(status, 200);
        assert_eq!(version["api_versions"], json!(["v1", "v2"]), "{version}");
        assert_eq!(version["features"]["database"], name);

        // v1: the shape older clients know, with offset paging.
        let (status, v1) = cloud
            .admin_get("/api/v1/events?limit=10&offset=5")
            .expect("v1");
        assert_eq!(status, 200, "{name}: {v1}");
        let items = v1["items"].as_array().expect("items");
        assert_eq!(items.len(), 10);
        assert_eq!(
            items[0]["id"], "01HZZZZZZZZZZZZZZZZZZZ0020",
            "{name}: newest first, 5 skipped"
        );
        for key in [
            "id",
            "seq",
            "site_id",
            "person_id",
            "decision",
            "risk_score",
            "reasons",
            "node_time_ms",
            "node_id",
            "received_ms",
        ] {
            assert!(
                items[0].get(key).is_some(),
                "{name}: v1 field {key}: {}",
                items[0]
            );
        }
        let (_, denied) = cloud
            .admin_get("/api/v1/events?decision=denied&person_id=p1")
            .expect("filter");
        let ids: Vec<_> = denied["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|e| e["id"].as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "01HZZZZZZZZZZZZZZZZZZZ0025",
                "01HZZZZZZZZZZZZZZZZZZZ0015",
                "01HZZZZZZZZZZZZZZZZZZZ0005"
            ],
            "{name}"
        );
        let (_, window) = cloud
            .admin_get("/api/v1/events?from_ms=1700000003000&to_ms=1700000006000")
            .expect("window");
        assert_eq!(
            window["items"].as_array().map(Vec::len),
            Some(3),
            "{name}: {window}"
        );

        // v2: envelope and cursor; walking it visits every event once.
        let mut seen = Vec::new();
        let mut path = "/api/v2/events?limit=7".to_owned();
        loop {
            let (status, page) = cloud.admin_get(&path).expect("v2");
            assert_eq!(status, 200, "{name}: {page}");
            assert_eq!(page["page"]["limit"], 7);
            seen.extend(
                page["data"]
                    .as_array()
                    .expect("data")
                    .iter()
                    .filter_map(|e| e["id"].as_str().map(str::to_owned)),
            );
            match page["page"]["next_cursor"].as_str() {
                Some(c) => path = format!("/api/v2/events?limit=7&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(seen.len(), 25, "{name}: {seen:?}");
        let mut unique = seen.clone();
        unique.dedup();
        assert_eq!(unique, seen, "{name}: no repeats");

        // Sorted the other way, by cursor: the same events, oldest first; v1 agrees.
        let mut oldest_first = Vec::new();
        let mut path = "/api/v2/events?limit=6&sort=node_time_ms".to_owned();
        let mut cursor = None;
        loop {
            let (status, page) = cloud.admin_get(&path).expect("v2 sorted");
            assert_eq!(status, 200, "{name}: {page}");
            oldest_first.extend(
                page["data"]
                    .as_array()
                    .expect("data")
                    .iter()
                    .filter_map(|e| e["id"].as_str().map(str::to_owned)),
            );
            match page["page"]["next_cursor"].as_str() {
                Some(c) => {
                    cursor = Some(c.to_owned());
                    path = format!("/api/v2/events?limit=6&sort=node_time_ms&cursor={c}");
                }
                None => break,
            }
        }
        let mut newest_first = seen.clone();
        newest_first.reverse();
        assert_eq!(oldest_first, newest_first, "{name}");
        let (_, v1) = cloud
            .admin_get("/api/v1/events?sort=node_time_ms&limit=3")
            .expect("v1 sorted");
        let v1_ids: Vec<&str> = v1["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|e| e["id"].as_str())
            .collect();
        assert_eq!(v1_ids, oldest_first[..3], "{name}");
        // A cursor continues only the order it was made in.
        let c = cursor.expect("several pages");
        let (status, p) = cloud
            .admin_get(&format!("/api/v2/events?sort=-received_ms&cursor={c}"))
            .expect("mismatch");
        assert_eq!(status, 400, "{name}: {p}");
        assert!(
            p["detail"].as_str().unwrap_or_default().contains("sort"),
            "{p}"
        );
        let (status, by_arrival) = cloud
            .admin_get("/api/v2/events?sort=-received_ms&limit=1000")
            .expect("by arrival");
        assert_eq!(
            (status, by_arrival["data"].as_array().map(Vec::len)),
            (200, Some(25)),
            "{name}"
        );

        // One event with its reasons, in both versions.
        let (status, one) = cloud
            .admin_get("/api/v1/events/01HZZZZZZZZZZZZZZZZZZZ0005")
            .expect("one");
        assert_eq!(
            (status, one["decision"].as_str()),
            (200, Some("denied")),
            "{name}: {one}"
        );
        assert_eq!(one["reasons"][0]["code"], "low_accuracy");
        let (status, one) = cloud
            .admin_get("/api/v2/events/01HZZZZZZZZZZZZZZZZZZZ0005")
            .expect("one");
        assert_eq!(
            (status, one["data"]["seq"].as_i64()),
            (200, Some(5)),
            "{name}: {one}"
        );
        assert_eq!(
            cloud
                .admin_get("/api/v1/events/01HZZZZZZZZZZZZZZZZZZZ9999")
                .expect("404")
                .0,
            404
        );

        // Refusals name what is wrong, and say nothing of the internals.
        for (query, says) in [
            ("/api/v1/events?colour=red", "colour"),
            ("/api/v1/events?decision=maybe", "decision"),
            ("/api/v1/events?limit=0", "limit"),
            ("/api/v1/events?limit=5000", "limit"),
            ("/api/v1/events?from_ms=5&to_ms=5", "from_ms"),
            ("/api/v1/events?offset=-1", "offset"),
            ("/api/v2/events?cursor=bm9wZQ", "cursor"),
            ("/api/v2/events?offset=3", "offset"),
            ("/api/v1/events?sort=risk_score", "sort"),
            ("/api/v2/events?sort=id;DROP", "sort"),
        ] {
            let (status, p) = cloud.admin_get(query).expect("refused");
            assert_eq!(status, 400, "{name}: {query}: {p}");
            let detail = p["detail"].as_str().unwrap_or_default();
            assert!(detail.contains(says), "{name}: {query}: {detail}");
            // …and the field is named for machines too (RFC 9457 `invalid-params`).
            assert_eq!(p["invalid-params"][0]["name"], says, "{name}: {query}: {p}");
            for leak in ["SELECT", "sqlite", "postgres", "/work/", "panicked", ".rs:"] {
                assert!(
                    !p.to_string().contains(leak),
                    "{name}: {query} leaks {leak}: {p}"
                );
            }
        }
    });
}

/// `Idempotency-Key`: a retried POST gets the first answer and makes no second object; the key
/// with another body is refused; keys are per caller.
#[test]
fn retried_writes_with_an_idempotency_key_happen_once() {
    on_each_backend(&[], |name, cloud, _dir| {
        let http = reqwest::blocking::Client::new();
        let post = |path: &str, key: &str, body: &serde_json::Value| {
            let r = http
                .post(format!("{}{path}", cloud.url))
                .bearer_auth(&cloud.admin_token)
                .header("idempotency-key", key)
                .json(body)
                .send()
                .expect("post");
            let replayed = r.headers().get("idempotent-replayed").is_some();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().expect("json");
            (status, replayed, body)
        };
        let user = json!({ "email": "ops@acme.example", "display_name": "Ops", "role": "admin",
                           "password": "correct horse battery staple" });
        let (s1, r1, first) = post("/api/v1/users", "create-ops-1", &user);
        let (s2, r2, second) = post("/api/v1/users", "create-ops-1", &user);
        assert_eq!(
            (s1, r1, s2, r2),
            (201, false, 201, true),
            "{name}: {first} / {second}"
        );
        assert_eq!(first, second, "{name}: the same answer");
        let (_, users) = cloud.admin_get("/api/v1/users").expect("users");
        assert_eq!(
            users["items"].as_array().map(Vec::len),
            Some(1),
            "{name}: one user"
        );
        // The user's own key, replayed only while they keep the role they made it in.
        let (status, session) = cloud
            .call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(&json!({ "tenant": "acme", "email": "ops@acme.example",
                               "password": "correct horse battery staple" })),
                None,
            )
            .expect("login");
        assert_eq!(status, 200, "{name}: {session}");
        let ops_token = session["access_token"].as_str().expect("token").to_owned();
        let as_ops = |key: &str| {
            let r = http
                .post(format!("{}/api/v1/people", cloud.url))
                .bearer_auth(&ops_token)
                .header("idempotency-key", key)
                .json(&json!({ "id": "ann", "display_name": "Ann" }))
                .send()
                .expect("post");
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().expect("json"))
        };
        assert_eq!(as_ops("annex-1").0, 201, "{name}");
        assert_eq!(as_ops("annex-1").0, 201, "{name}: replayed");
        let ops_id = first["id"].as_str().expect("user id");
        let (status, changed) = cloud
            .admin_patch(
                &format!("/api/v1/users/{ops_id}"),
                &json!({ "role": "guard" }),
            )
            .expect("demote");
        assert_eq!(status, 200, "{name}: {changed}");
        let (status, p) = as_ops("annex-1");
        assert_eq!(
            (status, p["type"].as_str()),
            (403, Some("urn:rollcall:problem:idempotency-role-changed")),
            "{name}: {p}"
        );
        let (status, _, p) = post(
            "/api/v1/users",
            "create-ops-1",
            &json!({ "email": "other@acme.example",
            "display_name": "Other", "role": "guard", "password": "correct horse battery staple" }),
        );
        assert_eq!(
            (status, p["type"].as_str()),
            (422, Some("urn:rollcall:problem:idempotency-key-reused")),
            "{name}: {p}"
        );
        // A node registered twice under one key is one node; its token is shown once: the
        // replay goes without it, and it is kept nowhere in plain text.
        let (_, _, n1) = post("/api/v1/nodes", "node-hq", &json!({ "site_id": "hq" }));
        let (_, replayed, n2) = post("/api/v1/nodes", "node-hq", &json!({ "site_id": "hq" }));
        assert!(replayed);
        assert_eq!(n1["node_id"], n2["node_id"], "{name}");
        let token = n1["token"]
            .as_str()
            .expect("the first answer has the token");
        assert_eq!(
            (&n2["token"], &n2["withheld"]),
            (&json!(null), &json!(["token"])),
            "{name}: {n2}"
        );
        if name == "sqlite" {
            for file in [cloud.db.clone(), cloud.db.with_extension("sqlite-wal")] {
                let bytes = std::fs::read(&file).unwrap_or_default();
                assert!(
                    !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                    "the token is in {}",
                    file.display()
                );
            }
        }
        let (_, nodes) = cloud.admin_get("/api/v1/nodes").expect("nodes");
        assert_eq!(nodes["items"].as_array().map(Vec::len), Some(1), "{name}");
        // Refused requests are answered the same way again too; bad keys are refused outright.
        let (s1, _, _) = post(
            "/api/v1/nodes",
            "bad-site",
            &json!({ "site_id": "Not A Site" }),
        );
        let (s2, replayed, _) = post(
            "/api/v1/nodes",
            "bad-site",
            &json!({ "site_id": "Not A Site" }),
        );
        assert_eq!((s1, s2, replayed), (400, 400, true), "{name}");
        let (status, _, p) = post("/api/v1/nodes", "has space", &json!({ "site_id": "hq" }));
        assert_eq!(status, 400, "{name}: {p}");
        // Without a key, two POSTs are two nodes.
        cloud.register_node("hq").expect("node");
        cloud.register_node("hq").expect("node");
        let (_, nodes) = cloud.admin_get("/api/v1/nodes").expect("nodes");
        assert_eq!(nodes["items"].as_array().map(Vec::len), Some(3), "{name}");
        // The audit trail shows one creation per object.
        let (_, audit) = cloud.admin_get("/api/v1/audit").expect("audit");
        let creates = audit["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|e| e["action"] == "user.create")
            .count();
        assert_eq!(creates, 1, "{name}");
    });
}

fn fence(lat: f64, lon: f64) -> serde_json::Value {
    let d = 0.001;
    json!({ "type": "Feature", "properties": { "name": "gate" }, "geometry": { "type": "Polygon",
        "coordinates": [[[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]]] } })
}

/// Sites with geofences, on both backends: created, listed, changed, deleted, audited; a fence
/// the node could not enforce is refused with the reason; another tenant sees none of it.
#[test]
fn sites_carry_geofences_the_node_can_enforce() {
    on_each_backend(&[], |name, cloud, _dir| {
        let a = cloud.admin_token.clone();
        let call = |method: &str, path: &str, body: Option<&serde_json::Value>| {
            cloud
                .call(method, path, Some(&a), body, None)
                .expect("request")
        };
        let (status, site) = call(
            "POST",
            "/api/v1/sites",
            Some(
                &json!({ "id": "hq", "name": " Head office ", "geofence": fence(48.8584, 2.2945) }),
            ),
        );
        assert_eq!(status, 201, "{name}: {site}");
        assert_eq!(
            (site["id"].as_str(), site["name"].as_str()),
            (Some("hq"), Some("Head office"))
        );
        assert_eq!(site["geofence"]["geometry"]["type"], "Polygon");
        let (status, _) = call(
            "POST",
            "/api/v1/sites",
            Some(&json!({ "id": "hq", "name": "Again", "geofence": fence(1.0, 1.0) })),
        );
        assert_eq!(status, 409, "{name}");
        for (body, says) in [
            (
                json!({ "id": "Bad Id", "name": "x", "geofence": fence(1.0, 1.0) }),
                "id",
            ),
            (
                json!({ "id": "ok", "name": "x", "geofence": { "type": "Polygon", "coordinates": [[[0, 0], [1, 1]]] } }),
                "geofence",
            ),
            (
                json!({ "id": "ok", "name": "x", "geofence": { "type": "Point", "coordinates": [200, 95] } }),
                "geofence",
            ),
            (
                json!({ "id": "ok", "name": "x", "geofence": "not geojson" }),
                "geofence",
            ),
            (
                json!({ "id": "ok", "name": "", "geofence": fence(1.0, 1.0) }),
                "name",
            ),
        ] {
            let (status, p) = call("POST", "/api/v1/sites", Some(&body));
            assert_eq!(status, 400, "{name}: {body} → {p}");
            assert!(
                p["detail"].as_str().unwrap_or_default().contains(says),
                "{name}: {p}"
            );
        }
        let (status, changed) = call(
            "PATCH",
            "/api/v1/sites/hq",
            Some(&json!({ "geofence": fence(48.86, 2.30) })),
        );
        assert_eq!(status, 200, "{name}: {changed}");
        assert_eq!(changed["name"], "Head office");
        assert!(changed["updated_ms"].as_i64() >= site["updated_ms"].as_i64());
        let (_, list) = call("GET", "/api/v1/sites", None);
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{name}");

        // Another tenant: not found, not listed, not deletable.
        let b = &cloud.tenant_with_owner("globex").expect("tenant B");
        for (method, path) in [
            ("GET", "/api/v1/sites/hq"),
            ("PATCH", "/api/v1/sites/hq"),
            ("DELETE", "/api/v1/sites/hq"),
        ] {
            let body = json!({ "name": "Taken" });
            let (status, _) = cloud
                .call(
                    method,
                    path,
                    Some(b),
                    (method == "PATCH").then_some(&body),
                    None,
                )
                .expect("request");
            assert_eq!(status, 404, "{name}: {method} {path}");
        }
        let (_, theirs) = cloud
            .call("GET", "/api/v1/sites", Some(b), None, None)
            .expect("list");
        assert_eq!(theirs["items"].as_array().map(Vec::len), Some(0), "{name}");
        // The same id is free in another tenant.
        let (status, _) = cloud
            .call(
                "POST",
                "/api/v1/sites",
                Some(b),
                Some(&json!({ "id": "hq", "name": "Globex HQ", "geofence": fence(40.0, -3.7) })),
                None,
            )
            .expect("create");
        assert_eq!(status, 201, "{name}");

        assert_eq!(call("DELETE", "/api/v1/sites/hq", None).0, 204, "{name}");
        assert_eq!(call("GET", "/api/v1/sites/hq", None).0, 404, "{name}");
        let (_, audit) = cloud.admin_get("/api/v1/audit").expect("audit");
        let actions: Vec<_> = audit["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        assert_eq!(
            actions,
            ["site.delete", "site.update", "site.create"],
            "{name}"
        );
    });
}
