//! Frames a WebSocket client sends the cloud: any bytes are a client frame or an error frame,
//! never a panic; a subscribe or unsubscribe that parses names 1 to `MAX_TOPICS` topics, and a
//! topic that parses prints back as itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rollcall_protocol::realtime::{ClientFrame, MAX_TOPICS, ServerFrame, Topic, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Ok(ClientFrame::Subscribe { topics, .. } | ClientFrame::Unsubscribe { topics }) => {
            assert!(!topics.is_empty() && topics.len() <= MAX_TOPICS);
            for t in &topics {
                if let Ok(topic) = Topic::parse(t) {
                    let back = match topic {
                        Topic::Tenant => "tenant".to_owned(),
                        Topic::Site(s) => format!("site:{s}"),
                        Topic::User(u) => format!("user:{u}"),
                        Topic::Role(r) => format!("role:{r}"),
                        Topic::Job(id) => format!("job:{id}"),
                    };
                    assert_eq!(&back, t);
                }
            }
        }
        Ok(_) => {}
        Err(e) => assert!(matches!(e, ServerFrame::Error { .. })),
    }
});
