//! People edited at a node (an enrolment, a new template, a removal from the site), merged into
//! the cloud in the push's own transaction by the rules of [`rollcall_protocol::merge`]: the version with
//! the later hybrid logical clock wins, an erasure in the cloud beats any of them, and every
//! version that loses — or that a node's version replaces — is kept in `person_history`
//! (what it said, never its face vectors), which admins read at
//! `GET /api/v1/people/{id}/history`.
//!
//! A winning version is written as the node's site sees it: the person (created if the cloud
//! did not know them, re-activated otherwise), their assignment to the node's site, and their
//! templates of the node's models replaced by the node's (templates of other models stay). The
//! version enters the people feed with the node's timestamp, so the other nodes of the site
//! pull it and the pushing node recognises it as its own. The cloud records the pushing node as
//! the version's origin whatever the node wrote there, and refuses a timestamp more than
//! [`MAX_CLOCK_AHEAD_MS`] ahead of its own clock (a node clock set forward would otherwise win
//! every merge for as long as it stays ahead).

use std::collections::HashSet;

use base64::Engine as _;
use serde::Serialize;

use crate::server::sealing::{self, DataKey};
use crate::server::{
    people::{
        changes::{FEED_LOCK, current_version, hlc_columns, note_version, stored_hlc},
        templates::MAX_PER_PERSON,
    },
    store::{
        NodeRow, Store, StoreError, TenantScope,
        exec::{Exec, in_tenant},
    },
};
use rollcall_protocol::ids::{ModelName, PersonId};
use rollcall_protocol::{
    merge::{Change, Hlc, Version},
    wire::{PersonState, PersonUpload, Rejected},
};
use rollcall_service::clock::now_ms;

/// How far ahead of the cloud's clock a node's version may be.
pub const MAX_CLOCK_AHEAD_MS: i64 = 5 * 60 * 1000;

/// Embedding lengths accepted (as for templates added through the admin API).
const DIMS: std::ops::RangeInclusive<usize> = 64..=1024;

/// A template of an upload, checked: its vector as the little-endian bytes that get sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked<'a> {
    pub id: &'a str,
    pub model: &'a str,
    pub bytes: Vec<u8>,
}

/// What becomes of an upload that is well formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The cloud holds this version already (current, or kept as a loser): nothing to do.
    Duplicate,
    /// An erasure or a later version holds: the upload goes to the history.
    Lost,
    /// The upload becomes the person's version.
    Wins,
}

/// A version as the history shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PersonHistoryEntry {
    pub version: Hlc,
    /// What it said: `{"op": "assigned", "site_id", "display_name", "templates": [ids]}` or
    /// `{"op": "unassigned", "site_id"}` for a node's; `{"op": "held", "display_name",
    /// "active", "site_ids", "templates"}` for the cloud's that a node's replaced.
    #[schema(value_type = Object)]
    pub state: serde_json::Value,
    /// `lost` (it arrived and lost) or `replaced` (it was current until a node's won).
    pub outcome: String,
    /// The node whose push decided it.
    pub node_id: String,
    pub at_ms: i64,
}

fn reject(u: &PersonUpload, reason: impl Into<String>) -> Rejected {
    Rejected {
        id: u.id.clone(),
        reason: reason.into(),
    }
}

fn valid_name(s: &str) -> bool {
    !s.trim().is_empty() && s.chars().count() <= 200 && !s.chars().any(char::is_control)
}

