# The flaskandmnist web service: Flask + the shipped LiteRT model, served by gunicorn.
# docker-compose.yml runs it next to Cassandra; tests/test_container_command.py builds the
# same environment without Docker and runs this file's CMD and HEALTHCHECK.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# A fixed numeric uid, so that volumes and Kubernetes' runAsNonRoot can rely on it. The
# code stays owned by root: the service cannot change itself. Its home holds gunicorn's
# control socket.
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin app

# Predictions wait in this folder while Cassandra cannot take them (docs/durability.md).
# docker-compose.yml mounts a named volume here, so they outlive the container; a new
# volume copies this folder's owner.
ENV OUTBOX_DIR=/var/lib/flaskandmnist/outbox
RUN mkdir -p "$OUTBOX_DIR" && chown 10001:10001 "$OUTBOX_DIR"

# Dependencies first, in their own layer: rebuilt only when requirements.txt changes
# (exact pins of what serving imports: no TensorFlow, which only training needs).
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY csd.py ./
COPY flaskandmnist/ flaskandmnist/

USER 10001:10001
EXPOSE 5000

# The app's liveness route; slim images have no curl. The port is read as the app reads it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; from flaskandmnist.config import WebSettings as W; u.urlopen(f'http://127.0.0.1:{W.from_env().port}/healthz', timeout=4)"]

# Workers, threads and timeouts: WEB_WORKERS, WEB_THREADS, WEB_TIMEOUT (docs/operations.md).
CMD ["gunicorn", "--config", "python:flaskandmnist.gunicorn_conf", "flaskandmnist.web:create_app()"]
