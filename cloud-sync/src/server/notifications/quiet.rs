//! Quiet hours: a user's nightly window, in their own time zone, in which mail that is not
//! critical waits (the in-app notification does not). A window may cross midnight (22:00 to
//! 07:00); its end is found on the civil clock, so a DST change moves it with the zone.

use jiff::{Timestamp, civil, tz::TimeZone};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A daily window from `from` (inclusive) to `to` (exclusive), as `HH:MM` local times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuietHours {
    /// `22:00`
    #[schema(value_type = String, pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    #[serde(with = "hhmm")]
    pub from: u16,
    /// `07:00`
    #[schema(value_type = String, pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    #[serde(with = "hhmm")]
    pub to: u16,
}

impl QuietHours {
    /// Minutes of the day; `None` unless both are `0..1440` and differ.
    pub fn new(from: u16, to: u16) -> Option<Self> {
        (from < 1440 && to < 1440 && from != to).then_some(Self { from, to })
    }

    fn contains(self, minute: u16) -> bool {
        if self.from < self.to {
            (self.from..self.to).contains(&minute)
        } else {
            minute >= self.from || minute < self.to
        }
    }

    /// Whether both ends are real times of day and differ (what the API checks).
    pub fn valid(self) -> bool {
        Self::new(self.from, self.to).is_some()
    }
}

/// When mail held by quiet hours `q` in zone `tz` may go, if `now_ms` falls in them.
pub fn quiet_until(tz: &TimeZone, q: QuietHours, now_ms: i64) -> Option<i64> {
    let now = Timestamp::from_millisecond(now_ms)
        .ok()?
        .to_zoned_datetime(tz.clone());
    let minute = u16::try_from(now.hour()).ok()? * 60 + u16::try_from(now.minute()).ok()?;
    if !q.contains(minute) {
        return None;
    }
    let date = if minute < q.to {
        now.date()
    } else {
        now.date().tomorrow().ok()?
    };
    let hour = i8::try_from(q.to / 60).ok()?;
    let min = i8::try_from(q.to % 60).ok()?;
    // In a DST gap the end moves forward with the clock (jiff's "compatible" choice); when
    // the clock falls back, the end is the first of the two that is still to come.
    let ends = tz.to_ambiguous_zoned_datetime(date.to_datetime(civil::time(hour, min, 0, 0)));
    let mut end = ends.clone().compatible().ok()?.timestamp().as_millisecond();
    if end <= now_ms {
        end = ends.later().ok()?.timestamp().as_millisecond();
    }
    Some(end.max(now_ms + 1))
}

mod hhmm {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(m: &u16, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:02}:{:02}", m / 60, m % 60))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| D::Error::custom(format!("`{s}` is not a time of day as HH:MM")))
    }

    pub fn parse(s: &str) -> Option<u16> {
        let (h, m) = s.split_once(':')?;
        if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(zoned: &str) -> i64 {
        zoned
            .parse::<jiff::ZonedDateTime>()
            .expect("zoned")
            .timestamp()
            .as_millisecond()
    }

    #[test]
    fn a_window_across_midnight_ends_the_next_morning() {
        let tz = TimeZone::get("Europe/Berlin").expect("zone");
        let q = QuietHours::new(22 * 60, 7 * 60).expect("window");
        let at = |s: &str| quiet_until(&tz, q, ms(s));
        assert_eq!(
            at("2026-06-01T23:30[Europe/Berlin]"),
            Some(ms("2026-06-02T07:00[Europe/Berlin]"))
        );
        assert_eq!(
            at("2026-06-02T03:00[Europe/Berlin]"),
            Some(ms("2026-06-02T07:00[Europe/Berlin]"))
        );
        assert_eq!(at("2026-06-02T07:00[Europe/Berlin]"), None);
        assert_eq!(at("2026-06-02T21:59[Europe/Berlin]"), None);
        // The night the clocks go forward the window still ends at 07:00 local (one hour
        // shorter on the wall).
        assert_eq!(
            at("2026-03-28T22:30[Europe/Berlin]"),
            Some(ms("2026-03-29T07:00[Europe/Berlin]"))
        );
    }

    #[test]
    fn a_daytime_window_and_a_gap_at_its_end() {
        let tz = TimeZone::get("America/New_York").expect("zone");
        // 01:00 to 02:30: on 2026-03-08 the clock jumps from 02:00 to 03:00, so 02:30 does not
        // exist and the end moves forward to 03:30 EDT.
        let q = QuietHours::new(60, 150).expect("window");
        assert_eq!(
            quiet_until(&tz, q, ms("2026-03-08T01:15[America/New_York]")),
            Some(ms("2026-03-08T03:30-04:00[America/New_York]"))
        );
        assert!(QuietHours::new(60, 60).is_none());
        assert!(QuietHours::new(1440, 0).is_none());
    }

    #[test]
    fn times_of_day_parse_strictly() {
        assert_eq!(hhmm::parse("07:05"), Some(425));
        assert_eq!(hhmm::parse("23:59"), Some(1439));
        for bad in [
            "24:00",
            "7:05",
            "07:5",
            "07-05",
            "",
            "+1:00",
            "07:60",
            "٠٧:٠٥",
        ] {
            assert_eq!(hhmm::parse(bad), None, "{bad}");
        }
    }

    proptest! {
        /// Mail held by quiet hours is held until a time outside them, less than a day (and a
        /// DST hour) later; mail outside them is not held.
        #[test]
        fn held_mail_goes_at_the_first_minute_outside(
            now in 1_500_000_000_000i64..2_500_000_000_000,
            from in 0u16..1440,
            to in 0u16..1440,
            zone in prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]),
        ) {
            prop_assume!(from != to);
            let tz = TimeZone::get(zone).expect("zone");
            let q = QuietHours::new(from, to).expect("window");
            if let Some(until) = quiet_until(&tz, q, now) {
                prop_assert!(until > now);
                prop_assert!(until - now <= 25 * 3600 * 1000, "held {} ms", until - now);
                prop_assert_eq!(quiet_until(&tz, q, until), None);
            }
        }
    }
}
