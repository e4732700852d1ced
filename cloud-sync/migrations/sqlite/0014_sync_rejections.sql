-- Sequence numbers of items the cloud refused (the node dead-letters them): settled, so
-- the watermark passes them.
CREATE TABLE sync_rejections (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    node_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (node_id, seq)
);
