"""CPU seconds used by the PostgreSQL server and by pgbench: a cost per transaction that load on the machine moves less.

On a shared machine the throughput of one run moves by up to a factor of two with
what else runs; the CPU time the server spends per transaction moves much less,
because waiting for a core costs no CPU time. Read on the same machine as the
server only (Linux /proc): the postmaster's own time and that of the children it
has reaped (every backend that exited), plus each live child's time.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import psycopg

_TICK = os.sysconf("SC_CLK_TCK")


def _fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def postmaster_pid(conninfo: str) -> int | None:
    """The server's postmaster, if it runs on this machine and we may read its data directory."""
    try:
        with psycopg.connect(conninfo) as conn:
            data = conn.execute("SHOW data_directory").fetchone()[0]
        pid = int((Path(data) / "postmaster.pid").read_text().split()[0])
    except (psycopg.Error, OSError, ValueError, IndexError):
        return None
    return pid if _fields(pid) else None


def server_seconds(postmaster: int | None) -> float:
    """CPU seconds of the server so far: the postmaster, its reaped children, its live children."""
    if postmaster is None:
        return float("nan")
    own = _fields(postmaster)
    if own is None:
        return float("nan")
    # fields after the command: [0] state, [1] ppid, ..., [11] utime, [12] stime, [13] cutime, [14] cstime
    total = sum(int(own[i]) for i in (11, 12, 13, 14))
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            f = _fields(int(entry))
            if f is not None and f[1] == str(postmaster):
                total += int(f[11]) + int(f[12])
    return total / _TICK


def settle(conninfo: str, timeout: float = 10.0) -> None:
    """Waits until no other client backend is left (a finished pgbench's have exited and been reaped).

    Read before that, a backend that exits while the children are counted is missed or counted
    twice, and its CPU lands in the next run's reading.
    """
    deadline = time.monotonic() + timeout
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while time.monotonic() < deadline:
            others = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                                  "AND pid <> pg_backend_pid()").fetchone()[0]
            if not others:
                break
            time.sleep(0.05)
    time.sleep(0.2)  # the postmaster reaps the last one


def client_seconds() -> float:
    """CPU seconds of this process's finished children (the pgbench runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
