//! The mail jobs, on their own `mail` queue: `notifications.mail` sends one notification
//! (unique per notification, and a notification has one recipient, so it never mails twice)
//! and `notifications.digest` one mail for a user's notifications of a kind in a window
//! (unique per user, kind and window). Each marks what it sent in the transaction that
//! completes the job; a refusal for good (5xx) discards the job into the dead letters, where
//! an admin sees and can re-drive it; anything else retries with back-off.

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::server::{
    jobs::{
        backoff::Backoff,
        model::{Claimed, NewJob},
        registry::{Done, Failed, JobRun, KindOptions, Registry},
        store::complete,
    },
    notifications::{
        inbox::email,
        kinds,
        mail::{Mailer, SendError},
        templates::{self, Item, Templates},
    },
    store::{
        Store, StoreError, TenantScope,
        exec::{Exec, in_tenant},
    },
};
use rollcall_service::clock::now_ms;

pub const MAIL_KIND: &str = "notifications.mail";
pub const DIGEST_KIND: &str = "notifications.digest";
pub const QUEUE: &str = "mail";
const MAX_ATTEMPTS: u32 = 12;

/// The arguments of a `notifications.mail` job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailArgs {
    pub notification_id: String,
}

/// The arguments of a `notifications.digest` job: the window ending at `until_ms`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DigestArgs {
    pub user_id: String,
    pub kind: String,
    pub until_ms: i64,
}

fn options() -> KindOptions {
    KindOptions {
        queue: QUEUE,
        max_attempts: MAX_ATTEMPTS,
        timeout: Duration::from_secs(120),
        // 2 s after the first failure, doubling, at most 30 minutes: twelve attempts span
        // about two hours of ceilings (a mail server down for a maintenance window).
        backoff: Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(1800),
        },
        by_api: false,
    }
}

fn job(kind: &str, args: serde_json::Value, key: String, priority: i32, at: Option<i64>) -> NewJob {
    NewJob {
        kind: kind.to_owned(),
        queue: QUEUE.to_owned(),
        args,
        priority,
        scheduled_ms: at,
        max_attempts: MAX_ATTEMPTS,
        unique_key: Some(key),
        actor: None,
        request_id: None,
        waits: None,
    }
}

/// The mail of notification `id`: critical ones first, at `at` (quiet hours) or now.
pub(crate) fn mail_job(id: &str, critical: bool, at: Option<i64>) -> NewJob {
    job(
        MAIL_KIND,
        json!({ "notification_id": id }),
        format!("mail:{id}"),
        if critical { 0 } else { 1 },
        at,
    )
}

/// The digest of `user`'s `kind` notifications in the window ending at `until_ms`, run at `at`.
pub(crate) fn digest_job(user: &str, kind: &str, until_ms: i64, at: i64) -> NewJob {
    job(
        DIGEST_KIND,
        json!({ "user_id": user, "kind": kind, "until_ms": until_ms }),
        format!("digest:{user}:{kind}:{until_ms}"),
        2,
        Some(at),
    )
}

/// Registers both kinds; without a mailer they complete at once, marking the mail skipped.
pub fn register(r: &mut Registry, mailer: Option<Arc<Mailer>>) {
    let m = mailer.clone();
    r.register(MAIL_KIND, options(), move |run: JobRun, a: MailArgs| {
        let m = m.clone();
        async move { send(run, m, Pending::One(a.notification_id)).await }
    });
    r.register(DIGEST_KIND, options(), move |run: JobRun, a: DigestArgs| {
        let m = mailer.clone();
        async move {
            send(
                run,
                m,
                Pending::Digest {
                    user: a.user_id,
                    kind: a.kind,
                    until_ms: a.until_ms,
                },
            )
            .await
        }
    });
}

/// Which notifications a job mails.
#[derive(Debug, Clone)]
pub enum Pending {
    One(String),
    Digest {
        user: String,
        kind: String,
        until_ms: i64,
    },
}

/// What a job found to mail.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub to: String,
    pub display_name: String,
    pub kind: &'static kinds::Kind,
    pub items: Vec<Item>,
    /// The tenant's own templates for the kind (or for all kinds), if it has them.
    pub templates: Option<Templates>,
}

async fn send(run: JobRun, mailer: Option<Arc<Mailer>>, pending: Pending) -> Result<Done, Failed> {
    let scope = run
        .scope
        .clone()
        .ok_or_else(|| Failed::Discard("mail is sent for a tenant".into()))?;
    let Some(out) = run.store.outgoing(&scope, &pending).await? else {
        return finish(
            &run,
            &scope,
            &[],
            json!({ "skipped": "nothing left to send" }),
        )
        .await;
    };
    let ids: Vec<String> = out.items.iter().map(|i| i.id.clone()).collect();
    let Some(mailer) = mailer else {
        let why = json!({ "skipped": "no SMTP server is configured (--smtp-url)" });
        return finish(&run, &scope, &ids, why).await;
    };
    let cx = templates::Context {
        tenant: scope.slug(),
        recipient_name: &out.display_name,
        recipient_email: &out.to,
        kind: out.kind,
        items: &out.items,
    };
    let own = match out.templates.as_ref().map(|t| templates::render(t, &cx)) {
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            tracing::warn!(tenant = scope.slug(), kind = out.kind.name, error = %e, "the tenant's mail template failed: sent with the built-in one");
            None
        }
        None => None,
    };
    let rendered = match own {
        Some(r) => r,
        None => templates::render(&templates::builtin(), &cx)
            .map_err(|e| Failed::Discard(e.to_string()))?,
    };
    let message_id = match &pending {
        Pending::One(id) => id.clone(),
        Pending::Digest { until_ms, .. } => format!("digest-{}-{until_ms}", ids[0]),
    };
    match mailer.send(&out.to, &rendered, &message_id).await {
        Ok(()) => {
            let result = json!({ "sent_to": out.to, "notifications": ids.len() });
            finish(&run, &scope, &ids, result).await
        }
        Err(SendError::Permanent(e)) => Err(Failed::Discard(format!(
            "{} refused the mail for good: {e}",
            mailer.server
        ))),
        Err(SendError::Transient(e)) => Err(Failed::Retry(format!("{}: {e}", mailer.server))),
    }
}

