//! Developer commands: `cargo xtask fetch | demo | test`.
//!
//! The README's two set-up commands are `cargo xtask demo` and `cargo xtask test`; both fetch
//! what they need first, so they work on a fresh machine.

mod demo;
mod demo_jobs;
mod demo_live;
mod demo_mail;
mod fetch;
mod fuzz;
mod test;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "rollcall developer commands")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Download, verify (sha256) and convert the ONNX Runtime library, face models and sample
    /// photos into $ROLLCALL_HOME (default ~/.local/share/rollcall).
    Fetch(fetch::Args),
    /// Build and run cloud + node on embedded SQLite, enrol a person and replay check-ins.
    Demo(demo::Args),
    /// Install what the tests need, then run fmt, clippy and the whole test suite.
    Test(test::Args),
    /// Fetch, then run the benchmarks of the hot paths and print their figures.
    Bench,
    /// Run every fuzz target (cargo-fuzz, installed if missing) for a while each.
    Fuzz(fuzz::Args),
}

/// The workspace root (xtask lives one level below it).
fn workspace_root() -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// Runs a command from the workspace root, echoing it; fails with its exit status.
fn run_step(program: &str, args: &[&str]) -> anyhow::Result<()> {
    println!("\n$ {program} {}", args.join(" "));
    let status = std::process::Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run {program}: {e}"))?;
    anyhow::ensure!(
        status.success(),
        "`{program} {}` failed ({status})",
        args.join(" ")
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Fetch(args) => fetch::run(&args).map(|_| ()),
        Cmd::Demo(args) => demo::run(&args),
        Cmd::Test(args) => test::run(&args),
        Cmd::Fuzz(args) => fuzz::run(&args),
        Cmd::Bench => {
            fetch::run(&fetch::Args::default())?;
            run_step(
                "cargo",
                &["bench", "-p", "rollcall-vision", "--bench", "pipeline"],
            )?;
            run_step(
                "cargo",
                &["bench", "-p", "rollcall-vision", "--bench", "decode_bombs"],
            )?;
            run_step(
                "cargo",
                &["bench", "-p", "rollcall-fraud", "--bench", "assess"],
            )?;
            run_step(
                "cargo",
                &["bench", "-p", "rollcall-node", "--bench", "checkin"],
            )?;
            test::ensure_postgres()?;
            run_step(
                "cargo",
                &["bench", "-p", "rollcall-cloud", "--bench", "api_load"],
            )?;
            run_step(
                "cargo",
                &["bench", "-p", "rollcall-cloud", "--bench", "jobs"],
            )?;
            run_step(
                "cargo",
                &["bench", "-p", "rollcall-cloud", "--bench", "logins"],
            )?;
            test::ensure_test_venv()?;
            run_step(
                "cargo",
                &["bench", "-p", "rollcall-cloud", "--bench", "realtime"],
            )?;
            run_step(
                "cargo",
                &[
                    "bench",
                    "-p",
                    "rollcall-firmware-bridge",
                    "--bench",
                    "poll_rtt",
                ],
            )
        }
    }
}
