-- Tenants get a display name; events are keyed by (tenant, id), so one tenant's ids can
-- never collide with, or reveal, another's.
ALTER TABLE tenants ADD COLUMN name TEXT NOT NULL DEFAULT '';
UPDATE tenants SET name = slug;
CREATE TABLE events_v3 (
    id TEXT NOT NULL,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    node_id TEXT NOT NULL REFERENCES nodes(id),
    site_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    person_id TEXT,
    decision TEXT NOT NULL,
    node_time_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (node_id, seq)
);
INSERT INTO events_v3 (id, tenant_id, node_id, site_id, seq, person_id, decision, node_time_ms, received_ms, body)
    SELECT id, tenant_id, node_id, site_id, seq, person_id, decision, node_time_ms, received_ms, body FROM events;
DROP TABLE events;
ALTER TABLE events_v3 RENAME TO events;
CREATE INDEX events_by_tenant_site ON events (tenant_id, site_id, node_time_ms);
