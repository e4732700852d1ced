//! Accounts against a hostile outsider (#20), on both cloud backends: a refresh token works only
//! at its own tenant's host, a suspended tenant's status is told only to a live credential,
//! re-enabling a user does not revive the access tokens from before the disable, everyone may
//! rename themselves, and names that read like another's (look-alike letters, direction
//! overrides) are refused.

use rollcall_tests::{Cloud, OWNER_PASSWORD, on_each_backend};
use serde_json::{Value, json};

const BASE: &str = "rollcall.test";

fn login(cloud: &Cloud, tenant: &str, email: &str, password: &str) -> Value {
    let body = json!({ "tenant": tenant, "email": email, "password": password });
    let (status, s) = cloud
        .call("POST", "/api/v1/auth/login", None, Some(&body), None)
        .expect("login");
    assert_eq!(status, 200, "{email}: {s}");
    s
}

fn kind(p: &Value) -> &str {
    p["type"].as_str().unwrap_or_default()
}

fn new_user(cloud: &Cloud, owner: &str, email: &str, role: &str) -> (u16, Value) {
    cloud
        .call(
            "POST",
            "/api/v1/users",
            Some(owner),
            Some(
                &json!({ "email": email, "display_name": "Someone", "role": role,
                          "password": "a long enough password" }),
            ),
            None,
        )
        .expect("create user")
}

/// Tenant A's refresh token at tenant B's host: refused at refresh (before, B's host issued A's
/// tokens) and at logout (which then revokes nothing); at A's own host both work.
#[test]
fn a_refresh_token_works_only_at_its_own_tenants_host() {
    on_each_backend(&["--base-domain", BASE], |backend, cloud, _| {
        cloud.tenant_with_owner("initech").expect("tenant A");
        cloud.tenant_with_owner("umbrella").expect("tenant B");
        let s = login(cloud, "initech", "boss@initech.example", OWNER_PASSWORD);
        let refresh = s["refresh_token"].as_str().expect("refresh").to_owned();
        let body = json!({ "refresh_token": refresh });
        let at = |path: &str, host: &str| {
            cloud
                .call("POST", path, None, Some(&body), Some(host))
                .expect("call")
        };
        let (status, p) = at("/api/v1/auth/refresh", "umbrella.rollcall.test");
        assert_eq!(status, 401, "{backend}: {p}");
        let (status, p) = at("/api/v1/auth/logout", "umbrella.rollcall.test");
        assert_eq!(status, 401, "{backend}: logout elsewhere: {p}");
        // Neither answer spent nor revoked the token: at its own host it is still good.
        let (status, next) = at("/api/v1/auth/refresh", "initech.rollcall.test");
        assert_eq!(status, 200, "{backend}: {next}");
        let body = json!({ "refresh_token": next["refresh_token"] });
        let (status, _) = cloud
            .call(
                "POST",
                "/api/v1/auth/logout",
                None,
                Some(&body),
                Some("initech.rollcall.test"),
            )
            .expect("logout");
        assert_eq!(status, 204, "{backend}");
        let (status, p) = cloud
            .call("POST", "/api/v1/auth/refresh", None, Some(&body), None)
            .expect("refresh");
        assert_eq!(status, 401, "{backend}: logged out: {p}");
    });
}

