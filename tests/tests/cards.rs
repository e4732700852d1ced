//! Card + face check-ins through a real OSDP reader (LibOSDP's PD on a pty): a card read makes
//! the next kiosk frame a 1:1 check of the card holder's face; another face with that card is
//! a buddy punch and is denied; an unknown card is recorded and refused at the reader; a card
//! expires after its window; a site may require the card; a card revoked in the cloud is
//! refused at the reader until it is reinstated (on SQLite and PostgreSQL clouds).

use std::time::Duration;

use base64::Engine as _;
use rollcall_firmware_bridge::wiegand_frame;
use rollcall_tests::{
    AT_GATE, Node, NodeOptions, OsdpPeer, fields, node_on_reader, reason_codes, sample_photo,
    wait_for,
};
use serde_json::{Value, json};

fn photo(name: &str) -> Vec<u8> {
    sample_photo(name).unwrap_or_else(|e| panic!("{e} (run `cargo xtask fetch`)"))
}

/// The hex frame of a 26-bit Wiegand card, as the reader sends it.
fn card(facility: u32, number: u32) -> String {
    let frame = wiegand_frame(26, facility, number).expect("a 26-bit card");
    frame.iter().map(|b| format!("{b:02x}")).collect()
}

fn add_person(node: &Node, id: &str, name: &str, card: &str, face: Option<&str>) {
    let (status, body) = node
        .post_json(
            "/api/v1/people",
            &json!({ "id": id, "display_name": name, "card": card }),
            true,
        )
        .expect("create");
    assert_eq!(status, 201, "{body}");
    if let Some(face) = face {
        let image = base64::engine::general_purpose::STANDARD.encode(photo(face));
        let (status, body) = node
            .post_json(
                &format!("/api/v1/people/{id}/faces"),
                &json!({ "image_base64": image }),
                true,
            )
            .expect("enrol");
        assert_eq!(status, 201, "{body}");
    }
}

/// Obama, enrolled from one photo, holding card 12:3456.
fn add_obama(node: &Node) {
    add_person(
        node,
        "obama",
        "Barack Obama",
        "12:3456",
        Some("sample-obama"),
    );
}

fn waiting_card(node: &Node) -> Value {
    node.get("/api/v1/kiosk/card")
        .and_then(|r| Ok(r.json::<Value>()?))
        .map(|v| v["card"].clone())
        .unwrap_or(Value::Null)
}

fn site(dir: &std::path::Path, osdp_extra: &str) -> Option<(OsdpPeer, Node)> {
    node_on_reader(
        dir,
        NodeOptions {
            osdp_extra: osdp_extra.into(),
            ..NodeOptions::standalone()
        },
    )
}

/// Presents a card and waits until the node holds it for `name`'s face.
fn present(peer: &mut OsdpPeer, node: &Node, hex: &str, name: &str) {
    peer.present_card(hex, 26).expect("card");
    wait_for("the node to hold the card", Duration::from_secs(20), || {
        waiting_card(node)["display_name"].as_str() == Some(name)
    });
}

/// The PD's commands until `quiet` passes without one.
fn drain(peer: &OsdpPeer, quiet: Duration) -> Vec<Value> {
    std::iter::from_fn(|| peer.next_command(quiet)).collect()
}

