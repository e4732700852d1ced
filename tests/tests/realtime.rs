//! The cloud's real-time hub end to end (#22), on both backends: a single-use ticket opens a
//! WebSocket, events and alarms pushed by a node arrive as `attendance.events` and `alarm`
//! messages on their site's topic, a reconnecting client gets exactly its gap in order, topics are
//! authorised by role and tenant, a suspended tenant's connection is closed with 4004, and on
//! PostgreSQL a client of one replica hears what a node pushed through the other.

use std::{net::TcpStream, time::Duration};

use rollcall_tests::{Cloud, CloudDb, on_each_backend};
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket, stream::MaybeTlsStream};

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

fn event(n: u32) -> Value {
    json!({
        "id": format!("01HZZZZZZZZZZZZZZZZZZZ{n:04}"), "seq": n, "site_id": "hq",
        "person_id": "ana", "decision": "granted", "similarity": 0.8, "risk_score": 0.0,
        "position": null, "node_time_ms": 1_700_000_000_000i64 + i64::from(n), "reasons": [],
    })
}

/// The event ids an `attendance.events` message carries.
fn ids(m: &Value) -> Vec<String> {
    m["data"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["event_id"].as_str().map(str::to_owned))
        .collect()
}

fn ids_of(seqs: std::ops::RangeInclusive<u32>) -> Vec<String> {
    seqs.map(|n| event(n)["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn push(cloud: &Cloud, token: &str, seqs: std::ops::RangeInclusive<u32>) {
    let events: Vec<Value> = seqs.map(event).collect();
    let (status, ack) = cloud
        .call(
            "POST",
            "/api/v1/sync/push",
            Some(token),
            Some(&json!({ "protocol": 1, "events": events })),
            None,
        )
        .expect("push");
    assert_eq!(status, 200, "{ack}");
}

fn ticket(cloud: &Cloud, bearer: &str) -> String {
    let (status, t) = cloud
        .call("POST", "/api/v1/realtime/tickets", Some(bearer), None, None)
        .expect("ticket");
    assert_eq!(status, 201, "{t}");
    t["ticket"].as_str().expect("ticket").to_owned()
}

/// Opens the WebSocket with `ticket`; the HTTP status of a refused handshake.
fn open(cloud: &Cloud, ticket: Option<&str>) -> Result<Socket, u16> {
    let addr = cloud.addr().expect("addr");
    let url = match ticket {
        Some(t) => format!("ws://{addr}/api/v1/realtime/ws?ticket={t}"),
        None => format!("ws://{addr}/api/v1/realtime/ws"),
    };
    match tungstenite::connect(url) {
        Ok((socket, _)) => {
            if let MaybeTlsStream::Plain(s) = socket.get_ref() {
                s.set_read_timeout(Some(Duration::from_secs(15)))
                    .expect("timeout");
            }
            Ok(socket)
        }
        Err(tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("handshake: {e}"),
    }
}

fn send(socket: &mut Socket, frame: Value) {
    socket.send(Message::text(frame.to_string())).expect("send");
}

/// The next text frame as JSON; `Err(code)` when the server closed the connection.
fn next(socket: &mut Socket) -> Result<Value, u16> {
    loop {
        match socket.read() {
            Ok(Message::Text(t)) => return Ok(serde_json::from_str(t.as_str()).expect("JSON")),
            Ok(Message::Close(frame)) => return Err(frame.map_or(1005, |f| u16::from(f.code))),
            Ok(_) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn subscribe(socket: &mut Socket, topics: &[&str], since: Option<i64>) -> Value {
    let mut frame = json!({ "type": "subscribe", "topics": topics });
    if let Some(s) = since {
        frame["since"] = s.into();
    }
    send(socket, frame);
    let reply = next(socket).expect("subscribed");
    assert_eq!(reply["type"], "subscribed", "{reply}");
    reply
}

#[test]
fn pushed_events_arrive_live_and_a_resume_gets_exactly_the_gap() {
    on_each_backend(&[], |backend, cloud, _dir| {
        let (_, node) = cloud.register_node("hq").expect("node");
        // No ticket, a made-up one: refused before the upgrade.
        assert_eq!(open(cloud, None).err(), Some(401), "{backend}");
        let made_up = format!("acme.{}", "ab".repeat(32));
        assert_eq!(open(cloud, Some(&made_up)).err(), Some(401), "{backend}");

        let t = ticket(cloud, &cloud.admin_token);
        let mut ws = open(cloud, Some(&t)).expect("open");
        assert_eq!(
            open(cloud, Some(&t)).err(),
            Some(401),
            "{backend}: a ticket works once"
        );
        subscribe(&mut ws, &["tenant"], None);
        push(cloud, &node, 1..=3);
        let m = next(&mut ws).expect("message");
        assert_eq!(m["type"], "attendance.events", "{backend}: {m}");
        assert_eq!(m["topic"], "site:hq");
        assert_eq!(
            ids(&m),
            ids_of(1..=3),
            "{backend}: the push's events, in order"
        );
        assert_eq!(m["data"]["events"][0]["decision"], "granted");
        let first = m["seq"].as_i64().expect("seq");
        // The node's first push says it is up — lagging, as its events are years old — once.
        let s = next(&mut ws).expect("status");
        assert_eq!(
            (
                s["type"].as_str(),
                s["data"]["status"].as_str(),
                s["data"]["node_id"].is_string()
            ),
            (Some("node.status"), Some("lagging"), true),
            "{backend}: {s}"
        );
        // Pings are answered; a malformed frame gets an error frame and the connection stays.
        send(&mut ws, json!({ "type": "ping", "id": "p1" }));
        assert_eq!(
            next(&mut ws).expect("pong"),
            json!({ "type": "pong", "id": "p1" })
        );
        ws.send(Message::text("{not json")).expect("send");
        assert_eq!(next(&mut ws).expect("error")["code"], "invalid-frame");
        send(
            &mut ws,
            json!({ "type": "subscribe", "topics": ["site:HQ!"] }),
        );
        assert_eq!(next(&mut ws).expect("error")["code"], "invalid-topic");
        // A hardware alarm a node pushes arrives too.
        let alarm = json!({ "id": "01HZZZZZZZZZZZZZZZZZZZA001", "seq": 1, "kind": "tamper",
                            "pd": 101, "node_time_ms": 1_700_000_000_000i64, "detail": "lid open" });
        let (status, ack) = cloud
            .call(
                "POST",
                "/api/v1/sync/push",
                Some(&node),
                Some(&json!({ "protocol": 1, "events": [], "alarms": [alarm] })),
                None,
            )
            .expect("push");
        assert_eq!(status, 200, "{ack}");
        let m = next(&mut ws).expect("alarm");
        assert_eq!(
            (
                m["type"].as_str(),
                m["topic"].as_str(),
                m["data"]["kind"].as_str(),
                m["data"]["pd"].as_u64()
            ),
            (Some("alarm"), Some("site:hq"), Some("tamper"), Some(101)),
            "{backend}: {m}"
        );
        let last = m["seq"].as_i64().expect("seq");
        // The replica counts its connections and what it handed them.
        let metrics = cloud.metrics().expect("metrics");
        assert!(
            metrics.contains("rollcall_cloud_realtime_connections 1"),
            "{backend}"
        );
        let delivered = metrics
            .lines()
            .find_map(|l| l.strip_prefix("rollcall_cloud_realtime_delivered_total "))
            .and_then(|n| n.parse::<u64>().ok());
        assert!(
            delivered.is_some_and(|n| n >= 3),
            "{backend}: {delivered:?}"
        );
        assert!(last > first, "{backend}: increasing");
        drop(ws);

        // Gone while 100 more are stored in 50 pushes; back with the last seq: exactly those
        // 50 messages, in order, with the 100 events.
        for p in 0..50u32 {
            push(cloud, &node, 4 + 2 * p..=5 + 2 * p);
        }
        let mut ws = open(cloud, Some(&ticket(cloud, &cloud.admin_token))).expect("reopen");
        let reply = subscribe(&mut ws, &["site:hq"], Some(last));
        assert_eq!(
            reply["head"].as_i64(),
            Some(last + 50),
            "{backend}: {reply}"
        );
        let mut replayed = Vec::new();
        for k in 1..=50 {
            let m = next(&mut ws).expect("replayed");
            assert_eq!(m["seq"].as_i64(), Some(last + k), "{backend}");
            replayed.extend(ids(&m));
        }
        assert_eq!(replayed, ids_of(4..=103), "{backend}");
        // Then live again, nothing twice.
        push(cloud, &node, 104..=104);
        let m = next(&mut ws).expect("live");
        assert_eq!(ids(&m), ids_of(104..=104), "{backend}: {m}");
    });
}

#[test]
fn topics_are_authorised_and_tenants_never_hear_each_other_and_suspension_closes() {
    on_each_backend(&[], |backend, cloud, _dir| {
        let (_, node) = cloud.register_node("hq").expect("node");
        let owner_b = cloud.tenant_with_owner("globex").expect("tenant B");
        let (status, _) = cloud
            .call(
                "POST",
                "/api/v1/users",
                Some(&owner_b),
                Some(
                    &json!({ "email": "guard@globex.example", "display_name": "G",
                              "role": "guard", "password": "a long enough password" }),
                ),
                None,
            )
            .expect("guard");
        assert_eq!(status, 201);
        let (_, s) = cloud
            .call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(
                    &json!({ "tenant": "globex", "email": "guard@globex.example",
                              "password": "a long enough password" }),
                ),
                None,
            )
            .expect("login");
        let guard = s["access_token"].as_str().expect("token").to_owned();
        let guard_id = s["user"]["id"].as_str().expect("id").to_owned();

        let mut g = open(cloud, Some(&ticket(cloud, &guard))).expect("guard's socket");
        send(
            &mut g,
            json!({ "type": "subscribe", "topics": ["tenant", "role:admin", "user:someone"] }),
        );
        for _ in 0..3 {
            assert_eq!(
                next(&mut g).expect("error")["code"],
                "forbidden",
                "{backend}"
            );
        }
        subscribe(&mut g, &[&format!("user:{guard_id}"), "role:guard"], None);

        let mut b = open(cloud, Some(&ticket(cloud, &owner_b))).expect("B's socket");
        subscribe(&mut b, &["tenant", "site:hq"], None);
        // Tenant A's events: A's own client hears them, B's never (checked by content below).
        let mut a = open(cloud, Some(&ticket(cloud, &cloud.admin_token))).expect("A's socket");
        subscribe(&mut a, &["site:hq"], None);
        push(cloud, &node, 1..=2);
        assert_eq!(
            ids(&next(&mut a).expect("A hears")),
            ids_of(1..=2),
            "{backend}"
        );
        send(&mut b, json!({ "type": "ping", "id": "after" }));
        assert_eq!(
            next(&mut b).expect("only the pong"),
            json!({ "type": "pong", "id": "after" }),
            "{backend}: B heard nothing of A"
        );

        // Tenant B suspended: its connections are closed with 4004.
        let (status, _) = cloud
            .admin_patch(
                "/api/v1/platform/tenants/globex",
                &json!({ "status": "suspended" }),
            )
            .expect("suspend");
        assert_eq!(status, 200);
        assert_eq!(next(&mut b).err(), Some(4004), "{backend}");
        assert_eq!(next(&mut g).err(), Some(4004), "{backend}");
    });
}

/// Two replicas on one PostgreSQL database: a node pushes through replica one, a client of
/// replica two hears it (the stream's notification crosses replicas).
#[test]
fn a_client_of_one_replica_hears_what_a_node_pushed_through_the_other() {
    let backend = CloudDb::postgres().expect("a scratch PostgreSQL database");
    let dir = tempfile::tempdir().expect("tempdir");
    let (one, two) = Cloud::two_replicas(dir.path(), backend, &[]).expect("two replicas");
    let (_, node) = one.register_node("hq").expect("node");
    let t = ticket(&one, &one.admin_token);
    let mut ws = open(&two, Some(&t)).expect("a ticket from one opens at two");
    subscribe(&mut ws, &["tenant"], None);
    push(&one, &node, 1..=5);
    let m = next(&mut ws).expect("heard across replicas");
    assert_eq!(ids(&m), ids_of(1..=5), "{m}");
}

/// Whether `v` fits `schema` (the JSON Schema subset utoipa writes: `$ref`, `type` — one or a
/// list —, `properties` and `required`, `items`, `oneOf`/`anyOf`/`allOf`, `enum`, `const`);
/// why not, if it does not.
fn fits(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let target = doc
            .pointer(r.trim_start_matches('#'))
            .ok_or(format!("{at}: {r} missing"))?;
        return fits(doc, target, v, at);
    }
    for (key, any) in [("oneOf", true), ("anyOf", true), ("allOf", false)] {
        if let Some(options) = schema[key].as_array() {
            let results: Vec<_> = options.iter().map(|o| fits(doc, o, v, at)).collect();
            let ok = if any {
                results.iter().any(Result::is_ok)
            } else {
                results.iter().all(Result::is_ok)
            };
            if !ok {
                return Err(format!("{at}: {key} not met by {v}: {results:?}"));
            }
        }
    }
    if let Some(c) = schema.get("const")
        && c != v
    {
        return Err(format!("{at}: {v} is not {c}"));
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(v)
    {
        return Err(format!("{at}: {v} not in {e:?}"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let allowed = types.is_empty()
        || types.contains(&kind)
        || (kind == "integer" && types.contains(&"number"));
    if !allowed {
        return Err(format!("{at}: {v} is {kind}, the schema says {types:?}"));
    }
    if let (Value::Object(o), Some(props)) = (v, schema["properties"].as_object()) {
        for r in schema["required"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap_or_default();
            if !o.contains_key(r) {
                return Err(format!("{at}: `{r}` is required"));
            }
        }
        for (k, field) in o {
            let s = props
                .get(k)
                .ok_or(format!("{at}: `{k}` is not in the schema"))?;
            fits(doc, s, field, &format!("{at}.{k}"))?;
        }
    }
    if let (Value::Array(items), Some(s)) = (v, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            fits(doc, s, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

#[test]
fn every_message_that_arrives_fits_the_published_asyncapi_document() {
    on_each_backend(&[], |backend, cloud, _dir| {
        let (status, doc) = cloud
            .call("GET", "/api/asyncapi.json", None, None, None)
            .expect("document");
        assert_eq!(
            (status, doc["asyncapi"].as_str()),
            (200, Some("3.0.0")),
            "{backend}"
        );
        let (_, node) = cloud.register_node("hq").expect("node");
        let mut ws = open(cloud, Some(&ticket(cloud, &cloud.admin_token))).expect("open");
        subscribe(&mut ws, &["tenant"], None);
        // A fresh check-in (the node is online), a person made through the API, an alarm.
        let now = rollcall_service::clock::now_ms();
        let mut e = event(1);
        e["node_time_ms"] = now.into();
        e["decision"] = "review".into();
        e["reasons"] =
            json!([{ "code": "impossible_travel", "text": "1 200 km in 10 min", "weight": 0.6 }]);
        let alarm = json!({ "id": "01HZZZZZZZZZZZZZZZZZZZA001", "seq": 1, "kind": "door_forced",
                            "pd": 101, "node_time_ms": now, "detail": "door 1" });
        let (status, ack) = cloud
            .call(
                "POST",
                "/api/v1/sync/push",
                Some(&node),
                Some(&json!({ "protocol": 1, "events": [e], "alarms": [alarm] })),
                None,
            )
            .expect("push");
        assert_eq!(status, 200, "{ack}");
        let (status, p) = cloud
            .admin_post(
                "/api/v1/people",
                &json!({ "id": "pat", "display_name": "Pat", "site_ids": [] }),
            )
            .expect("person");
        assert_eq!(status, 201, "{p}");
        let mut seen = Vec::new();
        while seen.len() < 4 {
            let m = next(&mut ws).expect("message");
            let kind = m["type"].as_str().expect("type").to_owned();
            let payload = &doc["components"]["messages"][&kind]["payload"];
            assert!(
                payload.is_object(),
                "{backend}: `{kind}` is not in the document"
            );
            fits(&doc, payload, &m, &kind).unwrap_or_else(|why| panic!("{backend}: {why}"));
            // And the check can fail: a field the schema does not name, a missing one.
            let mut extra = m.clone();
            extra["data"]["surprise"] = 1.into();
            assert!(fits(&doc, payload, &extra, &kind).is_err(), "{kind}");
            let mut missing = m.clone();
            missing.as_object_mut().map(|o| o.remove("seq"));
            assert!(fits(&doc, payload, &missing, &kind).is_err(), "{kind}");
            seen.push(kind);
        }
        assert_eq!(
            seen,
            [
                "attendance.events",
                "alarm",
                "node.status",
                "person.changed"
            ],
            "{backend}"
        );
    });
}

#[test]
fn a_job_someone_started_is_followed_live_to_its_end() {
    on_each_backend(&[], |backend, cloud, _dir| {
        let (_, doc) = cloud
            .call("GET", "/api/asyncapi.json", None, None, None)
            .expect("document");
        let enqueue = |args: Value, at: Option<i64>| {
            let (status, e) = cloud
                .admin_post(
                    "/api/v1/jobs",
                    &json!({ "kind": "probe", "args": args, "scheduled_ms": at }),
                )
                .expect("enqueue");
            assert_eq!(status, 201, "{e}");
            e["job"]["id"].as_i64().expect("id")
        };
        let check = |m: &Value| {
            let payload =
                &doc["components"]["messages"][m["type"].as_str().unwrap_or("?")]["payload"];
            fits(&doc, payload, m, "job").unwrap_or_else(|why| panic!("{backend}: {why}"));
        };
        // Subscribed before it runs: its progress, then its end with the result.
        let id = enqueue(json!({ "note": "followed", "sleep_ms": 600 }), None);
        let mut ws = open(cloud, Some(&ticket(cloud, &cloud.admin_token))).expect("open");
        subscribe(&mut ws, &[&format!("job:{id}")], Some(0));
        let p = next(&mut ws).expect("progress");
        check(&p);
        assert_eq!(
            (
                p["type"].as_str(),
                p["data"]["percent"].as_u64(),
                p["data"]["job_id"].as_i64()
            ),
            (Some("job.progress"), Some(50), Some(id)),
            "{backend}: {p}"
        );
        let f = next(&mut ws).expect("finished");
        check(&f);
        assert_eq!(
            (
                f["type"].as_str(),
                f["data"]["state"].as_str(),
                f["data"]["result"]["note"].as_str()
            ),
            (Some("job.finished"), Some("completed"), Some("followed")),
            "{backend}: {f}"
        );
        // A cancelled one (due in an hour) ends as cancelled.
        let later = rollcall_service::clock::now_ms() + 3_600_000;
        let long = enqueue(json!({ "note": "long" }), Some(later));
        subscribe(&mut ws, &[&format!("job:{long}")], None);
        let (status, c) = cloud
            .admin_post(&format!("/api/v1/jobs/{long}/cancel"), &json!({}))
            .expect("cancel");
        assert!(status < 300, "{c}");
        let f = loop {
            let m = next(&mut ws).expect("message");
            if m["type"] == "job.finished" {
                break m;
            }
        };
        check(&f);
        assert_eq!(f["data"]["state"], "cancelled", "{backend}: {f}");
        // A supervisor follows no job they did not start.
        let owner = cloud.tenant_with_owner("globex").expect("tenant");
        let (status, u) = cloud
            .call(
                "POST",
                "/api/v1/users",
                Some(&owner),
                Some(&json!({
                "email": "sup@globex.example", "display_name": "Sup", "role": "supervisor",
                "password": "a long enough password" })),
                None,
            )
            .expect("user");
        assert_eq!(status, 201, "{u}");
        let sup = cloud
            .login("globex", "sup@globex.example", "a long enough password")
            .expect("login");
        let mut ws = open(cloud, Some(&ticket(cloud, &sup))).expect("open");
        send(
            &mut ws,
            json!({ "type": "subscribe", "topics": [format!("job:{id}")] }),
        );
        assert_eq!(
            next(&mut ws).expect("refused")["code"],
            "forbidden",
            "{backend}"
        );
    });
}
