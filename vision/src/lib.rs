//! The face pipeline of a rollcall kiosk: decode → detect → quality → align → embed → match.
//!
//! Architecture invariant: this crate does no I/O besides loading model files and the ONNX
//! Runtime library by the paths it is given (and, with the `eval` feature, reading a labelled
//! photo folder for the `face-eval` tool). It knows nothing of people, SQL or HTTP: input is
//! image bytes or a decoded RGB image, output is faces with boxes, keypoints, quality verdicts
//! and unit-length embeddings, and a [`Gallery`] that answers 1:N top-k by cosine similarity.
//!
//! ONNX sessions are created once, reused and safe to share between threads ([`Engine`] is
//! `Send + Sync`).

mod align;
mod ann;
pub mod antispoof;
mod decode;
mod detect;
mod embed;
mod engine;
mod error;
pub mod eval;
#[cfg(feature = "eval")]
pub mod eval_folder;
mod gallery;
mod iris;
mod landmarks;
pub mod liveness;
mod quality;
mod quantized;
#[cfg(feature = "eval")]
pub mod roc_plot;
mod runtime;

pub use align::{ALIGNED_SIZE, align_face};
pub use ann::AnnParams;
pub use antispoof::{PassiveLiveness, SpoofDetector};
pub use decode::{DecodeGate, DecodeLimits, decode_image};
pub use detect::{BoxPx, DetectedFace, Detector, DetectorKind, Point};
pub use embed::{Embedder, EmbedderInput, Embedding, FaceEmbedder};
pub use engine::{AnalyzedFace, Engine, EngineConfig, ModelPaths, StageTimes};
pub use error::Error;
pub use gallery::{Gallery, Identification, Match, Search, Strategy};
/// The decoded frame type the engine takes.
pub use image::RgbImage;
pub use iris::IrisModel;
pub use landmarks::{Mesh, MeshModel, Pose};
pub use quality::{Quality, QualityIssue, QualityPolicy};
pub use runtime::init_runtime;
