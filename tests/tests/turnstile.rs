//! The node drives a real OSDP peripheral: LibOSDP's PD on a pty stands in for the reader and
//! turnstile controller. A granted check-in pulses the relay (after the event is stored), a
//! denied one does not; card reads and a PD that dies show in the metrics; a relay that cannot
//! be pulsed never loses the event.

use std::time::Duration;

use rollcall_tests::{
    AT_GATE, Node, NodeOptions, OsdpPeer, environment_ready, node_on_reader, osdp_python,
    sample_photo, wait_for,
};

fn photo(name: &str) -> Vec<u8> {
    sample_photo(name).unwrap_or_else(|e| panic!("{e} (run `cargo xtask fetch`)"))
}

fn metric(node: &Node, line: &str) -> bool {
    node.has_metric(line)
}

#[test]
fn a_granted_check_in_opens_the_turnstile_and_a_denied_one_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((mut peer, node)) = node_on_reader(dir.path(), NodeOptions::standalone()) else {
        return;
    };

    node.enrol("obama", "Barack Obama", &photo("sample-obama"))
        .expect("enrolled");
    let (status, body) = node
        .check_in(&photo("sample-obama2"), Some(AT_GATE))
        .expect("check-in");
    assert_eq!(
        (
            status,
            body["decision"].as_str(),
            body["turnstile"].as_str()
        ),
        (200, Some("granted"), Some("opened")),
        "{body}"
    );
    let out = peer
        .next_command(Duration::from_secs(5))
        .expect("the PD got OUT");
    assert_eq!(
        (out["output_no"].as_u64(), out["timer_count"].as_u64()),
        (Some(0), Some(15)),
        "{out}"
    );

    let (status, body) = node
        .check_in(&photo("sample-biden"), Some(AT_GATE))
        .expect("check-in");
    assert_eq!(
        (
            status,
            body["decision"].as_str(),
            body["turnstile"].as_str()
        ),
        (200, Some("denied"), Some("closed")),
        "{body}"
    );
    // The granted check-in's green light and greeting, then the denial's red light and two
    // beeps; no relay.
    let mut seen = Vec::new();
    while let Some(c) = peer.next_command(Duration::from_secs(2)) {
        seen.push(c);
        if seen.len() == 4 {
            break;
        }
    }
    let colors: Vec<_> = seen.iter().filter_map(|c| c["on_color"].as_u64()).collect();
    assert_eq!(colors, [2, 1], "green then red: {seen:?}");
    assert!(
        seen.iter().any(|c| c["rep_count"].as_u64() == Some(2)),
        "two beeps: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|c| c["data"].as_str() == Some("Welcome Barack Obama")),
        "the reader greets the person: {seen:?}"
    );
    assert!(
        seen.iter().all(|c| c.get("output_no").is_none()),
        "a denied check-in must not pulse the relay: {seen:?}"
    );

    peer.present_card("0123abcd", 32).expect("card");
    wait_for("the card read", Duration::from_secs(20), || {
        metric(&node, "rollcall_node_osdp_card_reads_total 1")
    });

    // The reader loses power: an alarm, and a granted check-in is still recorded.
    peer.kill_pd();
    wait_for("the offline alarm", Duration::from_secs(20), || {
        metric(&node, "rollcall_node_osdp_alarms_total 1")
    });
    let alarms = node.admin_list("/api/v1/alarms").expect("alarms");
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0]["kind"], "reader_offline", "{alarms:?}");
    let body = node.decide(&photo("sample-obama3"), Some(AT_GATE));
    assert_eq!(body["decision"], "granted", "{body}");
    assert!(
        body["turnstile"]
            .as_str()
            .unwrap_or("")
            .starts_with("failed"),
        "{body}"
    );
    // Two check-ins, the card no one holds (recorded as a denied attempt), this check-in.
    let events = node.events().expect("events");
    assert_eq!(events.len(), 4);
    assert!(
        events.iter().any(|e| e["card"] == "raw:32:0123abcd"),
        "{events:?}"
    );
    assert!(metric(&node, "rollcall_node_turnstile_failures_total 1"));

    // Power comes back: the reader answers again, and that is on record too.
    peer.restart_pd().expect("PD restarts");
    wait_for("the reader back online", Duration::from_secs(30), || {
        metric(&node, "rollcall_node_osdp_pd_online 1")
    });
    let kinds: Vec<_> = node
        .admin_list("/api/v1/alarms")
        .expect("alarms")
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(kinds, ["reader_online", "reader_offline"]);
}

