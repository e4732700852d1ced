//! The turnstile and reader on the site's OSDP bus: the bus task is started from `[osdp]`, a
//! granted check-in pulses the turnstile relay for one passage, and bus events (PD online and
//! offline alarms, card reads, faults) go to the log and the metrics.

use parking_lot::Mutex;
use std::{
    collections::BTreeSet,
    sync::{Arc, mpsc::RecvTimeoutError},
    time::{Duration, Instant},
};

use rollcall_firmware_bridge::{
    Bus, BusConfig, BusError, BusEvent, BusHandle, CardRead, DoorAlarm, DoorMonitor, LedColor,
    ScKey, SerialTransport,
};
use rollcall_protocol::wire::Decision;

use crate::{
    config::OsdpSection,
    live::{LiveFeed, LiveItem},
    metrics::Metrics,
    store::NodeStore,
};

/// Opens the turnstile for one person.
#[derive(Clone)]
pub struct Turnstile {
    bus: BusHandle,
    pd: u8,
    output: u8,
    pulse: Duration,
    /// Door supervision, when a door contact is wired.
    door: Option<Arc<Mutex<DoorMonitor>>>,
}

impl Turnstile {
    /// Pulses the relay; blocking (waits for the PD's ACK).
    pub fn open_for_one(&self) -> Result<(), BusError> {
        self.bus.pulse_output(self.pd, self.output, self.pulse)?;
        if let Some(door) = &self.door {
            door.lock().granted(Instant::now());
        }
        Ok(())
    }

    /// Reader feedback for a decision on reader `pd` (the turnstile's when `None`): green for
    /// granted, amber and a beep for review, red and two beeps for denied, each for two seconds.
    pub fn signal(&self, pd: Option<u8>, decision: Decision) -> Result<(), BusError> {
        let (color, beeps) = match decision {
            Decision::Granted => (LedColor::Green, 0),
            Decision::Review => (LedColor::Amber, 1),
            Decision::Denied => (LedColor::Red, 2),
        };
        self.bus
            .signal(pd.unwrap_or(self.pd), color, Duration::from_secs(2), beeps)
    }

    /// Greets the person on reader `pd`'s display (the turnstile's when `None`) for a few
    /// seconds.
    pub fn greet(&self, pd: Option<u8>, name: &str) -> Result<(), BusError> {
        self.bus
            .text(pd.unwrap_or(self.pd), &format!("Welcome {name}"), Some(4))
    }

    /// A card was accepted at reader `pd`: amber while its holder's face is awaited, and a
    /// prompt.
    pub fn card_accepted(&self, pd: u8, name: &str, window: Duration) -> Result<(), BusError> {
        self.bus.signal(pd, LedColor::Amber, window, 0)?;
        self.bus
            .text(pd, &format!("{name}: look at the camera"), Some(4))
    }

    /// A refused card at reader `pd`: red, two beeps, and `why` on the display.
    pub fn card_refused(&self, pd: u8, why: &str) -> Result<(), BusError> {
        self.bus
            .signal(pd, LedColor::Red, Duration::from_secs(2), 2)?;
        self.bus.text(pd, why, Some(4))
    }

    pub fn describe(&self) -> String {
        format!(
            "output {} of PD {} for {} ms",
            self.output,
            self.pd,
            self.pulse.as_millis()
        )
    }
}

/// What the node does with a card read at a PD (on the bus event thread; it may block briefly).
pub type OnCard = Box<dyn Fn(&Turnstile, u8, &CardRead) + Send>;

