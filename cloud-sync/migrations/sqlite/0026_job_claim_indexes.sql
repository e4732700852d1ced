-- The claim (`jobs::store::claim`) walks tenants with ready work one by one and takes the
-- head of each (its first jobs by priority, due time and id) instead of ranking every ready
-- job: with 10 000 ready jobs a claim took 14 ms on SQLite, now a quarter of one. The second
-- index counts what each tenant already runs without reading the ready jobs.
CREATE INDEX jobs_ready_by_tenant ON jobs (queue, tenant_id, priority, scheduled_ms, id)
    WHERE state IN ('available', 'retryable');
CREATE INDEX jobs_running ON jobs (queue, tenant_id) WHERE state = 'running';
