//! The two schemas, as numbered `.sql` files under `cloud-sync/migrations/<backend>/`: file
//! `NNNN_*.sql` takes a database from version `NNNN - 1` to `NNNN`. A file, once shipped, is
//! never edited (databases in the field have run it); a change is a new file, in both folders
//! when both backends need it, and the store suite checks that both schemas end with the same tables
//! and columns.
//!
//! Row-level security is not written in the PostgreSQL files: after migrations ran,
//! [`PROTECT_TENANT_TABLES`] turns it on, forced, with the one tenant-isolation policy, for each
//! new table of [`TENANT_TABLES`].

/// Both lists are spelled out, file by file, so that the binary embeds them (`include_str!`);
/// the tests check that each folder holds exactly the files listed, in order.
macro_rules! migrations {
    ($dir:literal: $($file:literal),* $(,)?) => {
        Migrations {
            names: &[$($file),*],
            sql: &[$(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $dir, "/", $file))),*],
        }
    };
}

/// One backend's migrations: `sql[i]` (file `names[i]`) takes the schema from version `i` to
/// `i + 1`.
pub struct Migrations {
    pub names: &'static [&'static str],
    pub sql: &'static [&'static str],
}

pub const SQLITE: Migrations = migrations!("sqlite":
    "0001_tenants_nodes_events.sql",
    "0002_signing_keys.sql",
    "0003_tenant_names_tenant_event_keys.sql",
    "0004_users_tokens.sql",
    "0005_audit_log.sql",
    "0006_events_by_time.sql",
    "0007_idempotency_keys.sql",
    "0008_cors_origins.sql",
    "0009_sites.sql",
    "0010_browser_sessions.sql",
    "0011_people.sql",
    "0012_events_by_arrival.sql",
    "0013_node_watermark.sql",
    "0014_sync_rejections.sql",
    "0015_person_changes.sql",
    "0016_node_lag.sql",
    "0017_node_records.sql",
    "0018_site_fraud_policy.sql",
    "0019_person_history.sql",
    "0020_voice.sql",
    "0021_card_revocations.sql",
    "0022_record_stream_marks.sql",
    "0023_jobs.sql",
    "0024_job_schedules.sql",
    "0025_job_waits.sql",
    "0026_job_claim_indexes.sql",
    "0027_idempotency_role.sql",
    "0028_user_tokens_from.sql",
    "0029_template_models.sql",
    "0030_realtime.sql",
    "0031_notifications.sql",
    "0032_node_status.sql",
);

pub const POSTGRES: Migrations = migrations!("postgres":
    "0001_tenants_nodes_events.sql",
    "0002_users_tokens.sql",
    "0003_audit_log.sql",
    "0004_events_by_time.sql",
    "0005_idempotency_keys.sql",
    "0006_cors_origins.sql",
    "0007_sites.sql",
    "0008_browser_sessions.sql",
    "0009_people.sql",
    "0010_events_by_arrival.sql",
    "0011_node_watermark.sql",
    "0012_sync_rejections.sql",
    "0013_person_changes.sql",
    "0014_node_lag.sql",
    "0015_node_records.sql",
    "0016_events_without_row_keys.sql",
    "0017_site_fraud_policy.sql",
    "0018_person_history.sql",
    "0019_voice.sql",
    "0020_card_revocations.sql",
    "0021_record_stream_marks.sql",
    "0022_jobs.sql",
    "0023_job_schedules.sql",
    "0024_job_waits.sql",
    "0025_job_claim_indexes.sql",
    "0026_idempotency_role.sql",
    "0027_user_tokens_from.sql",
    "0028_template_models.sql",
    "0029_realtime.sql",
    "0030_notifications.sql",
    "0031_node_status.sql",
);

