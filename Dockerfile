# The smrun image for Kubeflow Pipelines steps: runtime dependencies only (no kfp, no moto).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY runner ./runner
COPY handlers ./handlers
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --create-home --uid 1000 smrun
USER smrun
WORKDIR /home/smrun
ENTRYPOINT ["smrun"]
CMD ["--help"]
