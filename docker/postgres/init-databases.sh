#!/usr/bin/env bash
# The databases of the songrec topology, one per component, each owned by its own role:
#   airflow         Airflow's metadata DB (and the Celery result backend), role airflow
#   mlflow          MLflow's tracking store and model registry, role mlflow
#   songrec_events  the API's event store (requests, recommendations, feedback), role songrec
# plus a read-only role for Grafana on the event store (SELECT on every table the API creates).
#
# The postgres image runs this once, on an empty data volume (/docker-entrypoint-initdb.d).
# It runs anywhere psql reaches a server as a superuser (PGHOST, PGPORT, ...): the process
# topology test creates its throwaway databases with it. Names can be changed through the
# *_DB_NAME / *_DB_USER variables; every password must be given.
set -euo pipefail

: "${AIRFLOW_DB_PASSWORD:?set AIRFLOW_DB_PASSWORD}"
: "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD}"
: "${EVENTS_DB_PASSWORD:?set EVENTS_DB_PASSWORD}"
: "${GRAFANA_DB_PASSWORD:?set GRAFANA_DB_PASSWORD}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
  --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
  -v airflow_db="${AIRFLOW_DB_NAME:-airflow}" -v airflow_user="${AIRFLOW_DB_USER:-airflow}" \
  -v airflow_password="$AIRFLOW_DB_PASSWORD" \
  -v mlflow_db="${MLFLOW_DB_NAME:-mlflow}" -v mlflow_user="${MLFLOW_DB_USER:-mlflow}" \
  -v mlflow_password="$MLFLOW_DB_PASSWORD" \
  -v events_db="${EVENTS_DB_NAME:-songrec_events}" -v events_user="${EVENTS_DB_USER:-songrec}" \
  -v events_password="$EVENTS_DB_PASSWORD" \
  -v grafana_user="${GRAFANA_DB_USER:-grafana}" -v grafana_password="$GRAFANA_DB_PASSWORD" \
  <<'SQL'
CREATE ROLE :"airflow_user" LOGIN PASSWORD :'airflow_password';
CREATE ROLE :"mlflow_user" LOGIN PASSWORD :'mlflow_password';
CREATE ROLE :"events_user" LOGIN PASSWORD :'events_password';
CREATE ROLE :"grafana_user" LOGIN PASSWORD :'grafana_password';

CREATE DATABASE :"airflow_db" OWNER :"airflow_user";
CREATE DATABASE :"mlflow_db" OWNER :"mlflow_user";
CREATE DATABASE :"events_db" OWNER :"events_user";

-- Each role reaches its own database only (the owner keeps CONNECT).
REVOKE CONNECT, TEMPORARY ON DATABASE :"airflow_db" FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE :"mlflow_db" FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE :"events_db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"events_db" TO :"grafana_user";

-- Grafana reads what the API writes: SELECT on the tables the API's role creates, now and later.
\connect :"events_db"
ALTER SCHEMA public OWNER TO :"events_user";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"grafana_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"events_user" IN SCHEMA public GRANT SELECT ON TABLES TO :"grafana_user";
SQL

echo "songrec: databases ${AIRFLOW_DB_NAME:-airflow}, ${MLFLOW_DB_NAME:-mlflow} and ${EVENTS_DB_NAME:-songrec_events} are ready"
