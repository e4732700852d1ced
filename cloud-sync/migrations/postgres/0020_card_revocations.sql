-- Cards the tenant's admins revoked (`revocations`), renumbered at each change (under a
-- per-tenant transaction lock) for the nodes' pull.
CREATE TABLE card_revocations (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    card TEXT NOT NULL,
    revoked BOOLEAN NOT NULL,
    reason TEXT NOT NULL,
    changed_ms BIGINT NOT NULL,
    changed_by TEXT NOT NULL,
    change_id BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, card)
);
CREATE UNIQUE INDEX card_revocations_by_change ON card_revocations (tenant_id, change_id);
