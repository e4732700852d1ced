//! Process lifecycle of the real binaries: clean shutdown on SIGTERM, and config errors that
//! name the file, the key and the reason.

use std::{process::Command, time::Duration};

use rollcall_tests::{Cloud, Node, NodeOptions, bin_path};

#[test]
fn both_servers_stop_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cloud = Cloud::start(&dir.path().join("cloud"), None).expect("cloud starts");
    let (_id, token) = cloud.register_node("hq").expect("registered");
    let mut node = Node::start(
        &dir.path().join("node"),
        &NodeOptions::synced(&cloud.url, token),
    )
    .expect("node starts");

    let status = node
        .process
        .stop(Duration::from_secs(20))
        .expect("node stopped by itself");
    assert!(
        status.success(),
        "node exit: {status}\n{}",
        node.process.log_text()
    );
    let log = node.process.log_text();
    assert!(
        log.contains("sync client stopped") && log.contains("rollcall-node stopped"),
        "{log}"
    );

    let status = cloud
        .process
        .stop(Duration::from_secs(20))
        .expect("cloud stopped by itself");
    assert!(status.success(), "cloud exit: {status}");
    assert!(cloud.process.log_text().contains("rollcall-cloud stopped"));
}

#[test]
fn config_check_reports_file_key_and_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = NodeOptions::standalone();
    let good = Node::write_config(dir.path(), &opts, "127.0.0.1:0").expect("config");
    let out = Command::new(bin_path("rollcall-node").expect("built"))
        .args(["config", "check"])
        .arg(&good)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("site            hq"));

    let text = std::fs::read_to_string(&good).expect("read");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, text.replace("radius_m = 150", "radius_m = -5")).expect("write");
    let out = Command::new(bin_path("rollcall-node").expect("built"))
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml")
            && err.contains("geofence[0] (main-gate)")
            && err.contains("radius -5"),
        "{err}"
    );
}

#[test]
fn the_node_refuses_to_start_without_its_models() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = NodeOptions::standalone();
    let config = Node::write_config(dir.path(), &opts, "127.0.0.1:0").expect("config");
    let out = Command::new(bin_path("rollcall-node").expect("built"))
        .args(["run", "--config"])
        .arg(&config)
        .env("ROLLCALL_HOME", dir.path().join("empty-model-store"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cargo xtask fetch"), "{err}");
}