/// Marks `ids` sent (or skipped) and completes the job, in one transaction.
async fn finish(
    run: &JobRun,
    scope: &TenantScope,
    ids: &[String],
    result: serde_json::Value,
) -> Result<Done, Failed> {
    let state = if result.get("skipped").is_some() {
        email::SKIPPED
    } else {
        email::SENT
    };
    run.store
        .mailed(scope, &run.job, ids, state, &result)
        .await?;
    run.confirmed();
    Ok(Done::Result(Some(result)))
}

async fn load_templates(tx: &impl Exec, kind: &str) -> Result<Option<Templates>, StoreError> {
    let rows: Vec<(String, String, String, String)> = tx
        .query(
            "SELECT kind, subject, text, html FROM mail_templates
             WHERE tenant_id = $1 AND (kind = $2 OR kind = '*')",
            &[&tx.tenant(), &kind],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .await?;
    let pick = rows.iter().find(|r| r.0 == kind).or_else(|| rows.first());
    Ok(pick.map(|(_, subject, text, html)| Templates {
        subject: subject.clone(),
        text: text.clone(),
        html: html.clone(),
    }))
}

impl Store {
    /// What a mail job has to send: nothing if it was sent already, its recipient is disabled
    /// or gone.
    pub async fn outgoing(
        &self,
        scope: &TenantScope,
        pending: &Pending,
    ) -> Result<Option<Outgoing>, StoreError> {
        let pending = pending.clone();
        in_tenant!(read self, scope, |tx| async move {
            type Found = (String, String, bool, String, String, String, i64, String);
            let read = |r: &crate::server::store::exec::Row<'_>| -> Result<Found, StoreError> {
                Ok((
                    r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?,
                    r.get(7)?,
                ))
            };
            const FOUND: &str = "SELECT id, kind, critical, title, body, data, created_ms, user_id
                                 FROM notifications WHERE tenant_id = $1 AND mailed_ms IS NULL";
            let rows = match &pending {
                Pending::One(id) => {
                    let sql = format!("{FOUND} AND id = $2 AND email = 'queued'");
                    tx.query(&sql, &[&tx.tenant(), id], read).await?
                }
                Pending::Digest { user, kind, until_ms } => {
                    let sql = format!(
                        "{FOUND} AND user_id = $2 AND kind = $3 AND email = 'digest'
                           AND digest_ms = $4 ORDER BY id"
                    );
                    tx.query(&sql, &[&tx.tenant(), user, kind, until_ms], read).await?
                }
            };
            let Some(first) = rows.first() else {
                return Ok(None);
            };
            let user = first.7.clone();
            let Some(kind) = kinds::kind(&first.1) else {
                return Ok(None);
            };
            let recipient: Option<(String, String)> = tx
                .query_opt(
                    "SELECT email, display_name FROM users
                     WHERE tenant_id = $1 AND id = $2 AND disabled_ms IS NULL",
                    &[&tx.tenant(), &user],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .await?;
            let Some((to, display_name)) = recipient else {
                return Ok(None);
            };
            let zone = crate::server::notifications::prefs::stored_settings(tx)
                .await?
                .remove(&user)
                .unwrap_or_default()
                .zone();
            let items = rows
                .into_iter()
                .map(|(id, kind, critical, title, body, data, created_ms, _)| Item {
                    id,
                    kind,
                    critical,
                    title,
                    body,
                    data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
                    time: crate::server::jobs::cron::local_time(&zone, created_ms),
                })
                .collect();
            Ok::<_, StoreError>(Some(Outgoing {
                to,
                display_name,
                kind,
                items,
                templates: load_templates(tx, kind.name).await?,
            }))
        })
    }

    /// Marks `ids` with mail state `state` and completes `job` with `result`, in one
    /// transaction; nothing if the attempt's lease was lost.
    pub async fn mailed(
        &self,
        scope: &TenantScope,
        job: &Claimed,
        ids: &[String],
        state: &'static str,
        result: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let (job, ids, result) = (job.clone(), ids.to_vec(), result.clone());
        in_tenant!(internal self, scope, |tx| async move {
            if !complete(tx, &job, Some(&result)).await? {
                return Err(StoreError::LeaseLost(job.id));
            }
            let now = now_ms();
            for id in &ids {
                tx.execute(
                    "UPDATE notifications SET email = $3, mailed_ms = $4
                     WHERE tenant_id = $1 AND id = $2 AND mailed_ms IS NULL",
                    &[&tx.tenant(), id, &state, &now],
                )
                .await?;
            }
            Ok(())
        })
    }
}
