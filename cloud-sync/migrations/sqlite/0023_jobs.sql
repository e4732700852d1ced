-- Background jobs (`jobs`): one row per job, claimed by a worker with a lease. The queue is read
-- across tenants by the workers (tenant_id 0: platform work), so it is one of the queue tables,
-- not under tenant isolation; every admin read names its tenant.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    queue TEXT NOT NULL,
    args TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('available', 'running', 'retryable', 'completed',
                                         'cancelled', 'discarded')),
    priority INTEGER NOT NULL,
    scheduled_ms INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    unique_key TEXT,
    actor TEXT,
    request_id TEXT,
    lease_token TEXT,
    lease_until_ms INTEGER,
    worker TEXT,
    errors TEXT NOT NULL,
    result TEXT,
    created_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER
);
CREATE INDEX jobs_ready ON jobs (queue, priority, scheduled_ms, id)
    WHERE state IN ('available', 'retryable');
CREATE INDEX jobs_leases ON jobs (lease_until_ms) WHERE state = 'running';
CREATE INDEX jobs_by_tenant ON jobs (tenant_id, id);
CREATE UNIQUE INDEX jobs_unique ON jobs (tenant_id, kind, unique_key)
    WHERE unique_key IS NOT NULL AND state NOT IN ('cancelled', 'discarded');

-- Queues paused by the API, for every replica.
CREATE TABLE job_queues (
    name TEXT PRIMARY KEY,
    paused INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);

-- What the `probe` job kind did: one row per attempt that reached its write.
CREATE TABLE job_probe_runs (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    job_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    note TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
