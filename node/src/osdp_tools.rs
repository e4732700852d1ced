//! Installer tools for the OSDP bus (`rollcall-node osdp scan|watch|pulse`): find the PDs on a
//! port, print their identity and capabilities, follow live events, and test the relay.

use std::{io::Write, time::Duration};

use rollcall_firmware_bridge::{
    Bus, BusConfig, BusEvent, Capability, ControlPanel, CpError, PdIdentity, SerialTransport,
};

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("cannot open {port}: {source}")]
    Open {
        port: String,
        #[source]
        source: serialport::Error,
    },
    #[error(transparent)]
    Bus(#[from] CpError),
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
    #[error("addresses must look like 1,2,5-9 within 0-126: {0}")]
    Addresses(String),
}

/// Parses `1,2,5-9` into addresses 0–126.
pub fn parse_addresses(spec: &str) -> Result<Vec<u8>, ToolError> {
    let bad = || ToolError::Addresses(spec.to_owned());
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let (a, b): (u8, u8) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b || b > 126 {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    if out.is_empty() {
        return Err(bad());
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn open(port: &str, baud: u32) -> Result<SerialTransport, ToolError> {
    SerialTransport::open(port, baud).map_err(|source| ToolError::Open {
        port: port.to_owned(),
        source,
    })
}

/// Describes a capability function code (OSDP table of capabilities).
fn capability_name(function: u8) -> &'static str {
    match function {
        1 => "contact status monitoring",
        2 => "output control",
        3 => "card data format",
        4 => "reader LED control",
        5 => "reader audible output",
        6 => "reader text output",
        7 => "time keeping",
        8 => "check character support",
        9 => "communication security",
        10 => "receive buffer size",
        11 => "largest combined message size",
        12 => "smart card support",
        13 => "readers",
        14 => "biometrics",
        _ => "other",
    }
}

fn print_pd(
    out: &mut impl Write,
    address: u8,
    id: &PdIdentity,
    caps: &[Capability],
) -> std::io::Result<()> {
    writeln!(
        out,
        "PD {address}: vendor {:06x} model {} version {} serial {:08x} firmware {}.{}.{}",
        id.vendor_code,
        id.model,
        id.version,
        id.serial_number,
        id.firmware.0,
        id.firmware.1,
        id.firmware.2
    )?;
    for c in caps {
        writeln!(
            out,
            "    {:<32} compliance {} items {}",
            capability_name(c.function),
            c.compliance,
            c.items
        )?;
    }
    Ok(())
}

/// Tries every address (one attempt each, a short window) and prints who answers.
pub fn scan(
    port: &str,
    baud: u32,
    addresses: &[u8],
    out: &mut impl Write,
) -> Result<usize, ToolError> {
    let mut cp = ControlPanel::new(open(port, baud)?, addresses, Duration::from_millis(100), 0);
    let mut found = 0;
    for &a in addresses {
        match cp.identify(a) {
            Ok((id, caps)) => {
                found += 1;
                print_pd(out, a, &id, &caps)?;
            }
            Err(CpError::Timeout { .. }) => {}
            Err(e) => writeln!(out, "PD {a}: answers, but {e}")?,
        }
    }
    writeln!(
        out,
        "{found} PD(s) found on {port} at {baud} baud ({} addresses tried)",
        addresses.len()
    )?;
    Ok(found)
}

/// Identifies the PD and pulses `output` for `duration`.
pub fn pulse(
    port: &str,
    baud: u32,
    address: u8,
    output: u8,
    duration: Duration,
    out: &mut impl Write,
) -> Result<(), ToolError> {
    let mut cp = ControlPanel::new(open(port, baud)?, &[address], Duration::from_millis(200), 2);
    let (id, caps) = cp.identify(address)?;
    print_pd(out, address, &id, &caps)?;
    cp.pulse_output(address, output, duration)?;
    writeln!(
        out,
        "output {output} of PD {address} pulsed for {} ms",
        duration.as_millis()
    )?;
    Ok(())
}

/// Prints bus events (online, offline, cards, keypad, faults) until `stop` returns true.
pub fn watch(
    port: &str,
    baud: u32,
    address: u8,
    out: &mut impl Write,
    stop: impl Fn() -> bool,
) -> Result<(), ToolError> {
    let (bus, events) = Bus::spawn(
        open(port, baud)?,
        BusConfig {
            addresses: vec![address],
            ..BusConfig::default()
        },
    );
    writeln!(out, "watching PD {address} on {port} (Ctrl-C to stop)")?;
    out.flush()?;
    while !stop() {
        let Ok(event) = events.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        match event {
            BusEvent::Online { pd, identity } => {
                writeln!(out, "online: PD {pd} serial {:08x}", identity.serial_number)?
            }
            BusEvent::Offline { pd } => writeln!(out, "OFFLINE: PD {pd} stopped answering")?,
            BusEvent::CardRead { pd, card } => match card.wiegand() {
                Some(c) => writeln!(
                    out,
                    "card: PD {pd} Wiegand-{} facility {} number {}",
                    c.bits, c.facility, c.number
                )?,
                None => writeln!(
                    out,
                    "card: PD {pd} {} bits {}",
                    card.bits,
                    card.data
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                )?,
            },
            BusEvent::Keypad { pd, keys } => {
                writeln!(out, "keypad: PD {pd} {}", String::from_utf8_lossy(&keys))?
            }
            BusEvent::Inputs { pd, inputs } => writeln!(
                out,
                "inputs: PD {pd} {}",
                inputs
                    .iter()
                    .map(|i| if *i { '1' } else { '0' })
                    .collect::<String>()
            )?,
            BusEvent::LocalStatus {
                pd,
                tamper,
                power_failure,
            } => writeln!(
                out,
                "local status: PD {pd} tamper {tamper} power failure {power_failure}"
            )?,
            BusEvent::Fault { pd, error } => writeln!(out, "fault: PD {pd} {error}")?,
        }
        out.flush()?;
    }
    bus.stop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_lists() {
        assert_eq!(parse_addresses("1,2,5-7").expect("valid"), [1, 2, 5, 6, 7]);
        assert_eq!(parse_addresses(" 3 , 3,0-1").expect("valid"), [0, 1, 3]);
        assert_eq!(parse_addresses("0-126").expect("valid").len(), 127);
        for bad in ["", "127", "5-2", "x", "1-", "1,,300"] {
            assert!(parse_addresses(bad).is_err(), "{bad}");
        }
    }
}
