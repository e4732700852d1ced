//! Kiosk uploads: decoding arbitrary bytes as an image gives an image or an error, never a
//! panic or an unbounded allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rollcall_vision::{DecodeLimits, decode_image};

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits {
        max_width: 2048,
        max_height: 2048,
        max_alloc: 64 * 1024 * 1024,
        ..DecodeLimits::default()
    };
    let _ = decode_image(data, &limits);
});
