//! Alignment: a least-squares similarity transform (Umeyama 1991) from the detector's keypoints
//! to the standard 112×112 face template, then bilinear resampling.

use image::{Rgb, RgbImage};
use nalgebra::{Matrix2, Vector2};

use crate::detect::{DetectedFace, Point};

/// Side of the aligned face crop the embedder takes.
pub const ALIGNED_SIZE: u32 = 112;

/// The standard 112×112 five-point template (eyes, nose tip, mouth corners; image left first).
const TEMPLATE: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// A similarity transform `dst = scale · R · src + t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Similarity {
    pub scale: f32,
    pub rotation: Matrix2<f32>,
    pub translation: Vector2<f32>,
}

impl Similarity {
    fn inverse_apply(&self, dst: Vector2<f32>) -> Vector2<f32> {
        self.rotation.transpose() * (dst - self.translation) / self.scale
    }
}

/// Least-squares similarity from `src` to `dst` (Umeyama). `None` when the points are
/// degenerate (all at one place).
pub(crate) fn umeyama(src: &[Vector2<f32>], dst: &[Vector2<f32>]) -> Option<Similarity> {
    let n = src.len().min(dst.len());
    if n < 2 {
        return None;
    }
    let nf = n as f32;
    let mean_s = src[..n].iter().sum::<Vector2<f32>>() / nf;
    let mean_d = dst[..n].iter().sum::<Vector2<f32>>() / nf;
    let mut cov = Matrix2::zeros();
    let mut var_s = 0.0;
    for (s, d) in src[..n].iter().zip(&dst[..n]) {
        let (sc, dc) = (s - mean_s, d - mean_d);
        cov += dc * sc.transpose();
        var_s += sc.norm_squared();
    }
    cov /= nf;
    var_s /= nf;
    if var_s <= f32::EPSILON {
        return None;
    }
    let svd = cov.svd(true, true);
    let (u, v_t) = (svd.u?, svd.v_t?);
    let mut sign = Matrix2::identity();
    if u.determinant() * v_t.determinant() < 0.0 {
        sign[(1, 1)] = -1.0;
    }
    let rotation = u * sign * v_t;
    let scale =
        (svd.singular_values[0] * sign[(0, 0)] + svd.singular_values[1] * sign[(1, 1)]) / var_s;
    let translation = mean_d - scale * rotation * mean_s;
    Some(Similarity {
        scale,
        rotation,
        translation,
    })
}

fn v(p: Point) -> Vector2<f32> {
    Vector2::new(p.x, p.y)
}

/// The template points matched to BlazeFace's keypoints: both eyes, nose tip, and the mouth
/// centre (the mean of the two template mouth corners, since BlazeFace gives the centre only).
fn correspondences(face: &DetectedFace) -> ([Vector2<f32>; 4], [Vector2<f32>; 4]) {
    let t = |i: usize| Vector2::new(TEMPLATE[i][0], TEMPLATE[i][1]);
    let k = &face.keypoints;
    (
        [v(k[0]), v(k[1]), v(k[2]), v(k[3])],
        [t(0), t(1), t(2), (t(3) + t(4)) / 2.0],
    )
}

/// The face cropped and aligned to 112×112, or `None` when its keypoints are degenerate.
pub fn align_face(image: &RgbImage, face: &DetectedFace) -> Option<RgbImage> {
    let (src, dst) = correspondences(face);
    let tf = umeyama(&src, &dst)?;
    let mut out = RgbImage::new(ALIGNED_SIZE, ALIGNED_SIZE);
    for (x, y, px) in out.enumerate_pixels_mut() {
        let p = tf.inverse_apply(Vector2::new(x as f32, y as f32));
        *px = bilinear(image, p.x, p.y);
    }
    Some(out)
}

