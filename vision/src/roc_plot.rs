//! The ROC curve as a PNG (feature `eval`): TAR against FAR on a log axis, with the operating
//! threshold marked.

use std::path::Path;

use plotters::prelude::*;

use crate::eval::PairScores;

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("font {path}: {reason} (Debian: apt-get install fonts-dejavu-core)")]
    Font { path: String, reason: String },
    #[error("drawing the plot: {0}")]
    Draw(String),
    #[error("writing {path}: {reason}")]
    Write { path: String, reason: String },
}

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn register_font() -> Result<(), PlotError> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT).map_err(|e| e.to_string())?;
            // plotters keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| "not a usable TrueType font".to_owned())
        })
        .clone()
        .map_err(|reason| PlotError::Font {
            path: FONT.into(),
            reason,
        })
}

/// Draws the ROC of `scores` with `threshold` marked, as a 900×600 PNG at `out`.
pub fn write_roc_png(
    scores: &PairScores,
    threshold: f32,
    title: &str,
    out: &Path,
) -> Result<(), PlotError> {
    register_font()?;
    let (w, h) = (900u32, 600u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let draw = |e: &dyn std::fmt::Display| PlotError::Draw(e.to_string());
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw(&e))?;
        // FAR on a log axis; a FAR of 0 is drawn at the left edge.
        let floor = 1e-4f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d((floor..1.0f64).log_scale(), 0.0f64..1.0)
            .map_err(|e| draw(&e))?;
        chart
            .configure_mesh()
            .x_desc("false accept rate (impostor pairs accepted)")
            .y_desc("true accept rate")
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(|e| draw(&e))?;
        let points: Vec<(f64, f64)> = scores
            .roc()
            .into_iter()
            .map(|p| (p.far.max(floor), p.tar))
            .collect();
        chart
            .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
            .map_err(|e| draw(&e))?
            .label("ROC")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        let at = (scores.far(threshold).max(floor), scores.tar(threshold));
        chart
            .draw_series(std::iter::once(Circle::new(at, 6, RED.filled())))
            .map_err(|e| draw(&e))?
            .label(format!(
                "threshold {threshold:.2}: TAR {:.1}%, FAR {:.2}%",
                at.1 * 100.0,
                scores.far(threshold) * 100.0
            ))
            .legend(|(x, y)| Circle::new((x + 10, y), 5, RED.filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| draw(&e))?;
        root.present().map_err(|e| draw(&e))?;
    }
    let image = image::RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| PlotError::Draw("buffer size".into()))?;
    image.save(out).map_err(|e| PlotError::Write {
        path: out.display().to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_of_the_roc() {
        let scores = PairScores {
            genuine: vec![0.9, 0.8, 0.6, 0.45],
            impostor: vec![0.1, 0.3, 0.55, -0.2, 0.0],
        };
        let dir = std::env::temp_dir().join(format!("roc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let out = dir.join("roc.png");
        write_roc_png(&scores, 0.5, "test", &out).expect("plot");
        let img = image::open(&out).expect("a PNG").to_rgb8();
        assert_eq!(img.dimensions(), (900, 600));
        // The curve is drawn in blue, the operating point in red.
        assert!(img.pixels().any(|p| p.0 == [0, 0, 255]));
        assert!(img.pixels().any(|p| p.0 == [255, 0, 0]));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
