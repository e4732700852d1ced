//! Browser sessions on the cloud: a login that sets an HttpOnly, Secure, SameSite=Lax,
//! host-bound cookie; unsafe requests that must carry the session's CSRF token; logout; a
//! disabled user's session; another tenant's host. On SQLite and on PostgreSQL.

use rollcall_tests::{Cloud, OWNER_PASSWORD, on_each_backend};
use serde_json::{Value, json};

/// What a browser would keep of a login: the session cookie and the CSRF token.
struct BrowserSession {
    cookie: String,
    csrf: String,
    set_cookies: Vec<String>,
    body: Value,
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client")
}

fn log_in(
    cloud: &Cloud,
    tenant: &str,
    email: &str,
    password: &str,
) -> (u16, Option<BrowserSession>, Value) {
    let r = http()
        .post(format!("{}/api/v1/auth/session", cloud.url))
        .json(&json!({ "tenant": tenant, "email": email, "password": password }))
        .send()
        .expect("login");
    let status = r.status().as_u16();
    let set_cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let body: Value = r.json().unwrap_or(Value::Null);
    if status != 201 {
        return (status, None, body);
    }
    let session = set_cookies
        .iter()
        .find(|c| c.starts_with("__Host-rollcall_session="))
        .expect("session cookie");
    let cookie = session.split(';').next().expect("pair").to_owned();
    let csrf = body["csrf_token"].as_str().expect("csrf token").to_owned();
    (
        status,
        Some(BrowserSession {
            cookie,
            csrf,
            set_cookies,
            body: body.clone(),
        }),
        body,
    )
}

/// A request as the browser would send it: the cookie, and `csrf` as `X-CSRF-Token` if given.
fn send(
    cloud: &Cloud,
    method: &str,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value, Vec<String>) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = http()
        .request(method, format!("{}{path}", cloud.url))
        .header("cookie", cookie);
    if let Some(csrf) = csrf {
        req = req.header("x-csrf-token", csrf);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    let r = req.send().expect("request");
    let status = r.status().as_u16();
    let cookies = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    (status, r.json().unwrap_or(Value::Null), cookies)
}

fn site(id: &str) -> Value {
    json!({
        "id": id,
        "name": "Gate",
        "geofence": { "type": "Polygon", "coordinates": [[
            [2.35, 48.85], [2.36, 48.85], [2.36, 48.86], [2.35, 48.86], [2.35, 48.85]
        ]] },
    })
}

#[test]
fn browser_sessions_use_a_hardened_cookie_and_csrf_tokens() {
    on_each_backend(&[], |backend, cloud, _| {
        cloud.tenant_with_owner("initech").expect("tenant");
        let email = "boss@initech.example";
        let (status, s, body) = log_in(cloud, "initech", email, "wrong password, surely");
        assert_eq!((status, s.is_none()), (401, true), "{backend}: {body}");
        let (status, s, body) = log_in(cloud, "initech", email, OWNER_PASSWORD);
        assert_eq!(status, 201, "{backend}: {body}");
        let s = s.expect("session");

        // The cookie: host-bound, HttpOnly, Secure, SameSite=Lax; no token in the body.
        let session_cookie = s
            .set_cookies
            .iter()
            .find(|c| c.starts_with("__Host-rollcall_session="))
            .expect("session cookie");
        for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
            assert!(
                session_cookie.contains(attribute),
                "{backend}: {session_cookie}"
            );
        }
        assert!(!session_cookie.contains("Domain="), "{session_cookie}");
        let csrf_cookie = s
            .set_cookies
            .iter()
            .find(|c| c.starts_with("__Host-rollcall_csrf="))
            .expect("csrf cookie");
        assert!(
            !csrf_cookie.contains("HttpOnly"),
            "the page must read it: {csrf_cookie}"
        );
        assert!(csrf_cookie.contains(&s.csrf), "{csrf_cookie}");
        let token = s.cookie.split_once('=').expect("pair").1;
        assert!(
            !s.body.to_string().contains(token),
            "the session token is in the body"
        );
        assert_eq!(s.body["user"]["email"], email);

        // Reads need only the cookie.
        let (status, me, _) = send(cloud, "GET", "/api/v1/me", &s.cookie, None, None);
        assert_eq!(
            (status, &me["tenant"]),
            (200, &json!("initech")),
            "{backend}: {me}"
        );

        // Writes need the CSRF token: without it, or with another, nothing happens.
        for csrf in [None, Some("0".repeat(64)), Some(s.csrf[..63].to_owned())] {
            let (status, p, _) = send(
                cloud,
                "POST",
                "/api/v1/sites",
                &s.cookie,
                csrf.as_deref(),
                Some(&site("gate")),
            );
            assert_eq!(status, 403, "{backend} {csrf:?}: {p}");
            assert_eq!(p["type"], "urn:rollcall:problem:csrf-failed");
        }
        let (status, sites, _) = send(cloud, "GET", "/api/v1/sites", &s.cookie, None, None);
        assert_eq!(status, 200);
        assert_eq!(
            sites["items"],
            json!([]),
            "{backend}: a refused write changed something"
        );
        let (status, created, _) = send(
            cloud,
            "POST",
            "/api/v1/sites",
            &s.cookie,
            Some(&s.csrf),
            Some(&site("gate")),
        );
        assert_eq!(status, 201, "{backend}: {created}");

        // The audit trail names the user, as with tokens.
        let (_, audit, _) = send(cloud, "GET", "/api/v1/audit", &s.cookie, None, None);
        let actions: Vec<&str> = audit["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        assert!(actions.contains(&"auth.session"), "{actions:?}");
        assert!(actions.contains(&"site.create"), "{actions:?}");

        // Logout needs the CSRF token too (no forced logouts), then the cookie is dead.
        let logout = |csrf| {
            send(
                cloud,
                "DELETE",
                "/api/v1/auth/session",
                &s.cookie,
                csrf,
                None,
            )
        };
        let (status, _, _) = logout(None);
        assert_eq!(status, 403, "{backend}");
        let (status, _, cleared) = logout(Some(&s.csrf));
        assert_eq!(status, 204, "{backend}");
        assert!(
            cleared
                .iter()
                .any(|c| c.starts_with("__Host-rollcall_session=;") && c.contains("Max-Age=0")),
            "{cleared:?}"
        );
        let (status, p, _) = send(cloud, "GET", "/api/v1/me", &s.cookie, None, None);
        assert_eq!(status, 401, "{backend}: {p}");
        // Logging out twice is fine.
        let (status, _, _) = logout(Some(&s.csrf));
        assert_eq!(status, 204, "{backend}");
    });
}

