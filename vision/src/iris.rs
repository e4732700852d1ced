//! Eye openness that follows the eyelids, for blinks: the MediaPipe iris-landmark model run on
//! each eye. The 468-point mesh places its eyelid points from the face's overall shape — a
//! closed eye still reads open — while this model looks at the eye itself.
//!
//! As MediaPipe prepares it: a square crop centred between the eye's corners (mesh points 33/133
//! and 362/263), 2.3× their distance, levelled along the corner line, 64×64 RGB in [0, 1], the
//! second eye mirrored (the model knows one eye). Out come 71 eye-contour points — the lower lid
//! corner to corner first (9 points), then the upper lid between the corners (7) — and 5 iris
//! points, in crop pixels.

use std::path::Path;

use parking_lot::Mutex;

use image::RgbImage;
use ort::{environment::Environment, session::Session, value::Tensor};

use crate::{Error, detect::Point, runtime::open_session};

const SIDE: usize = 64;
const ROI_SCALE: f32 = 2.3;
const CONTOUR_POINTS: usize = 71;
/// Mesh indices of each eye's corners, in the order the model expects them.
const CORNERS: [(usize, usize); 2] = [(33, 133), (362, 263)];
/// Contour indices: the two corners, and lower/upper lid pairs across the middle of the eye.
const CORNER_A: usize = 0;
const CORNER_B: usize = 8;
const LID_PAIRS: [(usize, usize); 3] = [(3, 11), (4, 12), (5, 13)];

/// The iris-landmark model, loaded once.
pub struct IrisModel {
    session: Mutex<Session>,
}

impl IrisModel {
    pub fn load(env: &Environment, model: &Path, intra_threads: usize) -> Result<Self, Error> {
        Ok(Self {
            session: open_session(env, model, intra_threads)?,
        })
    }

    /// Eye aspect ratios (mean lid gap across the middle / corner distance) of the image-left
    /// and image-right eye, from a face's mesh points in source pixels: about 0.25–0.4 open,
    /// near 0.1 closed.
    pub fn eye_openness(&self, image: &RgbImage, mesh: &[[f32; 3]]) -> Result<[f32; 2], Error> {
        let mut out = [0.0; 2];
        for (eye, (a, b)) in CORNERS.into_iter().enumerate() {
            let (Some(a), Some(b)) = (mesh.get(a), mesh.get(b)) else {
                return Err(Error::ModelOutput {
                    model: "iris",
                    reason: format!("a mesh of {} points, not 468", mesh.len()),
                });
            };
            let contour = self.run(image, EyeRoi::between(a, b, eye == 1))?;
            out[eye] = openness(&contour);
        }
        Ok(out)
    }

    fn run(&self, image: &RgbImage, roi: EyeRoi) -> Result<Vec<[f32; 2]>, Error> {
        let input = crate::align::sample_nchw(image, SIDE, |u, v| roi.to_source(u, v));
        let fail = |e: ort::Error| Error::Inference {
            model: "iris",
            reason: e.to_string(),
        };
        let tensor = Tensor::from_array(input).map_err(fail)?;
        let mut session = self.session.lock();
        let outputs = session.run(ort::inputs![tensor]).map_err(fail)?;
        for (_, value) in outputs.iter() {
            let (_, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| Error::ModelOutput {
                    model: "iris",
                    reason: e.to_string(),
                })?;
            if data.len() == CONTOUR_POINTS * 3 {
                return Ok(data.chunks_exact(3).map(|c| [c[0], c[1]]).collect());
            }
        }
        Err(Error::ModelOutput {
            model: "iris",
            reason: format!("no output of {CONTOUR_POINTS} (x, y, z) points"),
        })
    }
}

/// Lid gap over eye width, in the crop (ratios do not care about its scale or mirroring).
fn openness(contour: &[[f32; 2]]) -> f32 {
    let d = |i: usize, j: usize| {
        let (a, b) = (contour[i], contour[j]);
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
    };
    let width = d(CORNER_A, CORNER_B);
    if width <= 0.0 {
        return 0.0;
    }
    LID_PAIRS.iter().map(|&(l, u)| d(l, u)).sum::<f32>() / LID_PAIRS.len() as f32 / width
}

/// The crop around one eye: centre, side and angle in source pixels; `mirror` flips it.
#[derive(Debug, Clone, Copy)]
struct EyeRoi {
    cx: f32,
    cy: f32,
    side: f32,
    angle: f32,
    mirror: bool,
}

impl EyeRoi {
    fn between(a: &[f32; 3], b: &[f32; 3], mirror: bool) -> Self {
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        Self {
            cx: (a[0] + b[0]) / 2.0,
            cy: (a[1] + b[1]) / 2.0,
            side: (dx * dx + dy * dy).sqrt().max(1.0) * ROI_SCALE,
            angle: dy.atan2(dx),
            mirror,
        }
    }

    /// Crop pixels → source pixels.
    fn to_source(self, u: f32, v: f32) -> Point {
        let u = if self.mirror { SIDE as f32 - u } else { u };
        let (dx, dy) = (
            (u / SIDE as f32 - 0.5) * self.side,
            (v / SIDE as f32 - 0.5) * self.side,
        );
        crate::align::rotated(self.cx, self.cy, self.angle, dx, dy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eye_crop_is_centred_levelled_and_mirrored_on_request() {
        // Corners 20 px apart along a 90° line (eye standing upright in the image).
        let roi = EyeRoi::between(&[100.0, 50.0, 0.0], &[100.0, 70.0, 0.0], false);
        let centre = roi.to_source(32.0, 32.0);
        assert!((centre.x - 100.0).abs() < 1e-4 && (centre.y - 60.0).abs() < 1e-4);
        assert!((roi.side - 46.0).abs() < 1e-4);
        // Moving right in the crop walks from corner a towards corner b.
        let right = roi.to_source(64.0, 32.0);
        assert!(
            (right.x - 100.0).abs() < 1e-3 && (right.y - 83.0).abs() < 1e-3,
            "{right:?}"
        );
        let mirrored = EyeRoi {
            mirror: true,
            ..roi
        }
        .to_source(64.0, 32.0);
        assert!((mirrored.y - 37.0).abs() < 1e-3, "{mirrored:?}");
    }

    #[test]
    fn openness_is_the_mean_lid_gap_over_the_width() {
        let mut contour = vec![[0.0f32; 2]; CONTOUR_POINTS];
        contour[CORNER_A] = [10.0, 32.0];
        contour[CORNER_B] = [50.0, 32.0];
        for (l, u) in LID_PAIRS {
            contour[l] = [30.0, 38.0];
            contour[u] = [30.0, 26.0];
        }
        assert!((openness(&contour) - 0.3).abs() < 1e-6);
        for (l, u) in LID_PAIRS {
            contour[l] = [30.0, 33.0];
            contour[u] = [30.0, 31.0];
        }
        assert!((openness(&contour) - 0.05).abs() < 1e-6);
        assert_eq!(openness(&vec![[0.0; 2]; CONTOUR_POINTS]), 0.0);
    }
}
