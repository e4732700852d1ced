//! `face-eval DIR`: verification and identification accuracy of the face pipeline over a folder
//! with one sub-folder of photos per person (like `shared/data/faces/`). Prints a summary,
//! writes `report.json` and `roc.png` into `--out`.

use std::{io::IsTerminal, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rollcall_models::{Manifest, Store};
use rollcall_vision::{
    DetectorKind, Engine, EngineConfig, ModelPaths, StageTimes,
    eval::{PairScores, rank1},
    eval_folder::{FolderResult, embed_folder, list_photos},
    roc_plot::write_roc_png,
};
use serde_json::json;

struct Args {
    dir: PathBuf,
    out: PathBuf,
    threshold: f32,
    detector: DetectorKind,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut out = PathBuf::from("target/face-eval");
    let mut threshold = 0.5;
    let mut detector = DetectorKind::ShortRange;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = args.next().context("--out needs a directory")?.into(),
            "--threshold" => {
                threshold = args
                    .next()
                    .context("--threshold needs a number")?
                    .parse()
                    .context("--threshold must be a number")?
            }
            "--full-range" => detector = DetectorKind::FullRange,
            "-h" | "--help" => {
                println!("usage: face-eval DIR [--out DIR] [--threshold T] [--full-range]");
                std::process::exit(0);
            }
            other if dir.is_none() && !other.starts_with('-') => dir = Some(PathBuf::from(other)),
            other => bail!("unexpected argument `{other}` (see --help)"),
        }
    }
    Ok(Args {
        dir: dir.context("usage: face-eval DIR [--out DIR] [--threshold T] [--full-range]")?,
        out,
        threshold,
        detector,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `q` quantile (nearest rank) of `v`; NaN when empty.
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * q).round().max(0.0) as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let manifest = Manifest::embedded()?;
    let store = Store::from_env()?;
    let detector_model = match args.detector {
        DetectorKind::ShortRange => "blazeface-short-range",
        DetectorKind::FullRange => "blazeface-full-range",
    };
    let engine = Engine::load(
        &ModelPaths {
            runtime: store.verified(&manifest, "onnxruntime")?,
            detector: store.verified(&manifest, detector_model)?,
            embedder: store.verified(&manifest, "mobilefacenet")?,
            mesh: Some(store.verified(&manifest, "face-landmark")?),
            antispoof: Some(store.verified(&manifest, "face-antispoofing")?),
            iris: None,
        },
        EngineConfig {
            detector: args.detector,
            ..EngineConfig::default()
        },
    )?;
    let total = list_photos(&args.dir)
        .with_context(|| format!("reading {}", args.dir.display()))?
        .len();
    if total == 0 {
        bail!(
            "{}: no photos in per-person sub-folders",
            args.dir.display()
        );
    }
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(total as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let result = embed_folder(&engine, &args.dir, |label| {
        bar.set_message(label.to_owned());
        bar.inc(1);
    })
    .with_context(|| format!("reading {}", args.dir.display()))?;
    bar.finish_and_clear();
    let FolderResult {
        photos,
        people,
        samples,
        failures,
        timings,
        passive,
    } = result;
    let scores = PairScores::from_samples(&samples);
    let (eer, eer_t) = scores.eer();
    let (tar1, t1) = scores.tar_at_far(0.01);
    let (tar01, t01) = scores.tar_at_far(0.001);
    let (best_t, best_acc) = scores.best_threshold();
    let (correct, probes) = rank1(&samples);
    let stage =
        |f: fn(&StageTimes) -> Duration| median(timings.iter().map(|(_, t)| ms(f(t))).collect());
    let decode_ms = median(timings.iter().map(|(d, _)| ms(*d)).collect());

    println!(
        "face-eval over {}: {photos} photos of {people} people",
        args.dir.display()
    );
    let failed: Vec<String> = failures
        .iter()
        .map(|f| format!("{} {}", f.file, f.reason))
        .collect();
    println!(
        "  embedded            {} ({} not: {})",
        samples.len(),
        failures.len(),
        failed.join("; ")
    );
    println!(
        "  pairs               {} genuine, {} impostor",
        scores.genuine.len(),
        scores.impostor.len()
    );
    println!(
        "  at threshold {:.2}   TAR {:.2}%  FAR {:.2}%  balanced accuracy {:.2}%",
        args.threshold,
        scores.tar(args.threshold) * 100.0,
        scores.far(args.threshold) * 100.0,
        scores.balanced_accuracy(args.threshold) * 100.0
    );
    println!("  EER                 {:.2}% at {eer_t:.3}", eer * 100.0);
    println!(
        "  TAR @ FAR 1%        {:.2}% (threshold {t1:.3})",
        tar1 * 100.0
    );
    println!(
        "  TAR @ FAR 0.1%      {:.2}% (threshold {t01:.3})",
        tar01 * 100.0
    );
    println!(
        "  best threshold      {best_t:.3} (balanced accuracy {:.2}%)",
        best_acc * 100.0
    );
    println!(
        "  rank-1 (1 enrolled) {correct}/{probes} = {:.2}%",
        correct as f64 / probes.max(1) as f64 * 100.0
    );
    println!(
        "  median ms/photo     decode {decode_ms:.1}, detect {:.1}, align+quality {:.1}, embed {:.1}",
        stage(|t| t.detect),
        stage(|t| t.align_and_quality),
        stage(|t| t.embed)
    );
    let spoof: Vec<f64> = passive
        .iter()
        .map(|(_, p, _)| f64::from(p.spoof_score))
        .collect();
    let rejected: Vec<&str> = passive
        .iter()
        .filter(|(_, p, _)| p.is_attack())
        .map(|(label, _, _)| label.as_str())
        .collect();
    let passive_ms = median(passive.iter().map(|(_, _, d)| ms(*d)).collect());
    println!(
        "  passive liveness    spoof score median {:.3}, p90 {:.3}, max {:.3}; {} of {} live faces over {} ({:.1}% rejected{}); {passive_ms:.0} ms/face",
        quantile(&spoof, 0.5),
        quantile(&spoof, 0.9),
        quantile(&spoof, 1.0),
        rejected.len(),
        spoof.len(),
        rollcall_vision::antispoof::SPOOF_THRESHOLD,
        rejected.len() as f64 / spoof.len().max(1) as f64 * 100.0,
        if rejected.is_empty() {
            String::new()
        } else {
            format!(": {}", rejected.join(", "))
        },
    );

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let report = json!({
        "dir": args.dir.display().to_string(),
        "detector": detector_model,
        "photos": photos,
        "embedded": samples.len(),
        "failures": failures.iter().map(|f| json!({ "file": f.file, "reason": f.reason })).collect::<Vec<_>>(),
        "genuine_pairs": scores.genuine.len(),
        "impostor_pairs": scores.impostor.len(),
        "threshold": args.threshold,
        "tar": scores.tar(args.threshold),
        "far": scores.far(args.threshold),
        "balanced_accuracy": scores.balanced_accuracy(args.threshold),
        "eer": eer, "eer_threshold": eer_t,
        "tar_at_far_1pct": tar1, "tar_at_far_1pct_threshold": t1,
        "tar_at_far_0_1pct": tar01, "tar_at_far_0_1pct_threshold": t01,
        "best_threshold": best_t, "best_balanced_accuracy": best_acc,
        "rank1_correct": correct, "rank1_probes": probes,
        "median_ms": { "decode": decode_ms, "detect": stage(|t| t.detect), "align_and_quality": stage(|t| t.align_and_quality), "embed": stage(|t| t.embed) },
        "passive_liveness": {
            "threshold": rollcall_vision::antispoof::SPOOF_THRESHOLD,
            "bona_fide_rejected": rejected,
            "bpcer": rejected.len() as f64 / spoof.len().max(1) as f64,
            "median_ms": passive_ms,
            "faces": passive.iter().map(|(label, p, _)| json!({ "file": label, "spoof_score": p.spoof_score, "leaf": p.leaf, "liveness": p.liveness })).collect::<Vec<_>>(),
        },
        "roc": scores.roc().iter().map(|p| json!([p.threshold, p.far, p.tar])).collect::<Vec<_>>(),
    });
    let report_path = args.out.join("report.json");
    std::fs::write(&report_path, serde_json::to_string_pretty(&report)?)?;
    let plot_path = args.out.join("roc.png");
    write_roc_png(
        &scores,
        args.threshold,
        &format!(
            "face verification ROC: {} photos, {people} people",
            samples.len()
        ),
        &plot_path,
    )?;
    println!(
        "  wrote               {} and {}",
        report_path.display(),
        plot_path.display()
    );
    Ok(())
}
