//! The audio sample of a voice verification record: a RIFF/WAVE file as phones and kiosk
//! microphones record it. Both the node (when a client hands it one) and the cloud (when a node
//! uploads it) check it with [`inspect`] before storing it: integer PCM (8, 16, 24 or 32 bits)
//! or 32-bit float, mono or stereo, 8-48 kHz, from [`MIN_AUDIO_MS`] to [`MAX_AUDIO_MS`] long
//! and at most [`MAX_AUDIO_BYTES`]. Chunks other than `fmt ` and `data` are skipped; a file that
//! claims more data than it holds is refused, never read past its end.

/// Largest audio sample accepted (a minute of 16 kHz 16-bit mono is under 2 MB).
pub const MAX_AUDIO_BYTES: usize = 2 * 1024 * 1024;
/// Longest sample accepted.
pub const MAX_AUDIO_MS: u64 = 60_000;
/// Shortest sample accepted: less cannot hold a spoken phrase.
pub const MIN_AUDIO_MS: u64 = 200;
/// The media type the samples travel with.
pub const CONTENT_TYPE: &str = "audio/wav";

/// What a sample is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    pub channels: u16,
    pub sample_rate: u32,
    pub bits_per_sample: u16,
    /// From the data chunk's length.
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    #[error("the sample is {0} bytes, at most {MAX_AUDIO_BYTES}")]
    TooLarge(usize),
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotWav,
    #[error("the WAV file is cut short in its {0}")]
    Truncated(&'static str),
    #[error("no `fmt ` chunk before the audio data")]
    NoFormat,
    #[error("no `data` chunk")]
    NoData,
    #[error("unsupported WAV format: {0}")]
    Unsupported(String),
    #[error("the sample lasts {0} ms; it must last {MIN_AUDIO_MS}-{MAX_AUDIO_MS} ms")]
    Duration(u64),
}

const PCM: u16 = 1;
const FLOAT: u16 = 3;
const EXTENSIBLE: u16 = 0xFFFE;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

#[derive(Debug, Clone, Copy)]
struct Format {
    tag: u16,
    channels: u16,
    sample_rate: u32,
    block_align: u16,
    bits: u16,
}

fn format(chunk: &[u8]) -> Result<Format, WavError> {
    let short = WavError::Truncated("format chunk");
    let mut f = Format {
        tag: u16_at(chunk, 0).ok_or(short.clone())?,
        channels: u16_at(chunk, 2).ok_or(short.clone())?,
        sample_rate: u32_at(chunk, 4).ok_or(short.clone())?,
        block_align: u16_at(chunk, 12).ok_or(short.clone())?,
        bits: u16_at(chunk, 14).ok_or(short.clone())?,
    };
    if f.tag == EXTENSIBLE {
        // The sub-format GUID starts with the format code.
        f.tag = u16_at(chunk, 24).ok_or(short)?;
    }
    let supported = match f.tag {
        PCM => matches!(f.bits, 8 | 16 | 24 | 32),
        FLOAT => f.bits == 32,
        _ => false,
    };
    if !supported {
        return Err(WavError::Unsupported(format!(
            "format code {} with {} bits per sample (integer PCM 8/16/24/32 or float 32 only)",
            f.tag, f.bits
        )));
    }
    if !(1..=2).contains(&f.channels) {
        return Err(WavError::Unsupported(format!(
            "{} channels (mono or stereo only)",
            f.channels
        )));
    }
    if !(8_000..=48_000).contains(&f.sample_rate) {
        return Err(WavError::Unsupported(format!(
            "{} Hz (8000-48000 only)",
            f.sample_rate
        )));
    }
    if u32::from(f.block_align) != u32::from(f.channels) * u32::from(f.bits / 8) {
        return Err(WavError::Unsupported(format!(
            "block align {} for {} channel(s) of {} bits",
            f.block_align, f.channels, f.bits
        )));
    }
    Ok(f)
}

