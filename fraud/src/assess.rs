use serde::{Deserialize, Serialize};

use crate::{
    geofence::{Geofence, Membership, Position},
    reason::{Assessment, Reason, Verdict},
};

/// A site's fraud thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Fixes less accurate than this (metres) are suspicious.
    pub max_accuracy_m: f64,
    /// Score from which a check-in goes to review instead of being allowed.
    pub review_at: f64,
    /// Score from which a check-in is denied.
    pub deny_at: f64,
    /// Minimum similarity gap between the best and second-best enrolled person.
    pub min_match_margin: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_accuracy_m: 100.0,
            review_at: 0.4,
            deny_at: 0.8,
            min_match_margin: 0.05,
        }
    }
}

/// What the face pipeline found.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceEvidence {
    pub similarity: f64,
    /// Best similarity minus the second-best person's; `None` with one enrolled person.
    pub margin: Option<f64>,
}

/// Everything [`assess`] looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckInContext<'a> {
    pub position: Option<Position>,
    pub geofences: &'a [Geofence],
    pub face: Option<FaceEvidence>,
    pub policy: &'a Policy,
}

fn reason(code: &str, weight: f64, values: &[(&str, f64)], text: String) -> Reason {
    Reason {
        code: code.to_owned(),
        weight,
        values: values.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        text,
    }
}

/// Scores a check-in. Reasons combine as independent evidence (noisy-OR): the score is
/// `1 − Π(1 − weight)`, so two moderate reasons outweigh one, and no reason can be hidden by
/// another.
pub fn assess(ctx: &CheckInContext<'_>) -> Assessment {
    let mut reasons = Vec::new();
    location_reasons(ctx, &mut reasons);
    if let Some(FaceEvidence {
        similarity,
        margin: Some(margin),
    }) = ctx.face
        && margin < ctx.policy.min_match_margin
    {
        reasons.push(reason(
            "low_match_margin",
            0.3,
            &[("similarity", similarity), ("margin", margin)],
            format!(
                "the best match leads the next enrolled person by only {margin:.2} (need {:.2})",
                ctx.policy.min_match_margin
            ),
        ));
    }
    let score = 1.0 - reasons.iter().map(|r| 1.0 - r.weight).product::<f64>();
    let verdict = if score >= ctx.policy.deny_at {
        Verdict::Deny
    } else if score >= ctx.policy.review_at {
        Verdict::Review
    } else {
        Verdict::Allow
    };
    Assessment {
        score,
        verdict,
        reasons,
    }
}

fn location_reasons(ctx: &CheckInContext<'_>, reasons: &mut Vec<Reason>) {
    let Some(p) = ctx.position else {
        if !ctx.geofences.is_empty() {
            reasons.push(reason(
                "no_position",
                0.5,
                &[],
                "no GPS fix was sent, so the site's geofence cannot be checked".into(),
            ));
        }
        return;
    };
    if p.lat.abs() < 0.1 && p.lon.abs() < 0.1 {
        reasons.push(reason(
            "null_island",
            1.0,
            &[("lat", p.lat), ("lon", p.lon)],
            "the fix is at 0°,0° (Null Island), a default of broken or faked GPS".into(),
        ));
        return;
    }
    if p.accuracy_m > ctx.policy.max_accuracy_m {
        reasons.push(reason(
            "low_gps_accuracy",
            0.4,
            &[
                ("accuracy_m", p.accuracy_m),
                ("limit_m", ctx.policy.max_accuracy_m),
            ],
            format!(
                "GPS accuracy is {:.0} m, worse than the site limit of {:.0} m",
                p.accuracy_m, ctx.policy.max_accuracy_m
            ),
        ));
    }
    // The fix counts for the fence it fits best: inside any fence is enough.
    let best = ctx
        .geofences
        .iter()
        .map(|g| (g, g.membership(&p)))
        .min_by(|a, b| rank(&a.1).total_cmp(&rank(&b.1)));
    match best {
        None | Some((_, Membership::Inside { .. })) => {}
        Some((g, Membership::Outside { distance_m })) => reasons.push(reason(
            "outside_geofence",
            1.0,
            &[
                ("distance_m", distance_m),
                ("radius_m", g.radius_m),
                ("accuracy_m", p.accuracy_m),
            ],
            format!(
                "{distance_m:.0} m from the centre of geofence `{}` (radius {:.0} m), \
                 even allowing for {:.0} m of GPS error",
                g.name, g.radius_m, p.accuracy_m
            ),
        )),
        Some((
            g,
            Membership::Uncertain {
                distance_m,
                overlap,
            },
        )) => reasons.push(reason(
            "geofence_uncertain",
            0.5 * (1.0 - overlap),
            &[
                ("distance_m", distance_m),
                ("radius_m", g.radius_m),
                ("overlap", overlap),
            ],
            format!(
                "the GPS error disc straddles the edge of geofence `{}` ({:.0}% inside)",
                g.name,
                overlap * 100.0
            ),
        )),
    }
}

