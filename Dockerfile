# Two images from one file:
#   api    -- the service alone (FastAPI, store, events): no PyTorch, a few hundred MB
#   worker -- the training and projection workers: the service plus the `worker` extra
#             (PyTorch; PyPI's Linux torch wheels bundle CUDA, so it trains on a GPU when the
#             container is given one)
# docker-compose.yml builds both (`target: api` / `target: worker`).
# Each installs its subset of the lock (requirements/api.txt, requirements/worker.txt: exact
# versions and hashes, written by `make lock`), then the project's packages without dependencies.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATA_DIR=/data \
    FRONTEND_DIR=/app/frontend

WORKDIR /app
COPY pyproject.toml README.md ./
COPY requirements ./requirements
# the client package: the API decodes uploaded epochs with its collapse_lab.wire
COPY client ./client
COPY backend ./backend
COPY workers ./workers
COPY contract ./contract
COPY frontend ./frontend
RUN useradd --create-home --uid 1000 collapse \
    && mkdir -p /data && chown collapse /data
VOLUME ["/data"]

FROM base AS worker
# UMAP's compiled kernels (workers/engine/projection.py) on the data volume: a restarted
# projection worker reads them instead of compiling them again
ENV NUMBA_CACHE_DIR=/data/numba-cache
RUN pip install --require-hashes -r requirements/worker.txt \
    && pip install --no-deps --no-build-isolation ./client '.[worker]' && pip check
USER collapse
CMD ["celery", "-A", "workers.celery_app", "worker", "-Q", "train", "--pool", "solo", "--concurrency", "1"]

FROM base AS api
RUN pip install --require-hashes -r requirements/api.txt \
    && pip install --no-deps --no-build-isolation ./client . && pip check \
    && python -c "import backend.app, sys; assert 'torch' not in sys.modules"
USER collapse
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=3)"
CMD ["uvicorn", "--factory", "backend.app:create_app", "--host", "0.0.0.0", "--port", "8000"]
