//! Cards on the site's reader: how a card is named (the same way when an admin types it and
//! when the reader reads it), and the short window in which a presented card waits for its
//! holder's face at the kiosk.

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use rollcall_firmware_bridge::CardRead;

/// A card's name: `facility:number` for a parity-checked 26/34/37-bit Wiegand card (as
/// printed on most cards), otherwise `raw:<bits>:<hex of the bytes>`.
pub fn card_key(card: &CardRead) -> String {
    match card.wiegand() {
        Some(w) => CardKey::wiegand(w.facility, w.number),
        None => CardKey::raw(card.bits, &card.data),
    }
    .into_string()
}

pub use rollcall_protocol::ids::{CardFormatError, CardKey};

/// A card name as an admin types it, normalised ([`CardKey::parse`]).
pub fn parse_card_key(text: &str) -> Result<String, CardFormatError> {
    CardKey::parse(text).map(CardKey::into_string)
}

/// A card presented at the reader, waiting for its holder's face.
#[derive(Debug, Clone, PartialEq)]
pub struct PresentedCard {
    pub card: String,
    pub person_id: String,
    pub display_name: String,
    /// The OSDP address of the reader it was read on (the decision's feedback goes there).
    pub reader: u8,
}

/// At most one presented card at a time (one reader, one queue): a newer card replaces an
/// older one; a card is used by one check-in, or expires after the window.
pub struct CardGate {
    window: Duration,
    pending: Mutex<Option<(PresentedCard, Instant)>>,
}

impl CardGate {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            pending: Mutex::new(None),
        }
    }

    pub fn present(&self, card: PresentedCard, at: Instant) {
        *self.pending.lock() = Some((card, at));
    }

    /// The card waiting at `now`, if any, and when it was presented; it is used up.
    pub fn take(&self, now: Instant) -> Option<(PresentedCard, Instant)> {
        let pending = self.pending.lock().take();
        pending.filter(|(_, at)| now.saturating_duration_since(*at) <= self.window)
    }

    /// Puts back a card taken for a frame that could not be used (no face, a blurred one), so
    /// the next frame still counts, unless another card was presented meanwhile.
    pub fn give_back(&self, card: PresentedCard, at: Instant) {
        let mut pending = self.pending.lock();
        if pending.is_none() {
            *pending = Some((card, at));
        }
    }

    /// The card waiting at `now` and how long it still waits, without using it (for the
    /// kiosk's "look at the camera" prompt).
    pub fn peek(&self, now: Instant) -> Option<(PresentedCard, Duration)> {
        let pending = self.pending.lock();
        let (card, at) = pending.as_ref()?;
        let waited = now.saturating_duration_since(*at);
        (waited <= self.window).then(|| (card.clone(), self.window - waited))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rollcall_firmware_bridge::wiegand_frame;

    fn read(bits: u16, data: Vec<u8>) -> CardRead {
        CardRead {
            reader: 0,
            format: 1,
            bits,
            data,
        }
    }

    #[test]
    fn a_wiegand_card_reads_as_its_printed_facility_and_number() {
        let frame = wiegand_frame(26, 12, 3456).expect("frame");
        assert_eq!(card_key(&read(26, frame)), "12:3456");
        let frame = wiegand_frame(37, 1000, 400_000).expect("frame");
        assert_eq!(card_key(&read(37, frame)), "1000:400000");
        // A 32-bit read is no Wiegand format rollcall knows: named by its bits.
        assert_eq!(
            card_key(&read(32, vec![0x01, 0x23, 0xab, 0xcd])),
            "raw:32:0123abcd"
        );
        // A parity error makes it raw too, so it never matches a typed facility:number.
        let mut frame = wiegand_frame(26, 12, 3456).expect("frame");
        frame[0] ^= 0x80;
        assert!(card_key(&read(26, frame)).starts_with("raw:26:"));
    }

    #[test]
    fn typed_cards_are_normalised_or_refused() {
        assert_eq!(parse_card_key(" 012:03456 ").as_deref(), Ok("12:3456"));
        assert_eq!(
            parse_card_key("raw:32:0123ABCD").as_deref(),
            Ok("raw:32:0123abcd")
        );
        for bad in [
            "",
            "12",
            "12:",
            ":5",
            "a:1",
            "1:-2",
            "1:2:3",
            "+1:2",
            "99999999999:1",
        ] {
            assert!(
                matches!(parse_card_key(bad), Err(CardFormatError::Shape(_))),
                "{bad}"
            );
        }
        for bad in ["raw:0:00", "raw:65:00000000000000000000", "raw:32:0123"] {
            assert!(
                matches!(parse_card_key(bad), Err(CardFormatError::Raw(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_card_waits_for_one_face_and_not_longer_than_the_window() {
        let gate = CardGate::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let card = |n: &str| PresentedCard {
            card: n.into(),
            person_id: n.into(),
            display_name: n.into(),
            reader: 1,
        };
        gate.present(card("1:1"), t0);
        assert_eq!(
            gate.peek(t0 + Duration::from_secs(4)).map(|(_, left)| left),
            Some(Duration::from_secs(6))
        );
        // A newer card replaces the first.
        gate.present(card("1:2"), t0 + Duration::from_secs(5));
        let (taken, at) = gate.take(t0 + Duration::from_secs(14)).expect("waiting");
        assert_eq!(taken.card, "1:2");
        assert_eq!(gate.take(t0 + Duration::from_secs(14)), None, "used up");
        // A frame without a face gives it back, with its own time; a newer card wins.
        gate.give_back(taken.clone(), at);
        assert_eq!(
            gate.peek(t0 + Duration::from_secs(16)),
            None,
            "still expires"
        );
        gate.give_back(taken, at);
        gate.present(card("1:9"), t0 + Duration::from_secs(15));
        gate.give_back(card("1:2"), at);
        assert_eq!(
            gate.take(t0 + Duration::from_secs(15)).map(|(c, _)| c.card),
            Some("1:9".into())
        );
        gate.present(card("1:3"), t0);
        assert_eq!(gate.peek(t0 + Duration::from_secs(11)), None);
        assert_eq!(gate.take(t0 + Duration::from_secs(11)), None, "expired");
    }

    proptest! {
        /// Any text is either refused with a reason or normalised to a fixed point.
        #[test]
        fn parsing_never_panics_and_normalises_to_a_fixed_point(text in "\\PC{0,40}") {
            if let Ok(key) = parse_card_key(&text) {
                prop_assert_eq!(parse_card_key(&key), Ok(key.clone()));
            }
        }

        /// What the reader reads is what an admin types: every Wiegand card's name parses back
        /// to itself.
        #[test]
        fn read_cards_parse_to_themselves(facility in 0u32..256, number in 0u32..65536) {
            let frame = wiegand_frame(26, facility, number).expect("frame");
            let key = card_key(&read(26, frame));
            prop_assert_eq!(parse_card_key(&key), Ok(key.clone()));
            prop_assert_eq!(key, format!("{facility}:{number}"));
        }
    }
}
