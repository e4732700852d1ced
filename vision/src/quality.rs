//! Quality gates: is this face good enough to embed and decide on? Each failed gate is a
//! [`QualityIssue`] with the measured value, so the kiosk can tell the guard what to fix.

use image::RgbImage;

use crate::detect::DetectedFace;

/// Thresholds of the quality gates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityPolicy {
    /// Minimum distance between the eyes, in source pixels.
    pub min_eye_distance_px: f32,
    /// Largest fraction of the face box allowed outside the frame.
    pub max_outside_fraction: f32,
    /// Minimum variance of the Laplacian of the aligned grey crop (sharpness).
    pub min_sharpness: f32,
    /// Largest head turn and nod (degrees) accepted, when the face mesh is loaded.
    pub max_yaw_deg: f32,
    pub max_pitch_deg: f32,
    /// Mean brightness (luma 0–255) of the aligned face accepted: below, under-exposed (a
    /// backlit face); above, over-exposed.
    pub min_brightness: f32,
    pub max_brightness: f32,
    /// Largest fraction of the aligned face burnt out (luma ≥ 250) or crushed to black (≤ 5).
    pub max_clipped_fraction: f32,
}

impl Default for QualityPolicy {
    fn default() -> Self {
        Self {
            min_eye_distance_px: 24.0,
            max_outside_fraction: 0.05,
            min_sharpness: 20.0,
            max_yaw_deg: 40.0,
            max_pitch_deg: 35.0,
            min_brightness: 40.0,
            max_brightness: 220.0,
            max_clipped_fraction: 0.25,
        }
    }
}

/// Why a face is not good enough.
#[derive(Debug, Clone, PartialEq)]
pub enum QualityIssue {
    /// The face is too far from the camera.
    TooSmall { eye_distance_px: f32, min: f32 },
    /// Part of the face is outside the frame.
    Truncated { outside_fraction: f32 },
    /// The face is out of focus or moving.
    Blurry { sharpness: f32, min: f32 },
    /// The head is turned or tilted too far from the camera.
    Pose {
        yaw: f32,
        pitch: f32,
        max_yaw: f32,
        max_pitch: f32,
    },
    /// The face is too dark (backlit, unlit), or much of it is crushed to black.
    TooDark {
        brightness: f32,
        clipped_fraction: f32,
    },
    /// The face is too bright, or much of it is burnt out (glare, a lamp behind the camera).
    TooBright {
        brightness: f32,
        clipped_fraction: f32,
    },
}

impl QualityIssue {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            QualityIssue::TooSmall { .. } => "face_too_small",
            QualityIssue::Truncated { .. } => "face_truncated",
            QualityIssue::Blurry { .. } => "face_blurry",
            QualityIssue::Pose { .. } => "face_pose",
            QualityIssue::TooDark { .. } => "face_too_dark",
            QualityIssue::TooBright { .. } => "face_too_bright",
        }
    }
}

impl std::fmt::Display for QualityIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QualityIssue::TooSmall {
                eye_distance_px,
                min,
            } => write!(
                f,
                "face too small: eyes {eye_distance_px:.0} px apart, need {min:.0} (step closer)"
            ),
            QualityIssue::Truncated { outside_fraction } => write!(
                f,
                "face cut off: {:.0}% of it is outside the frame (centre your face)",
                outside_fraction * 100.0
            ),
            QualityIssue::Blurry { sharpness, min } => write!(
                f,
                "face blurry: sharpness {sharpness:.1}, need {min:.1} (hold still)"
            ),
            QualityIssue::Pose {
                yaw,
                pitch,
                max_yaw,
                max_pitch,
            } => write!(
                f,
                "head turned {yaw:.0}° and nodded {pitch:.0}° (at most {max_yaw:.0}° and {max_pitch:.0}°): look at the camera"
            ),
            QualityIssue::TooDark {
                brightness,
                clipped_fraction,
            } => write!(
                f,
                "face too dark: brightness {brightness:.0} of 255, {:.0}% black (light the face, not the background)",
                clipped_fraction * 100.0
            ),
            QualityIssue::TooBright {
                brightness,
                clipped_fraction,
            } => write!(
                f,
                "face too bright: brightness {brightness:.0} of 255, {:.0}% burnt out (avoid glare and direct light)",
                clipped_fraction * 100.0
            ),
        }
    }
}

/// What the gates measured, and which failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Quality {
    pub eye_distance_px: f32,
    pub outside_fraction: f32,
    /// `None` when the face could not be aligned.
    pub sharpness: Option<f32>,
    /// Mean luma of the aligned face (0–255); `None` when it could not be aligned.
    pub brightness: Option<f32>,
    pub issues: Vec<QualityIssue>,
}

