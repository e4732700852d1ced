//! Voice verification audio, as clients hand it to a node and nodes upload it to the cloud:
//! any bytes get an answer from the WAV check, never a panic, and what it accepts is within
//! its bounds.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rollcall_protocol::wav;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = wav::inspect(data) {
        assert!(data.len() <= wav::MAX_AUDIO_BYTES);
        assert!((wav::MIN_AUDIO_MS..=wav::MAX_AUDIO_MS).contains(&info.duration_ms));
        assert!((1..=2).contains(&info.channels));
    }
});
