//! The inbox: one row per notification and recipient, made in the transaction of the change
//! that causes it (with its live message on the recipient's `user:<id>` topic and, when they
//! want mail, its mail or digest job), listed with a cursor, marked read.

use serde::Serialize;
use utoipa::ToSchema;

use crate::server::{
    jobs::store::enqueue,
    notifications::{
        jobs as mail_jobs,
        kinds::Kind,
        prefs::{Pref, Settings, resolve},
        quiet::quiet_until,
    },
    realtime::stream::NewMessage,
    store::{
        Store, StoreError, TenantScope,
        exec::{Exec, Row, in_tenant},
    },
    users::store::Role,
};

/// The live message of a new notification, on `user:<recipient>`.
pub const NOTIFICATION: &str = "notification";
/// The live message of notifications marked read, on `user:<recipient>` (other tabs and
/// devices of the user update their badge).
pub const NOTIFICATIONS_READ: &str = "notifications.read";

/// What a change notifies of; who gets it follows from its kind and their preferences.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub kind: &'static Kind,
    /// One line, plain text.
    pub title: String,
    /// Plain text.
    pub body: String,
    /// What it is about (ids), for clients and templates.
    pub data: serde_json::Value,
}

/// A notification in a user's inbox (also the `data` of a `notification` live message).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Notification {
    /// Sorts by time: `ntf_` and hex digits.
    pub id: String,
    pub kind: String,
    pub critical: bool,
    pub title: String,
    pub body: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub created_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_ms: Option<i64>,
}

/// `notifications.read`: some or all of a user's notifications were marked read.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct NotificationsReadData {
    /// The one marked read; absent when all were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Unread notifications left.
    pub unread: u64,
}

/// How long a read notification is kept.
pub const READ_RETENTION_MS: i64 = 90 * 86_400_000;
/// How long any notification is kept.
pub const RETENTION_MS: i64 = 365 * 86_400_000;

/// How a notification's mail stands.
pub(crate) mod email {
    /// The recipient does not want it by mail.
    pub const NONE: &str = "none";
    /// Its own mail job will send it.
    pub const QUEUED: &str = "queued";
    /// A digest job of its kind will send it with others.
    pub const DIGEST: &str = "digest";
    pub const SENT: &str = "sent";
    /// Its job ended without sending (no SMTP server configured, recipient disabled, …).
    pub const SKIPPED: &str = "skipped";
}

/// `ntf_`, the time, the notification's place in its change, and randomness: the ids of one
/// change sort in its order, and every id sorts by time.
fn new_notification_id(now_ms: i64, nth: usize) -> Result<String, StoreError> {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).map_err(|e| StoreError::Inconsistent(format!("no randomness: {e}")))?;
    Ok(format!(
        "ntf_{:013x}{:04x}{}",
        now_ms.max(0),
        nth.min(0xffff),
        hex::encode(b)
    ))
}

/// Where a digest window of `minutes` that holds `now_ms` ends.
pub(crate) fn digest_window_end(now_ms: i64, minutes: u32) -> i64 {
    let w = i64::from(minutes.max(1)) * 60_000;
    (now_ms.div_euclid(w) + 1) * w
}

