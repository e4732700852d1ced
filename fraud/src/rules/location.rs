//! Where the check-in claims to be: fix sanity, geofences, jumps and impossible travel.

use super::{Finding, finding};
use crate::{
    context::{CheckInContext, Fix},
    geofence::{Membership, distance_m},
    policy::Policy,
    reason::Code,
};

pub(super) fn check(ctx: &CheckInContext, policy: &Policy, out: &mut Vec<Finding>) {
    let Some(fix) = &ctx.fix else {
        if !ctx.geofences.is_empty() {
            out.push(finding(
                Code::NoPosition,
                1.0,
                &[],
                "no GPS fix was sent, so the site's geofences cannot be checked".into(),
            ));
        }
        return;
    };
    if !valid(fix) {
        out.push(finding(
            Code::InvalidFix,
            1.0,
            &[
                ("lat", fix.lat),
                ("lon", fix.lon),
                ("accuracy_m", fix.accuracy_m),
            ],
            "the fix has numbers that are not a position (not finite, or out of range)".into(),
        ));
        return;
    }
    if fix.lat.abs() < 0.1 && fix.lon.abs() < 0.1 {
        out.push(finding(
            Code::NullIsland,
            1.0,
            &[("lat", fix.lat), ("lon", fix.lon)],
            "the fix is at 0°,0° (Null Island), the default of broken or faked GPS".into(),
        ));
        return;
    }
    if fix.mock {
        out.push(finding(
            Code::MockLocation,
            1.0,
            &[],
            format!(
                "the device reports a mock location provider{}",
                fix.provider
                    .as_deref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            ),
        ));
    }
    if fix.accuracy_m > policy.max_accuracy_m {
        out.push(finding(
            Code::LowGpsAccuracy,
            1.0,
            &[
                ("accuracy_m", fix.accuracy_m),
                ("limit_m", policy.max_accuracy_m),
            ],
            format!(
                "GPS accuracy is {:.0} m, worse than the site limit of {:.0} m",
                fix.accuracy_m, policy.max_accuracy_m
            ),
        ));
    }
    if let Some(t) = fix.fix_time_ms {
        let age_s = (ctx.at_ms - t) as f64 / 1000.0;
        if age_s > policy.max_fix_age_s {
            out.push(finding(
                Code::StaleFix,
                1.0,
                &[("age_s", age_s), ("limit_s", policy.max_fix_age_s)],
                format!(
                    "the fix was taken {age_s:.0} s before the check-in (limit {:.0} s)",
                    policy.max_fix_age_s
                ),
            ));
        }
    }
    geofences(ctx, fix, out);
    gps_jump(ctx, fix, policy, out);
    impossible_travel(ctx, fix, policy, out);
}

fn valid(f: &Fix) -> bool {
    f.lat.is_finite()
        && f.lon.is_finite()
        && f.accuracy_m.is_finite()
        && (-90.0..=90.0).contains(&f.lat)
        && (-180.0..=180.0).contains(&f.lon)
        && f.accuracy_m >= 0.0
}

/// The latest of the person's events (ties: the one that names the most fences), for
/// hysteresis.
fn previously_inside(ctx: &CheckInContext) -> &[String] {
    ctx.history
        .iter()
        .max_by(|a, b| {
            a.at_ms
                .cmp(&b.at_ms)
                .then(a.inside.len().cmp(&b.inside.len()))
        })
        .map_or(&[], |e| e.inside.as_slice())
}

fn geofences(ctx: &CheckInContext, fix: &Fix, out: &mut Vec<Finding>) {
    if ctx.geofences.is_empty() {
        return;
    }
    let was_inside = previously_inside(ctx);
    // The fix counts for the fence it fits best: inside any fence is enough.
    let mut best: Option<(&str, Membership)> = None;
    for g in &ctx.geofences {
        let m = g.membership(
            fix.lat,
            fix.lon,
            fix.accuracy_m,
            was_inside.iter().any(|n| n == g.name()),
        );
        if best.as_ref().is_none_or(|(_, b)| rank(&m) > rank(b)) {
            best = Some((g.name(), m));
        }
    }
    match best {
        None | Some((_, Membership::Inside { .. })) => {}
        Some((name, Membership::Outside { distance_m })) => out.push(finding(
            Code::OutsideGeofence,
            1.0,
            &[("distance_m", distance_m), ("accuracy_m", fix.accuracy_m)],
            format!(
                "{distance_m:.0} m outside geofence `{name}`, even allowing for {:.0} m of GPS error",
                fix.accuracy_m
            ),
        )),
        Some((name, Membership::Uncertain { signed_m, overlap })) => out.push(finding(
            Code::GeofenceUncertain,
            1.0 - overlap,
            &[("signed_distance_m", signed_m), ("overlap", overlap), ("accuracy_m", fix.accuracy_m)],
            format!(
                "the GPS error disc straddles the edge of geofence `{name}` ({:.0}% of it inside)",
                overlap * 100.0
            ),
        )),
    }
}

