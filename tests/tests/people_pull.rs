//! People flow down from the cloud to the nodes of their site, on SQLite and PostgreSQL: a
//! person enrolled in the cloud only (a template from an enrolment station) is recognised at
//! the node; a template deleted in the cloud stops matching at the node within a sync cycle or
//! two; unassigning someone from the site drops them from its node, assigning them brings them
//! back; a face enrolled at the node goes up to the cloud (which keeps the version it replaced)
//! and on to the site's other nodes; a later cloud edit wins over the node's, which the node keeps
//! in the person's history; an erasure removes them from the node for good (the id cannot be used
//! again on either side).

use std::time::Duration;

use base64::Engine as _;
use rollcall_node::{store::NodeStore, template_key::TemplateKey, vision_setup::DEFAULT_EMBEDDER};
use rollcall_tests::{
    AT_GATE, Cloud, DEMO_SITE, Node, NodeOptions, on_each_backend, reason_codes, sample_photo,
    wait_for,
};
use serde_json::{Value, json};

fn photo(name: &str) -> Vec<u8> {
    sample_photo(name).unwrap_or_else(|e| panic!("{e}"))
}

/// Obama's face template as an enrolment station makes it: enrolled on a scratch standalone
/// node, read back from its store.
fn obama_template(dir: &std::path::Path) -> Vec<f32> {
    let node = Node::start(dir, &NodeOptions::standalone()).expect("scratch node");
    node.enrol("obama", "Barack Obama", &photo("sample-obama"))
        .expect("enrolled");
    drop(node);
    let data = dir.join("data");
    let key = TemplateKey::load_or_create(&data.join("template.key")).expect("key");
    let store = NodeStore::open(&data.join("node.sqlite"), key).expect("store");
    let mut templates = store.templates(DEFAULT_EMBEDDER).expect("templates");
    assert_eq!(templates.len(), 1);
    templates.remove(0).vector
}

fn admin(cloud: &Cloud, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    cloud
        .call(method, path, Some(&cloud.admin_token), body.as_ref(), None)
        .expect("request")
}

/// The node's templates of `id`: `None` if the node does not hold them.
fn held(node: &Node, id: &str) -> Option<u64> {
    node.people()
        .expect("people")
        .iter()
        .find(|p| p["id"] == id)
        .map(|p| p["templates"].as_u64().unwrap_or(0))
}

