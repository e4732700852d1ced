//! Replies a PD sends, parsed from a packet's code and data. Unknown or short replies become
//! errors to count and log, never a panic.

use crate::codes::Reply as Code;

/// A PD's identity (osdp_PDID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdIdentity {
    /// IEEE OUI of the vendor (3 bytes).
    pub vendor_code: u32,
    pub model: u8,
    pub version: u8,
    pub serial_number: u32,
    /// Major, minor, build.
    pub firmware: (u8, u8, u8),
}

/// One capability (osdp_PDCAP): function code, compliance level, number of items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    pub function: u8,
    pub compliance: u8,
    pub items: u8,
}

/// Card data (osdp_RAW).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRead {
    pub reader: u8,
    /// 0 unspecified, 1 Wiegand.
    pub format: u8,
    pub bits: u16,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ack,
    Nak {
        reason: u8,
    },
    PdId(PdIdentity),
    PdCap(Vec<Capability>),
    Raw(CardRead),
    Keypad {
        reader: u8,
        keys: Vec<u8>,
    },
    /// osdp_ISTATR: one entry per input, true when active (door contact open, button pressed).
    InputStatus(Vec<bool>),
    /// osdp_OSTATR: one entry per output, true when on.
    OutputStatus(Vec<bool>),
    /// osdp_LSTATR: tamper switch and power failure.
    LocalStatus {
        tamper: bool,
        power_failure: bool,
    },
    Busy,
    /// Recognised code whose contents this control panel does not interpret yet.
    Other {
        code: u8,
        data: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply {code:#04x} has {len} data bytes, expected {expected}")]
    Length {
        code: u8,
        len: usize,
        expected: &'static str,
    },
    #[error("unknown reply code {0:#04x}")]
    UnknownCode(u8),
}

impl Reply {
    pub fn parse(code: u8, data: &[u8]) -> Result<Self, ReplyError> {
        let len = |expected: &'static str| ReplyError::Length {
            code,
            len: data.len(),
            expected,
        };
        let Ok(kind) = Code::try_from(code) else {
            return Err(ReplyError::UnknownCode(code));
        };
        Ok(match kind {
            Code::Ack => Reply::Ack,
            Code::Busy => Reply::Busy,
            Code::Nak => Reply::Nak {
                reason: *data.first().ok_or_else(|| len("at least 1"))?,
            },
            Code::PdId => {
                let d: &[u8; 12] = data
                    .get(..12)
                    .and_then(|d| d.try_into().ok())
                    .ok_or_else(|| len("12"))?;
                Reply::PdId(PdIdentity {
                    vendor_code: u32::from_le_bytes([d[0], d[1], d[2], 0]),
                    model: d[3],
                    version: d[4],
                    serial_number: u32::from_le_bytes([d[5], d[6], d[7], d[8]]),
                    firmware: (d[9], d[10], d[11]),
                })
            }
            Code::PdCap => {
                if !data.len().is_multiple_of(3) {
                    return Err(len("a multiple of 3"));
                }
                Reply::PdCap(
                    data.chunks_exact(3)
                        .map(|c| Capability {
                            function: c[0],
                            compliance: c[1],
                            items: c[2],
                        })
                        .collect(),
                )
            }
            Code::Raw => {
                if data.len() < 4 {
                    return Err(len("at least 4"));
                }
                let bits = u16::from_le_bytes([data[2], data[3]]);
                let bytes = (bits as usize).div_ceil(8);
                let card = data
                    .get(4..4 + bytes)
                    .ok_or_else(|| len("4 + bit count / 8"))?;
                Reply::Raw(CardRead {
                    reader: data[0],
                    format: data[1],
                    bits,
                    data: card.to_vec(),
                })
            }
            Code::Keypad => {
                if data.len() < 2 || data.len() < 2 + data[1] as usize {
                    return Err(len("2 + digit count"));
                }
                Reply::Keypad {
                    reader: data[0],
                    keys: data[2..2 + data[1] as usize].to_vec(),
                }
            }
            Code::InputStatus => Reply::InputStatus(data.iter().map(|b| *b != 0).collect()),
            Code::OutputStatus => Reply::OutputStatus(data.iter().map(|b| *b != 0).collect()),
            Code::LocalStatus => {
                if data.len() < 2 {
                    return Err(len("2"));
                }
                Reply::LocalStatus {
                    tamper: data[0] != 0,
                    power_failure: data[1] != 0,
                }
            }
            _ => Reply::Other {
                code,
                data: data.to_vec(),
            },
        })
    }
}

