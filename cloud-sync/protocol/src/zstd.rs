//! zstd for sync bodies (`Content-Encoding: zstd`, RFC 8878), in pure Rust (`ruzstd`: no C to
//! build on the nodes' small boxes): the node compresses its pushes at the fastest level, the
//! cloud inflates them with a hard bound, as it does gzip, so a small bomb stops at the limit.

use std::io::Read;

use ruzstd::{
    decoding::StreamingDecoder,
    encoding::{CompressionLevel, compress_to_vec},
};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ZstdError {
    #[error("the body is not valid zstd: {0}")]
    Corrupt(String),
    #[error("the body inflates to more than {limit} bytes")]
    TooLarge { limit: usize },
}

/// `data` zstd-compressed at the fastest level.
pub fn compress(data: &[u8]) -> Vec<u8> {
    compress_to_vec(data, CompressionLevel::Fastest)
}

/// Inflates `data`, refusing anything that would be larger than `limit` bytes (reading stops
/// one byte past it), is not a zstd frame, or is cut short.
pub fn decompress_bounded(data: &[u8], limit: usize) -> Result<Vec<u8>, ZstdError> {
    let mut source = data;
    let decoder =
        StreamingDecoder::new(&mut source).map_err(|e| ZstdError::Corrupt(e.to_string()))?;
    let mut out = Vec::new();
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ZstdError::Corrupt(e.to_string()))?;
    if out.len() > limit {
        return Err(ZstdError::TooLarge { limit });
    }
    if !source.is_empty() {
        return Err(ZstdError::Corrupt(format!(
            "{} bytes after the frame",
            source.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_bomb_stops_at_the_limit() {
        crate::gzip::tests::bounded(compress, decompress_bounded, |e| {
            *e == ZstdError::TooLarge {
                limit: 4 * 1024 * 1024,
            }
        });
    }

    #[test]
    fn corrupt_or_cut_short_zstd_is_refused() {
        let good = compress(br#"{"protocol":1,"events":[],"padding":"xxxxxxxxxxxxxxxxxxxxxxxx"}"#);
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"junk");
        for bad in [&b"not zstd"[..], &good[..good.len() / 2], &[], &trailing] {
            assert!(
                matches!(decompress_bounded(bad, 1 << 20), Err(ZstdError::Corrupt(_))),
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