#[test]
fn a_session_stops_with_its_user_and_stays_in_its_tenant() {
    on_each_backend(
        &["--base-domain", "rollcall.example"],
        |backend, cloud, _| {
            let owner = cloud.tenant_with_owner("initech").expect("tenant");
            cloud.tenant_with_owner("umbrella").expect("tenant");
            let (status, user) = cloud
                .call(
                    "POST",
                    "/api/v1/users",
                    Some(&owner),
                    Some(
                        &json!({ "email": "milton@initech.example", "display_name": "Milton",
                              "role": "supervisor", "password": "red stapler 4 ever" }),
                    ),
                    None,
                )
                .expect("user");
            assert_eq!(status, 201, "{user}");
            let (_, s, body) = log_in(
                cloud,
                "initech",
                "milton@initech.example",
                "red stapler 4 ever",
            );
            let s = s.unwrap_or_else(|| panic!("{backend}: {body}"));
            let (status, _, _) = send(cloud, "GET", "/api/v2/events", &s.cookie, None, None);
            assert_eq!(status, 200, "{backend}");

            // A cookie of one tenant is refused at another tenant's host, and is good at its own…
            for (host, wanted) in [
                ("umbrella.rollcall.example", 401),
                ("initech.rollcall.example", 200),
            ] {
                let r = http()
                    .get(format!("{}/api/v1/me", cloud.url))
                    .header("cookie", &s.cookie)
                    .header("host", host)
                    .send()
                    .expect("request");
                assert_eq!(r.status().as_u16(), wanted, "{backend} at {host}");
            }
            // …and its tenant cannot be swapped: the token is one with its tenant's name.
            let token = s.cookie.split_once('=').expect("pair").1;
            let forged = format!(
                "__Host-rollcall_session=umbrella.{}",
                token.split_once('.').expect("slug").1
            );
            let (status, p, _) = send(cloud, "GET", "/api/v1/me", &forged, None, None);
            assert_eq!(status, 401, "{backend}: {p}");

            // A session ends when its user is disabled.
            let id = user["id"].as_str().expect("id");
            let (status, body) = cloud
                .call(
                    "PATCH",
                    &format!("/api/v1/users/{id}"),
                    Some(&owner),
                    Some(&json!({ "disabled": true })),
                    None,
                )
                .expect("disable");
            assert_eq!(status, 200, "{body}");
            let (status, p, _) = send(cloud, "GET", "/api/v2/events", &s.cookie, None, None);
            assert_eq!(status, 401, "{backend}: {p}");
            // Re-enabling does not bring the old session back: it was revoked.
            let (status, _) = cloud
                .call(
                    "PATCH",
                    &format!("/api/v1/users/{id}"),
                    Some(&owner),
                    Some(&json!({ "disabled": false })),
                    None,
                )
                .expect("enable");
            assert_eq!(status, 200);
            let (status, p, _) = send(cloud, "GET", "/api/v2/events", &s.cookie, None, None);
            assert_eq!(status, 401, "{backend}: {p}");

            // A bearer token wins over a cookie (even a dead one): the header is what API
            // clients meant, and needs no CSRF token.
            let r = http()
                .post(format!("{}/api/v1/sites", cloud.url))
                .header("cookie", &s.cookie)
                .bearer_auth(&owner)
                .json(&site("annex"))
                .send()
                .expect("request");
            let status = r.status().as_u16();
            assert_eq!(status, 201, "{backend}: {}", r.text().unwrap_or_default());
        },
    );
}
