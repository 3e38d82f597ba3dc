# The API and the workers (one image; docker-compose.yml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY connections ./connections
COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY cli ./cli
COPY durable_export ./durable_export
RUN pip install . \
    && useradd --system --uid 10001 --no-create-home exports

USER exports
EXPOSE 8000
CMD ["export-api", "--host", "0.0.0.0", "--port", "8000"]
