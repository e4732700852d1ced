//! gzip for sync bodies (`Content-Encoding: gzip`): the node compresses its pushes, the cloud
//! inflates them with a hard bound, so a small "gzip bomb" stops at the limit instead of
//! filling memory.

use std::io::{Read, Write};

use flate2::{Compression, read::GzDecoder, write::GzEncoder};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GzipError {
    #[error("the body is not valid gzip: {0}")]
    Corrupt(String),
    #[error("the body inflates to more than {limit} bytes")]
    TooLarge { limit: usize },
}

/// `data` gzip-compressed (the default level: a batch of events shrinks about tenfold).
pub fn compress(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

/// Inflates `data`, refusing anything that would be larger than `limit` bytes (reading stops
/// one byte past it) or is not one whole gzip member.
pub fn decompress_bounded(data: &[u8], limit: usize) -> Result<Vec<u8>, GzipError> {
    let mut out = Vec::new();
    GzDecoder::new(data)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| GzipError::Corrupt(e.to_string()))?;
    if out.len() > limit {
        return Err(GzipError::TooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a bounded inflater must do, whatever its format: a 64 MiB bomb stops at a 4 MiB
    /// limit, a body exactly at the limit passes, one byte over does not.
    pub(crate) fn bounded<E: std::fmt::Debug>(
        compress: fn(&[u8]) -> Vec<u8>,
        decompress_bounded: fn(&[u8], usize) -> Result<Vec<u8>, E>,
        too_large: fn(&E) -> bool,
    ) {
        let bomb = compress(&vec![b' '; 64 * 1024 * 1024]);
        assert!(bomb.len() < 200 * 1024, "{}", bomb.len());
        let e = decompress_bounded(&bomb, 4 * 1024 * 1024).expect_err("the bomb");
        assert!(too_large(&e), "{e:?}");
        let exact = compress(&[7u8; 1000]);
        assert_eq!(
            decompress_bounded(&exact, 1000).map(|v| v.len()).ok(),
            Some(1000)
        );
        assert!(decompress_bounded(&exact, 999).is_err());
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        bounded(compress, decompress_bounded, |e| {
            *e == GzipError::TooLarge {
                limit: 4 * 1024 * 1024,
            }
        });
    }

    #[test]
    fn corrupt_or_cut_short_gzip_is_refused() {
        let good = compress(br#"{"protocol":1,"events":[]}"#);
        for bad in [&b"not gzip"[..], &good[..good.len() / 2], &[]] {
            assert!(
                matches!(decompress_bounded(bad, 1 << 20), Err(GzipError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn round_trips_and_never_panics(data in proptest::collection::vec(any::<u8>(), 0..4096), junk in proptest::collection::vec(any::<u8>(), 0..512)) {
            prop_assert_eq!(decompress_bounded(&compress(&data), 4096), Ok(data));
            let _ = decompress_bounded(&junk, 4096);
        }
    }
}
