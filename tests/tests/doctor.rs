//! `rollcall-node doctor` gives an installer a true checklist: all green on a good site, and a
//! precise failure for each thing that is wrong.

use std::process::Command;

use rollcall_tests::{
    Cloud, Node, NodeOptions, OsdpPeer, bin_path, environment_ready, osdp_python,
};

fn doctor(config: &std::path::Path, env: &[(&str, &std::path::Path)]) -> (bool, String) {
    let mut cmd = Command::new(bin_path("rollcall-node").expect("built"));
    cmd.args(["doctor", "--config"]).arg(config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn doctor_checks_config_models_runtime_database_reader_cloud_and_clock() {
    if !environment_ready(osdp_python()) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(&dir.path().join("cloud"), None).expect("cloud starts");
    let (node_id, token) = cloud.register_node("hq").expect("registered");
    let peer = OsdpPeer::start(&dir.path().join("osdp"), 101).expect("PD starts");
    let node_dir = dir.path().join("node");
    let opts = NodeOptions {
        osdp: Some((peer.cp_port().to_path_buf(), 101)),
        ..NodeOptions::synced(&cloud.url, token.clone())
    };
    let config = Node::write_config(&node_dir, &opts, "127.0.0.1:0").expect("config");

    let (ok, text) = doctor(&config, &[]);
    assert!(ok, "{text}");
    for line in [
        "[ ok ] config",
        "[ ok ] models",
        "[ ok ] runtime",
        "[ ok ] database",
        "[ ok ] site",
        "[ ok ] osdp",
        "[ ok ] cloud",
        "[ ok ] clock",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    assert!(
        text.contains(&node_id)
            && text.contains("PD 101")
            && text.contains("integrity ok")
            && text.contains("the cloud has given no site configuration"),
        "{text}"
    );

    // No models where the node looks for them.
    let (ok, text) = doctor(&config, &[("ROLLCALL_HOME", &dir.path().join("empty"))]);
    assert!(!ok);
    assert!(
        text.contains("[FAIL] models") && text.contains("cargo xtask fetch"),
        "{text}"
    );

    // A revoked or mistyped token.
    let bad = node_dir.join("bad-token.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&config)
            .expect("read")
            .replace(&token, "not-the-token"),
    )
    .expect("write");
    let (ok, text) = doctor(&bad, &[]);
    assert!(!ok);
    assert!(
        text.contains("[FAIL] cloud") && text.contains("rejected the node credentials"),
        "{text}"
    );

    // The daemon holds the port: the doctor says so instead of fighting over it.
    let node = Node::start_with_config(&node_dir, &config).expect("node starts");
    let (ok, text) = doctor(&config, &[]);
    assert!(!ok);
    assert!(
        text.contains("[FAIL] osdp") && text.contains("is rollcall-node running"),
        "{text}"
    );
    rollcall_tests::wait_for("a sync round", std::time::Duration::from_secs(30), || {
        node.metric("rollcall_node_sync_last_success_ms")
            .is_some_and(|t| t > 0.0)
    });
    drop(node);
    let (_, text) = doctor(&config, &[]);
    assert!(text.contains("last sync round ok"), "{text}");

    // A node whose credential the cloud refuses: the doctor shows the last round's error.
    let node = Node::start_with_config(&node_dir, &bad).expect("node starts");
    rollcall_tests::wait_for(
        "a failed sync round",
        std::time::Duration::from_secs(30),
        || {
            node.metric("rollcall_node_sync_last_error_ms")
                .is_some_and(|t| t > 0.0)
        },
    );
    drop(node);
    let (_, text) = doctor(&bad, &[]);
    assert!(
        text.contains("last sync round failed") && text.contains("401"),
        "{text}"
    );

    // A config that does not load stops the checklist at the first line.
    let broken = node_dir.join("broken.toml");
    std::fs::write(&broken, "[node]\nsite_id = 7\n").expect("write");
    let (ok, text) = doctor(&broken, &[]);
    assert!(
        !ok && text.contains("[FAIL] config") && !text.contains("models"),
        "{text}"
    );
}
