//! `cargo xtask fuzz`: every parser of outside bytes under libFuzzer (cargo-fuzz), each for a
//! while. The toolchain here is stable, so cargo-fuzz's unstable flags are allowed with
//! RUSTC_BOOTSTRAP=1 for these builds only.

use std::process::Command;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Seconds per target.
    #[arg(long, default_value_t = 30)]
    seconds: u32,
    /// Only this target (see fuzz/Cargo.toml).
    #[arg(long)]
    target: Option<String>,
}

pub const TARGETS: &[&str] = &[
    "osdp_packet",
    "osdp_secure",
    "image_decode",
    "decode_detect",
    "geojson",
    "node_config",
    "sync_push",
];

fn cargo_fuzz_installed() -> bool {
    Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if !cargo_fuzz_installed() {
        crate::run_step("cargo", &["install", "cargo-fuzz", "--locked"])?;
    }
    let targets: Vec<&str> = match &args.target {
        Some(t) => vec![t.as_str()],
        None => TARGETS.to_vec(),
    };
    let max_time = format!("-max_total_time={}", args.seconds);
    for target in targets {
        println!("\n== fuzzing {target} for {} s", args.seconds);
        let status = Command::new("cargo")
            .args(["fuzz", "run", "--fuzz-dir", "fuzz", target, "--", &max_time])
            .env("RUSTC_BOOTSTRAP", "1")
            .current_dir(crate::workspace_root())
            .status()
            .with_context(|| format!("running cargo fuzz for {target}"))?;
        anyhow::ensure!(
            status.success(),
            "fuzz target {target} found a failure ({status}); see fuzz/artifacts/{target}"
        );
    }
    Ok(())
}
