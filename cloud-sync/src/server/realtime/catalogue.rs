//! Every message type the stream carries, in one list — its name, the topics it is published
//! on, what it means and its `data` schema (the very types the publishers serialise, through
//! utoipa) — and the AsyncAPI 3.0 document made from it, `GET /api/asyncapi.json`, beside the
//! OpenAPI one.

use std::sync::LazyLock;

use axum::{
    http::header,
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};
use utoipa::{ToSchema, openapi::RefOr, openapi::schema::Schema};

use crate::server::{
    jobs::live::{JOB_FINISHED, JOB_PROGRESS, JobFinishedData, JobProgressData},
    nodes::status::{NODE_STATUS, NodeStatusData},
    notifications::inbox::{NOTIFICATION, NOTIFICATIONS_READ, Notification, NotificationsReadData},
    realtime::messages::{
        ALARM, ATTENDANCE_EVENTS, AlarmData, AttendanceEventsData, PERSON_CHANGED,
        PersonChangedData,
    },
};

/// A `data` schema's name, with it and every schema it refers to.
type Schemas = (String, Vec<(String, RefOr<Schema>)>);

/// One message type.
pub struct MessageType {
    /// The envelope's `type`.
    pub name: &'static str,
    /// The topic kinds it is published on (`site`, `user`, …).
    pub topics: &'static [&'static str],
    pub summary: &'static str,
    /// The `data` schema's name, and it and the schemas it refers to.
    schema: fn() -> Schemas,
}

fn schema_of<T: ToSchema>() -> Schemas {
    let mut all = vec![(T::name().into_owned(), T::schema())];
    T::schemas(&mut all);
    (T::name().into_owned(), all)
}

/// Every message type, in the order the document lists them.
pub const MESSAGES: &[MessageType] = &[
    MessageType {
        name: ATTENDANCE_EVENTS,
        topics: &["site"],
        summary: "The events of one push that reached the cloud, one message per push and site.",
        schema: schema_of::<AttendanceEventsData>,
    },
    MessageType {
        name: ALARM,
        topics: &["site"],
        summary: "A site's hardware alarm (door forced or held open, tamper, reader offline, …) reached the cloud.",
        schema: schema_of::<AlarmData>,
    },
    MessageType {
        name: NODE_STATUS,
        topics: &["site"],
        summary: "The cloud now says a node is online, lagging (its newest event arrived over 10 minutes late) or offline (not heard from for the watch's offline_after_s).",
        schema: schema_of::<NodeStatusData>,
    },
    MessageType {
        name: JOB_PROGRESS,
        topics: &["job"],
        summary: "How far a job's handler says it is.",
        schema: schema_of::<JobProgressData>,
    },
    MessageType {
        name: JOB_FINISHED,
        topics: &["job"],
        summary: "A job completed (with its result), was discarded after its last attempt (with the error) or was cancelled.",
        schema: schema_of::<JobFinishedData>,
    },
    MessageType {
        name: PERSON_CHANGED,
        topics: &["tenant"],
        summary: "A person was made, changed (name, sites, face templates) or erased, through the API or by a node's enrolment.",
        schema: schema_of::<PersonChangedData>,
    },
    MessageType {
        name: NOTIFICATION,
        topics: &["user"],
        summary: "A notification in the user's inbox, made in the transaction of the change that caused it.",
        schema: schema_of::<Notification>,
    },
    MessageType {
        name: NOTIFICATIONS_READ,
        topics: &["user"],
        summary: "Some or all of the user's notifications were marked read (other tabs update their badge).",
        schema: schema_of::<NotificationsReadData>,
    },
];

