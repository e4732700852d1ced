//! A real SMTP server on loopback for the mail tests and the demo: aiosmtpd
//! (`tests/peers/smtp_sink.py`, in `target/test-venv`), which parses each message it accepts
//! with Python's `email` package and keeps it as JSON for the test to read.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde::Deserialize;

use crate::process::{HarnessError, Process};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The test venv's Python if it has aiosmtpd; else why not.
pub fn smtp_python() -> Result<PathBuf, String> {
    let p = std::env::var_os("ROLLCALL_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/test-venv/bin/python"));
    let ok = Command::new(&p)
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(p)
    } else {
        Err(format!(
            "{} cannot import aiosmtpd (`cargo xtask test` installs the test venv)",
            p.display()
        ))
    }
}

/// One message the server accepted, as Python's `email` package read it.
#[derive(Debug, Clone, Deserialize)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub subject: String,
    pub from: String,
    pub to: String,
    pub message_id: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub raw: String,
}

/// A running SMTP server.
pub struct SmtpSink {
    process: Option<Process>,
    pub port: u16,
    out: PathBuf,
    dir: PathBuf,
    auth: Option<(String, String)>,
    /// The certificate and key it offers STARTTLS with.
    tls: Option<(PathBuf, PathBuf)>,
}

/// A loopback port nothing listens on now.
pub fn free_port() -> Result<u16, HarnessError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| HarnessError::Unexpected(format!("binding a free port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| HarnessError::Unexpected(format!("a free port: {e}")))
}

impl SmtpSink {
    /// Starts a server on a free port, keeping messages under `dir`.
    pub fn start(dir: &Path) -> Result<Self, HarnessError> {
        Self::start_on(dir, free_port()?, None)
    }

    /// Starts a server on `port`; with `auth`, it takes mail only after AUTH with those.
    pub fn start_on(
        dir: &Path,
        port: u16,
        auth: Option<(&str, &str)>,
    ) -> Result<Self, HarnessError> {
        Self::launch(dir, port, auth, None)
    }

    /// Starts a server on a free port that requires STARTTLS (with `cert` and `key`) and AUTH
    /// with `auth`.
    pub fn start_tls(
        dir: &Path,
        auth: (&str, &str),
        cert: &Path,
        key: &Path,
    ) -> Result<Self, HarnessError> {
        Self::launch(dir, free_port()?, Some(auth), Some((cert, key)))
    }

    fn launch(
        dir: &Path,
        port: u16,
        auth: Option<(&str, &str)>,
        tls: Option<(&Path, &Path)>,
    ) -> Result<Self, HarnessError> {
        let mut sink = Self {
            process: None,
            port,
            out: dir.join("mail"),
            dir: dir.to_path_buf(),
            auth: auth.map(|(u, p)| (u.to_owned(), p.to_owned())),
            tls: tls.map(|(c, k)| (c.to_path_buf(), k.to_path_buf())),
        };
        sink.restart()?;
        Ok(sink)
    }

    /// Starts it again (after [`SmtpSink::stop`]) on the same port, keeping what it received.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            HarnessError::Unexpected(format!("creating {}: {e}", self.dir.display()))
        })?;
        let python = smtp_python().map_err(HarnessError::Unexpected)?;
        let mut cmd = Command::new(python);
        cmd.arg(workspace().join("tests/peers/smtp_sink.py"))
            .arg(self.port.to_string())
            .arg(&self.out);
        if let Some((u, p)) = &self.auth {
            cmd.arg("--auth").arg(format!("{u}:{p}"));
        }
        if let Some((cert, key)) = &self.tls {
            cmd.arg("--tls").arg(cert).arg(key);
        }
        let log = self.dir.join("smtp-sink.log");
        let mut p = Process::spawn("smtp-sink", cmd, &log)?;
        p.wait_until(Duration::from_secs(20), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("listening on"))
        })?;
        self.process = Some(p);
        Ok(())
    }

    /// Stops the server (a mail server that is down).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop(Duration::from_secs(5));
        }
    }

    /// `smtp://127.0.0.1:<port>` (with the credentials, if it asks for them; by the name
    /// `localhost` with `?tls=required`, if it speaks TLS).
    pub fn url(&self) -> String {
        let host = if self.tls.is_some() {
            "localhost"
        } else {
            "127.0.0.1"
        };
        let query = if self.tls.is_some() {
            "?tls=required"
        } else {
            ""
        };
        match &self.auth {
            Some((u, p)) => format!("smtp://{u}:{p}@{host}:{}{query}", self.port),
            None => format!("smtp://{host}:{}{query}", self.port),
        }
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<Mail> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|f| std::fs::read(f).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect()
    }

    /// The messages once at least `n` have arrived (or what has, after `timeout`).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Mail> {
        let start = Instant::now();
        loop {
            let m = self.messages();
            if m.len() >= n || start.elapsed() > timeout {
                return m;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}
