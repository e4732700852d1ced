//! The serial side of a rollcall site: an OSDP v2 (IEC 60839-11-5) control panel that talks to
//! card readers and turnstile/door controllers on an RS-485 bus.
//!
//! Architecture invariant: knows nothing of people or decisions. Bytes from the bus are outside
//! input: every parser here returns an error for bad bytes and never panics.
//!
//! Built so far: packet framing ([`Packet`], [`FrameReader`]) with checksum and CRC-16, the
//! command/reply codes, reply parsing ([`Reply`], Wiegand 26 decoding) and a blocking
//! [`ControlPanel`] (sequence numbers, reply window, retries, online/offline per PD) over a
//! [`Transport`] such as a [`SerialTransport`]. It is tested against LibOSDP's PD on a pty. The
//! [`Bus`] task (a thread owning the port: polling, re-identification, requests, events). Secure
//! channel, LED/buzzer/text and door supervision come with the firmware-bridge issue.

mod bus;
mod codes;
mod cp;
mod door;
mod packet;
mod reader;
mod reply;
mod secure;
mod signals;
mod transport;

pub use bus::{Bus, BusConfig, BusError, BusEvent, BusHandle};
pub use codes::{Command, Reply as ReplyCode};
pub use cp::{BusStats, ControlPanel, CpError, PdState};
pub use door::{DoorAlarm, DoorMonitor};
pub use packet::{Integrity, Packet, PacketError, SecurityBlock, Sequence, checksum, crc16};
pub use reader::{FrameReader, ReadEvent};
pub use reply::{
    Capability, CardRead, PdIdentity, Reply, ReplyError, WiegandCard, wiegand_frame,
    wiegand26_frame,
};
pub use secure::{SCBK_DEFAULT, ScKey};
pub use signals::LedColor;
pub use transport::{SerialTransport, Transport};

/// Entry points for `cargo fuzz` (feature `fuzzing`): secure-channel decoding of arbitrary
/// reply bytes, which is otherwise only reachable inside an established session.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use crate::secure::{SCBK_DEFAULT, SessionKeys, same_mac};

    /// Verifies a MAC over and decrypts `data` as a secure-channel reply would be; must never
    /// panic, whatever the bytes.
    pub fn secure_reply(data: &[u8]) {
        let keys = SessionKeys::derive(&SCBK_DEFAULT, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let (body, mac) = data.split_at(data.len().saturating_sub(4));
        let expected = keys.mac(&[0; 16], body);
        let _ = same_mac(&expected[..4], mac);
        let _ = keys.decrypt(&expected, body);
    }
}
