//! The 468-point face mesh (MediaPipe face_landmark): head pose (yaw, pitch, roll) and eye
//! openness, for the pose quality gate and for active liveness (a blink or a head turn over a
//! burst of frames, which a still photo cannot produce).
//!
//! The model sees a square crop around the detected face, 1.5× its box, rotated so the eyes are
//! level (as MediaPipe prepares it), 192×192 RGB in [0, 1]. It returns 468 (x, y, z) points in
//! crop pixels (z on the same scale, towards the camera negative) and a face-presence logit.

use std::path::Path;

use parking_lot::Mutex;

use image::RgbImage;
use ort::{environment::Environment, session::Session, value::Tensor};

use crate::{
    Error,
    detect::{DetectedFace, Point},
    runtime::open_session,
};

const SIDE: usize = 192;
const POINTS: usize = 468;
const ROI_SCALE: f32 = 1.5;

// Mesh indices (MediaPipe canonical face mesh).
const FOREHEAD: usize = 10;
const CHIN: usize = 152;
const FACE_EDGE_A: usize = 234;
const FACE_EDGE_B: usize = 454;
const EYE_A_OUTER: usize = 33;
const EYE_A_INNER: usize = 133;
const EYE_A_UPPER: usize = 159;
const EYE_A_LOWER: usize = 145;
const EYE_B_INNER: usize = 362;
const EYE_B_OUTER: usize = 263;
const EYE_B_UPPER: usize = 386;
const EYE_B_LOWER: usize = 374;

/// Head pose in degrees: yaw (turn left/right), pitch (nod), roll (tilt), 0 facing the camera.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    pub yaw: f32,
    pub pitch: f32,
    pub roll: f32,
}

/// What the mesh says about one face.
#[derive(Debug, Clone, PartialEq)]
pub struct Mesh {
    /// 468 points in source-image pixels (z in the same units, relative).
    pub points: Vec<[f32; 3]>,
    /// Face presence, in [0, 1].
    pub presence: f32,
    pub pose: Pose,
    /// Eye aspect ratios (lid gap / eye width) of the image-left and image-right eye, about
    /// 0.2–0.35 open. From the mesh's own lid points these barely move when the eyes close
    /// (painted-shut eyes lose 7 %); an [`crate::Engine`] with the iris model replaces them with
    /// the [`crate::IrisModel`]'s, which do (the same eyes lose about half).
    pub eye_openness: [f32; 2],
}

/// The face-mesh model, loaded once.
pub struct MeshModel {
    session: Mutex<Session>,
}

/// The crop the mesh model sees: centre, side and rotation in source pixels.
#[derive(Debug, Clone, Copy)]
struct Roi {
    cx: f32,
    cy: f32,
    side: f32,
    /// Angle of the eye line in the source, radians.
    angle: f32,
}

impl Roi {
    fn of(face: &DetectedFace) -> Self {
        let b = face.bbox;
        let (a, c) = (face.keypoints[0], face.keypoints[1]);
        Self {
            cx: b.x + b.w / 2.0,
            cy: b.y + b.h / 2.0,
            side: b.w.max(b.h) * ROI_SCALE,
            angle: (c.y - a.y).atan2(c.x - a.x),
        }
    }

    /// Crop coordinates (pixels of the 192×192 input) → source pixels.
    fn to_source(self, u: f32, v: f32) -> Point {
        let (dx, dy) = (
            (u / SIDE as f32 - 0.5) * self.side,
            (v / SIDE as f32 - 0.5) * self.side,
        );
        crate::align::rotated(self.cx, self.cy, self.angle, dx, dy)
    }
}

impl MeshModel {
    pub fn load(env: &Environment, model: &Path, intra_threads: usize) -> Result<Self, Error> {
        Ok(Self {
            session: open_session(env, model, intra_threads)?,
        })
    }

    /// The mesh of a detected face in `image`. When the detector's eye keypoints were off (a
    /// tilted head), the crop is re-levelled with the mesh's own eye line and run once more, as
    /// MediaPipe does from one frame to the next.
    pub fn mesh(&self, image: &RgbImage, face: &DetectedFace) -> Result<Mesh, Error> {
        let roi = Roi::of(face);
        let (crop, logit) = self.run(image, roi)?;
        let tilt = eye_line(&crop);
        if tilt.abs() > REFINE_ABOVE.to_radians() {
            let refined = Roi {
                angle: roi.angle + tilt,
                ..roi
            };
            let (crop, logit) = self.run(image, refined)?;
            return Ok(Self::assemble(crop, logit, refined));
        }
        Ok(Self::assemble(crop, logit, roi))
    }

    fn assemble(crop: Vec<[f32; 3]>, logit: f32, roi: Roi) -> Mesh {
        let scale = roi.side / SIDE as f32;
        let points = crop
            .iter()
            .map(|[u, v, z]| {
                let p = roi.to_source(*u, *v);
                [p.x, p.y, z * scale]
            })
            .collect();
        Mesh {
            points,
            presence: 1.0 / (1.0 + (-logit).exp()),
            pose: pose(&crop, roi.angle),
            eye_openness: eye_openness(&crop),
        }
    }

