# Seq2Seq Explorer for a classroom server: CPU-only PyTorch (no GPU libraries in the image), the app on port 8501.
#   docker build -t seq2seq-explorer .
#   docker run --rm -p 8501:8501 -e SEQ2SEQ_WORKERS=4 seq2seq-explorer
FROM python:3.11-slim

# PyTorch's CPU wheels live on its own index; the default index serves the CUDA build (several GB).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt ./
RUN pip install torch==2.13.0 --index-url "${TORCH_INDEX}" \
 && pip install -r requirements.txt

COPY . .
RUN pip install --no-deps . \
 && useradd --create-home --uid 10001 explorer \
 && mkdir -p /app/data && chown 10001 /app/data
USER 10001

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health')"]
CMD ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501"]
