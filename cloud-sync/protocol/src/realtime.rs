//! The cloud's real-time connection, as both ends see it: the client's frames (only subscribe,
//! unsubscribe, ack and ping, as JSON text), the server's replies, the topics and the close
//! codes. Who may subscribe to what is the cloud's (`realtime::frames`). Pure code:
//! property-tested here, fuzzed by `fuzz/fuzz_targets/ws_frame.rs`.

use serde::{Deserialize, Serialize};

use crate::ids::SiteId;

/// Largest client frame, in bytes.
pub const MAX_FRAME: usize = 16 * 1024;
/// Most topics one frame names.
pub const MAX_TOPICS: usize = 32;

/// Close codes (RFC 6455 leaves 4000-4999 to applications).
pub mod close {
    /// The user was disabled, or the session or login the ticket came from ended.
    pub const SIGNED_OUT: u16 = 4003;
    /// The tenant was suspended.
    pub const SUSPENDED: u16 = 4004;
    /// The client fell behind its queue; reconnect and subscribe with `since`.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The server is shutting down; reconnect (to another replica).
    pub const GOING_AWAY: u16 = 1001;
}

/// A frame from the client.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Start receiving `topics`; with `since` (the last `seq` the client holds), first the
    /// messages after it, or `resync` when they are no longer kept.
    Subscribe {
        topics: Vec<String>,
        #[serde(default)]
        since: Option<i64>,
    },
    Unsubscribe {
        topics: Vec<String>,
    },
    /// The client holds every message up to `seq` (kept for its own bookkeeping).
    Ack {
        seq: i64,
    },
    Ping {
        #[serde(default)]
        id: Option<String>,
    },
}

/// A reply of the server (the messages themselves are `stream::Message` envelopes).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// These topics are now delivered; `head` is the tenant's stream number at that moment.
    Subscribed {
        topics: Vec<String>,
        head: i64,
    },
    Unsubscribed {
        topics: Vec<String>,
    },
    /// The gap after `since` is past the retention window (or too long to replay): fetch the
    /// state again through the API, then carry on from `head`.
    Resync {
        topics: Vec<String>,
        head: i64,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// A frame or topic refused; the connection stays open.
    Error {
        code: &'static str,
        message: String,
    },
}

/// Reads a client frame; why not, as an error frame.
pub fn parse(text: &str) -> Result<ClientFrame, ServerFrame> {
    if text.len() > MAX_FRAME {
        return Err(error(
            "frame-too-large",
            format!("a frame is at most {MAX_FRAME} bytes"),
        ));
    }
    let frame: ClientFrame = serde_json::from_str(text).map_err(|e| {
        error(
            "invalid-frame",
            format!(
                "{e}: a frame is {{\"type\": \"subscribe\"|\"unsubscribe\"|\"ack\"|\"ping\", …}}"
            ),
        )
    })?;
    match &frame {
        ClientFrame::Subscribe { topics, .. } | ClientFrame::Unsubscribe { topics }
            if topics.is_empty() || topics.len() > MAX_TOPICS =>
        {
            Err(error(
                "invalid-frame",
                format!("topics: 1 to {MAX_TOPICS} topics"),
            ))
        }
        ClientFrame::Subscribe { since: Some(s), .. } if *s < 0 => {
            Err(error("invalid-frame", "since: a stream number, 0 or more"))
        }
        _ => Ok(frame),
    }
}

pub fn error(code: &'static str, message: impl Into<String>) -> ServerFrame {
    ServerFrame::Error {
        code,
        message: message.into(),
    }
}

/// The role names a `role:` topic may name.
pub const ROLES: [&str; 5] = ["owner", "admin", "supervisor", "guard", "auditor"];

/// A topic: what a message is about and what a client subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// The tenant's shared messages, and every site's.
    Tenant,
    Site(String),
    /// One user's own messages (their notifications).
    User(String),
    /// The users of one role (its name: `owner`, `admin`, `supervisor`, `guard`, `auditor`).
    Role(String),
    /// One background job's progress and end (its id).
    Job(i64),
}