/// Checks a sample and tells what it is.
pub fn inspect(bytes: &[u8]) -> Result<WavInfo, WavError> {
    if bytes.len() > MAX_AUDIO_BYTES {
        return Err(WavError::TooLarge(bytes.len()));
    }
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWav);
    }
    let mut at = 12;
    let mut fmt: Option<Format> = None;
    while at < bytes.len() {
        let id = bytes
            .get(at..at + 4)
            .ok_or(WavError::Truncated("chunk header"))?;
        let len = u32_at(bytes, at + 4).ok_or(WavError::Truncated("chunk header"))? as usize;
        let body_at = at + 8;
        let body = bytes
            .get(body_at..body_at.saturating_add(len))
            .ok_or(WavError::Truncated(if id == b"data" {
                "audio data"
            } else {
                "chunk"
            }))?;
        match id {
            b"fmt " => fmt = Some(format(body)?),
            b"data" => {
                let f = fmt.ok_or(WavError::NoFormat)?;
                let frames = body.len() as u64 / u64::from(f.block_align);
                let duration_ms = frames * 1000 / u64::from(f.sample_rate);
                if !(MIN_AUDIO_MS..=MAX_AUDIO_MS).contains(&duration_ms) {
                    return Err(WavError::Duration(duration_ms));
                }
                return Ok(WavInfo {
                    channels: f.channels,
                    sample_rate: f.sample_rate,
                    bits_per_sample: f.bits,
                    duration_ms,
                });
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at = body_at + len + (len & 1);
    }
    Err(WavError::NoData)
}

/// A mono 16-bit PCM WAV file of `samples` at `sample_rate` (for tests and the demo: there
/// is no microphone here).
pub fn pcm16_mono(sample_rate: u32, samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&PCM.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// `ms` milliseconds of a `hz` tone at 16 kHz, as [`pcm16_mono`] writes it.
pub fn tone(hz: f32, ms: u32) -> Vec<u8> {
    let rate = 16_000u32;
    let n = (rate as usize) * (ms as usize) / 1000;
    let samples: Vec<i16> = (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            (f32::sin(std::f32::consts::TAU * hz * t) * 8_000.0) as i16
        })
        .collect();
    pcm16_mono(rate, &samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_spoken_second_is_read_and_its_length_told() {
        let info = inspect(&tone(440.0, 1_500)).expect("valid");
        assert_eq!(
            info,
            WavInfo {
                channels: 1,
                sample_rate: 16_000,
                bits_per_sample: 16,
                duration_ms: 1_500
            }
        );
    }

    #[test]
    fn other_chunks_are_skipped_and_odd_ones_padded() {
        let wav = tone(440.0, 500);
        let mut with_list = wav[..12].to_vec();
        with_list.extend_from_slice(b"LIST");
        with_list.extend_from_slice(&3u32.to_le_bytes());
        with_list.extend_from_slice(b"abc\0");
        with_list.extend_from_slice(&wav[12..]);
        assert_eq!(inspect(&with_list).expect("valid").duration_ms, 500);
    }

    #[test]
    fn bad_samples_are_refused_with_the_reason() {
        let wav = tone(440.0, 1_000);
        assert_eq!(inspect(b"OggS\0\0\0\0\0\0\0\0"), Err(WavError::NotWav));
        assert_eq!(
            inspect(&wav[..wav.len() - 10]),
            Err(WavError::Truncated("audio data"))
        );
        assert_eq!(
            inspect(&wav[..40]),
            Err(WavError::Truncated("chunk header"))
        );
        assert_eq!(inspect(&tone(440.0, 100)), Err(WavError::Duration(100)));
        assert!(matches!(
            inspect(&vec![0; MAX_AUDIO_BYTES + 1]),
            Err(WavError::TooLarge(_))
        ));
        let mut adpcm = wav.clone();
        adpcm[20] = 2;
        assert!(matches!(inspect(&adpcm), Err(WavError::Unsupported(_))));
        let mut surround = wav.clone();
        surround[22] = 6;
        assert!(matches!(inspect(&surround), Err(WavError::Unsupported(_))));
        let mut no_fmt = wav[..12].to_vec();
        no_fmt.extend_from_slice(&wav[36..]);
        assert_eq!(inspect(&no_fmt), Err(WavError::NoFormat));
        assert_eq!(inspect(&wav[..36]), Err(WavError::NoData));
    }

    proptest! {
        /// Whatever the bytes, an answer and never a panic; a valid file with any byte changed
        /// still answers.
        #[test]
        fn any_bytes_get_an_answer(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = inspect(&bytes);
            let mut riff = b"RIFF\0\0\0\0WAVE".to_vec();
            riff.extend_from_slice(&bytes);
            let _ = inspect(&riff);
        }

        #[test]
        fn a_corrupted_byte_never_panics(at in 0usize..8_044, value in any::<u8>()) {
            let mut wav = tone(300.0, 250);
            if let Some(b) = wav.get_mut(at) {
                *b = value;
            }
            let _ = inspect(&wav);
        }

        #[test]
        fn durations_round_trip(ms in MIN_AUDIO_MS..=5_000u64, rate in prop::sample::select(vec![8_000u32, 16_000, 44_100, 48_000])) {
            let n = (rate as u64 * ms / 1000) as usize;
            let info = inspect(&pcm16_mono(rate, &vec![0; n])).expect("valid");
            prop_assert!(info.duration_ms.abs_diff(ms) <= 1);
            prop_assert_eq!(info.sample_rate, rate);
        }
    }
}
