//! Finds the verified runtime library and models in the model store and loads the engine.

use rollcall_models::{Manifest, Store};
use rollcall_vision::{DetectorKind, Engine, EngineConfig, ModelPaths};

use crate::config::{DetectorChoice, NodeConfig};

/// The manifest's embedder, and the name its templates are stored under (`vision.embedder`
/// names another model's: embeddings of different models never mix).
pub const DEFAULT_EMBEDDER: &str = "mobilefacenet";
/// The passive liveness model (`vision.passive_liveness`).
pub const ANTISPOOF_MODEL: &str = "face-antispoofing";

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Models(#[from] rollcall_models::Error),
    #[error(transparent)]
    Vision(#[from] rollcall_vision::Error),
}

pub fn model_store(config: &NodeConfig) -> Result<Store, rollcall_models::Error> {
    match &config.vision.models_dir {
        Some(dir) => Ok(Store::new(dir)),
        None => Store::from_env(),
    }
}

/// The detector artefact the config selects.
pub fn detector_model(config: &NodeConfig) -> &'static str {
    match config.vision.detector {
        DetectorChoice::ShortRange => "blazeface-short-range",
        DetectorChoice::FullRange => "blazeface-full-range",
    }
}

/// Verifies (sha256 or conversion stamp) and loads the face engine.
pub fn load_engine(config: &NodeConfig) -> Result<Engine, SetupError> {
    let manifest = Manifest::embedded()?;
    let store = model_store(config)?;
    let detector = match config.vision.detector {
        DetectorChoice::ShortRange => (detector_model(config), DetectorKind::ShortRange),
        DetectorChoice::FullRange => (detector_model(config), DetectorKind::FullRange),
    };
    let paths = ModelPaths {
        runtime: store.verified(&manifest, "onnxruntime")?,
        detector: store.verified(&manifest, detector.0)?,
        embedder: match &config.vision.embedder_file {
            Some(file) => file.clone(),
            None => store.verified(&manifest, DEFAULT_EMBEDDER)?,
        },
        mesh: Some(store.verified(&manifest, "face-landmark")?),
        antispoof: config
            .vision
            .passive_liveness
            .then(|| store.verified(&manifest, ANTISPOOF_MODEL))
            .transpose()?,
        // Eye openness only matters for blink challenges, which the kiosk does not run.
        iris: None,
    };
    let engine_config = EngineConfig {
        detector: detector.1,
        intra_threads: config.vision.intra_threads,
        embedder_input: rollcall_vision::EmbedderInput {
            mean: config.vision.embedder_mean,
            scale: config.vision.embedder_scale,
        },
        ..EngineConfig::default()
    };
    Ok(Engine::load(&paths, engine_config)?)
}
