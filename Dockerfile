# syntax=docker/dockerfile:1
# The smrun images, two targets of one Dockerfile:
# - the default (the last stage): the image for Kubeflow Pipelines steps (`smrun <component>
#   ...`, `smrun run ...`). Runtime dependencies only: the wheels of the project and of
#   [project] dependencies in pyproject.toml, no extras (kfp, moto and the test tools stay
#   out), no build tools;
# - `daemon`: `smrun daemon` (deploy/kubernetes), the same plus the [postgres] extra for its
#   shared store, listening on port 8080.
#
#   docker build -t <registry>/smrun:<version> .
#   docker build --target daemon -t <registry>/smrun-daemon:<version> .
#   python -m components.build --image <registry>/smrun:<version>

# --- build: the project's wheel and the wheels of its runtime dependencies
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY runner ./runner
COPY handlers ./handlers
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- daemon-build: the same wheels and those of the [postgres] extra, for the daemon only
# (building the default target never runs this stage)
FROM build AS daemon-build
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres]"

# --- base: what both images share, without smrun
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SMRUN_STATE_DIR=/tmp/smrun
RUN useradd --create-home --uid 1000 --user-group smrun

# --- daemon: smrun with the [postgres] extra, from the daemon-build stage, offline
FROM base AS daemon
RUN --mount=type=bind,from=daemon-build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "smrun[postgres]"
# numeric, so that Kubernetes can verify runAsNonRoot (deploy/kubernetes runs it as 1000)
USER 1000:1000
WORKDIR /home/smrun
# the API, the web view, /healthz, /readyz and /metrics
EXPOSE 8080
# --database defaults to $SMRUN_DATABASE_URL; the Deployment passes --token-file
ENTRYPOINT ["smrun"]
CMD ["daemon", "--listen", "0.0.0.0:8080"]

# --- runtime, the default target: those wheels installed from the build stage, offline;
# nothing else
FROM base
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels smrun
# numeric, so that Kubernetes can verify runAsNonRoot; any other UID works too
# (the journal lives in $SMRUN_STATE_DIR, under /tmp)
USER 1000:1000
WORKDIR /home/smrun
ENTRYPOINT ["smrun"]
CMD ["--help"]
