-- Events listed by arrival (`sort=received_ms`), with keyset paging.
CREATE INDEX events_by_tenant_received ON events (tenant_id, received_ms, id);
