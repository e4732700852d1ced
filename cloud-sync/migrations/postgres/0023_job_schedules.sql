-- Job schedules (beat): a cron expression in a time zone enqueues a job per slot, each slot
-- once however many replicas run (`next_run_ms` advanced by compare-and-set in the enqueuing
-- transaction, and a unique key per slot on the job). Read across tenants by every replica's
-- scheduler (tenant_id 0: platform schedules), so one of the queue tables, not under tenant
-- isolation; every admin read names its tenant.
CREATE TABLE job_schedules (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    cron TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    kind TEXT NOT NULL,
    args TEXT NOT NULL,
    missed TEXT NOT NULL CHECK (missed IN ('run_once', 'skip')),
    paused BOOLEAN NOT NULL,
    next_run_ms BIGINT NOT NULL,
    last_slot_ms BIGINT,
    last_job_id BIGINT,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX job_schedules_due ON job_schedules (next_run_ms) WHERE NOT paused;

-- The pruner deletes finished jobs by state and age.
CREATE INDEX jobs_finished ON jobs (state, finished_ms) WHERE finished_ms IS NOT NULL;
