//! How attendance events are listed: filters on whitelisted fields, newest first, and two ways
//! to page — limit/offset (API v1) and an opaque keyset cursor (API v2), which stays correct
//! while new events arrive and costs the same on page 1000 as on page 1.

use base64::Engine as _;

use crate::protocol::Decision;

/// Most items one page may hold.
pub const MAX_PAGE: u32 = 1000;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub site_id: Option<String>,
    pub person_id: Option<String>,
    pub decision: Option<Decision>,
    /// Node time at or after (ms since the epoch).
    pub from_ms: Option<i64>,
    /// Node time before.
    pub to_ms: Option<i64>,
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq)]
pub enum PageStart {
    Offset(u32),
    /// Strictly older than this event (its node time and id).
    After(Cursor),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub node_time_ms: i64,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{}:{}", self.node_time_ms, self.id))
    }

    /// `None` for anything this server did not hand out.
    pub fn decode(s: &str) -> Option<Self> {
        if s.len() > 128 {
            return None;
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (t, id) = text.split_once(':')?;
        let valid_id = id.len() == 26 && id.bytes().all(|b| b.is_ascii_alphanumeric());
        if !valid_id {
            return None;
        }
        Some(Cursor {
            node_time_ms: t.parse().ok()?,
            id: id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let c = Cursor {
            node_time_ms: 1_700_000_000_000,
            id: "01HZZZZZZZZZZZZZZZZZZZZZZA".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for junk in ["", "!!!", "bm90IGEgY3Vyc29y", &"A".repeat(200)] {
            assert_eq!(Cursor::decode(junk), None, "{junk}");
        }
    }

    proptest! {
        #[test]
        fn decoding_any_text_never_panics(s in "\\PC{0,160}") {
            let _ = Cursor::decode(&s);
        }
    }
}
