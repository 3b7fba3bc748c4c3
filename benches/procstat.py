"""Process accounting from /proc: a server's process tree, the CPU seconds of processes (and of
the PostgreSQL backends serving one database), the machine's busy time, and memory fields.
Reads only; it starts and stops nothing."""

from __future__ import annotations

import os
from pathlib import Path

from pgdb import pg_connect

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int) -> tuple[int, float] | None:
    """(ppid, utime+stime seconds) of one process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_tree(root: int) -> list[int]:
    """root and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = proc_stat(int(entry.name))
            if st:
                children.setdefault(st[0], []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def stat_cpu(stat_path: Path) -> float:
    """utime+stime, in seconds, of a /proc/.../stat file (10 ms ticks)."""
    text = stat_path.read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_cpu(pid: int) -> float | None:
    """CPU seconds of one process, all its threads: the live threads' run time in ns from
    schedstat (stat's 10 ms ticks are too coarse for short windows), plus, in ticks, the time of
    threads that already exited (which only the process's stat still counts)."""
    try:
        total = stat_cpu(Path(f"/proc/{pid}/stat"))
        live_ns, live_ticks = 0, 0.0
        for task in Path(f"/proc/{pid}/task").iterdir():
            live_ns += int((task / "schedstat").read_text().split()[0])
            live_ticks += stat_cpu(task / "stat")
        return live_ns / 1e9 + max(0.0, total - live_ticks)
    except (OSError, ValueError, IndexError):
        return None


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    return {pid: cpu for pid in pids if (cpu := proc_cpu(pid)) is not None}


def cpu_delta_by_pid(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two snapshots by the processes alive at the second; a process that
    exited in between loses its last stretch (an undercount, never a negative)."""
    return sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all processes, all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def memory_kb(pids: list[int], path: str, field: str) -> int:
    """Sums one kB field of /proc/<pid>/<path> over the processes."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


class PgBackendCpu:
    """CPU seconds of the PostgreSQL backends connected to one database (read from /proc)."""

    def __init__(self, dbname: str):
        self.dbname = dbname
        self.conn = pg_connect()
        self.conn.autocommit = True

    def snapshot(self) -> dict[int, float]:
        with self.conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.dbname,))
            return cpu_by_pid([row[0] for row in cur.fetchall()])

    def close(self) -> None:
        self.conn.close()
