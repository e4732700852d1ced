use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot load ONNX Runtime from {}: {reason} (run `cargo xtask fetch`)",
        path.display()
    )]
    Runtime { path: PathBuf, reason: String },

    #[error("ONNX Runtime is already loaded from {}, not {}", loaded.display(), wanted.display())]
    RuntimeMismatch { loaded: PathBuf, wanted: PathBuf },

    #[error("cannot load model {}: {reason} (run `cargo xtask fetch`)", path.display())]
    Model { path: PathBuf, reason: String },

    #[error("model {model}: unexpected output: {reason}")]
    ModelOutput { model: &'static str, reason: String },

    #[error("inference failed in {model}: {reason}")]
    Inference { model: &'static str, reason: String },

    #[error("image is {bytes} bytes, over the limit of {limit}")]
    ImageTooLarge { bytes: usize, limit: usize },

    #[error("image is {width} × {height} pixels, over the limit of {limit} pixels")]
    TooManyPixels { width: u32, height: u32, limit: u64 },

    #[error("image is not a JPEG or PNG this node can decode: {0}")]
    ImageDecode(String),

    #[error("invalid settings: {0}")]
    Settings(String),

    #[error("embeddings of different lengths: {0} and {1}")]
    DimensionMismatch(usize, usize),
}
