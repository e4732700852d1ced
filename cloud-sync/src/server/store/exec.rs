//! One executor over both drivers, so that a store method's SQL and body are written once.
//!
//! A body is a generic `async fn` over [`Exec`]; `in_tenant!` (or `in_platform!`, in `entry`) calls it once per
//! backend inside a tenant-scoped transaction (on PostgreSQL with row-level security set to the
//! tenant), appends the audit entry when the body changed something, and commits. SQL is written
//! in PostgreSQL's style (`$1`, `CAST(x AS TEXT)` rather than `x::text`); SQLite gets the same
//! text with `$N` turned into `?N` by [`sqlite_placeholders`], outside string literals, quoted
//! names and comments. Where the backends really differ (row locks, array fast paths, advisory
//! locks) a body matches on [`Exec::dialect`], or on [`Exec::postgres`] for a statement only
//! PostgreSQL can run (array parameters), with SQLite's way in the other arm.
//!
//! A statement that runs once per row of a batch (a push's lookups and inserts) is prepared
//! once with [`Exec::prepare`] and run with [`Exec::execute_prepared`] or
//! [`Exec::query_opt_prepared`], so its text is translated and looked up once per batch, not
//! once per row.
//!
//! SQLite is synchronous: its body runs on a blocking thread and is polled once by [`poll_now`]
//! — every SQLite operation here completes without waiting, so the body is done by then.

use std::{
    borrow::Cow,
    cell::RefCell,
    future::Future,
    pin::pin,
    task::{Context, Poll, Waker},
};

use crate::server::{
    audit::store::Audit,
    store::{StoreError, TenantScope},
};
use rollcall_service::clock::now_ms;

/// A parameter both drivers can bind.
pub(crate) trait Param: Sync {
    fn sqlite(&self) -> &dyn rusqlite::ToSql;
    fn postgres(&self) -> &(dyn tokio_postgres::types::ToSql + Sync);
}

impl<T: rusqlite::ToSql + tokio_postgres::types::ToSql + Sync> Param for T {
    fn sqlite(&self) -> &dyn rusqlite::ToSql {
        self
    }
    fn postgres(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        self
    }
}

/// A column type both drivers can read.
pub(crate) trait Column:
    rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>
{
}

impl<T> Column for T where T: rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a> {}

/// One row, of either driver.
pub(crate) enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r tokio_postgres::Row),
}

impl Row<'_> {
    /// Column `i` (from 0).
    pub(crate) fn get<T: Column>(&self, i: usize) -> Result<T, StoreError> {
        match self {
            Row::Sqlite(r) => Ok(r.get(i)?),
            Row::Postgres(r) => Ok(r.try_get(i)?),
        }
    }
}