#[test]
fn people_enrolled_in_the_cloud_are_recognised_at_their_sites_node_and_erasures_reach_it() {
    on_each_backend(&[], |backend, cloud, dir| {
        let vector = obama_template(&dir.join("station"));
        let fence = json!({ "type": "Polygon", "coordinates": [[
            [DEMO_SITE.lon - 0.01, DEMO_SITE.lat - 0.01], [DEMO_SITE.lon + 0.01, DEMO_SITE.lat - 0.01],
            [DEMO_SITE.lon + 0.01, DEMO_SITE.lat + 0.01], [DEMO_SITE.lon - 0.01, DEMO_SITE.lat + 0.01],
            [DEMO_SITE.lon - 0.01, DEMO_SITE.lat - 0.01]]] });
        for id in ["hq", "annex"] {
            let (status, p) = admin(
                cloud,
                "POST",
                "/api/v1/sites",
                Some(json!({ "id": id, "name": id, "geofence": fence })),
            );
            assert_eq!(status, 201, "{backend}: {p}");
        }
        let (status, p) = admin(
            cloud,
            "POST",
            "/api/v1/people",
            Some(json!({ "id": "obama", "display_name": "Barack Obama", "site_ids": ["hq"] })),
        );
        assert_eq!(status, 201, "{backend}: {p}");
        let (status, t) = admin(
            cloud,
            "POST",
            "/api/v1/people/obama/templates",
            Some(json!({ "model": DEFAULT_EMBEDDER, "embedding": vector })),
        );
        assert_eq!(status, 201, "{backend}: {t}");
        let template = t["id"].as_str().expect("template id").to_owned();
        // Someone at the other site only: never sent to this node.
        let (status, p) = admin(
            cloud,
            "POST",
            "/api/v1/people",
            Some(json!({ "id": "biden", "display_name": "Joe Biden", "site_ids": ["annex"] })),
        );
        assert_eq!(status, 201, "{backend}: {p}");

        let (_, token) = cloud.register_node("hq").expect("node registered");
        let node =
            Node::start(&dir.join("node"), &NodeOptions::synced(&cloud.url, token)).expect("node");
        let soon = Duration::from_secs(30);
        wait_for("obama on the node", soon, || {
            held(&node, "obama") == Some(1)
        });
        assert_eq!(held(&node, "biden"), None, "{backend}: not this site's");
        let d = node.decide(&photo("sample-obama2"), Some(AT_GATE));
        assert_eq!(
            (d["decision"].as_str(), d["person"]["id"].as_str()),
            (Some("granted"), Some("obama")),
            "{backend}: {d}"
        );

        // The template is deleted in the cloud: the node stops matching it.
        let (status, _) = admin(
            cloud,
            "DELETE",
            &format!("/api/v1/people/obama/templates/{template}"),
            None,
        );
        assert_eq!(status, 204, "{backend}");
        wait_for("the template gone from the node", soon, || {
            held(&node, "obama") == Some(0)
        });
        let d = node.decide(&photo("sample-obama3"), Some(AT_GATE));
        assert_eq!(d["decision"], "denied", "{backend}: {d}");
        assert!(reason_codes(&d).contains(&"no_match".to_owned()), "{d}");

        // Unassigned from the site: dropped; assigned again with a template: back.
        let (status, p) = admin(
            cloud,
            "PATCH",
            "/api/v1/people/obama",
            Some(json!({ "site_ids": ["annex"] })),
        );
        assert_eq!(status, 200, "{backend}: {p}");
        wait_for("obama dropped", soon, || held(&node, "obama").is_none());
        let (status, _) = admin(
            cloud,
            "POST",
            "/api/v1/people/obama/templates",
            Some(json!({ "model": DEFAULT_EMBEDDER, "embedding": vector })),
        );
        assert_eq!(status, 201, "{backend}");
        let (status, _) = admin(
            cloud,
            "PATCH",
            "/api/v1/people/obama",
            Some(json!({ "site_ids": ["hq", "annex"] })),
        );
        assert_eq!(status, 200, "{backend}");
        wait_for("obama back", soon, || held(&node, "obama") == Some(1));
        let d = node.decide(&photo("sample-obama"), Some(AT_GATE));
        assert_eq!(d["person"]["id"], "obama", "{backend}: {d}");

        // A second face enrolled at the node is the node's edit: it goes up, and wins in the
        // cloud (it is later than the cloud's last edit), which keeps what it replaced.
        use base64::Engine as _;
        let face = base64::engine::general_purpose::STANDARD.encode(photo("sample-obama3"));
        let (status, p) = node
            .post_json(
                "/api/v1/people/obama/faces",
                &json!({ "image_base64": face }),
                true,
            )
            .expect("local enrolment");
        assert_eq!(status, 201, "{backend}: {p}");
        assert_eq!(held(&node, "obama"), Some(2));
        wait_for("the node's enrolment in the cloud", soon, || {
            admin(cloud, "GET", "/api/v1/people/obama", None).1["templates"] == 2
        });
        let (status, h) = admin(cloud, "GET", "/api/v1/people/obama/history", None);
        assert_eq!(status, 200, "{backend}: {h}");
        let node_id = h["items"][0]["node_id"]
            .as_str()
            .expect("node id")
            .to_owned();
        assert_eq!(
            (
                h["items"][0]["outcome"].as_str(),
                h["items"][0]["state"]["templates"].as_array().map(Vec::len)
            ),
            (Some("replaced"), Some(1)),
            "{backend}: {h}"
        );
        // Another node of the site gets the face enrolled at the first.
        let (_, token2) = cloud.register_node("hq").expect("second node registered");
        let node2 = Node::start(&dir.join("node2"), &NodeOptions::synced(&cloud.url, token2))
            .expect("second node");
        wait_for("the first node's enrolment at the second", soon, || {
            held(&node2, "obama") == Some(2)
        });
        drop(node2);
        // A later edit in the cloud wins (last writer) and comes down with both faces; the node
        // keeps its own replaced version, stamped with its id in the cloud, in the history.
        let (status, _) = admin(
            cloud,
            "PATCH",
            "/api/v1/people/obama",
            Some(json!({ "display_name": "Barack H. Obama" })),
        );
        assert_eq!(status, 200, "{backend}");
        wait_for("the cloud's later edit on the node", soon, || {
            node.people()
                .expect("people")
                .iter()
                .any(|p| p["id"] == "obama" && p["display_name"] == "Barack H. Obama")
        });
        assert_eq!(held(&node, "obama"), Some(2), "{backend}");
        let history = node
            .admin_list("/api/v1/people/obama/history")
            .expect("history");
        let last = history.last().expect("a replaced version");
        assert_eq!(
            (
                last["outcome"].as_str(),
                last["state"]["templates"].as_array().map(Vec::len),
                last["version"]["origin"].as_str()
            ),
            (Some("replaced"), Some(2), Some(node_id.as_str())),
            "{backend}: {history:?}"
        );

        // Erased in the cloud: gone from the node, and the id is spent on both sides.
        let (status, _) = admin(cloud, "DELETE", "/api/v1/people/obama", None);
        assert_eq!(status, 204, "{backend}");
        wait_for("obama erased from the node", soon, || {
            held(&node, "obama").is_none()
        });
        let (status, p) = node
            .post_json(
                "/api/v1/people",
                &json!({ "id": "obama", "display_name": "Barack Obama" }),
                true,
            )
            .expect("local add");
        assert_eq!(
            (status, p["type"].as_str()),
            (409, Some("urn:rollcall:problem:person-erased")),
            "{backend}: {p}"
        );
        let (status, p) = admin(
            cloud,
            "POST",
            "/api/v1/people",
            Some(json!({ "id": "obama", "display_name": "Barack Obama", "site_ids": ["hq"] })),
        );
        assert_eq!(status, 409, "{backend}: {p}");
        assert!(
            p["detail"].as_str().unwrap_or_default().contains("erased"),
            "{backend}: {p}"
        );
        // The node's audit log says who changed its people.
        let audit = node.admin_list("/api/v1/audit").expect("audit");
        assert!(
            audit
                .iter()
                .any(|a| a["actor"] == "cloud" && a["action"] == "person.synced"),
            "{backend}: {audit:?}"
        );
    });
}

