//! Cron expressions in a named time zone: the five fields of Vixie cron (minute, hour, day of
//! month, month, day of week) with lists, ranges, steps and names, and the `@hourly`-style
//! macros; when both day fields are restricted a day matching either runs (as cron does).
//!
//! Slots are wall-clock times in the schedule's zone, so "every day at 06:00" stays at 06:00
//! across daylight-saving changes. A slot inside a skipped hour (spring forward) runs as much
//! later as the clock jumped (02:30 becomes 03:30); a slot inside a repeated hour (fall back)
//! runs once, at its first occurrence.

use jiff::{
    Timestamp,
    civil::{Date, DateTime},
    tz::TimeZone,
};

/// Why a cron string or a time zone is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("cron `{cron}`: {why}")]
    Cron { cron: String, why: String },
    #[error("`{0}` is not a time zone of the tz database (for example `Europe/Berlin` or `UTC`)")]
    Zone(String),
}

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    source: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether the day-of-month / day-of-week field was `*` (then only the other one counts).
    any_day: bool,
    any_weekday: bool,
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
/// The longest each month can be (February of a leap year).
const MONTH_DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// How far from the searched instant a slot's wall-clock time can be moved by a
/// daylight-saving change (the largest shifts in the tz database are two hours).
const SHIFT_HOURS: i64 = 3;

/// One field: its name, bounds, and the names its values may have (first name = `min`).
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: MONTHS,
    },
    // 7 is Sunday too, as in cron.
    Field {
        name: "day of week",
        min: 0,
        max: 7,
        names: WEEKDAYS,
    },
];

impl Field {
    fn value(&self, text: &str) -> Result<u32, String> {
        let v = match text.parse::<u32>() {
            Ok(v) => v,
            Err(_) => self
                .names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(text))
                .map(|i| self.min + i as u32)
                .ok_or_else(|| format!("{}: `{text}` is not a number or a name", self.name))?,
        };
        if v < self.min || v > self.max {
            return Err(format!(
                "{}: {v} is outside {}-{}",
                self.name, self.min, self.max
            ));
        }
        Ok(v)
    }

    /// The field's values as bits (bit n: value n).
    fn parse(&self, text: &str) -> Result<u64, String> {
        let mut bits = 0u64;
        for item in text.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => {
                    let step = s
                        .parse::<u32>()
                        .ok()
                        .filter(|s| *s > 0)
                        .ok_or_else(|| format!("{}: step `{s}` is not 1 or more", self.name))?;
                    (r, Some(step))
                }
                None => (item, None),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(format!("{}: range {a}-{b} runs backwards", self.name));
                }
                (a, b)
            } else {
                let a = self.value(range)?;
                // `5/15`: from 5 to the end in steps of 15.
                (a, if step.is_some() { self.max } else { a })
            };
            if item.is_empty() {
                return Err(format!("{}: an empty list item", self.name));
            }
            let mut v = lo;
            while v <= hi {
                bits |= 1 << v;
                v += step.unwrap_or(1);
            }
        }
        Ok(bits)
    }
}

impl Cron {
    /// Parses five fields or a macro (`@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly`).
    pub fn parse(text: &str) -> Result<Cron, CronError> {
        let refuse = |why: String| CronError::Cron {
            cron: text.to_owned(),
            why,
        };
        let trimmed = text.trim();
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            m if m.starts_with('@') => {
                return Err(refuse(format!(
                    "`{m}` is not a macro (@yearly, @monthly, @weekly, @daily, @hourly)"
                )));
            }
            _ => trimmed,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(refuse(format!(
                "{} fields; cron has five: minute hour day-of-month month day-of-week",
                parts.len()
            )));
        }
        let mut bits = [0u64; 5];
        for (i, (field, part)) in FIELDS.iter().zip(&parts).enumerate() {
            bits[i] = field.parse(part).map_err(refuse)?;
        }
        // Sunday is 0 and 7.
        if bits[4] & (1 << 7) != 0 {
            bits[4] = (bits[4] | 1) & !(1 << 7);
        }
        let cron = Cron {
            source: trimmed.to_owned(),
            minutes: bits[0],
            hours: bits[1],
            days: bits[2],
            months: bits[3],
            weekdays: bits[4],
            any_day: parts[2].starts_with('*'),
            any_weekday: parts[4].starts_with('*'),
        };
        if cron.any_weekday && !cron.any_day {
            let possible = (1..=12u32).any(|m| {
                cron.months & (1 << m) != 0
                    && (1..=MONTH_DAYS[m as usize - 1]).any(|d| cron.days & (1 << d) != 0)
            });
            if !possible {
                return Err(refuse("no month of the expression has that day".into()));
            }
        }
        Ok(cron)
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    fn day_matches(&self, d: Date) -> bool {
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }

    /// The first slot strictly after `after_ms` (ms since the epoch) in zone `tz`; `None` if
    /// there is none in the next eight years (an expression such as Feb 29 on a Monday only).
    pub fn next_after(&self, tz: &TimeZone, after_ms: i64) -> Option<i64> {
        let after = Timestamp::from_millisecond(after_ms).ok()?;
        let civil = after.to_zoned_datetime(tz.clone()).datetime();
        let shift = jiff::Span::new().hours(SHIFT_HOURS);
        let from = civil.checked_sub(shift).ok()?;
        let mut best: Option<(Timestamp, DateTime)> = None;
        let mut day = from.date();
        for _ in 0..366 * 8 {
            if let Some((_, at)) = best
                && day.at(0, 0, 0, 0) > at.checked_add(shift).ok()?
            {
                break;
            }
            if self.day_matches(day) {
                for h in (0..24i8).filter(|h| self.hours & (1 << h) != 0) {
                    for m in (0..60i8).filter(|m| self.minutes & (1 << m) != 0) {
                        let dt = day.at(h, m, 0, 0);
                        if dt < from {
                            continue;
                        }
                        if let Some((_, at)) = best
                            && dt > at.checked_add(shift).ok()?
                        {
                            return best.map(|(ts, _)| ts.as_millisecond());
                        }
                        let Ok(ts) = tz.to_ambiguous_timestamp(dt).compatible() else {
                            continue;
                        };
                        if ts > after && best.is_none_or(|(b, _)| ts < b) {
                            best = Some((ts, dt));
                        }
                    }
                }
            }
            day = day.tomorrow().ok()?;
        }
        best.map(|(ts, _)| ts.as_millisecond())
    }

    /// The last slot at or before `at_ms` that comes after `after_ms`, and how many slots lie
    /// in between (both bounds exclusive of `after_ms`): what a schedule missed while no
    /// replica ran. Looks at most `limit` slots ahead, then reports the limit.
    pub fn last_slot_by(
        &self,
        tz: &TimeZone,
        after_ms: i64,
        at_ms: i64,
        limit: u32,
    ) -> Option<(i64, u32)> {
        let mut last = None;
        let mut n = 0;
        let mut cursor = after_ms;
        while n < limit {
            match self.next_after(tz, cursor) {
                Some(slot) if slot <= at_ms => {
                    last = Some(slot);
                    n += 1;
                    cursor = slot;
                }
                _ => break,
            }
        }
        last.map(|slot| (slot, n))
    }
}

impl std::fmt::Display for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// The named zone of the tz database (`UTC` included); refused when there is no such zone.
pub fn time_zone(name: &str) -> Result<TimeZone, CronError> {
    if name.is_empty() || name.len() > 64 {
        return Err(CronError::Zone(name.to_owned()));
    }
    TimeZone::get(name).map_err(|_| CronError::Zone(name.to_owned()))
}

/// `ms` as RFC 3339 text in zone `tz` (for example `2026-03-29T03:30:00+02:00`).
pub fn local_time(tz: &TimeZone, ms: i64) -> String {
    Timestamp::from_millisecond(ms)
        .map(|ts| {
            let z = ts.to_zoned_datetime(tz.clone());
            ts.display_with_offset(z.offset()).to_string()
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "cron_tests.rs"]
mod tests;
