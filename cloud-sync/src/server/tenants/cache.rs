//! Every authenticated request resolves its tenant, and every job attempt its job's; this keeps
//! the answer for two seconds so a busy server does not ask the database each time. This
//! replica forgets a tenant the moment it changes it (create, rename, suspend, CORS list);
//! another replica's change is seen within the time-to-live. Bounded: a flood of made-up slugs
//! empties it rather than growing it.

use parking_lot::Mutex;
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::server::store::{Store, StoreError, Tenant};

pub const TTL: Duration = Duration::from_secs(2);
const MAX_ENTRIES: usize = 10_000;

/// A tenant is looked up by slug (requests) or by id (jobs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Slug(String),
    Id(i64),
}

pub struct TenantCache {
    ttl: Duration,
    entries: Mutex<HashMap<Key, (Instant, Option<Tenant>)>>,
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
        self.lookup(Key::Slug(slug.to_owned()), store.tenant(slug))
            .await
    }

    /// The tenant with id `id` (or that there is none), at most [`TTL`] old.
    pub async fn get_by_id(&self, store: &Store, id: i64) -> Result<Option<Tenant>, StoreError> {
        self.lookup(Key::Id(id), store.tenant_by_id(id)).await
    }

    async fn lookup(
        &self,
        key: Key,
        read: impl Future<Output = Result<Option<Tenant>, StoreError>>,
    ) -> Result<Option<Tenant>, StoreError> {
        {
            let entries = self.entries.lock();
            if let Some((at, tenant)) = entries.get(&key)
                && at.elapsed() < self.ttl
            {
                return Ok(tenant.clone());
            }
        }
        let tenant = read.await?;
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), tenant.clone()));
        Ok(tenant)
    }

    /// Drops what is known of `slug`, under its name and its id (after this replica changed it).
    pub fn forget(&self, slug: &str) {
        self.entries.lock().retain(|key, (_, tenant)| {
            !matches!(key, Key::Slug(s) if s == slug)
                && tenant.as_ref().is_none_or(|t| t.slug != slug)
        });
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
        let id = cache
            .get(&store, "acme")
            .await
            .expect("get")
            .map(|t| t.id)
            .expect("acme");
        assert_eq!(
            status(cache.get_by_id(&store, id).await.expect("by id")),
            Some(TenantStatus::Suspended),
            "not yet asked by id"
        );
        store
            .update_tenant("acme", None, Some(TenantStatus::Active), audit())
            .await
            .expect("resume");
        assert_eq!(
            status(cache.get_by_id(&store, id).await.expect("by id")),
            Some(TenantStatus::Suspended),
            "remembered by id"
        );
        // …until this replica forgets it, by name and by id,
        cache.forget("acme");
        assert_eq!(
            status(cache.get(&store, "acme").await.expect("get")),
            Some(TenantStatus::Active)
        );
        assert_eq!(
            status(cache.get_by_id(&store, id).await.expect("by id")),
            Some(TenantStatus::Active)
        );
        // or the time-to-live has passed.
        store
            .update_tenant("acme", None, Some(TenantStatus::Suspended), audit())
            .await
            .expect("suspend");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            status(cache.get(&store, "acme").await.expect("get")),
            Some(TenantStatus::Suspended)
        );
        assert_eq!(
            status(cache.get_by_id(&store, id).await.expect("by id")),
            Some(TenantStatus::Suspended)
        );
    }
}
