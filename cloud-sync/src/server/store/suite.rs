//! One test suite, run against both backends: each `both!(name)` is a test on a fresh SQLite
//! file and one on a fresh PostgreSQL database. PostgreSQL-only checks (row-level security,
//! roles, concurrent migration) follow.

use super::{test_event as event, *};
use crate::server::{
    attendance::query::{self as events_query, Cursor, EventFilter, PageStart, Sort},
    audit::store as audit,
    auth::session_store as sessions,
    http::idempotency_keys as idempotency,
    people::{shifts, store as people, templates},
    records::store as records,
    users::store as users,
};
use crate::server::{
    nodes::store::{NODE_OF_ANOTHER_SITE, UNKNOWN_NODE},
    people::store::{
        NOT_ASSIGNED, PERSON_ERASED, PERSON_EXISTS, PERSON_INACTIVE, SHIFT_OVERLAP,
        TOO_MANY_TEMPLATES, UNKNOWN_PERSON, UNKNOWN_SITE,
    },
    sites::store::SITE_IN_USE,
    tenants::store::TENANT_EXISTS,
    users::store::EMAIL_TAKEN,
};
use rollcall_protocol::wire::PushBatch;
use rollcall_service::problem::ProblemType;

/// Whether `r` is a domain's refusal of the problem type `kind` (and not another, nor a
/// database failure).
pub(crate) fn refused<T>(r: &Result<T, StoreError>, kind: &ProblemType) -> bool {
    matches!(r, Err(StoreError::Refused(e)) if e.problem_type() == kind)
}
use rollcall_tests::scratch::{self, ScratchDatabase};

pub(crate) enum Keep {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Db(#[allow(dead_code)] ScratchDatabase),
}

pub(crate) async fn sqlite() -> (Store, Keep) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&Backend::Sqlite(dir.path().join("c.sqlite")))
        .await
        .expect("open sqlite");
    (store, Keep::Dir(dir))
}

pub(crate) async fn postgres() -> (Store, Keep) {
    let db = ScratchDatabase::create()
        .await
        .expect("a scratch PostgreSQL database (is PostgreSQL running on 127.0.0.1:5432?)");
    let store = Store::open(&Backend::Postgres {
        url: db.url.clone(),
        migrate_url: None,
    })
    .await
    .expect("open postgres");
    (store, Keep::Db(db))
}

/// Another handle on the database `keep` holds: a second replica.
pub(crate) async fn reopen(keep: &Keep) -> Store {
    let backend = match keep {
        Keep::Dir(dir) => Backend::Sqlite(dir.path().join("c.sqlite")),
        Keep::Db(db) => Backend::Postgres {
            url: db.url.clone(),
            migrate_url: None,
        },
    };
    Store::open(&backend).await.expect("reopen the store")
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (store, _keep) = super::sqlite().await;
                super::$name(store).await;
            }
            #[tokio::test]
            async fn postgres() {
                let (store, _keep) = super::postgres().await;
                super::$name(store).await;
            }
        }
    };
}
pub(crate) use both;

macro_rules! both_with_keep {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (store, keep) = super::sqlite().await;
                super::$name(store, keep).await;
            }
            #[tokio::test]
            async fn postgres() {
                let (store, keep) = super::postgres().await;
                super::$name(store, keep).await;
            }
        }
    };
}
pub(crate) use both_with_keep;

pub(crate) fn audit() -> audit::Audit {
    audit::Audit {
        actor: "test".into(),
        action: "test.write",
        target: None,
        source: Some("127.0.0.1".into()),
        request_id: "req-test".into(),
        detail: serde_json::json!({ "n": 1 }),
    }
}

const A: &str = "01HZZZZZZZZZZZZZZZZZZZZZZA";
const B: &str = "01HZZZZZZZZZZZZZZZZZZZZZZB";
const C: &str = "01HZZZZZZZZZZZZZZZZZZZZZZC";

pub(crate) async fn tenant_with_node(
    store: &Store,
    slug: &str,
    token: &str,
) -> (TenantScope, NodeRow) {
    let scope = store
        .ensure_tenant(slug, slug)
        .await
        .expect("tenant")
        .scope()
        .expect("active");
    store
        .register_node(&scope, &format!("{slug}-n1"), "hq", token, audit())
        .await
        .expect("node");
    let node = store
        .node_by_token_hash(&scope, token)
        .await
        .expect("query")
        .expect("found");
    (scope, node)
}

both!(ingest_is_idempotent_and_rejects_without_blocking);
async fn ingest_is_idempotent_and_rejects_without_blocking(store: Store) {
    let (scope, node) = tenant_with_node(&store, "acme", "h1").await;
    let ack = store
        .ingest(
            &scope,
            &node,
            vec![
                event(A, 1, "hq"),
                event("bad", 2, "hq"),
                event(B, 3, "other"),
                event(C, 4, "hq"),
            ],
            audit(),
        )
        .await
        .expect("ingest");
    assert_eq!(ack.accepted, [A, C]);
    assert_eq!(ack.rejected.len(), 2);
    assert!(ack.rejected[0].reason.starts_with("invalid_id"));
    assert!(ack.rejected[1].reason.starts_with("site_mismatch"));
    let again = store
        .ingest(&scope, &node, vec![event(A, 1, "hq")], audit())
        .await
        .expect("ingest");
    assert_eq!(again.duplicate, [A]);
    let clash = store
        .ingest(&scope, &node, vec![event(B, 1, "hq")], audit())
        .await
        .expect("ingest");
    assert!(clash.rejected[0].reason.starts_with("sequence_conflict"));
    let stored = store
        .events(
            &scope,
            EventFilter {
                site_id: Some("hq".into()),
                ..EventFilter::default()
            },
            PageStart::Offset(0),
            10,
        )
        .await
        .expect("list");
    let ids: Vec<_> = stored.iter().map(|s| s.event.id.as_str()).collect();
    assert_eq!(ids, [C, A]);
    assert_eq!(stored[1].event, event(A, 1, "hq"), "stored as pushed");
    assert_eq!(stored[1].node_id, node.id);
}

both!(each_tenant_keeps_one_signing_key_and_serials_only_grow);
async fn each_tenant_keeps_one_signing_key_and_serials_only_grow(store: Store) {
    let (acme, _) = tenant_with_node(&store, "acme", "h1").await;
    let key = store.signing_secret(&acme).await.expect("key");
    assert_eq!(store.signing_secret(&acme).await.expect("key"), key, "kept");
    let other = store
        .ensure_tenant("globex", "Globex")
        .await
        .expect("tenant")
        .scope()
        .expect("active");
    assert_ne!(store.signing_secret(&other).await.expect("key"), key);
    let mut serials = Vec::new();
    for _ in 0..3 {
        serials.push(
            store
                .next_bundle_serial(&acme, "hq", audit())
                .await
                .expect("serial"),
        );
    }
    assert_eq!(serials, [1, 2, 3]);
    assert_eq!(
        store
            .next_bundle_serial(&acme, "depot", audit())
            .await
            .expect("serial"),
        1
    );
    assert_eq!(
        store
            .next_bundle_serial(&other, "hq", audit())
            .await
            .expect("serial"),
        1
    );
}

both!(tenants_do_not_see_each_other);
async fn tenants_do_not_see_each_other(store: Store) {
    let (acme, acme_node) = tenant_with_node(&store, "acme", "h1").await;
    let (globex, globex_node) = tenant_with_node(&store, "globex", "h2").await;
    store
        .ingest(&acme, &acme_node, vec![event(A, 1, "hq")], audit())
        .await
        .expect("ingest");
    assert!(
        store
            .events(&globex, EventFilter::default(), PageStart::Offset(0), 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        store
            .events(&acme, EventFilter::default(), PageStart::Offset(0), 10)
            .await
            .expect("list")
            .len(),
        1
    );
    // A node's token is looked up within its own tenant only.
    assert!(
        store
            .node_by_token_hash(&globex, "h1")
            .await
            .expect("q")
            .is_none()
    );
    // The same event id in another tenant is another event, not a duplicate or a conflict.
    let ack = store
        .ingest(&globex, &globex_node, vec![event(A, 1, "hq")], audit())
        .await
        .expect("ingest");
    assert_eq!(ack.accepted, [A]);
    assert_eq!(
        store
            .events(&acme, EventFilter::default(), PageStart::Offset(0), 10)
            .await
            .expect("list")
            .len(),
        1
    );
}

both!(tenants_are_created_listed_and_suspended);
async fn tenants_are_created_listed_and_suspended(store: Store) {
    let acme = store
        .create_tenant("acme", "Acme Security", audit())
        .await
        .expect("create");
    assert_eq!(
        (acme.slug.as_str(), acme.status),
        ("acme", TenantStatus::Active)
    );
    let again = store.create_tenant("acme", "Other", audit()).await;
    assert!(refused(&again, &TENANT_EXISTS), "{again:?}");
    store
        .create_tenant("beta", "Beta", audit())
        .await
        .expect("create");
    let slugs: Vec<_> = store
        .tenants()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.slug)
        .collect();
    assert_eq!(slugs, ["acme", "beta"]);
    let suspended = store
        .update_tenant("acme", None, Some(TenantStatus::Suspended), audit())
        .await
        .expect("update")
        .expect("found");
    assert_eq!(suspended.name, "Acme Security", "name unchanged");
    assert!(suspended.scope().is_none(), "no scope while suspended");
    let renamed = store
        .update_tenant(
            "acme",
            Some("Acme".into()),
            Some(TenantStatus::Active),
            audit(),
        )
        .await
        .expect("update")
        .expect("found");
    assert_eq!(renamed.name, "Acme");
    assert!(renamed.scope().is_some());
    assert!(
        store
            .update_tenant("nope", None, None, audit())
            .await
            .expect("update")
            .is_none()
    );
    assert!(store.tenant("nope").await.expect("get").is_none());
}

async fn admin_client(db: &ScratchDatabase) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&db.admin_url_here(), tokio_postgres::NoTls)
        .await
        .expect("admin connection");
    tokio::spawn(conn);
    client
}

/// A column as both catalogs can describe it: the storage class of its declared type and
/// whether it may be NULL.
type Column = (String, String, &'static str, bool);

/// SQLite's storage class of a declared type (its affinity rules); booleans are integers there.
fn sqlite_class(declared: &str) -> &'static str {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") || t.contains("BOOL") {
        "integer"
    } else if t.contains("CHAR") || t.contains("TEXT") {
        "text"
    } else if t.contains("BLOB") || t.is_empty() {
        "blob"
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        "real"
    } else {
        "numeric"
    }
}

fn postgres_class(data_type: &str) -> &'static str {
    match data_type {
        "bigint" | "integer" | "smallint" | "boolean" => "integer",
        "text" | "character varying" => "text",
        "bytea" => "blob",
        "double precision" | "real" => "real",
        _ => "numeric",
    }
}

