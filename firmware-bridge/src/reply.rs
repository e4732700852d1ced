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

/// The 26-bit Wiegand (H10301) frame of (facility, card): even parity, 8-bit facility, 16-bit
/// card number, odd parity, left-aligned in 4 bytes as readers send it.
pub fn wiegand26_frame(facility: u8, card: u16) -> [u8; 4] {
    let payload = ((facility as u32) << 16) | card as u32;
    let even = (payload >> 12).count_ones() % 2;
    let odd = 1 - (payload & 0xFFF).count_ones() % 2;
    (((even << 25) | (payload << 1) | odd) << 6).to_be_bytes()
}

impl CardRead {
    /// The card number of a 26-bit Wiegand read (H10301): 8-bit facility code and 16-bit card
    /// number between two parity bits; `None` for another length or a parity error.
    pub fn wiegand26(&self) -> Option<(u8, u16)> {
        if self.bits != 26 || self.data.len() < 4 {
            return None;
        }
        let raw = u32::from_be_bytes([self.data[0], self.data[1], self.data[2], self.data[3]]) >> 6;
        let even = (raw >> 25) & 1;
        let odd = raw & 1;
        let first = (raw >> 13) & 0xFFF;
        let second = (raw >> 1) & 0xFFF;
        let even_ok = (first.count_ones() + even).is_multiple_of(2);
        let odd_ok = (second.count_ones() + odd) % 2 == 1;
        (even_ok && odd_ok).then_some((((raw >> 17) & 0xFF) as u8, ((raw >> 1) & 0xFFFF) as u16))
    }
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

    proptest! {
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
