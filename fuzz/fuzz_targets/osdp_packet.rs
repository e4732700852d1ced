//! Bytes from the RS-485 line: packet decoding, stream framing and reply parsing never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rollcall_firmware_bridge::{FrameReader, Packet, ReadEvent, Reply};

fuzz_target!(|data: &[u8]| {
    let _ = Packet::decode(data);
    let mut reader = FrameReader::new();
    reader.push(data);
    while let Some(event) = reader.next_event() {
        if let ReadEvent::Packet(p) = event {
            let _ = Reply::parse(p.code, &p.data);
            let _ = p.encode();
        }
    }
    if let Some((code, rest)) = data.split_first() {
        let _ = Reply::parse(*code, rest);
    }
});
