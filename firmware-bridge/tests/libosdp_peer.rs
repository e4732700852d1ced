//! The control panel against an independent OSDP implementation: LibOSDP's peripheral device
//! (PyPI `libosdp`, in the venv `cargo xtask test` makes under `target/test-venv`), on one end
//! of a pty pair made by `socat`, the control panel on the other.

#![allow(unsafe_code)]

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use rollcall_firmware_bridge::{ControlPanel, CpError, Reply, SerialTransport};
use serde_json::Value;

const ADDRESS: u8 = 101;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The peer's Python, or `None` (with the reason) where the test environment is not installed.
fn python() -> Option<PathBuf> {
    let p = std::env::var_os("ROLLCALL_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/test-venv/bin/python"));
    let ok = Command::new(&p)
        .args(["-c", "import osdp"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let socat = Command::new("socat")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok && socat {
        return Some(p);
    }
    // A developer's plain `cargo test` may lack them; CI (`cargo xtask test`) never does.
    assert!(
        std::env::var_os("CI").is_none(),
        "socat or the libosdp venv is missing in CI"
    );
    eprintln!("skipped: run `cargo xtask test` to install socat and the libosdp test venv");
    None
}

/// A child killed (and reaped) on drop, and killed by the kernel if this thread dies.
struct Kid(Child);

impl Kid {
    fn spawn(cmd: &mut Command) -> Self {
        // SAFETY: prctl touches no parent memory; it ties the child's life to this thread's.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        Kid(cmd.spawn().expect("spawn"))
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Peer {
    _socat: Kid,
    pd: Kid,
    stdin: ChildStdin,
    lines: mpsc::Receiver<Value>,
    cp_end: PathBuf,
    _dir: tempfile::TempDir,
}

impl Peer {
    fn start(python: &Path) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("pd"), dir.path().join("cp"));
        let socat = Kid::spawn(
            Command::new("socat")
                .arg(format!("pty,raw,echo=0,link={}", a.display()))
                .arg(format!("pty,raw,echo=0,link={}", b.display()))
                .stderr(Stdio::null()),
        );
        let start = Instant::now();
        while !(a.exists() && b.exists()) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "socat made no ptys"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut pd = Kid::spawn(
            Command::new(python)
                .arg(workspace().join("tests/peers/osdp_pd.py"))
                .arg(&a)
                .arg(ADDRESS.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        );
        let stdin = pd.0.stdin.take().expect("stdin");
        let stdout: ChildStdout = pd.0.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let ready = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("the PD starts");
        assert_eq!(ready["ready"], true, "{ready}");
        Peer {
            _socat: socat,
            pd,
            stdin,
            lines,
            cp_end: b,
            _dir: dir,
        }
    }

    fn send(&mut self, v: Value) {
        writeln!(self.stdin, "{v}").expect("write to the PD");
        self.stdin.flush().expect("flush");
    }

    /// The next JSON line with `key`, within `timeout`.
    fn next_with(&self, key: &str, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) if v.get(key).is_some() => return Some(v),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }
}

fn control_panel(peer: &Peer) -> ControlPanel<SerialTransport> {
    let transport =
        SerialTransport::open(&peer.cp_end.display().to_string(), 115_200).expect("open the pty");
    ControlPanel::new(transport, &[ADDRESS], Duration::from_millis(200), 2)
}

#[test]
fn identifies_pulses_reads_a_card_and_notices_the_pd_going_away() {
    let Some(python) = python() else { return };
    let mut peer = Peer::start(&python);
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
        .next_with("command", Duration::from_secs(5))
        .expect("the PD saw the command");
    assert_eq!(cmd["command"]["output_no"], 1, "{cmd}");
    assert_eq!(cmd["command"]["timer_count"], 5, "{cmd}");

    // A 26-bit card (facility 12, card 3456) shows up in a poll reply.
    let card = {
        let payload = (12u32 << 16) | 3456;
        let even = (payload >> 12).count_ones() % 2;
        let odd = 1 - (payload & 0xFFF).count_ones() % 2;
        (((even << 25) | (payload << 1) | odd) << 6).to_be_bytes()
    };
    peer.send(serde_json::json!({ "card": card.iter().map(|b| format!("{b:02x}")).collect::<String>(), "bits": 26 }));
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
    drop(std::mem::replace(
        &mut peer.pd,
        Kid::spawn(&mut Command::new("true")),
    ));
    assert!(matches!(cp.poll(ADDRESS), Err(CpError::Timeout { .. })));
    assert!(!cp.pd(ADDRESS).expect("configured").online);
}

#[test]
fn the_bus_task_reports_online_cards_and_offline_and_runs_pulses() {
    use rollcall_firmware_bridge::{Bus, BusConfig, BusEvent};
    let Some(python) = python() else { return };
    let mut peer = Peer::start(&python);
    let transport =
        SerialTransport::open(&peer.cp_end.display().to_string(), 115_200).expect("open the pty");
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
        .next_with("command", Duration::from_secs(5))
        .expect("the PD saw OUT");
    assert_eq!(
        (
            cmd["command"]["output_no"].as_u64(),
            cmd["command"]["timer_count"].as_u64()
        ),
        (Some(0), Some(15)),
        "{cmd}"
    );

    peer.send(serde_json::json!({ "card": "0123abcd", "bits": 32 }));
    match next("card") {
        BusEvent::CardRead { pd, card } => assert_eq!(
            (pd, card.bits, card.data),
            (ADDRESS, 32, vec![0x01, 0x23, 0xab, 0xcd])
        ),
        other => panic!("{other:?}"),
    }
    drop(std::mem::replace(
        &mut peer.pd,
        Kid::spawn(&mut Command::new("true")),
    ));
    assert_eq!(next("offline"), BusEvent::Offline { pd: ADDRESS });
    assert!(
        bus.handle()
            .pulse_output(ADDRESS, 0, Duration::from_millis(100))
            .is_err(),
        "no relay on a dead PD"
    );
    bus.stop();
}
