-- TEMPORARY (branch compute): stands for the 0002 migration of another branch
-- until it is merged; removed when this branch is rebased on it.
SELECT 1;
