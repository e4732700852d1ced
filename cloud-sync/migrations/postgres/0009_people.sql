CREATE TABLE people (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    employee_ref TEXT,
    active BOOLEAN NOT NULL DEFAULT true,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE person_sites (
    tenant_id BIGINT NOT NULL,
    person_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, person_id, site_id),
    FOREIGN KEY (tenant_id, person_id) REFERENCES people (tenant_id, id),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id)
);
CREATE INDEX person_sites_by_site ON person_sites (tenant_id, site_id);
CREATE TABLE shifts (
    tenant_id BIGINT NOT NULL,
    id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    starts_ms BIGINT NOT NULL,
    ends_ms BIGINT NOT NULL CHECK (ends_ms > starts_ms),
    note TEXT,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, person_id) REFERENCES people (tenant_id, id)
);
CREATE INDEX shifts_by_person ON shifts (tenant_id, person_id, starts_ms);
CREATE INDEX shifts_by_site ON shifts (tenant_id, site_id, starts_ms);
CREATE TABLE tenant_keys (
    tenant_id BIGINT PRIMARY KEY REFERENCES tenants(id),
    nonce BYTEA NOT NULL,
    wrapped BYTEA NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE face_templates (
    tenant_id BIGINT NOT NULL,
    id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    model TEXT NOT NULL,
    dim BIGINT NOT NULL,
    nonce BYTEA NOT NULL,
    sealed BYTEA NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, person_id) REFERENCES people (tenant_id, id)
);
CREATE INDEX face_templates_by_person ON face_templates (tenant_id, person_id);
