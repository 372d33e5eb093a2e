# The image songrec's Dockerfile starts FROM (python:3.11.7-slim-bookworm), made from Debian's
# packages: a minbase bookworm root with python3 (build-images.sh imports it as
# local/debian-python:bookworm), `python` and `pip` on PATH as the registry image has them.
FROM local/debian-python:bookworm
# The host's CA bundle: where the package index is reached through a TLS-inspecting proxy, pip
# and uv inside a build trust only what the host trusts.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN ln -sf /usr/bin/python3 /usr/local/bin/python && ln -sf /usr/bin/pip3 /usr/local/bin/pip
ENV PIP_BREAK_SYSTEM_PACKAGES=1 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    LANG=C.UTF-8
CMD ["python3"]
