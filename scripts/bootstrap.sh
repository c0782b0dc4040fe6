#!/usr/bin/env bash
# Create .venv and install labeler into it. Safe to re-run: skips work already done.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
# torch/torchvision first, pinned: these releases lie on this machine's disk (no multi-GB download).
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  echo "==> installing torch + torchvision"
  .venv/bin/pip install -q "torch==${TORCH_VERSION:-2.14.1}" "torchvision==${TORCHVISION_VERSION:-0.29.1}"
fi
stamp=.venv/.labeler-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing labeler and its dependencies"
  .venv/bin/pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi
