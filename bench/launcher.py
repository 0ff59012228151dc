"""Starts the measured processes for bench/run.py and reports their rusage.

Why a process of its own: Linux carries a process's peak RSS (ru_maxrss)
across fork and exec, so a child forked from the bench, which holds the
whole farm in memory, would report at least the bench's RSS. This launcher
is started before the farm exists and stays small (about 12 MiB), so the
peak RSS it reports is the measured program's own.

Protocol, one JSON object per line: a request on stdin is a list of jobs
({"command", "env", "cwd", "stdout", "stderr", "timeout"}) started together;
the answer on stdout is a list of results in the same order ({"wall",
"user", "system", "max_rss_kib", "returncode", "timed_out", "started_at"}).
The launcher exits at the end of its input, so it dies with the bench.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from typing import Any

_LIVE: set[subprocess.Popen[bytes]] = set()


def _kill_all_and_exit(*_: object) -> None:
    """The bench is gone or stops us: no measured process may outlive it."""
    for process in list(_LIVE):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    os._exit(1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    _kill_all_and_exit()


def _run_jobs(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Start every job, wait for all (each within its timeout), and describe each."""
    results: list[dict[str, Any]] = [{} for _ in jobs]
    processes: list[subprocess.Popen[bytes]] = []
    waiters = []
    for slot, job in enumerate(jobs):
        with open(job["stdout"], "wb") as out, open(job["stderr"], "wb") as err:
            started_at = datetime.now().isoformat()
            start = time.monotonic()
            process = subprocess.Popen(
                job["command"], env=job["env"], cwd=job["cwd"], stdout=out, stderr=err, start_new_session=True
            )
        processes.append(process)
        _LIVE.add(process)

        def wait(process: subprocess.Popen[bytes] = process, slot: int = slot, start: float = start,
                 started_at: str = started_at) -> None:  # fmt: skip
            _pid, status, usage = os.wait4(process.pid, 0)
            end = time.monotonic()
            process.returncode = os.waitstatus_to_exitcode(status)
            results[slot].update(
                wall=end - start,
                user=usage.ru_utime,
                system=usage.ru_stime,
                max_rss_kib=usage.ru_maxrss,  # KiB on Linux
                returncode=process.returncode,
                started_at=started_at,
            )

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        waiters.append((waiter, job, start, slot))
    for waiter, job, start, slot in waiters:
        waiter.join(max(0.0, start + float(job["timeout"]) - time.monotonic()))
        results[slot]["timed_out"] = waiter.is_alive()
        if waiter.is_alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(processes[slot].pid, signal.SIGKILL)
            waiter.join(30)
    _LIVE.difference_update(processes)
    return results


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench decides; EOF on stdin ends us
    signal.signal(signal.SIGTERM, _kill_all_and_exit)
    threading.Thread(target=_watch_parent, args=(int(sys.argv[1]),), daemon=True).start()
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(_run_jobs(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
