# syntax=docker/dockerfile:1
# One image for every Asistente process; configuration comes from the environment (see .env.example).
#   docker run -p 8000:8000 --env-file .env -v "$PWD/business.yaml:/app/business.yaml:ro" IMAGE
#       -> asistente serve --host 0.0.0.0 (applies the schema, then webhooks, admin API, health, metrics, worker)
#   docker run --env-file .env -v ... IMAGE asistente worker --metrics-host 0.0.0.0 --metrics-port 9100
#       -> a standalone worker (any number against one PostgreSQL); its HEALTHCHECK must be overridden, see compose.yaml
# Run with --init (compose: `init: true`) so that signals reach the process even before it installs its handlers.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, in their own layer: editing the code does not reinstall LangGraph and friends.
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/python -c "import subprocess, sys, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
subprocess.check_call([sys.executable, '-m', 'pip', 'install', *deps])"
COPY . .
# The project itself: not editable and without the dev extra (no pytest, ruff or mypy in the image).
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/pip install --no-deps . \
    && /opt/venv/bin/pip check

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A fixed numeric id, so that orchestrators can verify "non-root" (Kubernetes' runAsNonRoot needs a number).
RUN groupadd --system --gid 10001 asistente \
    && useradd --system --uid 10001 --gid asistente --home-dir /app --shell /usr/sbin/nologin asistente
WORKDIR /app
# The virtualenv stays root-owned: the running process cannot modify its own code.
COPY --from=build /opt/venv /opt/venv
# /app/data is where the SQLite default (DATABASE_URL unset) lives, so it must be writable by the runtime user.
# /app/data/spool (SPOOL_DIR's default) holds webhooks the database did not take in time: mount a persistent volume
# there for `serve` (compose.yaml does); a new named volume copies this directory's owner, so the user can write it.
RUN mkdir -p /app/data/spool && chmod 700 /app/data/spool && chown -R asistente:asistente /app
USER 10001:10001
EXPOSE 8000
# urllib, not curl: the slim image has no curl. /health answers 503 only when the database is down.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["asistente", "serve", "--host", "0.0.0.0"]
