//! Notifications in the store, on both backends, on a clock the test sets: who gets a
//! notification (by role, enabled, by preference), which mail job it makes and when (quiet
//! hours in the user's zone, digests one per window), marking read, and the purge.

use serde_json::json;

use crate::server::{
    notifications::{
        inbox::NewNotification,
        jobs::{DIGEST_KIND, MAIL_KIND},
        kinds::{self, DOOR_HELD_OPEN, READER_OFFLINE, TAMPER},
        prefs::{KindPref, SettingsChange},
        quiet::QuietHours,
    },
    store::{
        Store, TenantScope,
        suite::{audit, both, postgres, sqlite, tenant_with_node},
    },
    users::store::{NewUser, Role},
};

/// 2026-06-01T23:30:00+02:00 (Europe/Berlin, summer time).
const LATE_EVENING: i64 = 1_780_349_400_000;

fn note(kind: &str, title: &str) -> NewNotification {
    NewNotification {
        kind: kinds::kind(kind).expect("kind"),
        title: title.into(),
        body: "body".into(),
        data: json!({ "site_id": "hq" }),
    }
}

async fn user(store: &Store, scope: &TenantScope, id: &str, role: Role) {
    store
        .create_user(
            scope,
            NewUser {
                id: id.into(),
                email: format!("{id}@acme.example"),
                display_name: id.into(),
                role,
                password_hash: "x".into(),
            },
            audit(),
        )
        .await
        .expect("user");
}

async fn mail_jobs(
    store: &Store,
    scope: &TenantScope,
    kind: &str,
) -> Vec<crate::server::jobs::model::Job> {
    let filter = crate::server::jobs::admin::JobFilter {
        state: None,
        kind: Some(kind.into()),
        queue: None,
        before_id: None,
        limit: 1000,
    };
    store.jobs(scope, filter).await.expect("jobs")
}

both!(a_notification_reaches_the_roles_it_names_on_the_channels_they_chose);
async fn a_notification_reaches_the_roles_it_names_on_the_channels_they_chose(store: Store) {
    let (acme, _) = tenant_with_node(&store, "acme", "n1").await;
    for (id, role) in [
        ("sam", Role::Supervisor),
        ("gus", Role::Guard),
        ("ada", Role::Admin),
        ("off", Role::Admin),
    ] {
        user(&store, &acme, id, role).await;
    }
    store
        .update_user(&acme, "off", None, None, Some(true), audit())
        .await
        .expect("disable");
    // Ada mutes held-open doors; the tenant mails them to everyone else.
    let pref = |kind: &str, in_app, email, digest| KindPref {
        kind: kind.into(),
        in_app,
        email,
        digest_minutes: digest,
    };
    store
        .set_notification_prefs(
            &acme,
            "ada",
            vec![pref(DOOR_HELD_OPEN, false, false, 0)],
            SettingsChange::default(),
            audit(),
        )
        .await
        .expect("ada");
    store
        .set_notification_prefs(
            &acme,
            "",
            vec![pref(DOOR_HELD_OPEN, true, true, 0)],
            SettingsChange::default(),
            audit(),
        )
        .await
        .expect("defaults");
    let live = store
        .notify(
            &acme,
            vec![note(TAMPER, "t"), note(DOOR_HELD_OPEN, "h")],
            LATE_EVENING,
        )
        .await
        .expect("notify");
    // Tamper to Sam and Ada, held open to Sam only; nothing to the guard or the disabled admin.
    assert_eq!(live, 3);
    let inbox = |u: &'static str| {
        let store = store.clone();
        let acme = acme.clone();
        async move {
            let page = store.inbox(&acme, u, None, false, 50).await.expect("inbox");
            (
                page.items
                    .iter()
                    .map(|n| n.kind.clone())
                    .collect::<Vec<_>>(),
                page.unread,
            )
        }
    };
    assert_eq!(
        inbox("sam").await,
        (vec![DOOR_HELD_OPEN.to_owned(), TAMPER.to_owned()], 2)
    );
    assert_eq!(inbox("ada").await, (vec![TAMPER.to_owned()], 1));
    assert_eq!(inbox("gus").await, (vec![], 0));
    assert_eq!(inbox("off").await, (vec![], 0));
    // Three mails: tamper to both (critical first), held open to Sam.
    let mails = mail_jobs(&store, &acme, MAIL_KIND).await;
    assert_eq!(mails.len(), 3);
    assert_eq!(mails.iter().filter(|j| j.priority == 0).count(), 2);
    // Other alarms do not mail by default: in the inbox only.
    let live = store
        .notify(&acme, vec![note(kinds::OTHER_ALARM, "o")], LATE_EVENING)
        .await
        .expect("notify");
    assert_eq!(live, 2);
    assert_eq!(mail_jobs(&store, &acme, MAIL_KIND).await.len(), 3);
    // Marking read: one, again (no change), all; someone else's is not found.
    let sams = store
        .inbox(&acme, "sam", None, false, 50)
        .await
        .expect("inbox")
        .items;
    let read = |who: &'static str, id: Option<String>| {
        let store = store.clone();
        let acme = acme.clone();
        async move {
            store
                .mark_read(&acme, who, id, LATE_EVENING)
                .await
                .expect("read")
        }
    };
    let first = Some(sams[0].id.clone());
    assert_eq!(read("sam", first.clone()).await, Some(2));
    assert_eq!(
        read("sam", first.clone()).await,
        Some(2),
        "again: no change"
    );
    assert_eq!(read("ada", first).await, None, "not Ada's");
    assert_eq!(read("sam", None).await, Some(0));
    let unread = store
        .inbox(&acme, "sam", None, true, 50)
        .await
        .expect("inbox");
    assert!(unread.items.is_empty());
    // The purge drops what was read 90 days ago and anything a year old whose mail is settled:
    // Sam's read other-alarm goes at 90 days, Ada's unread one at a year; those whose mail is
    // still queued stay.
    let day = 86_400_000;
    let prune = |at: i64| {
        let store = store.clone();
        let acme = acme.clone();
        async move { store.prune_notifications(&acme, at).await.expect("prune") }
    };
    assert_eq!(prune(LATE_EVENING + 89 * day).await, 0);
    assert_eq!(prune(LATE_EVENING + 91 * day).await, 1);
    assert_eq!(inbox("sam").await.0, [DOOR_HELD_OPEN, TAMPER]);
    assert_eq!(prune(LATE_EVENING + 366 * day).await, 1);
    assert_eq!(inbox("ada").await.0, [TAMPER]);
}

