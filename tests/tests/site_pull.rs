//! The site's geofence and fraud policy flow down from the cloud, on SQLite and PostgreSQL: once
//! the cloud has an outline for the node's site it replaces the node's config-file fence within
//! a sync round or two (a guard at the gate is granted, then — the fence moved 5 km away —
//! denied `outside_geofence`); a policy set in the cloud replaces the node's `[fraud]` section
//! (a 10 m fix denied outright under a 5 m limit) and dropping it restores the node's own; a bad
//! policy is refused by the cloud with the key; a site the cloud drops gives the node its own
//! fence back; what was kept from the cloud is in force again after a restart with the cloud
//! out of reach, and a kept version the node cannot use gives way to its own fence instead of
//! shutting the gate; each change is on the node's audit log, which reaches the cloud too.

use std::time::Duration;

use rollcall_tests::{
    AT_GATE, Cloud, DEMO_SITE, Node, NodeOptions, on_each_backend, reason_codes, sample_photo,
    wait_for,
};
use serde_json::{Value, json};

/// A photo, with `extra` bytes after the JPEG's end: the same face, another frame (not a replay).
fn photo(name: &str, extra: usize) -> Vec<u8> {
    let mut bytes = sample_photo(name).unwrap_or_else(|e| panic!("{e}"));
    bytes.extend(std::iter::repeat_n(0u8, extra));
    bytes
}

fn square(lat: f64, lon: f64) -> Value {
    let d = 0.002;
    json!({ "type": "Feature", "properties": { "name": "gate" }, "geometry": { "type": "Polygon",
        "coordinates": [[[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]]] } })
}

fn admin(cloud: &Cloud, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    cloud
        .call(method, path, Some(&cloud.admin_token), body.as_ref(), None)
        .expect("request")
}

fn version_in_force(node: &Node) -> Option<f64> {
    node.metric("rollcall_node_site_config_version_ms")
}

fn wait_for_version(node: &Node, version: i64) {
    wait_for(
        &format!("the node to apply site version {version}"),
        Duration::from_secs(30),
        || version_in_force(node) == Some(version as f64),
    );
}

fn check_in(node: &Node, photo: &[u8]) -> Value {
    node.decide(photo, Some(AT_GATE))
}

