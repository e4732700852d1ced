//! The shape a pushed attendance event must have: what a node can produce, bounded, so that a
//! node credential (stolen, or a node with a bug) cannot store 4 MB reason texts, 10 000
//! reasons, a latitude of 91 or a clock of i64::MAX (#20). Each limit is far above what a real
//! node writes — its reasons are a handful of fraud codes with a sentence each — and the cloud
//! refuses an event past one alone, naming the field.

use crate::{
    ids::PersonId,
    wire::{AttendanceEvent, Fix},
};

/// Most reasons one event carries (the fraud engine has about a dozen codes).
pub const MAX_REASONS: usize = 32;
/// Longest reason code (`low_accuracy`, `impossible_travel`).
pub const MAX_REASON_CODE: usize = 64;
/// Longest reason text, in bytes.
pub const MAX_REASON_TEXT: usize = 500;
/// Longest card text (`facility:number` or `raw:BITS:HEX`; a 256-bit card is 74 characters).
pub const MAX_CARD: usize = 80;
/// Longest HLC origin (`cloud` or a node id).
pub const MAX_ORIGIN: usize = 64;
/// The node clock's plausible range: 2020-01-01 to 2100-01-01 (ms since the epoch).
pub const NODE_TIME_MS: std::ops::RangeInclusive<i64> = 1_577_836_800_000..=4_102_444_800_000;
/// A cosine similarity, with room for the rounding of f32 arithmetic (a node's best match of
/// a face with itself can come out as 1.0000001).
pub const SIMILARITY: std::ops::RangeInclusive<f64> = -1.001..=1.001;
/// Largest accuracy radius a fix may claim, in metres.
pub const MAX_ACCURACY_M: f64 = 100_000.0;

/// The embedders rollcall ships (the model manifest's names) and the length of their vectors:
/// the cloud holds templates under these names to these lengths from the first one on, so no
/// template of another length can take a shipped model's name.
pub const KNOWN_EMBEDDERS: &[(&str, usize)] = &[("mobilefacenet", 192)];

/// The vector length of a shipped embedder, if `model` names one.
pub fn known_embedding_dim(model: &str) -> Option<usize> {
    KNOWN_EMBEDDERS
        .iter()
        .find(|(name, _)| *name == model)
        .map(|(_, dim)| *dim)
}

/// Whether a sequence number (of any stream) is one a node can send: 1 to 2^63 - 1, so that it
/// fits the databases' signed 64-bit columns.
pub fn valid_seq(seq: u64) -> bool {
    seq != 0 && seq <= i64::MAX as u64
}

/// Why an event's fields are refused, `code: reason` (the cloud's rejection reasons), or `None`.
pub fn invalid_event_fields(e: &AttendanceEvent) -> Option<String> {
    let bad = |field: &str, why: String| Some(format!("invalid_field: {field}: {why}"));
    if !valid_seq(e.seq) {
        return Some(format!(
            "invalid_seq: sequence numbers are 1 to {} (this one is {})",
            i64::MAX,
            e.seq
        ));
    }
    if let Some(p) = &e.person_id
        && !PersonId::is_valid(p)
    {
        return bad("person_id", "1-64 of letters, digits, `_`, `.`, `-`".into());
    }
    if let Some(s) = e.similarity
        && !SIMILARITY.contains(&s)
    {
        return bad(
            "similarity",
            format!("a cosine similarity is -1 to 1, not {s}"),
        );
    }
    if !(0.0..=1.0).contains(&e.risk_score) {
        return Some("invalid_score: risk_score must be in [0, 1]".into());
    }
    if e.reasons.len() > MAX_REASONS {
        return bad(
            "reasons",
            format!("at most {MAX_REASONS}, not {}", e.reasons.len()),
        );
    }
    for (i, r) in e.reasons.iter().enumerate() {
        if !(1..=MAX_REASON_CODE).contains(&r.code.len())
            || !r
                .code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return bad(
                &format!("reasons[{i}].code"),
                format!("1-{MAX_REASON_CODE} of a-z, 0-9 and `_`"),
            );
        }
        if r.text.len() > MAX_REASON_TEXT {
            return bad(
                &format!("reasons[{i}].text"),
                format!("at most {MAX_REASON_TEXT} bytes, not {}", r.text.len()),
            );
        }
        if !r.weight.is_finite() || !(-10.0..=10.0).contains(&r.weight) {
            return bad(
                &format!("reasons[{i}].weight"),
                "a finite weight of -10 to 10".into(),
            );
        }
    }
    if let Some(fix) = &e.position
        && let Some(why) = invalid_fix(fix)
    {
        return bad("position", why);
    }
    if !NODE_TIME_MS.contains(&e.node_time_ms) {
        return bad(
            "node_time_ms",
            format!(
                "a time between 2020 and 2100 in ms since the epoch, not {}",
                e.node_time_ms
            ),
        );
    }
    if let Some(card) = &e.card
        && (card.is_empty() || card.len() > MAX_CARD || !card.bytes().all(|b| b.is_ascii_graphic()))
    {
        return bad("card", format!("1-{MAX_CARD} visible ASCII characters"));
    }
    if let Some(hlc) = &e.hlc
        && (hlc.origin.is_empty()
            || hlc.origin.len() > MAX_ORIGIN
            || i64::try_from(hlc.ms).is_err())
    {
        return bad(
            "hlc",
            format!("an origin of 1-{MAX_ORIGIN} bytes and a time that fits i64"),
        );
    }
    None
}

