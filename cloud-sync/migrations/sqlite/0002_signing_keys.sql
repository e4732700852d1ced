-- Each tenant's Ed25519 key for node config bundles, and the last bundle serial per site.
-- The secret is stored as it is: protect the database file like the key it holds.
CREATE TABLE signing_keys (
    tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),
    secret BLOB NOT NULL CHECK (length(secret) = 32),
    created_ms INTEGER NOT NULL
);
CREATE TABLE bundle_serials (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    site_id TEXT NOT NULL,
    serial INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, site_id)
);
