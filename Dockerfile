# The aggregator daemon with its HTTP server (feeds, site, /healthz, /metrics) in one container.
#   docker build -t aggregator .
#   docker run -d --name aggregator -p 8080:8080 --stop-timeout 45 \
#     -v "$PWD/feeds.yaml:/config/feeds.yaml:ro" -v aggregator-archive:/archive aggregator
# feeds.yaml must set `archive_dir: /archive` and `serve_host: 0.0.0.0` (to be reachable from outside).
#   docker kill -s HUP aggregator   # reload feeds.yaml
#   docker stop aggregator          # SIGTERM: in-flight polls and a publish get shutdown_grace (default 30s),
#                                   # then the daemon exits within 5 s more
# Docker sends SIGKILL 10 s after SIGTERM unless told otherwise: give it shutdown_grace + 15 s, with
# `docker run --stop-timeout 45` as above, `docker stop -t 45`, or `stop_grace_period: 45s` in compose.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY aggregator ./aggregator
RUN pip install . && rm -rf /src \
    && useradd --system --uid 10001 --home-dir /archive aggregator \
    && mkdir -p /archive /config && chown aggregator:aggregator /archive

USER aggregator
WORKDIR /archive
VOLUME ["/archive"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=1m --timeout=5s --start-period=30s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)" || exit 1
ENTRYPOINT ["aggregator", "--config", "/config/feeds.yaml"]
CMD ["daemon", "--serve", "--log-format", "json"]
