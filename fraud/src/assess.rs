use crate::{
    context::CheckInContext,
    policy::Policy,
    reason::{Assessment, Reason, Verdict},
    rules,
};

/// Scores a check-in. The score is the sum of the reasons' weights (each the policy's weight for
/// its code times how strongly it applies), capped at 1, so it explains itself as the sum of
/// its parts. A reason in the policy's `deny_outright` list denies whatever the score.
pub fn assess(ctx: &CheckInContext, policy: &Policy) -> Assessment {
    let mut reasons: Vec<Reason> = rules::evaluate(ctx, policy)
        .into_iter()
        .filter(|f| !policy.is_disabled(f.code))
        .map(|f| Reason {
            code: f.code,
            weight: policy.weight(f.code) * f.factor,
            values: f.values,
            text: f.text,
        })
        .collect();
    reasons.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.code.cmp(&b.code)));
    // A fold from +0.0: `Iterator::sum` of no floats is -0.0, which would show as "-0.00".
    let score = reasons.iter().fold(0.0, |acc, r| acc + r.weight).min(1.0);
    let denied_outright_by = reasons
        .iter()
        .map(|r| r.code)
        .find(|c| policy.denies_outright(*c));
    let verdict = if denied_outright_by.is_some() || score >= policy.deny_at {
        Verdict::Deny
    } else if score >= policy.review_at {
        Verdict::Review
    } else {
        Verdict::Allow
    };
    Assessment {
        score,
        verdict,
        reasons,
        denied_outright_by,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{
        context::{Device, FaceResult, Fix, PastEvent},
        geofence::Geofence,
        reason::Code,
    };

    fn context(lat: f64, lon: f64, acc: f64, history: Vec<PastEvent>) -> CheckInContext {
        CheckInContext {
            at_ms: 1_800_000_000_000,
            fix: Some(Fix {
                lat,
                lon,
                accuracy_m: acc,
                fix_time_ms: None,
                mock: false,
                satellites: None,
                provider: None,
            }),
            device: Device {
                id: "kiosk-1".into(),
                ..Device::default()
            },
            face: Some(FaceResult {
                person_id: Some("p1".into()),
                similarity: Some(0.8),
                margin: Some(0.02),
                liveness: Some(0.9),
                faces_in_frame: 2,
                ..FaceResult::default()
            }),
            person_id: Some("p1".into()),
            history,
            geofences: vec![Geofence::circle("gate", 48.8584, 2.2945, 150.0).expect("valid")],
            ..CheckInContext::default()
        }
    }

    fn event(minutes_ago: i64, lat: f64, lon: f64, device: &str) -> PastEvent {
        PastEvent {
            at_ms: 1_800_000_000_000 - minutes_ago * 60_000,
            person_id: Some("p1".into()),
            device_id: Some(device.into()),
            lat: Some(lat),
            lon: Some(lon),
            accuracy_m: Some(15.0),
            ..PastEvent::default()
        }
    }

    #[test]
    fn the_score_is_the_sum_of_its_parts() {
        let a = assess(&context(48.8584, 2.2945, 150.0, vec![]), &Policy::default());
        let sum: f64 = a.reasons.iter().map(|r| r.weight).sum();
        assert!((a.score - sum.min(1.0)).abs() < 1e-12);
        assert!(
            a.explain().starts_with(&format!("{:.2} = ", a.score)),
            "{}",
            a.explain()
        );
        assert!(a.codes().contains(&Code::LowGpsAccuracy));
        let clean = assess(
            &context(48.8584, 2.2945, 5.0, vec![]),
            &Policy {
                min_match_margin: 0.0,
                ..Policy::default()
            },
        );
        assert!(
            clean.reasons.iter().all(|r| r.code == Code::MultipleFaces),
            "{clean:?}"
        );
        let none = assess(&CheckInContext::default(), &Policy::default());
        assert!(
            none.score == 0.0 && none.score.is_sign_positive(),
            "{}",
            none.score
        );
    }

    fn any_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            any::<f64>(),
            -200.0f64..200.0,
        ]
    }

    proptest! {
        #[test]
        fn any_numbers_give_an_assessment_and_bad_ones_an_invalid_fix(lat in any_f64(), lon in any_f64(), acc in any_f64()) {
            let a = assess(&context(lat, lon, acc, vec![event(5, lat, lon, "kiosk-1")]), &Policy::default());
            prop_assert!((0.0..=1.0).contains(&a.score));
            let valid = lat.is_finite() && lon.is_finite() && acc.is_finite()
                && (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) && acc >= 0.0;
            prop_assert_eq!(a.codes().contains(&Code::InvalidFix), !valid);
            if !valid {
                prop_assert_eq!(a.verdict, Verdict::Deny);
            }
        }

        #[test]
        fn history_order_does_not_change_the_assessment(
            lat in 48.80f64..48.90, lon in 2.25f64..2.35,
            past in proptest::collection::vec((1i64..600, 48.0f64..52.0, -1.0f64..3.0, 0usize..3), 0..12),
            seed in any::<u64>(),
        ) {
            let history: Vec<PastEvent> = past
                .iter()
                .map(|(m, la, lo, d)| event(*m, *la, *lo, ["kiosk-1", "kiosk-2", "phone"][*d]))
                .collect();
            let mut shuffled = history.clone();
            // Fisher–Yates with a fixed-seed xorshift.
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let policy = Policy::default();
            let a = assess(&context(lat, lon, 20.0, history), &policy);
            let b = assess(&context(lat, lon, 20.0, shuffled), &policy);
            prop_assert_eq!(a, b);
        }

        #[test]
        fn raising_a_weight_never_lowers_the_score(code_index in 0usize..23, w1 in 0.0f64..1.0, w2 in 0.0f64..1.0, acc in 0.0f64..400.0) {
            let code = Code::ALL[code_index];
            let (lo, hi) = if w1 < w2 { (w1, w2) } else { (w2, w1) };
            let ctx = context(48.8600, 2.2945, acc, vec![event(3, 48.95, 2.2945, "phone")]);
            let mut p = Policy::default();
            p.weights.insert(code.as_str().into(), lo);
            let a = assess(&ctx, &p);
            p.weights.insert(code.as_str().into(), hi);
            let b = assess(&ctx, &p);
            prop_assert!(b.score >= a.score - 1e-12);
            let rank = |v: Verdict| match v { Verdict::Allow => 0, Verdict::Review => 1, Verdict::Deny => 2 };
            prop_assert!(rank(b.verdict) >= rank(a.verdict));
        }
    }
}