#[test]
fn a_site_that_requires_the_secure_channel_opens_the_gate_only_through_it() {
    if !environment_ready(osdp_python()) {
        return;
    }
    let key = *b"site-key-0123456";
    for (pd_key, opens) in [(key, true), (*b"stolen-reader-99", false)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let peer =
            OsdpPeer::start_with_key(&dir.path().join("osdp"), 101, pd_key).expect("PD starts");
        let node = Node::start(
            &dir.path().join("node"),
            &NodeOptions {
                osdp: Some((peer.cp_port().to_path_buf(), 101)),
                osdp_scbk: Some(key),
                ..NodeOptions::standalone()
            },
        )
        .expect("node starts");
        node.enrol("obama", "Barack Obama", &photo("sample-obama"))
            .expect("enrolled");
        if opens {
            wait_for("the reader", Duration::from_secs(20), || {
                metric(&node, "rollcall_node_osdp_pd_online 1")
            });
        } else {
            wait_for("the refusal", Duration::from_secs(20), || {
                !metric(&node, "rollcall_node_osdp_faults_total 0")
            });
        }
        let (status, body) = node
            .check_in(&photo("sample-obama2"), Some(AT_GATE))
            .expect("check-in");
        assert_eq!(
            (status, body["decision"].as_str()),
            (200, Some("granted")),
            "{body}"
        );
        let turnstile = body["turnstile"].as_str().unwrap_or("");
        if opens {
            assert_eq!(turnstile, "opened", "{body}");
            assert!(
                peer.next_command(Duration::from_secs(5))
                    .is_some_and(|c| c["timer_count"] == 15)
            );
        } else {
            assert!(
                turnstile.starts_with("failed"),
                "a reader with another key must not be used: {body}"
            );
            assert!(
                node.process.log_text().contains("secure channel"),
                "the refusal is logged"
            );
        }
    }
}

#[test]
fn door_forced_held_open_and_tamper_alarms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = NodeOptions {
        door: Some((0, 2)),
        ..NodeOptions::standalone()
    };
    let Some((mut peer, node)) = node_on_reader(dir.path(), opts) else {
        return;
    };
    let live = node.live().expect("live feed");

    // The door opens with no grant: forced.
    peer.set_inputs(101, &[1, 0]).expect("door open");
    wait_for("the forced alarm", Duration::from_secs(20), || {
        metric(&node, "rollcall_node_door_alarms_total{kind=\"forced\"} 1")
    });
    peer.set_inputs(101, &[0, 0]).expect("door closed");

    // A granted passage opens it without an alarm, but left open past 2 s it is held open.
    node.enrol("obama", "Barack Obama", &photo("sample-obama"))
        .expect("enrolled");
    let (_, body) = node
        .check_in(&photo("sample-obama2"), Some(AT_GATE))
        .expect("check-in");
    assert_eq!(body["turnstile"], "opened", "{body}");
    peer.set_inputs(101, &[1, 0]).expect("door open");
    wait_for("the held-open alarm", Duration::from_secs(20), || {
        metric(
            &node,
            "rollcall_node_door_alarms_total{kind=\"held_open\"} 1",
        )
    });
    assert!(
        metric(&node, "rollcall_node_door_alarms_total{kind=\"forced\"} 1"),
        "the granted opening was not forced"
    );
    peer.set_inputs(101, &[0, 0]).expect("door closed");

    peer.set_local_status(101, true, false).expect("tamper");
    wait_for("the tamper alarm", Duration::from_secs(20), || {
        metric(&node, "rollcall_node_tamper_alarms_total 1")
    });
    assert!(node.process.log_text().contains("ALARM: door forced open"));

    // Each alarm is stored, oldest last, with the PD it came from.
    let mut kinds = Vec::new();
    wait_for("the stored alarms", Duration::from_secs(20), || {
        kinds = node
            .admin_list("/api/v1/alarms")
            .expect("alarms")
            .iter()
            .map(|a| {
                assert_eq!(a["pd"], 101, "{a}");
                a["kind"].as_str().unwrap_or("").to_owned()
            })
            .collect();
        kinds.len() >= 5
    });
    assert_eq!(
        kinds,
        [
            "tamper",
            "door_secured",
            "door_held_open",
            "door_secured",
            "door_forced"
        ],
        "newest first"
    );
    // The live feed carried them as they happened (and the granted passage between).
    let fed: Vec<String> = live
        .try_iter()
        .map(|(kind, item)| match kind.as_str() {
            "alarm" => item["kind"].as_str().unwrap_or("").to_owned(),
            _ => kind,
        })
        .collect();
    assert_eq!(
        fed,
        [
            "door_forced",
            "door_secured",
            "decision",
            "door_held_open",
            "door_secured",
            "tamper"
        ]
    );
}

/// The relay is pulsed only after the granted event is committed: the PD's process reads the
/// node's SQLite file the moment each OUT command arrives and must already see the grant.
#[test]
fn the_relay_is_pulsed_only_after_the_event_is_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((mut peer, node)) = node_on_reader(dir.path(), NodeOptions::standalone()) else {
        return;
    };
    peer.watch_database(&dir.path().join("node/data/node.sqlite"))
        .expect("watching");
    node.enrol("obama", "Barack Obama", &photo("sample-obama"))
        .expect("enrolled");
    for (grants, frame) in [(1, "sample-obama2"), (2, "sample-obama3")] {
        let body = node.decide(&photo(frame), Some(AT_GATE));
        assert_eq!(body["turnstile"], "opened", "{body}");
        let out = std::iter::from_fn(|| peer.next_command(Duration::from_secs(5)))
            .find(|c| c.get("output_no").is_some())
            .expect("the PD got OUT");
        assert_eq!(
            out["granted_committed"].as_u64(),
            Some(grants),
            "when the relay command reached the PD, the database held {} granted events: {out}",
            out["granted_committed"]
        );
    }
}
