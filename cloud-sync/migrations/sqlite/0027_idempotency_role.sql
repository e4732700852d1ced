-- The role of the caller that made the first request: a replay is refused once it changed.
ALTER TABLE idempotency_keys ADD COLUMN role TEXT NOT NULL DEFAULT '';
