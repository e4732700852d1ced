//! The installer's OSDP tools (`rollcall-node osdp scan|pulse|watch`) against LibOSDP's PD.

use std::{process::Command, time::Duration};

use rollcall_tests::{OsdpPeer, Process, bin_path, environment_ready, osdp_python, wait_for};

fn peer(dir: &std::path::Path) -> Option<OsdpPeer> {
    if !environment_ready(osdp_python()) {
        return None;
    }
    Some(OsdpPeer::start(&dir.join("osdp"), 101).expect("the PD starts"))
}

fn node_osdp(peer: &OsdpPeer, args: &[&str]) -> std::process::Output {
    Command::new(bin_path("rollcall-node").expect("built"))
        .args(["osdp", "--port"])
        .arg(peer.cp_port())
        .args(["--baud", "115200"])
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn scan_finds_the_reader_and_pulse_reaches_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(peer) = peer(dir.path()) else { return };
    let out = node_osdp(&peer, &["scan", "--addresses", "99-103"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("PD 101: vendor 00a1b2 model 7 version 2 serial 12345678 firmware 1.2.3"),
        "{text}"
    );
    assert!(
        text.contains("output control") && text.contains("communication security"),
        "{text}"
    );
    assert!(text.contains("1 PD(s) found"), "{text}");

    let out = node_osdp(
        &peer,
        &["pulse", "--address", "101", "--output", "1", "--ms", "700"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cmd = peer
        .next_command(Duration::from_secs(5))
        .expect("the PD got OUT");
    assert_eq!(
        (cmd["output_no"].as_u64(), cmd["timer_count"].as_u64()),
        (Some(1), Some(7)),
        "{cmd}"
    );

    // Nobody at the addresses tried: a clear failure.
    let out = node_osdp(&peer, &["scan", "--addresses", "5-6"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no PD answered"));
    let out = node_osdp(&peer, &["scan", "--addresses", "200"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("0-126"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn watch_prints_cards_and_the_reader_going_away() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(mut peer) = peer(dir.path()) else {
        return;
    };
    let mut cmd = Command::new(bin_path("rollcall-node").expect("built"));
    cmd.args(["osdp", "--port"]).arg(peer.cp_port()).args([
        "--baud",
        "115200",
        "watch",
        "--address",
        "101",
    ]);
    let mut watch =
        Process::spawn("osdp-watch", cmd, &dir.path().join("watch.log")).expect("starts");
    wait_for("online", Duration::from_secs(20), || {
        watch.log_text().contains("online: PD 101")
    });
    let card: String = rollcall_firmware_bridge::wiegand26_frame(12, 3456)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    peer.present_card(&card, 26).expect("card");
    wait_for("the card", Duration::from_secs(20), || {
        watch
            .log_text()
            .contains("card: PD 101 Wiegand-26 facility 12 number 3456")
    });
    peer.kill_pd();
    wait_for("offline", Duration::from_secs(20), || {
        watch.log_text().contains("OFFLINE: PD 101")
    });
    let status = watch
        .stop(Duration::from_secs(10))
        .expect("stops on SIGTERM");
    assert!(status.success(), "watch exits cleanly on SIGTERM: {status}");
}
