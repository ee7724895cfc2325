-- No-op. While auth and compute were built side by side, compute numbered its
-- migration 0003 and held 0002 for auth, which in the end needed none. Kept so
-- that databases which applied it keep the same numbering (migrations are
-- never renumbered once applied anywhere).
SELECT 1;
