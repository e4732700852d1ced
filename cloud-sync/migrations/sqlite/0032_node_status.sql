-- What the cloud last said of each node (`node.status`): online, lagging (its newest event
-- arrived long after it happened) or offline (not heard from for a while); NULL before its
-- first push.
ALTER TABLE nodes ADD COLUMN status TEXT;
