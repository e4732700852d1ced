//! Notifications end to end (#22), on both backends, with a real SMTP server (aiosmtpd): a
//! node's alarm lands in the inboxes of the tenant's watchers, live on their `user:` topic, and
//! — critical or wanted — by mail with a text and an HTML part that escapes what it is given;
//! preferences cannot mute a critical kind; quiet hours hold mail that is not critical; a
//! digest sends one mail for many; a mail server that is down then up delivers once; a
//! refusal for good lands in the dead letters.

use std::{net::TcpStream, time::Duration};

use rollcall_tests::{Cloud, SmtpSink, environment_ready, free_port, on_each_backend, smtp_python};
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket, stream::MaybeTlsStream};

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

const PASSWORD: &str = "a long enough password";

/// Makes a user and logs them in: (id, access token).
fn user(cloud: &Cloud, email: &str, name: &str, role: &str) -> (String, String) {
    let (status, u) = cloud
        .admin_post(
            "/api/v1/users",
            &json!({ "email": email, "display_name": name, "role": role, "password": PASSWORD }),
        )
        .expect("user");
    assert_eq!(status, 201, "{u}");
    let token = cloud.login("acme", email, PASSWORD).expect("login");
    (u["id"].as_str().expect("id").to_owned(), token)
}

fn alarm(n: u32, kind: &str, detail: &str) -> Value {
    json!({ "id": format!("01HZZZZZZZZZZZZZZZZZZZB{n:03}"), "seq": n, "kind": kind, "pd": 101,
            "node_time_ms": 1_700_000_000_000i64 + i64::from(n), "detail": detail })
}

fn push_alarms(cloud: &Cloud, node: &str, alarms: &[Value]) {
    let (status, ack) = cloud
        .call(
            "POST",
            "/api/v1/sync/push",
            Some(node),
            Some(&json!({ "protocol": 1, "events": [], "alarms": alarms })),
            None,
        )
        .expect("push");
    assert_eq!(status, 200, "{ack}");
}

fn inbox(cloud: &Cloud, token: &str, query: &str) -> Value {
    let (status, b) = cloud
        .call(
            "GET",
            &format!("/api/v1/notifications{query}"),
            Some(token),
            None,
            None,
        )
        .expect("inbox");
    assert_eq!(status, 200, "{b}");
    b
}

fn kinds_of(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["kind"].as_str().map(str::to_owned))
        .collect()
}

/// Opens the WebSocket as `token` and subscribes to `topic`: the server's reply.
fn subscribe(cloud: &Cloud, token: &str, topic: &str) -> (Socket, Value) {
    let (status, t) = cloud
        .call("POST", "/api/v1/realtime/tickets", Some(token), None, None)
        .expect("ticket");
    assert_eq!(status, 201, "{t}");
    let url = format!(
        "ws://{}/api/v1/realtime/ws?ticket={}",
        cloud.addr().expect("addr"),
        t["ticket"].as_str().expect("ticket")
    );
    let (mut ws, _) = tungstenite::connect(url).expect("open");
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
    }
    let sub = json!({ "type": "subscribe", "topics": [topic] });
    ws.send(Message::text(sub.to_string())).expect("send");
    let reply = next(&mut ws);
    (ws, reply)
}

fn live(cloud: &Cloud, token: &str, topic: &str) -> Socket {
    let (ws, reply) = subscribe(cloud, token, topic);
    assert_eq!(reply["type"], "subscribed", "{reply}");
    ws
}

fn next(ws: &mut Socket) -> Value {
    loop {
        match ws.read().expect("read") {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON"),
            Message::Close(f) => panic!("closed: {f:?}"),
            _ => {}
        }
    }
}

/// The tenant's jobs of `kind`, newest first.
fn jobs(cloud: &Cloud, kind: &str) -> Vec<Value> {
    let (status, b) = cloud
        .admin_get(&format!("/api/v1/jobs?kind={kind}"))
        .expect("jobs");
    assert_eq!(status, 200, "{b}");
    b["items"].as_array().cloned().unwrap_or_default()
}