#[test]
fn a_card_makes_the_next_face_a_one_to_one_check_of_its_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((mut peer, mut node)) = site(dir.path(), "card_window_s = 4") else {
        return;
    };
    let live = node.live().expect("live feed");
    add_obama(&node);
    add_person(
        &node,
        "biden",
        "Joe Biden",
        "012:07777",
        Some("sample-biden"),
    );
    // Typed cards are normalised, checked and unique.
    let people = node.people().expect("people");
    assert!(people.iter().any(|p| p["card"] == "12:7777"), "{people:?}");
    for (card, status, kind) in [("12", 400, "bad-request"), ("12:3456", 409, "card-taken")] {
        let (got, body) = node
            .post_json(
                "/api/v1/people",
                &json!({ "id": "x", "display_name": "X", "card": card }),
                true,
            )
            .expect("post");
        assert_eq!(got, status, "{body}");
        assert!(
            body["type"].as_str().is_some_and(|t| t.ends_with(kind)),
            "{body}"
        );
    }
    drain(&peer, Duration::from_millis(300));

    // Obama's card, then his face: granted as card + face, and the reader prompted him.
    present(&mut peer, &node, &card(12, 3456), "Barack Obama");
    let body = node.decide(&photo("sample-obama2"), Some(AT_GATE));
    assert_eq!(
        fields(
            &body,
            &["decision", "credential", "/person/id", "turnstile"]
        ),
        [
            Some("granted"),
            Some("card_and_face"),
            Some("obama"),
            Some("opened")
        ],
        "{body}"
    );
    assert!(
        body["person"].get("card").is_none(),
        "the kiosk is not told card numbers: {body}"
    );
    let seen = drain(&peer, Duration::from_millis(500));
    assert!(
        seen.iter().any(|c| c["on_color"].as_u64() == Some(3)),
        "amber while the face is awaited: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|c| c["data"].as_str() == Some("Barack Obama: look at the camera")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|c| c["output_no"].as_u64() == Some(0)),
        "relay: {seen:?}"
    );
    assert_eq!(
        waiting_card(&node),
        Value::Null,
        "a card serves one check-in"
    );

    // Obama's card with Biden's face: a buddy punch, denied, recorded against the card holder.
    present(&mut peer, &node, &card(12, 3456), "Barack Obama");
    let body = node.decide(&photo("sample-biden"), Some(AT_GATE));
    assert_eq!(
        fields(&body, &["decision", "turnstile"]),
        [Some("denied"), Some("closed")],
        "{body}"
    );
    let codes = reason_codes(&body);
    assert_eq!(
        codes.first().map(String::as_str),
        Some("card_face_mismatch"),
        "{body}"
    );
    assert!(codes.iter().any(|c| c == "buddy_punch_suspected"), "{body}");
    let seen = drain(&peer, Duration::from_millis(500));
    assert!(
        seen.iter().all(|c| c.get("output_no").is_none()),
        "no relay: {seen:?}"
    );

    // A card no one holds: a denied event with the card, red light and a message at the reader.
    peer.present_card(&card(12, 9999), 26).expect("card");
    wait_for("the unknown card's event", Duration::from_secs(20), || {
        node.events()
            .is_ok_and(|e| e.iter().any(|e| e["card"] == "12:9999"))
    });
    let events = node.events().expect("events");
    let unknown = events
        .iter()
        .find(|e| e["card"] == "12:9999")
        .expect("event");
    assert_eq!(
        (
            fields(unknown, &["decision", "person_id"]),
            reason_codes(unknown)
        ),
        (vec![Some("denied"), None], vec!["unknown_card".to_owned()]),
        "{unknown}"
    );
    let seen = drain(&peer, Duration::from_millis(500));
    assert!(
        seen.iter().any(|c| c["on_color"].as_u64() == Some(1)),
        "red: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|c| c["data"].as_str() == Some("Unknown card")),
        "{seen:?}"
    );
    assert_eq!(waiting_card(&node), Value::Null);

    // The stored events carry the card; the buddy punch is Obama's denied attempt.
    let punch = events
        .iter()
        .find(|e| reason_codes(e).first().map(String::as_str) == Some("card_face_mismatch"))
        .expect("the buddy punch is stored");
    assert_eq!(
        fields(punch, &["person_id", "card"]),
        [Some("obama"), Some("12:3456")]
    );

    // A card not followed by a face within its window expires: the next check-in is face only.
    present(&mut peer, &node, &card(12, 7777), "Joe Biden");
    wait_for("the card to expire", Duration::from_secs(10), || {
        waiting_card(&node) == Value::Null
    });
    let body = node.decide(&photo("sample-obama3"), Some(AT_GATE));
    assert_eq!(
        fields(&body, &["decision", "credential"]),
        [Some("granted"), Some("face")],
        "{body}"
    );

    // A frame that cannot be used does not use up the card.
    present(&mut peer, &node, &card(12, 7777), "Joe Biden");
    let (status, _) = node
        .check_in(&photo("sample-obama-partial-face"), Some(AT_GATE))
        .expect("check-in");
    assert_eq!(status, 422);
    assert_eq!(waiting_card(&node)["display_name"], "Joe Biden");

    // A monitor on the live feed saw every decision as it happened, in order.
    let seen: Vec<(String, Value)> = live.try_iter().collect();
    let decisions: Vec<Vec<Option<&str>>> = seen
        .iter()
        .filter(|(kind, _)| kind == "decision")
        .map(|(_, d)| fields(d, &["decision", "credential", "display_name"]))
        .collect();
    assert_eq!(
        decisions,
        [
            [Some("granted"), Some("card_and_face"), Some("Barack Obama")],
            [Some("denied"), Some("card_and_face"), Some("Barack Obama")],
            [Some("denied"), Some("card"), None],
            [Some("granted"), Some("face"), Some("Barack Obama")],
        ],
        "{seen:?}"
    );
    // And the node still stops at once, the feed open.
    let stopped = node.process.stop(Duration::from_secs(10));
    assert!(stopped.is_some_and(|s| s.success()), "{stopped:?}");
}

