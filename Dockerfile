# syntax=docker/dockerfile:1
# The production image: gunicorn serving the Django app on port 8000 as a non-root user.
# Build: docker build -t bmi-progression . ; run: see docs/deployment.md.

# Python version of the test suite (pyproject.toml: requires-python >=3.11,<3.12).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- Build stage: install the pinned runtime requirements into a virtualenv ------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# python3, not python: Debian's own python3 (the local base, deploy/container/debian-base-image.sh)
# has no `python`; the official image has both. Inside the venv both names exist.
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Runtime requirements only (never requirements-dev.txt): no test tools in the image. Every
# package ships a manylinux wheel, so no compiler is needed even here. Then out of what the final
# stage copies goes what nothing runs: pip and setuptools (nothing is installed at run time) and the
# packages' own test suites (numpy, scipy, scikit-learn: 63 MB with their bytecode). Budget
# and measurements: docs/deployment.md.
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements.txt \
    && pip uninstall --yes pip setuptools \
    && find /opt/venv/lib -type d -name tests -prune -exec rm -rf {} +

# --- Final stage: the virtualenv, the code and the collected static files --------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=bmiproject.settings \
    PORT=8000

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
COPY --chown=root:root . /app

# whitenoise serves the hashed, compressed files collected here. collectstatic imports the
# settings, which refuse to load without SECRET_KEY and DATABASE_URL: the values below exist only
# for this RUN (they are not ENV, so they are not in the image); nothing is signed and no database
# is connected to. Bytecode is compiled now because the root filesystem is read-only at run time.
RUN SECRET_KEY=collectstatic-build-only-not-a-secret DATABASE_URL=postgres://build-only.invalid/none \
    python manage.py collectstatic --no-input \
    && python -m compileall -q /app /opt/venv

# Numeric, so orchestrators can verify it is not root. The code is owned by root and read-only
# for this user; at run time it writes only to /tmp and /dev/shm (ECS: read-only root filesystem).
USER 10001:10001

EXPOSE 8000

# Liveness without curl: the image has Python. /healthz needs no database (see predictor/middleware.py).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

# tests/deploy/test_gunicorn.py runs exactly this command against PostgreSQL.
CMD ["gunicorn", "--config", "bmiproject/gunicorn.conf.py", "bmiproject.wsgi:application"]
