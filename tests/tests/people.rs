//! People on the cloud, on SQLite and PostgreSQL: profiles with their sites, shifts that never
//! overlap, face templates that are accepted but never given back and are sealed in the
//! database, erasure, who may do what; and a server refusing a master key that is not the
//! database's.

use std::path::Path;

use rollcall_tests::{Cloud, CloudDb, OWNER_PASSWORD, on_each_backend, pg_bytes};
use serde_json::{Value, json};

const H: i64 = 3_600_000;
const DAY0: i64 = 1_800_000_000_000;

fn square() -> Value {
    json!({ "type": "Polygon", "coordinates": [[
        [2.35, 48.85], [2.36, 48.85], [2.36, 48.86], [2.35, 48.86], [2.35, 48.85]]] })
}

/// A distinctive embedding: 1, 2, 3, … (the server stores it L2-normalised).
fn embedding() -> Vec<f32> {
    (1..=128).map(|i| i as f32).collect()
}

/// The little-endian bytes of the first values of the embedding as the server stores it.
fn stored_plaintext_prefix() -> Vec<u8> {
    let v = embedding();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter()
        .take(6)
        .flat_map(|x| (x / norm).to_le_bytes())
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every byte the SQLite cloud keeps in `dir` (database and its write-ahead log).
fn sqlite_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["cloud.sqlite", "cloud.sqlite-wal"] {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            all.extend(b);
        }
    }
    all
}