/// A decoded Wiegand card number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WiegandCard {
    /// 26 (H10301), 34 (H10306) or 37 (H10304).
    pub bits: u16,
    pub facility: u32,
    pub number: u32,
}

impl CardRead {
    /// The frame as an integer of `bits` bits (the reader sends them left-aligned).
    fn frame(&self) -> Option<u64> {
        let bits = self.bits as usize;
        if bits == 0 || bits > 64 || self.data.len() < bits.div_ceil(8) {
            return None;
        }
        let mut v = 0u64;
        for i in 0..bits {
            let bit = (self.data[i / 8] >> (7 - i % 8)) & 1;
            v = (v << 1) | bit as u64;
        }
        Some(v)
    }

    /// The card of a 26-bit Wiegand read (H10301): 8-bit facility code and 16-bit card number;
    /// `None` for another length or a parity error.
    pub fn wiegand26(&self) -> Option<(u8, u16)> {
        let card = self.wiegand().filter(|c| c.bits == 26)?;
        Some((card.facility as u8, card.number as u16))
    }

    /// The card of a 26-, 34- or 37-bit Wiegand read (H10301, H10306, H10304), parity checked:
    /// the leading bit is even parity and the trailing bit odd parity, each over half the frame.
    pub fn wiegand(&self) -> Option<WiegandCard> {
        // (frame bits, facility bits, number bits, even-parity span, odd-parity span), spans as
        // (first, last) bit positions counted from 1 at the left.
        let (facility_bits, number_bits, even, odd) = match self.bits {
            26 => (8, 16, (2, 13), (14, 25)),
            34 => (16, 16, (2, 17), (18, 33)),
            37 => (16, 19, (2, 19), (19, 36)),
            _ => return None,
        };
        let n = self.bits as u32;
        let v = self.frame()?;
        let bit = |pos: u32| (v >> (n - pos)) & 1;
        let ones = |(a, b): (u32, u32)| (a..=b).map(bit).sum::<u64>();
        let even_ok = (ones(even) + bit(1)).is_multiple_of(2);
        let odd_ok = !(ones(odd) + bit(n)).is_multiple_of(2);
        if !(even_ok && odd_ok) {
            return None;
        }
        let payload = (v >> 1) & ((1u64 << (n - 2)) - 1);
        Some(WiegandCard {
            bits: self.bits,
            facility: (payload >> number_bits) as u32 & ((1u32 << facility_bits) - 1),
            number: (payload & ((1u64 << number_bits) - 1)) as u32,
        })
    }
}

/// The Wiegand frame of (facility, number) in `bits` = 26, 34 or 37 bits, left-aligned in
/// bytes as readers send it, with both parity bits.
pub fn wiegand_frame(bits: u16, facility: u32, number: u32) -> Option<Vec<u8>> {
    let (facility_bits, number_bits, even, odd): (u32, u32, (u32, u32), (u32, u32)) = match bits {
        26 => (8, 16, (2, 13), (14, 25)),
        34 => (16, 16, (2, 17), (18, 33)),
        37 => (16, 19, (2, 19), (19, 36)),
        _ => return None,
    };
    if facility >= 1 << facility_bits || number >= 1 << number_bits {
        return None;
    }
    let n = bits as u32;
    let payload = ((facility as u64) << number_bits) | number as u64;
    let mut v = payload << 1;
    let bit = |v: u64, pos: u32| (v >> (n - pos)) & 1;
    let ones = |v: u64, (a, b): (u32, u32)| (a..=b).map(|p| bit(v, p)).sum::<u64>();
    if ones(v, even) % 2 == 1 {
        v |= 1 << (n - 1);
    }
    if ones(v, odd) % 2 == 0 {
        v |= 1;
    }
    let bytes = (n as usize).div_ceil(8);
    let aligned = v << (bytes as u32 * 8 - n);
    Some(aligned.to_be_bytes()[8 - bytes..].to_vec())
}

