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
    /// Upper bound on the decoder's allocations, in bytes.
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_bytes: 12 * 1024 * 1024,
            max_width: 8192,
            max_height: 8192,
            max_alloc: 256 * 1024 * 1024,
        }
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
    let mut l = Limits::default();
    l.max_image_width = Some(limits.max_width);
    l.max_image_height = Some(limits.max_height);
    l.max_alloc = Some(limits.max_alloc);
    reader.limits(l);
    let mut decoder = reader.into_decoder().map_err(bad)?;
    let orientation = decoder.orientation().map_err(bad)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(bad)?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
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
        }
    }
}
