#!/usr/bin/env bash
# Install everything the tests need (virtualenv, Redis, PostgreSQL, Chromium) and run the whole
# suite: on SQLite (the default database) and again on PostgreSQL for everything that touches
# the database. Extra arguments go to pytest, e.g. `bash scripts/test.sh -k browser`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
apt_install redis-server postgresql chromium
bash scripts/bootstrap.sh
export LABELER_DATA_DIR=${LABELER_DATA_DIR:-$(mktemp -d /tmp/labeler-test-XXXXXX)}
export LABELER_REDIS_SERVER=${LABELER_REDIS_SERVER:-$(redis_binary)}
export DJANGO_ALLOW_ASYNC_UNSAFE=true
unset DATABASE_URL
echo "==> ruff"
.venv/bin/ruff check .
echo "==> pytest on SQLite (data in $LABELER_DATA_DIR)"
.venv/bin/python -m pytest "$@"
if [ "${LABELER_SKIP_POSTGRES:-}" = 1 ]; then exit 0; fi
echo "==> pytest on PostgreSQL (every test that uses the database)"
pg=$(start_postgres) || { echo "PostgreSQL could not be started" >&2; exit 1; }
pg_dir=${pg#*|}
trap 'stop_postgres "$pg_dir"' EXIT
DATABASE_URL=${pg%|*} .venv/bin/python -m pytest --ignore=tests/ml -p no:cacheprovider "$@"
