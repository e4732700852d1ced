//! The control panel: addresses PDs on one bus in turn, with sequence numbers, a reply window,
//! retries, and online/offline state per PD. Blocking; the async bus task wraps it.

use std::{
    collections::BTreeMap,
    io,
    time::{Duration, Instant},
};

use crate::{
    codes::Command,
    packet::{Packet, PacketError, SecurityBlock, Sequence},
    reader::{FrameReader, ReadEvent},
    reply::{Capability, PdIdentity, Reply, ReplyError},
    secure::{ScKey, SessionKeys, same_mac},
    signals::{LedColor, buzzer_record, led_record, text_record},
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
    #[error("{0}")]
    InvalidArgument(String),
    #[error("secure channel with PD {address:#04x}: {reason}")]
    SecureChannel { address: u8, reason: String },
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
    secure: Option<Session>,
}

/// An established secure channel: the session keys and the two MAC chains.
#[derive(Clone)]
struct Session {
    keys: SessionKeys,
    /// The last command MAC (the IV of the next reply's MAC).
    c_mac: [u8; 16],
    /// The last reply MAC (the IV of the next command's MAC).
    r_mac: [u8; 16],
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session(…)")
    }
}

impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        self.c_mac == other.c_mac && self.r_mac == other.r_mac
    }
}

impl PdState {
    /// True while a secure channel is established with this PD.
    pub fn secure(&self) -> bool {
        self.secure.is_some()
    }
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
                            secure: None,
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
    /// silence; after the last attempt the PD is offline, its sequence restarts at 0 and any
    /// secure channel is closed. Inside a secure channel the command is MACed (and its data
    /// encrypted) and the reply must carry a valid MAC.
    pub fn command(
        &mut self,
        address: u8,
        command: Command,
        data: &[u8],
    ) -> Result<Reply, CpError> {
        let packet = self.exchange(address, command as u8, data, None)?;
        Reply::parse(packet.code, &packet.data).map_err(|e| {
            self.stats.bad_replies += 1;
            tracing::warn!(pd = address, error = %e, "malformed reply");
            e.into()
        })
    }

