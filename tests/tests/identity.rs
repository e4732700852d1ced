//! Identity end to end, on both cloud backends: tenants with owners, login, roles, refresh-token
//! rotation with reuse detection, forged and foreign tokens, tenant hosts, disabled users and
//! suspended tenants.

use base64::Engine as _;
use rollcall_tests::{Cloud, CloudDb, on_each_backend};
use serde_json::{Value, json};

const BASE: &str = "rollcall.test";
const OWNER_PW: &str = "correct horse battery staple";

fn login(
    cloud: &Cloud,
    tenant: Option<&str>,
    email: &str,
    password: &str,
    host: Option<&str>,
) -> (u16, Value) {
    let mut body = json!({ "email": email, "password": password });
    if let Some(t) = tenant {
        body["tenant"] = t.into();
    }
    cloud
        .call("POST", "/api/v1/auth/login", None, Some(&body), host)
        .expect("login")
}

fn session(cloud: &Cloud, email: &str, password: &str) -> (String, String) {
    let (status, body) = login(cloud, Some("globex"), email, password, None);
    assert_eq!(status, 200, "{email}: {body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        body["expires_in"]
            .as_i64()
            .is_some_and(|s| s > 0 && s <= 900),
        "{body}"
    );
    (
        body["access_token"].as_str().expect("access").to_owned(),
        body["refresh_token"].as_str().expect("refresh").to_owned(),
    )
}

