//! The whole face path on arbitrary bytes: decode, detect, mesh, align, quality, embed with the
//! real models (from `cargo xtask fetch`) — an image and its faces, or an error, never a panic.
//! Slower than the parser targets (each input runs the networks): a few dozen inputs a second.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rollcall_models::{Manifest, Store};
use rollcall_vision::{DecodeLimits, DetectorKind, Engine, EngineConfig, ModelPaths};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let manifest = Manifest::embedded().expect("the embedded model manifest");
        let store = Store::from_env().expect("the model store (run `cargo xtask fetch`)");
        let path = |name: &str| {
            store
                .verified(&manifest, name)
                .unwrap_or_else(|e| panic!("{name}: {e} (run `cargo xtask fetch`)"))
        };
        Engine::load(
            &ModelPaths {
                runtime: path("onnxruntime"),
                detector: path("blazeface-short-range"),
                embedder: path("mobilefacenet"),
                mesh: Some(path("face-landmark")),
                antispoof: None,
                iris: None,
            },
            EngineConfig {
                detector: DetectorKind::ShortRange,
                decode: DecodeLimits {
                    max_width: 1024,
                    max_height: 1024,
                    max_alloc: 32 * 1024 * 1024,
                    ..DecodeLimits::default()
                },
                ..EngineConfig::default()
            },
        )
        .expect("the face engine loads")
    })
}

fuzz_target!(|data: &[u8]| {
    let engine = engine();
    if let Ok(image) = engine.decode(data) {
        let _ = engine.analyze(&image);
    }
});
