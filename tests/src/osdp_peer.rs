//! An independent OSDP peripheral on a virtual serial port, for tests and the demo: LibOSDP's
//! PD (`tests/peers/osdp_pd.py`, PyPI `libosdp` in `target/test-venv`) on one end of a pty pair
//! made by `socat`; the control panel opens [`OsdpPeer::cp_port`].

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{ChildStdin, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::process::{HarnessError, Process};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The test venv's Python if it has `osdp` and `socat` is installed; else why not.
pub fn osdp_python() -> Result<PathBuf, String> {
    let p = std::env::var_os("ROLLCALL_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/test-venv/bin/python"));
    let has_osdp = Command::new(&p)
        .args(["-c", "import osdp"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_osdp {
        return Err(format!(
            "{} cannot import osdp (`cargo xtask test` installs the test venv)",
            p.display()
        ));
    }
    let socat = Command::new("socat")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !socat {
        return Err("socat is not installed (`cargo xtask test` installs it)".into());
    }
    Ok(p)
}

pub struct OsdpPeer {
    pd: Option<Process>,
    _socat: Process,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    cp_port: PathBuf,
    pd_port: PathBuf,
    dir: PathBuf,
    pub addresses: Vec<u8>,
    scbk: Option<[u8; 16]>,
}

/// Starts the PD process on `pd_port`; returns it with its stdin and a channel of its lines,
/// once it says it is ready.
fn start_pd(
    dir: &Path,
    pd_port: &Path,
    addresses: &[u8],
    scbk: Option<[u8; 16]>,
) -> Result<(Process, ChildStdin, mpsc::Receiver<Value>), HarnessError> {
    let python = osdp_python().map_err(HarnessError::Unexpected)?;
    let mut cmd = Command::new(python);
    cmd.arg(workspace().join("tests/peers/osdp_pd.py"))
        .arg(pd_port)
        .args(addresses.iter().map(u8::to_string));
    if let Some(key) = scbk {
        cmd.arg("--scbk")
            .arg(key.iter().map(|b| format!("{b:02x}")).collect::<String>());
    }
    let (mut pd, stdin, stdout) = Process::spawn_piped("osdp-pd", cmd, &dir.join("osdp-pd.log"))?;
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let mut ready = false;
    pd.wait_until(Duration::from_secs(30), || {
        ready = ready || lines.try_recv().is_ok_and(|v| v["ready"] == true);
        ready
    })?;
    Ok((pd, stdin, lines))
}

impl OsdpPeer {
    /// Starts the pty pair and the PD at `address`; waits until the PD is ready.
    pub fn start(dir: &Path, address: u8) -> Result<Self, HarnessError> {
        Self::start_bus(dir, &[address])
    }

    /// Starts the pty pair and one PD per address, all on the same line (multi-drop).
    pub fn start_bus(dir: &Path, addresses: &[u8]) -> Result<Self, HarnessError> {
        Self::start_with(dir, addresses, None)
    }

    /// Starts a PD that already holds `scbk` (not in install mode).
    pub fn start_with_key(dir: &Path, address: u8, scbk: [u8; 16]) -> Result<Self, HarnessError> {
        Self::start_with(dir, &[address], Some(scbk))
    }

    fn start_with(
        dir: &Path,
        addresses: &[u8],
        scbk: Option<[u8; 16]>,
    ) -> Result<Self, HarnessError> {
        std::fs::create_dir_all(dir).map_err(|source| HarnessError::Io {
            what: format!("creating {}", dir.display()),
            source,
        })?;
        let (pd_end, cp_end) = (dir.join("osdp-pd"), dir.join("osdp-cp"));
        let mut socat_cmd = Command::new("socat");
        socat_cmd
            .arg(format!("pty,raw,echo=0,link={}", pd_end.display()))
            .arg(format!("pty,raw,echo=0,link={}", cp_end.display()));
        let mut socat = Process::spawn("socat", socat_cmd, &dir.join("socat.log"))?;
        socat.wait_until(Duration::from_secs(10), || {
            pd_end.exists() && cp_end.exists()
        })?;

        let (pd, stdin, lines) = start_pd(dir, &pd_end, addresses, scbk)?;
        Ok(Self {
            pd: Some(pd),
            _socat: socat,
            stdin: Some(stdin),
            lines,
            cp_port: cp_end,
            pd_port: pd_end,
            dir: dir.to_path_buf(),
            addresses: addresses.to_vec(),
            scbk,
        })
    }

    /// The serial device the control panel opens.
    pub fn cp_port(&self) -> &Path {
        &self.cp_port
    }

    /// Asks the (first) PD to report a card read (`hex` bytes, `bits` long).
    pub fn present_card(&mut self, hex: &str, bits: u16) -> Result<(), HarnessError> {
        let first = self.addresses.first().copied().unwrap_or(0);
        self.present_card_on(first, hex, bits)
    }

    /// From now on, each output command the PD receives is printed with `granted_committed`:
    /// how many granted events the node's database at `db` holds at that moment, read by the
    /// PD's own process (so a relay pulsed before its event was committed shows up). Call it
    /// before the control panel sends commands: lines before the answer are dropped.
    pub fn watch_database(&mut self, db: &Path) -> Result<(), HarnessError> {
        self.send(serde_json::json!({ "watch_db": db }))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) if v.get("watching").is_some() => return Ok(()),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Err(HarnessError::Unexpected(format!(
            "the PD did not start watching {}",
            db.display()
        )))
    }

    /// Asks PD `pd` to report its inputs (0: door contact open, 1: exit button pressed).
    pub fn set_inputs(&mut self, pd: u8, inputs: &[u8]) -> Result<(), HarnessError> {
        self.send(serde_json::json!({ "inputs": inputs, "pd": pd }))
    }

    /// Asks PD `pd` to report tamper and power-failure state.
    pub fn set_local_status(
        &mut self,
        pd: u8,
        tamper: bool,
        power_failure: bool,
    ) -> Result<(), HarnessError> {
        self.send(
            serde_json::json!({ "local": [u8::from(tamper), u8::from(power_failure)], "pd": pd }),
        )
    }

    fn send(&mut self, message: Value) -> Result<(), HarnessError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| HarnessError::Unexpected("the PD was stopped".into()))?;
        writeln!(stdin, "{message}")
            .and_then(|()| stdin.flush())
            .map_err(|source| HarnessError::Io {
                what: "writing to the PD".into(),
                source,
            })
    }

    /// Asks PD `pd` to report a card read.
    pub fn present_card_on(&mut self, pd: u8, hex: &str, bits: u16) -> Result<(), HarnessError> {
        self.send(serde_json::json!({ "card": hex, "bits": bits, "pd": pd }))
    }

    /// The next command the PD received, within `timeout`.
    pub fn next_command(&self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) if v.get("command").is_some() => return Some(v["command"].clone()),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// Every command received so far, without waiting.
    pub fn commands_so_far(&self) -> Vec<Value> {
        self.lines
            .try_iter()
            .filter_map(|v| v.get("command").cloned())
            .collect()
    }

    /// Starts the PD again on the same port (the reader gets its power back).
    pub fn restart_pd(&mut self) -> Result<(), HarnessError> {
        self.kill_pd();
        let (pd, stdin, lines) = start_pd(&self.dir, &self.pd_port, &self.addresses, self.scbk)?;
        self.pd = Some(pd);
        self.stdin = Some(stdin);
        self.lines = lines;
        Ok(())
    }

    /// Kills the PD (the reader loses power); the pty stays.
    pub fn kill_pd(&mut self) {
        self.stdin = None;
        if let Some(mut pd) = self.pd.take() {
            pd.stop(Duration::from_millis(100));
        }
    }
}

/// A node whose `[osdp]` bus is a LibOSDP reader at address 101 (`opts` gives the rest), once
/// the reader is online; `None` where LibOSDP is missing (see [`crate::environment_ready`]).
pub fn node_on_reader(dir: &Path, opts: crate::NodeOptions) -> Option<(OsdpPeer, crate::Node)> {
    if !crate::environment_ready(osdp_python()) {
        return None;
    }
    let peer = OsdpPeer::start(&dir.join("osdp"), 101).expect("PD starts");
    let node = crate::Node::start(
        &dir.join("node"),
        &crate::NodeOptions {
            osdp: Some((peer.cp_port().to_path_buf(), 101)),
            ..opts
        },
    )
    .expect("node starts");
    crate::wait_for("the reader to come online", Duration::from_secs(20), || {
        node.has_metric("rollcall_node_osdp_pd_online 1")
    });
    Some((peer, node))
}
