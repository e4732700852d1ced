-- The per-tenant stream of published changes (the WebSocket hub's resume): each message has
-- the next number of its tenant, taken from the tenant's head row in the transaction that
-- makes the change, so a later number never commits before an earlier one.
CREATE TABLE stream_heads (
    tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),
    seq INTEGER NOT NULL
);
CREATE TABLE stream_messages (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX stream_messages_by_time ON stream_messages (tenant_id, created_ms);
-- Single-use, short-lived tickets that open a WebSocket (only their sha256 is kept).
CREATE TABLE ws_tickets (
    token_sha256 TEXT PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    user_id TEXT,
    role TEXT NOT NULL,
    session_sha256 TEXT,
    issued_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_ms INTEGER
);
