-- Voice verification records join the pushed streams (`records`), their audio stored once
-- per tenant by digest (`voice_blobs`).
ALTER TABLE node_records RENAME TO node_records_before_voice;
CREATE TABLE node_records (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    stream TEXT NOT NULL CHECK (stream IN ('alarm', 'audit', 'voice')),
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    node_time_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (node_id, stream, seq)
);
INSERT INTO node_records SELECT * FROM node_records_before_voice;
DROP TABLE node_records_before_voice;
CREATE INDEX node_records_by_time ON node_records (tenant_id, stream, node_time_ms, id);
CREATE TABLE voice_blobs (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    body BLOB NOT NULL,
    node_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, sha256)
);
