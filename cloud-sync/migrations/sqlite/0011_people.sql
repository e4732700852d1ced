-- People, their sites and shifts; face templates sealed with the tenant's data key.
CREATE TABLE people (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    employee_ref TEXT,
    active INTEGER NOT NULL DEFAULT 1,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE person_sites (
    tenant_id INTEGER NOT NULL,
    person_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, person_id, site_id),
    FOREIGN KEY (tenant_id, person_id) REFERENCES people (tenant_id, id),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id)
);
CREATE INDEX person_sites_by_site ON person_sites (tenant_id, site_id);
CREATE TABLE shifts (
    tenant_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    starts_ms INTEGER NOT NULL,
    ends_ms INTEGER NOT NULL CHECK (ends_ms > starts_ms),
    note TEXT,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, person_id) REFERENCES people (tenant_id, id)
);
CREATE INDEX shifts_by_person ON shifts (tenant_id, person_id, starts_ms);
CREATE INDEX shifts_by_site ON shifts (tenant_id, site_id, starts_ms);
CREATE TABLE tenant_keys (
    tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),
    nonce BLOB NOT NULL,
    wrapped BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE face_templates (
    tenant_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    model TEXT NOT NULL,
    dim INTEGER NOT NULL,
    nonce BLOB NOT NULL,
    sealed BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, person_id) REFERENCES people (tenant_id, id)
);
CREATE INDEX face_templates_by_person ON face_templates (tenant_id, person_id);
