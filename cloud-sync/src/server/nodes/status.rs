//! Whether each node is online, lagging or offline, as the cloud last said it (`node.status` on
//! the node's site): a push says online — or lagging, when its newest event reached the cloud
//! more than [`LAGGING_AFTER_MS`] after it happened (a backlog draining) — and the `nodes.watch`
//! job, run every minute by the platform schedule `watch-nodes`, says offline of a node not
//! heard from for its `offline_after_s` (5 minutes by default), and notifies the tenant's
//! admins (`node.offline`). Each change is published once, in the transaction that stores it.

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::server::{
    jobs::registry::{Done, Failed, JobRun},
    notifications::{inbox::NewNotification, kinds},
    realtime::stream::NewMessage,
    store::{
        NodeRow, Store, StoreError, Tenant, TenantScope,
        exec::{Exec, in_tenant},
    },
};

/// A push whose newest event is older than this says the node is lagging.
pub const LAGGING_AFTER_MS: i64 = 10 * 60 * 1000;
pub const NODE_STATUS: &str = "node.status";
pub const WATCH_KIND: &str = "nodes.watch";

/// What the cloud says of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Online,
    Lagging,
    Offline,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Lagging => "lagging",
            Status::Offline => "offline",
        }
    }
}

/// What a push says: lagging or online by its newest event's lag; a push without events says
/// online of a node offline or never heard from, and leaves online or lagging as they are.
pub fn after_push(previous: Option<Status>, lag_ms: Option<i64>) -> Option<Status> {
    let now = match lag_ms {
        Some(l) if l > LAGGING_AFTER_MS => Status::Lagging,
        Some(_) => Status::Online,
        None => match previous {
            Some(Status::Online | Status::Lagging) => return None,
            _ => Status::Online,
        },
    };
    (previous != Some(now)).then_some(now)
}

/// `node.status` on `site:<site id>`: the cloud now says `status` of the node.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct NodeStatusData {
    pub node_id: String,
    pub site_id: String,
    pub status: Status,
    /// When the cloud last heard from it (ms since the epoch).
    pub last_seen_ms: Option<i64>,
    /// How late its newest event arrived.
    pub lag_ms: Option<i64>,
}

fn message(d: &NodeStatusData) -> NewMessage {
    NewMessage {
        topic: format!("site:{}", d.site_id),
        kind: NODE_STATUS,
        data: serde_json::to_value(d).unwrap_or(serde_json::Value::Null),
    }
}

/// In a push's transaction: stores and returns the status change the push makes, if any.
pub(crate) async fn on_push(
    tx: &impl Exec,
    node: &NodeRow,
    lag_ms: Option<i64>,
    received_ms: i64,
) -> Result<Option<NewMessage>, StoreError> {
    let previous: Option<Option<String>> = tx
        .query_opt(
            "SELECT status FROM nodes WHERE tenant_id = $1 AND id = $2",
            &[&tx.tenant(), &node.id],
            |r| r.get(0),
        )
        .await?;
    let previous = previous.flatten().and_then(|s| parse(&s));
    let Some(now) = after_push(previous, lag_ms) else {
        return Ok(None);
    };
    tx.execute(
        "UPDATE nodes SET status = $3 WHERE tenant_id = $1 AND id = $2",
        &[&tx.tenant(), &node.id, &now.as_str()],
    )
    .await?;
    Ok(Some(message(&NodeStatusData {
        node_id: node.id.clone(),
        site_id: node.site_id.clone(),
        status: now,
        last_seen_ms: Some(received_ms),
        lag_ms,
    })))
}

fn parse(s: &str) -> Option<Status> {
    [Status::Online, Status::Lagging, Status::Offline]
        .into_iter()
        .find(|k| k.as_str() == s)
}

/// The arguments of `nodes.watch`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    /// A node not heard from for this long is offline (60 s to a day; 5 minutes by default).
    #[serde(default = "five_minutes")]
    #[schema(minimum = 60, maximum = 86400)]
    pub offline_after_s: u64,
}

fn five_minutes() -> u64 {
    300
}

/// Says offline of every node of every tenant not heard from for `offline_after_s`.
pub(crate) async fn watch(run: JobRun, w: Watch) -> Result<Done, Failed> {
    if !(60..=86_400).contains(&w.offline_after_s) {
        return Err(Failed::Discard("offline_after_s is 60-86400".into()));
    }
    let now = rollcall_service::clock::now_ms();
    let mut offline = 0;
    for scope in run.store.tenants().await?.iter().filter_map(Tenant::scope) {
        if run.stop.is_fired() {
            return Ok(Done::Snooze(std::time::Duration::ZERO));
        }
        offline += run
            .store
            .mark_offline(
                &scope,
                now,
                i64::try_from(w.offline_after_s * 1000).unwrap_or(i64::MAX),
            )
            .await?;
    }
    Ok(Done::Result(Some(json!({ "offline": offline }))))
}

