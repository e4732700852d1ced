-- Each tenant's CORS allow-list, one origin a line.
ALTER TABLE tenants ADD COLUMN cors_origins TEXT NOT NULL DEFAULT '';
