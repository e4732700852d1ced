//! Accuracy regression gate on the labelled photos of `shared/data/faces/` (present in
//! development and CI; `ROLLCALL_FACES_DIR` points elsewhere): at the default match threshold
//! (0.5, the node's `vision.match_threshold`) balanced verification accuracy must stay ≥ 98%
//! and rank-1 identification with one enrolled photo per person ≥ 95%; no photo may fail.

use std::path::PathBuf;

use rollcall_models::{Manifest, Store};
use rollcall_vision::{
    Engine, EngineConfig, ModelPaths,
    eval::{PairScores, rank1},
    eval_folder::embed_folder,
};

const DEFAULT_THRESHOLD: f32 = 0.5;

fn faces_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("ROLLCALL_FACES_DIR") {
        return Some(d.into());
    }
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/faces");
    d.exists().then_some(d)
}

#[test]
fn verification_and_identification_accuracy_hold() {
    let Some(dir) = faces_dir() else {
        // Users' machines have no shared/ folder; CI always has one.
        assert!(
            std::env::var_os("CI").is_none(),
            "shared/data/faces is missing in CI"
        );
        eprintln!("skipped: no shared/data/faces (set ROLLCALL_FACES_DIR)");
        return;
    };
    let manifest = Manifest::embedded().expect("manifest");
    let store = Store::from_env().expect("store");
    let path = |n: &str| {
        store
            .verified(&manifest, n)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let engine = Engine::load(
        &ModelPaths {
            runtime: path("onnxruntime"),
            detector: path("blazeface-short-range"),
            embedder: path("mobilefacenet"),
            mesh: Some(path("face-landmark")),
            antispoof: None,
            iris: None,
        },
        EngineConfig::default(),
    )
    .expect("engine");
    let result = embed_folder(&engine, &dir, |_| {}).expect("read the folder");
    assert!(
        result.photos >= 40 && result.people >= 9,
        "{} photos of {} people",
        result.photos,
        result.people
    );
    assert!(
        result.failures.is_empty(),
        "photos without an embedding: {:?}",
        result.failures
    );

    let scores = PairScores::from_samples(&result.samples);
    let accuracy = scores.balanced_accuracy(DEFAULT_THRESHOLD);
    let (correct, probes) = rank1(&result.samples);
    let rank1_rate = correct as f64 / probes as f64;
    eprintln!(
        "TAR {:.2}%, FAR {:.2}%, balanced accuracy {:.2}%, rank-1 {correct}/{probes}",
        scores.tar(DEFAULT_THRESHOLD) * 100.0,
        scores.far(DEFAULT_THRESHOLD) * 100.0,
        accuracy * 100.0
    );
    assert!(
        accuracy >= 0.98,
        "balanced accuracy {accuracy:.4} < 0.98 at threshold {DEFAULT_THRESHOLD}"
    );
    assert!(rank1_rate >= 0.95, "rank-1 {rank1_rate:.4} < 0.95");
}
