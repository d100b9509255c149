-- Roles of the booking service. Roles are cluster-wide, so each is created only
-- when missing; the same migration runs on every database of a cluster.
--
--   medbook_owner      owns the booking tables and functions; nobody logs in as it.
--   medbook_api        may execute the booking functions and nothing else.
--   medbook_reporting  may read the reporting views and nothing else.
--
-- Login roles are granted one of these (see README, "Database access").

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'medbook_owner') THEN
        CREATE ROLE medbook_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'medbook_api') THEN
        CREATE ROLE medbook_api NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'medbook_reporting') THEN
        CREATE ROLE medbook_reporting NOLOGIN;
    END IF;
    -- The migrating role must be able to SET ROLE medbook_owner.
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, 'medbook_owner', 'MEMBER') THEN
        EXECUTE format('GRANT medbook_owner TO %I', current_user);
    END IF;
END
$$;

-- The owner creates the booking tables beside Medbook's own, and its
-- SECURITY DEFINER functions read users and practitioners.
GRANT USAGE, CREATE ON SCHEMA public TO medbook_owner;
GRANT USAGE ON SCHEMA public TO medbook_api, medbook_reporting;
GRANT SELECT, REFERENCES ON users, practitioners TO medbook_owner;

-- Functions the owner creates are not executable by everybody by default.
ALTER DEFAULT PRIVILEGES FOR ROLE medbook_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