fn get(cloud: &Cloud, path: &str, token: &str) -> (u16, Value) {
    cloud
        .call("GET", path, Some(token), None, None)
        .expect("get")
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[test]
fn users_log_in_act_by_role_and_stay_in_their_tenant() {
    on_each_backend(&["--base-domain", BASE], |name, cloud, _dir| {
        let platform = |method: &str, path: &str, body: &Value| {
            cloud
                .call(method, path, Some(&cloud.admin_token), Some(body), None)
                .expect("platform")
        };

        // A weak owner password refuses the whole tenant: nothing is half-made.
        let (status, p) = platform(
            "POST",
            "/api/v1/platform/tenants",
            &json!({
            "slug": "globex", "name": "Globex",
            "owner": { "email": "boss@globex.example", "display_name": "Boss", "password": "short" } }),
        );
        assert_eq!(status, 400, "{name}: {p}");
        assert!(
            p["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("at least 12"),
            "{p}"
        );
        assert_eq!(
            cloud
                .admin_get("/api/v1/platform/tenants/globex")
                .expect("get")
                .0,
            404,
            "{name}"
        );
        let (status, t) = platform(
            "POST",
            "/api/v1/platform/tenants",
            &json!({
            "slug": "globex", "name": "Globex",
            "owner": { "email": " Boss@Globex.example ", "display_name": "Boss", "password": OWNER_PW } }),
        );
        assert_eq!(status, 201, "{name}: {t}");
        assert_eq!(t["owner"]["email"], "boss@globex.example");
        assert_eq!(t["owner"]["role"], "owner");
        assert!(t["owner"].get("password_hash").is_none(), "{t}");

        // Wrong password, unknown email, unknown tenant: one answer for all.
        let wrong = [
            login(
                cloud,
                Some("globex"),
                "boss@globex.example",
                "not the password!",
                None,
            ),
            login(
                cloud,
                Some("globex"),
                "nobody@globex.example",
                OWNER_PW,
                None,
            ),
            login(
                cloud,
                Some("initech"),
                "boss@globex.example",
                OWNER_PW,
                None,
            ),
            login(
                cloud,
                Some(&"Not A Slug!".repeat(500)),
                "boss@globex.example",
                OWNER_PW,
                None,
            ),
        ];
        for (status, p) in &wrong {
            assert_eq!(*status, 401, "{name}: {p}");
            assert_eq!(p["detail"], wrong[0].1["detail"], "{name}: no enumeration");
        }
        let (status, p) = login(cloud, None, "boss@globex.example", OWNER_PW, None);
        assert_eq!(status, 400, "{name}: no tenant named: {p}");

        let (owner, owner_refresh) = session(cloud, "boss@globex.example", OWNER_PW);
        let (status, me) = get(cloud, "/api/v1/me", &owner);
        assert_eq!(
            (status, me["tenant"].as_str(), me["role"].as_str()),
            (200, Some("globex"), Some("owner")),
            "{name}: {me}"
        );

        // The owner builds a team.
        let mut ids = std::collections::HashMap::new();
        for (email, role) in [
            ("admin@globex.example", "admin"),
            ("guard@globex.example", "guard"),
            ("audit@globex.example", "auditor"),
        ] {
            let (status, u) = cloud
                .call(
                    "POST",
                    "/api/v1/users",
                    Some(&owner),
                    Some(&json!({
                    "email": email, "display_name": role, "role": role, "password": OWNER_PW })),
                    None,
                )
                .expect("create user");
            assert_eq!(status, 201, "{name}: {u}");
            ids.insert(role, u["id"].as_str().expect("id").to_owned());
        }
        let (status, p) = cloud
            .call("POST", "/api/v1/users", Some(&owner), Some(&json!({
                "email": "ADMIN@globex.example", "display_name": "again", "role": "guard", "password": OWNER_PW })), None)
            .expect("dup");
        assert_eq!(status, 409, "{name}: {p}");

        // Roles decide what each may do.
        let (admin, _) = session(cloud, "admin@globex.example", OWNER_PW);
        let (guard, guard_refresh) = session(cloud, "guard@globex.example", OWNER_PW);
        let (auditor, _) = session(cloud, "audit@globex.example", OWNER_PW);
        let (status, p) = cloud
            .call("POST", "/api/v1/users", Some(&admin), Some(&json!({
                "email": "boss2@globex.example", "display_name": "b", "role": "owner", "password": OWNER_PW })), None)
            .expect("admin makes owner");
        assert_eq!(
            (status, p["type"].as_str()),
            (403, Some("urn:rollcall:problem:forbidden")),
            "{name}: {p}"
        );
        let (status, _) = cloud
            .call(
                "PATCH",
                &format!("/api/v1/users/{}", ids["admin"]),
                Some(&admin),
                Some(&json!({ "role": "owner" })),
                None,
            )
            .expect("self-promotion");
        assert_eq!(status, 403, "{name}");
        let (status, p) = cloud
            .call(
                "PATCH",
                &format!("/api/v1/users/{}", ids["admin"]),
                Some(&admin),
                Some(&json!({ "disabled": true })),
                None,
            )
            .expect("self-disable");
        assert_eq!(
            (status, p["type"].as_str()),
            (409, Some("urn:rollcall:problem:self-lockout")),
            "{name}: {p}"
        );
        assert_eq!(
            get(cloud, "/api/v1/events", &guard).0,
            403,
            "{name}: guards do not read attendance"
        );
        assert_eq!(get(cloud, "/api/v1/users", &guard).0, 403, "{name}");
        assert_eq!(
            get(cloud, &format!("/api/v1/users/{}", ids["guard"]), &guard).0,
            200,
            "{name}: own profile"
        );
        assert_eq!(
            get(cloud, &format!("/api/v1/users/{}", ids["admin"]), &guard).0,
            403,
            "{name}"
        );
        assert_eq!(get(cloud, "/api/v1/events", &auditor).0, 200, "{name}");
        let (status, users) = get(cloud, "/api/v1/users", &auditor);
        assert_eq!(
            (status, users["items"].as_array().map(Vec::len)),
            (200, Some(4)),
            "{name}: {users}"
        );
        let (status, _) = cloud
            .call(
                "POST",
                "/api/v1/nodes",
                Some(&auditor),
                Some(&json!({ "site_id": "hq" })),
                None,
            )
            .expect("auditor registers");
        assert_eq!(status, 403, "{name}: auditors change nothing");

        // Tenant walls: acme's user is not found from globex, by id, for read or write.
        let (status, acme_user) = cloud
            .call("POST", "/api/v1/users", Some(&cloud.admin_token), Some(&json!({
                "email": "ops@acme.example", "display_name": "Ops", "role": "admin", "password": OWNER_PW })), None)
            .expect("acme user");
        assert_eq!(status, 201, "{name}: {acme_user}");
        let acme_id = acme_user["id"].as_str().expect("id");
        assert_eq!(
            get(cloud, &format!("/api/v1/users/{acme_id}"), &owner).0,
            404,
            "{name}"
        );
        let (status, _) = cloud
            .call(
                "PATCH",
                &format!("/api/v1/users/{acme_id}"),
                Some(&owner),
                Some(&json!({ "disabled": true, "role": "guard" })),
                None,
            )
            .expect("patch across");
        assert_eq!(status, 404, "{name}");
        let (_, still) = cloud
            .admin_get(&format!("/api/v1/users/{acme_id}"))
            .expect("acme reads");
        assert_eq!(
            (still["role"].as_str(), still.get("disabled_ms")),
            (Some("admin"), None),
            "{name}: unchanged"
        );

        // Hosts name tenants: a globex token at acme's host is refused; at its own it works.
        let host = |h: &str| {
            cloud
                .call("GET", "/api/v1/me", Some(&owner), None, Some(h))
                .expect("me")
                .0
        };
        assert_eq!(host("globex.rollcall.test"), 200, "{name}");
        assert_eq!(host("GLOBEX.rollcall.test:443"), 200, "{name}");
        assert_eq!(host("acme.rollcall.test"), 401, "{name}");
        assert_eq!(host("a.b.rollcall.test"), 404, "{name}");
        assert_eq!(host("bad_host!"), 400, "{name}");
        let (status, _) = login(
            cloud,
            None,
            "boss@globex.example",
            OWNER_PW,
            Some("globex.rollcall.test"),
        );
        assert_eq!(status, 200, "{name}: the host names the tenant");
        let (status, _) = login(
            cloud,
            Some("acme"),
            "boss@globex.example",
            OWNER_PW,
            Some("globex.rollcall.test"),
        );
        assert_eq!(status, 400, "{name}: host and body disagree");
        let (status, _) = cloud
            .call(
                "GET",
                "/api/v1/me",
                Some(&cloud.admin_token),
                None,
                Some("globex.rollcall.test"),
            )
            .expect("bootstrap at globex");
        assert_eq!(status, 401, "{name}: the bootstrap token is acme's only");

        // Forged tokens.
        let parts: Vec<&str> = owner.split('.').collect();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[1])
                .expect("b64"),
        )
        .expect("claims");
        let none = format!(
            "{}.{}.",
            b64(&json!({ "alg": "none", "typ": "JWT" })),
            parts[1]
        );
        let mut elevated = claims.clone();
        elevated["sub"] = ids["admin"].clone().into();
        let tampered = format!("{}.{}.{}", parts[0], b64(&elevated), parts[2]);
        let mut foreign = claims.clone();
        foreign["tenant"] = "acme".into();
        let other_tenant = format!("{}.{}.{}", parts[0], b64(&foreign), parts[2]);
        let hs512 = format!(
            "{}.{}.{}",
            b64(&json!({ "alg": "HS512", "typ": "JWT" })),
            parts[1],
            parts[2]
        );
        for (what, token) in [
            ("alg none", none),
            ("tampered", tampered),
            ("other tenant", other_tenant),
            ("HS512", hs512),
            ("garbage", "eyJ.e30.x".into()),
        ] {
            assert_eq!(get(cloud, "/api/v1/me", &token).0, 401, "{name}: {what}");
        }

        // Refresh rotation; a replayed refresh token signs the whole login out.
        let refresh = |token: &str| {
            cloud
                .call(
                    "POST",
                    "/api/v1/auth/refresh",
                    None,
                    Some(&json!({ "refresh_token": token })),
                    None,
                )
                .expect("refresh")
        };
        let (status, next) = refresh(&owner_refresh);
        assert_eq!(status, 200, "{name}: {next}");
        let next_refresh = next["refresh_token"].as_str().expect("rotated").to_owned();
        assert_ne!(next_refresh, owner_refresh);
        assert_eq!(
            get(
                cloud,
                "/api/v1/me",
                next["access_token"].as_str().expect("access")
            )
            .0,
            200
        );
        let (status, p) = refresh(&owner_refresh);
        assert_eq!(
            (status, p["type"].as_str()),
            (401, Some("urn:rollcall:problem:refresh-reused")),
            "{name}: {p}"
        );
        assert_eq!(
            refresh(&next_refresh).0,
            401,
            "{name}: the family is revoked"
        );
        assert_eq!(refresh("globex.00").0, 401);
        assert_eq!(refresh("no-tenant").0, 401);
        // Logout ends a login.
        let (_, fresh) = session(cloud, "boss@globex.example", OWNER_PW);
        let (status, _) = cloud
            .call(
                "POST",
                "/api/v1/auth/logout",
                None,
                Some(&json!({ "refresh_token": fresh })),
                None,
            )
            .expect("logout");
        assert_eq!(status, 204);
        assert_eq!(refresh(&fresh).0, 401, "{name}: logged out");

        // A disabled user is out at once: access token, refresh token and login.
        let (status, u) = cloud
            .call(
                "PATCH",
                &format!("/api/v1/users/{}", ids["guard"]),
                Some(&owner),
                Some(&json!({ "disabled": true })),
                None,
            )
            .expect("disable");
        assert_eq!(status, 200, "{name}: {u}");
        assert_eq!(get(cloud, "/api/v1/me", &guard).0, 401, "{name}");
        assert_eq!(refresh(&guard_refresh).0, 401, "{name}");
        let (status, p) = login(
            cloud,
            Some("globex"),
            "guard@globex.example",
            OWNER_PW,
            None,
        );
        assert_eq!(
            (status, p["type"].as_str()),
            (403, Some("urn:rollcall:problem:user-disabled")),
            "{name}: {p}"
        );

        // A suspended tenant: every user refused with the same clear problem, login too.
        let (status, _) = platform(
            "PATCH",
            "/api/v1/platform/tenants/globex",
            &json!({ "status": "suspended" }),
        );
        assert_eq!(status, 200);
        let (status, p) = get(cloud, "/api/v1/me", &owner);
        assert_eq!(
            (status, p["type"].as_str()),
            (403, Some("urn:rollcall:problem:tenant-suspended")),
            "{name}: {p}"
        );
        let (status, _) = login(cloud, Some("globex"), "boss@globex.example", OWNER_PW, None);
        assert_eq!(status, 403, "{name}");
        let log = cloud.process.log_text();
        assert!(
            log.contains("refresh token reused") && log.contains("login failed"),
            "{name}: logged"
        );
        assert!(
            !log.contains(OWNER_PW),
            "{name}: passwords never reach the log"
        );
    });
}

