//! The site's configuration as the cloud last gave it (its geofence, for now), kept so that a
//! node restarted while offline enforces what the cloud's admins set, not its config file's
//! older outline. The cloud is the only writer of a site's configuration: a version is applied
//! when its `updated_ms` or its content differs from the one held.

use rollcall_protocol::wire::SiteConfig;
use rusqlite::{OptionalExtension, params};

use super::{NodeStore, StoreError, now_ms};

pub(super) const MIGRATION: &str = "CREATE TABLE site_config (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        site_id TEXT NOT NULL,
        name TEXT NOT NULL,
        geofence TEXT NOT NULL,
        fraud_policy TEXT,
        updated_ms INTEGER NOT NULL,
        applied_ms INTEGER NOT NULL
    );";

impl NodeStore {
    /// The site configuration the cloud last gave, if it gave one.
    pub fn site_config(&self) -> Result<Option<SiteConfig>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT site_id, name, geofence, updated_ms, fraud_policy FROM site_config WHERE id = 1",
                [],
                |r| {
                    Ok(SiteConfig {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        geofence_geojson: r.get(2)?,
                        updated_ms: r.get(3)?,
                        fraud_policy_json: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Keeps `config` (`None`: the cloud has no such site any more) and writes the change to the
    /// audit log, in one transaction; `false` if it is what the store already held.
    pub fn set_site_config(&mut self, config: Option<&SiteConfig>) -> Result<bool, StoreError> {
        if self.site_config()?.as_ref() == config {
            return Ok(false);
        }
        let tx = self.conn.transaction()?;
        let (subject, detail) = match config {
            Some(c) => {
                tx.execute(
                    "INSERT INTO site_config (id, site_id, name, geofence, updated_ms, applied_ms, fraud_policy)
                     VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (id) DO UPDATE SET site_id = ?1, name = ?2, geofence = ?3,
                        updated_ms = ?4, applied_ms = ?5, fraud_policy = ?6",
                    params![
                        c.id,
                        c.name,
                        c.geofence_geojson,
                        c.updated_ms,
                        now_ms(),
                        c.fraud_policy_json
                    ],
                )?;
                (
                    c.id.clone(),
                    format!(
                        "geofence{} of version {} from the cloud",
                        if c.fraud_policy_json.is_some() {
                            " and fraud policy"
                        } else {
                            ""
                        },
                        c.updated_ms
                    ),
                )
            }
            None => {
                tx.execute("DELETE FROM site_config", [])?;
                (
                    String::new(),
                    "the cloud has no such site: back to the config file's geofences".to_owned(),
                )
            }
        };
        tx.execute(
            "INSERT INTO audit (at_ms, actor, action, subject, detail) VALUES (?1, 'cloud', 'site.config_applied', ?2, ?3)",
            params![now_ms(), subject, detail],
        )?;
        tx.commit()?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests_support::store;

    #[test]
    fn a_version_is_kept_once_and_its_withdrawal_too() {
        let (_dir, mut s) = store();
        assert_eq!(s.site_config().expect("read"), None);
        let v1 = SiteConfig {
            id: "hq".into(),
            name: "Head office".into(),
            geofence_geojson: r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}"#
                .into(),
            updated_ms: 1,
            fraud_policy_json: None,
        };
        assert!(s.set_site_config(Some(&v1)).expect("set"));
        assert!(!s.set_site_config(Some(&v1)).expect("again"), "nothing new");
        let v2 = SiteConfig {
            updated_ms: 2,
            fraud_policy_json: Some(r#"{"deny_at":0.7}"#.into()),
            ..v1.clone()
        };
        assert!(s.set_site_config(Some(&v2)).expect("set"));
        assert_eq!(s.site_config().expect("read"), Some(v2));
        assert!(s.set_site_config(None).expect("withdrawn"));
        assert!(!s.set_site_config(None).expect("again"));
        assert_eq!(s.site_config().expect("read"), None);
        let applied = s
            .audit(10)
            .expect("audit")
            .iter()
            .filter(|a| a.action == "site.config_applied")
            .count();
        assert_eq!(applied, 3, "each change on the audit log, repeats not");
    }
}
