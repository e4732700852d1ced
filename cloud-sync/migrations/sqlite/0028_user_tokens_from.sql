-- Access tokens (JWTs) issued before this instant no longer stand for the user: set when the
-- user is disabled, kept when re-enabled, so a token from before the disable stays dead.
ALTER TABLE users ADD COLUMN tokens_from_ms BIGINT NOT NULL DEFAULT 0;