fn invalid_fix(f: &Fix) -> Option<String> {
    if !(-90.0..=90.0).contains(&f.lat) {
        Some(format!("latitude is -90 to 90, not {}", f.lat))
    } else if !(-180.0..=180.0).contains(&f.lon) {
        Some(format!("longitude is -180 to 180, not {}", f.lon))
    } else if !(0.0..=MAX_ACCURACY_M).contains(&f.accuracy_m) {
        Some(format!(
            "accuracy_m is 0 to {MAX_ACCURACY_M}, not {}",
            f.accuracy_m
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Decision, EventReason};
    use proptest::prelude::*;

    fn event() -> AttendanceEvent {
        AttendanceEvent {
            id: "01HZZZZZZZZZZZZZZZZZZZ0001".into(),
            seq: 1,
            site_id: "hq".into(),
            person_id: Some("ana".into()),
            decision: Decision::Granted,
            similarity: Some(0.8),
            risk_score: 0.1,
            reasons: vec![EventReason {
                code: "low_accuracy".into(),
                text: "fix accuracy 80 m".into(),
                weight: 0.1,
            }],
            position: Some(Fix {
                lat: 48.85,
                lon: 2.29,
                accuracy_m: 80.0,
            }),
            node_time_ms: 1_700_000_000_000,
            card: Some("raw:32:0123abcd".into()),
            hlc: None,
        }
    }

    #[test]
    fn each_field_past_its_bound_is_named() {
        assert_eq!(invalid_event_fields(&event()), None);
        type Change = Box<dyn Fn(&mut AttendanceEvent)>;
        let cases: Vec<(&str, Change)> = vec![
            ("invalid_seq", Box::new(|e| e.seq = 1 << 63)),
            ("invalid_seq", Box::new(|e| e.seq = 0)),
            (
                "person_id",
                Box::new(|e| e.person_id = Some("p".repeat(1000))),
            ),
            ("similarity", Box::new(|e| e.similarity = Some(99.0))),
            ("similarity", Box::new(|e| e.similarity = Some(1.01))),
            ("similarity", Box::new(|e| e.similarity = Some(f64::NAN))),
            ("risk_score", Box::new(|e| e.risk_score = f64::NAN)),
            (
                "reasons:",
                Box::new(|e| e.reasons = vec![e.reasons[0].clone(); 10_000]),
            ),
            (
                "reasons[0].text",
                Box::new(|e| e.reasons[0].text = "x".repeat(3_900_000)),
            ),
            (
                "reasons[0].code",
                Box::new(|e| e.reasons[0].code = "Low Accuracy".into()),
            ),
            (
                "reasons[0].weight",
                Box::new(|e| e.reasons[0].weight = f64::INFINITY),
            ),
            (
                "latitude",
                Box::new(|e| e.position.as_mut().map_or((), |p| p.lat = 91.0)),
            ),
            (
                "longitude",
                Box::new(|e| e.position.as_mut().map_or((), |p| p.lon = -181.0)),
            ),
            (
                "accuracy_m",
                Box::new(|e| e.position.as_mut().map_or((), |p| p.accuracy_m = -1.0)),
            ),
            ("node_time_ms", Box::new(|e| e.node_time_ms = -5)),
            ("node_time_ms", Box::new(|e| e.node_time_ms = i64::MAX)),
            ("card", Box::new(|e| e.card = Some("9".repeat(2_000_000)))),
            ("card", Box::new(|e| e.card = Some("a b".into()))),
            (
                "hlc",
                Box::new(|e| {
                    e.hlc = Some(crate::merge::Hlc {
                        ms: u64::MAX,
                        counter: 0,
                        origin: "n1".into(),
                    })
                }),
            ),
        ];
        for (field, change) in cases {
            let mut e = event();
            change(&mut e);
            let why = invalid_event_fields(&e).unwrap_or_default();
            assert!(why.contains(field), "{field}: {why}");
        }
    }

    /// Every event of the golden pushes (what a node sends) is within bounds.
    #[test]
    fn the_golden_events_of_a_node_pass() {
        let mut seen = 0;
        for case in crate::golden::cases() {
            if let crate::golden::Payload::Push(batch) = &case.payload {
                for e in &batch.events {
                    seen += 1;
                    assert_eq!(invalid_event_fields(e), None, "{}", case.name);
                }
            }
        }
        assert!(seen > 0);
    }

    proptest! {
        /// Whatever the numbers, an event is refused exactly when one is out of its range, and
        /// a refusal never panics.
        #[test]
        fn numbers_are_refused_exactly_out_of_range(
            lat in -200.0f64..200.0, lon in -400.0f64..400.0, acc in -10.0f64..200_000.0,
            t in any::<i64>(), sim in -3.0f64..3.0,
        ) {
            let mut e = event();
            e.position = Some(Fix { lat, lon, accuracy_m: acc });
            e.node_time_ms = t;
            e.similarity = Some(sim);
            let fine = (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)
                && (0.0..=MAX_ACCURACY_M).contains(&acc) && NODE_TIME_MS.contains(&t)
                && SIMILARITY.contains(&sim);
            prop_assert_eq!(invalid_event_fields(&e).is_none(), fine);
        }
    }
}