/// Which database a body runs on, for the few places where the backends really differ (row
/// locks, array parameters, advisory locks): a body matches on it visibly, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// What a `SELECT` ends with to lock the rows it reads until commit: `FOR UPDATE` on
    /// PostgreSQL; nothing on SQLite, whose one writer already runs transactions one at a time.
    pub(crate) fn lock_rows(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// The same, passing over rows another transaction has locked (a queue's claim): `FOR
    /// UPDATE SKIP LOCKED` on PostgreSQL; nothing on SQLite.
    pub(crate) fn lock_free_rows(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// A tenant-scoped transaction on either backend.
pub(crate) trait Exec {
    /// The tenant this transaction is scoped to (the `tenant_id` of its rows).
    fn tenant(&self) -> i64;

    /// The database underneath.
    fn dialect(&self) -> Dialect;

    /// The PostgreSQL transaction underneath, for a statement only PostgreSQL can run (array
    /// parameters: `= ANY($1)`, `unnest`); `None` on SQLite, whose arm does it its own way.
    fn postgres(&self) -> Option<&PgTx<'_, '_>>;

    /// Runs one statement; the number of rows it changed.
    async fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<u64, StoreError>;

    /// Runs one query and reads each row with `read`.
    async fn query<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError>;

    /// The first row of a query, if any.
    async fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.query(sql, params, read).await?.into_iter().next())
    }

    /// A statement prepared by [`Exec::prepare`] for this transaction.
    type Prepared;

    /// Prepares one statement to run many times in this transaction (per row of a batch).
    async fn prepare(&self, sql: &str) -> Result<Self::Prepared, StoreError>;

    /// Runs a prepared statement; the number of rows it changed.
    async fn execute_prepared(
        &self,
        stmt: &Self::Prepared,
        params: &[&dyn Param],
    ) -> Result<u64, StoreError>;

    /// The first row of a prepared query, if any.
    async fn query_opt_prepared<T>(
        &self,
        stmt: &Self::Prepared,
        params: &[&dyn Param],
        read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError>;

    /// Tells the job workers that this transaction enqueued work, once it commits: on
    /// PostgreSQL a `pg_notify` (delivered at commit, to every replica); on SQLite a flag the
    /// transaction's runner reads after commit to wake the workers in process.
    async fn wake_workers(&self) -> Result<(), StoreError>;

    /// Tells the real-time hubs that this transaction wrote to its tenant's stream, once it
    /// commits: on PostgreSQL a `pg_notify` with the tenant's id (to every replica); on SQLite
    /// a flag the runner reads after commit to wake this process's hub.
    async fn published(&self) -> Result<(), StoreError>;

    /// Points row-level security at tenant `id` for the rest of the transaction (PostgreSQL;
    /// nothing to do on SQLite): for platform work that learns its tenant on the way.
    async fn enter_tenant(&self, id: i64) -> Result<(), StoreError>;

    /// Makes the tenant's writers of one numbered sequence (the people feed, card revocations)
    /// commit in turn, from here until this transaction ends, so numbers commit in order.
    async fn lock_sequence(&self, lock: i32) -> Result<(), StoreError> {
        match self.dialect() {
            // One writer: transactions already run one at a time.
            Dialect::Sqlite => Ok(()),
            Dialect::Postgres => {
                let key = i32::try_from(self.tenant()).unwrap_or(i32::MAX);
                self.query(
                    "SELECT pg_advisory_xact_lock($1, $2)",
                    &[&lock, &key],
                    |_| Ok(()),
                )
                .await?;
                Ok(())
            }
        }
    }

    /// Appends an audit entry for this transaction's tenant.
    async fn append_audit(&self, a: &Audit) -> Result<(), StoreError> {
        self.insert_audit(self.tenant(), a).await
    }

    /// Appends an audit entry to tenant `id`'s trail from platform work (a tenant just created
    /// or changed), entering that tenant first.
    async fn append_audit_for(&self, id: i64, a: &Audit) -> Result<(), StoreError> {
        self.enter_tenant(id).await?;
        self.insert_audit(id, a).await
    }

    /// The one statement both backends write an audit entry with.
    async fn insert_audit(&self, tenant: i64, a: &Audit) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO audit_log (tenant_id, at_ms, actor, action, target, source, request_id, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &tenant,
                &now_ms(),
                &a.actor,
                &a.action,
                &a.target,
                &a.source,
                &a.request_id,
                &crate::server::audit::store::detail_text(a),
            ],
        )
        .await?;
        Ok(())
    }
}

/// A SQLite transaction of one tenant.
pub(crate) struct SqliteTx<'c> {
    conn: &'c rusqlite::Connection,
    tenant: i64,
    woke: std::cell::Cell<bool>,
    published: std::cell::Cell<bool>,
}

impl<'c> SqliteTx<'c> {
    pub(crate) fn new(tx: &'c rusqlite::Transaction<'_>, scope: &TenantScope) -> Self {
        Self::on(tx, scope.id())
    }

    /// On a connection whose transaction the caller runs (platform work, outside any tenant).
    pub(crate) fn on(conn: &'c rusqlite::Connection, tenant: i64) -> Self {
        Self {
            conn,
            tenant,
            woke: std::cell::Cell::new(false),
            published: std::cell::Cell::new(false),
        }
    }

    /// Whether the body enqueued work ([`Exec::wake_workers`]).
    pub(crate) fn woke(&self) -> bool {
        self.woke.get()
    }

    /// Whether the body wrote to the tenant's stream ([`Exec::published`]).
    pub(crate) fn published_any(&self) -> bool {
        self.published.get()
    }
}

impl<'c> Exec for SqliteTx<'c> {
    fn tenant(&self) -> i64 {
        self.tenant
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn postgres(&self) -> Option<&PgTx<'_, '_>> {
        None
    }

    async fn enter_tenant(&self, _id: i64) -> Result<(), StoreError> {
        Ok(())
    }

    async fn wake_workers(&self) -> Result<(), StoreError> {
        self.woke.set(true);
        Ok(())
    }

    async fn published(&self) -> Result<(), StoreError> {
        self.published.set(true);
        Ok(())
    }

    type Prepared = RefCell<rusqlite::CachedStatement<'c>>;

    async fn prepare(&self, sql: &str) -> Result<Self::Prepared, StoreError> {
        Ok(RefCell::new(
            self.conn.prepare_cached(&sqlite_placeholders(sql))?,
        ))
    }

    async fn execute_prepared(
        &self,
        stmt: &Self::Prepared,
        params: &[&dyn Param],
    ) -> Result<u64, StoreError> {
        let n = stmt.borrow_mut().execute(rusqlite::params_from_iter(
            params.iter().map(|p| p.sqlite()),
        ))?;
        Ok(n as u64)
    }

    async fn query_opt_prepared<T>(
        &self,
        stmt: &Self::Prepared,
        params: &[&dyn Param],
        mut read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut stmt = stmt.borrow_mut();
        let mut rows = stmt.query(rusqlite::params_from_iter(
            params.iter().map(|p| p.sqlite()),
        ))?;
        match rows.next()? {
            Some(row) => Ok(Some(read(&Row::Sqlite(row))?)),
            None => Ok(None),
        }
    }

    async fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<u64, StoreError> {
        self.execute_prepared(&self.prepare(sql).await?, params)
            .await
    }

    async fn query<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&sqlite_placeholders(sql))?;
        let mut rows = stmt.query(rusqlite::params_from_iter(
            params.iter().map(|p| p.sqlite()),
        ))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(read(&Row::Sqlite(row))?);
        }
        Ok(out)
    }
}