/// Lower is better: inside, then the most-overlapping uncertain fence, then outside.
fn rank(m: &Membership) -> f64 {
    match m {
        Membership::Inside { .. } => 0.0,
        Membership::Uncertain { overlap, .. } => 2.0 - overlap,
        Membership::Outside { .. } => 3.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fences() -> Vec<Geofence> {
        vec![Geofence::new("gate", 48.8566, 2.3522, 150.0).expect("valid")]
    }

    fn ctx<'a>(
        position: Option<Position>,
        fences: &'a [Geofence],
        policy: &'a Policy,
    ) -> CheckInContext<'a> {
        CheckInContext {
            position,
            geofences: fences,
            face: Some(FaceEvidence {
                similarity: 0.8,
                margin: Some(0.6),
            }),
            policy,
        }
    }

    #[test]
    fn inside_the_fence_is_allowed_without_reasons() {
        let (f, p) = (fences(), Policy::default());
        let a = assess(&ctx(
            Some(Position::new(48.8567, 2.3522, 10.0).expect("ok")),
            &f,
            &p,
        ));
        assert_eq!(a.verdict, Verdict::Allow);
        assert!(a.reasons.is_empty());
        assert_eq!(a.score, 0.0);
    }

    #[test]
    fn far_away_is_denied_with_the_distance() {
        let (f, p) = (fences(), Policy::default());
        let a = assess(&ctx(
            Some(Position::new(48.90, 2.3522, 10.0).expect("ok")),
            &f,
            &p,
        ));
        assert_eq!(a.verdict, Verdict::Deny);
        assert_eq!(a.reasons[0].code, "outside_geofence");
        let d = a.reasons[0].values[0].1;
        assert!((d - 4_820.0).abs() < 50.0, "{d}");
    }

    #[test]
    fn null_island_missing_fix_and_poor_accuracy_are_named() {
        let (f, p) = (fences(), Policy::default());
        let a = assess(&ctx(
            Some(Position::new(0.0, 0.0, 5.0).expect("ok")),
            &f,
            &p,
        ));
        assert_eq!(a.reasons[0].code, "null_island");
        assert_eq!(a.verdict, Verdict::Deny);
        let a = assess(&ctx(None, &f, &p));
        assert_eq!(
            (a.reasons[0].code.as_str(), a.verdict),
            ("no_position", Verdict::Review)
        );
        let a = assess(&ctx(
            Some(Position::new(48.8566, 2.3522, 140.0).expect("ok")),
            &f,
            &p,
        ));
        let codes: Vec<_> = a.reasons.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(codes, ["low_gps_accuracy"]);
    }

    #[test]
    fn a_narrow_match_margin_is_a_reason() {
        let (f, p) = (fences(), Policy::default());
        let mut c = ctx(
            Some(Position::new(48.8566, 2.3522, 5.0).expect("ok")),
            &f,
            &p,
        );
        c.face = Some(FaceEvidence {
            similarity: 0.6,
            margin: Some(0.01),
        });
        let a = assess(&c);
        assert_eq!(a.reasons[0].code, "low_match_margin");
        assert_eq!(a.verdict, Verdict::Allow, "0.3 alone stays below review");
    }

    proptest! {
        #[test]
        fn deterministic_and_bounded(lat in -80.0f64..80.0, lon in -170.0f64..170.0, acc in 0.0f64..500.0) {
            let (f, p) = (fences(), Policy::default());
            let c = ctx(Some(Position::new(lat, lon, acc).expect("in range")), &f, &p);
            let a = assess(&c);
            prop_assert_eq!(&a, &assess(&c));
            prop_assert!((0.0..=1.0).contains(&a.score));
            prop_assert_eq!(a.verdict == Verdict::Allow, a.score < p.review_at);
        }
    }
}
