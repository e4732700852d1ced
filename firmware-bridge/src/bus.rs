//! The bus task: one thread owns the serial port and the [`ControlPanel`], polls every PD in
//! turn, re-identifies PDs that come back, runs requests from [`BusHandle`]s between polls, and
//! reports [`BusEvent`]s. Bus errors on one PD never stop the others.

use std::{
    sync::mpsc::{self, Receiver, RecvTimeoutError, Sender},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{
    cp::{ControlPanel, CpError},
    reply::{CardRead, PdIdentity, Reply},
    secure::ScKey,
    signals::LedColor,
    transport::Transport,
};

#[derive(Debug, Clone)]
pub struct BusConfig {
    pub addresses: Vec<u8>,
    /// OSDP reply window (200 ms in the standard).
    pub reply_timeout: Duration,
    pub retries: u32,
    /// Pause between polling rounds.
    pub poll_interval: Duration,
    /// How often an offline PD is tried again.
    pub reconnect_interval: Duration,
    /// When set, every PD must open a secure channel with this key before it is used: a PD that
    /// cannot is reported (`Fault`) and never polled or pulsed in the clear.
    pub secure: Option<ScKey>,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            addresses: vec![0],
            reply_timeout: Duration::from_millis(200),
            retries: 2,
            poll_interval: Duration::from_millis(50),
            reconnect_interval: Duration::from_secs(2),
            secure: None,
        }
    }
}

/// What happened on the bus.
#[derive(Debug, Clone, PartialEq)]
pub enum BusEvent {
    /// A PD answered ID and CAP (at start, or after being offline).
    Online {
        pd: u8,
        identity: PdIdentity,
    },
    /// A PD stopped answering: an alarm.
    Offline {
        pd: u8,
    },
    CardRead {
        pd: u8,
        card: CardRead,
    },
    Keypad {
        pd: u8,
        keys: Vec<u8>,
    },
    /// The PD's inputs changed (door contact, exit button…), true when active.
    Inputs {
        pd: u8,
        inputs: Vec<bool>,
    },
    /// Tamper switch or power failure, reported by the PD.
    LocalStatus {
        pd: u8,
        tamper: bool,
        power_failure: bool,
    },
    /// A reply the bus could not use (malformed, NAK to a poll…), counted and reported.
    Fault {
        pd: u8,
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    #[error("the bus task has stopped")]
    Stopped,
    #[error("no answer from the bus task within {0:?}")]
    Busy(Duration),
    #[error("{0}")]
    Command(String),
    #[error("PD {0} is offline, or has no secure channel where one is required")]
    NotReady(u8),
}

enum Request {
    Pulse {
        pd: u8,
        output: u8,
        duration: Duration,
        done: Sender<Result<(), BusError>>,
    },
    /// Reader feedback: an LED colour for a while, and optionally beeps.
    Signal {
        pd: u8,
        color: LedColor,
        duration: Duration,
        beeps: u8,
        done: Sender<Result<(), BusError>>,
    },
    /// Text on the reader's display, for `seconds` (temporary) or permanently.
    Text {
        pd: u8,
        text: String,
        seconds: Option<u8>,
        done: Sender<Result<(), BusError>>,
    },
    Stop,
}

/// Sends requests to the bus task; cheap to clone.
#[derive(Clone)]
pub struct BusHandle {
    requests: Sender<Request>,
}

impl BusHandle {
    /// Pulses `output` of PD `pd` for `duration` (one passage), waiting for the PD's ACK.
    pub fn pulse_output(&self, pd: u8, output: u8, duration: Duration) -> Result<(), BusError> {
        self.request(|done| Request::Pulse {
            pd,
            output,
            duration,
            done,
        })
    }

    /// Shows `color` on the reader's first LED for `duration`, with `beeps` short beeps.
    pub fn signal(
        &self,
        pd: u8,
        color: LedColor,
        duration: Duration,
        beeps: u8,
    ) -> Result<(), BusError> {
        self.request(|done| Request::Signal {
            pd,
            color,
            duration,
            beeps,
            done,
        })
    }

    /// Writes `text` on the reader's first display line, for `seconds` or permanently.
    pub fn text(&self, pd: u8, text: &str, seconds: Option<u8>) -> Result<(), BusError> {
        self.request(|done| Request::Text {
            pd,
            text: text.to_owned(),
            seconds,
            done,
        })
    }

    fn request(
        &self,
        make: impl FnOnce(Sender<Result<(), BusError>>) -> Request,
    ) -> Result<(), BusError> {
        let (done, result) = mpsc::channel();
        self.requests
            .send(make(done))
            .map_err(|_| BusError::Stopped)?;
        // The poll round in progress plus the command's own retries.
        let wait = Duration::from_secs(5);
        match result.recv_timeout(wait) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(BusError::Busy(wait)),
            Err(RecvTimeoutError::Disconnected) => Err(BusError::Stopped),
        }
    }
}

/// The running bus task.
pub struct Bus {
    handle: BusHandle,
    thread: Option<JoinHandle<()>>,
}

