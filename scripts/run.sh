#!/usr/bin/env bash
# Start the whole workbench on embedded defaults: Redis, database, Celery worker and scheduler,
# web server, and a demo project, under scripts/supervise.py. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
bash scripts/bootstrap.sh
export DJANGO_SETTINGS_MODULE=labeler.settings
export LABELER_DATA_DIR=${LABELER_DATA_DIR:-$PWD/var}
PORT=${PORT:-8000}
HOST=${HOST:-127.0.0.1}
mkdir -p "$LABELER_DATA_DIR/log" "$LABELER_DATA_DIR/redis" "$LABELER_DATA_DIR/run"
parts=()
if [ -z "${REDIS_URL:-}" ]; then
  REDIS_PORT=${LABELER_REDIS_PORT:-6390}
  parts+=("redis=exec '$(redis_binary)' --port $REDIS_PORT --bind 127.0.0.1 --dir '$LABELER_DATA_DIR/redis' \
    --save 60 1 --appendonly no --daemonize no >> '$LABELER_DATA_DIR/log/redis.log' 2>&1")
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  echo "==> redis on $REDIS_URL (log: $LABELER_DATA_DIR/log/redis.log)"
fi
.venv/bin/python manage.py migrate --noinput -v 0
.venv/bin/python manage.py collectstatic --noinput -v 0
# Image files that no item references (an upload killed mid-way): older than an hour, removed.
.venv/bin/python manage.py sweep_media -v 0 || true
# The demo (and only the demo) creates the demo admin with its public password; never in production.
[ "${LABELER_PRODUCTION:-0}" = 1 ] || LABELER_DEMO=1 .venv/bin/python manage.py setup_demo

# One worker for both queues: `web` (planning jobs, ingesting results: needs the database) and
# `gpu` (embedding, retraining: needs only the broker and storage; on GPU machines run
# `celery -A worker.celery_app worker -Q gpu -c 1` there instead). Before each (re)start, nothing
# of ours runs, so resume_work may fail the jobs a killed worker left and queue their work at
# once. Background work yields the CPU to the web server (nice): annotators must not wait on a
# retrain.
parts+=("worker=.venv/bin/python manage.py resume_work; exec nice -n ${LABELER_WORKER_NICE:-10} \
  .venv/bin/celery -A labeler worker -l info --concurrency 2 -Q web,gpu \
  2>&1 | tee -a '$LABELER_DATA_DIR/log/worker.log'")
# The one scheduler (keep it one, however many workers): the sweep that queues work a broker
# outage or a dead worker left behind (labeler.training.sweep).
parts+=("beat=exec .venv/bin/celery -A labeler beat -l warning \
  --schedule '$LABELER_DATA_DIR/run/celerybeat-schedule' >> '$LABELER_DATA_DIR/log/beat.log' 2>&1")
# Processes rather than threads: label requests are short and CPU-bound in Python, and threads
# of one process queue on the GIL; with one thread gunicorn runs its sync worker, where a free
# process accepts each request (a threaded one keeps its keep-alive connections busy or not):
# benchmarks/scale_1m.py at 1M, next-item p95 23.3 ms with 4x1 against 26.6 ms with 4x2.
# A sync process is killed after --timeout seconds of one request: 300, so that a streamed
# export of a million items (20-30 s here) is never cut off.
parts+=("web=exec .venv/bin/gunicorn labeler.wsgi -b '$HOST:$PORT' \
  --workers ${LABELER_WEB_WORKERS:-$((2 * $(nproc)))} --threads ${LABELER_WEB_THREADS:-1} \
  --timeout 300 --access-logfile '$LABELER_DATA_DIR/log/access.log'")

cat <<MSG

  labeler is starting:  http://$HOST:$PORT/
  log in as:            ${LABELER_DEMO_USER:-admin} / ${LABELER_DEMO_PASSWORD:-labeler-demo}
  logs:                 $LABELER_DATA_DIR/log/ (worker, beat, redis, access)
  A part that dies is restarted (web, worker, beat, redis); Ctrl-C stops everything.

MSG
# Supervised: a dead worker or Redis is restarted with a back-off; the web server stays up.
exec .venv/bin/python scripts/supervise.py --pid-dir "$LABELER_DATA_DIR/run" "${parts[@]}"
