//! The device: new to the person, rooted, emulated, failed attestation.

use super::{Finding, finding};
use crate::{
    context::{Attestation, CheckInContext},
    policy::Policy,
    reason::Code,
};

pub(super) fn check(ctx: &CheckInContext, _policy: &Policy, out: &mut Vec<Finding>) {
    let d = &ctx.device;
    if !d.id.is_empty() && !ctx.history.is_empty() {
        let known = ctx
            .history
            .iter()
            .any(|e| e.device_id.as_deref() == Some(d.id.as_str()));
        if !known {
            out.push(finding(
                Code::NewDevice,
                1.0,
                &[("known_events", ctx.history.len() as f64)],
                format!(
                    "device `{}` does not appear in the person's {} recent events",
                    d.id,
                    ctx.history.len()
                ),
            ));
        }
    }
    if d.rooted {
        out.push(finding(
            Code::RootedDevice,
            1.0,
            &[],
            "the device is rooted or jailbroken".into(),
        ));
    }
    if d.emulator {
        out.push(finding(
            Code::Emulator,
            1.0,
            &[],
            "the device is an emulator".into(),
        ));
    }
    if d.attestation == Some(Attestation::Failed) {
        out.push(finding(
            Code::AttestationFailed,
            1.0,
            &[],
            "the app integrity attestation failed".into(),
        ));
    }
}
