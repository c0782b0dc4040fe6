"""scripts/supervise.py on its own: a part that keeps dying is restarted with a growing back-off
(logged), the other parts are left alone, and Ctrl-C stops every part with its children."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from ..conftest import REPO, wait_for


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_backoff_keeps_others_up_and_ctrl_c_stops_all(tmp_path):
    log = tmp_path / "out.log"
    proc = subprocess.Popen(
        [sys.executable, "scripts/supervise.py", "--pid-dir", str(tmp_path),
         "flaky=echo up; exit 3",
         # A part with a child of its own, as gunicorn or a Celery worker has.
         f"steady=sleep 600 & echo $! > {tmp_path}/child; wait"],
        cwd=REPO, stdout=open(log, "w"), stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: "restarting in 4s" in log.read_text(), 30, 0.2, "a second back-off")
        out = log.read_text()
        assert "flaky exited with status 3 after 0s; restarting in 2s" in out
        assert "flaky  | up" in out  # output shown with the part's name (padded to "steady")
        steady = int((tmp_path / "steady.pid").read_text())
        child = int((tmp_path / "child").read_text())
        assert _alive(steady) and _alive(child) and "steady exited" not in out
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        assert "stopping everything" in log.read_text()
        wait_for(lambda: not _alive(child) and not _alive(steady), 10, 0.1, "parts to stop")
    finally:
        if proc.poll() is None:
            proc.kill()