    /// One command/reply exchange; `handshake` is the security block of CHLNG/SCRYPT.
    fn exchange(
        &mut self,
        address: u8,
        code: u8,
        data: &[u8],
        handshake: Option<SecurityBlock>,
    ) -> Result<Packet, CpError> {
        let pd = self
            .pds
            .get_mut(&address)
            .ok_or(CpError::UnknownPd(address))?;
        let sequence = pd.sequence;
        let mut packet = Packet::command(address, sequence, code, data.to_vec());
        let (bytes, sent_mac) = match (&mut pd.secure, handshake) {
            (_, Some(block)) => {
                packet.security = Some(block);
                (packet.encode()?, None)
            }
            (Some(session), None) => {
                let kind = if data.is_empty() { 0x15 } else { 0x17 };
                packet.security = Some(SecurityBlock {
                    kind,
                    data: Vec::new(),
                });
                if !data.is_empty() {
                    packet.data = session.keys.encrypt(&session.r_mac, data);
                }
                let (keys, iv) = (session.keys.clone(), session.r_mac);
                let mut full = [0u8; 16];
                let bytes = packet.encode_sealed(|m| {
                    full = keys.mac(&iv, m);
                    [full[0], full[1], full[2], full[3]]
                })?;
                (bytes, Some(full))
            }
            (None, None) => (packet.encode()?, None),
        };
        if let (Some(mac), Some(session)) = (
            sent_mac,
            self.pds.get_mut(&address).and_then(|p| p.secure.as_mut()),
        ) {
            session.c_mac = mac;
        }
        let attempts = self.retries + 1;
        for attempt in 1..=attempts {
            self.transport.send(&bytes)?;
            if let Some(reply) = self.await_reply(address, sequence)? {
                let reply = self.open_reply(address, reply)?;
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
            pd.secure = None;
        }
        Err(CpError::Timeout { address, attempts })
    }

    /// Checks a reply's MAC and decrypts its data when a secure channel is open.
    fn open_reply(&mut self, address: u8, mut reply: Packet) -> Result<Packet, CpError> {
        let Some(pd) = self.pds.get_mut(&address) else {
            return Err(CpError::UnknownPd(address));
        };
        let Some(session) = pd.secure.as_mut() else {
            return Ok(reply);
        };
        let fail = |reason: &str| CpError::SecureChannel {
            address,
            reason: reason.to_owned(),
        };
        let kind = reply.security.as_ref().map(|s| s.kind);
        let Some(got) = reply.mac.filter(|_| matches!(kind, Some(0x16 | 0x18))) else {
            pd.secure = None;
            return Err(fail("the reply is not MACed: session closed"));
        };
        let bytes = reply.encode()?;
        let crc_len = match reply.integrity {
            crate::packet::Integrity::Crc16 => 2,
            crate::packet::Integrity::Checksum => 1,
        };
        let expected = session
            .keys
            .mac(&session.c_mac, &bytes[..bytes.len() - crc_len - 4]);
        if !same_mac(&expected[..4], &got) {
            pd.secure = None;
            return Err(fail("the reply's MAC is wrong: session closed"));
        }
        session.r_mac = expected;
        if kind == Some(0x18) {
            reply.data = session
                .keys
                .decrypt(&session.c_mac, &reply.data)
                .ok_or_else(|| fail("the reply's data does not decrypt"))?;
        }
        Ok(reply)
    }

    /// Opens a secure channel: CHLNG with a fresh random, checks the PD's cryptogram (proof that
    /// it holds `key`), SCRYPT with ours, and checks the initial R-MAC.
    pub fn establish_secure_channel(&mut self, address: u8, key: ScKey) -> Result<(), CpError> {
        let fail = |reason: String| CpError::SecureChannel { address, reason };
        let pd = self
            .pds
            .get_mut(&address)
            .ok_or(CpError::UnknownPd(address))?;
        pd.secure = None;
        let mut cp_random = [0u8; 8];
        getrandom::fill(&mut cp_random).map_err(|e| fail(format!("no randomness: {e}")))?;
        let block = |kind| SecurityBlock {
            kind,
            data: vec![key.selector()],
        };
        let ccrypt = self.exchange(
            address,
            Command::Challenge as u8,
            &cp_random,
            Some(block(0x11)),
        )?;
        if ccrypt.code != 0x76 || ccrypt.data.len() != 32 {
            return Err(fail(format!(
                "expected CCRYPT with 32 bytes, got reply {:#04x} with {}",
                ccrypt.code,
                ccrypt.data.len()
            )));
        }
        let mut pd_random = [0u8; 8];
        pd_random.copy_from_slice(&ccrypt.data[8..16]);
        let keys = SessionKeys::derive(key.bytes(), &cp_random);
        if !same_mac(
            &keys.client_cryptogram(&cp_random, &pd_random),
            &ccrypt.data[16..32],
        ) {
            return Err(fail(
                "the PD's cryptogram does not match: it holds another key".into(),
            ));
        }
        let server = keys.server_cryptogram(&cp_random, &pd_random);
        let rmac = self.exchange(
            address,
            Command::ServerCryptogram as u8,
            &server,
            Some(block(0x13)),
        )?;
        let accepted = rmac.security.as_ref().and_then(|s| s.data.first()) == Some(&0x01);
        let expected = keys.initial_rmac(&server);
        if rmac.code != 0x78 || !accepted || !same_mac(&rmac.data, &expected) {
            return Err(fail(
                "the PD refused our cryptogram or sent a wrong initial R-MAC".into(),
            ));
        }
        let pd = self
            .pds
            .get_mut(&address)
            .ok_or(CpError::UnknownPd(address))?;
        pd.secure = Some(Session {
            keys,
            c_mac: [0; 16],
            r_mac: expected,
        });
        tracing::info!(pd = address, key = ?key, "secure channel established");
        Ok(())
    }

    /// Installs the PD's own SCBK (osdp_KEYSET, inside a secure channel); the current session
    /// ends and the next one must be opened with the new key.
    pub fn install_key(&mut self, address: u8, scbk: [u8; 16]) -> Result<(), CpError> {
        if !self.pds.get(&address).is_some_and(PdState::secure) {
            return Err(CpError::SecureChannel {
                address,
                reason: "KEYSET is only sent inside a secure channel".into(),
            });
        }
        let mut data = vec![0x01, 16];
        data.extend_from_slice(&scbk);
        self.expect_ack(address, Command::KeySet, &data)?;
        if let Some(pd) = self.pds.get_mut(&address) {
            pd.secure = None;
        }
        Ok(())
    }

    /// Reads until a reply from `address` with `sequence` arrives or the window closes.
    fn await_reply(&mut self, address: u8, sequence: Sequence) -> Result<Option<Packet>, CpError> {
        let deadline = Instant::now() + self.reply_timeout;
        let mut buf = [0u8; 512];
        loop {
            while let Some(event) = self.reader.next_event() {
                match event {
                    ReadEvent::Packet(p)
                        if p.reply && p.address == address && p.sequence == sequence =>
                    {
                        return Ok(Some(p));
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

    /// osdp_COMSET: moves the PD to `new_address` at `baud`. On the PD's osdp_COM answer the PD
    /// is known under its new address (the bus must then be reopened at the new baud, if it
    /// changed).
    pub fn comset(&mut self, address: u8, new_address: u8, baud: u32) -> Result<(), CpError> {
        if new_address > 126 {
            return Err(CpError::InvalidArgument(format!(
                "new address {new_address} is outside 0-126"
            )));
        }
        let mut data = vec![new_address];
        data.extend(baud.to_le_bytes());
        match self.command(address, Command::ComSet, &data)? {
            Reply::Other { code: 0x54, data } if data.first() == Some(&new_address) => {
                if let Some(mut pd) = self.pds.remove(&address) {
                    pd.address = new_address;
                    pd.sequence = Sequence::RESET;
                    pd.online = false;
                    pd.secure = None;
                    self.pds.insert(new_address, pd);
                }
                Ok(())
            }
            Reply::Nak { reason } => Err(CpError::Nak { address, reason }),
            reply => Err(unexpected(address, reply)),
        }
    }

    /// osdp_ISTAT: the PD's inputs now (true = active).
    pub fn input_status(&mut self, address: u8) -> Result<Vec<bool>, CpError> {
        match self.command(address, Command::InputStatus, &[])? {
            Reply::InputStatus(inputs) => Ok(inputs),
            reply => Err(unexpected(address, reply)),
        }
    }

    /// osdp_OSTAT: the PD's outputs now (true = on).
    pub fn output_status(&mut self, address: u8) -> Result<Vec<bool>, CpError> {
        match self.command(address, Command::OutputStatus, &[])? {
            Reply::OutputStatus(outputs) => Ok(outputs),
            reply => Err(unexpected(address, reply)),
        }
    }

    /// osdp_LSTAT: tamper and power failure, as `(tamper, power_failure)`.
    pub fn local_status(&mut self, address: u8) -> Result<(bool, bool), CpError> {
        match self.command(address, Command::LocalStatus, &[])? {
            Reply::LocalStatus {
                tamper,
                power_failure,
            } => Ok((tamper, power_failure)),
            reply => Err(unexpected(address, reply)),
        }
    }

    /// Shows `color` on LED `led` of reader `reader`: for `duration`, or permanently (`None`).
    pub fn led(
        &mut self,
        address: u8,
        reader: u8,
        led: u8,
        color: LedColor,
        duration: Option<Duration>,
    ) -> Result<(), CpError> {
        self.expect_ack(
            address,
            Command::Led,
            &led_record(reader, led, color, duration),
        )
    }

    /// Beeps `count` times.
    pub fn buzz(
        &mut self,
        address: u8,
        reader: u8,
        on: Duration,
        off: Duration,
        count: u8,
    ) -> Result<(), CpError> {
        self.expect_ack(
            address,
            Command::Buzzer,
            &buzzer_record(reader, on, off, count),
        )
    }

    /// Writes `text` on the reader's display.
    pub fn text(
        &mut self,
        address: u8,
        reader: u8,
        row: u8,
        column: u8,
        text: &str,
        temporary_seconds: Option<u8>,
    ) -> Result<(), CpError> {
        self.expect_ack(
            address,
            Command::Text,
            &text_record(reader, row, column, text, temporary_seconds),
        )
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
    fn status_queries_send_their_command_and_read_their_reply() {
        let mut c = cp(vec![
            Some((0x49, vec![1, 0, 1])),
            Some((0x4A, vec![0, 1])),
            Some((0x48, vec![1, 0])),
            Some((0x40, vec![])),
        ]);
        assert_eq!(c.input_status(0x65).expect("ISTATR"), [true, false, true]);
        assert_eq!(c.output_status(0x65).expect("OSTATR"), [false, true]);
        assert_eq!(c.local_status(0x65).expect("LSTATR"), (true, false));
        assert!(
            matches!(c.input_status(0x65), Err(CpError::Unexpected { .. })),
            "ACK is not an input report"
        );
        let codes: Vec<u8> = c.transport.sent.iter().map(|p| p.code).collect();
        assert_eq!(codes, [0x65, 0x66, 0x64, 0x65]);
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
        assert!(matches!(
            c.comset(0x65, 127, 9600),
            Err(CpError::InvalidArgument(_))
        ));
    }
}