/// Notifies the tenant's users of `notes` in the caller's transaction: each enabled user whose
/// role the kind names, on the channels their preferences choose (a critical kind on both).
/// Gives back the live messages to publish with the change.
pub(crate) async fn notify(
    tx: &impl Exec,
    notes: &[NewNotification],
    now_ms: i64,
) -> Result<Vec<NewMessage>, StoreError> {
    if notes.is_empty() {
        return Ok(Vec::new());
    }
    let users: Vec<(String, String)> = tx
        .query(
            "SELECT id, role FROM users WHERE tenant_id = $1 AND disabled_ms IS NULL ORDER BY id",
            &[&tx.tenant()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .await?;
    let prefs = crate::server::notifications::prefs::stored_prefs(tx).await?;
    let settings = crate::server::notifications::prefs::stored_settings(tx).await?;
    let mut live = Vec::new();
    let mut nth = 0;
    for note in notes {
        for (user, role) in &users {
            if !Role::parse(role).is_some_and(|r| note.kind.roles.contains(&r)) {
                continue;
            }
            let pref = resolve(
                note.kind,
                prefs
                    .get(&(user.clone(), note.kind.name.to_owned()))
                    .copied(),
                prefs
                    .get(&(String::new(), note.kind.name.to_owned()))
                    .copied(),
            );
            if !pref.in_app && !pref.email {
                continue;
            }
            let set = settings.get(user).cloned().unwrap_or_default();
            nth += 1;
            live.extend(deliver(tx, note, user, pref, &set, now_ms, nth).await?);
        }
    }
    Ok(live)
}

/// One recipient's row, its mail or digest job, and its live message.
async fn deliver(
    tx: &impl Exec,
    note: &NewNotification,
    user: &str,
    pref: Pref,
    settings: &Settings,
    now_ms: i64,
    nth: usize,
) -> Result<Option<NewMessage>, StoreError> {
    let id = new_notification_id(now_ms, nth)?;
    let quiet = |at: i64| {
        (!note.kind.critical)
            .then_some(settings.quiet_hours)
            .flatten()
            .and_then(|q| quiet_until(&settings.zone(), q, at))
    };
    let (email_state, digest_ms) = match (pref.email, pref.digest_minutes) {
        (false, _) => (email::NONE, None),
        (true, 0) => (email::QUEUED, None),
        (true, minutes) => (email::DIGEST, Some(digest_window_end(now_ms, minutes))),
    };
    let data = note.data.to_string();
    tx.execute(
        "INSERT INTO notifications (tenant_id, id, user_id, kind, critical, title, body, data,
                                    in_app, email, digest_ms, created_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &tx.tenant(),
            &id,
            &user,
            &note.kind.name,
            &note.kind.critical,
            &note.title,
            &note.body,
            &data,
            &pref.in_app,
            &email_state,
            &digest_ms,
            &now_ms,
        ],
    )
    .await?;
    match digest_ms {
        Some(end) => {
            let at = quiet(end).unwrap_or(end);
            enqueue(tx, &mail_jobs::digest_job(user, note.kind.name, end, at)).await?;
        }
        None if pref.email => {
            enqueue(
                tx,
                &mail_jobs::mail_job(&id, note.kind.critical, quiet(now_ms)),
            )
            .await?;
        }
        None => {}
    }
    Ok(pref.in_app.then(|| NewMessage {
        topic: format!("user:{user}"),
        kind: NOTIFICATION,
        data: serde_json::to_value(Notification {
            id,
            kind: note.kind.name.to_owned(),
            critical: note.kind.critical,
            title: note.title.clone(),
            body: note.body.clone(),
            data: note.data.clone(),
            created_ms: now_ms,
            read_ms: None,
        })
        .unwrap_or(serde_json::Value::Null),
    }))
}

const COLUMNS: &str = "id, kind, critical, title, body, data, created_ms, read_ms";

fn read_notification(r: &Row<'_>) -> Result<Notification, StoreError> {
    let data: String = r.get(5)?;
    Ok(Notification {
        id: r.get(0)?,
        kind: r.get(1)?,
        critical: r.get(2)?,
        title: r.get(3)?,
        body: r.get(4)?,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
        created_ms: r.get(6)?,
        read_ms: r.get(7)?,
    })
}

async fn unread(tx: &impl Exec, user: &str) -> Result<u64, StoreError> {
    let n: i64 = tx
        .query_opt(
            "SELECT count(*) FROM notifications
             WHERE tenant_id = $1 AND user_id = $2 AND in_app AND read_ms IS NULL",
            &[&tx.tenant(), &user],
            |r| r.get(0),
        )
        .await?
        .unwrap_or(0);
    Ok(n.unsigned_abs())
}

/// A page of a user's inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxPage {
    pub items: Vec<Notification>,
    pub unread: u64,
}

