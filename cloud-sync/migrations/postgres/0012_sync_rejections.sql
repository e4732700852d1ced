CREATE TABLE sync_rejections (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    node_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (node_id, seq)
);
