# A stand-in for redis:7.2.5-bookworm: Debian's redis-server and redis-cli (compose gives the
# command line, --requirepass included).
FROM python:3.11.7-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server redis-tools \
    && rm -rf /var/lib/apt/lists/*
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0"]
