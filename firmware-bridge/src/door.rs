//! Door supervision from the door-contact input and the grants: a door that opens without a
//! recent grant was forced; a door left open longer than allowed after a grant is held open.
//! Pure logic over the times it is given, so it is tested without waiting.

use std::time::{Duration, Instant};

/// A door alarm, or its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoorAlarm {
    /// Opened with no grant in the allowed window before.
    Forced,
    /// Still open `open_for` after being opened.
    HeldOpen { open_for: Duration },
    /// Closed again after an alarm.
    Secured,
}

#[derive(Debug, Clone)]
pub struct DoorMonitor {
    /// After a grant, how long the door may be opened for that passage.
    grant_window: Duration,
    /// How long the door may stay open.
    held_limit: Duration,
    last_grant: Option<Instant>,
    opened_at: Option<Instant>,
    alarmed: bool,
    held_reported: bool,
}

impl DoorMonitor {
    pub fn new(grant_window: Duration, held_limit: Duration) -> Self {
        Self {
            grant_window,
            held_limit,
            last_grant: None,
            opened_at: None,
            alarmed: false,
            held_reported: false,
        }
    }

    /// Access was granted (the relay was pulsed) at `now`.
    pub fn granted(&mut self, now: Instant) {
        self.last_grant = Some(now);
    }

    /// The door contact reads `open` at `now`.
    pub fn contact(&mut self, open: bool, now: Instant) -> Option<DoorAlarm> {
        match (open, self.opened_at) {
            (true, None) => {
                self.opened_at = Some(now);
                self.held_reported = false;
                let authorised = self
                    .last_grant
                    .is_some_and(|g| now.saturating_duration_since(g) <= self.grant_window);
                // One grant lets one opening through.
                self.last_grant = None;
                if authorised {
                    None
                } else {
                    self.alarmed = true;
                    Some(DoorAlarm::Forced)
                }
            }
            (false, Some(_)) => {
                self.opened_at = None;
                std::mem::take(&mut self.alarmed).then_some(DoorAlarm::Secured)
            }
            _ => None,
        }
    }

    /// Checks the held-open limit at `now` (call it regularly); reports once per opening.
    pub fn tick(&mut self, now: Instant) -> Option<DoorAlarm> {
        let opened = self.opened_at?;
        let open_for = now.saturating_duration_since(opened);
        if open_for > self.held_limit && !self.held_reported {
            self.held_reported = true;
            self.alarmed = true;
            return Some(DoorAlarm::HeldOpen { open_for });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn monitor() -> (DoorMonitor, Instant) {
        (
            DoorMonitor::new(Duration::from_secs(10), Duration::from_secs(30)),
            Instant::now(),
        )
    }

    #[test]
    fn a_granted_passage_raises_nothing() {
        let (mut m, t) = monitor();
        m.granted(t);
        assert_eq!(m.contact(true, t + Duration::from_secs(2)), None);
        assert_eq!(m.tick(t + Duration::from_secs(20)), None);
        assert_eq!(m.contact(false, t + Duration::from_secs(25)), None);
    }

    #[test]
    fn opening_without_a_grant_is_forced_and_closing_secures_it() {
        let (mut m, t) = monitor();
        assert_eq!(m.contact(true, t), Some(DoorAlarm::Forced));
        assert_eq!(
            m.contact(true, t + Duration::from_secs(1)),
            None,
            "still open: no repeat"
        );
        assert_eq!(
            m.contact(false, t + Duration::from_secs(2)),
            Some(DoorAlarm::Secured)
        );
        // A grant too long ago does not cover an opening, and one grant covers one opening.
        m.granted(t + Duration::from_secs(3));
        assert_eq!(
            m.contact(true, t + Duration::from_secs(20)),
            Some(DoorAlarm::Forced)
        );
        m.contact(false, t + Duration::from_secs(21));
        m.granted(t + Duration::from_secs(22));
        assert_eq!(m.contact(true, t + Duration::from_secs(23)), None);
        m.contact(false, t + Duration::from_secs(24));
        assert_eq!(
            m.contact(true, t + Duration::from_secs(25)),
            Some(DoorAlarm::Forced),
            "tailgating"
        );
    }

    #[test]
    fn a_door_left_open_is_reported_once() {
        let (mut m, t) = monitor();
        m.granted(t);
        m.contact(true, t);
        assert_eq!(m.tick(t + Duration::from_secs(29)), None);
        assert_eq!(
            m.tick(t + Duration::from_secs(31)),
            Some(DoorAlarm::HeldOpen {
                open_for: Duration::from_secs(31)
            })
        );
        assert_eq!(m.tick(t + Duration::from_secs(60)), None);
        assert_eq!(
            m.contact(false, t + Duration::from_secs(61)),
            Some(DoorAlarm::Secured)
        );
    }

    proptest! {
        #[test]
        fn no_alarm_for_openings_right_after_their_grant(steps in proptest::collection::vec((0u64..5, 1u64..20), 1..30)) {
            let (mut m, mut t) = monitor();
            for (gap, open_secs) in steps {
                t += Duration::from_secs(gap);
                m.granted(t);
                prop_assert_eq!(m.contact(true, t + Duration::from_secs(1)), None);
                prop_assert_eq!(m.tick(t + Duration::from_secs(open_secs)), None);
                prop_assert_eq!(m.contact(false, t + Duration::from_secs(open_secs)), None);
                t += Duration::from_secs(open_secs + 1);
            }
        }
    }
}
