#![allow(unsafe_code)]

use std::{
    fs::File,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(
        "{} not found: build it first (`cargo build -p rollcall-node -p rollcall-cloud`; `cargo xtask test` does)",
        .0.display()
    )]
    MissingBinary(PathBuf),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} exited before it was ready ({status}); its log:\n{log}")]
    Exited {
        name: String,
        status: String,
        log: String,
    },
    #[error("{name} was not ready within {secs} s; its log:\n{log}")]
    NotReady {
        name: String,
        secs: u64,
        log: String,
    },
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{0}")]
    Unexpected(String),
}

/// The directory holding the workspace's binaries: `$ROLLCALL_BIN_DIR`, or the target profile
/// directory of the running executable (tests live in `target/<profile>/deps`).
pub fn bin_path(name: &str) -> Result<PathBuf, HarnessError> {
    let dir = match std::env::var_os("ROLLCALL_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().map_err(|source| HarnessError::Io {
                what: "locating the running executable".into(),
                source,
            })?;
            let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
            if dir.file_name().is_some_and(|n| n == "deps") {
                dir.pop();
            }
            dir
        }
    };
    let path = dir.join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(HarnessError::MissingBinary(path))
    }
}

/// A child process whose output goes to a log file, stopped on drop.
pub struct Process {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Self, HarnessError> {
        let io = |what: &str| {
            let what = format!("{what} for {name}");
            move |source| HarnessError::Io { what, source }
        };
        let out = File::create(log).map_err(io("creating the log file"))?;
        let err = out.try_clone().map_err(io("opening the log file"))?;
        cmd.stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .stdin(Stdio::null());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent; it makes the
        // kernel kill the child if the thread that spawned it dies, so a crashed test run leaves
        // no orphan servers behind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(io("starting"))?;
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// Like [`Process::spawn`], with stdin and stdout piped to the caller (stderr to the log).
    pub fn spawn_piped(
        name: &str,
        mut cmd: Command,
        log: &Path,
    ) -> Result<(Self, std::process::ChildStdin, std::process::ChildStdout), HarnessError> {
        let io = |what: &str| {
            let what = format!("{what} for {name}");
            move |source| HarnessError::Io { what, source }
        };
        let err = File::create(log).map_err(io("creating the log file"))?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err));
        // SAFETY: as in `spawn`: prctl only, no parent memory touched.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(io("starting"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(HarnessError::Unexpected(format!("{name}: no pipes")));
        };
        Ok((
            Self {
                name: name.to_owned(),
                child: Some(child),
                log: log.to_path_buf(),
            },
            stdin,
            stdout,
        ))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `Some(status)` if the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    /// Polls `ready` until it returns true, failing early if the process dies.
    pub fn wait_until(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), HarnessError> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return Err(HarnessError::Exited {
                    name: self.name.clone(),
                    status,
                    log: self.log_text(),
                });
            }
            if ready() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(HarnessError::NotReady {
                    name: self.name.clone(),
                    secs: timeout.as_secs(),
                    log: self.log_text(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL now (a power cut, as far as the process can tell) and reap it.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; returns the exit status if it stopped by itself.
    pub fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill(2) with a pid we spawned and have not reaped, so it cannot name another
        // process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let graceful = self.stop(Duration::from_secs(10));
        if std::thread::panicking() {
            eprintln!(
                "----- {} log ({}) -----\n{}----- end of {} log (stopped: {:?}) -----",
                self.name,
                self.log.display(),
                self.log_text(),
                self.name,
                graceful
            );
        }
    }
}
