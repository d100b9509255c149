-- The booking feature's own schemas, beside Medbook's public one
-- (db/CONVENTIONS.md):
--
--   booking            tables, internal helper functions and trigger functions;
--                      only medbook_owner uses it.
--   booking_api        the functions callers use and the types they return.
--   booking_reporting  the reporting views.
--
-- Numbered to run before 0003 on a database that has no booking objects yet
-- (migrate then runs 0003 and 0004 with these schemas first in their
-- search_path, so nothing is created in public). On a database built before
-- it existed it runs after 0004, and 0005 moves the objects out of public.

SET LOCAL lock_timeout = '5s';

CREATE SCHEMA IF NOT EXISTS booking AUTHORIZATION medbook_owner;
CREATE SCHEMA IF NOT EXISTS booking_api AUTHORIZATION medbook_owner;
CREATE SCHEMA IF NOT EXISTS booking_reporting AUTHORIZATION medbook_owner;
COMMENT ON SCHEMA booking IS
    'Medbook Booking: tables, internal helpers and trigger functions. Not for callers.';
COMMENT ON SCHEMA booking_api IS
    'Medbook Booking: the functions callers use (medbook_api) and the types they return.';
COMMENT ON SCHEMA booking_reporting IS
    'Medbook Booking: aggregate reporting views (medbook_reporting).';
