//! The serial side of a rollcall site: an OSDP v2 (IEC 60839-11-5) control panel that talks to
//! card readers and turnstile/door controllers on an RS-485 bus.
//!
//! Architecture invariant: knows nothing of people or decisions. Bytes from the bus are outside
//! input: every parser here returns an error for bad bytes and never panics.
//!
//! Built so far: packet framing ([`Packet`], [`FrameReader`]) with checksum and CRC-16, and the
//! command/reply codes. The bus task, secure channel and supervision come with the
//! firmware-bridge issue.

mod codes;
mod packet;
mod reader;

pub use codes::{Command, Reply};
pub use packet::{Integrity, Packet, PacketError, SecurityBlock, Sequence, checksum, crc16};
pub use reader::{FrameReader, ReadEvent};
