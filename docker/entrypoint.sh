#!/usr/bin/env bash
# Entrypoint of the songrec image: one image, one role per compose service.
#
#   airflow-init        copy this image's project into the workspace, migrate Airflow's DB, create
#                       the one-slot pool songrec_dvc, point DVC at its remote; then exit
#   workspace           only the workspace part of airflow-init
#   mlflow              the tracking server (MLFLOW_BACKEND_STORE_URI, MLFLOW_ARTIFACTS_DESTINATION)
#   api                 wait until the registry has a champion, then `songrec serve` it
#   buckets B [B ...]   create the S3 buckets (MinIO) if missing; then exit
#   health http URL | health celery | health job SchedulerJob|DagProcessorJob|TriggererJob
#                       the container healthchecks
#   airflow ...         Airflow itself (`airflow api-server` also writes the login file)
#   anything else       run as given (songrec, dvc, bash, ...)
#
# The test tests/topology/test_processes.py runs this same script for every role, as processes.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
release=${SONGREC_RELEASE:-$(cd "$here/.." && pwd)}
helpers=(python "$here/helpers.py")

say() { echo "songrec-entrypoint: $*" >&2; }

# The workspace (SONGREC_ROOT, a volume shared by the Airflow containers) is where DVC runs the
# stages: code and configuration come from the image on every start (a new image is a new
# release); pipeline state (dvc.lock, outputs, DVC cache, additions) stays from run to run.
sync_workspace() {
  local root=${SONGREC_ROOT:?SONGREC_ROOT is not set}
  if [[ "$(cd "$root" 2>/dev/null && pwd -P)" == "$(cd "$release" && pwd -P)" ]]; then
    say "the workspace is the release itself ($root): nothing to copy"
  else
    say "copying the project of this image ($release) into the workspace $root"
    mkdir -p "$root"
    local item
    for item in config dags src data/source params.yaml dvc.yaml .dvcignore pyproject.toml .dvc/config; do
      [[ -e "$release/$item" ]] || continue
      rm -rf "${root:?}/$item"
      mkdir -p "$(dirname "$root/$item")"
      cp -R "$release/$item" "$root/$item"
    done
    if [[ ! -e "$root/dvc.lock" && -e "$release/dvc.lock" ]]; then
      cp "$release/dvc.lock" "$root/dvc.lock"
    fi
  fi
  mkdir -p "$root/data/additions" "$root/data/incoming"
  cd "$root"
  [[ -d .dvc ]] || dvc init --no-scm -q
  # No git in the image: the workspace's history is dvc.lock, the DVC remote and MLflow.
  [[ -d .git ]] || dvc config --local core.no_scm true
  songrec remote # SONGREC_DVC_REMOTE_URL (S3/MinIO) or DAGSHUB_*; else the local default
}

airflow_init() {
  sync_workspace
  say "migrating Airflow's metadata database"
  airflow db migrate
  local pool
  pool=$(python -c 'from songrec.orchestration.dvc_runner import DVC_POOL; print(DVC_POOL)')
  # Every stage task takes this pool's only slot: one DVC command at a time, across all workers.
  airflow pools set "$pool" 1 "one DVC command at a time on the songrec workspace"
  say "Airflow is initialised"
}

health() {
  case "${1:-}" in
    http) exec "${helpers[@]}" http "${2:?health http URL}" ;;
    celery)
      local host
      host=$(python -c 'import socket; print(socket.gethostname())')
      exec celery --app airflow.providers.celery.executors.celery_executor.app \
        inspect ping --timeout 10 --destination "celery@$host"
      ;;
    job) exec airflow jobs check --job-type "${2:?health job TYPE}" --local ;;
    *)
      say "usage: health http URL | health celery | health job TYPE"
      exit 2
      ;;
  esac
}

role=${1:-api}
if [[ $# -gt 0 ]]; then shift; fi
case "$role" in
  airflow-init) airflow_init ;;
  workspace) sync_workspace ;;
  mlflow)
    : "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI (postgresql+psycopg://...)}"
    : "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION (s3://bucket/)}"
    exec mlflow server --serve-artifacts --host "${MLFLOW_HOST:-0.0.0.0}" --port "${MLFLOW_PORT:-5000}" \
      --workers "${MLFLOW_WORKERS:-2}" "$@"
    ;;
  api)
    "${helpers[@]}" wait-champion
    exec songrec serve --host "${SONGREC_API_HOST:-0.0.0.0}" --port "${SONGREC_API_PORT:-8000}" "$@"
    ;;
  buckets) exec "${helpers[@]}" buckets "$@" ;;
  health) health "$@" ;;
  airflow)
    if [[ "${1:-}" == "api-server" ]]; then
      "${helpers[@]}" passwords-file
    fi
    exec airflow "$@"
    ;;
  *) exec "$role" "$@" ;;
esac