impl Store {
    /// The user's notifications before `before` (an id; newest first), only unread ones if
    /// asked, at most `limit`; and how many are unread.
    pub async fn inbox(
        &self,
        scope: &TenantScope,
        user: &str,
        before: Option<String>,
        unread_only: bool,
        limit: u32,
    ) -> Result<InboxPage, StoreError> {
        let user = user.to_owned();
        in_tenant!(read self, scope, |tx| async move {
            let sql = format!(
                "SELECT {COLUMNS} FROM notifications
                 WHERE tenant_id = $1 AND user_id = $2 AND in_app AND id < $3
                   AND (read_ms IS NULL OR NOT $4)
                 ORDER BY id DESC LIMIT $5"
            );
            let before = before.unwrap_or_else(|| "ntf_g".into());
            let items = tx
                .query(
                    &sql,
                    &[&tx.tenant(), &user, &before, &unread_only, &i64::from(limit)],
                    read_notification,
                )
                .await?;
            Ok::<_, StoreError>(InboxPage {
                items,
                unread: unread(tx, &user).await?,
            })
        })
    }

    /// Marks one of the user's notifications read (`Some(unread left)`), or all of them when
    /// `id` is `None`; `None` when the user has no such notification. Publishes
    /// `notifications.read` when something changed.
    pub async fn mark_read(
        &self,
        scope: &TenantScope,
        user: &str,
        id: Option<String>,
        now_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        let user = user.to_owned();
        in_tenant!(internal self, scope, |tx| async move {
            let changed = match &id {
                Some(id) => {
                    let found: Option<Option<i64>> = tx
                        .query_opt(
                            "SELECT read_ms FROM notifications
                             WHERE tenant_id = $1 AND user_id = $2 AND id = $3 AND in_app",
                            &[&tx.tenant(), &user, id],
                            |r| r.get(0),
                        )
                        .await?;
                    match found {
                        None => return Ok(None),
                        Some(Some(_)) => 0,
                        Some(None) => {
                            tx.execute(
                                "UPDATE notifications SET read_ms = $4
                                 WHERE tenant_id = $1 AND user_id = $2 AND id = $3",
                                &[&tx.tenant(), &user, id, &now_ms],
                            )
                            .await?
                        }
                    }
                }
                None => {
                    tx.execute(
                        "UPDATE notifications SET read_ms = $3
                         WHERE tenant_id = $1 AND user_id = $2 AND in_app AND read_ms IS NULL",
                        &[&tx.tenant(), &user, &now_ms],
                    )
                    .await?
                }
            };
            let left = unread(tx, &user).await?;
            if changed > 0 {
                let data = NotificationsReadData { id, unread: left };
                crate::server::realtime::stream::publish(
                    tx,
                    &[NewMessage {
                        topic: format!("user:{user}"),
                        kind: NOTIFICATIONS_READ,
                        data: serde_json::to_value(data).unwrap_or(serde_json::Value::Null),
                    }],
                )
                .await?;
            }
            Ok::<_, StoreError>(Some(left))
        })
    }

    /// Deletes notifications read [`READ_RETENTION_MS`] before `now_ms`, or made
    /// [`RETENTION_MS`] before it, whose mail is settled (none, sent or skipped); how many went.
    pub async fn prune_notifications(
        &self,
        scope: &TenantScope,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        in_tenant!(internal self, scope, |tx| tx.execute(
            "DELETE FROM notifications
             WHERE tenant_id = $1 AND email IN ('none', 'sent', 'skipped')
               AND (read_ms < $2 OR created_ms < $3)",
            &[&tx.tenant(), &(now_ms - READ_RETENTION_MS), &(now_ms - RETENTION_MS)],
        ))
    }

    /// Notifies of `notes` in a transaction of their own (changes with no other write).
    pub async fn notify(
        &self,
        scope: &TenantScope,
        notes: Vec<NewNotification>,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        in_tenant!(internal self, scope, |tx| async move {
            let live = notify(tx, &notes, now_ms).await?;
            crate::server::realtime::stream::publish(tx, &live).await?;
            Ok::<_, StoreError>(live.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_windows_end_on_their_boundary() {
        let a = new_notification_id(1_700_000_000_000, 9).expect("id");
        let b = new_notification_id(1_700_000_000_001, 0).expect("id");
        let c = new_notification_id(1_700_000_000_001, 1).expect("id");
        assert!(a < b && b < c && a.len() == b.len() && a.len() == 4 + 13 + 4 + 8);
        assert!(a.as_str() < "ntf_g");
        assert_eq!(digest_window_end(0, 15), 900_000);
        assert_eq!(digest_window_end(899_999, 15), 900_000);
        assert_eq!(digest_window_end(900_000, 15), 1_800_000);
    }
}
