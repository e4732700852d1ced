//! Clocks: node vs GPS vs device vs server, device clock rewinds, shifts.

use super::{Finding, finding};
use crate::{context::CheckInContext, policy::Policy, reason::Code};

pub(super) fn check(ctx: &CheckInContext, policy: &Policy, out: &mut Vec<Finding>) {
    clock_skew(ctx, policy, out);
    rewind(ctx, out);
    shift(ctx, policy, out);
}

fn clock_skew(ctx: &CheckInContext, policy: &Policy, out: &mut Vec<Finding>) {
    let limit_ms = policy.max_clock_skew_s * 1000.0;
    // Each pair that can be compared, with its disagreement in ms. A GPS fix taken in the
    // future of the node clock is skew; one in the past is only stale (another rule).
    let mut pairs: Vec<(&str, f64)> = Vec::new();
    if let Some(t) = ctx.fix.as_ref().and_then(|f| f.fix_time_ms) {
        pairs.push(("gps_ahead_of_node_s", (t - ctx.at_ms).max(0) as f64));
    }
    if let Some(t) = ctx.device.time_ms {
        pairs.push(("device_vs_node_s", (t - ctx.at_ms).abs() as f64));
    }
    if let Some(offset) = ctx.server_offset_ms {
        pairs.push(("node_vs_server_s", offset.abs() as f64));
    }
    let worst = pairs
        .into_iter()
        .filter(|(_, d)| *d > limit_ms)
        .max_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(b.0)));
    if let Some((name, d)) = worst {
        out.push(finding(
            Code::ClockSkew,
            1.0,
            &[(name, d / 1000.0), ("limit_s", policy.max_clock_skew_s)],
            format!(
                "clocks disagree by {:.0} s ({}), more than the {:.0} s allowed",
                d / 1000.0,
                name.trim_end_matches("_s").replace('_', " "),
                policy.max_clock_skew_s
            ),
        ));
    }
}

/// A clock that went backwards since the device's previous event: the device's own clock, or
/// the time recorded for the event itself (the node's clock, or a clock the device set).
fn rewind(ctx: &CheckInContext, out: &mut Vec<Finding>) {
    if ctx.device.id.is_empty() {
        return;
    }
    let same_device = || {
        ctx.history
            .iter()
            .chain(&ctx.device_history)
            .filter(|e| e.device_id.as_deref() == Some(ctx.device.id.as_str()))
    };
    let previous_device_time = same_device().filter_map(|e| e.device_time_ms).max();
    let device_back_ms = match (ctx.device.time_ms, previous_device_time) {
        (Some(now), Some(prev)) if now < prev => prev - now,
        _ => 0,
    };
    let event_back_ms = match same_device().map(|e| e.at_ms).max() {
        Some(prev) if ctx.at_ms < prev => prev - ctx.at_ms,
        _ => 0,
    };
    let (back_ms, which) = if device_back_ms >= event_back_ms {
        (device_back_ms, "the device clock is")
    } else {
        (event_back_ms, "this event is timed")
    };
    if back_ms > 0 {
        let back_s = back_ms as f64 / 1000.0;
        out.push(finding(
            Code::DeviceTimeRewind,
            1.0,
            &[("rewind_s", back_s)],
            format!("{which} {back_s:.0} s earlier than the device's previous event"),
        ));
    }
}

fn shift(ctx: &CheckInContext, policy: &Policy, out: &mut Vec<Finding>) {
    let Some(s) = ctx.shift else { return };
    let grace = (policy.shift_grace_s * 1000.0) as i64;
    let (from, to) = (s.start_ms - grace, s.end_ms + grace);
    let off_ms = if ctx.at_ms < from {
        from - ctx.at_ms
    } else if ctx.at_ms > to {
        ctx.at_ms - to
    } else {
        return;
    };
    let minutes = off_ms as f64 / 60_000.0;
    out.push(finding(
        Code::OutsideShift,
        1.0,
        &[
            ("minutes_outside", minutes),
            ("grace_minutes", policy.shift_grace_s / 60.0),
        ],
        format!(
            "{minutes:.0} min {} the shift, grace of {:.0} min included",
            if ctx.at_ms < from { "before" } else { "after" },
            policy.shift_grace_s / 60.0
        ),
    ));
}
