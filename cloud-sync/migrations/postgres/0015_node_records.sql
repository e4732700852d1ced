-- Alarms and audit lines pushed by nodes (see `records`), each stream numbered per node.
CREATE TABLE node_records (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    stream TEXT NOT NULL CHECK (stream IN ('alarm', 'audit')),
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    node_time_ms BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (node_id, stream, seq)
);
CREATE INDEX node_records_by_time ON node_records (tenant_id, stream, node_time_ms, id);