/// Both migration folders end in the same schema: the same tables, each with the same columns
/// of the same storage class and nullability (the tables the migrations themselves keep,
/// `rollcall_schema` on PostgreSQL, aside).
#[tokio::test]
async fn both_backends_migrate_to_the_same_tables_and_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.sqlite");
    Store::open(&Backend::Sqlite(path.clone()))
        .await
        .expect("open sqlite");
    let conn = rusqlite::Connection::open(&path).expect("reopen");
    let mut sqlite: Vec<Column> = conn
        .prepare(
            "SELECT m.name, p.name, p.type, p.\"notnull\" OR p.pk > 0
             FROM sqlite_master m JOIN pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
        )
        .expect("prepare")
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                sqlite_class(&r.get::<_, String>(2)?),
                !r.get::<_, bool>(3)?,
            ))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    sqlite.sort();

    let (_store, keep) = postgres().await;
    let Keep::Db(db) = &keep else { unreachable!() };
    let admin = admin_client(db).await;
    let mut postgres: Vec<Column> = admin
        .query(
            "SELECT table_name::text, column_name::text, data_type::text, is_nullable = 'YES'
             FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name <> 'rollcall_schema'",
            &[],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| (r.get(0), r.get(1), postgres_class(r.get(2)), r.get(3)))
        .collect();
    postgres.sort();

    let only = |a: &[Column], b: &[Column]| -> Vec<Column> {
        a.iter().filter(|c| !b.contains(c)).cloned().collect()
    };
    assert!(
        sqlite == postgres,
        "the schemas differ:\nonly in SQLite: {:#?}\nonly in PostgreSQL: {:#?}",
        only(&sqlite, &postgres),
        only(&postgres, &sqlite)
    );
    assert!(
        sqlite.len() > 100,
        "{} columns: did the catalog answer?",
        sqlite.len()
    );
}

/// SQLite: a list does not wait for a write in progress (an ingest holding the writer in an open
/// transaction): it runs on a read connection and sees the last commit. Were it on the writer,
/// it would wait here for good — the deadline only turns that hang into a failure.
#[tokio::test]
#[allow(clippy::await_holding_lock)] // on purpose: the writer stays held while the read runs
async fn a_write_in_progress_does_not_block_a_sqlite_read() {
    let (store, _keep) = sqlite().await;
    let (scope, _) = tenant_with_node(&store, "acme", "h1").await;
    store
        .create_site(&scope, "hq", "HQ", SQUARE, audit())
        .await
        .expect("site");
    let Store::Sqlite(s) = &store else {
        unreachable!("sqlite() makes a SQLite store")
    };
    let writer = s.writer.lock();
    writer
        .conn
        .execute_batch("BEGIN IMMEDIATE; UPDATE sites SET name = 'moving'")
        .expect("a write under way");
    let sites = tokio::time::timeout(std::time::Duration::from_secs(20), store.sites(&scope))
        .await
        .expect("the read waited for the writer")
        .expect("sites");
    assert_eq!(sites.len(), 1);
    assert_eq!(sites[0].name, "HQ", "the read saw the uncommitted write");
    writer.conn.execute_batch("ROLLBACK").expect("rollback");
    drop(writer);
    // A read body that tries to write is refused by its read-only connection.
    let Store::Sqlite(s) = &store else {
        unreachable!()
    };
    let err = s
        .on_reader(|conn| Ok(conn.execute("DELETE FROM sites", [])?))
        .await
        .expect_err("read-only");
    assert!(
        err.to_string().contains("readonly")
            || err.to_string().contains("read-only")
            || err.to_string().contains("query_only"),
        "{err}"
    );
    assert_eq!(store.sites(&scope).await.expect("sites").len(), 1);
}

