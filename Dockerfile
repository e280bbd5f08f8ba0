# syntax=docker/dockerfile:1
# The smrun image for Kubeflow Pipelines steps (`smrun <component> ...`, `smrun run ...`).
# Runtime dependencies only: the wheels of the project and of [project] dependencies in
# pyproject.toml, no extras (kfp, moto and the test tools stay out), no build tools.
#
#   docker build -t <registry>/smrun:<version> .
#   python -m components.build --image <registry>/smrun:<version>

# --- build: the project's wheel and the wheels of its runtime dependencies
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY runner ./runner
COPY handlers ./handlers
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- runtime: those wheels installed from the build stage, offline; nothing else
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SMRUN_STATE_DIR=/tmp/smrun
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels smrun \
    && useradd --create-home --uid 1000 --user-group smrun
# numeric, so that Kubernetes can verify runAsNonRoot; any other UID works too
# (the journal lives in $SMRUN_STATE_DIR, under /tmp)
USER 1000:1000
WORKDIR /home/smrun
ENTRYPOINT ["smrun"]
CMD ["--help"]