impl Quality {
    pub fn passed(&self) -> bool {
        self.issues.is_empty()
    }
}

/// Adds the pose gate's verdict for a face the mesh has measured.
pub(crate) fn assess_pose(quality: &mut Quality, pose: &crate::Pose, policy: &QualityPolicy) {
    if pose.yaw.abs() > policy.max_yaw_deg || pose.pitch.abs() > policy.max_pitch_deg {
        quality.issues.push(QualityIssue::Pose {
            yaw: pose.yaw,
            pitch: pose.pitch,
            max_yaw: policy.max_yaw_deg,
            max_pitch: policy.max_pitch_deg,
        });
    }
}

/// Measures a detected face (and its aligned crop, if any) against `policy`.
pub(crate) fn assess(
    image: &RgbImage,
    face: &DetectedFace,
    aligned: Option<&RgbImage>,
    policy: &QualityPolicy,
) -> Quality {
    let k = &face.keypoints;
    let eye_distance_px = ((k[0].x - k[1].x).powi(2) + (k[0].y - k[1].y).powi(2)).sqrt();
    let outside_fraction = outside_fraction(image, face);
    let sharpness = aligned.map(laplacian_variance);
    let exposure = aligned.map(exposure);
    let mut issues = Vec::new();
    if outside_fraction > policy.max_outside_fraction {
        issues.push(QualityIssue::Truncated { outside_fraction });
    }
    if eye_distance_px < policy.min_eye_distance_px {
        issues.push(QualityIssue::TooSmall {
            eye_distance_px,
            min: policy.min_eye_distance_px,
        });
    }
    if let Some(s) = sharpness
        && s < policy.min_sharpness
    {
        issues.push(QualityIssue::Blurry {
            sharpness: s,
            min: policy.min_sharpness,
        });
    }
    if let Some((brightness, dark, bright)) = exposure {
        if brightness < policy.min_brightness || dark > policy.max_clipped_fraction {
            issues.push(QualityIssue::TooDark {
                brightness,
                clipped_fraction: dark,
            });
        } else if brightness > policy.max_brightness || bright > policy.max_clipped_fraction {
            issues.push(QualityIssue::TooBright {
                brightness,
                clipped_fraction: bright,
            });
        }
    }
    Quality {
        eye_distance_px,
        outside_fraction,
        sharpness,
        brightness: exposure.map(|e| e.0),
        issues,
    }
}

/// Mean luma of the aligned face and the fractions of it crushed to black and burnt out.
fn exposure(image: &RgbImage) -> (f32, f32, f32) {
    let n = (image.width() * image.height()).max(1) as f32;
    let (mut sum, mut dark, mut bright) = (0.0f32, 0.0f32, 0.0f32);
    for p in image.pixels() {
        let y = 0.299 * p.0[0] as f32 + 0.587 * p.0[1] as f32 + 0.114 * p.0[2] as f32;
        sum += y;
        dark += f32::from(y <= 5.0);
        bright += f32::from(y >= 250.0);
    }
    (sum / n, dark / n, bright / n)
}

/// Fraction of the face box outside the image. The detector extrapolates a face cut by the
/// frame edge, so its box reaches past the edge: that is what betrays a partial face.
fn outside_fraction(image: &RgbImage, face: &DetectedFace) -> f32 {
    let (w, h) = (image.width() as f32, image.height() as f32);
    let b = &face.bbox;
    let area = b.w * b.h;
    if area <= 0.0 {
        return 1.0;
    }
    let iw = ((b.x + b.w).min(w) - b.x.max(0.0)).max(0.0);
    let ih = ((b.y + b.h).min(h) - b.y.max(0.0)).max(0.0);
    1.0 - (iw * ih) / area
}

/// Variance of the 4-neighbour Laplacian of the grey image: low when blurred.
pub(crate) fn laplacian_variance(image: &RgbImage) -> f32 {
    let (w, h) = image.dimensions();
    if w < 3 || h < 3 {
        return 0.0;
    }
    let grey: Vec<f32> = image
        .pixels()
        .map(|p| 0.299 * p.0[0] as f32 + 0.587 * p.0[1] as f32 + 0.114 * p.0[2] as f32)
        .collect();
    let at = |x: u32, y: u32| grey[(y * w + x) as usize];
    let (mut sum, mut sum_sq, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let l =
                (at(x - 1, y) + at(x + 1, y) + at(x, y - 1) + at(x, y + 1) - 4.0 * at(x, y)) as f64;
            sum += l;
            sum_sq += l * l;
            n += 1.0;
        }
    }
    let mean = sum / n;
    (sum_sq / n - mean * mean) as f32
}

#[cfg(test)]
mod tests {
    use image::{Rgb, imageops};

