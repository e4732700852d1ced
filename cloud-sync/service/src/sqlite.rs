//! How every rollcall SQLite file is opened: WAL (readers never block the writer for long),
//! `synchronous=FULL` (a committed transaction survives power loss), foreign keys on, a busy
//! timeout, and forward-only migrations numbered by `PRAGMA user_version`.

use std::{path::Path, time::Duration};

use rusqlite::Connection;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error(
        "the database is at schema version {found}, newer than this program knows ({known}): \
         refusing to touch it (upgrade the program)"
    )]
    TooNew { found: i64, known: usize },
}

/// Opens (creating if needed) and migrates the database at `path`. `migrations[i]` takes the
/// schema from version `i` to `i + 1`; each runs in its own transaction.
pub fn open_migrated(path: &Path, migrations: &[&str]) -> Result<Connection, OpenError> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > migrations.len() as i64 {
        return Err(OpenError::TooNew {
            found: version,
            known: migrations.len(),
        });
    }
    for (i, sql) in migrations.iter().enumerate().skip(version.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(conn)
}

/// A read-only connection to a database another connection of this process opened with
/// [`open_migrated`] (so it is in WAL mode and migrated): it reads the last commit while that
/// writer is in the middle of a transaction, and refuses to write.
pub fn open_reader(path: &Path) -> Result<Connection, rusqlite::Error> {
    use rusqlite::OpenFlags;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_sees_the_last_commit_during_a_write_and_cannot_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite");
        let writer = open_migrated(
            &path,
            &["CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);"],
        )
        .expect("open");
        let reader = open_reader(&path).expect("reader");
        writer
            .execute_batch("BEGIN IMMEDIATE; UPDATE a SET x = 2;")
            .expect("write under way");
        let x: i64 = reader
            .query_row("SELECT x FROM a", [], |r| r.get(0))
            .expect("read during the write");
        assert_eq!(x, 1);
        writer.execute_batch("COMMIT").expect("commit");
        let x: i64 = reader
            .query_row("SELECT x FROM a", [], |r| r.get(0))
            .expect("read");
        assert_eq!(x, 2);
        assert!(reader.execute("UPDATE a SET x = 3", []).is_err());
    }

    #[test]
    fn migrates_forward_once_and_refuses_a_newer_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite");
        let v1 = ["CREATE TABLE a (x INTEGER);"];
        let v2 = [
            "CREATE TABLE a (x INTEGER);",
            "ALTER TABLE a ADD COLUMN y INTEGER;",
        ];
        open_migrated(&path, &v1).expect("v1");
        let conn = open_migrated(&path, &v2).expect("v2 on top of v1");
        conn.execute("INSERT INTO a (x, y) VALUES (1, 2)", [])
            .expect("v2 schema");
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("pragma");
        assert_eq!(mode, "wal");
        drop(conn);
        open_migrated(&path, &v2).expect("reopening runs nothing");
        assert!(matches!(
            open_migrated(&path, &v1),
            Err(OpenError::TooNew { found: 2, known: 1 })
        ));
    }
}
