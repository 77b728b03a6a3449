# syntax=docker/dockerfile:1
# crypto-grpc image: the gRPC streaming server (default command), the Django
# admin web tier (uvicorn) and the migration job all run from this image.
# Runs as UID/GID 10001 and works with a read-only root filesystem as long as
# /tmp and /app/logs are writable (the Helm chart mounts emptyDirs there).

ARG PYTHON_VERSION=3.12

# ---- build: install the lock and the project into a virtualenv -----------
FROM python:${PYTHON_VERSION}-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_LOG_TO_TMP=false

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
# The locked tree first (its own layer, rebuilt only when the lock changes):
# every package pinned with its sha256, none of their own requirements
# (--no-deps), so django-cfg's requirements this service never imports stay
# out (requirements/lean-excludes.txt; tests/packaging proves the rest runs).
COPY requirements/runtime.txt requirements/runtime.txt
RUN pip install --require-hashes --no-deps -r requirements/runtime.txt
# .dockerignore keeps the context to what the app needs (pyproject.toml,
# README.md, manage.py, apps/, config/, protos/, requirements/). The project
# itself, with no dependencies and the build backend (setuptools) from the lock.
COPY . .
RUN pip install --no-deps --no-build-isolation . \
    && rm -rf build ./*.egg-info

# Static files for the admin, served by whitenoise from /app/staticfiles.
# Importing the settings needs no database and no real secret here: the flag
# admits the development key for this one build command only (never an ENV,
# so the image itself refuses to run without DJANGO_SECRET_KEY).
RUN DJANGO_ALLOW_DEV_SECRET_KEY=on python manage.py collectstatic --noinput \
    && python -m compileall -q apps config manage.py \
    && rm -rf logs media db.sqlite3

# ---- runtime: no compilers, no pip cache, non-root ------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    DJANGO_LOG_TO_TMP=false \
    GRPC_PORT=50051 \
    METRICS_PORT=7464

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /tmp --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
# ./logs is written by django-cfg's file logger (relative to the working dir).
RUN install -d -o 10001 -g 10001 /app/logs

WORKDIR /app
USER 10001:10001
EXPOSE 50051 7464

CMD ["python", "manage.py", "rungrpc"]
