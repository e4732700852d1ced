//! The demo's live feed: before the first check-in, a WebSocket to the cloud (a single-use
//! ticket, then `subscribe` to the tenant's topic), read on a thread of its own; once the node
//! has synced, the `attendance.events` messages that arrived are printed.

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
        let (mut messages, mut events) = (0, 0);
        while events < expected {
            let left = until.saturating_duration_since(Instant::now());
            let Ok(m) = self.messages.recv_timeout(left) else {
                break;
            };
            if m["type"] != "attendance.events" {
                continue;
            }
            messages += 1;
            let d = &m["data"];
            let items = d["events"].as_array().cloned().unwrap_or_default();
            events += items.len();
            let shown: Vec<String> = items
                .iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["person_id"].as_str().unwrap_or("nobody"),
                        e["decision"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            println!(
                "  seq {} attendance.events on {} from node {}: {}",
                m["seq"],
                m["topic"].as_str().unwrap_or("?"),
                d["node_id"].as_str().unwrap_or("?"),
                shown.join(", ")
            );
        }
        println!(
            "  {events} events in {messages} live message(s), one per push, each as it was stored"
        );
        if events < expected {
            wrong.push(format!(
                "{events} of {expected} synced events arrived over the WebSocket"
            ));
        }
    }
}
