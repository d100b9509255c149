ALTER DEFAULT PRIVILEGES FOR ROLE medbook_owner GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
REVOKE SELECT, REFERENCES ON users, practitioners FROM medbook_owner;
REVOKE USAGE ON SCHEMA public FROM medbook_api, medbook_reporting;
REVOKE USAGE, CREATE ON SCHEMA public FROM medbook_owner;
