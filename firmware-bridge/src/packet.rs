//! One OSDP packet: header, optional security control block, command/reply code, data,
//! optional MAC, and an 8-bit checksum or a CRC-16.
//!
//! ```text
//! SOM(0x53) ADDR LEN_LSB LEN_MSB CTRL [SEC_BLK_LEN SEC_BLK_TYPE SEC_BLK_DATA…] CODE DATA… [MAC×4] CKSUM | CRC_LSB CRC_MSB
//! ```
//! LEN counts every byte from SOM to the last integrity byte. ADDR has bit 7 set on replies.
//! CTRL: bits 0–1 sequence number, bit 2 CRC (else checksum), bit 3 security block present.

use crc::{CRC_16_SPI_FUJITSU, Crc};

pub const SOM: u8 = 0x53;
/// Optional byte before SOM that marks the start of a transmission.
pub const MARK: u8 = 0xFF;
/// Address every PD answers to.
pub const BROADCAST: u8 = 0x7F;
/// Largest packet this control panel accepts or sends.
pub const MAX_PACKET: usize = 1440;

const HEADER: usize = 5;
const CTRL_SQN: u8 = 0x03;
const CTRL_CRC: u8 = 0x04;
const CTRL_SCB: u8 = 0x08;
const REPLY_BIT: u8 = 0x80;

/// CRC-16/AUG-CCITT (poly 0x1021, init 0x1D0F, not reflected), as OSDP specifies.
const OSDP_CRC: Crc<u16> = Crc::<u16>::new(&CRC_16_SPI_FUJITSU);

pub fn crc16(bytes: &[u8]) -> u16 {
    OSDP_CRC.checksum(bytes)
}

/// The 8-bit checksum: the two's complement of the byte sum.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |acc, b| acc.wrapping_add(*b))
        .wrapping_neg()
}

/// Sequence number 0–3 (0 only after a reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sequence(u8);

impl Sequence {
    pub const RESET: Sequence = Sequence(0);