/// Higher is better: outside (by closeness), uncertain (by overlap), inside (by depth).
fn rank(m: &Membership) -> f64 {
    match m {
        Membership::Outside { distance_m } => -1.0 - distance_m,
        Membership::Uncertain { overlap, .. } => *overlap,
        Membership::Inside { depth_m } => 2.0 + depth_m,
    }
}

/// Distance between two fixes beyond what both accuracies explain.
fn unexplained_m(fix: &Fix, lat: f64, lon: f64, acc: f64) -> (f64, f64) {
    let d = distance_m(fix.lat, fix.lon, lat, lon);
    (d, (d - fix.accuracy_m - acc).max(0.0))
}

fn gps_jump(ctx: &CheckInContext, fix: &Fix, policy: &Policy, out: &mut Vec<Finding>) {
    if ctx.device.id.is_empty() {
        return;
    }
    let window_ms = (policy.gps_jump_window_s * 1000.0) as i64;
    // The worst jump against any earlier fix of this device inside the window.
    let mut worst: Option<(f64, f64, f64)> = None;
    for e in ctx.history.iter().chain(&ctx.device_history) {
        let Some((lat, lon, acc)) = e.fix() else {
            continue;
        };
        let dt_ms = ctx.at_ms - e.at_ms;
        if e.device_id.as_deref() != Some(ctx.device.id.as_str()) || dt_ms <= 0 || dt_ms > window_ms
        {
            continue;
        }
        let (d, unexplained) = unexplained_m(fix, lat, lon, acc);
        let allowed = policy.gps_jump_max_kmh / 3.6 * dt_ms as f64 / 1000.0;
        let excess = unexplained - allowed;
        if excess > 0.0 && worst.is_none_or(|(x, _, _)| excess > x) {
            worst = Some((excess, d, dt_ms as f64 / 1000.0));
        }
    }
    if let Some((excess, d, dt_s)) = worst {
        out.push(finding(
            Code::GpsJump,
            1.0,
            &[("distance_m", d), ("seconds", dt_s), ("excess_m", excess)],
            format!(
                "this device's fix moved {d:.0} m in {dt_s:.0} s, {excess:.0} m more than GPS error and {:.0} km/h explain",
                policy.gps_jump_max_kmh
            ),
        ));
    }
}

fn impossible_travel(ctx: &CheckInContext, fix: &Fix, policy: &Policy, out: &mut Vec<Finding>) {
    let window_ms = (policy.travel_window_s * 1000.0) as i64;
    let mut worst: Option<(f64, f64, f64)> = None;
    for e in &ctx.history {
        let Some((lat, lon, acc)) = e.fix() else {
            continue;
        };
        let dt_ms = (ctx.at_ms - e.at_ms).abs();
        if dt_ms > window_ms {
            continue;
        }
        let (_, unexplained) = unexplained_m(fix, lat, lon, acc);
        if unexplained <= 0.0 {
            continue;
        }
        let hours = (dt_ms.max(1000) as f64) / 3_600_000.0;
        let km = unexplained / 1000.0;
        let needed_kmh = km / hours;
        let possible = policy
            .travel_modes
            .iter()
            .any(|m| needed_kmh <= m.max_kmh && km >= m.min_distance_km);
        if !possible && worst.is_none_or(|(v, _, _)| needed_kmh > v) {
            worst = Some((needed_kmh, km, hours * 60.0));
        }
    }
    if let Some((kmh, km, minutes)) = worst {
        let apart = if minutes < 2.0 {
            format!("{:.0} s", minutes * 60.0)
        } else {
            format!("{minutes:.0} min")
        };
        out.push(finding(
            Code::ImpossibleTravel,
            1.0,
            &[("speed_kmh", kmh), ("distance_km", km), ("minutes", minutes)],
            format!(
                "{km:.1} km from the person's event {apart} apart needs {kmh:.0} km/h, which no allowed means of transport covers"
            ),
        ));
    }
}
