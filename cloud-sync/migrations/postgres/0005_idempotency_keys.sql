CREATE TABLE idempotency_keys (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    caller TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    status INT,
    content_type TEXT,
    body BYTEA,
    PRIMARY KEY (tenant_id, caller, key)
);
CREATE INDEX idempotency_by_age ON idempotency_keys (created_ms);