/// Checks an upload; its templates decoded, or the reason it is refused.
pub fn check(u: &PersonUpload, now_ms: i64) -> Result<Vec<Checked<'_>>, String> {
    if !crate::server::sync::ingest::ulid_like(&u.id) {
        return Err("invalid_id: upload id must be a 26-character ULID".into());
    }
    if let Some(reason) = crate::server::sync::ingest::nul_reason(u) {
        return Err(reason);
    }
    if !PersonId::is_valid(&u.person_id) {
        return Err("invalid_person: person ids are 1-64 of letters, digits, `_`, `.`, `-`".into());
    }
    if i64::try_from(u.hlc.ms).map_or(true, |ms| ms > now_ms.saturating_add(MAX_CLOCK_AHEAD_MS)) {
        return Err(format!(
            "clock_ahead: the version is stamped {} ms, more than {} s after the cloud's clock ({now_ms} ms); set the node's clock right and retry",
            u.hlc.ms,
            MAX_CLOCK_AHEAD_MS / 1000
        ));
    }
    let (display_name, templates) = match &u.state {
        PersonState::Assigned {
            display_name,
            templates,
        } => (display_name, templates),
        PersonState::Unassigned => return Ok(vec![]),
        PersonState::Erased => {
            return Err(
                "invalid_person: a node cannot erase a person; erase them in the cloud".into(),
            );
        }
    };
    if !valid_name(display_name) {
        return Err(
            "invalid_person: display_name must be 1-200 characters, not blank, no control characters"
                .into(),
        );
    }
    if templates.len() > MAX_PER_PERSON as usize {
        return Err(format!(
            "too_many_templates: at most {MAX_PER_PERSON} per person, got {}",
            templates.len()
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(templates.len());
    for t in templates {
        if !PersonId::is_valid(&t.id) || !seen.insert(t.id.as_str()) {
            return Err(format!(
                "invalid_template: template id `{}` is malformed or repeated",
                t.id.chars().take(64).collect::<String>()
            ));
        }
        if !ModelName::is_valid(&t.model) {
            return Err(format!(
                "invalid_template: template `{}` has a malformed model",
                t.id
            ));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&t.vector)
            .ok()
            .filter(|b| b.len() % 4 == 0 && DIMS.contains(&(b.len() / 4)))
            .filter(|b| {
                b.chunks_exact(4)
                    .all(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite())
            })
            .ok_or_else(|| {
                format!(
                    "invalid_template: template `{}` is not base64 of {}-{} finite little-endian f32s",
                    t.id,
                    DIMS.start(),
                    DIMS.end()
                )
            })?;
        out.push(Checked {
            id: &t.id,
            model: &t.model,
            bytes,
        });
    }
    Ok(out)
}

/// Decides a well-formed upload stamped `incoming` (its origin the pushing node) against the
/// person's current version in the cloud (and whether it is an erasure), and whether this very
/// version lost before.
pub fn judge(incoming: &Hlc, current: Option<&(Hlc, bool)>, lost_before: bool) -> Verdict {
    let Some((held, erased)) = current else {
        return Verdict::Wins;
    };
    if lost_before || (!erased && held == incoming) {
        return Verdict::Duplicate;
    }
    let held = Version {
        hlc: held.clone(),
        change: if *erased {
            Change::Erase
        } else {
            Change::Edit { state: () }
        },
    };
    let incoming = Version {
        hlc: incoming.clone(),
        change: Change::Edit { state: () },
    };
    if incoming.beats(&held) {
        Verdict::Wins
    } else {
        Verdict::Lost
    }
}

/// What an upload says, for the history.
fn upload_summary(u: &PersonUpload, site_id: &str) -> serde_json::Value {
    match &u.state {
        PersonState::Assigned {
            display_name,
            templates,
        } => serde_json::json!({
            "op": "assigned",
            "site_id": site_id,
            "display_name": display_name,
            "templates": templates.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        }),
        PersonState::Unassigned => serde_json::json!({ "op": "unassigned", "site_id": site_id }),
        PersonState::Erased => serde_json::json!({ "op": "erased" }),
    }
}

/// What the cloud holds of a person, for the merge and the history.
#[derive(Debug, Clone, Default)]
struct Held {
    display_name: String,
    active: bool,
    site_ids: Vec<String>,
    /// `(id, model)` of each template.
    templates: Vec<(String, String)>,
}

impl Held {
    fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "op": "held",
            "display_name": self.display_name,
            "active": self.active,
            "site_ids": self.site_ids,
            "templates": self.templates.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        })
    }
}