/// A suspended tenant answers a made-up refresh token or session cookie with the 401 anyone
/// gets (before: 403 `tenant-suspended`, which told who is suspended), and the holder of a live
/// one with 403; the live refresh token is not spent and works once the tenant is back.
#[test]
fn a_suspended_tenant_is_told_only_to_a_live_refresh_token_or_session() {
    on_each_backend(&[], |backend, cloud, _| {
        cloud.tenant_with_owner("globex").expect("tenant");
        let s = login(cloud, "globex", "boss@globex.example", OWNER_PASSWORD);
        let refresh = s["refresh_token"].as_str().expect("refresh").to_owned();
        let http = reqwest::blocking::Client::new();
        let r = http
            .post(format!("{}/api/v1/auth/session", cloud.url))
            .json(&json!({ "tenant": "globex", "email": "boss@globex.example",
                           "password": OWNER_PASSWORD }))
            .send()
            .expect("session");
        assert_eq!(r.status(), 201, "{backend}");
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("__Host-rollcall_session="))
            .and_then(|c| c.split(';').next())
            .expect("session cookie")
            .to_owned();
        let (status, _) = cloud
            .admin_patch(
                "/api/v1/platform/tenants/globex",
                &json!({ "status": "suspended" }),
            )
            .expect("suspend");
        assert_eq!(status, 200);

        let refresh_with = |token: &str| {
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
        let made_up = format!("globex.{}", "ab".repeat(32));
        let (status, p) = refresh_with(&made_up);
        assert_eq!(status, 401, "{backend}: made-up refresh token: {p}");
        let (status, p) = refresh_with(&refresh);
        assert_eq!(
            (status, kind(&p)),
            (403, "urn:rollcall:problem:tenant-suspended"),
            "{backend}: {p}"
        );
        let me = |cookie: &str| {
            http.get(format!("{}/api/v1/me", cloud.url))
                .header("cookie", cookie)
                .send()
                .expect("me")
                .status()
                .as_u16()
        };
        assert_eq!(
            me(&format!("__Host-rollcall_session={made_up}")),
            401,
            "{backend}: made-up cookie"
        );
        assert_eq!(me(&cookie), 403, "{backend}: live cookie");

        let (status, _) = cloud
            .admin_patch(
                "/api/v1/platform/tenants/globex",
                &json!({ "status": "active" }),
            )
            .expect("reactivate");
        assert_eq!(status, 200);
        let (status, p) = refresh_with(&refresh);
        assert_eq!(status, 200, "{backend}: not spent while suspended: {p}");
    });
}

/// Disabling a user and enabling them again leaves the access tokens from before the disable
/// dead (before: they worked again for the rest of their five minutes); a new login works.
#[test]
fn re_enabling_a_user_does_not_revive_their_old_access_tokens() {
    on_each_backend(&[], |backend, cloud, _| {
        let owner = cloud.tenant_with_owner("globex").expect("tenant");
        let (status, user) = new_user(cloud, &owner, "milton@globex.example", "supervisor");
        assert_eq!(status, 201, "{backend}: {user}");
        let id = user["id"].as_str().expect("id").to_owned();
        let s = login(
            cloud,
            "globex",
            "milton@globex.example",
            "a long enough password",
        );
        let old = s["access_token"].as_str().expect("access").to_owned();
        let me = |token: &str| {
            cloud
                .call("GET", "/api/v1/me", Some(token), None, None)
                .expect("me")
                .0
        };
        assert_eq!(me(&old), 200);
        for disabled in [true, false] {
            let (status, u) = cloud
                .call(
                    "PATCH",
                    &format!("/api/v1/users/{id}"),
                    Some(&owner),
                    Some(&json!({ "disabled": disabled })),
                    None,
                )
                .expect("patch");
            assert_eq!(status, 200, "{backend}: {u}");
            assert_eq!(me(&old), 401, "{backend}: disabled={disabled}");
        }
        let s = login(
            cloud,
            "globex",
            "milton@globex.example",
            "a long enough password",
        );
        assert_eq!(me(s["access_token"].as_str().expect("access")), 200);
        assert_eq!(me(&owner), 200, "{backend}: other users untouched");
    });
}