    /// Runs the model on the crop `roi`: points in crop pixels, and the presence logit.
    fn run(&self, image: &RgbImage, roi: Roi) -> Result<(Vec<[f32; 3]>, f32), Error> {
        let input = crate::align::sample_nchw(image, SIDE, |u, v| roi.to_source(u, v));
        let fail = |e: ort::Error| Error::Inference {
            model: "face mesh",
            reason: e.to_string(),
        };
        let tensor = Tensor::from_array(input).map_err(fail)?;
        let mut session = self.session.lock();
        let outputs = session.run(ort::inputs![tensor]).map_err(fail)?;
        let mut coords = None;
        let mut logit = None;
        for (_, value) in outputs.iter() {
            let (_, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| Error::ModelOutput {
                    model: "face mesh",
                    reason: e.to_string(),
                })?;
            match data.len() {
                n if n == POINTS * 3 => coords = Some(data.to_vec()),
                1 => logit = Some(data[0]),
                n => {
                    return Err(Error::ModelOutput {
                        model: "face mesh",
                        reason: format!("unexpected output of {n} values"),
                    });
                }
            }
        }
        let (Some(coords), Some(logit)) = (coords, logit) else {
            return Err(Error::ModelOutput {
                model: "face mesh",
                reason: "expected landmarks and a presence score".into(),
            });
        };
        let crop: Vec<[f32; 3]> = coords.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
        Ok((crop, logit))
    }
}

/// Re-level the crop when the mesh's eye line is tilted by more than this (degrees).
const REFINE_ABOVE: f32 = 10.0;

/// Angle of the eye line in the crop, radians (0 = level).
fn eye_line(crop: &[[f32; 3]]) -> f32 {
    let (a, b) = (crop[EYE_A_OUTER], crop[EYE_B_OUTER]);
    (b[1] - a[1]).atan2(b[0] - a[0])
}

/// Pose measured in the crop's frame; roll adds the crop's own angle.
fn pose(crop: &[[f32; 3]], crop_angle: f32) -> Pose {
    let p = |i: usize| crop[i];
    let (a, b) = (p(FACE_EDGE_A), p(FACE_EDGE_B));
    let (top, bottom) = (p(FOREHEAD), p(CHIN));
    Pose {
        // Turning the head brings one side of the face towards the camera (smaller z).
        yaw: (b[2] - a[2]).atan2(b[0] - a[0]).to_degrees(),
        pitch: (bottom[2] - top[2]).atan2(bottom[1] - top[1]).to_degrees(),
        roll: (crop_angle + eye_line(crop)).to_degrees(),
    }
}

fn eye_openness(crop: &[[f32; 3]]) -> [f32; 2] {
    let d = |i: usize, j: usize| {
        let (a, b) = (crop[i], crop[j]);
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
    };
    let ratio = |upper, lower, inner, outer| {
        let width = d(inner, outer);
        if width > 0.0 {
            d(upper, lower) / width
        } else {
            0.0
        }
    };
    [
        ratio(EYE_A_UPPER, EYE_A_LOWER, EYE_A_INNER, EYE_A_OUTER),
        ratio(EYE_B_UPPER, EYE_B_LOWER, EYE_B_INNER, EYE_B_OUTER),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::BoxPx;

    #[test]
    fn roi_maps_the_crop_centre_to_the_face_centre_and_follows_rotation() {
        let face = DetectedFace {
            bbox: BoxPx {
                x: 100.0,
                y: 50.0,
                w: 80.0,
                h: 100.0,
            },
            score: 1.0,
            keypoints: [
                Point { x: 120.0, y: 80.0 },
                Point { x: 120.0, y: 120.0 }, // eyes stacked vertically: head rolled 90°
                Point { x: 0.0, y: 0.0 },
                Point { x: 0.0, y: 0.0 },
                Point { x: 0.0, y: 0.0 },
                Point { x: 0.0, y: 0.0 },
            ],
        };
        let roi = Roi::of(&face);
        assert_eq!(roi.side, 150.0);
        let c = roi.to_source(96.0, 96.0);
        assert!(
            (c.x - 140.0).abs() < 1e-3 && (c.y - 100.0).abs() < 1e-3,
            "{c:?}"
        );
        // Moving right in the crop moves down in the source.
        let r = roi.to_source(192.0, 96.0);
        assert!(
            (r.x - 140.0).abs() < 1e-3 && (r.y - 175.0).abs() < 1e-3,
            "{r:?}"
        );
    }

    #[test]
    fn pose_and_openness_from_synthetic_points() {
        let mut crop = vec![[0.0f32; 3]; POINTS];
        crop[FACE_EDGE_A] = [40.0, 96.0, 0.0];
        crop[FACE_EDGE_B] = [150.0, 96.0, -40.0]; // right side closer: turned
        crop[FOREHEAD] = [96.0, 30.0, 0.0];
        crop[CHIN] = [96.0, 170.0, 0.0];
        crop[EYE_A_OUTER] = [60.0, 80.0, 0.0];
        crop[EYE_B_OUTER] = [132.0, 80.0, 0.0];
        crop[EYE_A_INNER] = [80.0, 80.0, 0.0];
        crop[EYE_A_UPPER] = [70.0, 77.0, 0.0];
        crop[EYE_A_LOWER] = [70.0, 83.0, 0.0];
        crop[EYE_B_INNER] = [112.0, 80.0, 0.0];
        crop[EYE_B_UPPER] = [122.0, 79.0, 0.0];
        crop[EYE_B_LOWER] = [122.0, 81.0, 0.0];
        let p = pose(&crop, 0.0);
        assert!((p.yaw - (-40.0f32).atan2(110.0).to_degrees()).abs() < 1e-3);
        assert!(p.pitch.abs() < 1e-3 && p.roll.abs() < 1e-3, "{p:?}");
        let [a, b] = eye_openness(&crop);
        assert!((a - 0.3).abs() < 1e-5 && (b - 0.1).abs() < 1e-5, "{a} {b}");
    }
}
