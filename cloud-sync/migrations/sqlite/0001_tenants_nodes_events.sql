CREATE TABLE tenants (
    id INTEGER PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_ms INTEGER NOT NULL
);
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    site_id TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER,
    last_seen_ms INTEGER
);
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    node_id TEXT NOT NULL REFERENCES nodes(id),
    site_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    person_id TEXT,
    decision TEXT NOT NULL,
    node_time_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (node_id, seq)
);
CREATE INDEX events_by_tenant_site ON events (tenant_id, site_id, node_time_ms);
