# syntax=docker/dockerfile:1
# Production image: the API (`reckonry api`, the default command) or a worker
# (`reckonry worker`), against real PostgreSQL and Redis.
#
# The build stage runs .ci/install-wheel, the script tests/test_install.py runs in CI: it
# builds the wheel and installs it, with the dependencies pinned by uv.lock (hashes checked)
# and without the embedded servers, into a fresh virtual environment at /opt/reckonry.
# The runtime stage holds that environment and nothing of the source tree.

FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /src
COPY pyproject.toml uv.lock README.md alembic.ini ./
COPY .ci/install-wheel ./.ci/
COPY migrations ./migrations
COPY app ./app
RUN --mount=type=cache,target=/root/.cache/uv \
    .ci/install-wheel /opt/reckonry /usr/local/bin/python3.11

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 reckonry
# Owned by root: the application cannot change its own code.
COPY --from=build /opt/reckonry /opt/reckonry
ENV PATH="/opt/reckonry/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    RECKONRY_ENV=production \
    RECKONRY_API_HOST=0.0.0.0 \
    RECKONRY_API_PORT=8000
USER reckonry
WORKDIR /home/reckonry
# 8000: the API; 9100: a worker's Prometheus metrics (RECKONRY_WORKER_METRICS_PORT).
EXPOSE 8000 9100
# For the API only: compose turns it off for the worker and migrate services.
HEALTHCHECK --interval=30s --timeout=3s \
    CMD python -c "import os, sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['RECKONRY_API_PORT'], timeout=2).status != 200)"
CMD ["reckonry", "api"]