/// Rate limits: each caller gets its own allowance (headers say how much is left), a caller over
/// it gets 429 with Retry-After while others carry on, and password guessing is slowed down.
#[test]
fn callers_and_logins_are_rate_limited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start_with(
        &dir.path().join("cloud"),
        None,
        CloudDb::Sqlite,
        &["--rate-limit-user", "6", "--rate-limit-login", "3"],
    )
    .expect("cloud starts");
    let http = reqwest::blocking::Client::new();
    let (status, _) = cloud
        .call("POST", "/api/v1/users", Some(&cloud.admin_token), Some(&json!({
            "email": "ops@acme.example", "display_name": "Ops", "role": "admin", "password": OWNER_PW })), None)
        .expect("user");
    assert_eq!(status, 201);
    let (status, s) = login(&cloud, Some("acme"), "ops@acme.example", OWNER_PW, None);
    assert_eq!(status, 200, "{s}");
    let ops = s["access_token"].as_str().expect("token").to_owned();

    let mut remaining = Vec::new();
    for _ in 0..5 {
        let r = http
            .get(format!("{}/api/v1/events", cloud.url))
            .bearer_auth(&cloud.admin_token)
            .send()
            .expect("get");
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.headers()["ratelimit-limit"], "6");
        remaining.push(
            r.headers()["ratelimit-remaining"]
                .to_str()
                .expect("ascii")
                .parse::<u32>()
                .expect("number"),
        );
    }
    assert_eq!(remaining, [4, 3, 2, 1, 0], "the user creation spent one");
    let r = http
        .get(format!("{}/api/v1/events", cloud.url))
        .bearer_auth(&cloud.admin_token)
        .send()
        .expect("get");
    assert_eq!(r.status().as_u16(), 429);
    // The refusal announces the allowance too (it is spent, and whole again when).
    assert_eq!(r.headers()["ratelimit-limit"], "6");
    assert_eq!(r.headers()["ratelimit-remaining"], "0");
    assert!(r.headers().contains_key("ratelimit-reset"));
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    let p: Value = r.json().expect("problem");
    assert_eq!(p["type"], "urn:rollcall:problem:rate-limited", "{p}");
    // Another user of the tenant is not held back by the first one's burst.
    assert_eq!(get(&cloud, "/api/v1/events", &ops).0, 200);

    // Three guesses a minute, then even the right password waits.
    for _ in 0..2 {
        assert_eq!(
            login(
                &cloud,
                Some("acme"),
                "ops@acme.example",
                "wrong password!!",
                None
            )
            .0,
            401
        );
    }
    let (status, p) = login(&cloud, Some("acme"), "ops@acme.example", OWNER_PW, None);
    assert_eq!(
        (status, p["type"].as_str()),
        (429, Some("urn:rollcall:problem:rate-limited")),
        "{p}"
    );
    // Another tenant's logins from the same address have their own allowance.
    assert_eq!(
        login(&cloud, Some("globex"), "x@globex.example", OWNER_PW, None).0,
        401
    );
}

