# syntax=docker/dockerfile:1
# One image for every songrec service in docker-compose.yaml: the Airflow components (API server,
# scheduler, DAG processor, triggerer, Celery workers), the MLflow server, the API, and the
# one-shot jobs (airflow-init, bucket creation). docker/entrypoint.sh picks the role.
#
#   docker build -t songrec .            (docker compose up --build does it for you)
#
# Versions: the interpreter is the one the lock file was resolved and tested with; every package
# comes from requirements.lock. No secret is baked in: credentials arrive as environment
# variables at run time (.env, see .env.example).

ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

# --------------------------------------------------------------------------- build
FROM ${PYTHON_IMAGE} AS build

ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1

# A compiler only for a package without a wheel for the target platform; it stays in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv && pip install "uv==${UV_VERSION}"

WORKDIR /build
COPY requirements.lock pyproject.toml README.md ./
# The runtime extras, each package at its version in the lock file (-c: the lock constrains, the
# extras choose), so the test and lint tools of the `dev` extra stay out of the image. boto3 is
# MLflow's S3 client for --artifacts-destination s3://...; the bytecode is compiled here because
# the non-root user cannot write it at run time. The dependencies come first, installed with an
# empty package in src/'s place: this layer changes with the lock and pyproject.toml only, so a
# change to the code rebuilds the small layer below, not every dependency.
RUN mkdir -p src/songrec && touch src/songrec/__init__.py \
    && uv pip install --python /opt/venv/bin/python -c requirements.lock \
        ".[serve,airflow,monitor]" boto3 \
    && rm -rf src
COPY src ./src
# The package itself, as a wheel. The checks fail the build, not a container: the web page's
# files must be in the wheel.
RUN uv pip install --python /opt/venv/bin/python --no-deps --reinstall-package songrec . \
    && /opt/venv/bin/songrec --help >/dev/null \
    && /opt/venv/bin/python -c "from songrec.serving.routes import WEB; \
assert (WEB / 'static').is_dir() and (WEB / 'templates').is_dir(), f'{WEB}: web files not installed'"

# --------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

# tini: PID 1 that forwards signals (Celery's warm shutdown) and reaps DVC's child processes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

# The user Airflow's own images use (uid 50000, group 0), so volumes keep one owner.
RUN useradd --uid 50000 --gid 0 --create-home --home-dir /home/songrec --shell /bin/bash songrec \
    && mkdir -p /opt/airflow/logs /opt/songrec/workspace \
    && chown -R 50000:0 /opt/airflow /opt/songrec/workspace \
    && chmod -R g=u /opt/airflow /opt/songrec/workspace

COPY --from=build /opt/venv /opt/venv

# The release: the project as this image ships it. The Airflow containers work in a copy of it
# (the workspace volume, refreshed by airflow-init); the API reads its configuration here.
WORKDIR /opt/songrec/release
COPY config ./config
COPY dags ./dags
COPY src ./src
COPY data/source ./data/source
COPY params.yaml dvc.yaml dvc.lock .dvcignore pyproject.toml README.md ./
COPY .dvc/config ./.dvc/config
COPY docker ./docker
# The API's request-log spool (serve.event_spool): its own volume in compose, owned by the user.
RUN mkdir -p /opt/songrec/release/var/event-spool && chown -R 50000:0 /opt/songrec/release/var

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow \
    SONGREC_RELEASE=/opt/songrec/release \
    SONGREC_ROOT=/opt/songrec/release \
    MLFLOW_DISABLE_TELEMETRY=true \
    GIT_PYTHON_REFRESH=quiet \
    OMP_WAIT_POLICY=PASSIVE

USER 50000:0
EXPOSE 8000 8080 5000
ENTRYPOINT ["tini", "--", "/opt/songrec/release/docker/entrypoint.sh"]
CMD ["api"]