/// A person id the cloud refuses (`_guard` starts with punctuation) is refused at the node's
/// enrolment with a 422 naming the rule, instead of being stored and pushed to become a dead
/// letter for ever; a valid id enrolled next reaches the cloud, and nothing is left dead.
#[test]
fn a_person_id_the_cloud_would_refuse_is_refused_at_the_nodes_enrolment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(&dir.path().join("cloud"), None).expect("cloud");
    let (status, p) = admin(
        &cloud,
        "POST",
        "/api/v1/sites",
        Some(
            json!({ "id": "hq", "name": "HQ", "geofence": { "type": "Polygon", "coordinates": [[
            [DEMO_SITE.lon - 0.01, DEMO_SITE.lat - 0.01], [DEMO_SITE.lon + 0.01, DEMO_SITE.lat - 0.01],
            [DEMO_SITE.lon + 0.01, DEMO_SITE.lat + 0.01], [DEMO_SITE.lon - 0.01, DEMO_SITE.lat + 0.01],
            [DEMO_SITE.lon - 0.01, DEMO_SITE.lat - 0.01]]] } }),
        ),
    );
    assert_eq!(status, 201, "{p}");
    let (_, token) = cloud.register_node("hq").expect("node registered");
    let node = Node::start(
        &dir.path().join("node"),
        &NodeOptions::synced(&cloud.url, token),
    )
    .expect("node");
    let face = base64::engine::general_purpose::STANDARD.encode(photo("sample-obama"));
    let rule = "person id `_guard` is refused: 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit";
    for (path, body) in [
        (
            "/api/v1/people",
            json!({ "id": "_guard", "display_name": "Guard" }),
        ),
        (
            "/api/v1/enrolments",
            json!({ "id": "_guard", "display_name": "Guard", "images_base64": [face] }),
        ),
    ] {
        let (status, answer) = node.post_json(path, &body, true).expect("request");
        assert_eq!(status, 422, "{path}: {answer}");
        assert_eq!(
            answer["type"], "urn:rollcall:problem:invalid-id",
            "{answer}"
        );
        assert_eq!(answer["invalid-params"][0]["name"], "id", "{answer}");
        assert!(
            answer["detail"].as_str().is_some_and(|d| d.contains(rule)),
            "{path}: {answer}"
        );
    }
    assert!(
        node.people().expect("people").is_empty(),
        "nothing was stored"
    );

    node.enrol("guard", "Guard", &photo("sample-obama"))
        .expect("a valid id is enrolled");
    wait_for("guard in the cloud", Duration::from_secs(30), || {
        admin(&cloud, "GET", "/api/v1/people/guard", None).0 == 200
    });
    assert_eq!(
        node.admin_list("/api/v1/dead-letters/records")
            .expect("dead letters"),
        Vec::<Value>::new()
    );
}