#[test]
fn a_site_that_requires_cards_denies_a_face_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((mut peer, node)) = site(dir.path(), "require_card = true") else {
        return;
    };
    add_obama(&node);
    let body = node.decide(&photo("sample-obama2"), Some(AT_GATE));
    assert_eq!(
        (
            fields(&body, &["decision"]),
            reason_codes(&body).first().cloned()
        ),
        (vec![Some("denied")], Some("card_required".to_owned())),
        "{body}"
    );
    present(&mut peer, &node, &card(12, 3456), "Barack Obama");
    let body = node.decide(&photo("sample-obama3"), Some(AT_GATE));
    assert_eq!(
        fields(&body, &["decision", "credential"]),
        [Some("granted"), Some("card_and_face")],
        "{body}"
    );

    // Obama's card but no face of his enrolled any more is refused for that reason.
    let (status, _) = node.http_delete("/api/v1/people/obama").expect("delete");
    assert_eq!(status, 204);
    add_person(&node, "obama2", "Barack Obama", "12:3456", None);
    present(&mut peer, &node, &card(12, 3456), "Barack Obama");
    let body = node.decide(&photo("sample-obama2"), Some(AT_GATE));
    assert_eq!(
        (
            fields(&body, &["decision"]),
            reason_codes(&body).first().cloned()
        ),
        (vec![Some("denied")], Some("not_enrolled".to_owned())),
        "{body}"
    );
}

#[test]
fn a_second_reader_on_the_line_takes_cards_and_reports_its_own_alarms() {
    if !rollcall_tests::environment_ready(rollcall_tests::osdp_python()) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut peer = OsdpPeer::start_bus(&dir.path().join("osdp"), &[101, 102]).expect("PDs start");
    let node = Node::start(
        &dir.path().join("node"),
        &NodeOptions {
            osdp: Some((peer.cp_port().to_path_buf(), 101)),
            osdp_extra: "readers = [102]".into(),
            ..NodeOptions::standalone()
        },
    )
    .expect("node starts");
    wait_for("both PDs online", Duration::from_secs(30), || {
        node.has_metric("rollcall_node_osdp_pd_online 2")
    });
    add_obama(&node);
    drain(&peer, Duration::from_millis(300));

    // The exit reader (102) takes the card and prompts; the turnstile (101) opens.
    peer.present_card_on(102, &card(12, 3456), 26)
        .expect("card");
    wait_for("the node to hold the card", Duration::from_secs(20), || {
        waiting_card(&node)["display_name"] == "Barack Obama"
    });
    let body = node.decide(&photo("sample-obama2"), Some(AT_GATE));
    assert_eq!(
        fields(&body, &["decision", "credential", "turnstile"]),
        [Some("granted"), Some("card_and_face"), Some("opened")],
        "{body}"
    );
    let seen = drain(&peer, Duration::from_millis(500));
    assert!(
        seen.iter()
            .any(|c| c["pd"] == 102 && c["on_color"].as_u64() == Some(3)),
        "amber on the reader that read the card: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|c| c["pd"] == 101 && c["output_no"].as_u64() == Some(0)),
        "the relay is the turnstile's: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|c| c["pd"] == 102 && c["on_color"].as_u64() == Some(2)),
        "green on the reader the person stands at: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|c| c["pd"] == 102 && c["data"] == "Welcome Barack Obama"),
        "{seen:?}"
    );

    // Its tamper switch is its own alarm.
    peer.set_local_status(102, true, false).expect("tamper");
    wait_for("the tamper alarm", Duration::from_secs(20), || {
        node.admin_list("/api/v1/alarms")
            .is_ok_and(|a| a.iter().any(|a| a["kind"] == "tamper" && a["pd"] == 102))
    });
}

