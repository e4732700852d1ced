-- Voice verification records join the pushed streams (`records`), their audio stored once
-- per tenant by digest (`voice_blobs`).
ALTER TABLE node_records DROP CONSTRAINT node_records_stream_check;
ALTER TABLE node_records ADD CONSTRAINT node_records_stream_check
    CHECK (stream IN ('alarm', 'audit', 'voice'));
CREATE TABLE voice_blobs (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    body BYTEA NOT NULL,
    node_id TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, sha256)
);
