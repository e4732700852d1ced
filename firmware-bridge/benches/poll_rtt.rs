//! POLL round trip through a pty to LibOSDP's PD (`cargo bench -p rollcall-firmware-bridge`):
//! p50 and p99 over 200 polls, plain and inside a secure channel; then OUT commands from our
//! control panel and from LibOSDP's own (its Python `ControlPanel`, `tests/peers/osdp_cp_bench.py`)
//! to the same PD on the same pty. The PD emulator services its
//! line every 20 ms (LibOSDP's Python refresh loop), which bounds what any control panel can see
//! here; a hardware PD answers in a few milliseconds.

use std::{
    path::Path,
    time::{Duration, Instant},
};

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
    let python = osdp_python()?;
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
    // The same PD and pty, OUT commands: ours, then LibOSDP's own control panel.
    let mut ours = Vec::with_capacity(100);
    for _ in 0..100 {
        let t = Instant::now();
        cp.pulse_output(101, 0, Duration::from_millis(100))?;
        ours.push(t.elapsed());
    }
    ours.sort();
    drop(cp);
    let out = std::process::Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/osdp_cp_bench.py"))
        .arg(peer.cp_port())
        .args(["101", "100"])
        .output()?;
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("LibOSDP CP: {e}: {}", String::from_utf8_lossy(&out.stderr)))?;
    println!(
        "OUT command round trip: rollcall (inside the secure channel) p50 {:.2} ms p99 {:.2} ms; LibOSDP CP (its defaults) p50 {:.2} ms p99 {:.2} ms ({} commands each)",
        percentile(&ours, 0.5),
        percentile(&ours, 0.99),
        theirs["p50_ms"].as_f64().unwrap_or(f64::NAN),
        theirs["p99_ms"].as_f64().unwrap_or(f64::NAN),
        ours.len()
    );
    Ok(())
}
