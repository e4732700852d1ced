//! The entry points of store bodies: `in_tenant!` and `in_platform!` run a body over
//! [`super::exec::Exec`] in a transaction on whichever backend the store is, and commit.

/// The one entry point of a store body: runs it in a transaction of the tenant `$scope` on
/// whichever backend `$store` is (on PostgreSQL with row-level security set to the tenant),
/// appends the audit entry `$audit` when the body's [`Outcome`] changed something, and commits;
/// an error rolls everything back. `$body` is a future using `$tx: &impl Exec`, usually a call
/// of a generic `async fn`: it is compiled once per backend. On SQLite it runs on a blocking
/// thread, so what it uses must be owned (it is moved there).
///
/// `in_tenant!(read store, scope, |tx| body)` is the same without an audit entry, on one of
/// SQLite's read connections (it sees the last commit and never waits for the writer; a
/// write there fails); `in_tenant!(internal store, scope, |tx| body)` a write that is not an
/// act to audit (a key made on first use).
macro_rules! in_tenant {
    (read $store:expr, $scope:expr, |$tx:ident| $body:expr) => {
        $crate::server::store::exec::in_tenant!(
            @run on_reader, $store, $scope, None, |$tx| $body, |_| false
        )
    };
    (internal $store:expr, $scope:expr, |$tx:ident| $body:expr) => {
        $crate::server::store::exec::in_tenant!(
            @run on_writer, $store, $scope, None, |$tx| $body, |_| false
        )
    };
    (write $store:expr, $scope:expr, $audit:expr, |$tx:ident| $body:expr) => {
        $crate::server::store::exec::in_tenant!(
            @run on_writer, $store, $scope, Some($audit), |$tx| $body,
            $crate::server::store::exec::Outcome::changed
        )
    };
    (@run $via:ident, $store:expr, $scope:expr, $audit:expr, |$tx:ident| $body:expr, $changed:expr) => {{
        use crate::server::store::exec::Exec as _;
        let scope: &$crate::server::store::TenantScope = $scope;
        let audit: Option<$crate::server::audit::store::Audit> = $audit;
        match $store {
            $crate::server::store::Store::Sqlite(s) => {
                let scope = scope.clone();
                let wake = s.wake.clone();
                let stream = s.stream.clone();
                s.$via(move |conn| {
                    let tx = conn.transaction()?;
                    let (out, woke, published) = {
                        let $tx = &$crate::server::store::exec::SqliteTx::new(&tx, &scope);
                        let out = $crate::server::store::exec::poll_now(async { $body.await })?;
                        (out, $tx.woke(), $tx.published_any())
                    };
                    if let Some(a) = audit.as_ref().filter(|_| $changed(&out)) {
                        let t = $crate::server::store::exec::SqliteTx::new(&tx, &scope);
                        $crate::server::store::exec::poll_now(t.append_audit(a))?;
                    }
                    tx.commit()?;
                    if woke {
                        $crate::server::jobs::wake::poke(&wake);
                    }
                    if published {
                        stream.mark(scope.id());
                    }
                    Ok(out)
                })
                .await
            }
            $crate::server::store::Store::Postgres(p) => {
                async {
                    let mut client = p.client().await?;
                    let tx = $crate::server::store::postgres::scoped(&mut client, scope).await?;
                    let out = {
                        let $tx = &$crate::server::store::exec::PgTx::new(&tx, scope);
                        $body.await?
                    };
                    if let Some(a) = audit.as_ref().filter(|_| $changed(&out)) {
                        $crate::server::store::exec::PgTx::new(&tx, scope)
                            .append_audit(a)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok::<_, $crate::server::store::StoreError>(out)
                }
                .await
            }
        }
    }};
}
pub(crate) use in_tenant;

/// Platform work, outside any tenant (the tenants table itself): runs `$body` in a plain
/// transaction on whichever backend `$store` is and commits. `$tx.tenant()` is 0 there; a body
/// that writes a tenant's audit trail enters it with [`Exec::append_audit_for`].
macro_rules! in_platform {
    ($store:expr, |$tx:ident| $body:expr) => {{
        #[allow(unused_imports)]
        use crate::server::store::exec::Exec as _;
        match $store {
            $crate::server::store::Store::Sqlite(s) => {
                let wake = s.wake.clone();
                s.on_writer(move |conn| {
                    let tx = conn.transaction()?;
                    let (out, woke) = {
                        let $tx = &$crate::server::store::exec::SqliteTx::on(&tx, 0);
                        let out = $crate::server::store::exec::poll_now(async { $body.await })?;
                        (out, $tx.woke())
                    };
                    tx.commit()?;
                    if woke {
                        $crate::server::jobs::wake::poke(&wake);
                    }
                    Ok(out)
                })
                .await
            }
            $crate::server::store::Store::Postgres(p) => {
                async {
                    let mut client = p.client().await?;
                    let tx = client.transaction().await?;
                    let out = {
                        let $tx = &$crate::server::store::exec::PgTx::on(&tx, 0);
                        $body.await?
                    };
                    tx.commit().await?;
                    Ok::<_, $crate::server::store::StoreError>(out)
                }
                .await
            }
        }
    }};
}
pub(crate) use in_platform;
