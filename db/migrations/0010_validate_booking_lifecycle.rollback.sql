-- Nothing to undo: a validated constraint is the same constraint. Rolling back
-- 0009 removes the constraints themselves.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
