-- Jobs that wait for others (`jobs::waits`): chains and groups. `waits` keeps what the job
-- waits for as the API shows it (JSON); `job_waits` has one row per job waited for, which the
-- claim reads: a job is not claimed while one of them is unfinished. Queue tables, like `jobs`.
ALTER TABLE jobs ADD COLUMN waits TEXT;
CREATE TABLE job_waits (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    waits_for INTEGER NOT NULL,
    PRIMARY KEY (job_id, waits_for)
);
-- The pruner asks whether an unfinished job waits for a finished one.
CREATE INDEX job_waits_by_awaited ON job_waits (waits_for);
