//! The demo's live feed: before the first check-in, a WebSocket to the cloud (a single-use
//! ticket, then `subscribe` to the tenant's topic), read on a thread of its own; once the node
//! has synced, the `attendance.event` messages that arrived are printed.

use std::{
    sync::mpsc,
    time::{Duration, Instant},
};

use rollcall_tests::Cloud;
use serde_json::{Value, json};

pub struct Live {
    messages: mpsc::Receiver<Value>,
}

/// Opens the feed as the platform operator and subscribes to the tenant's messages.
pub fn open(cloud: &Cloud) -> anyhow::Result<Live> {
    let (status, t) = cloud.call(
        "POST",
        "/api/v1/realtime/tickets",
        Some(&cloud.admin_token),
        None,
        None,
    )?;
    anyhow::ensure!(status == 201, "a real-time ticket: {status} {t}");
    let ticket = t["ticket"].as_str().unwrap_or_default();
    let url = format!("ws://{}/api/v1/realtime/ws?ticket={ticket}", cloud.addr()?);
    let (mut socket, _) = tungstenite::connect(url)?;
    let subscribe = json!({ "type": "subscribe", "topics": ["tenant"] });
    socket.send(tungstenite::Message::text(subscribe.to_string()))?;
    let (tx, messages) = mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(frame) = socket.read() {
            if let tungstenite::Message::Text(text) = frame
                && let Ok(v) = serde_json::from_str::<Value>(text.as_str())
                && tx.send(v).is_err()
            {
                return;
            }
        }
    });
    Ok(Live { messages })
}

impl Live {
    /// Prints the events that arrived live (waiting up to 10 s for `expected` of them).
    pub fn report(&self, expected: usize, wrong: &mut Vec<String>) {
        println!("\n== live over the cloud's WebSocket");
        let until = Instant::now() + Duration::from_secs(10);
        let mut events = Vec::new();
        while events.len() < expected {
            let left = until.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(m) if m["type"] == "attendance.event" => events.push(m),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        for m in events.iter().take(3) {
            let d = &m["data"];
            println!(
                "  seq {} {} on {}: {} {} (node {}, event {})",
                m["seq"],
                m["type"].as_str().unwrap_or("?"),
                m["topic"].as_str().unwrap_or("?"),
                d["person_id"].as_str().unwrap_or("nobody"),
                d["decision"].as_str().unwrap_or("?"),
                d["node_id"].as_str().unwrap_or("?"),
                d["event_id"].as_str().unwrap_or("?"),
            );
        }
        if events.len() > 3 {
            println!(
                "  … and {} more, each as its push was stored",
                events.len() - 3
            );
        }
        if events.len() < expected {
            wrong.push(format!(
                "{} of {expected} synced events arrived over the WebSocket",
                events.len()
            ));
        }
    }
}