/// A guard may change their own display name (the docs always said anyone may), but not their
/// role or access, nor anyone else.
#[test]
fn everyone_may_rename_themselves_and_only_themselves() {
    on_each_backend(&[], |backend, cloud, _| {
        let owner = cloud.tenant_with_owner("globex").expect("tenant");
        let (_, guard) = new_user(cloud, &owner, "guard@globex.example", "guard");
        let (_, other) = new_user(cloud, &owner, "other@globex.example", "guard");
        let guard_id = guard["id"].as_str().expect("id");
        let token = login(
            cloud,
            "globex",
            "guard@globex.example",
            "a long enough password",
        )["access_token"]
            .as_str()
            .expect("access")
            .to_owned();
        let patch = |id: &str, body: Value| {
            cloud
                .call(
                    "PATCH",
                    &format!("/api/v1/users/{id}"),
                    Some(&token),
                    Some(&body),
                    None,
                )
                .expect("patch")
        };
        let (status, u) = patch(guard_id, json!({ "display_name": "  Gate Guard " }));
        assert_eq!(status, 200, "{backend}: {u}");
        assert_eq!(u["display_name"], "Gate Guard");
        let (status, p) = patch(guard_id, json!({ "role": "admin" }));
        assert_eq!(
            (status, kind(&p)),
            (409, "urn:rollcall:problem:self-lockout"),
            "{backend}: {p}"
        );
        let (status, p) = patch(
            other["id"].as_str().expect("id"),
            json!({ "display_name": "Renamed" }),
        );
        assert_eq!(status, 403, "{backend}: {p}");
        let (_, me) = cloud
            .call("GET", "/api/v1/me", Some(&token), None, None)
            .expect("me");
        assert_eq!(
            (me["role"].as_str(), me["user"]["display_name"].as_str()),
            (Some("guard"), Some("Gate Guard"))
        );
    });
}

/// An email with a letter of another script that looks Latin, and names holding direction
/// overrides or invisible characters, are refused with a clear 400 — users, people, sites and
/// tenants alike; the real account is untouched.
#[test]
fn look_alike_emails_and_direction_overrides_in_names_are_refused() {
    on_each_backend(&[], |backend, cloud, _| {
        let owner = cloud.tenant_with_owner("globex").expect("tenant");
        // `bоss` with a Cyrillic о, next to the real `boss@globex.example`.
        let (status, p) = new_user(cloud, &owner, "b\u{043E}ss@globex.example", "admin");
        assert_eq!(status, 400, "{backend}: {p}");
        assert!(
            p["detail"].as_str().unwrap_or_default().contains("ASCII"),
            "{p}"
        );
        let call = |method: &str, path: &str, body: Value| {
            cloud
                .call(method, path, Some(&owner), Some(&body), None)
                .expect("call")
        };
        let spoofed = "Ali\u{202E}nimda";
        let (status, p) = call(
            "POST",
            "/api/v1/users",
            json!({ "email": "ali@globex.example", "display_name": spoofed, "role": "guard",
                    "password": "a long enough password" }),
        );
        assert_eq!(status, 400, "{backend}: user: {p}");
        let (status, p) = call(
            "POST",
            "/api/v1/people",
            json!({ "id": "ali", "display_name": format!("Ali\u{200B}") }),
        );
        assert_eq!(status, 400, "{backend}: person: {p}");
        let (status, p) = call(
            "POST",
            "/api/v1/sites",
            json!({ "id": "hq", "name": format!("HQ\u{2066}"),
                    "geofence": { "type": "Polygon", "coordinates": [[
                        [2.29, 48.85], [2.30, 48.85], [2.30, 48.86], [2.29, 48.85]]] } }),
        );
        assert_eq!(status, 400, "{backend}: site: {p}");
        for (_, p) in [
            call(
                "POST",
                "/api/v1/people",
                json!({ "id": "ali", "display_name": spoofed }),
            ),
            cloud
                .admin_post(
                    "/api/v1/platform/tenants",
                    &json!({ "slug": "spoof", "name": spoofed,
                             "owner": { "email": "x@spoof.example", "display_name": "X",
                                        "password": OWNER_PASSWORD } }),
                )
                .expect("tenant"),
        ] {
            assert!(
                p["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("direction-changing"),
                "{backend}: {p}"
            );
        }
        // Scripts that need the zero-width non-joiner are welcome.
        let (status, p) = call(
            "POST",
            "/api/v1/people",
            json!({ "id": "mehrshad", "display_name": "\u{0645}\u{06CC}\u{200C}\u{0634}\u{0627}\u{062F}" }),
        );
        assert_eq!(status, 201, "{backend}: {p}");
        let (_, users) = cloud
            .call("GET", "/api/v1/users", Some(&owner), None, None)
            .expect("users");
        assert_eq!(users["items"].as_array().map(Vec::len), Some(1), "{users}");
    });
}
