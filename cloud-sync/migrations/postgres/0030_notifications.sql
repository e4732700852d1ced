-- Notifications: one row per notification and recipient, made in the transaction of the change
-- that causes it. `in_app` rows are the user's inbox; `email` is how its mail stands (none,
-- queued, digest, sent, skipped), `digest_ms` the end of the digest window it waits for.
CREATE TABLE notifications (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    critical BOOLEAN NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    data TEXT NOT NULL,
    in_app BOOLEAN NOT NULL,
    email TEXT NOT NULL,
    digest_ms BIGINT,
    created_ms BIGINT NOT NULL,
    read_ms BIGINT,
    mailed_ms BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX notifications_inbox ON notifications (tenant_id, user_id, id) WHERE in_app;
CREATE INDEX notifications_unread ON notifications (tenant_id, user_id)
    WHERE in_app AND read_ms IS NULL;
CREATE INDEX notifications_digest ON notifications (tenant_id, user_id, kind, digest_ms)
    WHERE email = 'digest';
CREATE INDEX notifications_by_time ON notifications (tenant_id, created_ms);
-- Preferences per user and kind; the empty user id holds the tenant's defaults.
CREATE TABLE notification_prefs (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    in_app BOOLEAN NOT NULL,
    email BOOLEAN NOT NULL,
    digest_minutes BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, kind)
);
-- Each user's time zone and quiet hours (minutes of the local day).
CREATE TABLE notification_settings (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL,
    time_zone TEXT,
    quiet_from BIGINT,
    quiet_to BIGINT,
    PRIMARY KEY (tenant_id, user_id)
);
-- A tenant's own mail templates, per kind or for every kind (`*`).
CREATE TABLE mail_templates (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    text TEXT NOT NULL,
    html TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, kind)
);
