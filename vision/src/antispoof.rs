//! Passive liveness: one frame, no cooperation asked. The FaceAntiSpoofing model (a Deep Tree
//! Network, Liu et al., CVPR 2019) routes the face crop down a binary tree of learnt
//! projections to one of eight leaves, each with its own spoof classifier; the spoof score is
//! the routed leaf's |score| (upstream: above 0.2 is an attack). The model is converted by
//! rollcall's own TFLite → ONNX converter (see `models/manifest.toml`).
//!
//! The score is mapped to a liveness in [0, 1] for the fraud rules: `1 − spoof / (2 × 0.2)`,
//! clamped, so the upstream attack threshold lands on 0.5, the fraud policy's default
//! `min_liveness`.

use std::path::Path;

use parking_lot::Mutex;

use image::RgbImage;
use ndarray::Array4;
use ort::{environment::Environment, session::Session, value::Tensor};

use crate::{DetectedFace, Error, runtime::open_session};

/// The model's input side, pixels.
pub const SPOOF_INPUT: usize = 256;
/// The upstream attack threshold on the spoof score.
pub const SPOOF_THRESHOLD: f32 = 0.2;
/// The crop around the face: its box made square and widened by this factor, so the model sees
/// the face's edges and a little background (where a print's or screen's border shows).
const CROP_SCALE: f32 = 1.2;
/// Leaves of the model's tree.
pub const LEAVES: usize = 8;

/// What the passive check measured on one face.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassiveLiveness {
    /// The routed leaf's |score|: 0 live, higher more like an attack.
    pub spoof_score: f32,
    /// Which of the eight leaves the tree routed the face to.
    pub leaf: usize,
    /// In [0, 1]; 0.5 at the upstream attack threshold.
    pub liveness: f32,
    /// Every leaf's score, as the model gave them (for explanations and known-answer tests).
    pub leaf_scores: [f32; LEAVES],
}

impl PassiveLiveness {
    /// From the model's two outputs: the leaves' scores and the one-hot routing mask.
    pub fn from_outputs(scores: &[f32], mask: &[f32]) -> Result<Self, Error> {
        if scores.len() != LEAVES || mask.len() != LEAVES {
            return Err(Error::ModelOutput {
                model: "anti-spoofing",
                reason: format!(
                    "{} scores and {} mask values, not {LEAVES} each",
                    scores.len(),
                    mask.len()
                ),
            });
        }
        let spoof_score: f32 = scores.iter().zip(mask).map(|(s, m)| s.abs() * m).sum();
        if !spoof_score.is_finite() {
            return Err(Error::ModelOutput {
                model: "anti-spoofing",
                reason: "non-finite score".into(),
            });
        }
        let leaf = mask
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let mut leaf_scores = [0.0; LEAVES];
        leaf_scores.copy_from_slice(scores);
        Ok(Self {
            spoof_score,
            leaf,
            liveness: liveness_of(spoof_score),
            leaf_scores,
        })
    }

    /// Whether the upstream threshold calls it an attack.
    pub fn is_attack(&self) -> bool {
        self.spoof_score > SPOOF_THRESHOLD
    }
}

/// `1 − spoof / (2 × threshold)`, clamped to [0, 1].
pub fn liveness_of(spoof_score: f32) -> f32 {
    (1.0 - spoof_score / (2.0 * SPOOF_THRESHOLD)).clamp(0.0, 1.0)
}

/// The anti-spoofing model, loaded once.
pub struct SpoofDetector {
    session: Mutex<Session>,
}

impl SpoofDetector {
    pub fn load(env: &Environment, model: &Path, intra_threads: usize) -> Result<Self, Error> {
        Ok(Self {
            session: open_session(env, model, intra_threads)?,
        })
    }

    /// The passive liveness of one detected face.
    pub fn check(&self, image: &RgbImage, face: &DetectedFace) -> Result<PassiveLiveness, Error> {
        let fail = |e: ort::Error| Error::Inference {
            model: "anti-spoofing",
            reason: e.to_string(),
        };
        let tensor = Tensor::from_array(crop_input(image, face)).map_err(fail)?;
        let mut session = self.session.lock();
        let outputs = session.run(ort::inputs![tensor]).map_err(fail)?;
        let output = |name: &str| -> Result<Vec<f32>, Error> {
            let value = outputs.get(name).ok_or_else(|| Error::ModelOutput {
                model: "anti-spoofing",
                reason: format!("no output `{name}`"),
            })?;
            let (_, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| Error::ModelOutput {
                    model: "anti-spoofing",
                    reason: e.to_string(),
                })?;
            Ok(data.to_vec())
        };
        PassiveLiveness::from_outputs(&output("Identity")?, &output("Identity_1")?)
    }
}