/// A PostgreSQL transaction whose row-level security sees one tenant.
pub(crate) struct PgTx<'r, 't> {
    tx: &'r deadpool_postgres::Transaction<'t>,
    tenant: i64,
    /// Whether this transaction already sent its `pg_notify` (once is enough).
    notified: std::sync::atomic::AtomicBool,
    /// The same for the stream's notification.
    published: std::sync::atomic::AtomicBool,
}

impl<'r, 't> PgTx<'r, 't> {
    pub(crate) fn new(tx: &'r deadpool_postgres::Transaction<'t>, scope: &TenantScope) -> Self {
        Self::on(tx, scope.id())
    }

    /// In a transaction the caller scoped to `tenant` (0: platform work, outside any tenant).
    pub(crate) fn on(tx: &'r deadpool_postgres::Transaction<'t>, tenant: i64) -> Self {
        Self {
            tx,
            tenant,
            notified: std::sync::atomic::AtomicBool::new(false),
            published: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl PgTx<'_, '_> {
    /// Runs statements without parameters as one simple query (`SAVEPOINT …`).
    pub(crate) async fn batch(&self, sql: &str) -> Result<(), StoreError> {
        Ok(self.tx.batch_execute(sql).await?)
    }

    /// Runs one statement with PostgreSQL's own parameters (arrays among them).
    pub(crate) async fn execute_native(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let stmt = self.tx.prepare_cached(sql).await?;
        Ok(self.tx.execute(&stmt, params).await?)
    }

    /// Runs one query with PostgreSQL's own parameters and reads each row with `read`.
    pub(crate) async fn query_native<T>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        mut read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let stmt = self.tx.prepare_cached(sql).await?;
        let rows = self.tx.query(&stmt, params).await?;
        rows.iter().map(|r| read(&Row::Postgres(r))).collect()
    }
}

impl Exec for PgTx<'_, '_> {
    fn tenant(&self) -> i64 {
        self.tenant
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn postgres(&self) -> Option<&PgTx<'_, '_>> {
        Some(self)
    }

    async fn enter_tenant(&self, id: i64) -> Result<(), StoreError> {
        crate::server::store::postgres::enter_tenant(self.tx, id).await
    }

    async fn wake_workers(&self) -> Result<(), StoreError> {
        if self
            .notified
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(());
        }
        self.execute(
            "SELECT pg_notify($1, '')",
            &[&crate::server::jobs::wake::CHANNEL],
        )
        .await
        .map(drop)
    }

    async fn published(&self) -> Result<(), StoreError> {
        if self
            .published
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(());
        }
        self.execute(
            "SELECT pg_notify($1, CAST(CAST($2 AS BIGINT) AS TEXT))",
            &[&crate::server::realtime::wake::CHANNEL, &self.tenant],
        )
        .await
        .map(drop)
    }

    type Prepared = tokio_postgres::Statement;

    async fn prepare(&self, sql: &str) -> Result<Self::Prepared, StoreError> {
        Ok(self.tx.prepare_cached(sql).await?)
    }

    async fn execute_prepared(
        &self,
        stmt: &Self::Prepared,
        params: &[&dyn Param],
    ) -> Result<u64, StoreError> {
        let params: Vec<_> = params.iter().map(|p| p.postgres()).collect();
        Ok(self.tx.execute(stmt, &params).await?)
    }

    async fn query_opt_prepared<T>(
        &self,
        stmt: &Self::Prepared,
        params: &[&dyn Param],
        mut read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let params: Vec<_> = params.iter().map(|p| p.postgres()).collect();
        let row = self.tx.query_opt(stmt, &params).await?;
        row.as_ref().map(|r| read(&Row::Postgres(r))).transpose()
    }

    async fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<u64, StoreError> {
        self.execute_prepared(&self.prepare(sql).await?, params)
            .await
    }

    async fn query<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let stmt = self.tx.prepare_cached(sql).await?;
        let params: Vec<_> = params.iter().map(|p| p.postgres()).collect();
        let rows = self.tx.query(&stmt, &params).await?;
        rows.iter().map(|r| read(&Row::Postgres(r))).collect()
    }
}