/// Tables that carry a tenant's rows (a `tenant_id` column): on PostgreSQL each is under the
/// forced tenant-isolation policy, checked against the catalog at every start-up, and the tests
/// check this list against every table that has a `tenant_id` column.
pub const TENANT_TABLES: &[&str] = &[
    "nodes",
    "events",
    "signing_keys",
    "bundle_serials",
    "users",
    "refresh_tokens",
    "audit_log",
    "idempotency_keys",
    "sites",
    "browser_sessions",
    "people",
    "person_sites",
    "shifts",
    "tenant_keys",
    "face_templates",
    "sync_rejections",
    "person_changes",
    "node_records",
    "person_history",
    "voice_blobs",
    "card_revocations",
    "node_stream_marks",
    "record_rejections",
    "job_probe_runs",
    "template_models",
    "stream_heads",
    "stream_messages",
    "ws_tickets",
    "notifications",
    "notification_prefs",
    "notification_settings",
    "mail_templates",
];

/// Tables that carry a `tenant_id` but are not under tenant isolation: the job queue, which the
/// workers claim from across tenants, and the job schedules, which every replica's scheduler
/// fires across tenants (a tenant's job runs in that tenant's scope; every admin read of either
/// names its tenant in the statement).
pub const QUEUE_TABLES: &[&str] = &["jobs", "job_schedules"];

/// PostgreSQL, run by the migrating role in the transaction that applied migrations (`$1`:
/// [`TENANT_TABLES`]): each listed table that has no row security at all yet (a table those
/// migrations made) gets it enabled and forced (so even the owner is filtered) with the policy.
/// A table whose protection was weakened behind rollcall's back (policy dropped, forcing turned
/// off) is not repaired here: start-up refuses it ([`crate::server::store::StoreError::Unprotected`]).
pub const PROTECT_TENANT_TABLES: &str = r#"
DO $$
DECLARE t text;
BEGIN
    FOR t IN
        SELECT c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind = 'r'
          AND c.relname = ANY (current_setting('rollcall.tenant_tables')::text[])
          AND NOT c.relrowsecurity AND NOT c.relforcerowsecurity
          AND NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = rollcall_tenant())
                        WITH CHECK (tenant_id = rollcall_tenant())', t);
    END LOOP;
END $$;
"#;

/// The `rollcall.tenant_tables` setting [`PROTECT_TENANT_TABLES`] reads: a PostgreSQL array
/// literal of [`TENANT_TABLES`] (plain lower-case names, nothing to quote).
pub fn tenant_tables_array() -> String {
    format!("{{{}}}", TENANT_TABLES.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed_in(dir: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dir);
        let mut names: Vec<String> = std::fs::read_dir(&path)
            .expect("migrations folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn each_folder_holds_exactly_the_files_listed_numbered_in_order() {
        for (dir, m) in [("sqlite", &SQLITE), ("postgres", &POSTGRES)] {
            assert_eq!(listed_in(dir), m.names, "{dir}: folder and list differ");
            assert_eq!(m.names.len(), m.sql.len());
            for (i, name) in m.names.iter().enumerate() {
                assert!(
                    name.starts_with(&format!("{:04}_", i + 1)) && name.ends_with(".sql"),
                    "{dir}/{name} is not migration {}",
                    i + 1
                );
            }
        }
    }

    #[test]
    fn row_level_security_is_applied_in_one_place_only() {
        for (name, sql) in POSTGRES.names.iter().zip(POSTGRES.sql) {
            assert!(
                !sql.contains("ROW LEVEL SECURITY") && !sql.contains("CREATE POLICY"),
                "{name} writes row-level security itself: add its table to TENANT_TABLES instead"
            );
        }
    }

    #[test]
    fn the_tenant_tables_setting_is_an_array_literal() {
        assert!(tenant_tables_array().starts_with("{nodes,events,"));
        assert!(tenant_tables_array().ends_with(",mail_templates}"));
        for t in TENANT_TABLES {
            assert!(
                t.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{t}"
            );
        }
    }
}
