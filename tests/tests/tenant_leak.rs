//! The tenant-leak matrix, on both backends: tenants A (acme, the bootstrap tenant) and B
//! (globex) each have a user, a node, events, bundles, a site, a person with a face template and
//! a shift, and audit entries. B's owner then tries every tenant endpoint against A's objects —
//! by id (every operation of the OpenAPI document that takes one: a new endpoint without a case
//! here fails the test), by filter, in lists, for read, change and delete — and gets 404 or
//! nothing, and A's objects are unchanged afterwards. A's node cannot push into or read B either.

use rollcall_tests::on_each_backend;
use serde_json::{Value, json};

const PW: &str = "correct horse battery staple";

fn event(n: u32) -> Value {
    json!({
        "id": format!("01HZZZZZZZZZZZZZZZZZZZ{n:04}"), "seq": n, "site_id": "hq",
        "person_id": "p-acme", "decision": "granted", "similarity": 0.8, "risk_score": 0.0,
        "position": null, "node_time_ms": 1_700_000_000_000i64 + i64::from(n), "reasons": [],
    })
}

#[test]
fn no_endpoint_lets_one_tenant_see_or_touch_another() {
    on_each_backend(&[], |name, cloud, _dir| {
        let a = cloud.admin_token.clone();
        let call = |method: &str, path: &str, token: &str, body: Option<&Value>| {
            cloud
                .call(method, path, Some(token), body, None)
                .expect("request")
        };

        // Tenant A's objects.
        let (_, a_user) = call(
            "POST",
            "/api/v1/users",
            &a,
            Some(&json!({
            "email": "ops@acme.example", "display_name": "Ops", "role": "admin", "password": PW })),
        );
        let a_user = a_user["id"].as_str().expect("user id").to_owned();
        let (status, a_job) = call(
            "POST",
            "/api/v1/jobs",
            &a,
            Some(&json!({ "kind": "probe", "args": { "note": "acme-probe-note" } })),
        );
        assert_eq!(status, 201, "{name}: {a_job}");
        let a_job = a_job["job"]["id"].as_i64().expect("job id");
        let (status, a_schedule) = call(
            "POST",
            "/api/v1/job-schedules",
            &a,
            Some(
                &json!({ "name": "acme-nightly", "cron": "0 2 * * *", "kind": "probe",
                          "args": { "note": "acme-probe-note" } }),
            ),
        );
        assert_eq!(status, 201, "{name}: {a_schedule}");
        let a_schedule = a_schedule["id"].as_i64().expect("schedule id");
        let (a_node, a_node_token) = cloud.register_node("hq").expect("node");
        let (status, _) = call(
            "POST",
            "/api/v1/sync/push",
            &a_node_token,
            Some(&json!({ "protocol": 1, "events": [event(1), event(2)],
                "alarms": [{ "id": "01HZZZZZZZZZZZZZZZZZZZA001", "seq": 1, "kind": "tamper",
                             "detail": "acme-lid", "node_time_ms": 1 }],
                "audit": [{ "id": "01HZZZZZZZZZZZZZZZZZZZV001", "seq": 1, "actor": "admin",
                            "action": "person.deleted", "subject": "p-acme", "detail": "",
                            "node_time_ms": 1 }] })),
        );
        assert_eq!(status, 200);
        let (_, own) = call("GET", "/api/v1/alarms", &a, None);
        assert_eq!(
            own["items"][0]["detail"], "acme-lid",
            "{name}: A sees its own alarm"
        );
        let (status, _) = call(
            "POST",
            "/api/v1/config-bundles",
            &a,
            Some(&json!({ "site_id": "hq", "config_toml": "[node]\nsite_id = \"hq\"\n" })),
        );
        assert_eq!(status, 201);
        let (_, a_key) = call("GET", "/api/v1/signing-key", &a, None);
        let square = json!({ "type": "Polygon", "coordinates": [[
            [2.35, 48.85], [2.36, 48.85], [2.36, 48.86], [2.35, 48.86], [2.35, 48.85]]] });
        let (status, p) = call(
            "POST",
            "/api/v1/sites",
            &a,
            Some(&json!({ "id": "acme-gate", "name": "Gate", "geofence": square })),
        );
        assert_eq!(status, 201, "{name}: {p}");
        let (status, p) = call(
            "POST",
            "/api/v1/people",
            &a,
            Some(
                &json!({ "id": "acme-guard", "display_name": "Guard", "site_ids": ["acme-gate"] }),
            ),
        );
        assert_eq!(status, 201, "{name}: {p}");
        let embedding = json!(vec![0.1f32; 128]);
        let (status, t) = call(
            "POST",
            "/api/v1/people/acme-guard/templates",
            &a,
            Some(&json!({ "model": "mobilefacenet-v1", "embedding": embedding })),
        );
        assert_eq!(status, 201, "{name}: {t}");
        let a_template = t["id"].as_str().expect("template id").to_owned();
        let (status, sh) = call(
            "POST",
            "/api/v1/shifts",
            &a,
            Some(&json!({ "person_id": "acme-guard", "site_id": "acme-gate",
                          "starts_ms": 1_800_000_000_000i64, "ends_ms": 1_800_028_800_000i64 })),
        );
        assert_eq!(status, 201, "{name}: {sh}");
        let a_shift = sh["id"].as_str().expect("shift id").to_owned();
        let (status, r) = call(
            "POST",
            "/api/v1/card-revocations",
            &a,
            Some(&json!({ "card": "12:3456", "reason": "acme-lost-card" })),
        );
        assert_eq!(status, 201, "{name}: {r}");
        // A's admin got the tamper alarm in their inbox; A has mail templates of its own.
        let (status, s) = cloud
            .call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(&json!({ "tenant": "acme", "email": "ops@acme.example", "password": PW })),
                None,
            )
            .expect("login");
        assert_eq!(status, 200, "{name}: {s}");
        let ops = s["access_token"].as_str().expect("token").to_owned();
        let (_, inbox) = call("GET", "/api/v1/notifications", &ops, None);
        let a_notification = inbox["items"][0]["id"]
            .as_str()
            .expect("A's notification")
            .to_owned();
        let acme_templates = json!({ "subject": "acme-template-subject", "text": "acme-template-text",
                                     "html": "<p>acme-template-html</p>" });
        let (status, p) = call(
            "PUT",
            "/api/v1/mail-templates/alarm.tamper",
            &a,
            Some(&acme_templates),
        );
        assert_eq!(status, 200, "{name}: {p}");
        let (status, p) = call(
            "PATCH",
            "/api/v1/notification-defaults",
            &a,
            Some(&json!({
            "kinds": [{ "kind": "alarm.other", "in_app": false, "email": false }] })),
        );
        assert_eq!(status, 200, "{name}: {p}");

        // Tenant B and its owner.
        let b = cloud.tenant_with_owner("globex").expect("tenant B");
        let (_, b_node_token) = {
            let (status, n) = call(
                "POST",
                "/api/v1/nodes",
                &b,
                Some(&json!({ "site_id": "hq" })),
            );
            assert_eq!(status, 201, "{name}: {n}");
            (
                n["node_id"].as_str().expect("id").to_owned(),
                n["token"].as_str().expect("token").to_owned(),
            )
        };

        // By id: every operation of the document that names an object, with A's object — all 404.
        let (_, doc) = call("GET", "/api/openapi.json", &b, None);
        let event_id = "01HZZZZZZZZZZZZZZZZZZZ0001";
        let mut tried = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            // Node-credential paths (the blob upload) take no admin: `voice_records` tests them.
            if !path.contains('{')
                || path.starts_with("/api/v1/platform/")
                || path.starts_with("/api/v1/sync/")
            {
                continue;
            }
            // Templates are by kind, not A's objects: B reads the built-in ones, changes and
            // drops only its own.
            if path == "/api/v1/mail-templates/{kind}" {
                let (status, t) = call("GET", "/api/v1/mail-templates/alarm.tamper", &b, None);
                assert_eq!(status, 200, "{name}: {t}");
                assert!(!t.to_string().contains("acme-template"), "{name}: {t}");
                let (status, _) = call("DELETE", "/api/v1/mail-templates/alarm.tamper", &b, None);
                assert_eq!(status, 404, "{name}: B has no templates of its own");
                tried += 1;
                continue;
            }
            let concrete = match path.as_str() {
                "/api/v1/users/{id}" => format!("/api/v1/users/{a_user}"),
                "/api/v1/nodes/{id}" => format!("/api/v1/nodes/{a_node}"),
                "/api/v1/nodes/{id}/rejections" => format!("/api/v1/nodes/{a_node}/rejections"),
                "/api/v1/nodes/{id}/audit" => format!("/api/v1/nodes/{a_node}/audit"),
                "/api/v1/nodes/{id}/voice-verifications" => {
                    format!("/api/v1/nodes/{a_node}/voice-verifications")
                }
                "/api/v1/voice-verifications/{id}/audio" => {
                    format!("/api/v1/voice-verifications/{event_id}/audio")
                }
                "/api/v1/events/{id}" => format!("/api/v1/events/{event_id}"),
                "/api/v2/events/{id}" => format!("/api/v2/events/{event_id}"),
                "/api/v1/sites/{id}" => "/api/v1/sites/acme-gate".to_owned(),
                "/api/v1/people/{id}" => "/api/v1/people/acme-guard".to_owned(),
                "/api/v1/people/{id}/templates" => "/api/v1/people/acme-guard/templates".to_owned(),
                "/api/v1/people/{id}/history" => "/api/v1/people/acme-guard/history".to_owned(),
                "/api/v1/people/{id}/templates/{template_id}" => {
                    format!("/api/v1/people/acme-guard/templates/{a_template}")
                }
                "/api/v1/shifts/{id}" => format!("/api/v1/shifts/{a_shift}"),
                "/api/v1/card-revocations/{card}" => "/api/v1/card-revocations/12:3456".to_owned(),
                "/api/v1/jobs/{id}" => format!("/api/v1/jobs/{a_job}"),
                "/api/v1/jobs/{id}/retry" => format!("/api/v1/jobs/{a_job}/retry"),
                "/api/v1/jobs/{id}/cancel" => format!("/api/v1/jobs/{a_job}/cancel"),
                "/api/v1/job-schedules/{id}" => format!("/api/v1/job-schedules/{a_schedule}"),
                "/api/v1/job-schedules/{id}/run" => {
                    format!("/api/v1/job-schedules/{a_schedule}/run")
                }
                "/api/v1/notifications/{id}/read" => {
                    format!("/api/v1/notifications/{a_notification}/read")
                }
                other => panic!("{name}: the leak matrix has no case for {other}: add A's object"),
            };
            for method in item.as_object().expect("operations").keys() {
                // A body that passes validation, so the request gets as far as the lookup.
                let body = match (method.as_str(), path.as_str()) {
                    ("patch", "/api/v1/users/{id}") => {
                        Some(json!({ "role": "guard", "disabled": true }))
                    }
                    ("patch", "/api/v1/sites/{id}") => Some(json!({ "name": "Taken" })),
                    ("patch", "/api/v1/job-schedules/{id}") => Some(json!({ "paused": true })),
                    ("patch", "/api/v1/people/{id}") => {
                        Some(json!({ "display_name": "Taken", "active": false, "site_ids": [] }))
                    }
                    ("post", "/api/v1/people/{id}/templates") => {
                        Some(json!({ "model": "mobilefacenet-v1", "embedding": vec![0.2f32; 128] }))
                    }
                    _ => None,
                };
                let method = method.to_ascii_uppercase();
                let (status, p) = call(&method, &concrete, &b, body.as_ref());
                assert_eq!(status, 404, "{name}: {method} {concrete} → {p}");
                assert!(
                    !p.to_string().contains("Guard") && !p.to_string().contains("ops@acme"),
                    "{name}: {method} {concrete} tells of A: {p}"
                );
                tried += 1;
            }
        }
        assert!(tried >= 15, "{name}: only {tried} operations tried");
        // Lists and filters: nothing of A's.
        for path in [
            "/api/v1/users",
            "/api/v1/nodes",
            "/api/v1/events",
            "/api/v1/events?person_id=p-acme",
            "/api/v1/events?site_id=hq",
            "/api/v2/events?person_id=p-acme",
            "/api/v1/audit",
            "/api/v1/sites",
            "/api/v1/people",
            "/api/v1/people?site_id=acme-gate",
            "/api/v1/shifts",
            "/api/v1/shifts?person_id=acme-guard",
            "/api/v1/alarms",
            "/api/v1/alarms?site_id=hq&kind=tamper",
            "/api/v1/card-revocations",
            "/api/v1/jobs",
            "/api/v1/jobs?kind=probe",
            "/api/v1/job-schedules",
            "/api/v1/notifications",
            "/api/v1/notifications?unread=true",
            "/api/v1/notification-defaults",
            "/api/v1/me/notification-preferences",
            "/api/v1/mail-templates/alarm.tamper",
            "/api/v1/mail-templates/*",
        ] {
            let (status, body) = call("GET", path, &b, None);
            assert_eq!(status, 200, "{name}: {path}: {body}");
            let text = body.to_string();
            for secret in [
                a_user.as_str(),
                a_node.as_str(),
                "01HZZZZZZZZZZZZZZZZZZZ0001",
                "01HZZZZZZZZZZZZZZZZZZZA001",
                "acme-lid",
                "p-acme",
                "ops@acme.example",
                "acme-gate",
                "acme-guard",
                a_template.as_str(),
                a_shift.as_str(),
                "acme-lost-card",
                "acme-probe-note",
                "acme-nightly",
                a_notification.as_str(),
                "acme-template",
            ] {
                assert!(
                    !text.contains(secret),
                    "{name}: {path} shows A's {secret}: {text}"
                );
            }
        }
        // A's notification defaults are A's: B's still come from the kinds.
        let (_, d) = call("GET", "/api/v1/notification-defaults", &b, None);
        let other = d["kinds"]
            .as_array()
            .expect("kinds")
            .iter()
            .find(|k| k["kind"] == "alarm.other")
            .expect("alarm.other")
            .clone();
        assert_eq!(
            (other["in_app"].clone(), other["source"].clone()),
            (json!(true), json!("default")),
            "{name}"
        );
        // And A's notification is still unread, its templates still there.
        let (_, inbox) = call("GET", "/api/v1/notifications", &ops, None);
        assert!(inbox["items"][0]["read_ms"].is_null(), "{name}: {inbox}");
        let (_, t) = call("GET", "/api/v1/mail-templates/alarm.tamper", &a, None);
        assert_eq!(t, acme_templates, "{name}");
        // B's jobs cannot wait for A's: refused as if A's job did not exist, alone or in a batch.
        let waits_on_a = json!({ "kind": "probe", "waits": { "jobs": [a_job] } });
        for (path, body) in [
            ("/api/v1/jobs", waits_on_a.clone()),
            (
                "/api/v1/jobs/batch",
                json!({ "jobs": [{ "kind": "probe" }, waits_on_a] }),
            ),
        ] {
            let (status, p) = call("POST", path, &b, Some(&body));
            assert_eq!(status, 422, "{name}: {path}: {p}");
            assert!(
                p["type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("unknown-awaited-job")),
                "{name}: {path}: {p}"
            );
        }
        let (_, b_jobs) = call("GET", "/api/v1/jobs", &b, None);
        assert_eq!(b_jobs["items"], json!([]), "{name}: nothing of B's stored");
        // B's own signing key is not A's.
        let (_, b_key) = call("GET", "/api/v1/signing-key", &b, None);
        assert_ne!(a_key["public_key"], b_key["public_key"], "{name}");
        assert_eq!(b_key["tenant"], "globex");
        // B's bundles are numbered on their own.
        let (_, bundle) = call(
            "POST",
            "/api/v1/config-bundles",
            &b,
            Some(&json!({ "site_id": "hq", "config_toml": "[node]\nsite_id = \"hq\"\n" })),
        );
        assert_eq!(
            (bundle["tenant"].as_str(), bundle["serial"].as_u64()),
            (Some("globex"), Some(1)),
            "{name}"
        );

        // Nodes: B's node pushing A's event ids stores them as B's own, never touching A's.
        let (status, ack) = call(
            "POST",
            "/api/v1/sync/push",
            &b_node_token,
            Some(&json!({ "protocol": 1, "events": [event(1)] })),
        );
        assert_eq!(
            (status, ack["accepted"].as_array().map(Vec::len)),
            (200, Some(1)),
            "{name}: {ack}"
        );
        let (_, whoami) = call("GET", "/api/v1/sync/whoami", &b_node_token, None);
        assert_eq!(whoami["tenant"], "globex");
        // B's node pulls B's people only (none): not A's guard, not A's template.
        let (status, page) = call("GET", "/api/v1/sync/people", &b_node_token, None);
        assert_eq!(status, 200, "{name}: {page}");
        assert_eq!(page["items"], json!([]), "{name}: {page}");

        // A is exactly as it was.
        let (_, user) = cloud
            .admin_get(&format!("/api/v1/users/{a_user}"))
            .expect("user");
        assert_eq!(
            (user["role"].as_str(), user.get("disabled_ms")),
            (Some("admin"), None),
            "{name}: {user}"
        );
        assert_eq!(
            call("GET", "/api/v1/sync/whoami", &a_node_token, None).0,
            200,
            "{name}: A's node works"
        );
        let (_, events) = cloud.admin_get("/api/v1/events").expect("events");
        let events = events["items"].as_array().expect("items");
        assert_eq!(events.len(), 2, "{name}");
        assert!(
            events.iter().all(|e| e["node_id"] == a_node.as_str()),
            "{name}: {events:?}"
        );
        let (_, guard) = cloud
            .admin_get("/api/v1/people/acme-guard")
            .expect("person");
        assert_eq!(
            (
                guard["display_name"].as_str(),
                guard["active"].as_bool(),
                guard["templates"].as_u64()
            ),
            (Some("Guard"), Some(true), Some(1)),
            "{name}: {guard}"
        );
        assert_eq!(guard["site_ids"], json!(["acme-gate"]), "{name}");
        let (_, shifts) = cloud.admin_get("/api/v1/shifts").expect("shifts");
        assert_eq!(shifts["items"][0]["id"], a_shift.as_str(), "{name}");
        let (_, gate) = cloud.admin_get("/api/v1/sites/acme-gate").expect("site");
        assert_eq!(gate["name"], "Gate", "{name}");
        let (_, audit) = cloud.admin_get("/api/v1/audit").expect("audit");
        assert!(
            !audit.to_string().contains("globex"),
            "{name}: B's actions are not in A's trail"
        );
    });
}