/// CORS: the tenant's own allow-list, at the tenant's own host; everything else gets nothing.
#[test]
fn browsers_may_call_a_tenant_only_from_its_allowed_origins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start_with(
        &dir.path().join("cloud"),
        None,
        CloudDb::Sqlite,
        &["--base-domain", BASE],
    )
    .expect("cloud starts");
    let acme_host = "acme.rollcall.test";
    let (status, p) = cloud
        .call(
            "PATCH",
            "/api/v1/tenant",
            Some(&cloud.admin_token),
            Some(&json!({ "cors_origins": ["https://admin.acme.example", "ftp://nope"] })),
            Some(acme_host),
        )
        .expect("patch");
    assert_eq!(status, 400, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("cors_origins[1]"),
        "{p}"
    );
    let (status, t) = cloud
        .call(
            "PATCH",
            "/api/v1/tenant",
            Some(&cloud.admin_token),
            Some(
                &json!({ "cors_origins": ["https://Admin.Acme.example", "http://localhost:5173"] }),
            ),
            Some(acme_host),
        )
        .expect("patch");
    assert_eq!(status, 200, "{t}");
    assert_eq!(
        t["cors_origins"],
        json!(["https://admin.acme.example", "http://localhost:5173"])
    );

    let http = reqwest::blocking::Client::new();
    let preflight = |origin: &str, host: &str| {
        http.request(
            reqwest::Method::OPTIONS,
            format!("{}/api/v1/events", cloud.url),
        )
        .header("origin", origin)
        .header("host", host)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .expect("preflight")
    };
    let ok = preflight("https://admin.acme.example", acme_host);
    assert_eq!(ok.status().as_u16(), 204);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://admin.acme.example"
    );
    assert!(
        ok.headers()["access-control-allow-headers"]
            .to_str()
            .expect("ascii")
            .contains("authorization")
    );
    assert!(
        ok.headers()["access-control-allow-methods"]
            .to_str()
            .expect("ascii")
            .contains("PATCH")
    );
    assert!(
        ok.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    for (origin, host) in [
        ("https://evil.example", acme_host),
        ("http://admin.acme.example", acme_host),
        ("https://admin.acme.example", "globex.rollcall.test"),
        ("https://admin.acme.example", "127.0.0.1"),
    ] {
        let r = preflight(origin, host);
        assert_eq!(r.status().as_u16(), 403, "{origin} at {host}");
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{origin} at {host}"
        );
    }
    let get = |origin: &str| {
        http.get(format!("{}/api/v1/events", cloud.url))
            .bearer_auth(&cloud.admin_token)
            .header("origin", origin)
            .header("host", acme_host)
            .send()
            .expect("get")
    };
    let r = get("http://localhost:5173");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert!(
        r.headers()["access-control-expose-headers"]
            .to_str()
            .expect("ascii")
            .contains("x-request-id")
    );
    let r = get("https://evil.example");
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let (_, audit) = cloud.admin_get("/api/v1/audit").expect("audit");
    assert_eq!(audit["items"][0]["action"], "tenant.cors", "{audit}");
}
