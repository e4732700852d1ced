-- Cards the tenant's admins revoked (`revocations`), renumbered at each change for the
-- nodes' pull.
CREATE TABLE card_revocations (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    card TEXT NOT NULL,
    revoked INTEGER NOT NULL,
    reason TEXT NOT NULL,
    changed_ms INTEGER NOT NULL,
    changed_by TEXT NOT NULL,
    change_id INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, card)
);
CREATE UNIQUE INDEX card_revocations_by_change ON card_revocations (tenant_id, change_id);