/// The model's input: the square crop around the face, bilinearly resampled to 256×256,
/// NHWC, RGB in [0, 1]. Pixels outside the frame repeat its edge.
pub fn crop_input(image: &RgbImage, face: &DetectedFace) -> Array4<f32> {
    let b = &face.bbox;
    let side = b.w.max(b.h).max(1.0) * CROP_SCALE;
    let (cx, cy) = (b.x + b.w / 2.0, b.y + b.h / 2.0);
    let (x0, y0) = (cx - side / 2.0, cy - side / 2.0);
    let step = side / SPOOF_INPUT as f32;
    let (w, h) = (image.width().max(1) as i64, image.height().max(1) as i64);
    let mut input = Array4::<f32>::zeros((1, SPOOF_INPUT, SPOOF_INPUT, 3));
    if image.width() == 0 || image.height() == 0 {
        return input;
    }
    let px = |x: i64, y: i64| {
        image
            .get_pixel(x.clamp(0, w - 1) as u32, y.clamp(0, h - 1) as u32)
            .0
    };
    for row in 0..SPOOF_INPUT {
        // Sample at the centre of each output pixel.
        let sy = y0 + (row as f32 + 0.5) * step - 0.5;
        let (iy, fy) = (sy.floor() as i64, sy - sy.floor());
        for col in 0..SPOOF_INPUT {
            let sx = x0 + (col as f32 + 0.5) * step - 0.5;
            let (ix, fx) = (sx.floor() as i64, sx - sx.floor());
            let (a, b, c, d) = (
                px(ix, iy),
                px(ix + 1, iy),
                px(ix, iy + 1),
                px(ix + 1, iy + 1),
            );
            for ch in 0..3 {
                let top = a[ch] as f32 * (1.0 - fx) + b[ch] as f32 * fx;
                let bottom = c[ch] as f32 * (1.0 - fx) + d[ch] as f32 * fx;
                input[[0, row, col, ch]] = (top * (1.0 - fy) + bottom * fy) / 255.0;
            }
        }
    }
    input
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BoxPx, Point};

    fn face(x: f32, y: f32, w: f32, h: f32) -> DetectedFace {
        DetectedFace {
            bbox: BoxPx { x, y, w, h },
            score: 0.9,
            keypoints: [Point { x: 0.0, y: 0.0 }; 6],
        }
    }

    #[test]
    fn the_routed_leaf_gives_the_score_and_the_threshold_maps_to_one_half() {
        let scores = [0.9, -0.4, 0.1, 0.05, 0.7, 0.2, 0.3, 0.8];
        let mut mask = [0.0; 8];
        mask[1] = 1.0;
        let p = PassiveLiveness::from_outputs(&scores, &mask).expect("eight each");
        assert_eq!(p.leaf, 1);
        assert!((p.spoof_score - 0.4).abs() < 1e-6, "|−0.4| is the score");
        assert!(p.is_attack());
        assert_eq!(p.liveness, 0.0);
        mask = [0.0; 8];
        mask[3] = 1.0;
        let p = PassiveLiveness::from_outputs(&scores, &mask).expect("eight each");
        assert!(!p.is_attack());
        assert!((p.liveness - 0.875).abs() < 1e-6);
        assert!((liveness_of(SPOOF_THRESHOLD) - 0.5).abs() < 1e-6);
        assert_eq!(liveness_of(0.0), 1.0);
        assert!(PassiveLiveness::from_outputs(&scores[..7], &mask).is_err());
        assert!(PassiveLiveness::from_outputs(&[f32::NAN; 8], &mask).is_err());
    }

    #[test]
    fn the_crop_is_the_widened_square_box_in_rgb_over_255() {
        // Left half red, right half blue; a face box centred on the boundary.
        let image = RgbImage::from_fn(400, 300, |x, _| {
            if x < 200 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let input = crop_input(&image, &face(150.0, 100.0, 100.0, 80.0));
        assert_eq!(input.shape(), &[1, SPOOF_INPUT, SPOOF_INPUT, 3]);
        assert_eq!(input[[0, 128, 10, 0]], 1.0, "left of the centre is red");
        assert_eq!(input[[0, 128, 10, 2]], 0.0);
        assert_eq!(input[[0, 128, 245, 2]], 1.0, "right of it is blue");
        // The crop spans 120 px (two output pixels per source pixel): the colour changes only
        // where the source's boundary falls, mid-row.
        let changes: Vec<usize> = (1..SPOOF_INPUT)
            .filter(|&c| input[[0, 0, c, 0]] != input[[0, 0, c - 1, 0]])
            .collect();
        assert!(
            !changes.is_empty() && changes.iter().all(|c| (125..=131).contains(c)),
            "{changes:?}"
        );
        // A box past the frame's corner repeats the edge instead of reading out of bounds.
        let input = crop_input(&image, &face(380.0, 280.0, 60.0, 60.0));
        assert_eq!(input[[0, 255, 255, 2]], 1.0);
        let empty = crop_input(&RgbImage::new(0, 0), &face(0.0, 0.0, 10.0, 10.0));
        assert!(empty.iter().all(|v| *v == 0.0));
    }
}
