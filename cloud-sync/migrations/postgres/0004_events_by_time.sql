-- Newest-first listing of a tenant's events, and keyset paging on (node time, id).
CREATE INDEX events_by_tenant_time ON events (tenant_id, node_time_ms, id);
