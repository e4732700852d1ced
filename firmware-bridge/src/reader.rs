//! Finds packets in the byte stream of a serial line: skips noise and mark bytes, waits for a
//! whole packet, and resynchronises after a corrupt one without losing the packets behind it.

use crate::packet::{MARK, MAX_PACKET, Packet, PacketError, SOM};

/// What [`FrameReader::next_event`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadEvent {
    Packet(Packet),
    /// Bytes before a SOM that belong to no packet (mark bytes are not counted).
    Noise(usize),
    /// A frame that started with SOM but was not a valid packet; one byte was dropped to
    /// search for the next SOM.
    Invalid(PacketError),
}

/// Accumulates serial bytes and yields packets.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes waiting for the rest of a packet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Drops everything buffered (after a timeout, the partial packet is dead).
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// The next packet, noise report or error; `None` when more bytes are needed.
    pub fn next_event(&mut self) -> Option<ReadEvent> {
        let start = self.buf.iter().position(|&b| b == SOM);
        let Some(start) = start else {
            let noise = self.buf.iter().filter(|&&b| b != MARK).count();
            self.buf.clear();
            return (noise > 0).then_some(ReadEvent::Noise(noise));
        };
        if start > 0 {
            let noise = self.buf[..start].iter().filter(|&&b| b != MARK).count();
            self.buf.drain(..start);
            if noise > 0 {
                return Some(ReadEvent::Noise(noise));
            }
        }
        if self.buf.len() < 4 {
            return None;
        }
        let len = u16::from_le_bytes([self.buf[2], self.buf[3]]) as usize;
        if !(7..=MAX_PACKET).contains(&len) {
            self.buf.drain(..1);
            return Some(ReadEvent::Invalid(PacketError::BadLength(len)));
        }
        if self.buf.len() < len {
            return None;
        }
        match Packet::decode(&self.buf[..len]) {
            Ok(p) => {
                self.buf.drain(..len);
                Some(ReadEvent::Packet(p))
            }
            Err(e) => {
                self.buf.drain(..1);
                Some(ReadEvent::Invalid(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::packet::Sequence;

    fn poll(addr: u8) -> Packet {
        Packet::command(addr, Sequence::new(1).expect("valid"), 0x60, vec![addr])
    }

    fn drain(r: &mut FrameReader) -> Vec<ReadEvent> {
        std::iter::from_fn(|| r.next_event()).collect()
    }

    #[test]
    fn finds_packets_among_marks_noise_and_corruption() {
        let mut stream = vec![MARK];
        stream.extend(poll(1).encode().expect("encodes"));
        stream.extend([0x00, 0x12]);
        let mut corrupt = poll(2).encode().expect("encodes");
        corrupt[5] ^= 0xFF;
        stream.extend(&corrupt);
        stream.push(MARK);
        stream.extend(poll(3).encode().expect("encodes"));

        let mut r = FrameReader::new();
        // Byte by byte, as a UART delivers them.
        let mut events = Vec::new();
        for b in stream {
            r.push(&[b]);
            events.extend(drain(&mut r));
        }
        let packets: Vec<u8> = events
            .iter()
            .filter_map(|e| match e {
                ReadEvent::Packet(p) => Some(p.address),
                _ => None,
            })
            .collect();
        assert_eq!(packets, [1, 3]);
        // The two stray bytes, plus what is left of the corrupt packet after its SOM is dropped.
        let noise: usize = events
            .iter()
            .map(|e| match e {
                ReadEvent::Noise(n) => *n,
                _ => 0,
            })
            .sum();
        assert!(noise >= 2, "{events:?}");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, ReadEvent::Invalid(PacketError::BadCrc { .. })))
        );
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn waits_for_the_rest_of_a_packet() {
        let bytes = poll(9).encode().expect("encodes");
        let mut r = FrameReader::new();
        r.push(&bytes[..5]);
        assert_eq!(r.next_event(), None);
        r.push(&bytes[5..]);
        assert_eq!(r.next_event(), Some(ReadEvent::Packet(poll(9))));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_always_drain(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut r = FrameReader::new();
            r.push(&bytes);
            let mut steps = 0;
            while r.next_event().is_some() {
                steps += 1;
                prop_assert!(steps <= bytes.len() + 1);
            }
            prop_assert!(r.buffered() < MAX_PACKET);
        }

        #[test]
        fn every_packet_survives_noise_between_packets(addrs in proptest::collection::vec(0u8..0x7F, 1..10), noise in proptest::collection::vec(0u8..0x50, 0..5)) {
            let mut stream = Vec::new();
            for a in &addrs {
                stream.extend(&noise);
                stream.extend(poll(*a).encode().expect("encodes"));
            }
            let mut r = FrameReader::new();
            r.push(&stream);
            let found: Vec<u8> = drain(&mut r).into_iter().filter_map(|e| match e {
                ReadEvent::Packet(p) => Some(p.address),
                _ => None,
            }).collect();
            prop_assert_eq!(found, addrs);
        }
    }
}
