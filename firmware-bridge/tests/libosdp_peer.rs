//! The control panel against an independent OSDP implementation: LibOSDP's peripheral device
//! (PyPI `libosdp`, in the venv `cargo xtask test` makes under `target/test-venv`), on one end
//! of a pty pair made by `socat`, the control panel on the other.

use std::time::{Duration, Instant};

use rollcall_firmware_bridge::{ControlPanel, CpError, Reply, SerialTransport};
use rollcall_tests::{OsdpPeer, environment_ready, osdp_python};

const ADDRESS: u8 = 101;

/// A PD on a fresh pty pair, or `None` where the test environment is not installed (a
/// developer's plain `cargo test`; CI always has it).
fn peer(dir: &tempfile::TempDir) -> Option<OsdpPeer> {
    if !environment_ready(osdp_python()) {
        return None;
    }
    Some(OsdpPeer::start(dir.path(), ADDRESS).expect("the PD starts"))
}

fn control_panel(peer: &OsdpPeer) -> ControlPanel<SerialTransport> {
    let transport = SerialTransport::open(&peer.cp_port().display().to_string(), 115_200)
        .expect("open the pty");
    ControlPanel::new(transport, &[ADDRESS], Duration::from_millis(200), 2)
}

fn wiegand26_hex(facility: u8, card: u16) -> String {
    rollcall_firmware_bridge::wiegand26_frame(facility, card)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn identifies_pulses_reads_a_card_and_notices_the_pd_going_away() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(mut peer) = peer(&dir) else { return };
    let mut cp = control_panel(&peer);

    // Who is it, and what can it do?
    let (id, caps) = cp.identify(ADDRESS).expect("ID and CAP");
    assert_eq!((id.vendor_code, id.model, id.version), (0x00A1B2, 7, 2));
    assert_eq!(id.serial_number, 0x1234_5678);
    let output = caps
        .iter()
        .find(|c| c.function == 2)
        .expect("output control capability");
    assert_eq!(output.items, 2);
    assert!(cp.pd(ADDRESS).expect("configured").online);

    // Open the turnstile for half a second: the PD receives OUT with 5 × 100 ms.
    cp.pulse_output(ADDRESS, 1, Duration::from_millis(500))
        .expect("OUT acknowledged");
    let cmd = peer
        .next_command(Duration::from_secs(5))
        .expect("the PD saw the command");
    assert_eq!(
        (cmd["output_no"].as_u64(), cmd["timer_count"].as_u64()),
        (Some(1), Some(5)),
        "{cmd}"
    );

    // A 26-bit card (facility 12, card 3456) shows up in a poll reply.
    peer.present_card(&wiegand26_hex(12, 3456), 26)
        .expect("card");
    let deadline = Instant::now() + Duration::from_secs(5);
    let read = loop {
        assert!(Instant::now() < deadline, "no card read arrived");
        match cp.poll(ADDRESS).expect("poll") {
            Reply::Raw(read) => break read,
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert_eq!((read.bits, read.wiegand26()), (26, Some((12, 3456))));

    // The PD dies: the next command times out and it is marked offline.
    peer.kill_pd();
    assert!(matches!(cp.poll(ADDRESS), Err(CpError::Timeout { .. })));
    assert!(!cp.pd(ADDRESS).expect("configured").online);
}

#[test]
fn the_bus_task_reports_online_cards_and_offline_and_runs_pulses() {
    use rollcall_firmware_bridge::{Bus, BusConfig, BusEvent};
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(mut peer) = peer(&dir) else { return };
    let transport = SerialTransport::open(&peer.cp_port().display().to_string(), 115_200)
        .expect("open the pty");
    let (bus, events) = Bus::spawn(
        transport,
        BusConfig {
            addresses: vec![ADDRESS],
            reconnect_interval: Duration::from_millis(300),
            ..BusConfig::default()
        },
    );
    let next = |what: &str| {
        events
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no {what} event"))
    };
    match next("online") {
        BusEvent::Online { pd, identity } => {
            assert_eq!((pd, identity.serial_number), (ADDRESS, 0x1234_5678))
        }
        other => panic!("{other:?}"),
    }
    bus.handle()
        .pulse_output(ADDRESS, 0, Duration::from_millis(1500))
        .expect("pulse");
    let cmd = peer
        .next_command(Duration::from_secs(5))
        .expect("the PD saw OUT");
    assert_eq!(
        (cmd["output_no"].as_u64(), cmd["timer_count"].as_u64()),
        (Some(0), Some(15)),
        "{cmd}"
    );

    peer.present_card("0123abcd", 32).expect("card");
    match next("card") {
        BusEvent::CardRead { pd, card } => {
            assert_eq!(
                (pd, card.bits, card.data),
                (ADDRESS, 32, vec![0x01, 0x23, 0xab, 0xcd])
            )
        }
        other => panic!("{other:?}"),
    }
    // Power loss: the offline alarm (after the attempts of one poll); power back: re-identified
    // and online again.
    peer.kill_pd();
    assert_eq!(next("offline"), BusEvent::Offline { pd: ADDRESS });
    peer.restart_pd().expect("the PD restarts");
    match next("online again") {
        BusEvent::Online { pd, .. } => assert_eq!(pd, ADDRESS),
        other => panic!("{other:?}"),
    }
    peer.kill_pd();
    assert_eq!(next("offline"), BusEvent::Offline { pd: ADDRESS });
    assert!(
        bus.handle()
            .pulse_output(ADDRESS, 0, Duration::from_millis(100))
            .is_err(),
        "no relay on a dead PD"
    );
    bus.stop();
}

/// A PD that dies between polls is noticed by the command sent to it (a reader light after a
/// card, say): the offline event still goes out, once.
#[test]
fn a_pd_that_stops_answering_a_command_is_reported_offline_once() {
    use rollcall_firmware_bridge::{Bus, BusConfig, BusEvent, LedColor};
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(mut peer) = peer(&dir) else { return };
    let transport = SerialTransport::open(&peer.cp_port().display().to_string(), 115_200)
        .expect("open the pty");
    // Polls a second apart: the command below is served before the next poll.
    let (bus, events) = Bus::spawn(
        transport,
        BusConfig {
            addresses: vec![ADDRESS],
            poll_interval: Duration::from_secs(1),
            reconnect_interval: Duration::from_secs(30),
            ..BusConfig::default()
        },
    );
    match events.recv_timeout(Duration::from_secs(10)) {
        Ok(BusEvent::Online { pd, .. }) => assert_eq!(pd, ADDRESS),
        other => panic!("{other:?}"),
    }
    peer.kill_pd();
    assert!(
        bus.handle()
            .signal(ADDRESS, LedColor::Red, Duration::from_secs(1), 0)
            .is_err(),
        "nobody answers the LED command"
    );
    assert_eq!(
        events.recv_timeout(Duration::from_secs(10)).ok(),
        Some(BusEvent::Offline { pd: ADDRESS })
    );
    assert!(
        events.recv_timeout(Duration::from_secs(3)).is_err(),
        "one offline event, not one per round"
    );
    bus.stop();
}

#[test]
fn secure_channel_with_the_default_key_then_an_installed_key() {
    use rollcall_firmware_bridge::{PdState, ScKey};
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(peer) = peer(&dir) else { return };
    let mut cp = control_panel(&peer);
    cp.identify(ADDRESS).expect("plain ID");

    // Install mode: the PD accepts SCBK-D; then everything is MACed and encrypted.
    cp.establish_secure_channel(ADDRESS, ScKey::Default)
        .expect("SC with SCBK-D");
    assert!(cp.pd(ADDRESS).is_some_and(PdState::secure));
    let (id, _) = cp.identify(ADDRESS).expect("ID over the secure channel");
    assert_eq!(id.serial_number, 0x1234_5678);
    cp.pulse_output(ADDRESS, 1, Duration::from_millis(300))
        .expect("OUT over the secure channel");
    let cmd = peer
        .next_command(Duration::from_secs(5))
        .expect("the PD decrypted OUT");
    assert_eq!(cmd["timer_count"].as_u64(), Some(3), "{cmd}");
    for _ in 0..5 {
        assert_eq!(cp.poll(ADDRESS).expect("MAC chain holds"), Reply::Ack);
    }

    // Install the site's own key; the session ends and the next one needs that key.
    let key: [u8; 16] = *b"rollcall-site-k1";
    cp.install_key(ADDRESS, key).expect("KEYSET");
    assert!(!cp.pd(ADDRESS).is_some_and(PdState::secure));
    let wrong = cp.establish_secure_channel(ADDRESS, ScKey::Scbk(*b"not-the-site-key"));
    assert!(
        matches!(wrong, Err(CpError::SecureChannel { .. })),
        "{wrong:?}"
    );
    cp.establish_secure_channel(ADDRESS, ScKey::Scbk(key))
        .expect("SC with the installed key");
    assert_eq!(cp.poll(ADDRESS).expect("poll"), Reply::Ack);
    cp.pulse_output(ADDRESS, 0, Duration::from_millis(200))
        .expect("OUT");
    // The PD's application saw the KEYSET (to store the key), then the OUT.
    let keyset = peer
        .next_command(Duration::from_secs(5))
        .expect("the PD got KEYSET");
    assert_eq!(
        keyset["data"].as_str(),
        Some("726f6c6c63616c6c2d736974652d6b31"),
        "{keyset}"
    );
    let cmd = peer
        .next_command(Duration::from_secs(5))
        .expect("the PD got OUT");
    assert_eq!(cmd["output_no"].as_u64(), Some(0), "{cmd}");
    // Only one control panel owns the port at a time.
    let second = SerialTransport::open(&peer.cp_port().display().to_string(), 115_200);
    assert!(
        second.is_err(),
        "a second control panel opened the same port"
    );
    drop(cp);
    // KEYSET outside a secure channel is refused before anything is sent.
    let mut plain = control_panel(&peer);
    assert!(matches!(
        plain.install_key(ADDRESS, key),
        Err(CpError::SecureChannel { .. })
    ));
}

#[test]
fn led_buzzer_and_text_reach_the_reader() {
    use rollcall_firmware_bridge::LedColor;
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(peer) = peer(&dir) else { return };
    let mut cp = control_panel(&peer);
    cp.led(ADDRESS, 0, 0, LedColor::Green, Some(Duration::from_secs(2)))
        .expect("LED");
    let led = peer
        .next_command(Duration::from_secs(5))
        .expect("the PD got LED");
    assert_eq!(
        led["on_color"].as_u64(),
        Some(LedColor::Green as u64),
        "{led}"
    );
    assert_eq!(led["timer_count"].as_u64(), Some(20), "{led}");
    cp.buzz(
        ADDRESS,
        0,
        Duration::from_millis(300),
        Duration::from_millis(200),
        3,
    )
    .expect("BUZ");
    let buz = peer
        .next_command(Duration::from_secs(5))
        .expect("the PD got BUZ");
    assert_eq!(
        (
            buz["on_count"].as_u64(),
            buz["off_count"].as_u64(),
            buz["rep_count"].as_u64()
        ),
        (Some(3), Some(2), Some(3)),
        "{buz}"
    );
    cp.text(ADDRESS, 0, 1, 0, "Welcome", Some(5)).expect("TEXT");
    let text = peer
        .next_command(Duration::from_secs(5))
        .expect("the PD got TEXT");
    assert_eq!(text["data"].as_str(), Some("Welcome"), "{text}");
    assert_eq!(
        (
            text["offset_row"].as_u64(),
            text["temp_time"].as_u64(),
            text["control_code"].as_u64()
        ),
        (Some(1), Some(5), Some(3)),
        "{text}"
    );
}

#[test]
fn two_pds_on_one_bus_are_addressed_and_polled_in_turn() {
    use rollcall_firmware_bridge::{Bus, BusConfig, BusEvent};
    if !environment_ready(osdp_python()) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut peer = OsdpPeer::start_bus(dir.path(), &[101, 102]).expect("two PDs start");
    let transport = SerialTransport::open(&peer.cp_port().display().to_string(), 115_200)
        .expect("open the pty");
    let (bus, events) = Bus::spawn(
        transport,
        BusConfig {
            addresses: vec![101, 102],
            ..BusConfig::default()
        },
    );
    let mut online = std::collections::BTreeMap::new();
    while online.len() < 2 {
        match events
            .recv_timeout(Duration::from_secs(10))
            .expect("both come online")
        {
            BusEvent::Online { pd, identity } => {
                online.insert(pd, identity.serial_number);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        online.into_iter().collect::<Vec<_>>(),
        [(101, 0x1234_5678), (102, 0x1234_5679)]
    );

    // Each relay command reaches the PD it names, and only that one.
    bus.handle()
        .pulse_output(102, 1, Duration::from_millis(400))
        .expect("pulse 102");
    bus.handle()
        .pulse_output(101, 0, Duration::from_millis(800))
        .expect("pulse 101");
    let a = peer
        .next_command(Duration::from_secs(5))
        .expect("a command");
    let b = peer
        .next_command(Duration::from_secs(5))
        .expect("a command");
    assert_eq!(
        (
            a["pd"].as_u64(),
            a["output_no"].as_u64(),
            a["timer_count"].as_u64()
        ),
        (Some(102), Some(1), Some(4)),
        "{a}"
    );
    assert_eq!(
        (
            b["pd"].as_u64(),
            b["output_no"].as_u64(),
            b["timer_count"].as_u64()
        ),
        (Some(101), Some(0), Some(8)),
        "{b}"
    );

    // A card on the second reader is reported as coming from it.
    peer.present_card_on(102, "cafe", 16).expect("card");
    match events
        .recv_timeout(Duration::from_secs(10))
        .expect("card event")
    {
        BusEvent::CardRead { pd, card } => assert_eq!((pd, card.data), (102, vec![0xca, 0xfe])),
        other => panic!("{other:?}"),
    }
    bus.stop();
}

#[test]
fn a_bus_that_requires_the_secure_channel_uses_only_pds_that_hold_the_key() {
    use rollcall_firmware_bridge::{Bus, BusConfig, BusEvent, ScKey};
    if !environment_ready(osdp_python()) {
        return;
    }
    let key = *b"site-key-0123456";
    for (pd_key, expect_online) in [(key, true), (*b"another-key-9876", false)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let peer = OsdpPeer::start_with_key(dir.path(), ADDRESS, pd_key).expect("PD starts");
        let transport = SerialTransport::open(&peer.cp_port().display().to_string(), 115_200)
            .expect("open the pty");
        let (bus, events) = Bus::spawn(
            transport,
            BusConfig {
                addresses: vec![ADDRESS],
                secure: Some(ScKey::Scbk(key)),
                ..BusConfig::default()
            },
        );
        let first = events
            .recv_timeout(Duration::from_secs(10))
            .expect("an event");
        if expect_online {
            assert!(matches!(first, BusEvent::Online { .. }), "{first:?}");
            bus.handle()
                .pulse_output(ADDRESS, 0, Duration::from_millis(500))
                .expect("pulse over SC");
            let cmd = peer
                .next_command(Duration::from_secs(5))
                .expect("the PD got OUT");
            assert_eq!(cmd["timer_count"].as_u64(), Some(5), "{cmd}");
        } else {
            let BusEvent::Fault { error, .. } = first else {
                panic!("a PD with another key must not come online: {first:?}");
            };
            assert!(error.contains("secure channel"), "{error}");
            let refused = bus
                .handle()
                .pulse_output(ADDRESS, 0, Duration::from_millis(500));
            assert!(
                refused.is_err(),
                "no relay in the clear on a secure-only bus"
            );
            assert!(peer.next_command(Duration::from_millis(500)).is_none());
        }
        bus.stop();
    }
}

#[test]
fn comset_moves_the_pd_to_a_new_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(peer) = peer(&dir) else { return };
    let mut cp = control_panel(&peer);
    cp.identify(ADDRESS).expect("ID at the old address");
    cp.comset(ADDRESS, 42, 115_200)
        .expect("COMSET acknowledged with COM");
    assert!(cp.pd(ADDRESS).is_none() && cp.pd(42).is_some());
    let (id, _) = cp.identify(42).expect("ID at the new address");
    assert_eq!(id.serial_number, 0x1234_5678);
    let cmd = peer
        .next_command(Duration::from_secs(5))
        .expect("the PD's application saw COMSET");
    assert_eq!(cmd["address"].as_u64(), Some(42), "{cmd}");
}
