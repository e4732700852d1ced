//! Secure-channel replies: MAC check and decryption of arbitrary bytes never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rollcall_firmware_bridge::fuzzing::secure_reply(data);
});