    pub fn new(n: u8) -> Option<Self> {
        (n <= 3).then_some(Self(n))
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// The sequence after this one: 1, 2, 3, 1, … (0 is never reused after a reset).
    pub fn next(self) -> Self {
        Self(if self.0 >= 3 { 1 } else { self.0 + 1 })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    Checksum,
    Crc16,
}

/// The security control block of secure-channel packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityBlock {
    /// SCS_11 … SCS_18.
    pub kind: u8,
    pub data: Vec<u8>,
}

impl SecurityBlock {
    /// SCS_15 to SCS_18 carry a 4-byte MAC before the integrity bytes.
    pub fn has_mac(&self) -> bool {
        (0x15..=0x18).contains(&self.kind)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// PD address, 0x00–0x7E, or 0x7F for broadcast.
    pub address: u8,
    /// True for PD → CP replies.
    pub reply: bool,
    pub sequence: Sequence,
    pub integrity: Integrity,
    pub security: Option<SecurityBlock>,
    pub code: u8,
    pub data: Vec<u8>,
    pub mac: Option<[u8; 4]>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("packet too short: {0} bytes")]
    TooShort(usize),
    #[error("packet does not start with SOM 0x53 (found {0:#04x})")]
    BadSom(u8),
    #[error("length field says {declared} bytes, packet has {actual}")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("length {0} is outside 7..={MAX_PACKET}")]
    BadLength(usize),
    #[error("checksum {found:#04x}, expected {expected:#04x}")]
    BadChecksum { expected: u8, found: u8 },
    #[error("CRC {found:#06x}, expected {expected:#06x}")]
    BadCrc { expected: u16, found: u16 },
    #[error("malformed security control block: {0}")]
    BadSecurityBlock(&'static str),
    #[error("address {0:#04x} is above 0x7F")]
    BadAddress(u8),
    #[error("a MAC is present exactly when the security block is SCS_15..SCS_18")]
    MacMismatch,
}

impl Packet {
    /// A plain (no secure channel) CP → PD command with CRC.
    pub fn command(address: u8, sequence: Sequence, code: u8, data: Vec<u8>) -> Self {
        Self {
            address,
            reply: false,
            sequence,
            integrity: Integrity::Crc16,
            security: None,
            code,
            data,
            mac: None,
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, PacketError> {
        if self.address > BROADCAST {
            return Err(PacketError::BadAddress(self.address));
        }
        let wants_mac = self.security.as_ref().is_some_and(SecurityBlock::has_mac);
        if wants_mac != self.mac.is_some() {
            return Err(PacketError::MacMismatch);
        }
        let scb_len = self.security.as_ref().map_or(0, |s| 2 + s.data.len());
        if scb_len > 255 {
            return Err(PacketError::BadSecurityBlock("longer than 255 bytes"));
        }
        let integrity_len = match self.integrity {
            Integrity::Checksum => 1,
            Integrity::Crc16 => 2,
        };
        let len =
            HEADER + scb_len + 1 + self.data.len() + self.mac.map_or(0, |_| 4) + integrity_len;
        if len > MAX_PACKET {
            return Err(PacketError::BadLength(len));
        }
        let mut ctrl = self.sequence.0 & CTRL_SQN;
        if self.integrity == Integrity::Crc16 {
            ctrl |= CTRL_CRC;
        }
        if self.security.is_some() {
            ctrl |= CTRL_SCB;
        }
        let mut out = Vec::with_capacity(len);
        out.push(SOM);
        out.push(self.address | if self.reply { REPLY_BIT } else { 0 });
        out.extend((len as u16).to_le_bytes());
        out.push(ctrl);
        if let Some(s) = &self.security {
            out.push(scb_len as u8);
            out.push(s.kind);
            out.extend(&s.data);
        }
        out.push(self.code);
        out.extend(&self.data);
        if let Some(mac) = self.mac {
            out.extend(mac);
        }
        match self.integrity {
            Integrity::Checksum => out.push(checksum(&out)),
            Integrity::Crc16 => out.extend(crc16(&out).to_le_bytes()),
        }
        Ok(out)
    }

    /// Encodes a secure-channel packet whose MAC covers the bytes before it: `mac_of` receives
    /// SOM … last data byte (with LEN already counting the MAC and the integrity bytes) and
    /// returns the 4 MAC bytes; the checksum or CRC is computed last.
    pub fn encode_sealed(
        &self,
        mac_of: impl FnOnce(&[u8]) -> [u8; 4],
    ) -> Result<Vec<u8>, PacketError> {
        let with_placeholder = Packet {
            mac: Some([0; 4]),
            ..self.clone()
        };
        let mut bytes = with_placeholder.encode()?;
        let integrity = match self.integrity {
            Integrity::Checksum => 1,
            Integrity::Crc16 => 2,
        };
        let mac_at = bytes.len() - integrity - 4;
        let mac = mac_of(&bytes[..mac_at]);
        bytes[mac_at..mac_at + 4].copy_from_slice(&mac);
        bytes.truncate(mac_at + 4);
        match self.integrity {
            Integrity::Checksum => bytes.push(checksum(&bytes)),
            Integrity::Crc16 => bytes.extend(crc16(&bytes).to_le_bytes()),
        }
        Ok(bytes)
    }

    /// Decodes exactly one packet (starting at SOM, without the mark byte).
    pub fn decode(bytes: &[u8]) -> Result<Self, PacketError> {
        if bytes.len() < HEADER + 2 {
            return Err(PacketError::TooShort(bytes.len()));
        }
        if bytes[0] != SOM {
            return Err(PacketError::BadSom(bytes[0]));
        }
        let declared = u16::from_le_bytes([bytes[2], bytes[3]]) as usize;
        if declared != bytes.len() {
            return Err(PacketError::LengthMismatch {
                declared,
                actual: bytes.len(),
            });
        }
        let ctrl = bytes[4];
        let integrity = if ctrl & CTRL_CRC != 0 {
            Integrity::Crc16
        } else {
            Integrity::Checksum
        };
        let body_end = match integrity {
            Integrity::Checksum => {
                let end = bytes.len() - 1;
                let expected = checksum(&bytes[..end]);
                if expected != bytes[end] {
                    return Err(PacketError::BadChecksum {
                        expected,
                        found: bytes[end],
                    });
                }
                end
            }
            Integrity::Crc16 => {
                let end = bytes.len() - 2;
                let expected = crc16(&bytes[..end]);
                let found = u16::from_le_bytes([bytes[end], bytes[end + 1]]);
                if expected != found {
                    return Err(PacketError::BadCrc { expected, found });
                }
                end
            }
        };
        let mut pos = HEADER;
        let security = if ctrl & CTRL_SCB != 0 {
            let scb_len = *bytes
                .get(pos)
                .ok_or(PacketError::BadSecurityBlock("missing"))?
                as usize;
            if scb_len < 2 || pos + scb_len >= body_end {
                return Err(PacketError::BadSecurityBlock("length out of range"));
            }
            let block = SecurityBlock {
                kind: bytes[pos + 1],
                data: bytes[pos + 2..pos + scb_len].to_vec(),
            };
            pos += scb_len;
            Some(block)
        } else {
            None
        };
        let mac_len = if security.as_ref().is_some_and(SecurityBlock::has_mac) {
            4
        } else {
            0
        };
        if pos + 1 + mac_len > body_end {
            return Err(PacketError::TooShort(bytes.len()));
        }
        let code = bytes[pos];
        let data_end = body_end - mac_len;
        let data = bytes[pos + 1..data_end].to_vec();
        let mac = (mac_len == 4).then(|| {
            [
                bytes[data_end],
                bytes[data_end + 1],
                bytes[data_end + 2],
                bytes[data_end + 3],
            ]
        });
        Ok(Self {
            address: bytes[1] & !REPLY_BIT,
            reply: bytes[1] & REPLY_BIT != 0,
            sequence: Sequence(ctrl & CTRL_SQN),
            integrity,
            security,
            code,
            data,
            mac,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::Command;

    #[test]
    fn crc_is_aug_ccitt() {
        // The CRC-16/AUG-CCITT check value.
        assert_eq!(crc16(b"123456789"), 0xE5CC);
    }

    /// CRC and checksum examples of the OSDP specification (SIA, Annex E), as reproduced in
    /// libosdp's tests/unit-tests/test-sc-sia-vectors.c.
    #[test]
    fn specification_annex_e_integrity_vectors() {
        let crc1 = [
            0x53, 0x7F, 0x0D, 0x00, 0x04, 0x6E, 0x00, 0x80, 0x25, 0x00, 0x00,
        ];
        assert_eq!(crc16(&crc1).to_le_bytes(), [0x6E, 0x38]);
        let crc2 = [0x53, 0x00, 0x09, 0x00, 0x04, 0x61, 0x00];
        assert_eq!(crc16(&crc2).to_le_bytes(), [0xC0, 0x66]);
        let sum1 = [
            0x53, 0x7F, 0x0C, 0x00, 0x00, 0x6E, 0x00, 0x80, 0x25, 0x00, 0x00,
        ];
        assert_eq!(checksum(&sum1), 0x0F);
        let sum2 = [0x53, 0x00, 0x08, 0x00, 0x00, 0x61, 0x00];
        assert_eq!(checksum(&sum2), 0x44);
        // The second example is a whole packet: osdp_ID to PD 0 with CRC.
        let mut packet = crc2.to_vec();
        packet.extend([0xC0, 0x66]);
        let p = Packet::decode(&packet).expect("valid packet");
        assert_eq!(
            (p.address, p.code, p.data.as_slice()),
            (0, 0x61, &[0u8][..])
        );
    }

    #[test]
    fn checksum_makes_the_sum_zero() {
        let bytes = [0x53, 0x01, 0x08, 0x00, 0x00, 0x60];
        let c = checksum(&bytes);
        let total = bytes.iter().fold(c, |a, b| a.wrapping_add(*b));
        assert_eq!(total, 0);
    }

    #[test]
    fn a_poll_encodes_byte_for_byte() {
        // POLL to PD 0x65, sequence 1, CRC: SOM ADDR LEN=8 CTRL=0x05 CMD=0x60 CRC.
        let p = Packet::command(
            0x65,
            Sequence::new(1).expect("valid"),
            Command::Poll as u8,
            vec![],
        );
        let bytes = p.encode().expect("encodes");
        assert_eq!(&bytes[..6], &[0x53, 0x65, 0x08, 0x00, 0x05, 0x60]);
        let crc = crc16(&bytes[..6]).to_le_bytes();
        assert_eq!(&bytes[6..], &crc);
        assert_eq!(Packet::decode(&bytes), Ok(p));
    }

    #[test]
    fn corrupted_packets_are_refused() {
        let p = Packet::command(
            1,
            Sequence::new(2).expect("valid"),
            0x6A,
            vec![1, 2, 3, 4, 5],
        );
        let good = p.encode().expect("encodes");
        let mut bad = good.clone();
        bad[6] ^= 0x10;
        assert!(matches!(
            Packet::decode(&bad),
            Err(PacketError::BadCrc { .. })
        ));
        assert!(matches!(
            Packet::decode(&good[..good.len() - 1]),
            Err(PacketError::LengthMismatch { .. })
        ));
        let mut bad = good;
        bad[0] = 0x52;
        assert_eq!(Packet::decode(&bad), Err(PacketError::BadSom(0x52)));
    }

    #[test]
    fn sequence_wraps_to_one() {
        let s = Sequence::RESET;
        let seen: Vec<u8> = std::iter::successors(Some(s), |s| Some(s.next()))
            .take(6)
            .map(Sequence::get)
            .collect();
        assert_eq!(seen, [0, 1, 2, 3, 1, 2]);
        assert!(Sequence::new(4).is_none());
    }

    fn any_packet() -> impl Strategy<Value = Packet> {
        (
            0u8..=0x7F,
            any::<bool>(),
            0u8..=3,
            any::<bool>(),
            proptest::option::of((0x11u8..=0x18, proptest::collection::vec(any::<u8>(), 0..20))),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..200),
            any::<[u8; 4]>(),
        )
            .prop_map(|(address, reply, seq, crc, scb, code, data, mac)| {
                let security = scb.map(|(kind, data)| SecurityBlock { kind, data });
                let mac = security
                    .as_ref()
                    .is_some_and(SecurityBlock::has_mac)
                    .then_some(mac);
                Packet {
                    address,
                    reply,
                    sequence: Sequence(seq),
                    integrity: if crc {
                        Integrity::Crc16
                    } else {
                        Integrity::Checksum
                    },
                    security,
                    code,
                    data,
                    mac,
                }
            })
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(p in any_packet()) {
            let bytes = p.encode().expect("encodes");
            prop_assert_eq!(u16::from_le_bytes([bytes[2], bytes[3]]) as usize, bytes.len());
            prop_assert_eq!(Packet::decode(&bytes), Ok(p));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Packet::decode(&bytes);
        }

        #[test]
        fn any_single_bit_flip_is_detected_with_crc(p in any_packet(), bit in 0usize..8, at in any::<prop::sample::Index>()) {
            let p = Packet { integrity: Integrity::Crc16, ..p };
            let mut bytes = p.encode().expect("encodes");
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            prop_assert_ne!(Packet::decode(&bytes), Ok(p));
        }
    }
}
