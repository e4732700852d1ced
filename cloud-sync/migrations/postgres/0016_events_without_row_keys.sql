-- Pushed events no longer check their tenant and node by foreign key, row by row (two
-- lookups and key-share locks per event, the bulk of the gap to the raw insert rate): the
-- push's transaction holds the node's row locked (`FOR UPDATE`, after authenticating it),
-- row-level security pins the tenant, and neither nodes nor tenants are ever deleted
-- (revoked and suspended instead).
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_tenant_id_fkey,
                    DROP CONSTRAINT IF EXISTS events_node_id_fkey;