/// Straight SQL as the server's role: with `rollcall.tenant_id` set to another tenant (or not
/// set at all), the database itself hides and protects the first tenant's rows.
#[tokio::test]
async fn row_level_security_stops_the_wrong_tenant_in_postgres() {
    let (store, keep) = postgres().await;
    let Keep::Db(db) = &keep else { unreachable!() };
    let (acme, node) = tenant_with_node(&store, "acme", "h1").await;
    store
        .ingest(&acme, &node, vec![event(A, 1, "hq")], audit())
        .await
        .expect("ingest");
    let globex = store
        .ensure_tenant("globex", "Globex")
        .await
        .expect("t")
        .scope()
        .expect("a");
    let (mut app, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("app connection");
    tokio::spawn(conn);
    let count = "SELECT count(*) FROM events WHERE tenant_id = $1";
    // No tenant set: nothing at all.
    let n: i64 = app.query_one(count, &[&acme.id()]).await.expect("q").get(0);
    assert_eq!(n, 0, "no tenant set, no rows");
    let tx = app.transaction().await.expect("tx");
    tx.execute(
        "SELECT set_config('rollcall.tenant_id', $1, true)",
        &[&globex.id().to_string()],
    )
    .await
    .expect("set");
    let n: i64 = tx.query_one(count, &[&acme.id()]).await.expect("q").get(0);
    assert_eq!(n, 0, "acme's event is invisible to globex");
    let changed = tx
        .execute(
            "UPDATE nodes SET site_id = 'stolen' WHERE tenant_id = $1",
            &[&acme.id()],
        )
        .await
        .expect("update");
    assert_eq!(changed, 0, "acme's node cannot be changed from globex");
    let deleted = tx
        .execute("DELETE FROM events WHERE tenant_id = $1", &[&acme.id()])
        .await
        .expect("delete");
    assert_eq!(deleted, 0);
    let planted = tx
        .execute(
            "INSERT INTO signing_keys (tenant_id, secret, created_ms) VALUES ($1, $2, 0)",
            &[&acme.id(), &vec![0u8; 32]],
        )
        .await;
    let err = planted.expect_err("a row for another tenant is refused");
    let message = err
        .as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_default();
    assert!(message.contains("row-level security"), "{err:?}");
    assert!(
        StoreError::from(err)
            .to_string()
            .contains("row-level security")
    );
    drop(tx);
    // Turning row security off is refused for this role, not silently honoured.
    let off = app
        .batch_execute("SET row_security = off; SELECT count(*) FROM events")
        .await;
    assert!(
        off.is_err(),
        "row_security=off must fail for a non-bypassing role"
    );
    // The superuser, behind the server's back, sees the row: it was there all along.
    let admin = admin_client(db).await;
    let n: i64 = admin
        .query_one(count, &[&acme.id()])
        .await
        .expect("q")
        .get(0);
    assert_eq!(n, 1);
    // Every tenant-owned table has the policy, forced even on the owner.
    for table in schema::TENANT_TABLES {
        let row = admin
            .query_one(
                "SELECT c.relrowsecurity AND c.relforcerowsecurity,
                        (SELECT count(*) FROM pg_policies p WHERE p.tablename = c.relname)
                 FROM pg_class c WHERE c.relname = $1",
                &[table],
            )
            .await
            .expect("catalog");
        assert!(row.get::<_, bool>(0), "{table}: row security not forced");
        assert_eq!(row.get::<_, i64>(1), 1, "{table}: policy");
    }
    // And every table with a tenant_id column is in that list.
    let owned: Vec<String> = admin
        .query(
            "SELECT table_name::text FROM information_schema.columns
             WHERE column_name = 'tenant_id' AND table_schema = 'public' ORDER BY 1",
            &[],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut listed: Vec<&str> = schema::TENANT_TABLES
        .iter()
        .chain(schema::QUEUE_TABLES)
        .copied()
        .collect();
    listed.sort();
    assert_eq!(owned, listed);
}

#[tokio::test]
async fn a_role_that_bypasses_row_security_is_refused() {
    let db = ScratchDatabase::create().await.expect("scratch");
    let err = Store::open(&Backend::Postgres {
        url: db.admin_url_here(),
        migrate_url: None,
    })
    .await
    .err()
    .expect("a superuser must be refused");
    assert!(matches!(err, StoreError::BypassesRls { .. }), "{err}");
    assert!(err.to_string().contains("row-level security"), "{err}");
}

/// The schema's owner migrates; the server runs as a separate role that owns nothing and only
/// has the grants; replicas starting together migrate once.
#[tokio::test]
async fn a_separate_migration_role_grants_the_app_role() {
    let db = ScratchDatabase::create().await.expect("scratch");
    let admin = admin_client(&db).await;
    let app_role = format!("{}_app", db.name);
    admin
        .batch_execute(&format!("CREATE ROLE \"{app_role}\" LOGIN"))
        .await
        .expect("role");
    let app_url = db
        .url
        .replacen(&format!("//{}@", db.name), &format!("//{app_role}@"), 1);
    let backend = Backend::Postgres {
        url: app_url,
        migrate_url: Some(db.url.clone()),
    };
    let (a, b) = tokio::join!(Store::open(&backend), Store::open(&backend));
    let (a, b) = (a.expect("replica a"), b.expect("replica b"));
    let (scope, node) = tenant_with_node(&a, "acme", "h1").await;
    b.ingest(&scope, &node, vec![event(A, 1, "hq")], audit())
        .await
        .expect("ingest");
    assert_eq!(
        a.events(&scope, EventFilter::default(), PageStart::Offset(0), 5)
            .await
            .expect("list")
            .len(),
        1
    );
    let row = admin
        .query_one(
            "SELECT count(*), max(version)::bigint FROM rollcall_schema",
            &[],
        )
        .await
        .expect("q");
    let (applied, latest): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(applied, latest, "each migration applied once");
    assert!(latest >= 2);
    drop((a, b));
    // The app role is dropped with the database's objects' grants.
    admin
        .batch_execute(&format!(
            "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM \"{app_role}\";
             REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM \"{app_role}\";"
        ))
        .await
        .expect("revoke");
    drop(admin);
    let server_admin = scratch::admin_url();
    let (c, conn) = tokio_postgres::connect(&server_admin, tokio_postgres::NoTls)
        .await
        .expect("server admin");
    tokio::spawn(conn);
    drop(db);
    c.batch_execute(&format!("DROP ROLE IF EXISTS \"{app_role}\""))
        .await
        .expect("drop app role");
}

/// A schema whose isolation was weakened behind rollcall's back is refused at start-up.
#[tokio::test]
async fn a_table_without_forced_row_security_stops_the_server() {
    let (store, keep) = postgres().await;
    let Keep::Db(db) = &keep else { unreachable!() };
    drop(store);
    admin_client(db)
        .await
        .batch_execute("ALTER TABLE events NO FORCE ROW LEVEL SECURITY")
        .await
        .expect("alter");
    let err = Store::open(&Backend::Postgres {
        url: db.url.clone(),
        migrate_url: None,
    })
    .await
    .err()
    .expect("refused");
    assert!(
        matches!(&err, StoreError::Unprotected { table } if table == "events"),
        "{err}"
    );
}

fn new_user(id: &str, email: &str, role: users::Role) -> users::NewUser {
    users::NewUser {
        id: id.into(),
        email: email.into(),
        display_name: email.into(),
        role,
        password_hash: "$argon2id$stub".into(),
    }
}

fn refresh(hash: &str, user: &str, family: &str, expires_ms: i64) -> users::NewRefresh {
    users::NewRefresh {
        token_sha256: hash.into(),
        user_id: user.into(),
        family: family.into(),
        expires_ms,
    }
}

both!(users_are_per_tenant_and_changes_revoke_sessions);
async fn users_are_per_tenant_and_changes_revoke_sessions(store: Store) {
    use users::Role;
    let (acme, _) = tenant_with_node(&store, "acme", "h1").await;
    let (globex, _) = tenant_with_node(&store, "globex", "h2").await;
    let owner = store
        .create_user(
            &acme,
            new_user("u1", "boss@acme.example", Role::Owner),
            audit(),
        )
        .await
        .expect("create");
    assert_eq!((owner.role, owner.disabled_ms), (Role::Owner, None));
    let dup = store
        .create_user(
            &acme,
            new_user("u2", "boss@acme.example", Role::Guard),
            audit(),
        )
        .await;
    assert!(refused(&dup, &EMAIL_TAKEN), "{dup:?}");
    // The same email in another tenant is another person.
    store
        .create_user(
            &globex,
            new_user("u3", "boss@acme.example", Role::Guard),
            audit(),
        )
        .await
        .expect("other tenant");
    assert!(
        store.user(&globex, "u1").await.expect("q").is_none(),
        "not across tenants"
    );
    assert!(
        store
            .credentials(&globex, "boss@acme.example")
            .await
            .expect("q")
            .is_some_and(|c| c.user.id == "u3")
    );
    let creds = store
        .credentials(&acme, "boss@acme.example")
        .await
        .expect("q")
        .expect("found");
    assert_eq!(
        (creds.user.id.as_str(), creds.password_hash.as_str()),
        ("u1", "$argon2id$stub")
    );
    assert_eq!(store.users(&acme).await.expect("list").len(), 1);
    // Another tenant cannot change the user, even knowing the id.
    assert!(
        store
            .update_user(&globex, "u1", Some(Role::Guard), None, Some(true), audit())
            .await
            .expect("q")
            .is_none()
    );
    assert_eq!(
        store
            .user(&acme, "u1")
            .await
            .expect("q")
            .expect("found")
            .role,
        Role::Owner
    );

    let future = rollcall_service::clock::now_ms() + 60_000;
    store
        .insert_refresh(&acme, refresh("r1", "u1", "f1", future), audit())
        .await
        .expect("insert");
    store
        .insert_refresh(&acme, refresh("r2", "u1", "f2", future), audit())
        .await
        .expect("insert");
    let changed = store
        .update_user(
            &acme,
            "u1",
            Some(Role::Admin),
            Some("Boss".into()),
            Some(true),
            audit(),
        )
        .await
        .expect("update")
        .expect("found");
    assert_eq!(
        (changed.role, changed.display_name.as_str()),
        (Role::Admin, "Boss")
    );
    assert!(changed.disabled_ms.is_some());
    // Disabling revoked every session: presenting one now counts as reuse.
    assert!(matches!(
        store.use_refresh(&acme, "r1").await.expect("use"),
        users::RefreshUse::Reused { .. }
    ));
    let enabled = store
        .update_user(&acme, "u1", None, None, Some(false), audit())
        .await
        .expect("update")
        .expect("found");
    assert_eq!((enabled.disabled_ms, enabled.role), (None, Role::Admin));
}

/// Tenants acme (with admin user `u1`) and globex, each with a node.
async fn acme_admin_and_globex(store: &Store) -> (TenantScope, TenantScope) {
    let (acme, _) = tenant_with_node(store, "acme", "h1").await;
    let (globex, _) = tenant_with_node(store, "globex", "h2").await;
    store
        .create_user(
            &acme,
            new_user("u1", "a@acme.example", users::Role::Admin),
            audit(),
        )
        .await
        .expect("user");
    (acme, globex)
}

both!(refresh_tokens_rotate_and_reuse_revokes_the_family);
async fn refresh_tokens_rotate_and_reuse_revokes_the_family(store: Store) {
    use users::{RefreshUse, Role};
    let (acme, globex) = acme_admin_and_globex(&store).await;
    let now = rollcall_service::clock::now_ms();
    store
        .insert_refresh(&acme, refresh("t1", "u1", "fam", now + 60_000), audit())
        .await
        .expect("t1");
    assert_eq!(
        store.use_refresh(&globex, "t1").await.expect("use"),
        RefreshUse::Invalid,
        "another tenant's token is unknown here"
    );
    assert_eq!(
        store.use_refresh(&acme, "t1").await.expect("use"),
        RefreshUse::Fresh {
            user_id: "u1".into(),
            family: "fam".into()
        }
    );
    store
        .insert_refresh(&acme, refresh("t2", "u1", "fam", now + 60_000), audit())
        .await
        .expect("t2");
    // t1 again: a replayed copy. The whole family goes, t2 included.
    assert_eq!(
        store.use_refresh(&acme, "t1").await.expect("use"),
        RefreshUse::Reused {
            family: "fam".into()
        }
    );
    assert!(matches!(
        store.use_refresh(&acme, "t2").await.expect("use"),
        RefreshUse::Reused { .. }
    ));
    // Expired and unknown tokens are simply invalid.
    store
        .insert_refresh(&acme, refresh("old", "u1", "f2", now - 1), audit())
        .await
        .expect("old");
    assert_eq!(
        store.use_refresh(&acme, "old").await.expect("use"),
        RefreshUse::Invalid
    );
    assert_eq!(
        store.use_refresh(&acme, "never").await.expect("use"),
        RefreshUse::Invalid
    );
    // Logout revokes a family; a token of another tenant's family is untouched.
    store
        .insert_refresh(&acme, refresh("t3", "u1", "f3", now + 60_000), audit())
        .await
        .expect("t3");
    assert!(
        !store
            .revoke_refresh_family(&globex, "t3", audit())
            .await
            .expect("revoke")
    );
    assert!(
        store
            .revoke_refresh_family(&acme, "t3", audit())
            .await
            .expect("revoke")
    );
    assert!(matches!(
        store.use_refresh(&acme, "t3").await.expect("use"),
        RefreshUse::Reused { .. }
    ));
    // A refresh token cannot point at another tenant's user.
    store
        .create_user(
            &globex,
            new_user("g1", "g@globex.example", Role::Owner),
            audit(),
        )
        .await
        .expect("user");
    assert!(
        store
            .insert_refresh(&acme, refresh("x", "g1", "fx", now + 60_000), audit())
            .await
            .is_err()
    );
}

both!(platform_secrets_are_made_once);
async fn platform_secrets_are_made_once(store: Store) {
    let a = store
        .platform_secret("access-token-hs256")
        .await
        .expect("secret");
    assert_eq!(
        store
            .platform_secret("access-token-hs256")
            .await
            .expect("secret"),
        a
    );
    assert_ne!(store.platform_secret("other").await.expect("secret"), a);
}

both!(nodes_are_listed_and_revoked_within_their_tenant);
async fn nodes_are_listed_and_revoked_within_their_tenant(store: Store) {
    let (acme, node) = tenant_with_node(&store, "acme", "h1").await;
    let (globex, _) = tenant_with_node(&store, "globex", "h2").await;
    store
        .ingest(&acme, &node, vec![event(A, 1, "hq")], audit())
        .await
        .expect("ingest");
    let listed = store.nodes(&acme).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id.as_str(), listed[0].site_id.as_str()),
        ("acme-n1", "hq")
    );
    assert!(
        listed[0].last_seen_ms.is_some(),
        "a push marks the node seen"
    );
    assert!(
        !store
            .revoke_node(&globex, "acme-n1", audit())
            .await
            .expect("revoke"),
        "not from another tenant"
    );
    assert!(
        store
            .node_by_token_hash(&acme, "h1")
            .await
            .expect("q")
            .is_some()
    );
    assert!(
        store
            .revoke_node(&acme, "acme-n1", audit())
            .await
            .expect("revoke")
    );
    assert!(
        !store
            .revoke_node(&acme, "acme-n1", audit())
            .await
            .expect("revoke"),
        "once"
    );
    assert!(
        store
            .node_by_token_hash(&acme, "h1")
            .await
            .expect("q")
            .is_none(),
        "revoked"
    );
    assert!(
        store.nodes(&acme).await.expect("list")[0]
            .revoked_ms
            .is_some()
    );
}

/// Runs a statement behind the store's back: as the SQLite connection itself, or as
/// PostgreSQL's superuser.
async fn raw_sql(store: &Store, keep: &Keep, sql: &str) -> Result<(), String> {
    match (store, keep) {
        (Store::Sqlite(s), _) => s
            .writer
            .lock()
            .conn
            .execute_batch(sql)
            .map_err(|e| e.to_string()),
        (Store::Postgres(_), Keep::Db(db)) => admin_client(db)
            .await
            .batch_execute(sql)
            .await
            .map_err(|e| format!("{}", StoreError::from(e))),
        _ => unreachable!(),
    }
}

both_with_keep!(every_write_is_audited_within_its_tenant_and_the_trail_is_append_only);
async fn every_write_is_audited_within_its_tenant_and_the_trail_is_append_only(
    store: Store,
    keep: Keep,
) {
    let (acme, node) = tenant_with_node(&store, "acme", "h1").await;
    let (globex, _) = tenant_with_node(&store, "globex", "h2").await;
    let mut push = audit();
    push.action = "sync.push";
    store
        .ingest(
            &acme,
            &node,
            vec![event(A, 1, "hq"), event("bad", 2, "hq")],
            push,
        )
        .await
        .expect("ingest");
    // A write that changes nothing leaves no entry.
    assert!(
        !store
            .revoke_node(&acme, "no-such-node", audit())
            .await
            .expect("revoke")
    );
    let entries = store.audit_entries(&acme, None, 10).await.expect("audit");
    let actions: Vec<_> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["sync.push", "test.write"],
        "newest first: register, then push"
    );
    let push = &entries[0];
    assert_eq!(
        push.detail,
        serde_json::json!({ "accepted": 1, "duplicate": 0, "rejected": 1 })
    );
    assert_eq!(
        (push.source.as_deref(), push.request_id.as_str()),
        (Some("127.0.0.1"), "req-test")
    );
    // Paging by id.
    let older = store
        .audit_entries(&acme, Some(push.id), 10)
        .await
        .expect("page");
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].id, entries[1].id);
    // The other tenant sees only its own registration.
    assert_eq!(
        store
            .audit_entries(&globex, None, 10)
            .await
            .expect("audit")
            .len(),
        1
    );
    // Append-only, even behind the store's back.
    for sql in [
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
    ] {
        let err = raw_sql(&store, &keep, sql).await.expect_err(sql);
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(
        store
            .audit_entries(&acme, None, 10)
            .await
            .expect("audit")
            .len(),
        2
    );
}