/// Opens the serial port and starts the bus task and its event thread, which logs bus events,
/// supervises the door and hands card reads to `on_card`.
pub fn start(
    config: &OsdpSection,
    metrics: Arc<Metrics>,
    store: Arc<Mutex<NodeStore>>,
    live: Arc<LiveFeed>,
    on_card: OnCard,
) -> Result<(Bus, Turnstile), serialport::Error> {
    let transport = SerialTransport::open(&config.port, config.baud)?;
    let (bus, events) = Bus::spawn(
        transport,
        BusConfig {
            addresses: std::iter::once(config.address)
                .chain(config.readers.iter().copied())
                .collect(),
            secure: config.secure_key().map(ScKey::Scbk),
            ..BusConfig::default()
        },
    );
    let port = config.port.clone();
    let door = config.door_contact_input.map(|_| {
        Arc::new(Mutex::new(DoorMonitor::new(
            Duration::from_secs(config.grant_window_s),
            Duration::from_secs(config.held_open_s),
        )))
    });
    let turnstile = Turnstile {
        bus: bus.handle(),
        pd: config.address,
        output: config.turnstile_output,
        pulse: Duration::from_millis(config.pulse_ms),
        door: door.clone(),
    };
    let reader = turnstile.clone();
    let (door_events, contact) = (door, config.door_contact_input);
    let door_pd = config.address;
    // Alarms are evidence: stored like events (a failure to store is logged, the alarm still
    // reaches the log and the metrics).
    let record = move |kind: &str, pd: u8, detail: String| {
        live.publish(LiveItem::Alarm {
            kind: kind.to_owned(),
            pd: Some(pd),
            detail: detail.clone(),
            at_ms: crate::store::now_ms(),
        });
        if let Err(e) = store.lock().record_alarm(kind, Some(pd), &detail) {
            tracing::error!(kind, error = %e, "cannot store an alarm");
        }
    };
    let report = {
        let metrics = metrics.clone();
        let record = record.clone();
        move |alarm: DoorAlarm| match alarm {
            DoorAlarm::Forced => {
                metrics.door_alarm("forced");
                tracing::warn!("ALARM: door forced open (no grant before it opened)");
                record(
                    "door_forced",
                    door_pd,
                    "the door opened with no grant before it".into(),
                );
            }
            DoorAlarm::HeldOpen { open_for } => {
                metrics.door_alarm("held_open");
                tracing::warn!(seconds = open_for.as_secs(), "ALARM: door held open");
                record(
                    "door_held_open",
                    door_pd,
                    format!("the door has been open for {} s", open_for.as_secs()),
                );
            }
            DoorAlarm::Secured => {
                tracing::info!("door closed again: alarm cleared");
                record("door_secured", door_pd, "the door closed again".into());
            }
        }
    };
    // PDs answering now, and those that went offline at some point (their return is recorded).
    let (mut online, mut lost) = (BTreeSet::new(), BTreeSet::new());
    let spawned = std::thread::Builder::new()
        .name("osdp-events".into())
        .spawn(move || loop {
            let event = match events.recv_timeout(Duration::from_millis(500)) {
                Ok(e) => e,
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(alarm) = door_events
                        .as_ref()
                        .and_then(|d| d.lock().tick(Instant::now()))
                    {
                        report(alarm);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            {
                match event {
                    BusEvent::Inputs { pd, inputs } => {
                        tracing::info!(pd, ?inputs, "inputs changed");
                        if pd == door_pd
                            && let (Some(door), Some(i)) = (&door_events, contact)
                            && let Some(&open) = inputs.get(i as usize)
                            && let Some(alarm) = door
                                .lock()
                                .contact(open, Instant::now())
                        {
                            report(alarm);
                        }
                    }
                    BusEvent::LocalStatus { pd, tamper, power_failure } => {
                        if tamper || power_failure {
                            metrics.tamper_alarms.inc();
                            tracing::warn!(pd, tamper, power_failure, "ALARM: reader tamper or power failure");
                        }
                        if tamper {
                            record("tamper", pd, format!("PD {pd} reports its tamper switch"));
                        }
                        if power_failure {
                            record("power_failure", pd, format!("PD {pd} reports a power failure"));
                        }
                    }
                    BusEvent::Online { pd, identity } => {
                        if lost.contains(&pd) && !online.contains(&pd) {
                            record("reader_online", pd, format!("PD {pd} answers again"));
                        }
                        online.insert(pd);
                        metrics.osdp_pd_online.set(online.len() as i64);
                        tracing::info!(pd, %port, vendor = format!("{:06x}", identity.vendor_code), model = identity.model, serial = identity.serial_number, "OSDP reader online");
                    }
                    BusEvent::Offline { pd } => {
                        online.remove(&pd);
                        lost.insert(pd);
                        metrics.osdp_pd_online.set(online.len() as i64);
                        metrics.osdp_alarms.inc();
                        tracing::warn!(pd, %port, "ALARM: OSDP reader offline");
                        record("reader_offline", pd, format!("PD {pd} on {port} stopped answering"));
                    }
                    BusEvent::CardRead { pd, card } => {
                        metrics.osdp_card_reads.inc();
                        match card.wiegand() {
                            Some(c) => tracing::info!(pd, bits = c.bits, facility = c.facility, number = c.number, "card read (Wiegand)"),
                            None => tracing::info!(pd, bits = card.bits, "card read"),
                        }
                        on_card(&reader, pd, &card);
                    }
                    BusEvent::Keypad { pd, keys } => tracing::info!(pd, keys = keys.len(), "keypad input"),
                    BusEvent::Fault { pd, error } => {
                        metrics.osdp_faults.inc();
                        tracing::warn!(pd, %error, "OSDP fault");
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the OSDP event logger");
    }
    Ok((bus, turnstile))
}
