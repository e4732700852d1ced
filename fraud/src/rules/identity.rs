//! Who it is: match margin, liveness, several faces, replayed frames, card and face of
//! different people, one device checking in many people.

use std::collections::BTreeSet;

use super::{Finding, finding};
use crate::{
    context::{CheckInContext, Credential},
    policy::Policy,
    reason::Code,
};

pub(super) fn check(ctx: &CheckInContext, policy: &Policy, out: &mut Vec<Finding>) {
    if let Some(face) = &ctx.face {
        if let (Some(margin), Some(similarity)) = (face.margin, face.similarity)
            && margin < policy.min_match_margin
        {
            out.push(finding(
                Code::LowMatchMargin,
                1.0,
                &[("similarity", similarity), ("margin", margin)],
                format!(
                    "the best match leads the next enrolled person by only {margin:.2} (need {:.2})",
                    policy.min_match_margin
                ),
            ));
        }
        // A NaN liveness counts as failed: it is not evidence of a live face.
        if let Some(l) = face.liveness
            && (l.is_nan() || l < policy.min_liveness)
        {
            out.push(finding(
                Code::LivenessLow,
                1.0,
                &[("liveness", l), ("min", policy.min_liveness)],
                format!(
                    "liveness {l:.2} is below the site minimum {:.2} (photo or screen?)",
                    policy.min_liveness
                ),
            ));
        }
        if face.faces_in_frame > 1 {
            out.push(finding(
                Code::MultipleFaces,
                1.0,
                &[("faces", face.faces_in_frame as f64)],
                format!(
                    "{} faces in the frame: someone may be presenting another person",
                    face.faces_in_frame
                ),
            ));
        }
        replay(ctx, policy, out);
    }
    buddy_punch(ctx, policy, out);
    burst(ctx, policy, out);
}

fn replay(ctx: &CheckInContext, policy: &Policy, out: &mut Vec<Finding>) {
    let Some(face) = &ctx.face else { return };
    let past = ctx.history.iter().chain(&ctx.device_history);
    let mut exact = false;
    let mut nearest: Option<u32> = None;
    for e in past {
        if let (Some(a), Some(b)) = (&face.frame_hash, &e.frame_hash)
            && a == b
        {
            exact = true;
        }
        if let (Some(a), Some(b)) = (face.perceptual_hash, e.perceptual_hash) {
            let d = (a ^ b).count_ones();
            nearest = Some(nearest.map_or(d, |n| n.min(d)));
        }
    }
    if exact {
        out.push(finding(
            Code::ReplayedFrame,
            1.0,
            &[("hamming_distance", 0.0)],
            "this exact frame was submitted before: a replayed image".into(),
        ));
    } else if let Some(d) = nearest.filter(|d| *d <= policy.max_phash_distance) {
        out.push(finding(
            Code::ReplayedFrame,
            1.0,
            &[
                ("hamming_distance", d as f64),
                ("max", policy.max_phash_distance as f64),
            ],
            format!("a near-identical frame was submitted before (perceptual hash {d} bits apart)"),
        ));
    }
}

fn buddy_punch(ctx: &CheckInContext, policy: &Policy, out: &mut Vec<Finding>) {
    let card_person = match &ctx.credential {
        Credential::Face => return,
        Credential::Card { person_id } | Credential::CardAndFace { person_id } => person_id,
    };
    let Some(face) = &ctx.face else { return };
    match (&face.person_id, face.margin) {
        (Some(face_person), _) if face_person != card_person => out.push(finding(
            Code::BuddyPunchSuspected,
            1.0,
            &[("similarity", face.similarity.unwrap_or(f64::NAN))],
            format!("card of `{card_person}` presented, but the face matches `{face_person}`"),
        )),
        (None, _) if matches!(ctx.credential, Credential::CardAndFace { .. }) => out.push(finding(
            Code::BuddyPunchSuspected,
            1.0,
            &[],
            format!("card of `{card_person}` presented, but the face matches no enrolled person"),
        )),
        (Some(_), Some(margin)) if margin < policy.min_match_margin => out.push(finding(
            Code::BuddyPunchSuspected,
            0.5,
            &[("margin", margin)],
            format!("card of `{card_person}` presented; the face matches them only narrowly (margin {margin:.2})"),
        )),
        _ => {}
    }
}

fn burst(ctx: &CheckInContext, policy: &Policy, out: &mut Vec<Finding>) {
    if ctx.device.id.is_empty() {
        return;
    }
    let window_ms = (policy.burst_window_s * 1000.0) as i64;
    let mut people: BTreeSet<&str> = ctx
        .device_history
        .iter()
        .filter(|e| e.device_id.as_deref() == Some(ctx.device.id.as_str()))
        .filter(|e| (ctx.at_ms - e.at_ms).abs() <= window_ms)
        .filter_map(|e| e.person_id.as_deref())
        .collect();
    if let Some(p) = &ctx.person_id {
        people.insert(p);
    }
    if people.len() >= policy.burst_people {
        out.push(finding(
            Code::SharedDeviceBurst,
            1.0,
            &[
                ("people", people.len() as f64),
                ("window_min", policy.burst_window_s / 60.0),
            ],
            format!(
                "device `{}` checked in {} different people within {:.0} min",
                ctx.device.id,
                people.len(),
                policy.burst_window_s / 60.0
            ),
        ));
    }
}