fn ulid(n: u32) -> String {
    format!("01HZZZZZZZZZZZZZZZZZZZ{n:04}")
}

both!(events_filter_and_page_by_offset_and_by_cursor);
async fn events_filter_and_page_by_offset_and_by_cursor(store: Store) {
    let (acme, node) = tenant_with_node(&store, "acme", "h1").await;
    let (globex, _) = tenant_with_node(&store, "globex", "h2").await;
    // A node's clock in 2023 (events outside 2020-2100 are refused).
    const T0: i64 = 1_700_000_000_000;
    // 30 events; every third denied, persons p0..p2, several sharing a node time.
    let events: Vec<_> = (1..=30u32)
        .map(|n| {
            let mut e = event(&ulid(n), u64::from(n), "hq");
            e.node_time_ms = T0 + i64::from(n / 2) * 1000;
            e.person_id = Some(format!("p{}", n % 3));
            if n % 3 == 0 {
                e.decision = rollcall_protocol::wire::Decision::Denied;
            }
            e
        })
        .collect();
    store
        .ingest(&acme, &node, events, audit())
        .await
        .expect("ingest");
    let all = |f: EventFilter| {
        let store = store.clone();
        let acme = acme.clone();
        async move {
            store
                .events(&acme, f, PageStart::Offset(0), 1000)
                .await
                .expect("list")
        }
    };
    let everything = all(EventFilter::default()).await;
    assert_eq!(everything.len(), 30);
    let keys: Vec<_> = everything
        .iter()
        .map(|e| (e.event.node_time_ms, e.event.id.clone()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted, "newest first, ties by id");
    let denied = all(EventFilter {
        decision: Some(rollcall_protocol::wire::Decision::Denied),
        ..Default::default()
    })
    .await;
    assert_eq!(denied.len(), 10);
    let p1 = all(EventFilter {
        person_id: Some("p1".into()),
        ..Default::default()
    })
    .await;
    assert!(
        p1.len() == 10
            && p1
                .iter()
                .all(|e| e.event.person_id.as_deref() == Some("p1"))
    );
    let window = all(EventFilter {
        from_ms: Some(T0 + 5000),
        to_ms: Some(T0 + 10_000),
        ..Default::default()
    })
    .await;
    assert!(
        window
            .iter()
            .all(|e| (T0 + 5000..T0 + 10_000).contains(&e.event.node_time_ms))
    );
    assert_eq!(window.len(), 10);
    assert!(
        all(EventFilter {
            site_id: Some("elsewhere".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );

    // Offset pages, and cursor pages that stay right while new events arrive in between.
    let page2 = store
        .events(&acme, EventFilter::default(), PageStart::Offset(7), 7)
        .await
        .expect("page");
    assert_eq!(
        page2.iter().map(|e| &e.event.id).collect::<Vec<_>>(),
        everything[7..14]
            .iter()
            .map(|e| &e.event.id)
            .collect::<Vec<_>>()
    );
    let mut seen = Vec::new();
    let mut start = PageStart::Offset(0);
    let mut extra = 100u32;
    loop {
        let page = store
            .events(&acme, EventFilter::default(), start.clone(), 7)
            .await
            .expect("page");
        seen.extend(page.iter().map(|e| e.event.id.clone()));
        let Some(last) = page.last() else { break };
        start = PageStart::After(Cursor {
            sort: Sort::default(),
            key: last.event.node_time_ms,
            id: last.event.id.clone(),
        });
        // A newer event lands between pages: it must not disturb the walk.
        extra += 1;
        let mut newer = event(&ulid(extra), u64::from(extra), "hq");
        newer.node_time_ms = T0 + 1_000_000 + i64::from(extra);
        store
            .ingest(&acme, &node, vec![newer], audit())
            .await
            .expect("ingest");
        if page.len() < 7 {
            break;
        }
    }
    assert_eq!(
        seen,
        everything
            .iter()
            .map(|e| e.event.id.clone())
            .collect::<Vec<_>>(),
        "each once, in order"
    );

    // One event by id, and not across tenants.
    let one = store
        .event(&acme, &ulid(3))
        .await
        .expect("get")
        .expect("found");
    assert_eq!(
        one.event.decision,
        rollcall_protocol::wire::Decision::Denied
    );
    assert!(store.event(&globex, &ulid(3)).await.expect("get").is_none());
    assert!(
        store
            .events(&globex, EventFilter::default(), PageStart::Offset(0), 100)
            .await
            .expect("list")
            .is_empty()
    );
}

both_with_keep!(idempotency_keys_replay_refuse_and_expire);
async fn idempotency_keys_replay_refuse_and_expire(store: Store, keep: Keep) {
    use idempotency::{Begin, Stored};
    let (acme, _) = tenant_with_node(&store, "acme", "h1").await;
    let (globex, _) = tenant_with_node(&store, "globex", "h2").await;
    let begin_as = |scope: &TenantScope, caller: &str, role: &str, key: &str, fp: &str| {
        let (store, scope, caller, role, key, fp) = (
            store.clone(),
            scope.clone(),
            caller.to_owned(),
            role.to_owned(),
            key.to_owned(),
            fp.to_owned(),
        );
        async move {
            store
                .idem_begin(&scope, &caller, &role, &key, &fp)
                .await
                .expect("begin")
        }
    };
    let begin = |scope: &TenantScope, caller: &str, key: &str, fp: &str| {
        begin_as(scope, caller, "admin", key, fp)
    };
    assert_eq!(begin(&acme, "u1", "k", "fp1").await, Begin::Started);
    assert_eq!(begin(&acme, "u1", "k", "fp1").await, Begin::InProgress);
    let response = Stored {
        status: 201,
        content_type: "application/json".into(),
        body: b"{\"id\":1}".to_vec(),
    };
    store
        .idem_finish(&acme, "u1", "k", response.clone())
        .await
        .expect("finish");
    assert_eq!(
        begin(&acme, "u1", "k", "fp1").await,
        Begin::Replay(response.clone())
    );
    assert_eq!(begin(&acme, "u1", "k", "fp2").await, Begin::Mismatch);
    // The caller in another role now: not replayed.
    assert_eq!(
        begin_as(&acme, "u1", "guard", "k", "fp1").await,
        Begin::RoleChanged
    );
    // Keys are the caller's own, and the tenant's.
    assert_eq!(begin(&acme, "u2", "k", "fp2").await, Begin::Started);
    assert_eq!(begin(&globex, "u1", "k", "fp2").await, Begin::Started);
    // A request that failed on the server's side is forgotten, so its retry runs; a finished one stays.
    store.idem_abandon(&acme, "u2", "k").await.expect("abandon");
    assert_eq!(begin(&acme, "u2", "k", "fp3").await, Begin::Started);
    store
        .idem_abandon(&acme, "u1", "k")
        .await
        .expect("abandon a finished key");
    assert_eq!(
        begin(&acme, "u1", "k", "fp1").await,
        Begin::Replay(response)
    );
    // A first request left unfinished (its server killed mid-request) holds its key for
    // the lease only.
    assert_eq!(begin(&acme, "u3", "k", "fp1").await, Begin::Started);
    assert_eq!(begin(&acme, "u3", "k", "fp1").await, Begin::InProgress);
    let leased = format!(
        "UPDATE idempotency_keys SET created_ms = {} WHERE caller = 'u3'",
        rollcall_service::clock::now_ms() - idempotency::IN_PROGRESS_LEASE_MS - 1
    );
    raw_sql(&store, &keep, &leased).await.expect("age");
    assert_eq!(begin(&acme, "u3", "k", "fp1").await, Begin::Started);
    // After 24 hours a key is free again.
    raw_sql(&store, &keep, "UPDATE idempotency_keys SET created_ms = 0")
        .await
        .expect("age");
    assert_eq!(begin(&acme, "u1", "k", "fp9").await, Begin::Started);
    // The hourly purge deletes what has expired: u2's key here (u1's was just renewed), and
    // globex's.
    assert_eq!(store.idem_purge(&acme).await.expect("purge"), 2);
    assert_eq!(store.idem_purge(&globex).await.expect("purge"), 1);
    assert_eq!(store.idem_purge(&acme).await.expect("purge"), 0);
}

both!(browser_sessions_live_until_ended_expired_or_disabled);
async fn browser_sessions_live_until_ended_expired_or_disabled(store: Store) {
    use sessions::{LiveSession, NewSession};
    let (acme, globex) = acme_admin_and_globex(&store).await;
    let now = rollcall_service::clock::now_ms();
    let later = now + 60_000;
    let session = |hash: &str, expires_ms| NewSession {
        token_sha256: hash.into(),
        user_id: "u1".into(),
        expires_ms,
    };
    for (hash, expires_ms) in [("live", later), ("old", now - 1)] {
        store
            .create_session(&acme, session(hash, expires_ms), audit())
            .await
            .expect("session");
    }
    assert_eq!(
        store.live_session(&acme, "live").await.expect("q"),
        Some(LiveSession {
            user_id: "u1".into(),
            expires_ms: later
        })
    );
    assert_eq!(store.live_session(&acme, "old").await.expect("q"), None);
    assert_eq!(
        store.live_session(&globex, "live").await.expect("q"),
        None,
        "another tenant's session"
    );
    assert!(
        !store
            .end_session(&globex, "live", audit())
            .await
            .expect("q"),
        "not across tenants"
    );
    assert!(
        store
            .end_session(&acme, "live", audit())
            .await
            .expect("end")
    );
    assert_eq!(store.live_session(&acme, "live").await.expect("q"), None);
    assert!(
        !store
            .end_session(&acme, "live", audit())
            .await
            .expect("again")
    );
    // Disabling a user ends their sessions for good: enabling them again brings none back.
    store
        .create_session(&acme, session("s2", later), audit())
        .await
        .expect("session");
    for disabled in [true, false] {
        store
            .update_user(&acme, "u1", None, None, Some(disabled), audit())
            .await
            .expect("update");
    }
    assert_eq!(store.live_session(&acme, "s2").await.expect("q"), None);
    // Ended sessions (expired "old", logged-out "live", revoked "s2") are purged; a live one
    // stays, and another tenant's purge touches none of them.
    store
        .create_session(&acme, session("s3", later), audit())
        .await
        .expect("session");
    let now = rollcall_service::clock::now_ms();
    assert_eq!(store.purge_sessions(&globex, now).await.expect("purge"), 0);
    assert_eq!(store.purge_sessions(&acme, now).await.expect("purge"), 3);
    assert_eq!(store.purge_sessions(&acme, now).await.expect("purge"), 0);
    assert!(store.live_session(&acme, "s3").await.expect("q").is_some());
}

const SQUARE: &str = r#"{"type":"Polygon","coordinates":[[[0,0],[0,1],[1,1],[1,0],[0,0]]]}"#;

async fn with_sites(store: &Store, slug: &str, sites: &[&str]) -> TenantScope {
    let (scope, _) = tenant_with_node(store, slug, &format!("h-{slug}")).await;
    for site in sites {
        store
            .create_site(&scope, site, site, SQUARE, audit())
            .await
            .expect("site");
    }
    scope
}

fn person(id: &str, sites: &[&str]) -> people::NewPerson {
    people::NewPerson {
        id: id.into(),
        display_name: format!("Person {id}"),
        employee_ref: None,
        site_ids: sites.iter().map(|s| (*s).to_owned()).collect(),
    }
}

both!(people_changes_feed_pulls_in_commit_order_and_compacts);
async fn people_changes_feed_pulls_in_commit_order_and_compacts(store: Store) {
    use people::PersonPatch;
    let acme = with_sites(&store, "acme", &["hq"]).await;
    let globex = with_sites(&store, "globex", &["hq"]).await;
    for id in ["E-1", "E-2"] {
        store
            .create_person(&acme, person(id, &["hq"]), audit())
            .await
            .expect("person");
    }
    let rename = || PersonPatch {
        display_name: Some("Renamed".into()),
        ..PersonPatch::default()
    };
    store
        .update_person(&acme, "E-1", rename(), audit())
        .await
        .expect("q");
    store
        .delete_person(&acme, "E-2", audit())
        .await
        .expect("erased");
    let feed = store
        .person_changes_after(&acme, 0, 10)
        .await
        .expect("feed");
    // One entry per person, by their latest change, oldest first; numbered 1.., later HLCs.
    let seen: Vec<(u64, &str, bool)> = feed
        .iter()
        .map(|c| (c.change_id, c.person_id.as_str(), c.erased))
        .collect();
    assert_eq!(seen, [(3, "E-1", false), (4, "E-2", true)]);
    assert!(feed[1].hlc > feed[0].hlc);
    // After a cursor, only what changed since; another tenant's feed is its own.
    let after = store
        .person_changes_after(&acme, 3, 10)
        .await
        .expect("feed");
    assert_eq!(after.len(), 1);
    assert!(
        store
            .person_changes_after(&globex, 0, 10)
            .await
            .expect("feed")
            .is_empty()
    );
    // An erased id is spent.
    let again = store
        .create_person(&acme, person("E-2", &["hq"]), audit())
        .await;
    assert!(refused(&again, &PERSON_ERASED), "{again:?}");
    // Compaction drops the superseded rows (E-1's and E-2's creations) and changes no pull.
    assert_eq!(
        store.compact_person_changes(&acme).await.expect("compact"),
        2
    );
    assert_eq!(
        store
            .person_changes_after(&acme, 0, 10)
            .await
            .expect("feed"),
        feed
    );
    assert_eq!(
        store.compact_person_changes(&acme).await.expect("compact"),
        0
    );
}

both!(people_have_sites_and_are_erased_whole);
async fn people_have_sites_and_are_erased_whole(store: Store) {
    use people::{PeopleFilter, PersonPatch};
    let acme = with_sites(&store, "acme", &["hq", "annex"]).await;
    let globex = with_sites(&store, "globex", &["hq"]).await;
    let p = store
        .create_person(&acme, person("E-1", &["hq"]), audit())
        .await
        .expect("person");
    assert_eq!(
        (p.site_ids.clone(), p.active, p.templates),
        (vec!["hq".to_owned()], true, 0)
    );
    let dup = store
        .create_person(&acme, person("E-1", &[]), audit())
        .await;
    assert!(refused(&dup, &PERSON_EXISTS), "{dup:?}");
    // A site the tenant does not have: refused, nothing written.
    let bad = store
        .create_person(&acme, person("E-2", &["mars"]), audit())
        .await;
    assert!(refused(&bad, &UNKNOWN_SITE), "{bad:?}");
    assert!(store.person(&acme, "E-2").await.expect("q").is_none());
    // The same id in another tenant is another person; neither sees the other.
    store
        .create_person(&globex, person("E-1", &["hq"]), audit())
        .await
        .expect("other tenant");
    store
        .create_person(&acme, person("E-3", &["annex"]), audit())
        .await
        .expect("person");
    let at_hq = store
        .people(
            &acme,
            PeopleFilter {
                site_id: Some("hq".into()),
                active: None,
            },
        )
        .await
        .expect("q");
    assert_eq!(
        at_hq.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["E-1"]
    );
    // A patch replaces the sites, clears the reference, deactivates.
    let p = store
        .update_person(
            &acme,
            "E-1",
            PersonPatch {
                display_name: Some("Renamed".into()),
                employee_ref: Some(None),
                active: Some(false),
                site_ids: Some(vec!["annex".into(), "hq".into()]),
            },
            audit(),
        )
        .await
        .expect("q")
        .expect("found");
    assert_eq!(
        (p.display_name.as_str(), p.active, p.site_ids.clone()),
        ("Renamed", false, vec!["annex".to_owned(), "hq".to_owned()])
    );
    assert!(
        store
            .update_person(&globex, "E-3", PersonPatch::default(), audit())
            .await
            .expect("q")
            .is_none(),
        "not across tenants"
    );
    // A site with people cannot be deleted.
    let used = store.delete_site(&acme, "annex", audit()).await;
    assert!(refused(&used, &SITE_IN_USE), "{used:?}");
    // Erasure takes everything of the person, and only theirs.
    assert!(
        !store
            .delete_person(&globex, "E-3", audit())
            .await
            .expect("q")
    );
    assert!(
        store
            .delete_person(&acme, "E-1", audit())
            .await
            .expect("erase")
    );
    assert!(store.person(&acme, "E-1").await.expect("q").is_none());
    assert!(store.person(&globex, "E-1").await.expect("q").is_some());
    assert!(
        !store
            .delete_person(&acme, "E-1", audit())
            .await
            .expect("again")
    );
}

both!(shifts_are_for_assigned_people_and_never_overlap);
async fn shifts_are_for_assigned_people_and_never_overlap(store: Store) {
    use shifts::{Shift, ShiftFilter};
    let acme = with_sites(&store, "acme", &["hq", "annex"]).await;
    let globex = with_sites(&store, "globex", &["hq"]).await;
    store
        .create_person(&acme, person("p1", &["hq"]), audit())
        .await
        .expect("person");
    let shift = |id: &str, site: &str, starts_ms: i64, ends_ms: i64| Shift {
        id: id.into(),
        person_id: "p1".into(),
        site_id: site.into(),
        starts_ms,
        ends_ms,
        note: None,
        created_ms: 0,
    };
    let h = 3_600_000;
    store
        .create_shift(&acme, shift("s1", "hq", 8 * h, 16 * h), audit())
        .await
        .expect("shift");
    for (why, s) in [
        ("overlaps the start", shift("s2", "hq", 7 * h, 9 * h)),
        ("inside", shift("s3", "hq", 9 * h, 10 * h)),
        ("overlaps the end", shift("s4", "hq", 15 * h, 17 * h)),
    ] {
        let r = store.create_shift(&acme, s, audit()).await;
        assert!(refused(&r, &SHIFT_OVERLAP), "{why}: {r:?}");
    }
    // Back to back is fine.
    store
        .create_shift(&acme, shift("s5", "hq", 16 * h, 20 * h), audit())
        .await
        .expect("adjacent");
    // Not assigned there; no such person (here: the other tenant's view).
    let r = store
        .create_shift(&acme, shift("s6", "annex", 30 * h, 31 * h), audit())
        .await;
    assert!(refused(&r, &NOT_ASSIGNED), "{r:?}");
    let r = store
        .create_shift(&globex, shift("s7", "hq", 30 * h, 31 * h), audit())
        .await;
    assert!(refused(&r, &UNKNOWN_PERSON), "{r:?}");
    // Lists by time window; another tenant sees none.
    let window = |from_ms, to_ms| ShiftFilter {
        person_id: Some("p1".into()),
        site_id: None,
        from_ms: Some(from_ms),
        to_ms: Some(to_ms),
    };
    let ids = |v: Vec<Shift>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.shifts(&acme, window(0, 100 * h)).await.expect("q")),
        ["s1", "s5"]
    );
    assert_eq!(
        ids(store
            .shifts(&acme, window(17 * h, 18 * h))
            .await
            .expect("q")),
        ["s5"]
    );
    assert!(
        store
            .shifts(&globex, ShiftFilter::default())
            .await
            .expect("q")
            .is_empty()
    );
    // A site with shifts cannot be deleted; a shift is deleted in its tenant only.
    assert!(!store.delete_shift(&globex, "s1", audit()).await.expect("q"));
    assert!(
        store
            .delete_shift(&acme, "s1", audit())
            .await
            .expect("delete")
    );
    // An inactive person gets no new shifts.
    store
        .update_person(
            &acme,
            "p1",
            people::PersonPatch {
                active: Some(false),
                ..Default::default()
            },
            audit(),
        )
        .await
        .expect("deactivate");
    let r = store
        .create_shift(&acme, shift("s8", "hq", 40 * h, 41 * h), audit())
        .await;
    assert!(refused(&r, &PERSON_INACTIVE), "{r:?}");
}

both!(templates_are_sealed_per_tenant_and_bounded);
async fn templates_are_sealed_per_tenant_and_bounded(store: Store) {
    use crate::server::sealing::MasterKey;
    use templates::{MAX_PER_PERSON, NewTemplate};
    let master = MasterKey::from_bytes([9; 32]);
    let acme = with_sites(&store, "acme", &["hq"]).await;
    let globex = with_sites(&store, "globex", &["hq"]).await;
    store
        .create_person(&acme, person("p1", &["hq"]), audit())
        .await
        .expect("person");
    let t = |id: &str, person: &str, x: f32| NewTemplate {
        id: id.into(),
        person_id: person.into(),
        model: "mobilefacenet-v1".into(),
        vector: vec![x; 128],
    };
    let info = store
        .add_template(&acme, &master, t("t1", "p1", 0.5), audit())
        .await
        .expect("template");
    assert_eq!((info.dim, info.model.as_str()), (128, "mobilefacenet-v1"));
    // Not the other tenant's person.
    let r = store
        .add_template(&globex, &master, t("t2", "p1", 0.5), audit())
        .await;
    assert!(refused(&r, &UNKNOWN_PERSON), "{r:?}");
    assert!(store.templates(&globex, "p1").await.expect("q").is_empty());
    // Opened with the master key, the vector is back; with another key, nothing opens.
    let opened = store
        .template_vectors(&acme, &master, "p1")
        .await
        .expect("open");
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].1, vec![0.5; 128]);
    let wrong = store
        .template_vectors(&acme, &MasterKey::from_bytes([1; 32]), "p1")
        .await;
    assert!(matches!(wrong, Err(StoreError::Seal(_))), "{wrong:?}");
    // Bounded per person.
    for i in 1..MAX_PER_PERSON {
        store
            .add_template(
                &acme,
                &master,
                t(&format!("t{}", i + 1), "p1", 0.1),
                audit(),
            )
            .await
            .expect("template");
    }
    let r = store
        .add_template(&acme, &master, t("tx", "p1", 0.1), audit())
        .await;
    assert!(refused(&r, &TOO_MANY_TEMPLATES), "{r:?}");
    assert_eq!(
        store
            .person(&acme, "p1")
            .await
            .expect("q")
            .map(|p| p.templates),
        Some(MAX_PER_PERSON as u32)
    );
    assert!(
        !store
            .delete_template(&globex, "p1", "t1", audit())
            .await
            .expect("q")
    );
    assert!(
        store
            .delete_template(&acme, "p1", "t1", audit())
            .await
            .expect("delete")
    );
    // Erasing the person takes their templates.
    assert!(
        store
            .delete_person(&acme, "p1", audit())
            .await
            .expect("erase")
    );
    assert!(store.templates(&acme, "p1").await.expect("q").is_empty());
}