#[test]
fn people_shifts_and_sealed_templates() {
    on_each_backend(&[], |backend, cloud, dir| {
        let owner = cloud.tenant_with_owner("initech").expect("tenant");
        let call = |method: &str, path: &str, token: &str, body: Option<Value>| {
            cloud
                .call(method, path, Some(token), body.as_ref(), None)
                .expect("request")
        };
        for (id, name) in [("hq", "Head office"), ("annex", "Annex")] {
            let (status, p) = call(
                "POST",
                "/api/v1/sites",
                &owner,
                Some(json!({ "id": id, "name": name, "geofence": square() })),
            );
            assert_eq!(status, 201, "{backend}: {p}");
        }
        // A supervisor manages people and shifts; an auditor reads; a guard does neither.
        let mut tokens = std::collections::HashMap::new();
        for role in ["supervisor", "auditor", "guard"] {
            let email = format!("{role}@initech.example");
            let (status, p) = call(
                "POST",
                "/api/v1/users",
                &owner,
                Some(json!({ "email": email, "display_name": role, "role": role,
                             "password": OWNER_PASSWORD })),
            );
            assert_eq!(status, 201, "{backend}: {p}");
            let (status, login) = cloud
                .call(
                    "POST",
                    "/api/v1/auth/login",
                    None,
                    Some(
                        &json!({ "tenant": "initech", "email": email, "password": OWNER_PASSWORD }),
                    ),
                    None,
                )
                .expect("login");
            assert_eq!(status, 200, "{backend}: {login}");
            tokens.insert(
                role,
                login["access_token"].as_str().expect("token").to_owned(),
            );
        }
        let (supervisor, auditor, guard) =
            (&tokens["supervisor"], &tokens["auditor"], &tokens["guard"]);

        let milton = json!({ "id": "E-1042", "display_name": "Milton Waddams",
                             "employee_ref": "PAY-77", "site_ids": ["hq"] });
        let (status, _) = call("POST", "/api/v1/people", guard, Some(milton.clone()));
        assert_eq!(status, 403, "{backend}: guards do not manage people");
        let (status, p) = call("POST", "/api/v1/people", supervisor, Some(milton.clone()));
        assert_eq!(status, 201, "{backend}: {p}");
        assert_eq!(
            (
                p["site_ids"].clone(),
                p["active"].clone(),
                p["templates"].clone()
            ),
            (json!(["hq"]), json!(true), json!(0)),
            "{backend}: {p}"
        );
        let (status, p) = call("POST", "/api/v1/people", supervisor, Some(milton));
        assert_eq!(status, 409, "{backend}: {p}");
        let (status, p) = call(
            "POST",
            "/api/v1/people",
            supervisor,
            Some(json!({ "id": "E-2", "display_name": "Nobody", "site_ids": ["mars"] })),
        );
        assert_eq!(status, 400, "{backend}: {p}");
        assert!(
            p["detail"].as_str().unwrap_or_default().contains("mars"),
            "{p}"
        );
        // Bodies that do not fit the schema name the field, for people and for machines.
        for (body, field) in [
            (
                json!({ "id": "E-3", "display_name": "X", "colour": "red" }),
                "colour",
            ),
            (json!({ "display_name": "X" }), "id"),
            (
                json!({ "id": "E-3", "display_name": "X", "site_ids": "hq" }),
                "site_ids",
            ),
            (json!({ "id": "E 3", "display_name": "X" }), "id"),
        ] {
            let (status, p) = call("POST", "/api/v1/people", supervisor, Some(body));
            assert!(status == 400 || status == 422, "{backend}: {p}");
            assert_eq!(p["invalid-params"][0]["name"], field, "{backend}: {p}");
            assert!(
                p["detail"].as_str().unwrap_or_default().contains(field),
                "{p}"
            );
        }
        let (status, list) = call("GET", "/api/v1/people?site_id=hq", auditor, None);
        assert_eq!(
            (status, list["items"].as_array().map(Vec::len)),
            (200, Some(1)),
            "{list}"
        );
        let (status, _) = call("GET", "/api/v1/people?site_id=annex", auditor, None);
        assert_eq!(status, 200);

        // Templates: accepted, counted, listed as metadata, never returned.
        let (status, _) = call(
            "POST",
            "/api/v1/people/E-1042/templates",
            auditor,
            Some(json!({ "model": "mobilefacenet-v1", "embedding": embedding() })),
        );
        assert_eq!(status, 403, "{backend}: auditors change nothing");
        for (why, body) in [
            (
                "too short",
                json!({ "model": "mobilefacenet-v1", "embedding": vec![0.5f32; 10] }),
            ),
            (
                "all zeros",
                json!({ "model": "mobilefacenet-v1", "embedding": vec![0.0f32; 128] }),
            ),
            (
                "bad model",
                json!({ "model": "Mobile Face Net", "embedding": embedding() }),
            ),
        ] {
            let (status, p) = call(
                "POST",
                "/api/v1/people/E-1042/templates",
                supervisor,
                Some(body),
            );
            assert_eq!(status, 400, "{backend}: {why}: {p}");
        }
        let (status, t) = call(
            "POST",
            "/api/v1/people/E-1042/templates",
            supervisor,
            Some(json!({ "model": "mobilefacenet-v1", "embedding": embedding() })),
        );
        assert_eq!(status, 201, "{backend}: {t}");
        assert_eq!(
            (t["dim"].as_u64(), t.get("embedding")),
            (Some(128), None),
            "{t}"
        );
        let template = t["id"].as_str().expect("id").to_owned();
        let (_, p) = call("GET", "/api/v1/people/E-1042", auditor, None);
        assert_eq!(p["templates"], 1, "{backend}: {p}");
        let (_, list) = call("GET", "/api/v1/people/E-1042/templates", auditor, None);
        assert_eq!(list["items"][0]["id"], template.as_str());
        for body in [&p, &list] {
            assert!(!body.to_string().contains("embedding"), "{backend}: {body}");
        }
        // Sealed where it is stored: the vector's bytes are nowhere in the database.
        match &cloud.backend {
            CloudDb::Sqlite => {
                let bytes = sqlite_bytes(&dir.join("cloud"));
                assert!(bytes.len() > 10_000, "read the database");
                assert!(
                    !contains(&bytes, &stored_plaintext_prefix()),
                    "template stored in clear"
                );
            }
            CloudDb::Postgres(db) => {
                let sealed = pg_bytes(db, "SELECT sealed FROM face_templates").expect("query");
                assert_eq!(sealed.len(), 1);
                assert!(sealed[0].len() >= 128 * 4, "ciphertext");
                assert!(
                    !contains(&sealed[0], &stored_plaintext_prefix()),
                    "template stored in clear"
                );
            }
        }

        // Shifts: only where assigned, never overlapping, at most a day.
        let shift = |site: &str, from: i64, to: i64| {
            json!({ "person_id": "E-1042", "site_id": site, "starts_ms": DAY0 + from * H,
                    "ends_ms": DAY0 + to * H, "note": "front desk" })
        };
        let (status, s) = call(
            "POST",
            "/api/v1/shifts",
            supervisor,
            Some(shift("hq", 8, 16)),
        );
        assert_eq!(status, 201, "{backend}: {s}");
        for (why, body, wanted) in [
            ("overlap", shift("hq", 15, 20), 409),
            ("not assigned", shift("annex", 20, 22), 400),
            ("longer than a day", shift("hq", 20, 45), 400),
            ("ends before it starts", shift("hq", 30, 29), 400),
        ] {
            let (status, p) = call("POST", "/api/v1/shifts", supervisor, Some(body));
            assert_eq!(status, wanted, "{backend}: {why}: {p}");
        }
        let (status, s2) = call(
            "POST",
            "/api/v1/shifts",
            supervisor,
            Some(shift("hq", 16, 20)),
        );
        assert_eq!(status, 201, "{backend}: back to back: {s2}");
        let (_, week) = call(
            "GET",
            &format!(
                "/api/v1/shifts?site_id=hq&from_ms={}&to_ms={}",
                DAY0,
                DAY0 + 24 * H
            ),
            auditor,
            None,
        );
        assert_eq!(
            week["items"].as_array().map(Vec::len),
            Some(2),
            "{backend}: {week}"
        );

        // A site with people is not deleted from under them.
        let (status, p) = call("DELETE", "/api/v1/sites/hq", &owner, None);
        assert_eq!(status, 409, "{backend}: {p}");

        // Erasure: supervisors cannot; an admin can, and everything of the person goes.
        let (status, _) = call("DELETE", "/api/v1/people/E-1042", supervisor, None);
        assert_eq!(status, 403, "{backend}");
        let (status, _) = call("DELETE", "/api/v1/people/E-1042", &owner, None);
        assert_eq!(status, 204, "{backend}");
        for path in ["/api/v1/people/E-1042", "/api/v1/people/E-1042/templates"] {
            let (status, p) = call("GET", path, auditor, None);
            assert_eq!(status, 404, "{backend}: {path}: {p}");
        }
        let (_, left) = call("GET", "/api/v1/shifts?person_id=E-1042", auditor, None);
        assert_eq!(left["items"], json!([]), "{backend}");
        let (status, _) = call("DELETE", "/api/v1/sites/hq", &owner, None);
        assert_eq!(status, 204, "{backend}: nobody at the site any more");
        let (_, audit) = call("GET", "/api/v1/audit", auditor, None);
        let actions: Vec<&str> = audit["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        for action in [
            "person.create",
            "template.add",
            "shift.create",
            "person.erase",
        ] {
            assert!(
                actions.contains(&action),
                "{backend}: {action} in {actions:?}"
            );
        }
    });
}