impl Store {
    /// Says offline of the tenant's nodes last heard from `offline_after_ms` before `now_ms`
    /// (publishing each and notifying the admins); how many.
    pub async fn mark_offline(
        &self,
        scope: &TenantScope,
        now_ms: i64,
        offline_after_ms: i64,
    ) -> Result<usize, StoreError> {
        in_tenant!(internal self, scope, |tx| async move {
            type Gone = (String, String, Option<i64>, Option<i64>);
            let gone: Vec<Gone> = tx
                .query(
                    "UPDATE nodes SET status = 'offline'
                     WHERE tenant_id = $1 AND status IN ('online', 'lagging')
                       AND last_seen_ms < $2 AND revoked_ms IS NULL
                     RETURNING id, site_id, last_seen_ms, lag_ms",
                    &[&tx.tenant(), &(now_ms - offline_after_ms)],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .await?;
            let mut live = Vec::new();
            let mut notes = Vec::new();
            for (node_id, site_id, last_seen_ms, lag_ms) in &gone {
                live.push(message(&NodeStatusData {
                    node_id: node_id.clone(),
                    site_id: site_id.clone(),
                    status: Status::Offline,
                    last_seen_ms: *last_seen_ms,
                    lag_ms: *lag_ms,
                }));
                if let Some(kind) = kinds::kind(kinds::NODE_OFFLINE) {
                    let minutes = last_seen_ms.map(|s| (now_ms - s) / 60_000).unwrap_or(0);
                    notes.push(NewNotification {
                        kind,
                        title: format!("Node {node_id} at {site_id} is offline"),
                        body: format!(
                            "The cloud has not heard from node {node_id} (site {site_id}) for {minutes} minutes. \
                             The site keeps working offline; what it records arrives when it is back."
                        ),
                        data: json!({ "node_id": node_id, "site_id": site_id, "last_seen_ms": last_seen_ms }),
                    });
                }
            }
            live.extend(crate::server::notifications::inbox::notify(tx, &notes, now_ms).await?);
            crate::server::realtime::stream::publish(tx, &live).await?;
            Ok::<_, StoreError>(gone.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_push_says_online_or_lagging_and_only_when_it_changes() {
        use Status::*;
        assert_eq!(after_push(None, None), Some(Online));
        assert_eq!(after_push(Some(Offline), None), Some(Online));
        assert_eq!(after_push(Some(Online), None), None);
        assert_eq!(after_push(Some(Lagging), None), None);
        assert_eq!(
            after_push(Some(Online), Some(LAGGING_AFTER_MS + 1)),
            Some(Lagging)
        );
        assert_eq!(after_push(Some(Lagging), Some(5)), Some(Online));
        assert_eq!(
            after_push(Some(Offline), Some(LAGGING_AFTER_MS * 10)),
            Some(Lagging)
        );
    }

    proptest! {
        /// Whatever came before, a push never says offline, and says nothing twice in a row.
        #[test]
        fn a_push_never_says_offline_nor_repeats(
            previous in proptest::option::of(prop::sample::select(vec![Status::Online, Status::Lagging, Status::Offline])),
            lag in proptest::option::of(0i64..100_000_000),
        ) {
            if let Some(now) = after_push(previous, lag) {
                prop_assert_ne!(now, Status::Offline);
                prop_assert_ne!(Some(now), previous);
                prop_assert_eq!(after_push(Some(now), lag), None);
            }
        }
    }
}

#[cfg(test)]
mod store_tests {
    use crate::server::{
        nodes::status::NODE_STATUS,
        store::{
            Store, TenantScope,
            suite::{audit, both, postgres, sqlite, tenant_with_node},
            test_event,
        },
        users::store::{NewUser, Role},
    };
    use rollcall_service::clock::now_ms;

    /// The `node.status` values on the tenant's stream after `after`.
    async fn said(store: &Store, scope: &TenantScope, after: i64) -> Vec<String> {
        store
            .stream_after(scope, after, 100)
            .await
            .expect("stream")
            .into_iter()
            .filter(|m| m.kind == NODE_STATUS)
            .map(|m| m.data["status"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    both!(a_node_is_said_online_lagging_and_offline_once_each);
    async fn a_node_is_said_online_lagging_and_offline_once_each(store: Store) {
        let (acme, node) = tenant_with_node(&store, "acme", "n1").await;
        let ada = NewUser {
            id: "ada".into(),
            email: "ada@acme.example".into(),
            display_name: "Ada".into(),
            role: Role::Admin,
            password_hash: "x".into(),
        };
        store.create_user(&acme, ada, audit()).await.expect("user");
        let now = now_ms();
        let push = |n: u32, late_ms: i64| {
            let mut e = test_event(&format!("01HZZZZZZZZZZZZZZZZZZZ{n:04}"), u64::from(n), "hq");
            e.node_time_ms = now - late_ms;
            let (store, acme, node) = (store.clone(), acme.clone(), node.clone());
            async move {
                store
                    .ingest(&acme, &node, vec![e], audit())
                    .await
                    .expect("push")
            }
        };
        push(1, 0).await;
        push(2, 0).await;
        push(3, 11 * 60_000).await;
        push(4, 1000).await;
        assert_eq!(
            said(&store, &acme, 0).await,
            ["online", "lagging", "online"]
        );
        let head = store.stream_bounds(&acme).await.expect("bounds").head;
        // Not yet, then once.
        let five = 5 * 60_000;
        assert_eq!(
            store
                .mark_offline(&acme, now + 4 * 60_000, five)
                .await
                .expect("watch"),
            0
        );
        assert_eq!(
            store
                .mark_offline(&acme, now + 6 * 60_000, five)
                .await
                .expect("watch"),
            1
        );
        assert_eq!(
            store
                .mark_offline(&acme, now + 9 * 60_000, five)
                .await
                .expect("watch"),
            0
        );
        assert_eq!(said(&store, &acme, head).await, ["offline"]);
        // The admin hears of it; back online with the next push.
        let inbox = store
            .inbox(&acme, "ada", None, false, 10)
            .await
            .expect("inbox");
        assert_eq!(inbox.items.len(), 1);
        assert_eq!(inbox.items[0].kind, "node.offline");
        assert_eq!(inbox.items[0].data["node_id"], node.id.as_str());
        push(5, 0).await;
        assert_eq!(said(&store, &acme, head).await, ["offline", "online"]);
    }
}