    use super::*;
    use crate::detect::{BoxPx, Point};

    fn face_at(x: f32, w: f32, eye_gap: f32) -> DetectedFace {
        DetectedFace {
            bbox: BoxPx {
                x,
                y: 10.0,
                w,
                h: w,
            },
            score: 0.9,
            keypoints: [
                Point {
                    x: x + 10.0,
                    y: 20.0,
                },
                Point {
                    x: x + 10.0 + eye_gap,
                    y: 20.0,
                },
                Point {
                    x: x + 20.0,
                    y: 30.0,
                },
                Point {
                    x: x + 20.0,
                    y: 40.0,
                },
                Point { x, y: 25.0 },
                Point { x: x + w, y: 25.0 },
            ],
        }
    }

    #[test]
    fn gates_report_truncation_and_size() {
        let image = RgbImage::new(200, 200);
        let policy = QualityPolicy::default();
        let ok = assess(&image, &face_at(50.0, 100.0, 40.0), None, &policy);
        assert!(ok.passed(), "{:?}", ok.issues);
        let cut = assess(&image, &face_at(150.0, 100.0, 40.0), None, &policy);
        assert_eq!(cut.issues[0].code(), "face_truncated");
        assert!((cut.outside_fraction - 0.5).abs() < 1e-6);
        let small = assess(&image, &face_at(50.0, 30.0, 10.0), None, &policy);
        assert_eq!(small.issues[0].code(), "face_too_small");
    }

    #[test]
    fn exposure_gates_refuse_dark_bright_and_clipped_faces() {
        let policy = QualityPolicy::default();
        let image = RgbImage::new(200, 200);
        let face = face_at(50.0, 100.0, 40.0);
        // A textured crop (so it is sharp) around a given brightness.
        let crop = |base: u8, swing: u8| {
            RgbImage::from_fn(112, 112, |x, y| {
                let v = if (x / 4 + y / 4) % 2 == 0 {
                    base.saturating_add(swing)
                } else {
                    base.saturating_sub(swing)
                };
                Rgb([v, v, v])
            })
        };
        let codes = |c: &RgbImage| -> Vec<&'static str> {
            assess(&image, &face, Some(c), &policy)
                .issues
                .iter()
                .map(|i| i.code())
                .collect()
        };
        assert!(codes(&crop(128, 40)).is_empty());
        let q = assess(&image, &face, Some(&crop(128, 40)), &policy);
        assert!((q.brightness.expect("aligned") - 128.0).abs() < 1.0);
        assert_eq!(codes(&crop(25, 10)), ["face_too_dark"]);
        assert_eq!(codes(&crop(235, 10)), ["face_too_bright"]);
        // Mid-grey on average, but half of it burnt out (glare) or crushed to black.
        assert_eq!(codes(&crop(170, 85)), ["face_too_bright"]);
        assert_eq!(codes(&crop(85, 85)), ["face_too_dark"]);
        let text = assess(&image, &face, Some(&crop(25, 10)), &policy).issues[0].to_string();
        assert!(
            text.contains("too dark") && text.contains("brightness 25"),
            "{text}"
        );
    }

    #[test]
    fn pose_gate() {
        let policy = QualityPolicy::default();
        let mut q = assess(
            &RgbImage::new(200, 200),
            &face_at(50.0, 100.0, 40.0),
            None,
            &policy,
        );
        assess_pose(
            &mut q,
            &crate::Pose {
                yaw: 10.0,
                pitch: -5.0,
                roll: 30.0,
            },
            &policy,
        );
        assert!(q.passed());
        assess_pose(
            &mut q,
            &crate::Pose {
                yaw: -55.0,
                pitch: 0.0,
                roll: 0.0,
            },
            &policy,
        );
        assert_eq!(q.issues[0].code(), "face_pose");
        assert!(q.issues[0].to_string().contains("look at the camera"));
    }

    #[test]
    fn blur_lowers_sharpness() {
        let mut sharp = RgbImage::new(112, 112);
        for (x, y, p) in sharp.enumerate_pixels_mut() {
            let v = if (x / 4 + y / 4) % 2 == 0 { 230 } else { 20 };
            *p = Rgb([v, v, v]);
        }
        let blurred = imageops::blur(&sharp, 4.0);
        let (s, b) = (laplacian_variance(&sharp), laplacian_variance(&blurred));
        assert!(s > 10.0 * b, "sharp {s} vs blurred {b}");
        let policy = QualityPolicy::default();
        let q = assess(&sharp, &face_at(20.0, 60.0, 30.0), Some(&blurred), &policy);
        assert!(q.issues.iter().any(|i| i.code() == "face_blurry"), "{q:?}");
    }
}
