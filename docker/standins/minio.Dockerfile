# A stand-in for MinIO: moto's S3 server on :9000 behind the two commands docker-compose.yaml
# runs, `minio server ...` (its arguments are ignored: moto keeps the buckets in memory) and
# `mc ready local` (the healthcheck). Any access key is accepted.
FROM python:3.11.7-slim-bookworm
ARG MOTO_VERSION=5.2.5
RUN pip install --no-cache-dir "moto[server]==${MOTO_VERSION}"
COPY minio mc /usr/local/bin/
EXPOSE 9000
ENTRYPOINT ["minio"]
CMD ["server", "/data"]
