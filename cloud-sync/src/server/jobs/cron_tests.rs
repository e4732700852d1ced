use jiff::{Timestamp, tz::TimeZone};
use proptest::prelude::*;

use super::{Cron, CronError, local_time, time_zone};

fn ms(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<Timestamp>()
        .expect("a test timestamp")
        .as_millisecond()
}

fn utc(ms: i64) -> String {
    Timestamp::from_millisecond(ms)
        .expect("in range")
        .to_string()
}

fn berlin() -> TimeZone {
    time_zone("Europe/Berlin").expect("the tz database has Berlin")
}

/// The next `n` slots after `from`, as UTC text.
fn slots(cron: &str, tz: &TimeZone, from: &str, n: usize) -> Vec<String> {
    let cron = Cron::parse(cron).expect("a valid expression");
    let mut at = ms(from);
    (0..n)
        .map(|_| {
            at = cron.next_after(tz, at).expect("a next slot");
            utc(at)
        })
        .collect()
}

#[test]
fn bad_expressions_are_refused_naming_the_field_and_why() {
    for (text, says) in [
        ("* * * *", "4 fields"),
        ("* * * * * *", "6 fields"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* 24 * * *", "hour: 24 is outside 0-23"),
        ("* * 0 * *", "day of month: 0 is outside 1-31"),
        ("* * * 13 *", "month: 13 is outside 1-12"),
        ("* * * * 8", "day of week: 8 is outside 0-7"),
        ("*/0 * * * *", "step `0` is not 1 or more"),
        ("5-1 * * * *", "range 5-1 runs backwards"),
        ("* * * foo *", "month: `foo` is not a number or a name"),
        ("1,,2 * * * *", "minute: `` is not a number"),
        ("0 0 30 2 *", "no month of the expression has that day"),
        (
            "0 0 31 4,6,9,11 *",
            "no month of the expression has that day",
        ),
        ("@reboot", "`@reboot` is not a macro"),
        ("", "0 fields"),
    ] {
        match Cron::parse(text) {
            Err(CronError::Cron { cron, why }) => {
                assert_eq!(cron, text);
                assert!(why.contains(says), "`{text}`: {why}");
            }
            other => panic!("`{text}` gave {other:?}"),
        }
    }
}

#[test]
fn names_macros_lists_and_steps_mean_what_cron_means() {
    let tz = TimeZone::UTC;
    // 2026-12-04 is a Friday.
    assert_eq!(
        slots("0 9 * * MON-fri", &tz, "2026-12-04T10:00:00Z", 2),
        ["2026-12-07T09:00:00Z", "2026-12-08T09:00:00Z"]
    );
    // 7 is Sunday, like 0.
    assert_eq!(
        slots("0 0 * * 7", &tz, "2026-12-04T00:00:00Z", 1),
        ["2026-12-06T00:00:00Z"]
    );
    assert_eq!(
        slots("5/20 * * * *", &tz, "2026-12-04T10:00:00Z", 3),
        [
            "2026-12-04T10:05:00Z",
            "2026-12-04T10:25:00Z",
            "2026-12-04T10:45:00Z"
        ]
    );
    assert_eq!(
        slots("0,30 8-9/1 * * *", &tz, "2026-12-04T08:00:00Z", 3),
        [
            "2026-12-04T08:30:00Z",
            "2026-12-04T09:00:00Z",
            "2026-12-04T09:30:00Z"
        ]
    );
    assert_eq!(
        slots("@monthly", &tz, "2026-12-04T00:00:00Z", 2),
        ["2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"]
    );
    assert_eq!(
        slots("@weekly", &tz, "2026-12-04T00:00:00Z", 1),
        ["2026-12-06T00:00:00Z"]
    );
    // Both day fields restricted: either matches (the 15th, and every Monday).
    assert_eq!(
        slots("0 0 15 * mon", &tz, "2026-12-11T00:00:00Z", 3),
        [
            "2026-12-14T00:00:00Z",
            "2026-12-15T00:00:00Z",
            "2026-12-21T00:00:00Z"
        ]
    );
    // Feb 29 comes in leap years only.
    assert_eq!(
        slots("0 12 29 2 *", &tz, "2026-12-04T00:00:00Z", 1),
        ["2028-02-29T12:00:00Z"]
    );
    assert_eq!(
        Cron::parse("  @Daily ")
            .map(|c| c.to_string())
            .ok()
            .as_deref(),
        Some("@Daily")
    );
}

#[test]
fn a_daily_slot_keeps_its_wall_clock_time_across_daylight_saving() {
    let tz = berlin();
    // Spring forward on 2026-03-29 (CET +1 → CEST +2), fall back on 2026-10-25.
    assert_eq!(
        slots("0 6 * * *", &tz, "2026-03-27T12:00:00Z", 3),
        [
            "2026-03-28T05:00:00Z",
            "2026-03-29T04:00:00Z",
            "2026-03-30T04:00:00Z"
        ]
    );
    assert_eq!(
        slots("0 6 * * *", &tz, "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T05:00:00Z", "2026-10-26T05:00:00Z"]
    );
}

#[test]
fn a_slot_in_the_skipped_hour_runs_after_the_jump_and_one_in_the_repeated_hour_runs_once() {
    let tz = berlin();
    // 02:30 does not exist on 2026-03-29: it runs at 03:30 CEST.
    assert_eq!(
        slots("30 2 * * *", &tz, "2026-03-28T12:00:00Z", 2),
        ["2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z"]
    );
    // 02:30 comes twice on 2026-10-25: it runs at the first (CEST), not again at the second.
    assert_eq!(
        slots("30 2 * * *", &tz, "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    );
    // Slots that the jump moves onto the same instant run once, in order.
    assert_eq!(
        slots("*/30 2-3 * * *", &tz, "2026-03-29T00:00:00Z", 3),
        [
            "2026-03-29T01:00:00Z",
            "2026-03-29T01:30:00Z",
            "2026-03-30T00:00:00Z"
        ]
    );
    // Hourly: the skipped hour has no slot; the repeated hour's wall-clock slot runs once.
    assert_eq!(
        slots("0 * * * *", &tz, "2026-03-28T23:30:00Z", 3),
        [
            "2026-03-29T00:00:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T02:00:00Z"
        ]
    );
    assert_eq!(
        slots("0 * * * *", &tz, "2026-10-24T23:30:00Z", 3),
        [
            "2026-10-25T00:00:00Z",
            "2026-10-25T02:00:00Z",
            "2026-10-25T03:00:00Z"
        ]
    );
}

#[test]
fn zones_are_the_tz_databases_and_times_show_their_offset() {
    assert!(time_zone("UTC").is_ok());
    assert!(time_zone("America/New_York").is_ok());
    for bad in [
        "Mars/Olympus_Mons",
        "",
        "Europe/Berlin\u{0}",
        &"x".repeat(100),
    ] {
        assert_eq!(time_zone(bad).err(), Some(CronError::Zone(bad.to_owned())));
    }
    assert_eq!(
        local_time(&berlin(), ms("2026-03-29T01:30:00Z")),
        "2026-03-29T03:30:00+02:00"
    );
    assert_eq!(
        local_time(&TimeZone::UTC, ms("2026-12-04T06:00:00Z")),
        "2026-12-04T06:00:00+00:00"
    );
}

#[test]
fn the_missed_slots_are_counted_up_to_a_limit() {
    let cron = Cron::parse("* * * * *").expect("valid");
    let from = ms("2026-12-04T10:00:00Z");
    assert_eq!(
        cron.last_slot_by(&TimeZone::UTC, from, from + 600_000, 1000),
        Some((from + 600_000, 10))
    );
    assert_eq!(
        cron.last_slot_by(&TimeZone::UTC, from, from + 600_000, 4),
        Some((from + 240_000, 4))
    );
    assert_eq!(
        cron.last_slot_by(&TimeZone::UTC, from, from + 59_999, 1000),
        None
    );
}

/// Whether `cron` matches the minute starting at `ms`, UTC, read field by field.
fn matches_utc(cron: &Cron, ms: i64) -> bool {
    let dt = Timestamp::from_millisecond(ms)
        .expect("in range")
        .to_zoned_datetime(TimeZone::UTC)
        .datetime();
    cron.minutes & (1 << dt.minute()) != 0
        && cron.hours & (1 << dt.hour()) != 0
        && cron.day_matches(dt.date())
}

fn field(max: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        (0..=max).prop_map(|v| v.to_string()),
        (1..=max.min(20)).prop_map(|s| format!("*/{s}")),
        (0..=max, 0..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        proptest::collection::vec(0..=max, 1..4).prop_map(|v| v
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// In UTC the next slot is the first matching minute after the instant, found by looking
    /// at every minute in turn.
    #[test]
    fn the_next_slot_is_the_first_matching_minute(
        minute in field(59),
        hour in field(23),
        weekday in prop_oneof![Just("*".to_owned()), (0u32..=6).prop_map(|d| d.to_string())],
        after in ms("2026-01-01T00:00:00Z")..ms("2030-01-01T00:00:00Z"),
    ) {
        let text = format!("{minute} {hour} * * {weekday}");
        let cron = Cron::parse(&text).expect("generated valid");
        let next = cron.next_after(&TimeZone::UTC, after).expect("matches within a week");
        prop_assert!(next > after);
        prop_assert_eq!(next % 60_000, 0);
        prop_assert!(matches_utc(&cron, next), "{} at {}", text, utc(next));
        let mut m = after - after.rem_euclid(60_000) + 60_000;
        while m < next {
            prop_assert!(!matches_utc(&cron, m), "{} skipped {}", text, utc(m));
            m += 60_000;
        }
    }

    /// Whatever the zone, slots come strictly in order and each is a wall-clock match.
    #[test]
    fn slots_increase_in_every_zone(
        zone in prop::sample::select(vec!["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]),
        minute in field(59),
        hour in field(23),
        after in ms("2026-01-01T00:00:00Z")..ms("2030-01-01T00:00:00Z"),
    ) {
        let tz = time_zone(zone).expect("known zone");
        let cron = Cron::parse(&format!("{minute} {hour} * * *")).expect("valid");
        let mut at = after;
        for _ in 0..5 {
            let next = cron.next_after(&tz, at).expect("daily at least");
            prop_assert!(next > at);
            prop_assert!(next - at <= 26 * 3600 * 1000, "{} → {}", utc(at), utc(next));
            at = next;
        }
    }

    /// No string makes the parser panic; what parses, parses again the same.
    #[test]
    fn any_text_parses_or_is_refused(text in "[0-9*/,@a-zA-Z -]{0,30}") {
        if let Ok(c) = Cron::parse(&text) {
            prop_assert_eq!(Cron::parse(c.as_str()), Ok(c.clone()));
        }
    }
}