both!(events_are_listed_in_each_whitelisted_order);
async fn events_are_listed_in_each_whitelisted_order(store: Store) {
    let (acme, node) = tenant_with_node(&store, "acme", "h1").await;
    // Node times run backwards against arrival: each order gives a different sequence.
    for i in 0..9u32 {
        let mut e = event(&ulid(i + 1), u64::from(i + 1), "hq");
        e.node_time_ms = 1_000_000 - i64::from(i) * 1000;
        store
            .ingest(&acme, &node, vec![e], audit())
            .await
            .expect("ingest");
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    for sort in Sort::ALLOWED {
        let sort = Sort::parse(sort).expect("allowed");
        let filter = EventFilter {
            sort,
            ..EventFilter::default()
        };
        let all = store
            .events(&acme, filter.clone(), PageStart::Offset(0), 100)
            .await
            .expect("all");
        let key = |e: &rollcall_protocol::wire::StoredEvent| match sort.key {
            events_query::SortKey::NodeTime => e.event.node_time_ms,
            events_query::SortKey::Received => e.received_ms,
        };
        let mut wanted = all.clone();
        wanted.sort_by(|a, b| (key(a), &a.event.id).cmp(&(key(b), &b.event.id)));
        if sort.descending {
            wanted.reverse();
        }
        assert_eq!(all, wanted, "{}", sort.as_str());
        // Walking by cursor gives the same sequence, page after page.
        let mut walked = Vec::new();
        let mut start = PageStart::Offset(0);
        loop {
            let page = store
                .events(&acme, filter.clone(), start, 4)
                .await
                .expect("page");
            let Some(last) = page.last() else { break };
            start = PageStart::After(Cursor {
                sort,
                key: key(last),
                id: last.event.id.clone(),
            });
            walked.extend(page);
        }
        assert_eq!(walked, all, "{}", sort.as_str());
    }
}

both!(the_watermark_names_what_a_node_still_owes);
async fn the_watermark_names_what_a_node_still_owes(store: Store) {
    use rollcall_protocol::wire::SeqRange;
    let (acme, node) = tenant_with_node(&store, "acme", "h1").await;
    let push = |seqs: &[u64]| {
        let events: Vec<_> = seqs
            .iter()
            .map(|&s| event(&ulid(u32::try_from(s).unwrap_or(0)), s, "hq"))
            .collect();
        let (store, acme, node) = (store.clone(), acme.clone(), node.clone());
        async move {
            store
                .ingest(&acme, &node, events, audit())
                .await
                .expect("ingest")
        }
    };
    let ack = push(&[1, 2, 4, 5, 9]).await;
    assert_eq!(ack.watermark, 2);
    assert_eq!(
        ack.missing,
        [
            SeqRange { first: 3, last: 3 },
            SeqRange { first: 6, last: 8 }
        ]
    );
    let ack = push(&[3]).await;
    assert_eq!(
        (ack.watermark, ack.missing.clone()),
        (5, vec![SeqRange { first: 6, last: 8 }])
    );
    // A repeated push changes nothing; the gap filled lifts the watermark to the top.
    let ack = push(&[3, 4]).await;
    assert_eq!((ack.watermark, ack.duplicate.len()), (5, 2));
    let ack = push(&[6, 7, 8]).await;
    assert_eq!((ack.watermark, ack.missing.clone()), (9, vec![]));
    let nodes = store.nodes(&acme).await.expect("nodes");
    assert_eq!(nodes[0].watermark, 9);
    // Items the cloud refuses are settled (the node dead-letters them): they hold nothing back.
    let ack = store
        .ingest(
            &acme,
            &node,
            vec![
                event(&ulid(10), 10, "elsewhere"),
                event(&ulid(1), 11, "hq"),
                event(&ulid(12), 12, "hq"),
            ],
            audit(),
        )
        .await
        .expect("ingest");
    assert_eq!(ack.rejected.len(), 2, "{ack:?}");
    assert_eq!((ack.watermark, ack.missing), (12, vec![]));
    // The cloud's admins see them, newest first, with the reasons the node got.
    let refused = store
        .node_rejections(&acme, &node.id, 10)
        .await
        .expect("rejections")
        .expect("a node of acme");
    let seen: Vec<(u64, &str)> = refused
        .iter()
        .map(|r| (r.seq, r.reason.split(':').next().unwrap_or_default()))
        .collect();
    assert_eq!(seen, [(11, "id_conflict"), (10, "site_mismatch")]);
    // Another node of another tenant starts from nothing.
    let (globex, other) = tenant_with_node(&store, "globex", "h2").await;
    let ack = store
        .ingest(&globex, &other, vec![event(&ulid(50), 2, "hq")], audit())
        .await
        .expect("ingest");
    assert_eq!(
        (ack.watermark, ack.missing),
        (0, vec![SeqRange { first: 1, last: 1 }])
    );
    // Nor does one tenant see another's node.
    assert!(
        store
            .node_rejections(&globex, &node.id, 10)
            .await
            .expect("rejections")
            .is_none()
    );
}

both!(alarms_and_node_audit_lines_are_stored_once_per_tenant);
async fn alarms_and_node_audit_lines_are_stored_once_per_tenant(store: Store) {
    use records::AlarmFilter;
    use rollcall_protocol::wire::{AlarmRecord, AuditRecord};
    let (acme, node) = tenant_with_node(&store, "acme", "h1").await;
    let alarm = |n: u32, kind: &str| AlarmRecord {
        id: ulid(n),
        seq: u64::from(n),
        kind: kind.into(),
        pd: Some(0),
        detail: format!("alarm {n}"),
        node_time_ms: 1_000 + i64::from(n),
    };
    let line = AuditRecord {
        id: ulid(100),
        seq: 1,
        actor: "admin".into(),
        action: "person.deleted".into(),
        subject: "p1".into(),
        detail: String::new(),
        node_time_ms: 5,
    };
    let batch = PushBatch {
        protocol: 1,
        events: vec![event(A, 1, "hq")],
        alarms: vec![
            alarm(1, "door_forced"),
            alarm(2, "tamper"),
            alarm(3, "tamper"),
        ],
        audit: vec![line.clone()],
        people: vec![],
        voice: vec![],
    };
    let ack = store
        .ingest_batch(&acme, &node, batch.clone(), None, audit())
        .await
        .expect("ingest");
    assert_eq!((ack.accepted.len(), ack.watermark), (5, 1), "{ack:?}");
    // Again: every item a duplicate, in one transaction with the events'.
    let ack = store
        .ingest_batch(&acme, &node, batch, None, audit())
        .await
        .expect("ingest");
    assert_eq!((ack.accepted.len(), ack.duplicate.len()), (0, 5), "{ack:?}");
    let all = store
        .alarms(&acme, AlarmFilter::default(), 10)
        .await
        .expect("alarms");
    let seqs: Vec<u64> = all.iter().map(|a| a.alarm.seq).collect();
    assert_eq!(seqs, [3, 2, 1], "newest first");
    assert_eq!(
        (all[0].node_id.as_str(), all[0].site_id.as_str()),
        (node.id.as_str(), "hq")
    );
    let filter = |kind: Option<&str>, before: Option<&AlarmRecord>| AlarmFilter {
        kind: kind.map(str::to_owned),
        before: before.map(|a| (a.node_time_ms, a.id.clone())),
        ..AlarmFilter::default()
    };
    let tamper = store
        .alarms(&acme, filter(Some("tamper"), None), 10)
        .await
        .expect("alarms");
    assert_eq!(tamper.len(), 2);
    // Alarms 1..=3 were raised at node times 1001..=1003.
    let window = store
        .alarms(
            &acme,
            AlarmFilter {
                from_ms: Some(1_002),
                to_ms: Some(1_003),
                ..AlarmFilter::default()
            },
            10,
        )
        .await
        .expect("alarms");
    assert_eq!(window.iter().map(|a| a.alarm.seq).collect::<Vec<_>>(), [2]);
    let older = store
        .alarms(&acme, filter(None, Some(&all[0].alarm)), 10)
        .await
        .expect("alarms");
    assert_eq!(older, all[1..], "the page after the newest");
    let lines = store
        .node_audit(&acme, &node.id, None, 10)
        .await
        .expect("audit")
        .expect("acme's node");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].line, line);
    assert!(
        store
            .node_audit(&acme, &node.id, Some(1), 10)
            .await
            .expect("audit")
            .is_some_and(|l| l.is_empty())
    );
    // Another tenant sees none of it, and its node's sequences are its own.
    let (globex, other) = tenant_with_node(&store, "globex", "h2").await;
    assert!(
        store
            .alarms(&globex, AlarmFilter::default(), 10)
            .await
            .expect("alarms")
            .is_empty()
    );
    assert!(
        store
            .node_audit(&globex, &node.id, None, 10)
            .await
            .expect("audit")
            .is_none()
    );
    let theirs = PushBatch {
        protocol: 1,
        events: vec![],
        alarms: vec![AlarmRecord {
            id: ulid(200),
            ..alarm(1, "tamper")
        }],
        audit: vec![],
        people: vec![],
        voice: vec![],
    };
    let ack = store
        .ingest_batch(&globex, &other, theirs, None, audit())
        .await
        .expect("ingest");
    assert_eq!(ack.accepted, [ulid(200)]);
}

