#!/usr/bin/env bash
# Start the whole workbench on embedded defaults: Redis, database, Celery worker, web server,
# and a demo project. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
bash scripts/bootstrap.sh
export DJANGO_SETTINGS_MODULE=labeler.settings
export LABELER_DATA_DIR=${LABELER_DATA_DIR:-$PWD/var}
PORT=${PORT:-8000}
HOST=${HOST:-127.0.0.1}
mkdir -p "$LABELER_DATA_DIR/log" "$LABELER_DATA_DIR/redis"
pids=()
cleanup() { trap - EXIT INT TERM; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ -z "${REDIS_URL:-}" ]; then
  REDIS_PORT=${LABELER_REDIS_PORT:-6390}
  "$(redis_binary)" --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$LABELER_DATA_DIR/redis" \
    --save 60 1 --appendonly no --daemonize no > "$LABELER_DATA_DIR/log/redis.log" 2>&1 &
  pids+=($!)
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  echo "==> redis on $REDIS_URL"
fi
.venv/bin/python manage.py migrate --noinput -v 0
.venv/bin/python manage.py collectstatic --noinput -v 0
# The demo (and only the demo) creates the demo admin with its public password; never in production.
[ "${LABELER_PRODUCTION:-0}" = 1 ] || LABELER_DEMO=1 .venv/bin/python manage.py setup_demo

echo "==> celery worker (log: $LABELER_DATA_DIR/log/worker.log)"
# Background work yields the CPU to the web server: annotators must not wait on a retrain.
nice -n "${LABELER_WORKER_NICE:-10}" \
  .venv/bin/celery -A worker.celery_app worker -l info --concurrency 2 -Q labeler \
  > >(tee -a "$LABELER_DATA_DIR/log/worker.log") 2>&1 &
pids+=($!)
# Queue what a previous run left unfinished (the demo's embeddings on the first start).
.venv/bin/python manage.py resume_work || true

echo "==> web server on http://$HOST:$PORT"
# Processes rather than threads: label requests are short and CPU-bound in Python, and threads
# of one process queue on the GIL (benchmarks/next_item_latency.py: p95 lower with 4x2 than 2x4).
.venv/bin/gunicorn labeler.wsgi -b "$HOST:$PORT" \
  --workers "${LABELER_WEB_WORKERS:-$((2 * $(nproc)))}" --threads "${LABELER_WEB_THREADS:-2}" \
  --access-logfile "$LABELER_DATA_DIR/log/access.log" &
pids+=($!)
sleep 2
cat <<MSG

  labeler is running:   http://$HOST:$PORT/
  log in as:            ${LABELER_DEMO_USER:-admin} / ${LABELER_DEMO_PASSWORD:-labeler-demo}
  worker log:           $LABELER_DATA_DIR/log/worker.log
  Ctrl-C stops everything.

MSG
wait -n "${pids[@]}"
