//! The installer's flow: the cloud signs a node config for a site with the tenant's Ed25519 key,
//! `rollcall-node flash` verifies and installs it, and the running node reloads; altered,
//! foreign, wrong-site and replayed bundles are refused without touching the config; a rollback
//! puts the previous config back.

use std::{path::Path, process::Command};

use rollcall_tests::{AT_GATE, Cloud, Node, NodeOptions, bin_path, reason_codes, sample_photo};
use serde_json::{Value, json};

/// Runs `rollcall-node flash` with `args`; returns success and stdout + stderr.
fn flash(config: &Path, args: &[&Path]) -> (bool, String) {
    let out = Command::new(bin_path("rollcall-node").expect("binary"))
        .arg("flash")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Asks `cloud` to sign `config_toml` for `site`; writes the bundle to `file`.
fn signed(cloud: &Cloud, site: &str, config_toml: &str, file: &Path) -> Value {
    let (status, bundle) = cloud
        .admin_post(
            "/api/v1/config-bundles",
            &json!({ "site_id": site, "config_toml": config_toml }),
        )
        .expect("sign");
    assert_eq!(status, 201, "{bundle}");
    std::fs::write(file, bundle.to_string()).expect("write bundle");
    bundle
}

/// The node's decision on a frame sent without a GPS fix.
fn check_in_without_fix(node: &Node, frame: &str) -> Value {
    node.decide(&sample_photo(frame).expect("photo"), None)
}

#[test]
fn a_signed_bundle_is_flashed_and_reloaded_and_anything_else_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(&dir.path().join("cloud"), None).expect("cloud starts");
    let (status, key) = cloud.admin_get("/api/v1/signing-key").expect("key");
    assert_eq!(status, 200, "{key}");
    assert_eq!(
        (&key["tenant"], &key["algorithm"]),
        (&json!("acme"), &json!("ed25519"))
    );
    let public_key = key["public_key"].as_str().expect("public key").to_owned();

    let node_dir = dir.path().join("node");
    let mut node = Node::start(
        &node_dir,
        &NodeOptions {
            node_extra: format!("tenant = \"acme\"\nbundle_public_key = \"{public_key}\"\n"),
            ..NodeOptions::standalone()
        },
    )
    .expect("node starts");
    node.enrol(
        "obama",
        "Barack Obama",
        &sample_photo("sample-obama").expect("photo"),
    )
    .expect("enrolled");
    let body = check_in_without_fix(&node, "sample-obama2");
    assert!(
        reason_codes(&body).iter().any(|c| c == "no_position"),
        "{body}"
    );

    // The new config: the kiosk stands at the gate, so a check-in without a fix has a place.
    let config_path = node.config.clone();
    let original = std::fs::read_to_string(&config_path).expect("config");
    let (lat, lon, accuracy) = AT_GATE;
    let new_config =
        format!("{original}\n[kiosk]\nlat = {lat}\nlon = {lon}\naccuracy_m = {accuracy}\n");
    let good = dir.path().join("hq.bundle");
    let bundle = signed(&cloud, "hq", &new_config, &good);
    assert_eq!(bundle["serial"], 1);

    // Refused, each for its reason, and the config is untouched.
    let mut altered = bundle.clone();
    altered["config_toml"] = json!(new_config.replace("accuracy_m = 10", "accuracy_m = 1"));
    let altered_file = dir.path().join("altered.bundle");
    std::fs::write(&altered_file, altered.to_string()).expect("write");
    let other_site = dir.path().join("depot.bundle");
    signed(
        &cloud,
        "depot",
        &new_config.replace("site_id = \"hq\"", "site_id = \"depot\""),
        &other_site,
    );
    let foreign_cloud = Cloud::start(&dir.path().join("cloud2"), None).expect("cloud starts");
    let foreign = dir.path().join("foreign.bundle");
    signed(&foreign_cloud, "hq", &new_config, &foreign);
    let no_trust = dir.path().join("no-trust.bundle");
    signed(
        &cloud,
        "hq",
        &new_config.replace(&format!("bundle_public_key = \"{public_key}\""), ""),
        &no_trust,
    );
    for (file, why) in [
        (&altered_file, "signature does not match"),
        (&other_site, "for site `depot`"),
        (&foreign, "signed by key"),
        (
            &no_trust,
            "node.tenant and node.bundle_public_key go together",
        ),
        (&dir.path().join("missing.bundle"), "No such file"),
    ] {
        let (ok, text) = flash(&config_path, &[file]);
        assert!(!ok && text.contains(why), "{}: {text}", file.display());
        assert_eq!(
            std::fs::read_to_string(&config_path).expect("config"),
            original,
            "{} changed the config",
            file.display()
        );
    }

    // The good one: installed, the previous config kept, the node reloads on it.
    std::fs::remove_file(node_dir.join("node.addr")).expect("addr file");
    let (ok, text) = flash(&config_path, &[&good]);
    assert!(ok, "{text}");
    assert!(
        text.contains("flashed bundle serial 1 (was none)") && text.contains("is reloading"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(&config_path).expect("config"),
        new_config
    );
    node.await_restart(&node_dir).expect("node back");
    let body = check_in_without_fix(&node, "sample-obama3");
    assert_eq!(body["decision"], "granted", "{body}");
    assert!(
        !reason_codes(&body).iter().any(|c| c == "no_position"),
        "{body}"
    );
    let events = node.events().expect("events");
    assert_eq!(
        events[0]["position"]["lat"].as_f64(),
        Some(lat),
        "{events:?}"
    );
    assert_eq!(events.len(), 2, "the events survived the reload");

    // The same bundle again is not newer than what runs: a replay.
    let (ok, text) = flash(&config_path, &[&good]);
    assert!(!ok && text.contains("not newer than serial 1"), "{text}");

    // Rollback: the original config is back, and the node runs on it again.
    std::fs::remove_file(node_dir.join("node.addr")).expect("addr file");
    let (ok, text) = flash(&config_path, &[Path::new("--rollback")]);
    assert!(ok, "{text}");
    assert!(
        text.contains("rolled back to bundle serial none (was 1)"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(&config_path).expect("config"),
        original
    );
    node.await_restart(&node_dir).expect("node back");
    let body = check_in_without_fix(&node, "sample-obama");
    assert!(
        reason_codes(&body).iter().any(|c| c == "no_position"),
        "{body}"
    );
    let (ok, text) = flash(&config_path, &[Path::new("--rollback")]);
    assert!(!ok && text.contains("nothing to roll back to"), "{text}");
}