both!(a_model_name_keeps_the_embedding_length_of_its_first_template);
async fn a_model_name_keeps_the_embedding_length_of_its_first_template(store: Store) {
    use crate::server::people::store::TEMPLATE_DIMENSION;
    use crate::server::sealing::MasterKey;
    use base64::Engine as _;
    use rollcall_protocol::{
        merge::Hlc,
        wire::{PersonState, PersonUpload, TemplateRecord},
    };
    use templates::NewTemplate;
    let master = MasterKey::from_bytes([9; 32]);
    let acme = with_sites(&store, "acme", &["hq"]).await;
    let globex = with_sites(&store, "globex", &["hq"]).await;
    for scope in [&acme, &globex] {
        store
            .create_person(scope, person("p1", &["hq"]), audit())
            .await
            .expect("person");
    }
    let t = |id: &str, model: &str, dim: usize| NewTemplate {
        id: id.into(),
        person_id: "p1".into(),
        model: model.into(),
        vector: vec![0.1; dim],
    };
    store
        .add_template(&acme, &master, t("t1", "mfn", 192), audit())
        .await
        .expect("the first binds mfn to 192");
    let r = store
        .add_template(&acme, &master, t("t2", "mfn", 128), audit())
        .await;
    assert!(refused(&r, &TEMPLATE_DIMENSION), "{r:?}");
    let said = r.expect_err("refused").to_string();
    assert!(said.contains("192") && said.contains("128"), "{said}");
    // Another model name, or another tenant, binds afresh.
    for (scope, id, model) in [(&acme, "t3", "facenet"), (&globex, "t4", "mfn")] {
        store
            .add_template(scope, &master, t(id, model, 128), audit())
            .await
            .expect("another binding");
    }
    assert_eq!(store.templates(&acme, "p1").await.expect("q").len(), 2);

    // A node's push: the person with a template of the wrong length is refused alone, with
    // nothing of theirs stored; the others are merged.
    let node = store
        .node_by_token_hash(&acme, "h-acme")
        .await
        .expect("query")
        .expect("node");
    let now = rollcall_service::clock::now_ms().unsigned_abs();
    let upload = |n: u32, person: &str, dims: &[usize]| PersonUpload {
        id: ulid(n),
        person_id: person.into(),
        hlc: Hlc {
            ms: now - 1_000,
            counter: n,
            origin: "n".into(),
        },
        state: PersonState::Assigned {
            display_name: "Ann".into(),
            templates: dims
                .iter()
                .enumerate()
                .map(|(i, d)| TemplateRecord {
                    id: format!("{person}-t{i}"),
                    model: "mfn".into(),
                    vector: base64::engine::general_purpose::STANDARD.encode(
                        std::iter::repeat_n(0.2f32, *d)
                            .flat_map(f32::to_le_bytes)
                            .collect::<Vec<u8>>(),
                    ),
                })
                .collect(),
        },
    };
    let batch = PushBatch {
        protocol: 1,
        events: vec![],
        alarms: vec![],
        audit: vec![],
        people: vec![
            upload(1, "wrong", &[128]),
            upload(2, "mixed", &[192, 128]),
            upload(3, "right", &[192]),
        ],
        voice: vec![],
    };
    let ack = store
        .ingest_batch(&acme, &node, batch, Some(&master), audit())
        .await
        .expect("ingest");
    assert_eq!(ack.accepted, [ulid(3)], "{ack:?}");
    let reasons: Vec<&str> = ack.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons.len(), 2, "{ack:?}");
    assert!(
        reasons
            .iter()
            .all(|r| r.starts_with("template_dimension: ")),
        "{reasons:?}"
    );
    for refused in ["wrong", "mixed"] {
        assert!(store.person(&acme, refused).await.expect("q").is_none());
    }
}

