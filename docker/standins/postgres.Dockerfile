# A stand-in for postgres:16.4-bookworm: Debian's PostgreSQL 15 behind an entrypoint that honours
# what docker-compose.yaml uses of the official image (POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_DB, /docker-entrypoint-initdb.d run once on an empty data volume, pg_isready).
FROM python:3.11.7-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 postgresql-client-15 \
    && rm -rf /var/lib/apt/lists/* \
    && pg_dropcluster 15 main
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# PostgreSQL's own programs first: Debian's wrappers would look for a cluster of /etc/postgresql.
ENV PGDATA=/var/lib/postgresql/data \
    PATH=/usr/lib/postgresql/15/bin:$PATH
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
