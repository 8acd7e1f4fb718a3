"""How much memory a bench server's serving processes hold, from /proc (Linux).

A server is a process group of its own (see ``bench.servers``). The processes that serve are the
leaves of that group's tree: waitress's single process, each gunicorn or granian worker (their
arbiter and the ``bench.serve`` wrapper only supervise). ``VmHWM`` is a process's peak resident
set since it started, ``VmRSS`` its resident set now.
"""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")


def stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name (``state ppid pgrp … utime stime …``), or
    None when the process is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:  # gone meanwhile
        return None
    # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    return stat[stat.rindex(")") + 2 :].split()


def group_stats(group: int) -> dict[int, list[str]]:
    """Each process of process group ``group``: its :func:`stat_fields`."""
    members = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields and int(fields[2]) == group:
                members[int(entry.name)] = fields
    return members


def serving_processes(group: int) -> list[int]:
    """The leaves of process group ``group``'s tree."""
    parents = {pid: int(fields[1]) for pid, fields in group_stats(group).items()}
    has_children = set(parents.values())
    return sorted(pid for pid in parents if pid not in has_children)


def _status_kib(pid: int, key: str) -> int | None:
    try:
        lines = (PROC / str(pid) / "status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(key + ":"):
            return int(line.split()[1])  # "VmHWM:   51234 kB"
    return None


def usage(group: int, key: str) -> dict | None:
    """``key`` (``VmHWM`` or ``VmRSS``) of the group's serving processes, in MB: the largest
    process and the sum; None when /proc has no such figure (not Linux, or the server is gone)."""
    sizes = [_status_kib(pid, key) for pid in serving_processes(group)]
    mb = [size / 1024 for size in sizes if size is not None]
    if not mb:
        return None
    return {"processes": len(mb), "largest_mb": max(mb), "sum_mb": sum(mb)}
