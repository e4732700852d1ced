//! BlazeFace (MediaPipe) face detection: letterbox to the model's square input, run, decode the
//! SSD anchors, then weighted non-maximum suppression as MediaPipe does it (overlapping boxes are
//! averaged by score instead of dropped, which steadies boxes and keypoints).

use std::path::Path;

use parking_lot::Mutex;

use image::{RgbImage, imageops};
use ndarray::Array4;
use ort::{environment::Environment, session::Session, value::Tensor};

use crate::{Error, runtime::open_session};

/// A point in source-image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

/// An axis-aligned box in source-image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxPx {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl BoxPx {
    fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    fn iou(&self, other: &BoxPx) -> f32 {
        let x0 = self.x.max(other.x);
        let y0 = self.y.max(other.y);
        let x1 = (self.x + self.w).min(other.x + other.w);
        let y1 = (self.y + self.h).min(other.y + other.h);
        let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }
}

/// One detected face. Keypoints, in BlazeFace order: the subject's right eye, left eye, nose
/// tip, mouth centre, right ear tragion, left ear tragion.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectedFace {
    pub bbox: BoxPx,
    pub score: f32,
    pub keypoints: [Point; 6],
}

/// Which BlazeFace model: short range (faces within ~2 m, 128 px input) or full range (up to
/// ~5 m, 192 px input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectorKind {
    ShortRange,
    FullRange,
}

struct AnchorSpec {
    input: usize,
    /// (grid size, anchors per cell) per feature map, in the model's output order.
    layers: &'static [(usize, usize)],
    default_min_score: f32,
}

impl DetectorKind {
    fn spec(self) -> AnchorSpec {
        match self {
            // strides 8, 16, 16, 16: a 16×16 map with 2 anchors and the three 8×8 maps merged
            // into one with 6 anchors per cell: 512 + 384 = 896.
            DetectorKind::ShortRange => AnchorSpec {
                input: 128,
                layers: &[(16, 2), (8, 6)],
                default_min_score: 0.5,
            },
            // one stride-4 map: 48×48 cells, one anchor each: 2304.
            DetectorKind::FullRange => AnchorSpec {
                input: 192,
                layers: &[(48, 1)],
                default_min_score: 0.6,
            },
        }
    }
}

/// Anchor centres in [0, 1] (fixed anchor size 1, so only centres matter).
fn anchors(spec: &AnchorSpec) -> Vec<(f32, f32)> {
    let mut out = Vec::new();
    for &(grid, per_cell) in spec.layers {
        for y in 0..grid {
            for x in 0..grid {
                let c = (
                    (x as f32 + 0.5) / grid as f32,
                    (y as f32 + 0.5) / grid as f32,
                );
                out.extend(std::iter::repeat_n(c, per_cell));
            }
        }
    }
    out
}

/// A BlazeFace detector: one ONNX session, reused.
pub struct Detector {
    session: Mutex<Session>,
    kind: DetectorKind,
    anchors: Vec<(f32, f32)>,
    min_score: f32,
    nms_iou: f32,
}

/// How the source image was fitted into the model's square input.
struct Letterbox {
    scale: f32,
    pad_x: f32,
    pad_y: f32,
    side: f32,
}

impl Letterbox {
    fn to_source(&self, x: f32, y: f32) -> Point {
        Point {
            x: (x * self.side - self.pad_x) / self.scale,
            y: (y * self.side - self.pad_y) / self.scale,
        }
    }
}

impl Detector {
    pub fn load(
        env: &Environment,
        model: &Path,
        kind: DetectorKind,
        intra_threads: usize,
    ) -> Result<Self, Error> {
        let spec = kind.spec();
        Ok(Self {
            session: open_session(env, model, intra_threads)?,
            kind,
            anchors: anchors(&spec),
            min_score: spec.default_min_score,
            nms_iou: 0.3,
        })
    }

    pub fn kind(&self) -> DetectorKind {
        self.kind
    }