/// Polls until `check` holds for the jobs of `kind` (what the workers do takes a moment).
fn until_jobs(
    cloud: &Cloud,
    kind: &str,
    what: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let start = std::time::Instant::now();
    loop {
        let j = jobs(cloud, kind);
        if check(&j) {
            return j;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{what}: {j:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn patch_prefs(cloud: &Cloud, token: &str, body: &Value) -> (u16, Value) {
    cloud
        .call(
            "PATCH",
            "/api/v1/me/notification-preferences",
            Some(token),
            Some(body),
            None,
        )
        .expect("preferences")
}

#[test]
fn an_alarm_reaches_inboxes_live_and_by_mail_escaped() {
    if !environment_ready(smtp_python()) {
        return;
    }
    let sink_dir = tempfile::TempDir::new().expect("tempdir");
    let sink = SmtpSink::start(sink_dir.path()).expect("SMTP server");
    let url = sink.url();
    let args = [
        "--smtp-url",
        url.as_str(),
        "--mail-from",
        "rollcall <alerts@acme.example>",
    ];
    on_each_backend(&args, |backend, cloud, _dir| {
        let before = sink.messages().len();
        let ann_email = format!("ann.{backend}@acme.example");
        let (ann, ann_token) = user(cloud, &ann_email, "Ann <script>x</script>", "supervisor");
        let (_, gus_token) = user(
            cloud,
            &format!("gus.{backend}@acme.example"),
            "Gus",
            "guard",
        );
        let (_, node) = cloud.register_node("hq").expect("node");
        let mut ws = live(cloud, &ann_token, &format!("user:{ann}"));
        // Nobody listens on another user's topic.
        let (_spy, refused) = subscribe(cloud, &gus_token, &format!("user:{ann}"));
        assert_eq!(refused["code"], "forbidden", "{backend}: {refused}");

        push_alarms(
            cloud,
            &node,
            &[
                alarm(1, "tamper", "<script>alert(1)</script> lid"),
                alarm(2, "door_held_open", ""),
            ],
        );
        // Live, in the push's order, on Ann's own topic.
        let first = next(&mut ws);
        assert_eq!(first["type"], "notification", "{backend}: {first}");
        assert_eq!(first["topic"], format!("user:{ann}"));
        assert_eq!(first["data"]["kind"], "alarm.tamper");
        assert_eq!(first["data"]["critical"], true);
        assert_eq!(first["data"]["title"], "Tamper at hq");
        let second = next(&mut ws);
        assert_eq!(
            second["data"]["kind"], "alarm.door_held_open",
            "{backend}: {second}"
        );

        // In the inbox, newest first; the guard's stays empty.
        let page = inbox(cloud, &ann_token, "");
        assert_eq!(
            kinds_of(&page),
            ["alarm.door_held_open", "alarm.tamper"],
            "{backend}"
        );
        assert_eq!(page["unread"], 2);
        assert_eq!(
            inbox(cloud, &gus_token, "")["items"],
            json!([]),
            "{backend}"
        );
        let tamper_id = first["data"]["id"].as_str().expect("id").to_owned();

        // Tamper is critical: mailed at once. Held open does not mail by default.
        let mails = sink.wait_for(before + 1, Duration::from_secs(30));
        let mine: Vec<_> = mails[before..].iter().collect();
        assert_eq!(mine.len(), 1, "{backend}: {mine:?}");
        let m = mine[0];
        assert_eq!(m.rcpt_tos, [ann_email.as_str()]);
        assert_eq!(m.subject, "[acme] Tamper at hq");
        assert!(m.from.contains("alerts@acme.example"), "{}", m.from);
        assert!(m.message_id.contains(&tamper_id), "{}", m.message_id);
        let text = m.text.as_deref().expect("a text part");
        let html = m.html.as_deref().expect("an HTML part");
        assert!(text.contains("Hello Ann <script>x</script>,"), "{text}");
        assert!(text.contains("<script>alert(1)</script> lid"), "{text}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; lid"),
            "{html}"
        );
        let done = until_jobs(cloud, "notifications.mail", "the mail job completes", |j| {
            j.iter().any(|j| j["state"] == "completed")
        });
        assert_eq!(
            done[0]["result"]["sent_to"],
            ann_email.as_str(),
            "{backend}"
        );

        // Read one, then all: the count follows, and other tabs hear of it.
        let (status, r) = cloud
            .call(
                "POST",
                &format!("/api/v1/notifications/{tamper_id}/read"),
                Some(&ann_token),
                None,
                None,
            )
            .expect("read");
        assert_eq!((status, r["unread"].clone()), (200, json!(1)), "{r}");
        let heard = next(&mut ws);
        assert_eq!(heard["type"], "notifications.read", "{heard}");
        assert_eq!(heard["data"]["unread"], 1);
        assert_eq!(
            kinds_of(&inbox(cloud, &ann_token, "?unread=true")),
            ["alarm.door_held_open"]
        );
        // Another user's notification is not found, and neither is nonsense.
        for id in [tamper_id.as_str(), "ntf_nonsense"] {
            let (status, _) = cloud
                .call(
                    "POST",
                    &format!("/api/v1/notifications/{id}/read"),
                    Some(&gus_token),
                    None,
                    None,
                )
                .expect("read");
            assert_eq!(status, 404, "{backend}: {id}");
        }
        let (status, r) = cloud
            .call(
                "POST",
                "/api/v1/notifications/read-all",
                Some(&ann_token),
                None,
                None,
            )
            .expect("read all");
        assert_eq!((status, r["unread"].clone()), (200, json!(0)), "{r}");
        // The bootstrap administrator is no user: no inbox.
        let (status, p) = cloud.admin_get("/api/v1/notifications").expect("inbox");
        assert_eq!(
            (status, p["type"].clone()),
            (409, json!("urn:rollcall:problem:no-inbox"))
        );

        // A critical kind cannot be muted; held open can be asked for by mail.
        let (status, p) = patch_prefs(
            cloud,
            &ann_token,
            &json!({ "kinds": [
            { "kind": "alarm.tamper", "in_app": true, "email": false } ] }),
        );
        assert_eq!(status, 422, "{p}");
        assert_eq!(p["type"], "urn:rollcall:problem:critical-notification");
        let (status, p) = patch_prefs(
            cloud,
            &ann_token,
            &json!({ "kinds": [
            { "kind": "alarm.door_held_open", "in_app": false, "email": true } ] }),
        );
        assert_eq!(status, 200, "{p}");
        let held = p["kinds"]
            .as_array()
            .expect("kinds")
            .iter()
            .find(|k| k["kind"] == "alarm.door_held_open")
            .expect("held open")
            .clone();
        assert_eq!(
            held,
            json!({ "kind": "alarm.door_held_open", "critical": false, "in_app": false,
                                 "email": true, "digest_minutes": 0, "source": "user" })
        );
        push_alarms(cloud, &node, &[alarm(3, "door_held_open", "door 2")]);
        let mails = sink.wait_for(before + 2, Duration::from_secs(30));
        assert_eq!(mails.len(), before + 2, "{backend}");
        assert_eq!(mails[before + 1].subject, "[acme] Door held open at hq");
        // Mail only: nothing new in the inbox.
        assert_eq!(
            inbox(cloud, &ann_token, "")["items"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
    });
}

#[test]
fn quiet_hours_hold_mail_critical_goes_and_a_digest_groups() {
    if !environment_ready(smtp_python()) {
        return;
    }
    let sink_dir = tempfile::TempDir::new().expect("tempdir");
    let sink = SmtpSink::start(sink_dir.path()).expect("SMTP server");
    let url = sink.url();
    on_each_backend(&["--smtp-url", url.as_str()], |backend, cloud, _dir| {
        let before = sink.messages().len();
        let email = format!("quinn.{backend}@acme.example");
        let (_, token) = user(cloud, &email, "Quinn", "admin");
        let (_, node) = cloud.register_node("hq").expect("node");
        // Quiet from an hour ago to an hour from now, in Kolkata (UTC+05:30, no DST).
        let now_min = (rollcall_service::clock::now_ms() / 60_000 + 330) % 1440;
        let hhmm = |m: i64| {
            format!(
                "{:02}:{:02}",
                m.rem_euclid(1440) / 60,
                m.rem_euclid(1440) % 60
            )
        };
        let (status, p) = patch_prefs(
            cloud,
            &token,
            &json!({
            "time_zone": "Asia/Kolkata",
            "quiet_hours": { "from": hhmm(now_min - 60), "to": hhmm(now_min + 60) },
            "kinds": [{ "kind": "alarm.door_held_open", "in_app": true, "email": true }] }),
        );
        assert_eq!(status, 200, "{p}");
        assert_eq!(p["time_zone"], "Asia/Kolkata");
        push_alarms(
            cloud,
            &node,
            &[alarm(1, "door_held_open", ""), alarm(2, "door_forced", "")],
        );
        // Door forced is critical: through the quiet hours at once.
        let mails = sink.wait_for(before + 1, Duration::from_secs(30));
        assert_eq!(mails.len(), before + 1, "{backend}");
        assert_eq!(mails[before].subject, "[acme] Door forced at hq");
        // Held open waits for the end of the quiet hours (about an hour from now).
        let held = until_jobs(cloud, "notifications.mail", "two mail jobs", |j| {
            j.len() == 2
        });
        let waiting: Vec<_> = held.iter().filter(|j| j["state"] == "available").collect();
        assert_eq!(waiting.len(), 1, "{backend}: {held:?}");
        let wait_ms = waiting[0]["scheduled_ms"].as_i64().expect("scheduled")
            - rollcall_service::clock::now_ms();
        assert!(
            (55 * 60_000..=61 * 60_000).contains(&wait_ms),
            "{backend}: held {wait_ms} ms"
        );

        // A digest: one mail per hour for reader-offline alarms, however many.
        let (status, p) = patch_prefs(
            cloud,
            &token,
            &json!({ "quiet_hours": null, "kinds": [
            { "kind": "alarm.reader_offline", "in_app": true, "email": true, "digest_minutes": 60 }] }),
        );
        assert_eq!(status, 200, "{p}");
        assert!(p.get("quiet_hours").is_none(), "{p}");
        for n in 3..6 {
            push_alarms(
                cloud,
                &node,
                &[alarm(n, "reader_offline", &format!("reader {n}"))],
            );
        }
        let digests = jobs(cloud, "notifications.digest");
        assert_eq!(
            digests.len(),
            1,
            "{backend}: one digest job for the window: {digests:?}"
        );
        let until = digests[0]["args"]["until_ms"].as_i64().expect("until");
        assert_eq!(until % 3_600_000, 0, "the window ends on the hour");
        assert_eq!(digests[0]["scheduled_ms"], until);
        // The operator runs it early (cancel, retry): one mail with the three.
        let id = digests[0]["id"].as_i64().expect("id");
        for step in ["cancel", "retry"] {
            let (status, b) = cloud
                .admin_post(&format!("/api/v1/jobs/{id}/{step}"), &json!({}))
                .expect(step);
            assert!(status == 200 || status == 202, "{step}: {status} {b}");
        }
        let mails = sink.wait_for(before + 2, Duration::from_secs(30));
        assert_eq!(mails.len(), before + 2, "{backend}");
        let digest = &mails[before + 1];
        assert!(
            digest.subject.starts_with("[acme] 3 notifications"),
            "{}",
            digest.subject
        );
        let text = digest.text.as_deref().expect("text");
        for n in 3..6 {
            assert!(text.contains(&format!("reader {n}")), "{text}");
        }
        until_jobs(cloud, "notifications.digest", "the digest completes", |j| {
            j[0]["state"] == "completed" && j[0]["result"]["notifications"] == 3
        });
    });
}

#[test]
fn a_mail_server_down_then_up_delivers_once_and_a_refusal_is_a_dead_letter() {
    if !environment_ready(smtp_python()) {
        return;
    }
    let sink_dir = tempfile::TempDir::new().expect("tempdir");
    let port = free_port().expect("port");
    let url = format!("smtp://127.0.0.1:{port}");
    on_each_backend(&["--smtp-url", url.as_str()], |backend, cloud, _dir| {
        let (_, _) = user(
            cloud,
            &format!("dana.{backend}@acme.example"),
            "Dana",
            "owner",
        );
        let (_, node) = cloud.register_node("hq").expect("node");
        push_alarms(cloud, &node, &[alarm(1, "tamper", "")]);
        // Nothing listens: the attempt fails and the job waits to retry.
        let failed = until_jobs(cloud, "notifications.mail", "a failed attempt", |j| {
            j.first()
                .is_some_and(|j| j["errors"].as_array().is_some_and(|e| !e.is_empty()))
        });
        assert_ne!(failed[0]["state"], "completed", "{backend}");
        let mut sink = SmtpSink::start_on(sink_dir.path(), port, None).expect("SMTP server up");
        let done = until_jobs(
            cloud,
            "notifications.mail",
            "delivered after the server came up",
            |j| j[0]["state"] == "completed",
        );
        assert_eq!(done.len(), 1);
        let mine: Vec<_> = sink
            .messages()
            .into_iter()
            .filter(|m| {
                m.rcpt_tos
                    .iter()
                    .any(|r| r.starts_with(&format!("dana.{backend}")))
            })
            .collect();
        assert_eq!(mine.len(), 1, "{backend}: delivered once");

        // A recipient the server refuses for good: the job is a dead letter with the reason.
        let (_, _) = user(
            cloud,
            &format!("refuse.{backend}@acme.example"),
            "Ray",
            "admin",
        );
        push_alarms(cloud, &node, &[alarm(2, "door_forced", "")]);
        let dead = until_jobs(cloud, "notifications.mail", "a discarded mail", |j| {
            j.iter().any(|j| j["state"] == "discarded")
        });
        let d = dead
            .iter()
            .find(|j| j["state"] == "discarded")
            .expect("dead letter");
        assert!(
            d["errors"].to_string().contains("for good"),
            "{backend}: {d}"
        );
        assert_eq!(d["attempt"], 1, "a 5xx is not retried");
        sink.stop();
    });
}

#[test]
fn mail_goes_over_starttls_with_auth_to_a_server_a_private_ca_signed() {
    if !environment_ready(smtp_python()) {
        return;
    }
    let dir = tempfile::TempDir::new().expect("tempdir");
    let (ca, cert, key) = rollcall_tests::private_ca(dir.path());
    let sink = SmtpSink::start_tls(
        &dir.path().join("smtp"),
        ("alerts", "s3cret pass"),
        &cert,
        &key,
    )
    .expect("SMTP server with STARTTLS");
    let url = sink.url();
    let ca = ca.display().to_string();
    // Trusting the CA: delivered over TLS, after AUTH.
    let trusting = Cloud::start_with(
        &dir.path().join("trusting"),
        None,
        rollcall_tests::CloudDb::Sqlite,
        &["--smtp-url", &url, "--smtp-ca-file", &ca],
    )
    .expect("cloud");
    user(&trusting, "tess@acme.example", "Tess", "admin");
    let (_, node) = trusting.register_node("hq").expect("node");
    push_alarms(&trusting, &node, &[alarm(1, "tamper", "")]);
    let mails = sink.wait_for(1, Duration::from_secs(30));
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].rcpt_tos, ["tess@acme.example"]);
    // Not trusting it: the certificate is refused, nothing is sent, the job retries.
    let wary = Cloud::start_with(
        &dir.path().join("wary"),
        None,
        rollcall_tests::CloudDb::Sqlite,
        &["--smtp-url", &url],
    )
    .expect("cloud");
    user(&wary, "will@acme.example", "Will", "admin");
    let (_, node) = wary.register_node("hq").expect("node");
    push_alarms(&wary, &node, &[alarm(1, "tamper", "")]);
    let failed = until_jobs(&wary, "notifications.mail", "a refused certificate", |j| {
        j.first()
            .is_some_and(|j| j["errors"].as_array().is_some_and(|e| !e.is_empty()))
    });
    assert_ne!(failed[0]["state"], "completed");
    assert!(
        failed[0]["errors"]
            .to_string()
            .to_lowercase()
            .contains("certificate"),
        "{}",
        failed[0]
    );
    assert_eq!(
        sink.messages().len(),
        1,
        "nothing reached the server from the wary cloud"
    );
    // A CA file that holds no certificate stops the start with a precise message.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").expect("write");
    let junk = junk.display().to_string();
    let refused = Cloud::start_with(
        &dir.path().join("junk"),
        None,
        rollcall_tests::CloudDb::Sqlite,
        &["--smtp-url", &url, "--smtp-ca-file", &junk],
    );
    let Err(e) = refused else {
        panic!("a cloud started with a junk CA file")
    };
    assert!(e.to_string().contains("--smtp-ca-file"), "{e}");
}
