//! Cards the tenant's admins revoked in the cloud: pulled with their own cursor, kept here so
//! the readers refuse them even with the cloud out of reach.

use rollcall_protocol::wire::{CardRevocation, STREAM_REVOCATIONS};
use rusqlite::{OptionalExtension, params};

use super::{NodeStore, StoreError, now_ms};

pub(super) const MIGRATION: &str = "CREATE TABLE card_revocations (
        card TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        changed_ms INTEGER NOT NULL
    );";

impl NodeStore {
    /// Applies a page of revocations and moves the stream's cursor to `cursor`, in one
    /// transaction (a page pulled twice changes nothing the second time); each change goes to
    /// the audit log.
    pub fn apply_revocations(
        &mut self,
        items: &[CardRevocation],
        cursor: u64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for r in items {
            let changed = if r.revoked {
                tx.execute(
                    "INSERT INTO card_revocations (card, reason, changed_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (card) DO UPDATE SET reason = excluded.reason, changed_ms = excluded.changed_ms
                     WHERE card_revocations.changed_ms != excluded.changed_ms",
                    params![r.card, r.reason, r.changed_ms],
                )?
            } else {
                tx.execute("DELETE FROM card_revocations WHERE card = ?1", [&r.card])?
            };
            if changed > 0 {
                tx.execute(
                    "INSERT INTO audit (at_ms, actor, action, subject, detail) VALUES (?1, 'cloud', ?2, ?3, ?4)",
                    params![
                        now_ms(),
                        if r.revoked { "card.revoked" } else { "card.reinstated" },
                        r.card,
                        r.reason
                    ],
                )?;
            }
        }
        tx.execute(
            "INSERT INTO sync_cursors (stream, cursor) VALUES (?1, ?2)
             ON CONFLICT (stream) DO UPDATE SET cursor = excluded.cursor",
            params![
                STREAM_REVOCATIONS,
                i64::try_from(cursor).unwrap_or(i64::MAX)
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Why `card` was revoked, if it is.
    pub fn card_revocation(&self, card: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT reason FROM card_revocations WHERE card = ?1",
                [card],
                |r| r.get(0),
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::store;
    use super::*;

    fn change(card: &str, revoked: bool, at: i64) -> CardRevocation {
        CardRevocation {
            card: card.into(),
            revoked,
            reason: if revoked {
                "lost".into()
            } else {
                String::new()
            },
            changed_ms: at,
        }
    }

    #[test]
    fn revocations_apply_once_move_the_cursor_and_are_audited() {
        let (_dir, mut s) = store();
        s.apply_revocations(&[change("12:3456", true, 1), change("7:1", true, 1)], 2)
            .expect("apply");
        assert_eq!(
            s.card_revocation("12:3456").expect("q").as_deref(),
            Some("lost")
        );
        assert_eq!(s.sync_cursor(STREAM_REVOCATIONS).expect("cursor"), 2);
        // The same page again: nothing new on the audit log.
        s.apply_revocations(&[change("12:3456", true, 1)], 2)
            .expect("again");
        s.apply_revocations(&[change("7:1", false, 3)], 3)
            .expect("reinstate");
        assert_eq!(s.card_revocation("7:1").expect("q"), None);
        let actions: Vec<String> = s
            .audit(10)
            .expect("audit")
            .into_iter()
            .map(|a| a.action)
            .collect();
        assert_eq!(actions, ["card.reinstated", "card.revoked", "card.revoked"]);
    }
}
