//! The message types of the stream, one schema each (`data` of the envelope), and the helpers
//! that make them where the change happens.
//!
//! - `attendance.event` on `site:<site id>`: an event a node pushed was stored (published in
//!   the push's own transaction, so it is on the stream exactly when the event is in the
//!   database).
//! - `alarm` on `site:<site id>`: a hardware alarm a node pushed was stored (door forced or
//!   held open, tamper, reader offline, …), in the same push transaction.

use serde::Serialize;
use utoipa::ToSchema;

use crate::server::realtime::stream::NewMessage;
use rollcall_protocol::wire::AttendanceEvent;

pub const ATTENDANCE_EVENT: &str = "attendance.event";
pub const ALARM: &str = "alarm";

/// `alarm`: a site's hardware alarm reached the cloud.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AlarmData {
    pub alarm_id: String,
    pub node_id: String,
    pub site_id: String,
    /// `door_forced`, `door_held_open`, `tamper`, `reader_offline`, …
    pub kind: String,
    /// The OSDP address of the peripheral that raised it, if one did.
    pub pd: Option<u8>,
    pub detail: String,
    pub node_time_ms: i64,
    pub received_ms: i64,
}

pub fn alarm(
    node: &crate::server::store::NodeRow,
    r: &crate::server::records::plan::RecordRow,
    received_ms: i64,
) -> NewMessage {
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
    let data = AlarmData {
        alarm_id: r.id.clone(),
        node_id: node.id.clone(),
        site_id: node.site_id.clone(),
        kind: r.kind.clone(),
        pd: body["pd"].as_u64().and_then(|p| u8::try_from(p).ok()),
        detail: body["detail"].as_str().unwrap_or_default().to_owned(),
        node_time_ms: r.node_time_ms,
        received_ms,
    };
    NewMessage {
        topic: format!("site:{}", node.site_id),
        kind: ALARM,
        data: serde_json::to_value(data).unwrap_or(serde_json::Value::Null),
    }
}

/// `attendance.event`: a check-in decided at a node reached the cloud.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AttendanceEventData {
    pub event_id: String,
    pub node_id: String,
    pub site_id: String,
    pub person_id: Option<String>,
    /// `granted`, `denied` or `review`.
    pub decision: String,
    pub similarity: Option<f64>,
    pub risk_score: f64,
    /// The reason codes (`no_match`, `impossible_travel`, …).
    pub reasons: Vec<String>,
    /// The node's clock at the decision, and the cloud's at arrival (ms since the epoch).
    pub node_time_ms: i64,
    pub received_ms: i64,
}

pub fn attendance_event(node_id: &str, e: &AttendanceEvent, received_ms: i64) -> NewMessage {
    let data = AttendanceEventData {
        event_id: e.id.clone(),
        node_id: node_id.to_owned(),
        site_id: e.site_id.clone(),
        person_id: e.person_id.clone(),
        decision: e.decision.as_str().to_owned(),
        similarity: e.similarity,
        risk_score: e.risk_score,
        reasons: e.reasons.iter().map(|r| r.code.clone()).collect(),
        node_time_ms: e.node_time_ms,
        received_ms,
    };
    NewMessage {
        topic: format!("site:{}", e.site_id),
        kind: ATTENDANCE_EVENT,
        data: serde_json::to_value(data).unwrap_or(serde_json::Value::Null),
    }
}
