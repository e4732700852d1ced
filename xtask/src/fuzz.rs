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
    "cookie_header",
    "voice_audio",
];

/// Targets whose inputs are images: their corpus starts from small real face photos, so the
/// mutations explore decoders and the face path rather than rejections of random bytes.
const IMAGE_TARGETS: &[&str] = &["image_decode", "decode_detect"];

/// Writes small JPEG and PNG copies of the sample photos into the target's corpus.
fn seed_with_faces(target: &str) -> anyhow::Result<()> {
    crate::fetch::run(&crate::fetch::Args::default())?;
    let dir = crate::workspace_root().join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in ["sample-obama2", "sample-biden"] {
        let photo = rollcall_tests::sample_photo(name)?;
        let img = image::load_from_memory(&photo)
            .with_context(|| format!("decoding {name}"))?
            .thumbnail(160, 160);
        for (format, ext) in [
            (image::ImageFormat::Jpeg, "jpg"),
            (image::ImageFormat::Png, "png"),
        ] {
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, format)
                .with_context(|| format!("encoding {name}"))?;
            let file = dir.join(format!("seed-{name}.{ext}"));
            std::fs::write(&file, out.into_inner())
                .with_context(|| format!("writing {}", file.display()))?;
        }
    }
    Ok(())
}

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
        let mut flags = vec![max_time.clone()];
        if IMAGE_TARGETS.contains(&target) {
            seed_with_faces(target)?;
            // Real frames are bigger than libFuzzer's default 4 KiB inputs.
            flags.push("-max_len=65536".into());
        }
        let status = Command::new("cargo")
            .args(["fuzz", "run", "--fuzz-dir", "fuzz", target, "--"])
            .args(&flags)
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
