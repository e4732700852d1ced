//! Command (CP → PD) and reply (PD → CP) codes of OSDP v2.

/// Commands a control panel sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Command {
    Poll = 0x60,
    Id = 0x61,
    Cap = 0x62,
    LocalStatus = 0x64,
    InputStatus = 0x65,
    OutputStatus = 0x66,
    ReaderStatus = 0x67,
    Output = 0x68,
    Led = 0x69,
    Buzzer = 0x6A,
    Text = 0x6B,
    ComSet = 0x6E,
    KeySet = 0x75,
    Challenge = 0x76,
    ServerCryptogram = 0x77,
    AcuRxSize = 0x7B,
    Manufacturer = 0x80,
}

/// Replies a peripheral device sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reply {
    Ack = 0x40,
    Nak = 0x41,
    PdId = 0x45,
    PdCap = 0x46,
    LocalStatus = 0x48,
    InputStatus = 0x49,
    OutputStatus = 0x4A,
    ReaderStatus = 0x4B,
    Raw = 0x50,
    Keypad = 0x53,
    Com = 0x54,
    ClientCryptogram = 0x76,
    InitialRmac = 0x78,
    Busy = 0x79,
    ManufacturerReply = 0x90,
}

macro_rules! from_byte {
    ($t:ty, $($v:ident),+) => {
        impl TryFrom<u8> for $t {
            type Error = u8;
            fn try_from(b: u8) -> Result<Self, u8> {
                $(if b == <$t>::$v as u8 { return Ok(<$t>::$v); })+
                Err(b)
            }
        }
    };
}

from_byte!(
    Command,
    Poll,
    Id,
    Cap,
    LocalStatus,
    InputStatus,
    OutputStatus,
    ReaderStatus,
    Output,
    Led,
    Buzzer,
    Text,
    ComSet,
    KeySet,
    Challenge,
    ServerCryptogram,
    AcuRxSize,
    Manufacturer
);
from_byte!(
    Reply,
    Ack,
    Nak,
    PdId,
    PdCap,
    LocalStatus,
    InputStatus,
    OutputStatus,
    ReaderStatus,
    Raw,
    Keypad,
    Com,
    ClientCryptogram,
    InitialRmac,
    Busy,
    ManufacturerReply
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_bytes_are_refused() {
        for b in 0..=255u8 {
            if let Ok(c) = Command::try_from(b) {
                assert_eq!(c as u8, b);
            }
            if let Ok(r) = Reply::try_from(b) {
                assert_eq!(r as u8, b);
            }
        }
        assert_eq!(Command::try_from(0x60), Ok(Command::Poll));
        assert_eq!(Reply::try_from(0x50), Ok(Reply::Raw));
        assert_eq!(Reply::try_from(0x00), Err(0x00));
    }
}
