//! The cloud's PostgreSQL backend: a connection pool, migrations at start-up under an advisory
//! lock (several replicas may start at once), and row-level security on every tenant-owned table.
//! Each transaction that touches tenant rows first sets `rollcall.tenant_id` (transaction-local),
//! and the policies compare every row's `tenant_id` with it; the server refuses to run as a
//! role that could bypass them.

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Transaction};
use tokio_postgres::NoTls;

use crate::server::store::{
    StoreError, TenantScope,
    schema::{POSTGRES, PROTECT_TENANT_TABLES, TENANT_TABLES, tenant_tables_array},
};
use rollcall_service::clock::now_ms;

/// Serialises migrations between replicas that start together.
const MIGRATION_LOCK: i64 = 0x726f_6c6c_6361_6c6c; // "rollcall"

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// How to reach the database (the job workers' `LISTEN` connection uses it).
    pub(crate) config: std::sync::Arc<tokio_postgres::Config>,
    /// Counts the `rollcall_jobs` notifications: the workers of this process watch it.
    pub(crate) wake: crate::server::jobs::wake::Wake,
    /// The tenants whose stream got new messages: this process's real-time hub watches it.
    pub(crate) stream: crate::server::realtime::wake::StreamWake,
}

fn pool_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Pool(e.to_string())
}

impl PgStore {
    pub async fn open(url: &str, migrate_url: Option<&str>) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url.parse()?;
        let app_role = config.get_user().map(str::to_owned);
        if let Some(migrate_url) = migrate_url {
            let (mut client, conn) = tokio_postgres::connect(migrate_url, NoTls).await?;
            let driver = tokio::spawn(conn);
            let result = migrate(&mut client, app_role.as_deref()).await;
            drop(client);
            let _ = driver.await;
            result?;
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .build()
            .map_err(pool_err)?;
        let store = Self {
            pool,
            config: std::sync::Arc::new(config),
            wake: crate::server::jobs::wake::new_wake(),
            stream: crate::server::realtime::wake::StreamWake::default(),
        };
        let mut client = store.client().await?;
        let row = client
            .query_one(
                "SELECT current_user::text, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .await?;
        if row.get::<_, bool>(1) {
            return Err(StoreError::BypassesRls { role: row.get(0) });
        }
        if migrate_url.is_none() {
            migrate(&mut client, None).await?;
        }
        for table in TENANT_TABLES {
            let protected: bool = client
                .query_one(
                    "SELECT coalesce((SELECT c.relrowsecurity AND c.relforcerowsecurity
                                        AND EXISTS (SELECT 1 FROM pg_policies p
                                                    WHERE p.schemaname = n.nspname AND p.tablename = c.relname)
                                      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                      WHERE c.relname = $1 AND n.nspname = current_schema()), false)",
                    &[table],
                )
                .await?
                .get(0);
            if !protected {
                return Err(StoreError::Unprotected {
                    table: (*table).to_owned(),
                });
            }
        }
        Ok(store)
    }

    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_err)
    }
}

/// Points the transaction's row-level security at one tenant.
pub(crate) async fn enter_tenant(tx: &Transaction<'_>, tenant_id: i64) -> Result<(), StoreError> {
    let set = tx
        .prepare_cached("SELECT set_config('rollcall.tenant_id', $1, true)")
        .await?;
    tx.execute(&set, &[&tenant_id.to_string()]).await?;
    Ok(())
}

/// A transaction whose row-level security sees only `scope`'s rows.
pub(crate) async fn scoped<'a>(
    client: &'a mut Object,
    scope: &TenantScope,
) -> Result<Transaction<'a>, StoreError> {
    let tx = client.transaction().await?;
    enter_tenant(&tx, scope.id()).await?;
    Ok(tx)
}

/// Brings the schema up to date in one transaction, under an advisory lock; grants the app role
/// (when it is not the one migrating) what it needs on the tables.
async fn migrate(
    client: &mut tokio_postgres::Client,
    grant_to: Option<&str>,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS rollcall_schema (version INT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
    )
    .await?;
    let version: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM rollcall_schema", &[])
        .await?
        .get(0);
    if version as usize > POSTGRES.sql.len() {
        return Err(StoreError::TooNew {
            found: version,
            known: POSTGRES.sql.len(),
        });
    }
    for (i, sql) in POSTGRES
        .sql
        .iter()
        .enumerate()
        .skip(version.max(0) as usize)
    {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO rollcall_schema (version, applied_ms) VALUES ($1, $2)",
            &[&(i as i32 + 1), &now_ms()],
        )
        .await?;
        tracing::info!(version = i + 1, "PostgreSQL schema migrated");
    }
    if (version.max(0) as usize) < POSTGRES.sql.len() {
        tx.execute(
            "SELECT set_config('rollcall.tenant_tables', $1, true)",
            &[&tenant_tables_array()],
        )
        .await?;
        tx.batch_execute(PROTECT_TENANT_TABLES).await?;
    }
    if let Some(role) = grant_to {
        let current: String = tx.query_one("SELECT current_user::text", &[]).await?.get(0);
        if current != role {
            let role = quote_ident(role);
            tx.batch_execute(&format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
                 GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};"
            ))
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// A PostgreSQL identifier, quoted.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
