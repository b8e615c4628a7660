"""What the benchmarks read from /proc: a process's CPU ticks (whole, or the main thread vs the
others), its memory with its children, how busy each CPU was, and the load average."""

from __future__ import annotations

import os
import re

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid``, in seconds."""
    return cpu_ticks(pid) / CLK_TCK


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, all threads


def thread_ticks(pid: int) -> tuple[int, int]:
    """(main thread, all other threads) utime+stime: the event loop vs log writer, DuckDB, Panel."""
    main = other = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile (its time moved to the process total)
        ticks = int(fields[11]) + int(fields[12])
        if int(tid) == pid:
            main += ticks
        else:
            other += ticks
    return main, other


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def mem_mb(pid: int) -> dict[str, float]:
    """VmRSS/VmHWM of the proxy process, and summed over it and its children (the dashboards
    run in a child process started on the first dashboard request)."""
    out: dict[str, float] = {}
    for i, p in enumerate([pid, *_descendants(pid)]):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    key = line.split(":", 1)[0]
                    if key in ("VmRSS", "VmHWM"):
                        mb = int(line.split()[1]) / 1024
                        if i == 0:
                            out[key] = round(mb, 1)
                        out[key + "_tree"] = round(out.get(key + "_tree", 0) + mb, 1)
        except OSError:
            continue
    return out


def cpu_busy() -> dict[str, tuple[int, int]]:
    res = {}
    with open("/proc/stat") as f:
        for line in f:
            if re.match(r"cpu\d+ ", line):
                v = [int(x) for x in line.split()[1:]]
                res[line.split()[0]] = (sum(v[:8]), v[3] + v[4])
    return res


def busy_pct(a: dict, b: dict, cpu: str) -> float:
    total, idle = b[cpu][0] - a[cpu][0], b[cpu][1] - a[cpu][1]
    return round(100.0 * (total - idle) / total, 1) if total > 0 else 0.0


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])
