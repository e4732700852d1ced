//! POLL round trip through a pty to LibOSDP's PD (`cargo bench -p rollcall-firmware-bridge`):
//! p50 and p99 over 200 polls, plain and inside a secure channel. The PD emulator services its
//! line every 20 ms (LibOSDP's Python refresh loop), which bounds what any control panel can see
//! here; a hardware PD answers in a few milliseconds.

use std::time::{Duration, Instant};

use rollcall_firmware_bridge::{ControlPanel, ScKey, SerialTransport};
use rollcall_tests::{OsdpPeer, osdp_python};

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Err(why) = osdp_python() {
        println!("poll_rtt skipped: {why}");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let peer = OsdpPeer::start(dir.path(), 101)?;
    let transport = SerialTransport::open(&peer.cp_port().display().to_string(), 115_200)?;
    let mut cp = ControlPanel::new(transport, &[101], Duration::from_millis(200), 2);
    cp.identify(101)?;
    for secure in [false, true] {
        if secure {
            cp.establish_secure_channel(101, ScKey::Default)?;
        }
        let mut times = Vec::with_capacity(200);
        for _ in 0..200 {
            let t = Instant::now();
            cp.poll(101)?;
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "POLL round trip ({}): p50 {:.2} ms, p99 {:.2} ms over {} polls",
            if secure { "secure channel" } else { "plain" },
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times.len()
        );
    }
    Ok(())
}
