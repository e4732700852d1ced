//! The node's check-in, frame in → committed decision (decode, detect, quality, embed, 1:N
//! match over 10 000 people (one of them the person in the frames), fraud rules with the person's history, the SQLite transaction with
//! `synchronous=FULL`), on 640×480 JPEGs made from a sample photo; p50/p90/p99. Then the daemon
//! itself: `rollcall-node` started on a database of 100 000 people, its start-up time and
//! resident memory once it listens (models and gallery loaded).
//!
//! `cargo bench -p rollcall-node --bench checkin` (or `cargo xtask bench`); needs
//! `cargo xtask fetch` first. `ROLLCALL_BENCH_RUNS` sets the number of check-ins (default 300).

use parking_lot::Mutex;
use std::{
    io::Cursor,
    path::Path,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use image::{ImageFormat, RgbImage, imageops::FilterType};
use rollcall_models::{Manifest, Store};
use rollcall_node::{
    NodeConfig,
    metrics::Metrics,
    pipeline::{Pipeline, PipelineSettings},
    store::{ImportedPerson, NodeStore},
    template_key::TemplateKey,
    vision_setup::{DEFAULT_EMBEDDER, load_engine},
};

type Error = Box<dyn std::error::Error>;

const GATE: (f64, f64) = (48.8584, 2.2945);

fn config_text(data_dir: &Path) -> String {
    format!(
        r#"[node]
site_id = "bench"
data_dir = "{}"

[http]
listen = "127.0.0.1:0"
admin_token = "bench-admin-token-0123456789"

[[geofence]]
name = "gate"
lat = {}
lon = {}
radius_m = 150.0
"#,
        data_dir.display(),
        GATE.0,
        GATE.1
    )
}

/// `n` people with random unit templates of `dim`, ids from `first`.
fn people(first: usize, n: usize, dim: usize, seed: &mut u64) -> Vec<ImportedPerson> {
    let mut next = || {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    (first..first + n)
        .map(|i| {
            let mut v: Vec<f32> = (0..dim).map(|_| next()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            ImportedPerson {
                id: format!("p{i:06}"),
                display_name: format!("Person {i}"),
                card: None,
                templates: vec![v],
            }
        })
        .collect()
}

/// `count` 640×480 JPEGs of the photo (letterboxed), each with a white block somewhere else
/// in the border, so no frame is a replay of another.
fn frames(photo: &[u8], count: usize) -> Result<Vec<Vec<u8>>, Error> {
    let img = image::load_from_memory(photo)?.to_rgb8();
    let scale = (640.0 / img.width() as f32).min(480.0 / img.height() as f32);
    let (w, h) = (
        (img.width() as f32 * scale) as u32,
        (img.height() as f32 * scale) as u32,
    );
    let resized = image::imageops::resize(&img, w, h, FilterType::Triangle);
    let mut canvas = RgbImage::from_pixel(640, 480, image::Rgb([40, 40, 40]));
    image::imageops::overlay(
        &mut canvas,
        &resized,
        i64::from((640 - w) / 2),
        i64::from((480 - h) / 2),
    );
    (0..count)
        .map(|i| {
            let mut frame = canvas.clone();
            // An 8×8 block (one JPEG block) in the top rows, a different one per frame.
            let (bx, by) = ((i % 80) as u32 * 8, (i / 80) as u32 * 8);
            for (x, y) in (0..8).flat_map(|x| (0..8).map(move |y| (bx + x, by + y))) {
                frame.put_pixel(x, y, image::Rgb([250, 250, 250]));
            }
            let mut out = Cursor::new(Vec::new());
            frame.write_to(&mut out, ImageFormat::Jpeg)?;
            Ok(out.into_inner())
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// A `/proc/<pid>/status` field in MiB.
fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn main() -> Result<(), Error> {
    let runs: usize = std::env::var("ROLLCALL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir()?;
    let config_path = dir.path().join("node.toml");
    std::fs::write(&config_path, config_text(&dir.path().join("data")))?;
    let config = NodeConfig::load(&config_path)?;
    std::fs::create_dir_all(&config.node.data_dir)?;

    let manifest = Manifest::embedded()?;
    let models = Store::from_env()?;
    let photo = std::fs::read(models.verified(&manifest, "sample-obama2")?)?;
    let frames = frames(&photo, runs + 5)?;
    let engine = load_engine(&config)?;
    let dim = 192;

    let key = TemplateKey::load_or_create(&config.template_key_path())?;
    let mut store = NodeStore::open(&config.database_path(), key)?;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let t = Instant::now();
    store.import_people(DEFAULT_EMBEDDER, &people(0, 10_000, dim, &mut seed))?;
    println!(
        "imported 10 000 people with sealed templates in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let store = Arc::new(Mutex::new(store));
    let pipeline = Pipeline::new(
        engine,
        store.clone(),
        PipelineSettings {
            graph_from: rollcall_vision::AnnParams::default().min_templates,
            embedder: rollcall_node::vision_setup::DEFAULT_EMBEDDER.into(),
            site_id: "bench".into(),
            match_threshold: 0.5,
            min_margin: 0.05,
            learn: None,
            policy: rollcall_fraud::Policy::default(),
            geofences: config.geofences(),
            require_card: false,
            keep_frames: rollcall_node::config::KeepFrames::None,
        },
        Arc::new(Metrics::new()),
        Arc::new(rollcall_node::live::LiveFeed::new()),
    )?;
    // The person in the frames is enrolled too, so check-ins take the granted path (with
    // their history) as at a real gate.
    store.lock().add_person("obama", "Barack Obama", None)?;
    pipeline.enrol(
        "obama",
        &std::fs::read(models.verified(&manifest, "sample-obama")?)?,
    )?;
    let fix = || {
        Some(rollcall_fraud::Fix {
            lat: GATE.0,
            lon: GATE.1,
            accuracy_m: 10.0,
            fix_time_ms: None,
            mock: false,
            satellites: None,
            provider: None,
        })
    };
    for frame in &frames[runs..] {
        pipeline.check_in(frame, fix(), None)?;
    }
    let mut times = Vec::with_capacity(runs);
    let mut decisions = std::collections::BTreeMap::<String, usize>::new();
    for frame in &frames[..runs] {
        let t = Instant::now();
        let outcome = pipeline.check_in(frame, fix(), None)?;
        times.push(t.elapsed());
        let e = &outcome.event;
        let why = e.reasons.first().map_or("", |r| r.code.as_str());
        *decisions
            .entry(format!("{} {why}", e.decision.as_str()).trim().to_owned())
            .or_default() += 1;
    }
    times.sort();
    println!(
        "check-in, 640x480 JPEG → committed decision, 10 000 people: p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({runs} runs, {decisions:?})",
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99),
        percentile(&times, 1.0),
    );
    drop(pipeline);

    // The daemon on 100 000 people.
    let t = Instant::now();
    store
        .lock()
        .import_people(DEFAULT_EMBEDDER, &people(10_000, 90_000, dim, &mut seed))?;
    println!(
        "imported 90 000 more people in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    drop(store);
    let addr_file = dir.path().join("node.addr");
    let started = Instant::now();
    let mut node = Command::new(env!("CARGO_BIN_EXE_rollcall-node"))
        .args(["run", "--config"])
        .arg(&config_path)
        .arg("--addr-file")
        .arg(&addr_file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    while !addr_file.exists() {
        if started.elapsed() > Duration::from_secs(120) || node.try_wait()?.is_some() {
            let _ = node.kill();
            return Err("rollcall-node did not start on the 100 000-person database".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let startup = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let (rss, peak) = (
        status_mib(node.id(), "VmRSS:"),
        status_mib(node.id(), "VmHWM:"),
    );
    Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status()?;
    let status = node.wait()?;
    println!(
        "rollcall-node on 100 000 people: listening after {:.1} s, RSS {:.0} MiB (peak {:.0} MiB), exit {status}",
        startup.as_secs_f64(),
        rss.unwrap_or(f64::NAN),
        peak.unwrap_or(f64::NAN),
    );
    Ok(())
}