/// A `side`×`side` model input, NCHW RGB in [0, 1], each pixel (u, v) sampled bilinearly at
/// `to_source(u + 0.5, v + 0.5)`.
pub(crate) fn sample_nchw(
    image: &RgbImage,
    side: usize,
    to_source: impl Fn(f32, f32) -> crate::Point,
) -> ndarray::Array4<f32> {
    let mut input = ndarray::Array4::<f32>::zeros((1, 3, side, side));
    for v in 0..side {
        for u in 0..side {
            let p = to_source(u as f32 + 0.5, v as f32 + 0.5);
            let px = bilinear(image, p.x, p.y);
            for ch in 0..3 {
                input[[0, ch, v, u]] = px.0[ch] as f32 / 255.0;
            }
        }
    }
    input
}

/// `(dx, dy)` from `(cx, cy)` turned by `angle` radians: a rotated crop's offset in the source.
pub(crate) fn rotated(cx: f32, cy: f32, angle: f32, dx: f32, dy: f32) -> crate::Point {
    let (s, c) = angle.sin_cos();
    crate::Point {
        x: cx + dx * c - dy * s,
        y: cy + dx * s + dy * c,
    }
}

/// Bilinear sample with edge clamping (pixels outside the image repeat the border).
pub(crate) fn bilinear(image: &RgbImage, x: f32, y: f32) -> Rgb<u8> {
    let (w, h) = image.dimensions();
    if w == 0 || h == 0 {
        return Rgb([0, 0, 0]);
    }
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let (a, b, c, d) = (
        image.get_pixel(x0, y0).0,
        image.get_pixel(x1, y0).0,
        image.get_pixel(x0, y1).0,
        image.get_pixel(x1, y1).0,
    );
    Rgb(std::array::from_fn(|i| {
        let top = a[i] as f32 * (1.0 - fx) + b[i] as f32 * fx;
        let bottom = c[i] as f32 * (1.0 - fx) + d[i] as f32 * fx;
        (top * (1.0 - fy) + bottom * fy).round() as u8
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn umeyama_recovers_a_known_similarity(
            angle in -3.0f32..3.0,
            scale in 0.1f32..10.0,
            tx in -500.0f32..500.0,
            ty in -500.0f32..500.0,
        ) {
            let rotation = Matrix2::new(angle.cos(), -angle.sin(), angle.sin(), angle.cos());
            let t = Vector2::new(tx, ty);
            let src: Vec<_> = TEMPLATE.iter().map(|p| Vector2::new(p[0], p[1])).collect();
            let dst: Vec<_> = src.iter().map(|p| scale * rotation * p + t).collect();
            let tf = umeyama(&src, &dst).expect("not degenerate");
            prop_assert!((tf.scale - scale).abs() / scale < 1e-3);
            for (s, d) in src.iter().zip(&dst) {
                let back = tf.inverse_apply(*d);
                prop_assert!((back - s).norm() < 1e-2 * scale.max(1.0));
            }
        }
    }

    #[test]
    fn degenerate_points_give_none() {
        let p = Vector2::new(3.0, 4.0);
        assert!(umeyama(&[p, p, p], &[p, p, p]).is_none());
    }

    #[test]
    fn a_face_already_at_the_template_is_copied() {
        let mut image = RgbImage::new(112, 112);
        for (x, y, p) in image.enumerate_pixels_mut() {
            *p = Rgb([x as u8, y as u8, 7]);
        }
        let mouth = Point {
            x: (TEMPLATE[3][0] + TEMPLATE[4][0]) / 2.0,
            y: (TEMPLATE[3][1] + TEMPLATE[4][1]) / 2.0,
        };
        let at = |i: usize| Point {
            x: TEMPLATE[i][0],
            y: TEMPLATE[i][1],
        };
        let face = DetectedFace {
            bbox: crate::detect::BoxPx {
                x: 0.0,
                y: 0.0,
                w: 112.0,
                h: 112.0,
            },
            score: 1.0,
            keypoints: [at(0), at(1), at(2), mouth, at(0), at(1)],
        };
        let out = align_face(&image, &face).expect("aligned");
        for (x, y) in [(10, 10), (56, 56), (100, 90)] {
            let got = out.get_pixel(x, y).0;
            assert!(
                (got[0] as i32 - x as i32).abs() <= 1 && (got[1] as i32 - y as i32).abs() <= 1,
                "{got:?} at {x},{y}"
            );
        }
    }
}