#[test]
fn the_sites_geofence_comes_from_the_cloud_and_survives_a_restart_offline() {
    on_each_backend(&[], |backend, cloud, dir| {
        let (status, site) = admin(
            cloud,
            "POST",
            "/api/v1/sites",
            Some(
                json!({ "id": "hq", "name": "HQ", "geofence": square(DEMO_SITE.lat, DEMO_SITE.lon) }),
            ),
        );
        assert_eq!(status, 201, "{backend}: {site}");
        let v1 = site["updated_ms"].as_i64().expect("version");
        let (node_id, token) = cloud.register_node("hq").expect("registered");
        let node_dir = dir.join("node");
        let mut node =
            Node::start(&node_dir, &NodeOptions::synced(&cloud.url, token.clone())).expect("node");
        wait_for_version(&node, v1);
        node.enrol("obama", "Barack Obama", &photo("sample-obama", 0))
            .expect("enrolled");
        let body = check_in(&node, &photo("sample-obama2", 0));
        assert_eq!(body["decision"], "granted", "{backend}: {body}");

        // The site's fraud policy: a fix must be within 5 m, or the check-in is denied outright.
        let (status, p) = admin(
            cloud,
            "PATCH",
            "/api/v1/sites/hq",
            Some(json!({ "fraud_policy": { "deny_at": 1.5 } })),
        );
        assert_eq!(status, 400, "{backend}: {p}");
        assert!(
            p["detail"]
                .as_str()
                .is_some_and(|d| d.contains("fraud_policy.deny_at")),
            "{p}"
        );
        let (status, strict) = admin(
            cloud,
            "PATCH",
            "/api/v1/sites/hq",
            Some(
                json!({ "fraud_policy": { "max_accuracy_m": 5.0, "deny_outright": ["low_gps_accuracy"] } }),
            ),
        );
        assert_eq!(status, 200, "{backend}: {strict}");
        assert_eq!(strict["fraud_policy"]["max_accuracy_m"], 5.0, "{strict}");
        wait_for_version(&node, strict["updated_ms"].as_i64().expect("version"));
        let body = check_in(&node, &photo("sample-obama2", 2));
        assert_eq!(body["decision"], "denied", "{backend}: {body}");
        assert!(
            reason_codes(&body).contains(&"low_gps_accuracy".to_owned()),
            "{backend}: {body}"
        );
        // Dropped: the node's own policy (a 10 m fix is fine) is back.
        let (status, lax) = admin(
            cloud,
            "PATCH",
            "/api/v1/sites/hq",
            Some(json!({ "fraud_policy": null })),
        );
        assert_eq!(status, 200, "{backend}: {lax}");
        assert!(lax.get("fraud_policy").is_none(), "{lax}");
        wait_for_version(&node, lax["updated_ms"].as_i64().expect("version"));
        let body = check_in(&node, &photo("sample-obama2", 3));
        assert_eq!(body["decision"], "granted", "{backend}: {body}");

        // The admins move the site's outline 5.5 km north: the gate is outside it now.
        let (status, moved) = admin(
            cloud,
            "PATCH",
            "/api/v1/sites/hq",
            Some(json!({ "geofence": square(DEMO_SITE.lat + 0.05, DEMO_SITE.lon) })),
        );
        assert_eq!(status, 200, "{backend}: {moved}");
        let v2 = moved["updated_ms"].as_i64().expect("version");
        wait_for_version(&node, v2);
        let body = check_in(&node, &photo("sample-obama3", 0));
        assert_eq!(body["decision"], "denied", "{backend}: {body}");
        assert!(
            reason_codes(&body).contains(&"outside_geofence".to_owned()),
            "{backend}: {body}"
        );

        // The cloud drops the site: the node's own fence (around the gate) is back. Obama,
        // enrolled at the node, went up to the site in the cloud; a site with people is not
        // deleted, so the admins unassign him first (and the node drops him).
        let (status, p) = admin(
            cloud,
            "PATCH",
            "/api/v1/people/obama",
            Some(json!({ "site_ids": [] })),
        );
        assert_eq!(
            (status, p["templates"].as_u64()),
            (200, Some(1)),
            "{backend}: {p}"
        );
        wait_for(
            "obama dropped from the node",
            Duration::from_secs(30),
            || node.people().expect("people").is_empty(),
        );
        let (status, p) = admin(cloud, "DELETE", "/api/v1/sites/hq", None);
        assert_eq!(status, 204, "{backend}: {p}");
        wait_for_version(&node, 0);
        // Enrolled at the node again: he stays there (the cloud, without the site, refuses him).
        node.enrol("obama", "Barack Obama", &photo("sample-obama", 1))
            .expect("enrolled again");
        let body = check_in(&node, &photo("sample-obama2", 1));
        assert_eq!(body["decision"], "granted", "{backend}: {body}");

        // Again a far outline; then the node restarts with the cloud out of reach.
        let (status, site) = admin(
            cloud,
            "POST",
            "/api/v1/sites",
            Some(
                json!({ "id": "hq", "name": "HQ", "geofence": square(DEMO_SITE.lat + 0.05, DEMO_SITE.lon) }),
            ),
        );
        assert_eq!(status, 201, "{backend}: {site}");
        assert!(site.get("fraud_policy").is_none(), "{site}");
        let v3 = site["updated_ms"].as_i64().expect("version");
        wait_for_version(&node, v3);
        let applied: Vec<String> = node
            .admin_list("/api/v1/audit")
            .expect("audit")
            .iter()
            .filter(|l| l["action"] == "site.config_applied")
            .filter_map(|l| l["detail"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(
            applied.len(),
            6,
            "{backend}: v1, strict, lax, moved, dropped, v3: {applied:?}"
        );
        wait_for(
            "the node's audit log in the cloud",
            Duration::from_secs(30),
            || {
                let (_, lines) = admin(
                    cloud,
                    "GET",
                    &format!("/api/v1/nodes/{node_id}/audit"),
                    None,
                );
                lines["items"].as_array().is_some_and(|l| {
                    l.iter()
                        .filter(|l| l["action"] == "site.config_applied")
                        .count()
                        == 6
                })
            },
        );
        drop(node);
        node = Node::start(
            &node_dir,
            &NodeOptions::synced("http://127.0.0.1:9", token.clone()),
        )
        .expect("node restarts");
        assert_eq!(version_in_force(&node), Some(v3 as f64), "{backend}");
        let body = check_in(&node, &photo("sample-obama3", 1));
        assert_eq!(body["decision"], "denied", "{backend}: {body}");
        assert!(
            reason_codes(&body).contains(&"outside_geofence".to_owned()),
            "{backend}: {body}"
        );

        // A kept configuration this release cannot use does not shut the gate: the node starts
        // on its own fence, and drops the kept one so that the cloud's next answer is judged anew.
        drop(node);
        let db = rusqlite::Connection::open(node_dir.join("data/node.sqlite")).expect("db");
        db.execute(
            r#"UPDATE site_config SET geofence = '{"type":"Point","coordinates":[2.29,48.85]}'"#,
            [],
        )
        .expect("spoil the kept outline");
        drop(db);
        let node = Node::start(
            &node_dir,
            &NodeOptions::synced("http://127.0.0.1:9", token.clone()),
        )
        .expect("node starts despite it");
        assert_eq!(version_in_force(&node), Some(0.0), "{backend}");
        let body = check_in(&node, &photo("sample-obama3", 2));
        assert_eq!(body["decision"], "granted", "{backend}: {body}");
        assert!(
            node.process.log_text().contains("unusable"),
            "{backend}: the reason is logged"
        );
    });
}
