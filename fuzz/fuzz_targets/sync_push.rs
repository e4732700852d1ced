//! Sync bodies: batches from nodes (arbitrary bytes, as JSON, as CBOR and as a gzip or zstd
//! body inflated with the cloud's bound) and pulled pages of people and site configurations
//! from the cloud never panic, and never inflate past the bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rollcall_protocol::{codec, gzip, wire as protocol, zstd};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<protocol::PushBatch>(data);
    let _ = serde_json::from_slice::<protocol::PeoplePage>(data);
    let _ = serde_json::from_slice::<protocol::SitePull>(data);
    let _ = codec::Encoding::Cbor.decode::<protocol::PushBatch>(data);
    if let Ok(json) = gzip::decompress_bounded(data, protocol::MAX_BATCH_BYTES) {
        assert!(json.len() <= protocol::MAX_BATCH_BYTES);
        let _ = serde_json::from_slice::<protocol::PushBatch>(&json);
    }
    if let Ok(body) = zstd::decompress_bounded(data, protocol::MAX_BATCH_BYTES) {
        assert!(body.len() <= protocol::MAX_BATCH_BYTES);
        let _ = codec::Encoding::Cbor.decode::<protocol::PushBatch>(&body);
    }
});