both!(people_pushed_by_a_node_merge_by_their_clock_and_losers_are_kept);
async fn people_pushed_by_a_node_merge_by_their_clock_and_losers_are_kept(store: Store) {
    use crate::server::sealing::MasterKey;
    use base64::Engine as _;
    use rollcall_protocol::{
        merge::Hlc,
        wire::{PersonState, PersonUpload, TemplateRecord},
    };
    let master = MasterKey::from_bytes([9; 32]);
    let acme = with_sites(&store, "acme", &["hq"]).await;
    let node = store
        .node_by_token_hash(&acme, "h-acme")
        .await
        .expect("query")
        .expect("node");
    let now = rollcall_service::clock::now_ms().unsigned_abs();
    let vector = |x: f32| {
        base64::engine::general_purpose::STANDARD.encode(
            std::iter::repeat_n(x, 128)
                .flat_map(f32::to_le_bytes)
                .collect::<Vec<u8>>(),
        )
    };
    let upload = |n: u32, person: &str, ms: u64, state: PersonState| PersonUpload {
        id: ulid(n),
        person_id: person.into(),
        hlc: Hlc {
            ms,
            counter: 0,
            // Whatever the node writes, the cloud records the node as the origin.
            origin: "spoofed".into(),
        },
        state,
    };
    let assigned = |name: &str, templates: &[(&str, f32)]| PersonState::Assigned {
        display_name: name.into(),
        templates: templates
            .iter()
            .map(|(id, x)| TemplateRecord {
                id: (*id).into(),
                model: "mfn".into(),
                vector: vector(*x),
            })
            .collect(),
    };
    let push = |people: Vec<PersonUpload>| {
        let (store, acme, node, master) = (&store, &acme, &node, &master);
        async move {
            let batch = PushBatch {
                protocol: 1,
                events: vec![],
                alarms: vec![],
                audit: vec![],
                people,
                voice: vec![],
            };
            store
                .ingest_batch(acme, node, batch, Some(master), audit())
                .await
                .expect("ingest")
        }
    };
    // Enrolled at the node: the cloud creates them at the node's site, templates sealed.
    let first = upload(1, "n1", now - 2_000, assigned("Ann", &[("t1", 0.5)]));
    let ack = push(vec![first.clone()]).await;
    assert_eq!(ack.accepted, [ulid(1)], "{ack:?}");
    let p = store.person(&acme, "n1").await.expect("q").expect("n1");
    assert_eq!(
        (p.display_name.as_str(), p.site_ids.clone(), p.templates),
        ("Ann", vec!["hq".to_owned()], 1)
    );
    let opened = store
        .template_vectors(&acme, &master, "n1")
        .await
        .expect("open");
    assert_eq!(opened[0].1, vec![0.5; 128]);
    let feed = store
        .person_changes_after(&acme, 0, 10)
        .await
        .expect("feed");
    let mine = feed
        .iter()
        .find(|c| c.person_id == "n1")
        .expect("in the feed");
    assert_eq!(
        (mine.hlc.ms, mine.hlc.origin.as_str()),
        (now - 2_000, node.id.as_str())
    );
    // Pushed again (a lost ack): a duplicate, nothing changes.
    let ack = push(vec![first]).await;
    assert_eq!(ack.duplicate, [ulid(1)], "{ack:?}");
    // An admin renames them in the cloud; the node's older edit arrives later and loses.
    store
        .update_person(
            &acme,
            "n1",
            people::PersonPatch {
                display_name: Some("Ann B.".into()),
                ..Default::default()
            },
            audit(),
        )
        .await
        .expect("rename");
    let stale = upload(2, "n1", now - 1_000, assigned("Anne", &[("t1", 0.5)]));
    assert_eq!(push(vec![stale.clone()]).await.accepted, [ulid(2)]);
    assert_eq!(
        store
            .person(&acme, "n1")
            .await
            .expect("q")
            .expect("n1")
            .display_name,
        "Ann B."
    );
    assert_eq!(push(vec![stale]).await.duplicate, [ulid(2)], "kept once");
    // A later node edit wins: its templates of the model replace the cloud's, and the cloud's
    // version it replaced is kept.
    let later = upload(3, "n1", now + 1_000, assigned("Ann C.", &[("t2", 0.25)]));
    assert_eq!(push(vec![later]).await.accepted, [ulid(3)]);
    let p = store.person(&acme, "n1").await.expect("q").expect("n1");
    assert_eq!((p.display_name.as_str(), p.templates), ("Ann C.", 1));
    let opened = store
        .template_vectors(&acme, &master, "n1")
        .await
        .expect("open");
    assert_eq!((opened[0].0.id.as_str(), opened[0].1[0]), ("t2", 0.25));
    let history = store
        .person_history(&acme, "n1", 10)
        .await
        .expect("history");
    let told: Vec<(&str, &serde_json::Value)> = history
        .iter()
        .map(|h| (h.outcome.as_str(), &h.state["display_name"]))
        .collect();
    assert_eq!(
        told,
        [
            ("replaced", &serde_json::json!("Ann B.")),
            ("lost", &serde_json::json!("Anne"))
        ]
    );
    assert!(history.iter().all(|h| h.node_id == node.id));
    // The cloud's own next edit orders after the node's version, although its clock is behind.
    store
        .update_person(
            &acme,
            "n1",
            people::PersonPatch {
                active: Some(true),
                ..Default::default()
            },
            audit(),
        )
        .await
        .expect("edit");
    let feed = store
        .person_changes_after(&acme, 0, 10)
        .await
        .expect("feed");
    let last = feed.iter().find(|c| c.person_id == "n1").expect("n1");
    assert_eq!(last.hlc.origin, "cloud");
    assert!(last.hlc.ms >= now + 1_000, "{:?}", last.hlc);
    // A template id of another person is refused, alone; so is a clock far ahead, a node
    // erasing, and anything else malformed.
    let theirs = upload(4, "n2", now, assigned("Bo", &[("t2", 0.1)]));
    let ahead = upload(5, "n3", now + 3_600_000, assigned("Cy", &[]));
    let erasing = upload(6, "n1", now + 2_000, PersonState::Erased);
    let fine = upload(7, "n4", now, assigned("Dee", &[("t4", 0.3)]));
    let ack = push(vec![theirs, ahead, erasing, fine]).await;
    let reasons: Vec<&str> = ack
        .rejected
        .iter()
        .map(|r| r.reason.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(
        reasons,
        ["template_conflict", "clock_ahead", "invalid_person"],
        "{ack:?}"
    );
    assert_eq!(ack.accepted, [ulid(7)]);
    assert!(store.person(&acme, "n2").await.expect("q").is_none());
    // Removed at the node's site by a later edit: unassigned there, kept in the tenant.
    let removed = upload(8, "n1", now + 120_000, PersonState::Unassigned);
    assert_eq!(push(vec![removed]).await.accepted, [ulid(8)]);
    let p = store.person(&acme, "n1").await.expect("q").expect("n1");
    assert!(p.site_ids.is_empty(), "{p:?}");
    // Erased in the cloud: no node version brings them back, however late.
    assert!(
        store
            .delete_person(&acme, "n4", audit())
            .await
            .expect("erase")
    );
    let revived = upload(9, "n4", now + 200_000, assigned("Dee", &[]));
    assert_eq!(push(vec![revived]).await.accepted, [ulid(9)]);
    assert!(store.person(&acme, "n4").await.expect("q").is_none());
    let history = store
        .person_history(&acme, "n4", 10)
        .await
        .expect("history");
    assert_eq!(history[0].outcome, "lost");
    // A node whose site the cloud lacks is refused, to be retried once an admin creates it.
    let (bare, bare_node) = tenant_with_node(&store, "bare", "h-bare").await;
    let batch = PushBatch {
        protocol: 1,
        events: vec![],
        alarms: vec![],
        audit: vec![],
        people: vec![upload(10, "z1", now, assigned("Zed", &[]))],
        voice: vec![],
    };
    let ack = store
        .ingest_batch(&bare, &bare_node, batch, Some(&master), audit())
        .await
        .expect("ingest");
    assert!(
        ack.rejected[0].reason.starts_with("unknown_site"),
        "{ack:?}"
    );
    // Another tenant sees none of it.
    assert!(
        store
            .person_history(&bare, "n1", 10)
            .await
            .expect("history")
            .is_empty()
    );
}

both!(voice_records_are_stored_once_their_audio_is_and_stay_in_their_tenant);
async fn voice_records_are_stored_once_their_audio_is_and_stay_in_their_tenant(store: Store) {
    use rollcall_protocol::wire::VoiceRecord;
    use sha2::Digest as _;
    let (acme, node) = tenant_with_node(&store, "acme", "h1").await;
    let (globex, other) = tenant_with_node(&store, "globex", "h2").await;
    let audio = rollcall_protocol::wav::tone(440.0, 800);
    let sha = hex::encode(sha2::Sha256::digest(&audio));
    let voice = |n: u32, sha: &str| VoiceRecord {
        id: ulid(n),
        seq: u64::from(n),
        person_id: Some("E-1".into()),
        outcome: "verified".into(),
        score: Some(0.9),
        device: "phone-1".into(),
        phrase: None,
        audio_sha256: sha.into(),
        audio_bytes: audio.len() as u64,
        duration_ms: 800,
        node_time_ms: 1_000 + i64::from(n),
    };
    let push = |voice: Vec<VoiceRecord>| PushBatch {
        protocol: 1,
        events: vec![],
        alarms: vec![],
        audit: vec![],
        people: vec![],
        voice,
    };
    // Before its audio: refused as blob_missing, nothing stored; then the audio.
    refused_until_its_audio(&store, &acme, &node, push(vec![voice(1, &sha)]), &audio).await;
    assert!(
        !store
            .put_voice_blob(&acme, &node, sha.clone(), audio.clone(), 800)
            .await
            .expect("again"),
        "held already"
    );
    let ack = store
        .ingest_batch(
            &acme,
            &node,
            push(vec![voice(1, &sha), voice(2, &sha)]),
            None,
            audit(),
        )
        .await
        .expect("ingest");
    assert_eq!(ack.accepted, [ulid(1), ulid(2)], "{ack:?}");
    let ack = store
        .ingest_batch(&acme, &node, push(vec![voice(2, &sha)]), None, audit())
        .await
        .expect("ingest");
    assert_eq!(ack.duplicate, [ulid(2)]);
    let listed = store
        .node_voice(&acme, &node.id, None, 10)
        .await
        .expect("list")
        .expect("node");
    let seqs: Vec<u64> = listed.iter().map(|v| v.record.seq).collect();
    assert_eq!(seqs, [2, 1], "newest first");
    assert_eq!(listed[0].record.audio_sha256, sha);
    let older = store
        .node_voice(&acme, &node.id, Some(2), 10)
        .await
        .expect("list")
        .expect("node");
    assert_eq!(older.len(), 1);
    assert_eq!(
        store.voice_audio(&acme, &ulid(1)).await.expect("audio"),
        Some(audio.clone())
    );
    // The other tenant: no records, no audio, no node; its own copy of the same audio is its own.
    assert_eq!(
        store.voice_audio(&globex, &ulid(1)).await.expect("audio"),
        None
    );
    assert!(
        store
            .node_voice(&globex, &node.id, None, 10)
            .await
            .expect("list")
            .is_none()
    );
    refused_until_its_audio(&store, &globex, &other, push(vec![voice(3, &sha)]), &audio).await;
}

/// Pushes `batch` (one voice record of `audio`), which is refused for want of its audio; then
/// stores the audio, new to the tenant.
async fn refused_until_its_audio(
    store: &Store,
    scope: &TenantScope,
    node: &NodeRow,
    batch: PushBatch,
    audio: &[u8],
) {
    use sha2::Digest as _;
    let ack = store
        .ingest_batch(scope, node, batch, None, audit())
        .await
        .expect("ingest");
    assert!(
        ack.rejected[0].reason.starts_with("blob_missing"),
        "{ack:?}"
    );
    let sha = hex::encode(sha2::Sha256::digest(audio));
    assert!(
        store
            .put_voice_blob(scope, node, sha, audio.to_vec(), 800)
            .await
            .expect("blob")
    );
}

both!(card_revocations_are_pulled_once_each_as_they_stand);
async fn card_revocations_are_pulled_once_each_as_they_stand(store: Store) {
    let (acme, _) = tenant_with_node(&store, "acme", "h1").await;
    let (globex, _) = tenant_with_node(&store, "globex", "h2").await;
    for card in ["12:3456", "7:1"] {
        assert!(
            store
                .set_card_revoked(&acme, card, true, "lost", audit())
                .await
                .expect("revoke")
                .is_some()
        );
    }
    let all = store.revocations_after(&acme, 0, 10).await.expect("pull");
    let cards: Vec<(&str, bool)> = all
        .iter()
        .map(|(_, r)| (r.card.as_str(), r.revoked))
        .collect();
    assert_eq!(cards, [("12:3456", true), ("7:1", true)]);
    let cursor = all.last().expect("two").0;
    assert!(
        store
            .revocations_after(&acme, cursor, 10)
            .await
            .expect("pull")
            .is_empty()
    );
    // Reinstated: the card comes again, later, as it stands; a card never revoked cannot be.
    assert!(
        store
            .set_card_revoked(&acme, "12:3456", false, "", audit())
            .await
            .expect("reinstate")
            .is_some()
    );
    assert!(
        store
            .set_card_revoked(&acme, "99:9", false, "", audit())
            .await
            .expect("nothing to reinstate")
            .is_none()
    );
    let after = store
        .revocations_after(&acme, cursor, 10)
        .await
        .expect("pull");
    assert_eq!(after.len(), 1);
    assert_eq!(
        (after[0].1.card.as_str(), after[0].1.revoked),
        ("12:3456", false)
    );
    assert!(after[0].0 > cursor);
    let listed = store.revoked_cards(&acme).await.expect("list");
    assert_eq!(
        listed.iter().map(|r| r.card.as_str()).collect::<Vec<_>>(),
        ["7:1"]
    );
    assert_eq!(listed[0].revoked_by, "test");
    // Another tenant: none of it.
    assert!(
        store
            .revocations_after(&globex, 0, 10)
            .await
            .expect("pull")
            .is_empty()
    );
    assert!(store.revoked_cards(&globex).await.expect("list").is_empty());
}

both!(record_streams_have_watermarks_and_tell_their_gaps);
async fn record_streams_have_watermarks_and_tell_their_gaps(store: Store) {
    use rollcall_protocol::wire::SeqRange;
    let (acme, node) = tenant_with_node(&store, "acme", "h1").await;
    let line = audit_line;
    let push = |audit| records_batch(vec![], audit);
    // 1, 2 stored; 3 refused (settled); 5 stored, 4 never arrived: the gap is told.
    let ack = store
        .ingest_batch(
            &acme,
            &node,
            push(vec![
                line(1, "a"),
                line(2, "b"),
                line(3, "Bad"),
                line(5, "e"),
            ]),
            None,
            audit(),
        )
        .await
        .expect("ingest");
    assert_eq!(ack.streams.len(), 1, "{ack:?}");
    assert_eq!(
        (ack.streams[0].stream.as_str(), ack.streams[0].watermark),
        ("audit", 3)
    );
    assert_eq!(ack.streams[0].missing, [SeqRange { first: 4, last: 4 }]);
    // The node sends 4 again: the watermark passes 5.
    let ack = store
        .ingest_batch(&acme, &node, push(vec![line(4, "d")]), None, audit())
        .await
        .expect("ingest");
    assert_eq!(
        (ack.streams[0].watermark, ack.streams[0].missing.len()),
        (5, 0),
        "{ack:?}"
    );
    // A push without audit lines says nothing of them.
    let ack = store
        .ingest_batch(&acme, &node, push(vec![]), None, audit())
        .await
        .expect("ingest");
    assert!(ack.streams.is_empty());
}

both!(a_node_registered_in_place_of_another_carries_on_its_history);
async fn a_node_registered_in_place_of_another_carries_on_its_history(store: Store) {
    let (acme, old) = tenant_with_node(&store, "acme", "h1").await;
    let line = audit_line(1, "person.deleted");
    let batch = records_batch;
    let ack = store
        .ingest_batch(
            &acme,
            &old,
            batch(
                (1..=3).map(|n| event(&ulid(n), n.into(), "hq")).collect(),
                vec![line.clone()],
            ),
            None,
            audit(),
        )
        .await
        .expect("ingest");
    assert_eq!(ack.watermark, 3);
    // Refused: not the tenant's node, or another site's.
    for (replaces, site) in [("node-x", "hq"), (old.id.as_str(), "annex")] {
        let r = store
            .register_node_replacing(&acme, "acme-n9", site, "h9", Some(replaces), audit())
            .await;
        assert!(
            refused(&r, &UNKNOWN_NODE) || refused(&r, &NODE_OF_ANOTHER_SITE),
            "{r:?}"
        );
    }
    store
        .register_node_replacing(&acme, "acme-n2", "hq", "h2", Some(&old.id), audit())
        .await
        .expect("replace");
    assert!(
        store
            .node_by_token_hash(&acme, "h1")
            .await
            .expect("q")
            .is_none(),
        "the old credential is revoked"
    );
    let new = store
        .node_by_token_hash(&acme, "h2")
        .await
        .expect("q")
        .expect("new node");
    // The node sends its history again (it was told nothing is missing, but a retry may):
    // duplicates; its next event continues the watermark.
    let ack = store
        .ingest_batch(
            &acme,
            &new,
            batch(
                (1..=4).map(|n| event(&ulid(n), n.into(), "hq")).collect(),
                vec![line],
            ),
            None,
            audit(),
        )
        .await
        .expect("ingest");
    assert_eq!((ack.accepted.len(), ack.duplicate.len()), (1, 4), "{ack:?}");
    assert_eq!((ack.watermark, ack.missing.len()), (4, 0), "{ack:?}");
    assert_eq!(ack.streams[0].watermark, 1);
    let events = store
        .events(&acme, EventFilter::default(), PageStart::Offset(0), 10)
        .await
        .expect("events");
    assert!(events.iter().all(|e| e.node_id == "acme-n2"), "{events:?}");
}

/// Audit line `n` of a node (its sequence number too).
fn audit_line(n: u32, action: &str) -> rollcall_protocol::wire::AuditRecord {
    rollcall_protocol::wire::AuditRecord {
        id: ulid(n),
        seq: u64::from(n),
        actor: "admin".into(),
        action: action.into(),
        subject: "p1".into(),
        detail: String::new(),
        node_time_ms: i64::from(n),
    }
}

/// A push of events and audit lines.
fn records_batch(
    events: Vec<AttendanceEvent>,
    audit: Vec<rollcall_protocol::wire::AuditRecord>,
) -> PushBatch {
    PushBatch {
        protocol: 1,
        events,
        alarms: vec![],
        audit,
        people: vec![],
        voice: vec![],
    }
}