/// The template writes of a winning `assigned` version: the held templates of the upload's
/// models that it no longer lists go, the ones it adds come; or why it cannot be taken.
fn template_plan<'a, 'b>(
    person_id: &str,
    held: Option<&Held>,
    upload: &'b [Checked<'a>],
    owners: &[(String, String)],
) -> Result<(Vec<String>, Vec<&'b Checked<'a>>), String> {
    if let Some((id, owner)) = owners.iter().find(|(_, owner)| owner != person_id) {
        return Err(format!(
            "template_conflict: template `{id}` belongs to person `{owner}`"
        ));
    }
    let models: HashSet<&str> = upload.iter().map(|t| t.model).collect();
    let ids: HashSet<&str> = upload.iter().map(|t| t.id).collect();
    let held_templates = held.map(|h| h.templates.as_slice()).unwrap_or_default();
    let others = held_templates
        .iter()
        .filter(|(_, m)| !models.contains(m.as_str()))
        .count();
    if others + upload.len() > MAX_PER_PERSON as usize {
        return Err(format!(
            "too_many_templates: with their {others} template(s) of other models the person would have more than {MAX_PER_PERSON}"
        ));
    }
    let delete = held_templates
        .iter()
        .filter(|(id, m)| models.contains(m.as_str()) && !ids.contains(id.as_str()))
        .map(|(id, _)| id.clone())
        .collect();
    let held_ids: HashSet<&str> = held_templates.iter().map(|(id, _)| id.as_str()).collect();
    let insert = upload.iter().filter(|t| !held_ids.contains(t.id)).collect();
    Ok((delete, insert))
}

fn unknown_site(site_id: &str) -> String {
    format!(
        "unknown_site: the node's site `{site_id}` does not exist in the cloud; an admin must create it, then retry"
    )
}

const HELD_PERSON: &str =
    "SELECT display_name, active FROM people WHERE tenant_id = $1 AND id = $2";
const HELD_SITES: &str =
    "SELECT site_id FROM person_sites WHERE tenant_id = $1 AND person_id = $2 ORDER BY site_id";
const HELD_TEMPLATES: &str =
    "SELECT id, model FROM face_templates WHERE tenant_id = $1 AND person_id = $2 ORDER BY id";
const TEMPLATE_OWNER: &str =
    "SELECT id, person_id FROM face_templates WHERE tenant_id = $1 AND id = $2";
const SITE_EXISTS: &str = "SELECT 1 FROM sites WHERE tenant_id = $1 AND id = $2";
const LOST_BEFORE: &str = "SELECT 1 FROM person_history WHERE tenant_id = $1 AND person_id = $2
     AND hlc_ms = $3 AND hlc_counter = $4 AND hlc_origin = $5 AND outcome = 'lost'";
