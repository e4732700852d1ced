-- Responses of requests sent with an Idempotency-Key (status NULL while the first runs).
CREATE TABLE idempotency_keys (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    caller TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    status INTEGER,
    content_type TEXT,
    body BLOB,
    PRIMARY KEY (tenant_id, caller, key)
);
CREATE INDEX idempotency_by_age ON idempotency_keys (created_ms);
