#!/usr/bin/env python
"""Keep the parts of `make run` running: restart a part that dies, leave the others alone.

    supervise.py [--pid-dir DIR] NAME='shell command' [NAME='shell command' ...]

Each part runs in its own process group; its output is shown with a ``name |`` prefix. A part
that exits is restarted with an exponential back-off (1 s, 2 s, 4 s ... up to --max-backoff;
back to 1 s once it has run --reset-after seconds) and every restart is logged. Before a
restart, what is left of the dead part's process group (a killed Celery worker's pool
processes) is killed, so that two copies never work at once. Ctrl-C or SIGTERM stops every
part (SIGTERM to each group, SIGKILL after --stop-timeout) and exits.

Unlike run.sh's former ``wait -n``, a dead worker or Redis no longer stops the web server:
annotators keep labeling while background work is restarted.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

_output = threading.Lock()


def say(line: str) -> None:
    """Write one whole line (parts write from several threads)."""
    with _output:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def log(msg: str) -> None:
    say(f"{time.strftime('%H:%M:%S')} supervise | {msg}")


class Part:
    """One supervised command and its restart state."""

    def __init__(self, name: str, command: str, width: int, pid_dir: Path | None) -> None:
        self.name, self.command, self.width, self.pid_dir = name, command, width, pid_dir
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.failures = 0  # consecutive quick exits: the back-off exponent
        self.restart_at: float | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["bash", "-c", self.command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self.started = time.monotonic()
        self.restart_at = None
        if self.pid_dir:
            (self.pid_dir / f"{self.name}.pid").write_text(f"{self.proc.pid}\n")
        threading.Thread(target=self._relay, args=(self.proc,), daemon=True).start()

    def _relay(self, proc: subprocess.Popen) -> None:
        prefix = f"{self.name:<{self.width}} | "
        for line in iter(proc.stdout.readline, b""):
            say(prefix + line.decode("utf-8", "replace").rstrip("\n"))

    def kill_group(self, sig: int) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def describe(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def supervise(parts: list[Part], args: argparse.Namespace) -> None:
    stopping = threading.Event()

    def on_signal(signum, frame) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    for part in parts:
        part.start()
        log(f"started {part.name} (pid {part.proc.pid})")
    while not stopping.wait(0.2):
        now = time.monotonic()
        for part in parts:
            if part.restart_at is not None:
                if now >= part.restart_at:
                    part.start()
                    log(f"restarted {part.name} (pid {part.proc.pid})")
                continue
            code = part.proc.poll()
            if code is None:
                continue
            ran = now - part.started
            part.kill_group(signal.SIGKILL)  # leftovers of the dead part
            part.failures = 0 if ran >= args.reset_after else part.failures + 1
            delay = min(args.max_backoff, 2 ** part.failures) if part.failures else 1.0
            part.restart_at = now + delay
            log(f"{part.name} {describe(code)} after {ran:.0f}s; restarting in {delay:.0f}s")
    log("stopping everything")
    for part in reversed(parts):
        part.kill_group(signal.SIGTERM)
    deadline = time.monotonic() + args.stop_timeout
    for part in reversed(parts):
        if part.proc is None:
            continue
        try:
            part.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{part.name} did not stop in {args.stop_timeout:.0f}s: killing it")
        part.kill_group(signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="+", metavar="NAME=COMMAND")
    parser.add_argument("--pid-dir", type=Path, help="write NAME.pid of each running part here")
    parser.add_argument("--max-backoff", type=float, default=60.0)
    parser.add_argument("--reset-after", type=float, default=30.0,
                        help="a part that ran this long restarts after 1 s again")
    parser.add_argument("--stop-timeout", type=float, default=15.0)
    args = parser.parse_args()
    specs = [p.split("=", 1) for p in args.parts]
    if any(len(s) != 2 or not s[0] for s in specs):
        parser.error("each part is NAME=COMMAND")
    if args.pid_dir:
        args.pid_dir.mkdir(parents=True, exist_ok=True)
    width = max(len(name) for name, _ in specs)
    supervise([Part(name, command, width, args.pid_dir) for name, command in specs], args)


if __name__ == "__main__":
    main()
