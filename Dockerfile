# One image for every Collapse Lab service: the API (default command), the train workers and
# the projection workers (docker-compose.yml picks the command). PyPI's Linux torch wheels
# bundle CUDA, so the same image trains on a GPU when the container is given one.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATA_DIR=/data \
    FRONTEND_DIR=/app/frontend

WORKDIR /app
COPY pyproject.toml README.md ./
COPY backend ./backend
COPY workers ./workers
COPY frontend ./frontend
RUN pip install --upgrade pip && pip install . \
    && useradd --create-home --uid 1000 collapse \
    && mkdir -p /data && chown collapse /data

USER collapse
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=3)"
CMD ["uvicorn", "--factory", "backend.app:create_app", "--host", "0.0.0.0", "--port", "8000"]
