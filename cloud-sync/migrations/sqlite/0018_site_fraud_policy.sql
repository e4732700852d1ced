-- A site's fraud policy (JSON of `rollcall_fraud::Policy`), given to its nodes; NULL: theirs.
ALTER TABLE sites ADD COLUMN fraud_policy TEXT;
