//! Sync batches from nodes: deserialising arbitrary bytes never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<rollcall_cloud::protocol::PushBatch>(data);
});
