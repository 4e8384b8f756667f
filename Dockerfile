# qk-atlas, CPU build: one image for the web app, the compute workers and the Dash callback workers.
# GPU build (compose's `worker-gpu`, profile gpu): TORCH_INDEX a CUDA wheel index and EXTRAS=team,gpu (accelerate,
# cuML); see docs/deployment.md.
FROM python:3.11-slim

ARG TORCH_SPEC="torch>=2.1"
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG EXTRAS=team
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    QK_ATLAS_CACHE_DIR=/data/cache HF_HOME=/data/hf

WORKDIR /app
RUN pip install --index-url "$TORCH_INDEX" "$TORCH_SPEC"
COPY pyproject.toml README.md LICENSE ./
COPY workers ./workers
COPY dashboard ./dashboard
RUN pip install ".[${EXTRAS}]"

RUN useradd --create-home --uid 1000 qk && mkdir -p /data && chown qk /data
USER qk
EXPOSE 8050
CMD ["gunicorn", "--bind", "0.0.0.0:8050", "--workers", "2", "--threads", "4", "dashboard.wsgi:server"]