const KEEP: &str = "INSERT INTO person_history
        (tenant_id, person_id, hlc_ms, hlc_counter, hlc_origin, state, outcome, node_id, at_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const UPSERT_PERSON: &str =
    "INSERT INTO people (tenant_id, id, display_name, employee_ref, active, created_ms, updated_ms)
     VALUES ($1, $2, $3, NULL, $4, $5, $5)
     ON CONFLICT (tenant_id, id) DO UPDATE SET display_name = excluded.display_name,
        active = excluded.active, updated_ms = excluded.updated_ms";
const ASSIGN: &str = "INSERT INTO person_sites (tenant_id, person_id, site_id) VALUES ($1, $2, $3)
     ON CONFLICT DO NOTHING";
const UNASSIGN: &str =
    "DELETE FROM person_sites WHERE tenant_id = $1 AND person_id = $2 AND site_id = $3";
const TOUCH: &str = "UPDATE people SET updated_ms = $3 WHERE tenant_id = $1 AND id = $2";
const DROP_TEMPLATE: &str =
    "DELETE FROM face_templates WHERE tenant_id = $1 AND person_id = $2 AND id = $3";
const ADD_TEMPLATE: &str =
    "INSERT INTO face_templates (tenant_id, id, person_id, model, dim, nonce, sealed, created_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const HISTORY: &str = "SELECT hlc_ms, hlc_counter, hlc_origin, state, outcome, node_id, at_ms
     FROM person_history WHERE tenant_id = $1 AND person_id = $2 ORDER BY id DESC LIMIT $3";

fn seal(
    dek: &DataKey,
    tenant_id: i64,
    person_id: &str,
    t: &Checked<'_>,
) -> Result<sealing::Sealed, StoreError> {
    Ok(dek.seal(
        &sealing::template_place(tenant_id, person_id, t.id),
        &t.bytes,
    )?)
}

/// The timestamp of a person the cloud holds without a version in its feed (older than
/// anything).
fn ancient() -> Hlc {
    stored_hlc(0, 0, crate::server::people::changes::CLOUD_ORIGIN.into())
}

impl Store {
    /// A person's kept versions, newest first (at most `limit`).
    pub async fn person_history(
        &self,
        scope: &TenantScope,
        person_id: &str,
        limit: u32,
    ) -> Result<Vec<PersonHistoryEntry>, StoreError> {
        let person_id = person_id.to_owned();
        in_tenant!(read self, scope, |tx| tx.query(
            HISTORY,
            &[&tx.tenant(), &person_id, &i64::from(limit)],
            |r| Ok(entry(
                (r.get(0)?, r.get(1)?, r.get(2)?),
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            )),
        ))
    }
}

fn entry(
    (ms, counter, origin): (i64, i64, String),
    state: String,
    outcome: String,
    node_id: String,
    at_ms: i64,
) -> PersonHistoryEntry {
    PersonHistoryEntry {
        version: stored_hlc(ms, counter, origin),
        state: serde_json::from_str(&state).unwrap_or(serde_json::Value::Null),
        outcome,
        node_id,
        at_ms,
    }
}

/// Where an upload ended, for the acknowledgement.
enum Outcome {
    Accepted,
    Duplicate,
    Rejected(String),
}

fn settle(ack: &mut rollcall_protocol::wire::PushAck, u: &PersonUpload, outcome: Outcome) {
    match outcome {
        Outcome::Accepted => ack.accepted.push(u.id.clone()),
        Outcome::Duplicate => ack.duplicate.push(u.id.clone()),
        Outcome::Rejected(reason) => ack.rejected.push(reject(u, reason)),
    }
}

/// The pushing node's version of an upload.
fn stamped(u: &PersonUpload, node: &NodeRow) -> Hlc {
    Hlc {
        origin: node.id.clone(),
        ..u.hlc.clone()
    }
}

/// Merges a push's people in its transaction; each upload answered in `ack`.
pub(crate) async fn ingest_people(
    tx: &impl Exec,
    node: &NodeRow,
    uploads: &[PersonUpload],
    dek: &DataKey,
    ack: &mut rollcall_protocol::wire::PushAck,
) -> Result<(), StoreError> {
    let now = now_ms();
    for u in uploads {
        let outcome = match check(u, now) {
            Err(reason) => Outcome::Rejected(reason),
            Ok(templates) => merge_upload(tx, node, u, &templates, dek, now).await?,
        };
        settle(ack, u, outcome);
    }
    Ok(())
}

async fn merge_upload(
    tx: &impl Exec,
    node: &NodeRow,
    u: &PersonUpload,
    templates: &[Checked<'_>],
    dek: &DataKey,
    now: i64,
) -> Result<Outcome, StoreError> {
    let t = tx.tenant();
    let pid = u.person_id.as_str();
    let hlc = stamped(u, node);
    let (ms, counter) = hlc_columns(&hlc);
    // Writers of a person's versions take the tenant's feed lock first (as every change to the
    // feed does), so two pushes cannot both judge against the same current version.
    tx.lock_sequence(FEED_LOCK).await?;
    let current = current_version(tx, pid).await?;
    let lost_before = tx
        .query_opt(LOST_BEFORE, &[&t, &pid, &ms, &counter, &hlc.origin], |_| {
            Ok(())
        })
        .await?
        .is_some();
    let keep = async |version: &Hlc, state: &serde_json::Value, outcome: &str| {
        let (ms, counter) = hlc_columns(version);
        tx.execute(
            KEEP,
            &[
                &t,
                &pid,
                &ms,
                &counter,
                &version.origin,
                &state.to_string(),
                &outcome,
                &node.id,
                &now,
            ],
        )
        .await
    };
    match judge(&hlc, current.as_ref(), lost_before) {
        Verdict::Duplicate => return Ok(Outcome::Duplicate),
        Verdict::Lost => {
            keep(&hlc, &upload_summary(u, &node.site_id), "lost").await?;
            return Ok(Outcome::Accepted);
        }
        Verdict::Wins => {}
    }
    let held = held(tx, pid).await?;
    let was = current.map_or_else(ancient, |(h, _)| h);
    match &u.state {
        PersonState::Assigned { display_name, .. } => {
            let site = tx
                .query_opt(SITE_EXISTS, &[&t, &node.site_id], |_| Ok(()))
                .await?;
            if site.is_none() {
                return Ok(Outcome::Rejected(unknown_site(&node.site_id)));
            }
            let mut owners = Vec::new();
            for c in templates {
                if let Some(o) = tx
                    .query_opt(TEMPLATE_OWNER, &[&t, &c.id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .await?
                {
                    owners.push(o);
                }
            }
            let (delete, insert) = match template_plan(pid, held.as_ref(), templates, &owners) {
                Ok(plan) => plan,
                Err(reason) => return Ok(Outcome::Rejected(reason)),
            };
            let lengths: Vec<(&str, i64)> = templates
                .iter()
                .map(|c| (c.model, (c.bytes.len() / 4) as i64))
                .collect();
            if let Some(m) = super::model_dims::check_and_bind(tx, &lengths).await? {
                return Ok(Outcome::Rejected(format!("template_dimension: {m}")));
            }
            if let Some(h) = &held {
                keep(&was, &h.summary(), "replaced").await?;
            }
            tx.execute(UPSERT_PERSON, &[&t, &pid, display_name, &true, &now])
                .await?;
            tx.execute(ASSIGN, &[&t, &pid, &node.site_id]).await?;
            for id in delete {
                tx.execute(DROP_TEMPLATE, &[&t, &pid, &id]).await?;
            }
            for c in insert {
                let sealed = seal(dek, t, pid, c)?;
                let dim = (c.bytes.len() / 4) as i64;
                tx.execute(
                    ADD_TEMPLATE,
                    &[
                        &t,
                        &c.id,
                        &pid,
                        &c.model,
                        &dim,
                        &sealed.nonce,
                        &sealed.ciphertext,
                        &now,
                    ],
                )
                .await?;
            }
        }
        PersonState::Unassigned | PersonState::Erased => {
            let Some(h) = &held else {
                // Removed at a site from which the cloud never had them: nothing to undo.
                return Ok(Outcome::Accepted);
            };
            keep(&was, &h.summary(), "replaced").await?;
            tx.execute(UNASSIGN, &[&t, &pid, &node.site_id]).await?;
            tx.execute(TOUCH, &[&t, &pid, &now]).await?;
        }
    }
    note_version(tx, pid, Some(&hlc), false).await?;
    Ok(Outcome::Accepted)
}

async fn held(tx: &impl Exec, pid: &str) -> Result<Option<Held>, StoreError> {
    let t = tx.tenant();
    let Some((display_name, active)) = tx
        .query_opt(HELD_PERSON, &[&t, &pid], |r| Ok((r.get(0)?, r.get(1)?)))
        .await?
    else {
        return Ok(None);
    };
    let site_ids = tx.query(HELD_SITES, &[&t, &pid], |r| r.get(0)).await?;
    let templates = tx
        .query(HELD_TEMPLATES, &[&t, &pid], |r| Ok((r.get(0)?, r.get(1)?)))
        .await?;
    Ok(Some(Held {
        display_name,
        active,
        site_ids,
        templates,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_protocol::wire::TemplateRecord;

    fn hlc(ms: u64, origin: &str) -> Hlc {
        Hlc {
            ms,
            counter: 0,
            origin: origin.into(),
        }
    }

    fn vector(dim: usize, value: f32) -> String {
        base64::engine::general_purpose::STANDARD.encode(
            std::iter::repeat_n(value, dim)
                .flat_map(f32::to_le_bytes)
                .collect::<Vec<u8>>(),
        )
    }

    fn upload(templates: Vec<TemplateRecord>) -> PersonUpload {
        PersonUpload {
            id: "01J00000000000000000000PRS".into(),
            person_id: "ann".into(),
            hlc: hlc(1_000, "node"),
            state: PersonState::Assigned {
                display_name: "Ann".into(),
                templates,
            },
        }
    }

    fn template(id: &str, model: &str, vector: String) -> TemplateRecord {
        TemplateRecord {
            id: id.into(),
            model: model.into(),
            vector,
        }
    }

    #[test]
    fn uploads_are_checked_field_by_field() {
        let ok = upload(vec![template("t1", "mfn", vector(128, 0.5))]);
        let checked = check(&ok, 1_000).expect("valid");
        assert_eq!(checked[0].bytes.len(), 512);
        let reason = |u: &PersonUpload| check(u, 1_000).expect_err("refused");
        assert!(
            reason(&PersonUpload {
                id: "x".into(),
                ..ok.clone()
            })
            .starts_with("invalid_id")
        );
        assert!(
            reason(&PersonUpload {
                person_id: "-x".into(),
                ..ok.clone()
            })
            .starts_with("invalid_person")
        );
        let ahead = PersonUpload {
            hlc: hlc(1_000 + MAX_CLOCK_AHEAD_MS as u64 + 1, "node"),
            ..ok.clone()
        };
        assert!(reason(&ahead).starts_with("clock_ahead"));
        let beyond_i64 = PersonUpload {
            hlc: hlc(u64::MAX, "node"),
            ..ok.clone()
        };
        assert!(reason(&beyond_i64).starts_with("clock_ahead"));
        assert!(
            reason(&PersonUpload {
                state: PersonState::Erased,
                ..ok.clone()
            })
            .starts_with("invalid_person")
        );
        let blank = PersonUpload {
            state: PersonState::Assigned {
                display_name: "  ".into(),
                templates: vec![],
            },
            ..ok.clone()
        };
        assert!(reason(&blank).starts_with("invalid_person"));
        for bad in [
            vec![
                template("t1", "mfn", vector(128, 0.5)),
                template("t1", "mfn", vector(128, 0.5)),
            ],
            vec![template("t1", "MFN", vector(128, 0.5))],
            vec![template("t1", "mfn", vector(8, 0.5))],
            vec![template("t1", "mfn", vector(128, f32::NAN))],
            vec![template("t1", "mfn", "!!".into())],
            vec![template("t1", "mfn", "AAAAAAA=".into())],
        ] {
            assert!(reason(&upload(bad)).starts_with("invalid_template"));
        }
        let many = (0..=MAX_PER_PERSON)
            .map(|i| template(&format!("t{i}"), "mfn", vector(128, 0.5)))
            .collect();
        assert!(reason(&upload(many)).starts_with("too_many_templates"));
        let gone = PersonUpload {
            state: PersonState::Unassigned,
            ..ok
        };
        assert_eq!(check(&gone, 1_000).expect("valid"), vec![]);
    }

    #[test]
    fn a_later_version_wins_an_erasure_never_loses_and_repeats_are_duplicates() {
        let node = hlc(2_000, "n1");
        assert_eq!(judge(&node, None, false), Verdict::Wins);
        assert_eq!(
            judge(&node, Some(&(hlc(1_000, "cloud"), false)), false),
            Verdict::Wins
        );
        assert_eq!(
            judge(&node, Some(&(hlc(3_000, "cloud"), false)), false),
            Verdict::Lost
        );
        assert_eq!(
            judge(&node, Some(&(hlc(1_000, "cloud"), true)), false),
            Verdict::Lost
        );
        assert_eq!(
            judge(&node, Some(&(node.clone(), false)), false),
            Verdict::Duplicate
        );
        assert_eq!(
            judge(&node, Some(&(hlc(3_000, "cloud"), false)), true),
            Verdict::Duplicate
        );
        // Same millisecond and counter: the origin breaks the tie, the same way everywhere.
        assert_eq!(
            judge(&hlc(2_000, "n2"), Some(&(node.clone(), false)), false),
            Verdict::Wins
        );
        assert_eq!(
            judge(&node, Some(&(hlc(2_000, "n2"), false)), false),
            Verdict::Lost
        );
    }

    #[test]
    fn templates_of_the_uploads_model_are_replaced_and_others_kept() {
        let held = Held {
            templates: vec![
                ("old".into(), "mfn".into()),
                ("keep".into(), "mfn".into()),
                ("arc".into(), "arcface".into()),
            ],
            ..Held::default()
        };
        let u = upload(vec![
            template("keep", "mfn", vector(128, 0.1)),
            template("new", "mfn", vector(128, 0.2)),
        ]);
        let checked = check(&u, 1_000).expect("valid");
        let owners = vec![("keep".to_owned(), "ann".to_owned())];
        let (delete, insert) = template_plan("ann", Some(&held), &checked, &owners).expect("plan");
        assert_eq!(delete, ["old"]);
        assert_eq!(insert.iter().map(|c| c.id).collect::<Vec<_>>(), ["new"]);
        let theirs = vec![("new".to_owned(), "bob".to_owned())];
        let err = template_plan("ann", Some(&held), &checked, &theirs).expect_err("conflict");
        assert!(err.starts_with("template_conflict"), "{err}");
        let crowded = Held {
            templates: (0..MAX_PER_PERSON - 1)
                .map(|i| (format!("a{i}"), "arcface".to_owned()))
                .collect(),
            ..Held::default()
        };
        let err = template_plan("ann", Some(&crowded), &checked, &[]).expect_err("too many");
        assert!(err.starts_with("too_many_templates"), "{err}");
    }
}
