"""Processes of a benchmark run: the test services' shell functions, a process tree's peak
memory and niceness (Linux /proc)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def services(fn: str) -> str:
    """Run one function of scripts/services.sh and return what it prints."""
    out = subprocess.run(["bash", "-c", f"source scripts/services.sh && {fn}"], cwd=REPO,
                         check=True, capture_output=True, text=True)
    lines = out.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def peak_rss_mb(pid: int) -> dict[int, float]:
    """Peak resident memory (VmHWM) of each process in `pid`'s tree, in MiB."""
    peaks = {}
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[p] = int(line.split()[1]) / 1024
        except OSError:
            pass
    return peaks


def renice_tree(pid: int, niceness: int) -> None:
    """Give a process and its children ``niceness`` (as `make run` starts the worker)."""
    for p in tree(pid):
        try:
            os.setpriority(os.PRIO_PROCESS, p, niceness)
        except OSError:
            pass
