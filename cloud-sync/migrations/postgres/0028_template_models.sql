-- Each embedder name stands for one embedding length in a tenant, fixed by its first template:
-- a template of another length under the name is refused (a node adopting it could no longer
-- enrol anyone). A model of templates stored before this table is bound on its next template,
-- to the length of those.
CREATE TABLE template_models (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    model TEXT NOT NULL,
    dim BIGINT NOT NULL,
    bound_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, model)
);
