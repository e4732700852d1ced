//! The control panel: addresses PDs on one bus in turn, with sequence numbers, a reply window,
//! retries, and online/offline state per PD. Blocking; the async bus task wraps it.

use std::{
    collections::BTreeMap,
    io,
    time::{Duration, Instant},
};

use crate::{
    codes::Command,
    packet::{Packet, PacketError, Sequence},
    reader::{FrameReader, ReadEvent},
    reply::{Capability, PdIdentity, Reply, ReplyError},
    transport::Transport,
};

#[derive(Debug, thiserror::Error)]
pub enum CpError {
    #[error("serial I/O: {0}")]
    Io(#[from] io::Error),
    #[error("PD {address:#04x} did not answer ({attempts} attempts)")]
    Timeout { address: u8, attempts: u32 },
    #[error("PD {address:#04x} refused the command (NAK reason {reason})")]
    Nak { address: u8, reason: u8 },
    #[error("PD {address:#04x} answered with something unexpected: {reply:?}")]
    Unexpected { address: u8, reply: Reply },
    #[error("PD {0:#04x} is not configured on this bus")]
    UnknownPd(u8),
    #[error(transparent)]
    Packet(#[from] PacketError),
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

/// What the control panel knows of one PD.
#[derive(Debug, Clone, PartialEq)]
pub struct PdState {
    pub address: u8,
    pub online: bool,
    pub identity: Option<PdIdentity>,
    pub capabilities: Vec<Capability>,
    sequence: Sequence,
}

/// Counters of what went wrong on the bus, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    pub noise_bytes: u64,
    pub invalid_frames: u64,
    pub bad_replies: u64,
    pub timeouts: u64,
}

pub struct ControlPanel<T: Transport> {
    transport: T,
    reader: FrameReader,
    pds: BTreeMap<u8, PdState>,
    reply_timeout: Duration,
    retries: u32,
    stats: BusStats,
}

impl<T: Transport> ControlPanel<T> {
    /// A control panel for the PDs at `addresses`; `reply_timeout` is the OSDP reply window
    /// (200 ms in the standard).
    pub fn new(transport: T, addresses: &[u8], reply_timeout: Duration, retries: u32) -> Self {
        Self {
            transport,
            reader: FrameReader::new(),
            pds: addresses
                .iter()
                .map(|&a| {
                    (
                        a,
                        PdState {
                            address: a,
                            online: false,
                            identity: None,
                            capabilities: Vec::new(),
                            sequence: Sequence::RESET,
                        },
                    )
                })
                .collect(),
            reply_timeout,
            retries,
            stats: BusStats::default(),
        }
    }

    pub fn pd(&self, address: u8) -> Option<&PdState> {
        self.pds.get(&address)
    }

    pub fn stats(&self) -> BusStats {
        self.stats
    }

    /// Sends a command and returns the PD's reply. Retries with the same sequence number on
    /// silence; after the last attempt the PD is offline and its sequence restarts at 0.
    pub fn command(
        &mut self,
        address: u8,
        command: Command,
        data: &[u8],
    ) -> Result<Reply, CpError> {
        let sequence = self
            .pds
            .get(&address)
            .ok_or(CpError::UnknownPd(address))?
            .sequence;
        let bytes = Packet::command(address, sequence, command as u8, data.to_vec()).encode()?;
        let attempts = self.retries + 1;
        for attempt in 1..=attempts {
            self.transport.send(&bytes)?;
            if let Some(reply) = self.await_reply(address, sequence)? {
                let pd = self
                    .pds
                    .get_mut(&address)
                    .ok_or(CpError::UnknownPd(address))?;
                pd.sequence = sequence.next();
                if !pd.online {
                    tracing::info!(pd = address, "PD online");
                }
                pd.online = true;
                return Ok(reply);
            }
            tracing::debug!(pd = address, attempt, "no reply");
        }
        self.stats.timeouts += 1;
        if let Some(pd) = self.pds.get_mut(&address) {
            if pd.online {
                tracing::warn!(pd = address, "PD offline");
            }
            pd.online = false;
            pd.sequence = Sequence::RESET;
        }
        Err(CpError::Timeout { address, attempts })
    }

    /// Reads until a reply from `address` with `sequence` arrives or the window closes.
    fn await_reply(&mut self, address: u8, sequence: Sequence) -> Result<Option<Reply>, CpError> {
        let deadline = Instant::now() + self.reply_timeout;
        let mut buf = [0u8; 512];
        loop {
            while let Some(event) = self.reader.next_event() {
                match event {
                    ReadEvent::Packet(p)
                        if p.reply && p.address == address && p.sequence == sequence =>
                    {
                        return match Reply::parse(p.code, &p.data) {
                            Ok(r) => Ok(Some(r)),
                            Err(e) => {
                                self.stats.bad_replies += 1;
                                tracing::warn!(pd = address, error = %e, "malformed reply");
                                Err(e.into())
                            }
                        };
                    }
                    // Our own command echoed by a half-duplex adapter, or a stale reply.
                    ReadEvent::Packet(_) => {}
                    ReadEvent::Noise(n) => self.stats.noise_bytes += n as u64,
                    ReadEvent::Invalid(e) => {
                        self.stats.invalid_frames += 1;
                        tracing::debug!(error = %e, "invalid frame on the bus");
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                // A partial frame left after the window belongs to no one.
                self.reader.clear();
                return Ok(None);
            }
            let n = self.transport.recv(&mut buf, deadline - now)?;
            self.reader.push(&buf[..n]);
        }
    }

    /// ID and CAP: who the PD is and what it can do (also re-run when it comes back online).
    pub fn identify(&mut self, address: u8) -> Result<(PdIdentity, Vec<Capability>), CpError> {
        let id = match self.command(address, Command::Id, &[0])? {
            Reply::PdId(id) => id,
            reply => return Err(unexpected(address, reply)),
        };
        let caps = match self.command(address, Command::Cap, &[0])? {
            Reply::PdCap(c) => c,
            reply => return Err(unexpected(address, reply)),
        };
        if let Some(pd) = self.pds.get_mut(&address) {
            pd.identity = Some(id);
            pd.capabilities = caps.clone();
        }
        Ok((id, caps))
    }

    /// POLL: the PD's pending event (a card read, keypad…) or a plain ACK.
    pub fn poll(&mut self, address: u8) -> Result<Reply, CpError> {
        self.command(address, Command::Poll, &[])
    }

    /// Turns `output` on for `duration` (rounded to 100 ms, at most 6553.5 s), then back to its
    /// permanent state: one passage through a turnstile.
    pub fn pulse_output(
        &mut self,
        address: u8,
        output: u8,
        duration: Duration,
    ) -> Result<(), CpError> {
        let ticks = (duration.as_millis() / 100).clamp(1, u16::MAX as u128) as u16;
        let [lo, hi] = ticks.to_le_bytes();
        // Control code 5: temporary on, then resume the permanent state.
        self.expect_ack(address, Command::Output, &[output, 5, lo, hi])
    }

    fn expect_ack(&mut self, address: u8, command: Command, data: &[u8]) -> Result<(), CpError> {
        match self.command(address, command, data)? {
            Reply::Ack => Ok(()),
            Reply::Nak { reason } => Err(CpError::Nak { address, reason }),
            reply => Err(unexpected(address, reply)),
        }
    }
}

fn unexpected(address: u8, reply: Reply) -> CpError {
    CpError::Unexpected { address, reply }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::packet::{Integrity, Packet};

    /// A scripted PD: answers each command with the next scripted reply (or stays silent).
    struct Script {
        replies: VecDeque<Option<(u8, Vec<u8>)>>,
        sent: Vec<Packet>,
        pending: Vec<u8>,
    }

    impl Transport for Script {
        fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
            let p = Packet::decode(bytes).map_err(io::Error::other)?;
            if let Some(Some((code, data))) = self.replies.pop_front() {
                let reply = Packet {
                    reply: true,
                    code,
                    data,
                    integrity: Integrity::Crc16,
                    ..p.clone()
                };
                self.pending.extend([0xFF, 0x00]); // mark byte and a stray byte
                self.pending
                    .extend(reply.encode().map_err(io::Error::other)?);
            }
            self.sent.push(p);
            Ok(())
        }

        fn recv(&mut self, buf: &mut [u8], _timeout: Duration) -> io::Result<usize> {
            let n = self.pending.len().min(buf.len()).min(3); // dribble in, as a UART does
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }

    fn cp(replies: Vec<Option<(u8, Vec<u8>)>>) -> ControlPanel<Script> {
        ControlPanel::new(
            Script {
                replies: replies.into(),
                sent: Vec::new(),
                pending: Vec::new(),
            },
            &[0x65],
            Duration::from_millis(20),
            1,
        )
    }

    #[test]
    fn sequence_starts_at_zero_advances_and_retries_keep_it() {
        let mut c = cp(vec![
            Some((0x40, vec![])),
            None,
            Some((0x40, vec![])),
            Some((0x40, vec![])),
        ]);
        assert_eq!(c.poll(0x65).expect("ack"), Reply::Ack);
        assert_eq!(c.poll(0x65).expect("ack after a retry"), Reply::Ack);
        assert_eq!(c.poll(0x65).expect("ack"), Reply::Ack);
        let seqs: Vec<u8> = c.transport.sent.iter().map(|p| p.sequence.get()).collect();
        assert_eq!(seqs, [0, 1, 1, 2]);
        assert!(c.pd(0x65).expect("configured").online);
        assert_eq!(c.stats().noise_bytes, 3, "one stray byte per reply");
    }

    #[test]
    fn silence_marks_the_pd_offline_and_restarts_the_sequence() {
        let mut c = cp(vec![Some((0x40, vec![])), None, None, Some((0x40, vec![]))]);
        c.poll(0x65).expect("ack");
        assert!(matches!(
            c.poll(0x65),
            Err(CpError::Timeout { attempts: 2, .. })
        ));
        assert!(!c.pd(0x65).expect("configured").online);
        c.poll(0x65).expect("back");
        let seqs: Vec<u8> = c.transport.sent.iter().map(|p| p.sequence.get()).collect();
        assert_eq!(seqs, [0, 1, 1, 0]);
        assert_eq!(c.stats().timeouts, 1);
    }

    #[test]
    fn nak_and_malformed_replies_are_errors_not_panics() {
        let mut c = cp(vec![Some((0x41, vec![1])), Some((0x45, vec![1, 2, 3]))]);
        assert!(matches!(
            c.pulse_output(0x65, 0, Duration::from_millis(500)),
            Err(CpError::Nak { reason: 1, .. })
        ));
        assert!(matches!(c.identify(0x65), Err(CpError::Reply(_))));
        assert_eq!(c.stats().bad_replies, 1);
        let out = &c.transport.sent[0];
        assert_eq!((out.code, out.data.as_slice()), (0x68, &[0, 5, 5, 0][..]));
        assert!(matches!(c.poll(0x66), Err(CpError::UnknownPd(0x66))));
    }
}
