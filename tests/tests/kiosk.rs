//! The kiosk page in a real browser: Chromium's camera plays a photo, the page captures a frame
//! once the picture is steady and posts it, and shows the node's decision: the enrolled
//! person's name for them, a denial for a stranger.

use std::{path::Path, time::Duration};

use rollcall_tests::{
    AT_GATE, Browser, Node, NodeOptions, browser_available, environment_ready, sample_photo,
    wait_for, y4m_from_photo,
};

fn photo(name: &str) -> Vec<u8> {
    sample_photo(name).unwrap_or_else(|e| panic!("{e}"))
}

/// The top of a full-length portrait, 4:3, as someone standing at the kiosk fills its camera.
fn head_and_shoulders(name: &str) -> Vec<u8> {
    let img = image::load_from_memory(&photo(name)).expect("decode");
    let (w, h) = (img.width(), img.height());
    let top = img.crop_imm(0, 0, w, (w * 3 / 4).min(h));
    let mut out = std::io::Cursor::new(Vec::new());
    top.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode");
    out.into_inner()
}

/// Opens the hands-free kiosk with a camera showing `camera_photo`; returns the page's
/// decision and text, and keeps a screenshot as `<shot>.png` among the test artefacts.
fn kiosk_sees(node: &Node, dir: &Path, camera_photo: &[u8], shot: &str) -> (String, String) {
    std::fs::create_dir_all(dir).expect("dir");
    let camera = dir.join("camera.y4m");
    y4m_from_photo(camera_photo, &camera).expect("fake camera");
    let browser = Browser::start(dir, &camera).expect("chromium starts");
    browser
        .goto(&format!("{}/?auto=1", node.url))
        .expect("page loads");
    let mut decision = String::new();
    wait_for("the kiosk's decision", Duration::from_secs(60), || {
        decision = browser
            .eval("return document.getElementById('result').dataset.decision")
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        !decision.is_empty() && decision != "busy"
    });
    let text = browser
        .eval("return document.getElementById('result').innerText")
        .expect("text");
    // A picture of what the guard sees, next to the test's own assertions.
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{shot}.png"));
    browser.screenshot(&out).expect("screenshot");
    (decision, text.as_str().unwrap_or("").to_owned())
}

/// A node whose kiosk stands at the gate, where Chromium is at hand.
fn kiosk_node() -> Option<(tempfile::TempDir, Node)> {
    if !environment_ready(browser_available()) {
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(
        &dir.path().join("node"),
        &NodeOptions {
            kiosk: Some(AT_GATE),
            ..NodeOptions::standalone()
        },
    )
    .expect("node starts");
    Some((dir, node))
}

#[test]
fn the_kiosk_page_checks_a_person_in_through_the_camera_and_turns_a_stranger_away() {
    let Some((dir, node)) = kiosk_node() else {
        return;
    };
    node.enrol("obama", "Barack Obama", &photo("sample-obama"))
        .expect("enrolled");

    let (decision, text) = kiosk_sees(
        &node,
        &dir.path().join("obama"),
        &photo("sample-obama2"),
        "kiosk-granted",
    );
    assert_eq!(decision, "granted", "{text}");
    assert!(text.contains("Welcome, Barack Obama"), "{text}");
    // The kiosk sent no GPS fix: the node used the kiosk's configured position, inside the fence.
    let events = node.events().expect("events");
    assert_eq!(events.len(), 1, "one steady picture, one check-in");
    assert_eq!(events[0]["decision"], "granted");
    assert_eq!(events[0]["position"]["lat"].as_f64(), Some(AT_GATE.0));

    let (decision, text) = kiosk_sees(
        &node,
        &dir.path().join("biden"),
        &head_and_shoulders("sample-biden"),
        "kiosk-denied",
    );
    assert_eq!(decision, "denied", "{text}");
    assert!(
        text.contains("Not checked in") && text.contains("Your face is not recognised"),
        "{text}"
    );
    assert_eq!(node.events().expect("events").len(), 2);
}

#[test]
fn a_hands_free_kiosk_checks_a_still_picture_in_once_not_again_and_again() {
    let Some((dir, node)) = kiosk_node() else {
        return;
    };
    let camera = dir.path().join("camera.y4m");
    y4m_from_photo(&photo("sample-obama2"), &camera).expect("fake camera");
    let browser = Browser::start(dir.path(), &camera).expect("chromium starts");
    browser
        .goto(&format!("{}/?auto=1", node.url))
        .expect("page loads");
    wait_for("the first check-in", Duration::from_secs(60), || {
        node.events().is_ok_and(|e| !e.is_empty())
    });
    // The answer shows for 5 s; after it the picture is still the same, so no new capture.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(node.events().expect("events").len(), 1);
    let idle = browser
        .eval("return document.getElementById('result').innerText")
        .expect("text");
    assert_eq!(idle, "Stand still in front of the camera.");
}
