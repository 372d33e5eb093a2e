#!/usr/bin/env bash
# Builds, from Debian's packages and PyPI only, every image songrec's compose topology needs but
# its own, for a Docker engine that reaches no image registry (this CI machine; an offline site):
#
#   python:3.11.7-slim-bookworm       the base songrec's Dockerfile starts FROM
#   postgres:16.4-bookworm            Debian's PostgreSQL 15 behind the official entrypoint's contract
#   redis:7.2.5-bookworm              Debian's redis-server
#   minio/minio:RELEASE.2025-04-22... moto's S3 server behind `minio server` and `mc ready local`
#   prom/prometheus:v2.42.0           Debian's prometheus (the same release)
#
# Each stand-in takes the tag docker-compose.yaml names, so the compose file runs unchanged.
# Grafana has none: bring the topology up without it. An image already there is kept
# (--rebuild: build them all again). Needs mmdebstrap (Debian package) and a running engine.
#
#   bash docker/standins/build-images.sh [--rebuild]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rebuild=false
[[ "${1:-}" == "--rebuild" ]] && rebuild=true

say() { echo "standins: $*" >&2; }
missing() { $rebuild || ! docker image inspect "$1" >/dev/null 2>&1; }

# The tags, read from the files that use them, so a version bump there cannot go unnoticed here.
compose_image() { sed -n "s|^ *image: *\($1:.*\)$|\1|p" "$here/../../docker-compose.yaml" | head -n 1; }
python_image=$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$here/../../Dockerfile")

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$here"/* "$context"/
cp /etc/ssl/certs/ca-certificates.crt "$context"/

if missing local/debian-python:bookworm; then
  say "debootstrapping a minimal Debian bookworm with python3 (local/debian-python:bookworm)"
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm - | docker import - local/debian-python:bookworm >/dev/null
fi

build() {  # build TAG DOCKERFILE
  if missing "$1"; then
    say "building $1 from $2"
    # --network host: the engine here has no default bridge; the legacy builder needs no registry.
    if ! DOCKER_BUILDKIT=0 docker build --quiet --network host -t "$1" -f "$context/$2" "$context" \
      >"$context/build.log" 2>&1; then
      cat "$context/build.log" >&2
      exit 1
    fi
  fi
}

build "$python_image" python.Dockerfile
build "$(compose_image postgres)" postgres.Dockerfile
build "$(compose_image redis)" redis.Dockerfile
build "$(compose_image minio/minio)" minio.Dockerfile
build "$(compose_image prom/prometheus)" prometheus.Dockerfile
say "ready: $python_image $(compose_image postgres) $(compose_image redis) $(compose_image minio/minio) $(compose_image prom/prometheus)"
