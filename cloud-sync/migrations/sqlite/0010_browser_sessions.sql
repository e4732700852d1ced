-- Browser sessions (the session cookie); only the token's sha256.
CREATE TABLE browser_sessions (
    token_sha256 TEXT PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    revoked_ms INTEGER,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);
CREATE INDEX browser_sessions_by_user ON browser_sessions (tenant_id, user_id);