/// A template of the wrong length under the node's model name is refused by the cloud with 409
/// `template-dimension` (before: accepted, and a fresh node adopted its length, after which every
/// enrolment there answered 500). A template of the right length reaches the fresh node, and
/// the node enrols and recognises people as ever.
#[test]
fn a_template_of_the_wrong_length_never_reaches_a_fresh_node() {
    on_each_backend(&[], |backend, cloud, dir| {
        let fence = json!({ "type": "Polygon", "coordinates": [[
            [DEMO_SITE.lon - 0.01, DEMO_SITE.lat - 0.01], [DEMO_SITE.lon + 0.01, DEMO_SITE.lat - 0.01],
            [DEMO_SITE.lon + 0.01, DEMO_SITE.lat + 0.01], [DEMO_SITE.lon - 0.01, DEMO_SITE.lat + 0.01],
            [DEMO_SITE.lon - 0.01, DEMO_SITE.lat - 0.01]]] });
        let (status, p) = admin(
            cloud,
            "POST",
            "/api/v1/sites",
            Some(json!({ "id": "hq", "name": "HQ", "geofence": fence })),
        );
        assert_eq!(status, 201, "{backend}: {p}");
        for id in ["short", "obama"] {
            let (status, p) = admin(
                cloud,
                "POST",
                "/api/v1/people",
                Some(json!({ "id": id, "display_name": id, "site_ids": ["hq"] })),
            );
            assert_eq!(status, 201, "{backend}: {p}");
        }
        let (status, p) = admin(
            cloud,
            "POST",
            "/api/v1/people/short/templates",
            Some(json!({ "model": DEFAULT_EMBEDDER, "embedding": vec![0.1f32; 128] })),
        );
        assert_eq!(
            (status, p["type"].as_str()),
            (409, Some("urn:rollcall:problem:template-dimension")),
            "{backend}: {p}"
        );
        assert!(
            p["detail"]
                .as_str()
                .is_some_and(|d| d.contains("192") && d.contains("128")),
            "{p}"
        );
        // Another embedder's name takes its own length; the node leaves it alone.
        let (status, p) = admin(
            cloud,
            "POST",
            "/api/v1/people/short/templates",
            Some(json!({ "model": "station-embedder-v2", "embedding": vec![0.1f32; 128] })),
        );
        assert_eq!(status, 201, "{backend}: {p}");
        let vector = obama_template(&dir.join("station"));
        let (status, p) = admin(
            cloud,
            "POST",
            "/api/v1/people/obama/templates",
            Some(json!({ "model": DEFAULT_EMBEDDER, "embedding": vector })),
        );
        assert_eq!(status, 201, "{backend}: {p}");

        let (_, token) = cloud.register_node("hq").expect("node registered");
        let node =
            Node::start(&dir.join("node"), &NodeOptions::synced(&cloud.url, token)).expect("node");
        let soon = Duration::from_secs(30);
        wait_for("both on the node", soon, || {
            held(&node, "obama") == Some(1) && held(&node, "short") == Some(0)
        });
        let enrolled = node
            .enrol("biden", "Joe Biden", &photo("sample-biden"))
            .unwrap_or_else(|e| panic!("{backend}: a local enrolment: {e}"));
        assert!(enrolled.is_object(), "{enrolled}");
        let d = node.decide(&photo("sample-obama2"), Some(AT_GATE));
        assert_eq!(
            (d["decision"].as_str(), d["person"]["id"].as_str()),
            (Some("granted"), Some("obama")),
            "{backend}: {d}"
        );
    });
}
