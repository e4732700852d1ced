//! Memory under a crowd of decompression bombs (#20): twelve uploads at once of a small PNG
//! (a few hundred KB) that declares 8192 × 8192 pixels — within the node's width and height
//! limits. Each scenario runs in a child process of this benchmark, which prints its peak
//! resident memory and how long the twelve took: first with the limits the node had before
//! (no pixel cap, every decode at once), then with today's defaults (16.8 MP cap, two decodes
//! at a time); and, for scale, twelve real-size 12 MP photos at once with today's defaults.
//!
//! `cargo bench -p rollcall-vision --bench decode_bombs` (or `cargo xtask bench`).

use std::{io::Cursor, process::Command, time::Instant};

use rollcall_vision::{DecodeGate, DecodeLimits, decode_image};

type Error = Box<dyn std::error::Error + Send + Sync>;

const UPLOADS: usize = 12;
const CHILD: &str = "ROLLCALL_DECODE_BOMBS_CHILD";

fn peak_mib() -> Result<f64, Error> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .ok_or("no VmHWM")?
        .parse()?;
    Ok(kib / 1024.0)
}

/// The child: twelve decodes of `file` at once under `limits`; prints `peak seconds refused`.
fn child(file: &str, old: bool) -> Result<(), Error> {
    let bytes = std::fs::read(file)?;
    let limits = if old {
        DecodeLimits {
            max_pixels: u64::MAX,
            max_alloc: 256 * 1024 * 1024,
            at_once: UPLOADS,
            ..DecodeLimits::default()
        }
    } else {
        DecodeLimits::default()
    };
    let gate = DecodeGate::new(limits.at_once);
    let start = Instant::now();
    let refused = std::thread::scope(|s| {
        let all: Vec<_> = (0..UPLOADS)
            .map(|_| s.spawn(|| gate.run(|| decode_image(&bytes, &limits).is_err())))
            .collect();
        all.into_iter()
            .map(|t| t.join().unwrap_or(true))
            .filter(|refused| *refused)
            .count()
    });
    println!(
        "{:.0} {:.2} {refused}",
        peak_mib()?,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_child(file: &std::path::Path, old: bool) -> Result<(f64, f64, usize), Error> {
    let out = Command::new(std::env::current_exe()?)
        .env(CHILD, if old { "old" } else { "new" })
        .env("ROLLCALL_DECODE_BOMBS_FILE", file)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    match f.as_slice() {
        [peak, secs, refused] => Ok((peak.parse()?, secs.parse()?, refused.parse()?)),
        _ => Err(format!(
            "the child printed `{text}` {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into()),
    }
}

fn main() -> Result<(), Error> {
    if let Ok(which) = std::env::var(CHILD) {
        let file = std::env::var("ROLLCALL_DECODE_BOMBS_FILE")?;
        return child(&file, which == "old");
    }
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("bomb.png");
    let img = image::GrayImage::new(8192, 8192);
    let mut png = Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)?;
    let png = png.into_inner();
    std::fs::write(&file, &png)?;
    println!(
        "decode bombs: {UPLOADS} uploads at once of a {} KB PNG declaring 8192 × 8192 pixels",
        png.len() / 1024
    );
    // What a crowd of real uploads costs now: twelve 12 MP photos (a phone's 4032 × 3024).
    let phone = dir.path().join("phone.png");
    let mut bytes = Cursor::new(Vec::new());
    image::GrayImage::new(4032, 3024).write_to(&mut bytes, image::ImageFormat::Png)?;
    std::fs::write(&phone, bytes.into_inner())?;
    for (name, file, old) in [
        ("bombs, before (no pixel cap, all at once)", &file, true),
        ("bombs, now (16.8 MP cap, 2 at a time)", &file, false),
        ("12 MP photos, now (2 at a time)", &phone, false),
    ] {
        let (peak, secs, refused) = run_child(file, old)?;
        println!("{name:<42} peak {peak:>6.0} MiB, {secs:>5.2} s, {refused}/{UPLOADS} refused");
    }
    Ok(())
}