both!(quiet_hours_hold_mail_in_the_users_zone_and_digests_take_one_job_per_window);
async fn quiet_hours_hold_mail_in_the_users_zone_and_digests_take_one_job_per_window(store: Store) {
    let (acme, _) = tenant_with_node(&store, "acme", "n1").await;
    user(&store, &acme, "sam", Role::Supervisor).await;
    let settings = SettingsChange {
        time_zone: Some(Some("Europe/Berlin".into())),
        quiet_hours: Some(QuietHours::new(22 * 60, 7 * 60)),
    };
    let prefs = vec![
        KindPref {
            kind: DOOR_HELD_OPEN.into(),
            in_app: true,
            email: true,
            digest_minutes: 0,
        },
        KindPref {
            kind: READER_OFFLINE.into(),
            in_app: true,
            email: true,
            digest_minutes: 60,
        },
    ];
    store
        .set_notification_prefs(&acme, "sam", prefs, settings, audit())
        .await
        .expect("prefs");
    store
        .notify(
            &acme,
            vec![note(DOOR_HELD_OPEN, "h"), note(TAMPER, "t")],
            LATE_EVENING,
        )
        .await
        .expect("notify");
    let mails = mail_jobs(&store, &acme, MAIL_KIND).await;
    let at = |priority: i32| {
        mails
            .iter()
            .find(|j| j.priority == priority)
            .expect("job")
            .scheduled_ms
    };
    // 07:00 the next morning in Berlin; the critical one is not held.
    assert_eq!(
        at(1),
        1_780_376_400_000,
        "held until 2026-06-02T07:00+02:00"
    );
    assert!(
        at(0) <= rollcall_service::clock::now_ms(),
        "tamper goes at once"
    );
    // Three reader-offline alarms in one hour: one digest job, at the window's end — which
    // falls in quiet hours, so it waits for the morning too.
    for minute in [0, 10, 20] {
        store
            .notify(
                &acme,
                vec![note(READER_OFFLINE, "r")],
                LATE_EVENING + minute * 60_000,
            )
            .await
            .expect("notify");
    }
    let digests = mail_jobs(&store, &acme, DIGEST_KIND).await;
    assert_eq!(digests.len(), 1, "{digests:?}");
    assert_eq!(
        digests[0].args["until_ms"], 1_780_351_200_000i64,
        "the window ends at 00:00+02:00"
    );
    assert_eq!(digests[0].scheduled_ms, 1_780_376_400_000);
    // The next window gets its own.
    store
        .notify(
            &acme,
            vec![note(READER_OFFLINE, "r")],
            LATE_EVENING + 40 * 60_000,
        )
        .await
        .expect("notify");
    assert_eq!(mail_jobs(&store, &acme, DIGEST_KIND).await.len(), 2);
}