pub(crate) use super::entry::{in_platform, in_tenant};

/// What a write body returns says whether it changed anything, and so whether its audit entry
/// is appended (a `PATCH` of nothing, a `DELETE` of nothing leave no trace).
pub(crate) trait Outcome {
    fn changed(&self) -> bool;
}

/// Marks what a body returns only once it wrote something (a row made, a serial taken): its
/// audit entry is always appended.
macro_rules! always_changed {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::server::store::exec::Outcome for $t {
            fn changed(&self) -> bool {
                true
            }
        }
    )+};
}
pub(crate) use always_changed;

impl Outcome for bool {
    fn changed(&self) -> bool {
        *self
    }
}

/// A count of rows changed.
impl Outcome for u64 {
    fn changed(&self) -> bool {
        *self > 0
    }
}

impl<T> Outcome for Option<T> {
    fn changed(&self) -> bool {
        self.is_some()
    }
}

impl Outcome for () {
    fn changed(&self) -> bool {
        true
    }
}

/// Runs a SQLite body to its end on the calling (blocking) thread. Its operations never wait,
/// so one poll finishes it; a body that awaited anything else is a programming error, reported
/// as such rather than left hanging.
pub(crate) fn poll_now<T>(
    body: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let mut body = pin!(body);
    match body.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => Err(StoreError::Task(
            "a SQLite store body waited on something other than its database".into(),
        )),
    }
}

/// PostgreSQL's `$N` placeholders as SQLite's `?N`, leaving alone what is inside string
/// literals (`'…'`, `''` escapes), quoted names (`"…"`), comments (`-- …`, `/* … */`) and
/// anything that is not `$` followed by a digit.
pub(crate) fn sqlite_placeholders(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"') => {
                // To the closing quote; a doubled quote is an escape and stays inside.
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'$' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                out.push_str(&sql[copied..i]);
                out.push('?');
                i += 1;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn placeholders_become_numbered_question_marks() {
        assert_eq!(
            sqlite_placeholders("UPDATE t SET a = $2 WHERE id = $1 AND b = $10"),
            "UPDATE t SET a = ?2 WHERE id = ?1 AND b = ?10"
        );
        assert!(matches!(
            sqlite_placeholders("SELECT 1"),
            Cow::Borrowed("SELECT 1")
        ));
    }

    #[test]
    fn a_dollar_inside_a_literal_a_name_or_a_comment_is_left_alone() {
        assert_eq!(
            sqlite_placeholders("SELECT '$1', 'it''s $2', \"col$3\", $4 -- $5\n, $6 /* $7 */ $8"),
            "SELECT '$1', 'it''s $2', \"col$3\", ?4 -- $5\n, ?6 /* $7 */ ?8"
        );
        assert_eq!(
            sqlite_placeholders("SELECT $ , $x, $$"),
            "SELECT $ , $x, $$"
        );
        // An unterminated literal or comment ends the scan without a panic.
        assert_eq!(
            sqlite_placeholders("SELECT $1, 'open $2"),
            "SELECT ?1, 'open $2"
        );
        assert_eq!(sqlite_placeholders("SELECT $1 /* $2"), "SELECT ?1 /* $2");
    }

    proptest! {
        /// Only the `$` of placeholders change: the text is otherwise the same, byte for byte.
        #[test]
        fn only_placeholder_dollars_change(sql in "[a-z0-9 $'\"*/\n-]{0,60}") {
            let out = sqlite_placeholders(&sql);
            prop_assert_eq!(out.len(), sql.len());
            for (a, b) in sql.bytes().zip(out.bytes()) {
                prop_assert!(a == b || (a == b'$' && b == b'?'));
            }
        }

        /// Outside quotes and comments, every `$N` is translated.
        #[test]
        fn plain_placeholders_all_translate(ns in proptest::collection::vec(1u32..50, 0..8)) {
            let sql: String = ns.iter().map(|n| format!("a = ${n} AND ")).collect();
            let out = sqlite_placeholders(&sql);
            prop_assert!(!out.contains('$'));
            prop_assert_eq!(out.matches('?').count(), ns.len());
        }
    }

    #[test]
    fn a_body_that_waits_on_something_else_is_an_error_not_a_hang() {
        let err = poll_now(async {
            std::future::pending::<()>().await;
            Ok(())
        })
        .expect_err("pending");
        assert!(
            err.to_string().contains("waited on something other"),
            "{err}"
        );
        assert_eq!(poll_now(async { Ok(7) }).expect("ready"), 7);
    }
}