/// A card revoked in the cloud is refused at the node's reader — the holder's card, whoever
/// presents it — recorded as `card_revoked` against its holder; reinstated, it works again.
#[test]
fn a_card_revoked_in_the_cloud_is_refused_at_the_reader_until_reinstated() {
    rollcall_tests::on_each_backend(&[], |backend, cloud, dir| {
        let admin = |method: &str, path: &str, body: Option<Value>| {
            cloud
                .call(method, path, Some(&cloud.admin_token), body.as_ref(), None)
                .expect("request")
        };
        let (_, token) = cloud.register_node("hq").expect("registered");
        let Some((mut peer, node)) = node_on_reader(dir, NodeOptions::synced(&cloud.url, token))
        else {
            return;
        };
        add_obama(&node);
        // What the admin API refuses.
        let (status, p) = admin(
            "POST",
            "/api/v1/card-revocations",
            Some(json!({ "card": "twelve", "reason": "lost" })),
        );
        assert_eq!(status, 400, "{backend}: {p}");
        let (status, p) = admin(
            "POST",
            "/api/v1/card-revocations",
            Some(json!({ "card": "12:3456", "reason": " " })),
        );
        assert_eq!(status, 400, "{backend}: {p}");
        let (status, _) = admin("DELETE", "/api/v1/card-revocations/12:9", None);
        assert_eq!(status, 404, "{backend}: not revoked");

        // Revoked as typed with leading zeros: the same card.
        let (status, r) = admin(
            "POST",
            "/api/v1/card-revocations",
            Some(json!({ "card": "012:03456", "reason": "reported stolen" })),
        );
        assert_eq!(
            (status, r["card"].as_str()),
            (201, Some("12:3456")),
            "{backend}: {r}"
        );
        let (_, list) = admin("GET", "/api/v1/card-revocations", None);
        assert_eq!(list["items"][0]["card"], "12:3456", "{backend}: {list}");
        wait_for(
            "the revocation on the node",
            Duration::from_secs(30),
            || {
                node.admin_list("/api/v1/audit")
                    .is_ok_and(|a| a.iter().any(|l| l["action"] == "card.revoked"))
            },
        );
        drain(&peer, Duration::from_millis(300));
        peer.present_card(&card(12, 3456), 26).expect("card");
        wait_for("the revoked card's event", Duration::from_secs(20), || {
            node.events().is_ok_and(|e| {
                e.iter()
                    .any(|e| reason_codes(e) == ["card_revoked".to_owned()])
            })
        });
        let events = node.events().expect("events");
        let refused = events
            .iter()
            .find(|e| reason_codes(e) == ["card_revoked".to_owned()])
            .expect("event");
        assert_eq!(
            fields(refused, &["decision", "person_id", "card"]),
            [Some("denied"), Some("obama"), Some("12:3456")],
            "{backend}: {refused}"
        );
        let seen = drain(&peer, Duration::from_millis(500));
        assert!(
            seen.iter()
                .any(|c| c["data"].as_str() == Some("Card revoked")),
            "{backend}: {seen:?}"
        );
        assert_eq!(waiting_card(&node), Value::Null, "no face awaited");

        // Reinstated: the card works again.
        let (status, _) = admin("DELETE", "/api/v1/card-revocations/12:3456", None);
        assert_eq!(status, 204, "{backend}");
        wait_for(
            "the reinstatement on the node",
            Duration::from_secs(30),
            || {
                node.admin_list("/api/v1/audit")
                    .is_ok_and(|a| a.iter().any(|l| l["action"] == "card.reinstated"))
            },
        );
        present(&mut peer, &node, &card(12, 3456), "Barack Obama");
        let body = node.decide(&photo("sample-obama2"), Some(AT_GATE));
        assert_eq!(body["decision"], "granted", "{backend}: {body}");
    });
}
