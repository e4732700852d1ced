-- How far behind each node was at its last push that brought events.
ALTER TABLE nodes ADD COLUMN lag_ms BIGINT;
