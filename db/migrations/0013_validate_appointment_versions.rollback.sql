-- Nothing to undo: a validated constraint is the same constraint. Rolling back
-- 0012 removes the constraint itself.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