    /// Faces in `image`, highest score first.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<DetectedFace>, Error> {
        let side = self.kind.spec().input;
        let (input, letterbox) = letterbox(image, side);
        let tensor = Tensor::from_array(input).map_err(|e| Error::Inference {
            model: "detector",
            reason: e.to_string(),
        })?;
        let mut session = self.session.lock();
        let outputs = session
            .run(ort::inputs![tensor])
            .map_err(|e| Error::Inference {
                model: "detector",
                reason: e.to_string(),
            })?;
        let mut regressors = None;
        let mut scores = None;
        for (_, value) in outputs.iter() {
            let (shape, data) =
                value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| Error::ModelOutput {
                        model: "detector",
                        reason: e.to_string(),
                    })?;
            match shape.last() {
                Some(16) => regressors = Some(data.to_vec()),
                Some(1) => scores = Some(data.to_vec()),
                other => {
                    return Err(Error::ModelOutput {
                        model: "detector",
                        reason: format!("output with last dimension {other:?}"),
                    });
                }
            }
        }
        let (Some(regressors), Some(scores)) = (regressors, scores) else {
            return Err(Error::ModelOutput {
                model: "detector",
                reason: "expected a regressor and a score output".into(),
            });
        };
        if scores.len() != self.anchors.len() || regressors.len() != self.anchors.len() * 16 {
            return Err(Error::ModelOutput {
                model: "detector",
                reason: format!("{} scores for {} anchors", scores.len(), self.anchors.len()),
            });
        }
        let raw = decode(
            &self.anchors,
            &regressors,
            &scores,
            side as f32,
            self.min_score,
            &letterbox,
        );
        Ok(weighted_nms(raw, self.nms_iou))
    }
}

/// Resizes `image` to fit a `side`×`side` square, centred, padded with black, as NCHW floats in
/// [-1, 1].
fn letterbox(image: &RgbImage, side: usize) -> (Array4<f32>, Letterbox) {
    let (w, h) = image.dimensions();
    let scale = side as f32 / w.max(h).max(1) as f32;
    let nw = ((w as f32 * scale).round() as u32).clamp(1, side as u32);
    let nh = ((h as f32 * scale).round() as u32).clamp(1, side as u32);
    let resized = imageops::resize(image, nw, nh, imageops::FilterType::Triangle);
    let pad_x = (side as u32 - nw) / 2;
    let pad_y = (side as u32 - nh) / 2;
    let mut input = Array4::<f32>::from_elem((1, 3, side, side), -1.0);
    for (x, y, p) in resized.enumerate_pixels() {
        let (px, py) = ((x + pad_x) as usize, (y + pad_y) as usize);
        for c in 0..3 {
            input[[0, c, py, px]] = p.0[c] as f32 / 127.5 - 1.0;
        }
    }
    (
        input,
        Letterbox {
            scale,
            pad_x: pad_x as f32,
            pad_y: pad_y as f32,
            side: side as f32,
        },
    )
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x.clamp(-100.0, 100.0)).exp())
}

/// Turns raw regressors (per anchor: centre offset, size, 6 keypoints, in input pixels) into
/// source-image faces above `min_score`.
fn decode(
    anchors: &[(f32, f32)],
    regressors: &[f32],
    scores: &[f32],
    side: f32,
    min_score: f32,
    lb: &Letterbox,
) -> Vec<DetectedFace> {
    let mut faces = Vec::new();
    for (i, &(ax, ay)) in anchors.iter().enumerate() {
        let score = sigmoid(scores[i]);
        if score < min_score {
            continue;
        }
        let r = &regressors[i * 16..(i + 1) * 16];
        let cx = r[0] / side + ax;
        let cy = r[1] / side + ay;
        let w = r[2] / side;
        let h = r[3] / side;
        let top_left = lb.to_source(cx - w / 2.0, cy - h / 2.0);
        let bottom_right = lb.to_source(cx + w / 2.0, cy + h / 2.0);
        let keypoints = std::array::from_fn(|k| {
            lb.to_source(r[4 + 2 * k] / side + ax, r[5 + 2 * k] / side + ay)
        });
        faces.push(DetectedFace {
            bbox: BoxPx {
                x: top_left.x,
                y: top_left.y,
                w: bottom_right.x - top_left.x,
                h: bottom_right.y - top_left.y,
            },
            score,
            keypoints,
        });
    }
    faces
}

