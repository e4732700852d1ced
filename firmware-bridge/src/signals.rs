//! What a reader shows and sounds: LED colours (temporary or permanent), the buzzer and text on
//! a display — the osdp_LED, osdp_BUZ and osdp_TEXT command records.

use std::time::Duration;

/// LED colours of osdp_LED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LedColor {
    Off = 0,
    Red = 1,
    Green = 2,
    Amber = 3,
    Blue = 4,
    Magenta = 5,
    Cyan = 6,
    White = 7,
}

/// Whole 100 ms ticks in `d`, saturating at `max`.
fn ticks(d: Duration, max: u128) -> u128 {
    (d.as_millis() / 100).min(max)
}

/// One osdp_LED record: `color` for `duration` (then back to the permanent state), or, with
/// `duration = None`, as the new permanent state.
pub(crate) fn led_record(
    reader: u8,
    led: u8,
    color: LedColor,
    duration: Option<Duration>,
) -> Vec<u8> {
    let on = color as u8;
    match duration {
        Some(d) => {
            let [lo, hi] = (ticks(d, u16::MAX as u128).max(1) as u16).to_le_bytes();
            // Temporary: control 2 (set and start the timer), steady on; permanent: no change.
            vec![reader, led, 2, 10, 0, on, 0, lo, hi, 0, 0, 0, 0, 0]
        }
        // Temporary: control 1 (cancel); permanent: control 1 (set), steady on.
        None => vec![reader, led, 1, 0, 0, 0, 0, 0, 0, 1, 10, 0, on, 0],
    }
}

/// One osdp_BUZ record: `count` beeps of `on` with `off` between (default tone).
pub(crate) fn buzzer_record(reader: u8, on: Duration, off: Duration, count: u8) -> Vec<u8> {
    vec![
        reader,
        2,
        ticks(on, u8::MAX as u128).max(1) as u8,
        ticks(off, u8::MAX as u128) as u8,
        count,
    ]
}

/// One osdp_TEXT record: `text` (ASCII, at most 32 characters shown) at (row, column),
/// permanently or for `temporary` seconds.
pub(crate) fn text_record(
    reader: u8,
    row: u8,
    column: u8,
    text: &str,
    temporary: Option<u8>,
) -> Vec<u8> {
    let shown: Vec<u8> = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c as u8
            } else {
                b'?'
            }
        })
        .take(32)
        .collect();
    let (control, seconds) = match temporary {
        Some(s) => (3, s),
        None => (1, 0),
    };
    let mut out = vec![reader, control, seconds, row, column, shown.len() as u8];
    out.extend(shown);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_the_standard_layout() {
        let temp = led_record(0, 1, LedColor::Green, Some(Duration::from_millis(2000)));
        assert_eq!(temp.len(), 14);
        assert_eq!(&temp[..9], &[0, 1, 2, 10, 0, 2, 0, 20, 0]);
        let perm = led_record(0, 0, LedColor::Red, None);
        assert_eq!((perm[2], perm[9], perm[12]), (1, 1, 1));
        assert_eq!(
            buzzer_record(0, Duration::from_millis(300), Duration::from_millis(100), 2),
            [0, 2, 3, 1, 2]
        );
        let t = text_record(0, 1, 2, "Welcome, Zoë", Some(5));
        assert_eq!(&t[..6], &[0, 3, 5, 1, 2, 12]);
        assert_eq!(&t[6..], b"Welcome, Zo?");
        assert_eq!(text_record(0, 0, 0, &"x".repeat(100), None)[5], 32);
    }
}
