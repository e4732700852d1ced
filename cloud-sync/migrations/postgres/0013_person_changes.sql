-- The feed of changes to people that nodes pull, numbered per tenant in commit order (the
-- writers of a tenant take a transaction lock first) and stamped with the cloud's hybrid
-- logical clock; erasures stay as tombstones.
CREATE TABLE person_changes (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    change_id BIGINT NOT NULL,
    person_id TEXT NOT NULL,
    hlc_ms BIGINT NOT NULL,
    hlc_counter BIGINT NOT NULL,
    erased BOOLEAN NOT NULL,
    PRIMARY KEY (tenant_id, change_id)
);
CREATE INDEX person_changes_by_person ON person_changes (tenant_id, person_id, change_id);
