# A stand-in for prom/prometheus:v2.42.0: Debian's prometheus package (the same release), and
# wget for the healthcheck. Compose gives the flags and mounts the configuration.
FROM python:3.11.7-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus wget \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER nobody
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