#[test]
fn a_master_key_that_is_not_the_databases_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud_dir = dir.path().join("cloud");
    let key_file = cloud_dir.join("cloud.sqlite.master-key");
    {
        let cloud = Cloud::start(&cloud_dir, None).expect("cloud starts");
        // Made on first start, readable by its owner only.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (status, p) = cloud
            .call(
                "POST",
                "/api/v1/people",
                Some(&cloud.admin_token),
                Some(&json!({ "id": "p1", "display_name": "P" })),
                None,
            )
            .expect("person");
        assert_eq!(status, 201, "{p}");
        let (status, p) = cloud
            .call(
                "POST",
                "/api/v1/people/p1/templates",
                Some(&cloud.admin_token),
                Some(&json!({ "model": "m", "embedding": embedding() })),
                None,
            )
            .expect("template");
        assert_eq!(status, 201, "{p}");
    }
    // The same key: starts again.
    drop(Cloud::start(&cloud_dir, None).expect("restarts with its key"));
    // Another key: refuses to start, and says which file is wrong.
    std::fs::write(&key_file, format!("{}\n", "ab".repeat(32))).expect("replace the key");
    assert!(
        Cloud::start(&cloud_dir, None).is_err(),
        "started with a wrong key"
    );
    let log = std::fs::read_to_string(cloud_dir.join("cloud.log")).expect("log");
    assert!(
        log.contains("does not open the data keys") && log.contains("master-key"),
        "{log}"
    );
}
