CREATE FUNCTION rollcall_tenant() RETURNS bigint LANGUAGE sql STABLE AS
    $$ SELECT NULLIF(current_setting('rollcall.tenant_id', true), '')::bigint $$;

-- Platform-level: who the tenants are. Not tenant-owned, so not under row-level security.
CREATE TABLE tenants (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_ms BIGINT NOT NULL
);
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    site_id TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT,
    last_seen_ms BIGINT
);
CREATE TABLE events (
    id TEXT NOT NULL,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    node_id TEXT NOT NULL REFERENCES nodes(id),
    site_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    person_id TEXT,
    decision TEXT NOT NULL,
    node_time_ms BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (node_id, seq)
);
CREATE INDEX events_by_tenant_site ON events (tenant_id, site_id, node_time_ms);
CREATE TABLE signing_keys (
    tenant_id BIGINT PRIMARY KEY REFERENCES tenants(id),
    secret BYTEA NOT NULL CHECK (length(secret) = 32),
    created_ms BIGINT NOT NULL
);
CREATE TABLE bundle_serials (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    site_id TEXT NOT NULL,
    serial BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, site_id)
);
