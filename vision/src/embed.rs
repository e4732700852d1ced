//! Face embedding: an aligned 112×112 crop → a unit-length vector whose cosine similarity to
//! another person's is low and to the same person's is high.

use std::path::Path;

use parking_lot::Mutex;

use image::RgbImage;
use ndarray::Array4;
use ort::{environment::Environment, session::Session, value::Tensor};

use crate::{ALIGNED_SIZE, Error, runtime::open_session};

/// A unit-length face embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding(Vec<f32>);

impl Embedding {
    /// Normalises `values` to unit length; `None` for an empty or all-zero vector.
    pub fn from_raw(values: Vec<f32>) -> Option<Self> {
        let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        if values.is_empty() || !norm.is_finite() || norm <= f32::EPSILON {
            return None;
        }
        Some(Self(values.into_iter().map(|v| v / norm).collect()))
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// Cosine similarity in [-1, 1] (a dot product, both being unit length).
    pub fn cosine(&self, other: &Embedding) -> Result<f32, Error> {
        if self.0.len() != other.0.len() {
            return Err(Error::DimensionMismatch(self.0.len(), other.0.len()));
        }
        Ok(self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum())
    }
}

/// Turns aligned 112×112 face crops ([`crate::align_face`]) into unit-length embeddings, in
/// order. [`Embedder`] runs any ONNX model with an NCHW RGB input; another model, runtime or
/// device can stand in through [`crate::Engine::with_embedder`]. Embeddings of different
/// embedders never mix: whoever stores them keeps them under the embedder's name.
pub trait FaceEmbedder: Send + Sync {
    fn embed(&self, faces: &[RgbImage]) -> Result<Vec<Embedding>, Error>;
}

/// How an ONNX embedder wants its pixels: `(value − mean) × scale`, per RGB channel value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbedderInput {
    pub mean: f32,
    pub scale: f32,
}

impl Default for EmbedderInput {
    /// MobileFaceNet's: (x − 127.5) / 128.
    fn default() -> Self {
        Self {
            mean: 127.5,
            scale: 1.0 / 128.0,
        }
    }
}

/// An ONNX face embedder, MobileFaceNet (192-d) by default. With a dynamic batch (the fetched model is patched so), all faces of
/// a frame run as one batch, up to [`MAX_BATCH`]; a model with a fixed batch gets chunks of
/// that size, the last padded by repeating a face.
pub struct Embedder {
    session: Mutex<Session>,
    /// `Some(n)`: the model only takes batches of exactly `n`.
    fixed_batch: Option<usize>,
    input: EmbedderInput,
}

/// Most faces embedded in one run.
pub const MAX_BATCH: usize = 8;

impl Embedder {
    pub fn load(
        env: &Environment,
        model: &Path,
        intra_threads: usize,
        input: EmbedderInput,
    ) -> Result<Self, Error> {
        let session = open_session(env, model, intra_threads)?;
        let fixed_batch = {
            let s = session.lock();
            s.inputs()
                .first()
                .and_then(|i| i.dtype().tensor_shape())
                .and_then(|shape| shape.first().copied())
                .filter(|d| *d > 0)
                .map(|d| d as usize)
        };
        Ok(Self {
            session,
            fixed_batch,
            input,
        })
    }

    /// The batch size the model insists on, if any.
    pub fn fixed_batch(&self) -> Option<usize> {
        self.fixed_batch
    }

    /// Embeddings of aligned crops, in order.
    pub fn embed(&self, faces: &[RgbImage]) -> Result<Vec<Embedding>, Error> {
        let EmbedderInput { mean, scale } = self.input;
        let mut out = Vec::with_capacity(faces.len());
        let chunk = self.fixed_batch.unwrap_or(MAX_BATCH);
        for pair in faces.chunks(chunk) {
            let batch = self.fixed_batch.unwrap_or(pair.len());
            let side = ALIGNED_SIZE as usize;
            let mut input = Array4::<f32>::zeros((batch, 3, side, side));
            for slot in 0..batch {
                let face = &pair[slot.min(pair.len() - 1)];
                for (x, y, p) in face.enumerate_pixels() {
                    for c in 0..3 {
                        input[[slot, c, y as usize, x as usize]] = (p.0[c] as f32 - mean) * scale;
                    }
                }
            }
            let fail = |e: ort::Error| Error::Inference {
                model: "embedder",
                reason: e.to_string(),
            };
            let tensor = Tensor::from_array(input).map_err(fail)?;
            let mut session = self.session.lock();
            let outputs = session.run(ort::inputs![tensor]).map_err(fail)?;
            // A model without an output is a wrong model file, not a reason to panic.
            let (_, first) = outputs.iter().next().ok_or(Error::ModelOutput {
                model: "embedder",
                reason: "the model has no output".into(),
            })?;
            let (shape, data) =
                first
                    .try_extract_tensor::<f32>()
                    .map_err(|e| Error::ModelOutput {
                        model: "embedder",
                        reason: e.to_string(),
                    })?;
            let dim = shape.last().copied().unwrap_or(0) as usize;
            if dim == 0 || data.len() != batch * dim {
                return Err(Error::ModelOutput {
                    model: "embedder",
                    reason: format!("output shape {shape:?}"),
                });
            }
            for slot in 0..pair.len() {
                let raw = data[slot * dim..(slot + 1) * dim].to_vec();
                out.push(Embedding::from_raw(raw).ok_or(Error::ModelOutput {
                    model: "embedder",
                    reason: "zero or non-finite embedding".into(),
                })?);
            }
        }
        Ok(out)
    }
}

impl FaceEmbedder for Embedder {
    fn embed(&self, faces: &[RgbImage]) -> Result<Vec<Embedding>, Error> {
        Embedder::embed(self, faces)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_unit_length_and_cosine_is_symmetric() {
        let a = Embedding::from_raw(vec![3.0, 4.0]).expect("non-zero");
        let b = Embedding::from_raw(vec![4.0, 3.0]).expect("non-zero");
        assert!((a.as_slice()[0] - 0.6).abs() < 1e-6);
        let ab = a.cosine(&b).expect("same dim");
        assert!((ab - 0.96).abs() < 1e-6);
        assert_eq!(ab, b.cosine(&a).expect("same dim"));
        assert!(Embedding::from_raw(vec![0.0, 0.0]).is_none());
        assert!(Embedding::from_raw(vec![f32::NAN]).is_none());
        let c = Embedding::from_raw(vec![1.0, 0.0, 0.0]).expect("non-zero");
        assert!(matches!(a.cosine(&c), Err(Error::DimensionMismatch(2, 3))));
    }
}
