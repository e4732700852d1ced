-- Users with roles, their refresh tokens (hashes only), and platform secrets (the access
-- token key). A refresh token's user is in its own tenant (composite foreign key).
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    email TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'supervisor', 'guard', 'auditor')),
    password_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    disabled_ms INTEGER,
    UNIQUE (tenant_id, email),
    UNIQUE (tenant_id, id)
);
CREATE TABLE refresh_tokens (
    token_sha256 TEXT PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL,
    family TEXT NOT NULL,
    issued_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_ms INTEGER,
    revoked_ms INTEGER,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);
CREATE INDEX refresh_by_family ON refresh_tokens (tenant_id, family);
CREATE INDEX refresh_by_user ON refresh_tokens (tenant_id, user_id);
CREATE TABLE platform_secrets (
    name TEXT PRIMARY KEY,
    secret BLOB NOT NULL CHECK (length(secret) = 32),
    created_ms INTEGER NOT NULL
);
