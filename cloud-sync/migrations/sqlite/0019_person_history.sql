-- People versions pushed by nodes (`person_uploads`): a change in the feed records whose
-- version it is, and the versions that lost or were replaced are kept.
ALTER TABLE person_changes ADD COLUMN hlc_origin TEXT NOT NULL DEFAULT 'cloud';
CREATE INDEX person_changes_by_hlc ON person_changes (tenant_id, hlc_ms, hlc_counter);
CREATE TABLE person_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    person_id TEXT NOT NULL,
    hlc_ms INTEGER NOT NULL,
    hlc_counter INTEGER NOT NULL,
    hlc_origin TEXT NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('replaced', 'lost')),
    node_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX person_history_by_person ON person_history (tenant_id, person_id, id);
