//! Speed of the check-in hot path on the real models: decode, detect, analyse (detect + align +
//! quality + embed), and a 1:N gallery search. Prints median and p90 per stage, for 1 and 2
//! ONNX Runtime threads. Run with `cargo bench -p rollcall-vision` (or `cargo xtask bench`).
//! Needs `cargo xtask fetch` first.

use std::time::{Duration, Instant};

use rollcall_models::{Manifest, Store};
use rollcall_vision::{
    DecodeLimits, DetectorKind, Embedding, Engine, EngineConfig, Gallery, ModelPaths, decode_image,
};

fn measure(name: &str, iterations: usize, mut f: impl FnMut()) {
    for _ in 0..3 {
        f();
    }
    let mut times: Vec<Duration> = (0..iterations)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<44} median {:>8.2} ms   p90 {:>8.2} ms   ({iterations} runs)",
        ms(times[times.len() / 2]),
        ms(times[times.len() * 9 / 10])
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = Manifest::embedded()?;
    let store = Store::from_env()?;
    let path = |n: &str| store.verified(&manifest, n);
    let photo = std::fs::read(path("sample-obama2")?)?;
    let image = decode_image(&photo, &DecodeLimits::default())?;
    println!(
        "sample: obama2.jpg, {}x{} px, {} KiB",
        image.width(),
        image.height(),
        photo.len() / 1024
    );
    measure("decode JPEG", 20, || {
        let _ = decode_image(&photo, &DecodeLimits::default());
    });

    for (detector, kind) in [
        ("blazeface-short-range", DetectorKind::ShortRange),
        ("blazeface-full-range", DetectorKind::FullRange),
    ] {
        for threads in [1, 2] {
            let engine = Engine::load(
                &ModelPaths {
                    runtime: path("onnxruntime")?,
                    detector: path(detector)?,
                    embedder: path("mobilefacenet")?,
                    mesh: Some(path("face-landmark")?),
                },
                EngineConfig {
                    detector: kind,
                    intra_threads: threads,
                    ..EngineConfig::default()
                },
            )?;
            measure(
                &format!("analyze ({detector}, {threads} thread(s))"),
                30,
                || {
                    let _ = engine.analyze(&image);
                },
            );
        }
    }

    // 1:N search over 10 000 random 192-d templates.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    let mut gallery = Gallery::new();
    for i in 0..10_000u32 {
        if let Some(e) = Embedding::from_raw((0..192).map(|_| next()).collect()) {
            gallery.insert(i, e);
        }
    }
    let probe = Embedding::from_raw((0..192).map(|_| next()).collect()).ok_or("zero probe")?;
    measure("gallery top-2 over 10 000 templates", 50, || {
        let _ = gallery.top_k(&probe, 2);
    });
    Ok(())
}
