# Flow Manager: the API (and, with `python -m app worker`, standalone workers).
#   docker build -t flow-manager .
#   docker run -p 8000:8000 -e ADMIN_API_KEY=... -e DATABASE_URL=postgresql+asyncpg://... flow-manager
# It listens on 0.0.0.0, so authentication is on (AUTH=auto): every call but /health and
# /ready needs an API key, e.g. ADMIN_API_KEY's.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements change.
COPY requirements.txt ./
RUN pip install -r requirements.txt

# The migrations ship inside the package (app/store/alembic); alembic.ini is for the `alembic`
# command, run from /app.
COPY pyproject.toml alembic.ini ./
COPY app ./app
COPY examples ./examples
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /app flow \
    && mkdir -p /app/data && chown flow /app/data

USER flow

ENV HOST=0.0.0.0 \
    PORT=8000 \
    DATABASE_URL=sqlite+aiosqlite:////app/data/flows.db

EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"8000\")}/health', timeout=2)" || exit 1

# Migrations are an explicit start step, then the server (exec: signals reach uvicorn).
CMD ["sh", "-c", "python -m app db upgrade && exec python -m app serve"]
