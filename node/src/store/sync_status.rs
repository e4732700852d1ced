//! How the node's last sync rounds went, kept in the database so that `rollcall-node doctor`
//! (another process) can tell an installer why a site is not syncing.

use rusqlite::{OptionalExtension, params};

use super::{NodeStore, StoreError};

pub(super) const MIGRATION: &str = "CREATE TABLE sync_status (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_success_ms INTEGER,
        last_error_ms INTEGER,
        last_error TEXT
    );";

/// Longest error text kept.
const MAX_ERROR: usize = 500;

/// The last successful and the last failed sync round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatus {
    pub last_success_ms: Option<i64>,
    pub last_error_ms: Option<i64>,
    pub last_error: Option<String>,
}

impl SyncStatus {
    /// Whether the last round failed (an error newer than the last success).
    pub fn failing(&self) -> bool {
        match (self.last_error_ms, self.last_success_ms) {
            (Some(e), Some(s)) => e > s,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

impl NodeStore {
    pub fn record_sync_success(&self, at_ms: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO sync_status (id, last_success_ms) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET last_success_ms = excluded.last_success_ms",
            [at_ms],
        )?;
        Ok(())
    }

    pub fn record_sync_error(&self, at_ms: i64, error: &str) -> Result<(), StoreError> {
        let text: String = error.chars().take(MAX_ERROR).collect();
        self.conn.execute(
            "INSERT INTO sync_status (id, last_error_ms, last_error) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET last_error_ms = excluded.last_error_ms, last_error = excluded.last_error",
            params![at_ms, text],
        )?;
        Ok(())
    }

    pub fn sync_status(&self) -> Result<SyncStatus, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_success_ms, last_error_ms, last_error FROM sync_status WHERE id = 1",
                [],
                |r| {
                    Ok(SyncStatus {
                        last_success_ms: r.get(0)?,
                        last_error_ms: r.get(1)?,
                        last_error: r.get(2)?,
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::store;

    #[test]
    fn the_last_error_is_kept_until_a_later_success() {
        let (_dir, s) = store();
        assert!(!s.sync_status().expect("status").failing());
        s.record_sync_error(10, &"x".repeat(2000)).expect("error");
        let status = s.sync_status().expect("status");
        assert!(status.failing());
        assert_eq!(status.last_error.map(|e| e.len()), Some(500));
        s.record_sync_success(20).expect("success");
        let status = s.sync_status().expect("status");
        assert!(!status.failing(), "{status:?}");
        assert_eq!(
            status.last_error_ms,
            Some(10),
            "the error stays, as history"
        );
    }
}
