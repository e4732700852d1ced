//! Image bytes from outside (a kiosk upload) → an upright RGB image, refusing decompression
//! bombs before any pixel is allocated.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

use crate::Error;

/// Limits on what [`decode_image`] accepts.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_bytes: usize,
    pub max_width: u32,
    pub max_height: u32,
    /// Most pixels (width × height) an image may declare: checked from its header, before
    /// any pixel is allocated. A small file can declare a huge image (a 195 KB PNG of
    /// 8192 × 8192 costs 200 MB and seconds to decode), so this, not the byte size, bounds
    /// the work.
    pub max_pixels: u64,
    /// Upper bound on the decoder's allocations, in bytes.
    pub max_alloc: u64,
    /// Most decodes an engine runs at once ([`crate::Engine::decode`]); the rest wait.
    pub at_once: usize,
}

impl Default for DecodeLimits {
    /// 12 MiB files; 16.8 megapixels (4096 × 4096: a 12 MP phone photo fits); 128 MiB of
    /// decoder allocations.
    fn default() -> Self {
        Self {
            max_bytes: 12 * 1024 * 1024,
            max_width: 8192,
            max_height: 8192,
            max_pixels: 4096 * 4096,
            max_alloc: 128 * 1024 * 1024,
            at_once: 2,
        }
    }
}

/// A counting gate: at most `n` closures run through it at once, the others block until one
/// ends (decodes run on blocking threads, so waiting there is fine). With the pixel cap it
/// bounds what a crowd of uploads can make the node allocate: `n` × one largest image.
#[derive(Debug)]
pub struct DecodeGate {
    running: parking_lot::Mutex<usize>,
    freed: parking_lot::Condvar,
    at_once: usize,
}

impl DecodeGate {
    pub fn new(at_once: usize) -> Self {
        Self {
            running: parking_lot::Mutex::new(0),
            freed: parking_lot::Condvar::new(),
            at_once: at_once.max(1),
        }
    }

    /// Runs `f` once fewer than `at_once` others are running.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        {
            let mut running = self.running.lock();
            while *running >= self.at_once {
                self.freed.wait(&mut running);
            }
            *running += 1;
        }
        // Released even if `f` panics.
        struct Leave<'a>(&'a DecodeGate);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                *self.0.running.lock() -= 1;
                self.0.freed.notify_one();
            }
        }
        let _leave = Leave(self);
        f()
    }
}

