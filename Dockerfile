# Production image: the API (`reckonry api`) or a worker (`reckonry worker`).
# The embedded PostgreSQL/Redis group is left out: production uses real servers.

FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /srv/reckonry
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-group embedded --no-install-project
COPY README.md alembic.ini ./
COPY migrations ./migrations
COPY app ./app
RUN uv sync --locked --no-dev --no-group embedded --no-editable

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 reckonry
WORKDIR /srv/reckonry
COPY --from=build --chown=reckonry:reckonry /srv/reckonry /srv/reckonry
ENV PATH="/srv/reckonry/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    RECKONRY_ENV=production \
    RECKONRY_API_HOST=0.0.0.0 \
    RECKONRY_API_PORT=8000
USER reckonry
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["reckonry", "api"]
