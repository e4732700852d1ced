-- Each record stream's watermark per node, and the refused records that settle their
-- sequence numbers (`records`).
CREATE TABLE node_stream_marks (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    node_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    watermark INTEGER NOT NULL,
    PRIMARY KEY (node_id, stream)
);
CREATE TABLE record_rejections (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    node_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (node_id, stream, seq)
);