/// The 26-bit Wiegand (H10301) frame of (facility, card), in the 4 bytes readers send.
pub fn wiegand26_frame(facility: u8, card: u16) -> [u8; 4] {
    let mut out = [0u8; 4];
    if let Some(frame) = wiegand_frame(26, facility as u32, card as u32) {
        out.copy_from_slice(&frame);
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn wiegand26_bytes(facility: u8, card: u16) -> Vec<u8> {
        wiegand26_frame(facility, card).to_vec()
    }

    #[test]
    fn parses_pdid_pdcap_raw_and_nak() {
        let id = Reply::parse(
            0x45,
            &[0xB2, 0xA1, 0x00, 7, 2, 0x78, 0x56, 0x34, 0x12, 1, 2, 3],
        )
        .expect("pdid");
        assert_eq!(
            id,
            Reply::PdId(PdIdentity {
                vendor_code: 0x00A1B2,
                model: 7,
                version: 2,
                serial_number: 0x1234_5678,
                firmware: (1, 2, 3)
            })
        );
        let cap = Reply::parse(0x46, &[4, 1, 2, 5, 1, 1]).expect("pdcap");
        assert_eq!(
            cap,
            Reply::PdCap(vec![
                Capability {
                    function: 4,
                    compliance: 1,
                    items: 2
                },
                Capability {
                    function: 5,
                    compliance: 1,
                    items: 1
                }
            ])
        );
        assert_eq!(Reply::parse(0x41, &[3]), Ok(Reply::Nak { reason: 3 }));
        assert_eq!(
            Reply::parse(0x49, &[1, 0]),
            Ok(Reply::InputStatus(vec![true, false]))
        );
        assert_eq!(
            Reply::parse(0x48, &[0, 1]),
            Ok(Reply::LocalStatus {
                tamper: false,
                power_failure: true
            })
        );
        assert!(Reply::parse(0x48, &[0]).is_err());
        let mut raw = vec![0, 1, 26, 0];
        raw.extend(wiegand26_bytes(12, 3456));
        let Ok(Reply::Raw(card)) = Reply::parse(0x50, &raw) else {
            panic!("raw")
        };
        assert_eq!(card.wiegand26(), Some((12, 3456)));
    }

    #[test]
    fn short_or_unknown_replies_are_errors() {
        assert!(matches!(
            Reply::parse(0x45, &[1, 2]),
            Err(ReplyError::Length { .. })
        ));
        assert!(matches!(
            Reply::parse(0x46, &[1, 2]),
            Err(ReplyError::Length { .. })
        ));
        assert!(matches!(
            Reply::parse(0x50, &[0, 1, 26, 0, 1]),
            Err(ReplyError::Length { .. })
        ));
        assert!(matches!(
            Reply::parse(0x41, &[]),
            Err(ReplyError::Length { .. })
        ));
        assert_eq!(Reply::parse(0x01, &[]), Err(ReplyError::UnknownCode(0x01)));
    }

    /// The wire form of a reply, as a PD would send it (test-only: the CP only parses).
    fn encode(r: &Reply) -> (u8, Vec<u8>) {
        let bits = |v: &[bool]| v.iter().map(|b| u8::from(*b)).collect::<Vec<u8>>();
        match r {
            Reply::Ack => (0x40, vec![]),
            Reply::Busy => (0x79, vec![]),
            Reply::Nak { reason } => (0x41, vec![*reason]),
            Reply::PdId(id) => {
                let v = id.vendor_code.to_le_bytes();
                let s = id.serial_number.to_le_bytes();
                (
                    0x45,
                    vec![
                        v[0],
                        v[1],
                        v[2],
                        id.model,
                        id.version,
                        s[0],
                        s[1],
                        s[2],
                        s[3],
                        id.firmware.0,
                        id.firmware.1,
                        id.firmware.2,
                    ],
                )
            }
            Reply::PdCap(caps) => (
                0x46,
                caps.iter()
                    .flat_map(|c| [c.function, c.compliance, c.items])
                    .collect(),
            ),
            Reply::Raw(c) => {
                let mut d = vec![c.reader, c.format];
                d.extend(c.bits.to_le_bytes());
                d.extend(&c.data);
                (0x50, d)
            }
            Reply::Keypad { reader, keys } => {
                let mut d = vec![*reader, keys.len() as u8];
                d.extend(keys);
                (0x53, d)
            }
            Reply::InputStatus(v) => (0x49, bits(v)),
            Reply::OutputStatus(v) => (0x4A, bits(v)),
            Reply::LocalStatus {
                tamper,
                power_failure,
            } => (0x48, vec![u8::from(*tamper), u8::from(*power_failure)]),
            Reply::Other { code, data } => (*code, data.clone()),
        }
    }

    fn any_reply() -> impl Strategy<Value = Reply> {
        prop_oneof![
            Just(Reply::Ack),
            Just(Reply::Busy),
            any::<u8>().prop_map(|reason| Reply::Nak { reason }),
            (
                0u32..1 << 24,
                any::<u8>(),
                any::<u8>(),
                any::<u32>(),
                any::<(u8, u8, u8)>()
            )
                .prop_map(|(vendor_code, model, version, serial_number, firmware)| {
                    Reply::PdId(PdIdentity {
                        vendor_code,
                        model,
                        version,
                        serial_number,
                        firmware,
                    })
                }),
            proptest::collection::vec(any::<(u8, u8, u8)>(), 0..10).prop_map(|c| Reply::PdCap(
                c.into_iter()
                    .map(|(function, compliance, items)| Capability {
                        function,
                        compliance,
                        items
                    })
                    .collect()
            )),
            (any::<u8>(), any::<u8>(), 1u16..200).prop_flat_map(|(reader, format, bits)| {
                proptest::collection::vec(any::<u8>(), (bits as usize).div_ceil(8)).prop_map(
                    move |data| {
                        Reply::Raw(CardRead {
                            reader,
                            format,
                            bits,
                            data,
                        })
                    },
                )
            }),
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..20))
                .prop_map(|(reader, keys)| Reply::Keypad { reader, keys }),
            proptest::collection::vec(any::<bool>(), 0..16).prop_map(Reply::InputStatus),
            proptest::collection::vec(any::<bool>(), 0..16).prop_map(Reply::OutputStatus),
            (any::<bool>(), any::<bool>()).prop_map(|(tamper, power_failure)| Reply::LocalStatus {
                tamper,
                power_failure
            }),
        ]
    }

    proptest! {
        #[test]
        fn every_reply_type_round_trips_through_a_packet(reply in any_reply(), seq in 0u8..4, address in 0u8..0x7F) {
            let (code, data) = encode(&reply);
            let packet = crate::packet::Packet {
                reply: true,
                ..crate::packet::Packet::command(address, crate::packet::Sequence::new(seq).expect("0-3"), code, data)
            };
            let decoded = crate::packet::Packet::decode(&packet.encode().expect("encodes")).expect("decodes");
            prop_assert_eq!(Reply::parse(decoded.code, &decoded.data), Ok(reply));
        }

        #[test]
        fn wiegand_34_and_37_round_trip_and_catch_a_flipped_bit(facility in 0u32..65536, number in 0u32..(1 << 19), bit in 0usize..37) {
            for (bits, max_number) in [(34u16, 1u32 << 16), (37, 1 << 19)] {
                let number = number % max_number;
                let data = wiegand_frame(bits, facility, number).expect("in range");
                let read = CardRead { reader: 0, format: 1, bits, data: data.clone() };
                prop_assert_eq!(read.wiegand(), Some(WiegandCard { bits, facility, number }));
                let b = bit % bits as usize;
                let mut flipped = data;
                flipped[b / 8] ^= 0x80 >> (b % 8);
                let read = CardRead { data: flipped, ..read };
                prop_assert_ne!(read.wiegand(), Some(WiegandCard { bits, facility, number }));
            }
        }

        #[test]
        fn wiegand26_round_trips_and_catches_a_flipped_bit(facility in any::<u8>(), card in any::<u16>(), bit in 0u32..26) {
            let data = wiegand26_bytes(facility, card);
            let read = CardRead { reader: 0, format: 1, bits: 26, data: data.clone() };
            prop_assert_eq!(read.wiegand26(), Some((facility, card)));
            let mut flipped = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            flipped ^= 1 << (6 + bit);
            let read = CardRead { data: flipped.to_be_bytes().to_vec(), ..read };
            prop_assert_ne!(read.wiegand26(), Some((facility, card)));
        }

        #[test]
        fn parse_never_panics(code in any::<u8>(), data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Reply::parse(code, &data);
        }
    }
}
