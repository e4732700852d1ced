//! Enrolling a person from several photos in one step: every photo is checked first, all must
//! show the same person who is not enrolled yet, then the person and their templates are stored
//! together. The supervisor's page drives it in a real browser with a camera.

use std::time::Duration;

use base64::Engine as _;
use rollcall_tests::{
    AT_GATE, Browser, Node, NodeOptions, browser_available, environment_ready, fields,
    reason_codes, sample_photo, wait_for, y4m_from_photo,
};
use serde_json::{Value, json};

fn photo(name: &str) -> Vec<u8> {
    sample_photo(name).unwrap_or_else(|e| panic!("{e} (run `cargo xtask fetch`)"))
}

fn b64(name: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(photo(name))
}

fn enrol(node: &Node, body: Value) -> (u16, Value) {
    node.post_json("/api/v1/enrolments", &body, true)
        .expect("post")
}

fn check(node: &Node, name: &str) -> Value {
    let (status, body) = node
        .post_json(
            "/api/v1/enrolment/check",
            &json!({ "image_base64": b64(name) }),
            true,
        )
        .expect("post");
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn a_person_is_enrolled_from_several_photos_all_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node =
        Node::start(&dir.path().join("node"), &NodeOptions::standalone()).expect("node starts");

    // Nothing is stored by a refused enrolment.
    let cases = [
        (
            json!({ "id": "mixed", "display_name": "Mixed", "images_base64": [b64("sample-obama"), b64("sample-biden")] }),
            422,
            "different-people",
        ),
        (
            json!({ "id": "partial", "display_name": "Partial", "images_base64": [b64("sample-obama"), b64("sample-obama-partial-face")] }),
            422,
            "enrolment-photos",
        ),
        (
            json!({ "id": "none", "display_name": "None", "images_base64": [] }),
            400,
            "bad-request",
        ),
        (
            json!({ "id": "bad card", "display_name": "X", "images_base64": [b64("sample-obama")] }),
            422,
            "invalid-id",
        ),
    ];
    for (body, want, kind) in cases {
        let (status, answer) = enrol(&node, body);
        assert_eq!(status, want, "{answer}");
        assert!(
            answer["type"].as_str().is_some_and(|t| t.ends_with(kind)),
            "{answer}"
        );
    }
    let (_, answer) = enrol(
        &node,
        json!({ "id": "partial", "display_name": "Partial", "images_base64": [b64("sample-obama"), b64("sample-obama-partial-face")] }),
    );
    assert_eq!(
        reason_codes(&answer),
        ["face_truncated"],
        "photo 2 and why: {answer}"
    );
    assert!(
        answer["reasons"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("photo 2:")),
        "{answer}"
    );
    assert!(node.people().expect("people").is_empty());

    // Three photos of Obama, with his card.
    let (status, answer) = enrol(
        &node,
        json!({ "id": "obama", "display_name": " Barack Obama ", "card": "12:3456",
                "images_base64": [b64("sample-obama"), b64("sample-obama2"), b64("sample-obama3")] }),
    );
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        (
            fields(&answer, &["id", "display_name", "card"]),
            answer["templates"].as_u64()
        ),
        (
            vec![Some("obama"), Some("Barack Obama"), Some("12:3456")],
            Some(3)
        )
    );
    let people = node.people().expect("people");
    assert_eq!(people.len(), 1);
    assert_eq!(people[0]["templates"], 3);

    // His face again under another id is a duplicate; his card under another id is taken.
    for (body, want, kind) in [
        (
            json!({ "id": "obama-again", "display_name": "B. Obama", "images_base64": [b64("sample-obama2")] }),
            409,
            "duplicate-enrolment",
        ),
        (
            json!({ "id": "joe", "display_name": "Joe Biden", "card": "12:3456", "images_base64": [b64("sample-biden")] }),
            409,
            "card-taken",
        ),
        (
            json!({ "id": "obama", "display_name": "Joe Biden", "images_base64": [b64("sample-biden")] }),
            409,
            "person-exists",
        ),
    ] {
        let (status, answer) = enrol(&node, body);
        assert_eq!(status, want, "{answer}");
        assert!(
            answer["type"].as_str().is_some_and(|t| t.ends_with(kind)),
            "{answer}"
        );
    }
    assert_eq!(node.people().expect("people").len(), 1);

    // The per-frame check the page uses: nothing stored, and it says why.
    let known = check(&node, "sample-obama2");
    assert_eq!(known["matches_person"], "obama", "{known}");
    let new = check(&node, "sample-biden");
    assert_eq!(
        (
            new["usable"].as_bool(),
            new["faces"].as_u64(),
            &new["matches_person"]
        ),
        (Some(true), Some(1), &Value::Null),
        "{new}"
    );
    let cut = check(&node, "sample-obama-partial-face");
    assert_eq!(cut["usable"], false, "{cut}");
    assert_eq!(cut["issues"][0]["code"], "face_truncated", "{cut}");
    let (status, _) = node
        .post_json(
            "/api/v1/enrolment/check",
            &json!({ "image_base64": b64("sample-biden") }),
            false,
        )
        .expect("post");
    assert_eq!(status, 401, "the check needs the admin token");

    // And the enrolled person checks in.
    let body = node.decide(&photo("sample-obama"), Some(AT_GATE));
    assert_eq!(
        fields(&body, &["decision", "/person/id"]),
        [Some("granted"), Some("obama")]
    );
}

