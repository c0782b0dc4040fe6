#!/usr/bin/env bash
# Install everything the tests need (virtualenv, Redis, Chromium) and run the whole suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k browser`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
apt_install redis-server chromium
bash scripts/bootstrap.sh
export LABELER_DATA_DIR=${LABELER_DATA_DIR:-$(mktemp -d /tmp/labeler-test-XXXXXX)}
export LABELER_REDIS_SERVER=${LABELER_REDIS_SERVER:-$(redis_binary)}
export DJANGO_ALLOW_ASYNC_UNSAFE=true
echo "==> ruff"
.venv/bin/ruff check .
echo "==> pytest (data in $LABELER_DATA_DIR)"
.venv/bin/python -m pytest "$@"
