# The desk's daemon in paper mode on the simulated market. Logs (journal + SQLite) live in a volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# The CPU build of torch: the default index would pull several GB of CUDA packages.
COPY requirements.txt .
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt

COPY main.py ./
COPY desk/ desk/
COPY dashboard/ dashboard/
COPY configs/ configs/

RUN useradd --create-home --uid 10001 desk && mkdir -p /app/logs && chown -R desk:desk /app/logs
USER desk
VOLUME ["/app/logs"]

# SIGTERM stops the daemon cleanly (in-flight work finishes, the journal is flushed).
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "main.py"]
CMD ["--config", "configs/config.yaml"]
