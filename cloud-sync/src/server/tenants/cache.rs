//! Every authenticated request resolves its tenant; this keeps the answer for two seconds so a
//! busy server does not ask the database each time. This replica forgets a tenant the moment it
//! changes it (create, rename, suspend, CORS list); another replica's change is seen within the
//! time-to-live. Bounded: a flood of made-up slugs empties it rather than growing it.

use parking_lot::Mutex;
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::server::store::{Store, StoreError, Tenant};

pub const TTL: Duration = Duration::from_secs(2);
const MAX_ENTRIES: usize = 10_000;

pub struct TenantCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Option<Tenant>)>>,
}

impl TenantCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant named `slug` (or that there is none), at most [`TTL`] old.
    pub async fn get(&self, store: &Store, slug: &str) -> Result<Option<Tenant>, StoreError> {
        {
            let entries = self.entries.lock();
            if let Some((at, tenant)) = entries.get(slug)
                && at.elapsed() < self.ttl
            {
                return Ok(tenant.clone());
            }
        }
        let tenant = store.tenant(slug).await?;
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(slug.to_owned(), (Instant::now(), tenant.clone()));
        Ok(tenant)
    }

    /// Drops what is known of `slug` (after this replica changed it).
    pub fn forget(&self, slug: &str) {
        self.entries.lock().remove(slug);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{
        audit::store::Audit,
        store::{Backend, TenantStatus},
    };

    fn audit() -> Audit {
        Audit {
            actor: "test".into(),
            action: "tenant.update",
            target: None,
            source: None,
            request_id: "r".into(),
            detail: serde_json::Value::Null,
        }
    }

    #[tokio::test]
    async fn answers_from_memory_until_told_or_expired() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&Backend::Sqlite(dir.path().join("c.sqlite")))
            .await
            .expect("open");
        store.ensure_tenant("acme", "Acme").await.expect("tenant");
        let cache = TenantCache::new(Duration::from_millis(200));
        let status = |t: Option<Tenant>| t.map(|t| t.status);
        assert_eq!(
            status(cache.get(&store, "acme").await.expect("get")),
            Some(TenantStatus::Active)
        );
        assert_eq!(
            cache
                .get(&store, "nope")
                .await
                .expect("get")
                .map(|t| t.slug),
            None
        );
        store
            .update_tenant("acme", None, Some(TenantStatus::Suspended), audit())
            .await
            .expect("suspend");
        // Changed behind the cache's back: still the remembered answer…
        assert_eq!(
            status(cache.get(&store, "acme").await.expect("get")),
            Some(TenantStatus::Active)
        );
        // …until this replica forgets it,
        cache.forget("acme");
        assert_eq!(
            status(cache.get(&store, "acme").await.expect("get")),
            Some(TenantStatus::Suspended)
        );
        // or the time-to-live has passed.
        store
            .update_tenant("acme", None, Some(TenantStatus::Active), audit())
            .await
            .expect("resume");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            status(cache.get(&store, "acme").await.expect("get")),
            Some(TenantStatus::Active)
        );
    }
}