#[test]
fn the_enrolment_page_captures_photos_and_enrols_through_the_camera() {
    if !environment_ready(browser_available()) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let node =
        Node::start(&dir.path().join("node"), &NodeOptions::standalone()).expect("node starts");
    let camera = dir.path().join("camera.y4m");
    y4m_from_photo(&photo("sample-obama2"), &camera).expect("fake camera");
    let browser = Browser::start(dir.path(), &camera).expect("chromium starts");
    browser
        .goto(&format!("{}/enrol", node.url))
        .expect("page loads");
    let eval = |script: &str| browser.eval(script).unwrap_or(Value::Null);
    wait_for("the camera", Duration::from_secs(30), || {
        eval("return document.getElementById('video').videoWidth > 0") == true
    });
    eval(&format!(
        "document.getElementById('token').value = {};
         const name = document.getElementById('name'); name.value = 'Barack Obama';
         name.dispatchEvent(new Event('input'));
         document.getElementById('pid').value = 'obama'; return true",
        serde_json::to_string(&node.admin_token).expect("json")
    ));
    let status = || {
        eval("return document.getElementById('status').dataset.state + ' | ' + document.getElementById('status').textContent")
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    for n in 1..=3 {
        wait_for("the capture button", Duration::from_secs(30), || {
            eval("return !document.getElementById('capture').disabled") == true
        });
        eval("document.getElementById('capture').click(); return true");
        wait_for(
            "the node's verdict on the photo",
            Duration::from_secs(30),
            || {
                eval("return document.querySelectorAll('.shot').length") == n
                    && !status().starts_with("busy")
            },
        );
        assert!(status().starts_with("ok"), "photo {n}: {}", status());
    }
    assert_eq!(
        eval("return document.querySelectorAll('.shot.ok').length"),
        3
    );
    assert_eq!(
        eval("return document.getElementById('confirm').disabled"),
        false
    );
    eval("document.getElementById('confirm').click(); return true");
    wait_for("the enrolment", Duration::from_secs(60), || {
        let s = status();
        !s.starts_with("busy") && s.contains("nrol")
    });
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("enrolment-done.png");
    browser.screenshot(&shot).expect("screenshot");
    let text = status();
    assert!(
        text.starts_with("ok | Enrolled Barack Obama with 3 face templates"),
        "{text}"
    );
    let people = node.people().expect("people");
    assert_eq!(
        (people.len(), &people[0]["id"], &people[0]["templates"]),
        (1, &json!("obama"), &json!(3))
    );

    // A second try of the same face is flagged at capture time.
    wait_for("the capture button", Duration::from_secs(30), || {
        eval("return !document.getElementById('capture').disabled") == true
    });
    eval("document.getElementById('capture').click(); return true");
    wait_for("the verdict", Duration::from_secs(30), || {
        eval("return document.querySelectorAll('.shot').length") == 1
            && !status().starts_with("busy")
    });
    assert!(
        status().contains("already enrolled as obama"),
        "{}",
        status()
    );
}