impl Topic {
    pub fn parse(s: &str) -> Result<Topic, String> {
        let bad = || {
            format!(
                "topic `{}`: one of tenant, site:<site id>, user:<user id>, role:<role>, job:<job id>",
                s.chars().take(80).collect::<String>()
            )
        };
        match s.split_once(':') {
            None if s == "tenant" => Ok(Topic::Tenant),
            Some(("site", id)) if SiteId::is_valid(id) => Ok(Topic::Site(id.to_owned())),
            Some(("user", id)) if !id.is_empty() && id.len() <= 64 && id.is_ascii() => {
                Ok(Topic::User(id.to_owned()))
            }
            Some(("role", r)) if ROLES.contains(&r) => Ok(Topic::Role(r.to_owned())),
            Some(("job", id))
                if !id.is_empty()
                    && id.len() <= 18
                    && id.bytes().all(|b| b.is_ascii_digit())
                    && !id.starts_with('0') =>
            {
                id.parse().map(Topic::Job).map_err(|_| bad())
            }
            _ => Err(bad()),
        }
    }
}

/// Whether a connection subscribed to `subscribed` gets a message of `topic`: its own topics,
/// and under `tenant` the tenant's and every site's.
pub fn delivers(subscribed: &std::collections::HashSet<String>, topic: &str) -> bool {
    subscribed.contains(topic)
        || (subscribed.contains("tenant") && (topic == "tenant" || topic.starts_with("site:")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_parse_or_get_an_error_frame() {
        assert_eq!(
            parse(r#"{"type":"subscribe","topics":["tenant"],"since":4}"#),
            Ok(ClientFrame::Subscribe {
                topics: vec!["tenant".into()],
                since: Some(4)
            })
        );
        assert_eq!(
            parse(r#"{"type":"ping"}"#),
            Ok(ClientFrame::Ping { id: None })
        );
        for bad in [
            "",
            "{",
            "[]",
            r#"{"type":"publish","topic":"tenant"}"#,
            r#"{"type":"subscribe","topics":[]}"#,
            r#"{"type":"subscribe","topics":["tenant"],"since":-1}"#,
            r#"{"type":"ack"}"#,
        ] {
            assert!(
                matches!(parse(bad), Err(ServerFrame::Error { .. })),
                "{bad}"
            );
        }
        let big = format!(r#"{{"type":"ping","id":"{}"}}"#, "x".repeat(MAX_FRAME));
        assert!(matches!(
            parse(&big),
            Err(ServerFrame::Error {
                code: "frame-too-large",
                ..
            })
        ));
    }

    #[test]
    fn topics_parse_and_tenant_covers_the_sites() {
        assert_eq!(Topic::parse("site:hq"), Ok(Topic::Site("hq".into())));
        assert_eq!(Topic::parse("role:guard"), Ok(Topic::Role("guard".into())));
        assert_eq!(Topic::parse("job:42"), Ok(Topic::Job(42)));
        for bad in [
            "job:",
            "job:0",
            "job:007",
            "job:-1",
            "job:1e3",
            "job:1234567890123456789",
        ] {
            assert!(Topic::parse(bad).is_err(), "{bad}");
        }
        for bad in [
            "",
            "tenants",
            "site:",
            "site:HQ",
            "role:boss",
            "user:",
            "x:y",
        ] {
            assert!(Topic::parse(bad).is_err(), "{bad}");
        }
        let subs: std::collections::HashSet<String> = ["tenant".to_owned()].into();
        assert!(delivers(&subs, "site:hq") && delivers(&subs, "tenant"));
        assert!(!delivers(&subs, "user:u1") && !delivers(&subs, "role:admin"));
    }

    proptest! {
        /// Any text is a frame or an error frame, never a panic; a subscribe that parses names
        /// 1 to MAX_TOPICS topics.
        #[test]
        fn any_text_is_a_frame_or_an_error(s in "\\PC{0,64}|\\{\"type\":\"(subscribe|ack|ping|unsubscribe)\"[^}]{0,40}\\}") {
            if let Ok(ClientFrame::Subscribe { topics, .. }) = parse(&s) {
                prop_assert!(!topics.is_empty() && topics.len() <= MAX_TOPICS);
            }
            let _ = Topic::parse(&s);
        }
    }
}
