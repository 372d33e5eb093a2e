#!/usr/bin/env bash
# The official postgres image's contract, as much of it as songrec's compose file uses.
set -euo pipefail
bin=/usr/lib/postgresql/15/bin
as_postgres=(setpriv --reuid=postgres --regid=postgres --init-groups)
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
export POSTGRES_USER=${POSTGRES_USER:-postgres}
export POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}

mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  # A failed initialisation leaves nothing behind, so the next start tries again.
  trap 'find "$PGDATA" -mindepth 1 -delete' ERR
  password_file=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" >"$password_file"
  chown postgres "$password_file"
  "${as_postgres[@]}" "$bin/initdb" -D "$PGDATA" --username="$POSTGRES_USER" \
    --pwfile="$password_file" --auth-local=trust --auth-host=scram-sha-256
  rm -f "$password_file"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # Initialisation listens on the socket only, as the official image does.
  "${as_postgres[@]}" "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=''" -w start
  if [[ "$POSTGRES_DB" != postgres ]]; then
    "${as_postgres[@]}" createdb --username="$POSTGRES_USER" "$POSTGRES_DB"
  fi
  for script in /docker-entrypoint-initdb.d/*; do
    [[ -e "$script" ]] || continue
    case "$script" in
      *.sh) echo "postgres stand-in: running $script"; "${as_postgres[@]}" bash "$script" ;;
      *.sql) echo "postgres stand-in: running $script"
        "${as_postgres[@]}" psql -v ON_ERROR_STOP=1 --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" -f "$script" ;;
    esac
  done
  "${as_postgres[@]}" "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop
  trap - ERR
fi

exec "${as_postgres[@]}" "$bin/postgres" -D "$PGDATA" -c listen_addresses='*'
