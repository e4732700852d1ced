//! The notifications of what a node's push brings: each hardware alarm (by its kind: door
//! forced and tamper are critical), and each check-in the fraud checks held for review.

use std::collections::HashMap;

use serde_json::json;

use crate::server::{
    notifications::{
        inbox::NewNotification,
        kinds::{self, FRAUD_REVIEW},
    },
    realtime::messages::AlarmData,
    store::{StoreError, exec::Exec},
};
use rollcall_protocol::wire::{AttendanceEvent, Decision};

/// A site as people know it: its name, or its id if it has none.
async fn site_names(
    tx: &impl Exec,
    sites: impl Iterator<Item = &str>,
) -> Result<HashMap<String, String>, StoreError> {
    let mut names = HashMap::new();
    for site in sites {
        if names.contains_key(site) {
            continue;
        }
        let name: Option<String> = tx
            .query_opt(
                "SELECT name FROM sites WHERE tenant_id = $1 AND id = $2",
                &[&tx.tenant(), &site],
                |r| r.get(0),
            )
            .await?;
        names.insert(site.to_owned(), name.unwrap_or_else(|| site.to_owned()));
    }
    Ok(names)
}

fn words(kind: &str) -> String {
    kind.replace('_', " ")
}

/// The notifications of a push's stored alarms and events.
pub(crate) async fn of_push(
    tx: &impl Exec,
    alarms: &[AlarmData],
    events: &[&AttendanceEvent],
) -> Result<Vec<NewNotification>, StoreError> {
    let held: Vec<&&AttendanceEvent> = events
        .iter()
        .filter(|e| e.decision == Decision::Review)
        .collect();
    if alarms.is_empty() && held.is_empty() {
        return Ok(Vec::new());
    }
    let names = site_names(
        tx,
        alarms
            .iter()
            .map(|a| a.site_id.as_str())
            .chain(held.iter().map(|e| e.site_id.as_str())),
    )
    .await?;
    let site = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let mut notes = Vec::new();
    for a in alarms {
        let kind = kinds::of_alarm(&a.kind);
        let what = words(&a.kind);
        let from =
            a.pd.map(|pd| format!(" from reader {pd}"))
                .unwrap_or_default();
        let detail = if a.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", a.detail)
        };
        notes.push(NewNotification {
            kind,
            title: format!("{} at {}", capitalised(&what), site(&a.site_id)),
            body: format!("Node {} reported {what}{from}{detail}.", a.node_id),
            data: json!({ "alarm_id": a.alarm_id, "alarm": a.kind, "site_id": a.site_id,
                          "node_id": a.node_id, "pd": a.pd }),
        });
    }
    if let Some(kind) = kinds::kind(FRAUD_REVIEW) {
        for e in held {
            let who = e.person_id.as_deref().unwrap_or("someone unrecognised");
            let reasons: Vec<&str> = e.reasons.iter().map(|r| r.code.as_str()).collect();
            notes.push(NewNotification {
                kind,
                title: format!("Check-in held for review at {}", site(&e.site_id)),
                body: format!(
                    "The check-in of {who} scored risk {:.2} ({}).",
                    e.risk_score,
                    if reasons.is_empty() {
                        "no reason given".to_owned()
                    } else {
                        reasons.join(", ")
                    }
                ),
                data: json!({ "event_id": e.id, "site_id": e.site_id,
                              "person_id": e.person_id, "reasons": reasons }),
            });
        }
    }
    Ok(notes)
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}
