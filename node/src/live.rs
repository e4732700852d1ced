//! The live feed: every decision and alarm as it happens, for a guard's monitor or a control
//! room (`GET /api/v1/live`, Server-Sent Events). Nothing waits for listeners: a slow one
//! misses items (and is told how many), it never holds up a check-in.

use serde::Serialize;
use tokio::sync::broadcast;

/// One item of the feed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveItem {
    Decision {
        event_id: String,
        seq: u64,
        decision: &'static str,
        person_id: Option<String>,
        display_name: Option<String>,
        /// `face`, `card_and_face`, or `card` (a card refused before any face).
        credential: &'static str,
        /// The first reason, in plain words.
        reason: Option<String>,
        at_ms: i64,
    },
    Alarm {
        kind: String,
        pd: Option<u8>,
        detail: String,
        at_ms: i64,
    },
}

pub struct LiveFeed {
    tx: broadcast::Sender<LiveItem>,
}

impl Default for LiveFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveFeed {
    /// A feed that buffers up to 256 items for each slow listener.
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(256).0,
        }
    }

    pub fn publish(&self, item: LiveItem) {
        // No listener is not an error.
        let _ = self.tx.send(item);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveItem> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(n: i64) -> LiveItem {
        LiveItem::Alarm {
            kind: "tamper".into(),
            pd: Some(1),
            detail: String::new(),
            at_ms: n,
        }
    }

    #[test]
    fn listeners_get_items_after_they_subscribe_and_a_slow_one_only_lags() {
        let feed = LiveFeed::new();
        feed.publish(alarm(0));
        let mut rx = feed.subscribe();
        feed.publish(alarm(1));
        assert_eq!(rx.try_recv().ok(), Some(alarm(1)));
        for n in 0..300 {
            feed.publish(alarm(n));
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(44))
        ));
        assert_eq!(rx.try_recv().ok(), Some(alarm(44)));
        let json = serde_json::to_value(alarm(7)).expect("json");
        assert_eq!(
            (json["type"].as_str(), json["at_ms"].as_i64()),
            (Some("alarm"), Some(7))
        );
    }
}
