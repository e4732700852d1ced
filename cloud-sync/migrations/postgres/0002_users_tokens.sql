CREATE TABLE users (
    id TEXT PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    email TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'supervisor', 'guard', 'auditor')),
    password_hash TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    disabled_ms BIGINT,
    UNIQUE (tenant_id, email),
    UNIQUE (tenant_id, id)
);
CREATE TABLE refresh_tokens (
    token_sha256 TEXT PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL,
    family TEXT NOT NULL,
    issued_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    used_ms BIGINT,
    revoked_ms BIGINT,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);
CREATE INDEX refresh_by_family ON refresh_tokens (tenant_id, family);
CREATE INDEX refresh_by_user ON refresh_tokens (tenant_id, user_id);
-- Platform-level, not tenant-owned: the access-token signing key shared by the replicas.
CREATE TABLE platform_secrets (
    name TEXT PRIMARY KEY,
    secret BYTEA NOT NULL CHECK (length(secret) = 32),
    created_ms BIGINT NOT NULL
);
