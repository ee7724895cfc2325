-- Named snapshots (issue 14): how long the checkpoint took, and whether the
-- archive is complete ('writing' rows are a snapshot cut short: feuilled
-- deletes them, and their partial files, at its next start).
ALTER TABLE snapshots ADD COLUMN duration_ms integer;
ALTER TABLE snapshots ADD COLUMN state text NOT NULL DEFAULT 'ready' CHECK (state IN ('writing', 'ready'));