impl Bus {
    /// Starts the task; events arrive on the returned receiver.
    pub fn spawn<T: Transport + Send + 'static>(
        transport: T,
        config: BusConfig,
    ) -> (Self, Receiver<BusEvent>) {
        let (requests, inbox) = mpsc::channel();
        let (events, outbox) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("osdp-bus".into())
            .spawn(move || run(transport, config, inbox, events));
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the OSDP bus thread");
                None
            }
        };
        (
            Self {
                handle: BusHandle { requests },
                thread,
            },
            outbox,
        )
    }

    pub fn handle(&self) -> BusHandle {
        self.handle.clone()
    }

    /// Stops the task after its current exchange and waits for it.
    pub fn stop(mut self) {
        let _ = self.handle.requests.send(Request::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A PD is used when it answers and, if the bus requires it, holds a secure channel.
fn usable<T: Transport>(cp: &ControlPanel<T>, pd: u8, config: &BusConfig) -> bool {
    cp.pd(pd)
        .is_some_and(|s| s.online && (config.secure.is_none() || s.secure()))
}

/// Identifies a PD and, when required, opens the secure channel.
fn connect<T: Transport>(
    cp: &mut ControlPanel<T>,
    pd: u8,
    config: &BusConfig,
) -> Result<PdIdentity, CpError> {
    let (identity, _) = cp.identify(pd)?;
    if let Some(key) = config.secure {
        cp.establish_secure_channel(pd, key)?;
    }
    Ok(identity)
}

fn run<T: Transport>(
    transport: T,
    config: BusConfig,
    inbox: Receiver<Request>,
    events: Sender<BusEvent>,
) {
    let mut cp = ControlPanel::new(
        transport,
        &config.addresses,
        config.reply_timeout,
        config.retries,
    );
    let mut last_try: Vec<Option<Instant>> = vec![None; config.addresses.len()];
    // Whether each PD was last reported online: it may stop answering a poll or a command,
    // and either way the offline event goes out once.
    let mut reported = vec![false; config.addresses.len()];
    let emit = |e: BusEvent| {
        let _ = events.send(e);
    };
    loop {
        for (i, &pd) in config.addresses.iter().enumerate() {
            if !usable(&cp, pd, &config) {
                if std::mem::take(&mut reported[i]) {
                    // It stopped answering a command (LED, text, relay) between polls.
                    last_try[i] = Some(Instant::now());
                    emit(BusEvent::Offline { pd });
                    continue;
                }
                if last_try[i].is_some_and(|t| t.elapsed() < config.reconnect_interval) {
                    continue;
                }
                last_try[i] = Some(Instant::now());
                match connect(&mut cp, pd, &config) {
                    Ok(identity) => {
                        reported[i] = true;
                        emit(BusEvent::Online { pd, identity });
                    }
                    Err(CpError::Timeout { .. }) => {}
                    Err(e) => emit(BusEvent::Fault {
                        pd,
                        error: e.to_string(),
                    }),
                }
                continue;
            }
            match cp.poll(pd) {
                Ok(Reply::Ack | Reply::Busy) => {}
                Ok(Reply::Raw(card)) => emit(BusEvent::CardRead { pd, card }),
                Ok(Reply::Keypad { keys, .. }) => emit(BusEvent::Keypad { pd, keys }),
                Ok(Reply::InputStatus(inputs)) => emit(BusEvent::Inputs { pd, inputs }),
                Ok(Reply::LocalStatus {
                    tamper,
                    power_failure,
                }) => emit(BusEvent::LocalStatus {
                    pd,
                    tamper,
                    power_failure,
                }),
                Ok(other) => emit(BusEvent::Fault {
                    pd,
                    error: format!("unexpected reply to POLL: {other:?}"),
                }),
                Err(CpError::Timeout { .. }) => {
                    last_try[i] = Some(Instant::now());
                    if std::mem::take(&mut reported[i]) {
                        emit(BusEvent::Offline { pd });
                    }
                }
                Err(e) => emit(BusEvent::Fault {
                    pd,
                    error: e.to_string(),
                }),
            }
        }
        // Requests wait at most one poll interval; then the next round starts.
        let deadline = Instant::now() + config.poll_interval;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match inbox.recv_timeout(left) {
                Ok(Request::Pulse {
                    pd,
                    output,
                    duration,
                    done,
                }) => {
                    let r = if usable(&cp, pd, &config) {
                        cp.pulse_output(pd, output, duration)
                            .map_err(|e| BusError::Command(e.to_string()))
                    } else {
                        Err(BusError::NotReady(pd))
                    };
                    let _ = done.send(r);
                }
                Ok(Request::Signal {
                    pd,
                    color,
                    duration,
                    beeps,
                    done,
                }) => {
                    if !usable(&cp, pd, &config) {
                        let _ = done.send(Err(BusError::NotReady(pd)));
                        continue;
                    }
                    let mut r = cp.led(pd, 0, 0, color, Some(duration));
                    if r.is_ok() && beeps > 0 {
                        r = cp.buzz(
                            pd,
                            0,
                            Duration::from_millis(200),
                            Duration::from_millis(100),
                            beeps,
                        );
                    }
                    let _ = done.send(r.map_err(|e| BusError::Command(e.to_string())));
                }
                Ok(Request::Text {
                    pd,
                    text,
                    seconds,
                    done,
                }) => {
                    let r = if usable(&cp, pd, &config) {
                        cp.text(pd, 0, 0, 0, &text, seconds)
                            .map_err(|e| BusError::Command(e.to_string()))
                    } else {
                        Err(BusError::NotReady(pd))
                    };
                    let _ = done.send(r);
                }
                Ok(Request::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
    }
}