/// What each topic kind is, its address and who may subscribe.
const CHANNELS: &[(&str, &str, &str)] = &[
    (
        "tenant",
        "tenant",
        "The tenant's own messages and every site's (owner, admin, supervisor, auditor).",
    ),
    (
        "site",
        "site:{siteId}",
        "One site's messages (owner, admin, supervisor, auditor).",
    ),
    (
        "user",
        "user:{userId}",
        "One user's own messages (that user only).",
    ),
    (
        "job",
        "job:{jobId}",
        "One background job's progress and end (owner, admin, auditor; or the user who started it). Published for jobs a person started.",
    ),
    (
        "role",
        "role:{role}",
        "The messages of a role's users (the users of that role).",
    ),
];

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The AsyncAPI 3.0 document of the WebSocket.
pub fn document() -> Value {
    let mut schemas = Map::new();
    let mut messages = Map::new();
    for m in MESSAGES {
        let (data, all) = (m.schema)();
        for (name, s) in all {
            schemas.insert(name, to_json(&s));
        }
        messages.insert(
            m.name.to_owned(),
            json!({
                "name": m.name,
                "title": m.name,
                "summary": m.summary,
                "contentType": "application/json",
                "payload": {
                    "type": "object",
                    "required": ["type", "topic", "seq", "time", "data"],
                    "properties": {
                        "type": { "const": m.name },
                        "topic": { "type": "string", "description": "The topic it was published on." },
                        "seq": { "type": "integer", "minimum": 1, "description": "The tenant's stream number: increasing, without gaps." },
                        "time": { "type": "integer", "description": "When it was published (ms since the Unix epoch)." },
                        "data": { "$ref": format!("#/components/schemas/{data}") },
                    },
                },
            }),
        );
    }
    let mut channels = Map::new();
    let mut operations = Map::new();
    for (kind, address, description) in CHANNELS {
        let on: Map<String, Value> = MESSAGES
            .iter()
            .filter(|m| {
                m.topics.contains(kind) || (*kind == "tenant" && m.topics.contains(&"site"))
            })
            .map(|m| {
                (
                    m.name.to_owned(),
                    json!({ "$ref": format!("#/components/messages/{}", m.name) }),
                )
            })
            .collect();
        let mut channel = json!({ "address": address, "description": description, "messages": on });
        let parameters: Map<String, Value> = address
            .split('{')
            .skip(1)
            .filter_map(|p| {
                p.split_once('}')
                    .map(|(name, _)| (name.to_owned(), json!({})))
            })
            .collect();
        if !parameters.is_empty() {
            channel["parameters"] = Value::Object(parameters);
        }
        channels.insert((*kind).to_owned(), channel);
        operations.insert(
            format!("receive-{kind}"),
            json!({ "action": "receive", "channel": { "$ref": format!("#/channels/{kind}") } }),
        );
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "rollcall-cloud real time",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Live messages over a WebSocket. Trade an access token or session for a \
                single-use ticket (POST /api/v1/realtime/tickets), open \
                /api/v1/realtime/ws?ticket=…, then send {\"type\":\"subscribe\",\"topics\":[…],\"since\"?:N}. \
                Every message is an envelope {type, topic, seq, time, data}; `data` has one schema per type. \
                The client's frames, the server's replies and the close codes are in docs/API.md (Real time).",
        },
        "servers": {
            "cloud": { "host": "{host}", "pathname": "/api/v1/realtime/ws", "protocol": "ws",
                       "variables": { "host": { "description": "The cloud's host and port" } } },
        },
        "channels": channels,
        "operations": operations,
        "components": { "messages": messages, "schemas": schemas },
    })
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| document().to_string());

/// The AsyncAPI 3.0 document of the real-time WebSocket: every message type and its schema.
#[utoipa::path(get, path = "/api/asyncapi.json", tag = "meta",
    responses((status = 200, description = "The AsyncAPI 3.0 document", content_type = "application/json")))]
pub(crate) async fn serve() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in the document points at something the document holds.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_message_type_has_its_schema_and_every_reference_resolves() {
        let doc = document();
        assert_eq!(doc["asyncapi"], "3.0.0");
        for m in MESSAGES {
            let msg = &doc["components"]["messages"][m.name];
            assert_eq!(msg["payload"]["properties"]["type"]["const"], m.name);
            for t in m.topics {
                assert!(
                    doc["channels"][t]["messages"][m.name].is_object(),
                    "{} on {t}",
                    m.name
                );
            }
        }
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > MESSAGES.len());
        for r in found {
            let pointer = r.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
        // The alarm's schema lists the fields the publisher writes.
        let alarm = &doc["components"]["schemas"]["AlarmData"]["properties"];
        for f in [
            "alarm_id",
            "node_id",
            "site_id",
            "kind",
            "pd",
            "detail",
            "node_time_ms",
        ] {
            assert!(alarm[f].is_object(), "{f}");
        }
    }
}
