//! The cloud's API against its own OpenAPI 3.1 document: the document is served and rendered
//! (looked at in Chromium), and schemathesis (PyPI, in `target/api-test-venv`) drives every
//! operation with generated valid and invalid requests, on SQLite and on PostgreSQL. No answer
//! may be a server error, undocumented, off its schema, or accept what the schema rules out.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use rollcall_tests::{Browser, Cloud, browser_available, environment_ready, on_each_backend};
use serde_json::Value;

/// Limits high enough that generated traffic is not throttled into 429s (which would pass, but
/// test nothing).
const UNTHROTTLED: &[&str] = &[
    "--rate-limit-user",
    "1000000",
    "--rate-limit-tenant",
    "1000000",
    "--rate-limit-login",
    "1000000",
];

fn schemathesis() -> Result<PathBuf, String> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/api-test-venv/bin/schemathesis");
    let ok = Command::new(&p)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Ok(p)
    } else {
        Err(format!(
            "{} is missing (`cargo xtask test` installs it)",
            p.display()
        ))
    }
}

fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            out.push((method.clone(), path.clone()));
        }
    }
    out
}

#[test]
fn the_document_is_served_and_rendered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(dir.path(), None).expect("cloud starts");
    let r = cloud.get("/api/openapi.json").expect("openapi.json");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().expect("ascii"),
        "application/json"
    );
    let doc: Value = r.json().expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = operations(&doc);
    assert!(ops.len() >= 30, "{ops:?}");

    let r = cloud.get("/docs").expect("docs page");
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");

    // A method a path does not take: 405 as a problem document, with what it does take.
    let (status, body) = cloud
        .call("PUT", "/api/v1/sites", Some(&cloud.admin_token), None, None)
        .expect("PUT");
    assert_eq!(status, 405, "{body}");
    assert_eq!(body["type"], "urn:rollcall:problem:method-not-allowed");

    if !environment_ready(browser_available()) {
        return;
    }
    let browser =
        Browser::start(dir.path(), &dir.path().join("no-camera.y4m")).expect("chromium starts");
    browser
        .goto(&format!("{}/docs", cloud.url))
        .expect("page loads");
    let shown = browser
        .eval("return document.querySelectorAll('section.op').length")
        .expect("count");
    assert_eq!(shown.as_u64(), Some(ops.len() as u64));
    let title = browser.eval("return document.title").expect("title");
    assert_eq!(title, doc["info"]["title"]);
    // Every operation's section is reachable from the menu.
    let dangling = browser
        .eval(
            "return [...document.querySelectorAll('nav a')]\
             .filter(a => !document.getElementById(a.getAttribute('href').slice(1))).length",
        )
        .expect("links");
    assert_eq!(dangling.as_u64(), Some(0));
    // The picture shows one operation in full.
    browser
        .eval("document.getElementById('op-get-api-v2-events').scrollIntoView(); return 1")
        .expect("the v2 events operation is on the page");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("api-docs.png");
    browser.screenshot(&shot).expect("screenshot");
    eprintln!("screenshot of the API page: {}", shot.display());
}

