-- How far each node's sequence is held without a gap.
ALTER TABLE nodes ADD COLUMN watermark BIGINT NOT NULL DEFAULT 0;
