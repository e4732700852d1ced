//! Speed of the check-in hot path on the real models: decode, detect, analyse (detect + align +
//! quality + embed), and a 1:N gallery search. Prints median and p90 per stage, for 1 and 2
//! ONNX Runtime threads. Run with `cargo bench -p rollcall-vision` (or `cargo xtask bench`).
//! Needs `cargo xtask fetch` first.

use std::time::{Duration, Instant};

use rollcall_models::{Manifest, Store};
use rollcall_vision::{
    AnnParams, DecodeLimits, DetectorKind, Embedding, Engine, EngineConfig, Gallery, ModelPaths,
    decode_image,
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
                    antispoof: Some(path("face-antispoofing")?),
                    iris: None,
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
            if kind == DetectorKind::ShortRange {
                let faces = engine.analyze(&image)?;
                let face = &faces.first().ok_or("no face in the sample")?.face;
                measure(
                    &format!("passive liveness, one face ({threads} thread(s))"),
                    10,
                    || {
                        let _ = engine.passive_liveness(&image, face);
                    },
                );
            }
        }
    }

    // 1:N top-5 over random unit vectors of the embedder's size, next to a raw scan (sum) of the
    // same number of bytes: how close the search comes to memory bandwidth.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    let sizes: Vec<usize> = match std::env::var("ROLLCALL_BENCH_GALLERY") {
        Ok(v) => v.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
        Err(_) => vec![10_000, 100_000, 1_000_000],
    };
    // The HNSW graph costs minutes to build past 100k templates on 2 cores: only the sizes in
    // ROLLCALL_BENCH_GRAPH (default 100000) get one.
    let graph_sizes: Vec<usize> = match std::env::var("ROLLCALL_BENCH_GRAPH") {
        Ok(v) => v.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
        Err(_) => vec![100_000],
    };
    for n in sizes {
        let mut gallery = Gallery::new();
        let mut raw: Vec<f32> = Vec::with_capacity(n * 192);
        for i in 0..n as u32 {
            let v: Vec<f32> = (0..192).map(|_| next()).collect();
            if let Some(e) = Embedding::from_raw(v) {
                raw.extend_from_slice(e.as_slice());
                gallery.insert(i, e)?;
            }
        }
        let probe = Embedding::from_raw((0..192).map(|_| next()).collect()).ok_or("zero probe")?;
        let runs = if n >= 1_000_000 { 10 } else { 30 };
        measure(&format!("gallery top-5 over {n} templates"), runs, || {
            std::hint::black_box(gallery.top_k(&probe, 5));
        });
        measure(
            &format!("gallery top-5 over {n}, int8 + f32 re-rank"),
            runs,
            || {
                std::hint::black_box(gallery.top_k_quantized(&probe, 5));
            },
        );
        if graph_sizes.contains(&n) {
            graph_search(&mut gallery, &raw, &mut next, runs)?;
        }
        // A plain `iter().sum()` of f32 cannot be vectorised (float addition is not
        // associative, so the compiler keeps the order): eight lanes, like the search's dot.
        measure(
            &format!("raw scan of the same {} MiB", raw.len() * 4 / (1 << 20)),
            runs,
            || {
                let mut acc = [0f32; 8];
                for c in raw.chunks_exact(8) {
                    for i in 0..8 {
                        acc[i] += c[i];
                    }
                }
                std::hint::black_box(acc);
            },
        );
    }
    Ok(())
}

/// Builds the HNSW graph over `gallery`, then measures a graph search and how often it finds the
/// exact scan's best person (recall@1) and top-5 (recall@5) for probes near enrolled templates.
fn graph_search(
    gallery: &mut Gallery<u32>,
    raw: &[f32],
    next: &mut dyn FnMut() -> f32,
    runs: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let n = gallery.len();
    let params = AnnParams {
        min_templates: 1,
        ..AnnParams::default()
    };
    let t = Instant::now();
    gallery.use_graph(params)?;
    println!(
        "{:<44} {:>8.1} s (M {}, ef_construction {}, all cores)",
        format!("HNSW graph build over {n} templates"),
        t.elapsed().as_secs_f64(),
        params.max_connections,
        params.ef_construction
    );
    let probes: Vec<Embedding> = raw
        .chunks_exact(192)
        .step_by((n / 200).max(1))
        .filter_map(|row| Embedding::from_raw(row.iter().map(|x| x + 0.05 * next()).collect()))
        .collect();
    let probe = probes.first().ok_or("no probe")?.clone();
    measure(
        &format!("gallery top-5 over {n}, HNSW (ef {})", params.ef_search),
        runs,
        || {
            std::hint::black_box(gallery.top_k_graph(&probe, 5));
        },
    );
    let (mut at1, mut at5) = (0usize, 0usize);
    for p in &probes {
        let exact = gallery.top_k(p, 5);
        let graph = gallery.top_k_graph(p, 5);
        at1 += usize::from(exact.first() == graph.first());
        at5 += exact.iter().filter(|m| graph.contains(m)).count();
    }
    println!(
        "{:<44} recall@1 {:.1} %, recall@5 {:.1} % ({} probes near enrolled templates)",
        format!("HNSW over {n} vs the exact scan"),
        at1 as f64 / probes.len() as f64 * 100.0,
        at5 as f64 / (probes.len() * 5) as f64 * 100.0,
        probes.len()
    );
    Ok(())
}