/// Each domain refusal a client can provoke comes back with a type that the document lists on
/// that very operation, so a client coding against the document handles what it gets.
#[test]
fn refusals_are_the_problem_types_their_operation_lists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(dir.path(), None).expect("cloud starts");
    let doc: Value = cloud
        .get("/api/openapi.json")
        .expect("openapi.json")
        .json()
        .expect("JSON");
    let token = cloud.admin_token.clone();
    let (lat, lon, d) = (48.8584, 2.2945, 0.001);
    let fence = serde_json::json!({ "type": "Polygon", "coordinates":
        [[[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]]] });
    let hour = 3_600_000_i64;
    let day = 1_900_000_000_000_i64;
    let mut seen = Vec::new();
    let steps: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "POST",
            "/api/v1/sites",
            serde_json::json!({ "id": "hq", "name": "HQ", "geofence": fence }),
            201,
            "",
        ),
        (
            "POST",
            "/api/v1/sites",
            serde_json::json!({ "id": "hq", "name": "HQ", "geofence": fence }),
            409,
            "site-exists",
        ),
        (
            "POST",
            "/api/v1/people",
            serde_json::json!({ "id": "ana", "display_name": "Ana", "site_ids": ["nowhere"] }),
            400,
            "unknown-site",
        ),
        (
            "POST",
            "/api/v1/people",
            serde_json::json!({ "id": "ana", "display_name": "Ana", "site_ids": ["hq"] }),
            201,
            "",
        ),
        (
            "POST",
            "/api/v1/people",
            serde_json::json!({ "id": "ana", "display_name": "Ana" }),
            409,
            "person-exists",
        ),
        (
            "PATCH",
            "/api/v1/people/ana",
            serde_json::json!({ "site_ids": ["nowhere"] }),
            400,
            "unknown-site",
        ),
        (
            "POST",
            "/api/v1/shifts",
            serde_json::json!({ "person_id": "bob", "site_id": "hq", "starts_ms": day, "ends_ms": day + 8 * hour }),
            400,
            "unknown-person",
        ),
        (
            "POST",
            "/api/v1/shifts",
            serde_json::json!({ "person_id": "ana", "site_id": "hq", "starts_ms": day, "ends_ms": day + 8 * hour }),
            201,
            "",
        ),
        (
            "POST",
            "/api/v1/shifts",
            serde_json::json!({ "person_id": "ana", "site_id": "hq", "starts_ms": day + hour, "ends_ms": day + 2 * hour }),
            409,
            "shift-overlap",
        ),
        (
            "DELETE",
            "/api/v1/sites/hq",
            Value::Null,
            409,
            "site-in-use",
        ),
        (
            "POST",
            "/api/v1/users",
            serde_json::json!({ "email": "ops@acme.example", "display_name": "Ops", "role": "admin", "password": "correct horse battery staple" }),
            201,
            "",
        ),
        (
            "POST",
            "/api/v1/users",
            serde_json::json!({ "email": "ops@acme.example", "display_name": "Ops", "role": "admin", "password": "correct horse battery staple" }),
            409,
            "email-taken",
        ),
        (
            "POST",
            "/api/v1/jobs/redrive",
            serde_json::json!({ "kind": "no.such-kind" }),
            422,
            "unknown-job-kind",
        ),
    ];
    for (method, path, body, status, slug) in steps {
        let body = (!body.is_null()).then_some(&body);
        let (got, answer) = cloud
            .call(method, path, Some(&token), body, None)
            .expect("request");
        assert_eq!(got, status, "{method} {path}: {answer}");
        if slug.is_empty() {
            continue;
        }
        let uri = format!("urn:rollcall:problem:{slug}");
        assert_eq!(answer["type"], uri.as_str(), "{method} {path}");
        // The document's path has its template back (`/api/v1/sites/{id}`).
        let template = match path.rsplit_once('/') {
            Some((head, _)) if method != "POST" => format!("{head}/{{id}}"),
            _ => path.to_owned(),
        };
        let op = &doc["paths"][template.as_str()][method.to_lowercase().as_str()];
        let listed = op["x-problem-types"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            listed.iter().any(|t| t == uri.as_str()),
            "{method} {template} answers {uri} but lists {listed:?}"
        );
        assert!(
            op["responses"][status.to_string()].is_object(),
            "{method} {template} {status}"
        );
        seen.push(slug);
    }
    assert_eq!(seen.len(), 9, "{seen:?}");
}

/// One schemathesis run with `bearer` on the operations `filter` selects; panics with its
/// report when any check fails.
fn fuzz(st: &Path, cloud: &Cloud, dir: &Path, what: &str, bearer: &str, filter: &[&str]) {
    let seed = std::env::var("ROLLCALL_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261125".into());
    let out = Command::new(st)
        .current_dir(dir)
        .arg("run")
        .arg(format!("{}/api/openapi.json", cloud.url))
        .args(["--header", &format!("Authorization: Bearer {bearer}")])
        .args(filter)
        // Every check but one: a schema cannot say every business rule (a password containing
        // the email, `from_ms` before `to_ms`, a cursor this server made), so some schema-valid
        // requests are rightly refused with 400.
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--max-examples", "40", "--seed", &seed])
        .args(["--generation-database", "none", "--no-color"])
        .args(["--request-timeout", "30"])
        .output()
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems ({what}, seed {seed}):\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = report
        .lines()
        .rev()
        .find(|l| l.contains("generated"))
        .unwrap_or_default();
    eprintln!("schemathesis {what}: {}", summary.trim());
}

#[test]
fn schemathesis_finds_nothing_on_either_backend() {
    let Some(st) = environment_ready(schemathesis()).then(schemathesis) else {
        return;
    };
    let st = st.expect("checked");
    on_each_backend(UNTHROTTLED, |backend, cloud, dir| {
        // Nodes first: the admin run below revokes every node it can find.
        let (_, node_token) = cloud.register_node("hq").expect("node registered");
        fuzz(
            &st,
            cloud,
            dir,
            &format!("{backend}, node sync"),
            &node_token,
            &[
                "--include-path-regex",
                "^/api/v1/sync/",
                "--phases",
                "examples,coverage,fuzzing",
            ],
        );
        fuzz(
            &st,
            cloud,
            dir,
            &format!("{backend}, everything else"),
            &cloud.admin_token,
            &["--exclude-path-regex", "^/api/v1/sync/"],
        );
        // The server is still itself afterwards.
        let (status, body) = cloud.admin_get("/api/version").expect("version");
        assert_eq!(status, 200, "{body}");
    });
}