/// MediaPipe's weighted NMS: each cluster of boxes overlapping the best remaining one by more
/// than `iou` becomes one face whose box and keypoints are the score-weighted mean.
fn weighted_nms(mut faces: Vec<DetectedFace>, iou: f32) -> Vec<DetectedFace> {
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    while let Some(best) = faces.first().cloned() {
        let (cluster, rest): (Vec<_>, Vec<_>) = faces
            .into_iter()
            .partition(|f| f.bbox.iou(&best.bbox) > iou);
        faces = rest;
        let total: f32 = cluster.iter().map(|f| f.score).sum();
        let mean = |get: &dyn Fn(&DetectedFace) -> f32| {
            cluster.iter().map(|f| get(f) * f.score).sum::<f32>() / total
        };
        let keypoints = std::array::from_fn(|k| Point {
            x: mean(&|f| f.keypoints[k].x),
            y: mean(&|f| f.keypoints[k].y),
        });
        out.push(DetectedFace {
            bbox: BoxPx {
                x: mean(&|f| f.bbox.x),
                y: mean(&|f| f.bbox.y),
                w: mean(&|f| f.bbox.w),
                h: mean(&|f| f.bbox.h),
            },
            score: best.score,
            keypoints,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_counts_match_the_models() {
        assert_eq!(anchors(&DetectorKind::ShortRange.spec()).len(), 896);
        assert_eq!(anchors(&DetectorKind::FullRange.spec()).len(), 2304);
        let a = anchors(&DetectorKind::ShortRange.spec());
        assert_eq!(a[0], (0.5 / 16.0, 0.5 / 16.0));
        assert_eq!(a[1], a[0], "two anchors per cell on the first map");
        assert_eq!(a[512], (0.5 / 8.0, 0.5 / 8.0));
    }

    fn face(x: f32, score: f32) -> DetectedFace {
        DetectedFace {
            bbox: BoxPx {
                x,
                y: 0.0,
                w: 10.0,
                h: 10.0,
            },
            score,
            keypoints: [Point { x, y: 0.0 }; 6],
        }
    }

    #[test]
    fn weighted_nms_merges_overlaps_and_keeps_separate_faces() {
        let out = weighted_nms(vec![face(0.0, 0.9), face(1.0, 0.6), face(50.0, 0.7)], 0.3);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        // (0·0.9 + 1·0.6) / 1.5
        assert!((out[0].bbox.x - 0.4).abs() < 1e-5);
        assert_eq!(out[1].bbox.x, 50.0);
    }

    #[test]
    fn letterbox_round_trips_coordinates() {
        let img = RgbImage::new(200, 100);
        let (input, lb) = letterbox(&img, 128);
        assert_eq!(input.shape(), &[1, 3, 128, 128]);
        // The image occupies rows 32..96 of the square.
        assert_eq!(input[[0, 0, 10, 10]], -1.0);
        let p = lb.to_source(0.5, 0.5);
        assert!(
            (p.x - 100.0).abs() < 0.5 && (p.y - 50.0).abs() < 0.5,
            "{p:?}"
        );
    }

    #[test]
    fn decode_places_an_anchor_hit_at_its_anchor() {
        let spec = DetectorKind::ShortRange.spec();
        let anchors = anchors(&spec);
        let mut regressors = vec![0.0; 896 * 16];
        let mut scores = vec![-10.0; 896];
        scores[600] = 5.0;
        regressors[600 * 16 + 2] = 32.0; // width 32 px of 128
        regressors[600 * 16 + 3] = 32.0;
        let lb = Letterbox {
            scale: 1.0,
            pad_x: 0.0,
            pad_y: 0.0,
            side: 128.0,
        };
        let faces = decode(&anchors, &regressors, &scores, 128.0, 0.5, &lb);
        assert_eq!(faces.len(), 1);
        let (ax, ay) = anchors[600];
        assert!((faces[0].bbox.x - (ax * 128.0 - 16.0)).abs() < 1e-3);
        assert!((faces[0].bbox.y - (ay * 128.0 - 16.0)).abs() < 1e-3);
        assert!((faces[0].bbox.w - 32.0).abs() < 1e-3);
    }
}
