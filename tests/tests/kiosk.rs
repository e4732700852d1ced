//! The kiosk page in a real browser: Chromium's camera plays a photo of an enrolled person, the
//! page captures a frame and posts it, and shows the node's decision.

use std::time::Duration;

use rollcall_tests::{
    AT_GATE, Browser, Node, NodeOptions, browser_available, environment_ready, sample_photo,
    wait_for, y4m_from_photo,
};

#[test]
fn the_kiosk_page_checks_a_person_in_through_the_camera() {
    if !environment_ready(browser_available()) {
        return;
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
    let photo = |n: &str| sample_photo(n).unwrap_or_else(|e| panic!("{e}"));
    node.enrol("obama", "Barack Obama", &photo("sample-obama"))
        .expect("enrolled");

    let camera = dir.path().join("camera.y4m");
    y4m_from_photo(&photo("sample-obama2"), &camera).expect("fake camera");
    let browser = Browser::start(dir.path(), &camera).expect("chromium starts");
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
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("kiosk-granted.png");
    browser.screenshot(&shot).expect("screenshot");
    assert_eq!(decision, "granted", "{text}");
    assert!(
        text.as_str()
            .unwrap_or("")
            .contains("Welcome, Barack Obama"),
        "{text}"
    );

    // The kiosk sent no GPS fix: the node used the kiosk's configured position, inside the fence.
    let events = node.events().expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["decision"], "granted");
    assert_eq!(events[0]["position"]["lat"].as_f64(), Some(AT_GATE.0));
}
