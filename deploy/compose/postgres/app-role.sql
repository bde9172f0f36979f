-- The application's own PostgreSQL role: run as the superuser on every start
-- (compose service `postgres-setup`; Kubernetes Job `offndat-postgres-setup`
-- carries a copy of this file, which scripts/validate-deploy.sh keeps equal).
-- Idempotent: creates the role and its database when missing, (re)sets the
-- role's password (so rotating it is: change the secret, run this again), and
-- hands the database and everything an earlier release migrated as the
-- superuser over to the role.
--
--   psql -v ON_ERROR_STOP=1 -f app-role.sql   with the environment:
--     OFFNDAT_DATABASE_ROLE      (default offndat)   the application's role
--     OFFNDAT_DATABASE_NAME      (default offndat)   its database
--     OFFNDAT_DATABASE_PASSWORD  (required)          the role's password
--
-- The role gets no SUPERUSER, CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS:
-- it owns its database, and so may create tables, indexes, functions and
-- trusted extensions (pg_trgm is trusted since PostgreSQL 13) in it, which is
-- all the migrations need. The password is read from the environment with
-- \getenv (psql 15+), so it never appears in a command line.

\set ON_ERROR_STOP on
\getenv app_role OFFNDAT_DATABASE_ROLE
\getenv app_db OFFNDAT_DATABASE_NAME
\getenv app_password OFFNDAT_DATABASE_PASSWORD
\if :{?app_role}
\else
\set app_role offndat
\endif
\if :{?app_db}
\else
\set app_db offndat
\endif
\if :{?app_password}
\else
DO $$ BEGIN RAISE EXCEPTION 'app-role.sql: OFFNDAT_DATABASE_PASSWORD is not set'; END $$;
\endif

SELECT format('CREATE ROLE %I LOGIN', :'app_role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_role') \gexec

ALTER ROLE :"app_role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'app_password';

SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'app_role')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') \gexec

ALTER DATABASE :"app_db" OWNER TO :"app_role";
-- Nobody else connects to it.
REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC;

\connect :"app_db"

-- PostgreSQL 15+ gives schema public to the database owner already; on older
-- servers this is what lets the owner create tables in it, and nobody else.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"app_role";

-- Tables, views, sequences and functions that earlier releases created while
-- migrating as the superuser (indexes and owned sequences follow their
-- table). Members of extensions (pg_trgm's functions) stay with the extension.
SELECT format('ALTER %s %I.%I OWNER TO %I',
              CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                             WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                             ELSE 'TABLE' END,
              n.nspname, c.relname, :'app_role')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public'
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = :'app_role')
  AND NOT (c.relkind = 'S' AND EXISTS (
        SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
          AND d.deptype IN ('a', 'i')))
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                    AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY c.relkind <> 'p', c.oid \gexec

SELECT format('ALTER FUNCTION %s OWNER TO %I', p.oid::regprocedure, :'app_role')
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public'
  AND p.proowner <> (SELECT oid FROM pg_roles WHERE rolname = :'app_role')
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                    AND d.objid = p.oid AND d.deptype = 'e') \gexec

\echo 'app-role.sql: role' :"app_role" 'owns database' :"app_db"
