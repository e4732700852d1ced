//! Memory under a crowd of logins (#20): 200 logins at once from one address, each naming a
//! tenant of its own (no slug-keyed limit holds them), against a real `rollcall-cloud` process
//! on SQLite; prints the process's peak resident memory during the crowd and its resident
//! memory 5 s after, with how the logins were answered. Next to it, measured in the same run,
//! the route the cloud took before: 200 Argon2id verifications (19 MiB each) at once, each on
//! its own blocking thread with fresh memory, in a child process of this benchmark.
//!
//! `cargo bench -p rollcall-cloud --bench logins` (or `cargo xtask bench`). Target on this
//! 2-core machine: ≤ 300 MiB peak.

use std::{
    process::{Command, Stdio},
    sync::{Arc, Barrier},
    time::{Duration, Instant},
};

type Error = Box<dyn std::error::Error + Send + Sync>;

const CROWD: usize = 200;
const BASELINE_CHILD: &str = "ROLLCALL_LOGINS_BASELINE_CHILD";

/// `VmHWM` (peak) and `VmRSS` (now) of process `pid`, in MiB.
fn memory(pid: u32) -> Result<(f64, f64), Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<f64, Error> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))?;
        let kib: f64 = line.split_whitespace().nth(1).ok_or("no value")?.parse()?;
        Ok(kib / 1024.0)
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

/// The child: the old route, then its peak and its memory 5 s later, printed as `peak after`.
fn baseline_child() -> Result<(), Error> {
    use argon2::{
        Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString,
    };
    let salt = SaltString::encode_b64(b"sixteen bytes!!!").map_err(|e| e.to_string())?;
    let phc = Argon2::default()
        .hash_password(b"not a password anyone has", &salt)
        .map_err(|e| e.to_string())?
        .to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(512)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut all = Vec::new();
        for _ in 0..CROWD {
            let phc = phc.clone();
            all.push(tokio::task::spawn_blocking(move || {
                let parsed = PasswordHash::new(&phc).map(|h| {
                    Argon2::default()
                        .verify_password(b"correct horse battery", &h)
                        .is_ok()
                });
                parsed.unwrap_or(false)
            }));
        }
        for t in all {
            let _ = t.await;
        }
    });
    let (peak, _) = memory(std::process::id())?;
    std::thread::sleep(Duration::from_secs(5));
    let (_, after) = memory(std::process::id())?;
    println!("{peak:.0} {after:.0}");
    Ok(())
}

fn baseline() -> Result<(f64, f64), Error> {
    let out = Command::new(std::env::current_exe()?)
        .env(BASELINE_CHILD, "1")
        .stderr(Stdio::inherit())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut figures = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::parse::<f64>);
    match (figures.next(), figures.next()) {
        (Some(Ok(peak)), Some(Ok(after))) => Ok((peak, after)),
        _ => Err(format!("the baseline child printed `{text}`").into()),
    }
}

struct Crowd {
    peak: f64,
    after: f64,
    before: f64,
    answers: std::collections::BTreeMap<u16, usize>,
    took: Duration,
}

/// A cloud process with `args`, 200 logins at once, its memory during and after.
fn crowd(args: &[&str]) -> Result<Crowd, Error> {
    let dir = tempfile::tempdir()?;
    let addr_file = dir.path().join("addr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollcall-cloud"))
        .arg("serve")
        .arg("--db")
        .arg(dir.path().join("cloud.sqlite"))
        .args(["--listen", "127.0.0.1:0", "--addr-file"])
        .arg(&addr_file)
        .args(args)
        .env("ROLLCALL_CLOUD_ADMIN_TOKEN", "bench-admin-token-0123456789")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let url = loop {
        if let Ok(a) = std::fs::read_to_string(&addr_file)
            && !a.trim().is_empty()
        {
            break format!("http://{}", a.trim());
        }
        if let Some(status) = child.try_wait()? {
            return Err(format!("the cloud exited: {status}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (_, before) = memory(pid)?;
    let start = Arc::new(Barrier::new(CROWD + 1));
    let threads: Vec<_> = (0..CROWD)
        .map(|i| {
            let (url, start) = (url.clone(), start.clone());
            std::thread::spawn(move || -> u16 {
                let http = reqwest::blocking::Client::new();
                start.wait();
                http.post(format!("{url}/api/v1/auth/login"))
                    .json(&serde_json::json!({ "tenant": format!("guess-{i}"),
                        "email": "nobody@example.com", "password": "correct horse battery" }))
                    .timeout(Duration::from_secs(120))
                    .send()
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    let mut answers = std::collections::BTreeMap::new();
    for t in threads {
        *answers.entry(t.join().unwrap_or(0)).or_insert(0) += 1;
    }
    let took = began.elapsed();
    let (peak, _) = memory(pid)?;
    std::thread::sleep(Duration::from_secs(5));
    let (_, after) = memory(pid)?;
    let _ = child.kill();
    let _ = child.wait();
    Ok(Crowd {
        peak,
        after,
        before,
        answers,
        took,
    })
}

fn main() -> Result<(), Error> {
    if std::env::var_os(BASELINE_CHILD).is_some() {
        return baseline_child();
    }
    println!(
        "logins: {CROWD} at once from one address, each naming its own tenant; memory of the process"
    );
    let (peak, after) = baseline()?;
    println!(
        "before (each hash on its own blocking thread, fresh memory): peak {peak:>5.0} MiB, 5 s after {after:>5.0} MiB"
    );
    let unlimited = [
        "--rate-limit-login-address",
        "100000",
        "--rate-limit-login-global",
        "100000",
    ];
    for (name, args) in [
        ("cloud, default limits", &[][..]),
        ("cloud, login budgets lifted (hashers only)", &unlimited[..]),
    ] {
        let c = crowd(args)?;
        let answers: Vec<String> = c.answers.iter().map(|(s, n)| format!("{n}×{s}")).collect();
        println!(
            "{name:<43} peak {:>5.0} MiB, 5 s after {:>5.0} MiB (idle {:.0} MiB); answers {} in {:.1} s",
            c.peak,
            c.after,
            c.before,
            answers.join(" "),
            c.took.as_secs_f64()
        );
    }
    Ok(())
}