/// Decodes a JPEG or PNG, applies its EXIF orientation and converts it to RGB.
pub fn decode_image(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, Error> {
    if bytes.len() > limits.max_bytes {
        return Err(Error::ImageTooLarge {
            bytes: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let bad = |e: image::ImageError| Error::ImageDecode(e.to_string());
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::ImageDecode(e.to_string()))?;
    if !matches!(
        reader.format(),
        Some(image::ImageFormat::Jpeg | image::ImageFormat::Png)
    ) {
        return Err(Error::ImageDecode("unrecognised format".into()));
    }
    // The JPEG decoder fills a cut-short file with grey and carries on; a half-uploaded frame
    // must not be judged as if it were whole.
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err(Error::ImageDecode(
            "the JPEG is cut short (it never reaches its end-of-image marker): a truncated upload?"
                .into(),
        ));
    }
    let mut l = Limits::default();
    l.max_image_width = Some(limits.max_width);
    l.max_image_height = Some(limits.max_height);
    l.max_alloc = Some(limits.max_alloc);
    reader.limits(l);
    let mut decoder = reader.into_decoder().map_err(bad)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(Error::TooManyPixels {
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    let orientation = decoder.orientation().map_err(bad)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(bad)?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// Whether a JPEG's segments and entropy-coded data run to an end-of-image marker. Segments
/// are skipped by their lengths, so a thumbnail's own end marker inside EXIF does not count;
/// bytes after the end (some cameras append data) are allowed.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut i = 2;
    loop {
        if bytes.get(i) != Some(&0xFF) {
            return false;
        }
        while bytes.get(i) == Some(&0xFF) {
            i += 1;
        }
        let Some(&marker) = bytes.get(i) else {
            return false;
        };
        i += 1;
        match marker {
            0xD9 => return true,
            // Standalone markers: restart intervals, TEM.
            0xD0..=0xD7 | 0x01 => continue,
            _ => {
                let Some(len) = bytes.get(i..i + 2) else {
                    return false;
                };
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                if len < 2 {
                    return false;
                }
                i += len;
                if i > bytes.len() {
                    return false;
                }
                if marker == 0xDA {
                    // Entropy-coded data up to the next marker (FF 00 is a stuffed FF, FF D0-D7
                    // restart markers belong to the data).
                    loop {
                        match (bytes.get(i), bytes.get(i + 1)) {
                            (Some(0xFF), Some(0x00 | 0xD0..=0xD7)) => i += 2,
                            (Some(0xFF), Some(_)) => break,
                            (Some(_), _) => i += 1,
                            (None, _) => return false,
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_pixel(w, h, image::Rgb([10, 20, 30]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png)
            .expect("encode");
        out.into_inner()
    }

    #[test]
    fn an_image_declaring_more_pixels_than_allowed_is_refused_from_its_header() {
        let limits = DecodeLimits {
            max_pixels: 199,
            ..DecodeLimits::default()
        };
        assert!(decode_image(&png(20, 9), &limits).is_ok(), "180 pixels");
        assert!(matches!(
            decode_image(&png(20, 10), &limits),
            Err(Error::TooManyPixels {
                width: 20,
                height: 10,
                limit: 199
            })
        ));
    }

    /// Eight threads through a gate of two: never more than two inside.
    #[test]
    fn the_gate_lets_no_more_than_its_count_through() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let gate = DecodeGate::new(2);
        let (inside, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    gate.run(|| {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        inside.fetch_sub(1, Ordering::SeqCst);
                    })
                });
            }
        });
        assert!((1..=2).contains(&peak.load(Ordering::SeqCst)));
        assert_eq!(*gate.running.lock(), 0);
    }

    #[test]
    fn decodes_png() {
        let img = decode_image(&png(4, 3), &DecodeLimits::default()).expect("decodes");
        assert_eq!(img.dimensions(), (4, 3));
        assert_eq!(img.get_pixel(0, 0).0, [10, 20, 30]);
    }

    #[test]
    fn refuses_oversized_dimensions_and_bytes() {
        let limits = DecodeLimits {
            max_width: 100,
            max_height: 100,
            ..DecodeLimits::default()
        };
        assert!(matches!(
            decode_image(&png(101, 10), &limits),
            Err(Error::ImageDecode(_))
        ));
        let limits = DecodeLimits {
            max_bytes: 10,
            ..DecodeLimits::default()
        };
        assert!(matches!(
            decode_image(&png(4, 4), &limits),
            Err(Error::ImageTooLarge { .. })
        ));
    }

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 90]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg)
            .expect("encode");
        out.into_inner()
    }

    #[test]
    fn a_cut_short_jpeg_is_refused_but_data_after_its_end_is_not() {
        let whole = jpeg(64, 48);
        assert!(jpeg_is_complete(&whole));
        assert!(decode_image(&whole, &DecodeLimits::default()).is_ok());
        for cut in [whole.len() - 1, whole.len() - 2, whole.len() / 2, 40] {
            let e = decode_image(&whole[..cut], &DecodeLimits::default());
            assert!(
                matches!(&e, Err(Error::ImageDecode(m)) if m.contains("cut short")),
                "cut at {cut}: {e:?}"
            );
        }
        let mut appended = whole.clone();
        appended.extend_from_slice(b"trailer written by some cameras");
        assert!(decode_image(&appended, &DecodeLimits::default()).is_ok());
    }

    /// A CMYK JPEG (Adobe APP14, as print workflows and some scanners write them): eight
    /// colour blocks, made by Pillow 11.3 (`Image.convert("CMYK").save(…, quality=95)`), come out
    /// as the same RGB colours.
    #[test]
    fn decodes_cmyk_jpeg_to_the_right_colours() {
        let bytes = include_bytes!("../tests/data/cmyk-blocks.jpg");
        assert_eq!(
            &bytes[2..4],
            &[0xFF, 0xEE],
            "the fixture carries its Adobe marker"
        );
        let img = decode_image(bytes, &DecodeLimits::default()).expect("decodes");
        assert_eq!(img.dimensions(), (64, 32));
        let wanted: [[u8; 3]; 8] = [
            [255, 0, 0],
            [0, 255, 0],
            [0, 0, 255],
            [255, 255, 255],
            [0, 0, 0],
            [255, 255, 0],
            [0, 255, 255],
            [128, 128, 128],
        ];
        for (i, want) in wanted.iter().enumerate() {
            let got = img.get_pixel(8 * i as u32 + 4, 16).0;
            let off = got
                .iter()
                .zip(want)
                .map(|(g, w)| g.abs_diff(*w))
                .max()
                .unwrap_or(0);
            assert!(off <= 24, "block {i}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn refuses_garbage() {
        assert!(decode_image(b"not an image", &DecodeLimits::default()).is_err());
        assert!(decode_image(&[], &DecodeLimits::default()).is_err());
        let mut truncated = png(8, 8);
        truncated.truncate(30);
        assert!(decode_image(&truncated, &DecodeLimits::default()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_image(&bytes, &DecodeLimits::default());
            let _ = jpeg_is_complete(&bytes);
        }

        /// Any prefix of a JPEG that stops before its end marker is incomplete.
        #[test]
        fn every_proper_prefix_of_a_jpeg_is_incomplete(cut in 0usize..1000) {
            let whole = jpeg(24, 16);
            let cut = cut % (whole.len() - 1);
            proptest::prop_assert!(!jpeg_is_complete(&whole[..cut]));
        }
    }
}
