//! The message types of the stream, one schema each (`data` of the envelope), and the helpers
//! that make them where the change happens.
//!
//! - `attendance.events` on `site:<site id>`: the events of a node's push were stored (one
//!   message per push and site, published in the push's own transaction, so it is on the
//!   stream exactly when the events are in the database).
//! - `alarm` on `site:<site id>`: a hardware alarm a node pushed was stored (door forced or
//!   held open, tamper, reader offline, …), in the same push transaction.
//! - `person.changed` on `tenant`: a person was made, changed or erased.
//!
//! `notifications::inbox` has `notification` and `notifications.read`; `catalogue` lists all.

use serde::Serialize;
use utoipa::ToSchema;

use crate::server::realtime::stream::NewMessage;
use rollcall_protocol::wire::AttendanceEvent;

pub const ATTENDANCE_EVENTS: &str = "attendance.events";
pub const ALARM: &str = "alarm";
pub const PERSON_CHANGED: &str = "person.changed";

/// `person.changed` on `tenant`: a person was made, changed (name, sites, templates…) or
/// erased — through the API or by a node's enrolment that won — in the change's transaction.
/// Read the person (`GET /api/v1/people/{id}`) for what they are now.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PersonChangedData {
    pub person_id: String,
    /// The change's number in the tenant's people feed (what nodes pull after).
    pub change_id: i64,
    /// Who made it: `cloud`, or the id of the node whose enrolment won.
    pub origin: String,
    /// The person was erased (their templates are gone).
    pub erased: bool,
}

pub fn person_changed(person_id: &str, change_id: i64, origin: &str, erased: bool) -> NewMessage {
    NewMessage {
        topic: "tenant".into(),
        kind: PERSON_CHANGED,
        data: serde_json::to_value(PersonChangedData {
            person_id: person_id.to_owned(),
            change_id,
            origin: origin.to_owned(),
            erased,
        })
        .unwrap_or(serde_json::Value::Null),
    }
}

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

/// What an alarm record of a push says, as its message and notification show it.
pub fn alarm_data(
    node: &crate::server::store::NodeRow,
    r: &crate::server::records::plan::RecordRow,
    received_ms: i64,
) -> AlarmData {
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
    AlarmData {
        alarm_id: r.id.clone(),
        node_id: node.id.clone(),
        site_id: node.site_id.clone(),
        kind: r.kind.clone(),
        pd: body["pd"].as_u64().and_then(|p| u8::try_from(p).ok()),
        detail: body["detail"].as_str().unwrap_or_default().to_owned(),
        node_time_ms: r.node_time_ms,
        received_ms,
    }
}

pub fn alarm(data: &AlarmData) -> NewMessage {
    NewMessage {
        topic: format!("site:{}", data.site_id),
        kind: ALARM,
        data: serde_json::to_value(data).unwrap_or(serde_json::Value::Null),
    }
}

/// One event of an `attendance.events` message: a check-in decided at a node.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AttendanceEventItem {
    pub event_id: String,
    /// The node's own sequence number of the event.
    pub node_seq: u64,
    pub person_id: Option<String>,
    /// `granted`, `denied` or `review`.
    pub decision: String,
    pub similarity: Option<f64>,
    pub risk_score: f64,
    /// The reason codes (`no_match`, `impossible_travel`, …).
    pub reasons: Vec<String>,
    /// The node's clock at the decision (ms since the epoch).
    pub node_time_ms: i64,
}

/// `attendance.events`: the events of one push that reached the cloud, one message per push
/// and site (a push of 1 000 events is one stream row, not 1 000: publishing costs the ingest
/// almost nothing).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AttendanceEventsData {
    pub node_id: String,
    pub site_id: String,
    /// When the cloud stored them (ms since the epoch).
    pub received_ms: i64,
    /// In the node's order.
    pub events: Vec<AttendanceEventItem>,
}

/// The messages of a push's stored events: one per site they name, in the push's order.
pub fn attendance_events(
    node_id: &str,
    events: &[&AttendanceEvent],
    received_ms: i64,
) -> Vec<NewMessage> {
    let mut by_site: Vec<(&str, Vec<AttendanceEventItem>)> = Vec::new();
    for e in events {
        let item = AttendanceEventItem {
            event_id: e.id.clone(),
            node_seq: e.seq,
            person_id: e.person_id.clone(),
            decision: e.decision.as_str().to_owned(),
            similarity: e.similarity,
            risk_score: e.risk_score,
            reasons: e.reasons.iter().map(|r| r.code.clone()).collect(),
            node_time_ms: e.node_time_ms,
        };
        match by_site.iter_mut().find(|(s, _)| *s == e.site_id) {
            Some((_, items)) => items.push(item),
            None => by_site.push((&e.site_id, vec![item])),
        }
    }
    by_site
        .into_iter()
        .map(|(site, events)| NewMessage {
            topic: format!("site:{site}"),
            kind: ATTENDANCE_EVENTS,
            data: serde_json::to_value(AttendanceEventsData {
                node_id: node_id.to_owned(),
                site_id: site.to_owned(),
                received_ms,
                events,
            })
            .unwrap_or(serde_json::Value::Null),
        })
        .collect()
}
