"""Two code trees under the same load, side by side: what a change costs a request.

``make bench`` compares scenarios within one run; between two runs this shared VM moves by more
than most changes do (``api_root`` alone has ranged from 832 to 1,312 req/s between minutes).
So this starts two servers at once, BASE (a git revision, checked out in a temporary worktree)
and the work tree, and alternates short wrk runs between them, swapping which goes first every
round: both sides meet the same minutes. Per scenario and side, each round and the median:

- req/s, and with ``api_root`` among the scenarios, each scenario's req/s ÷ ``api_root``'s on
  the same server in the same round (the ratio issue 14's targets are set in);
- the server's CPU time per request answered (every thread of every process of its group, from
  /proc), the figure that moves least with the machine's weather;
- its context switches per request (voluntary and involuntary, every thread): a change that
  removes a hand-off between threads shows here before it shows in instructions.

Both servers use this tree's virtualenv (the dependencies) and run their own tree's code (the
server's working directory), each on a fresh SQLite file migrated by its own tree's code, with
the load bench's servers (``bench.servers``), scenarios and wrk scripts. ``--setting`` changes
the work tree's server only, so ``BASE=HEAD`` with a setting measures that setting.

Every answer must be a 2xx: a side that answered errors would look fast, so any non-2xx or
socket error is printed and the exit status is 1. Events are not counted back here (the load
bench does that); on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import wrk
from .memory import PROC, group_stats
from .run import run_scenario
from .scenarios import ALL_PLUGINS, SCENARIOS
from .servers import BenchError, Server

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # /proc's unit of CPU time

# SensorHub's own scenarios only: the hello and bare apps are not code under comparison.
COMPARABLE = {s.name: s for s in SCENARIOS if s.server == "sensorhub"}


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit status: 0 every answer was a 2xx; 1 some were not; 2 it could not run.",
    )
    parser.add_argument("base", help="the git revision to compare the work tree with (HEAD~1)")
    parser.add_argument("--rounds", type=int, default=6, help="measured rounds (6)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per run (5)")
    parser.add_argument(
        "--scenarios",
        default="api_root,sensor_self,ingest_single",
        help="comma-separated, of: " + ", ".join(COMPARABLE),
    )
    parser.add_argument("--threads", type=int, default=8, help="request threads (8)")
    parser.add_argument("--sensors", type=int, default=64, help="sensors per server (64)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for the work tree's server only (repeatable)",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios.split(",") if name not in COMPARABLE]
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(COMPARABLE)}"
        )
    for setting in args.setting:
        if "=" not in setting:
            parser.error(f"--setting {setting!r}: give KEY=VALUE")
    if args.rounds < 1 or args.duration < 1:
        parser.error("--rounds and --duration must be at least 1")
    return args


def group_usage(group: int) -> tuple[float, int]:
    """CPU seconds and context switches so far of every process in process group ``group``."""
    cpu, switches = 0.0, 0
    for pid, fields in group_stats(group).items():
        cpu += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
        try:
            for task in (PROC / str(pid) / "task").iterdir():
                for line in (task / "status").read_text().splitlines():
                    if "ctxt_switches:" in line:  # voluntary_ and nonvoluntary_
                        switches += int(line.split()[1])
        except OSError:  # gone meanwhile
            continue
    return cpu, switches


@dataclass
class Side:
    label: str
    server: Server
    runs: dict[str, list[dict]]  # scenario -> each measured round's figures
    errors: int = 0


def measure(side: Side, name: str, wrk_path: str, args, duration: int) -> dict:
    """One wrk run of scenario ``name`` on ``side``, as the load bench runs it, with what the
    server's processes spent on it."""
    server = side.server
    assert server.process is not None
    cpu_before, switches_before = group_usage(server.process.pid)
    figures = run_scenario(COMPARABLE[name], server, None, wrk_path, server.workdir, args, duration)
    cpu_after, switches_after = group_usage(server.process.pid)
    side.errors += figures["socket_errors"] + sum(
        count for status, count in figures["statuses"].items() if not 200 <= status < 300
    )
    answered = max(figures["wrk"]["requests"], 1)
    return {
        "req_per_s": figures["req_per_s"],
        "cpu_us": (cpu_after - cpu_before) / answered * 1e6,
        "switches": (switches_after - switches_before) / answered,
    }


def median(values) -> float:
    return statistics.median(values) if values else float("nan")


def report(sides: list[Side], names: list[str]) -> None:
    print()
    print(
        f"{'scenario':<16}{'tree':<8}{'req/s':>8}{'CPU µs/req':>12}  {'switches':>8}"
        f"{'÷ api_root':>12}   CPU µs/req each round"
    )
    for name in names:
        for side in sides:
            runs = side.runs[name]
            ratio = ""
            if "api_root" in side.runs and name != "api_root":
                ratios = [
                    r["req_per_s"] / a["req_per_s"]
                    for r, a in zip(runs, side.runs["api_root"], strict=True)
                ]
                ratio = f"{median(ratios):.3f}"
            print(
                f"{name:<16}{side.label:<8}{median(r['req_per_s'] for r in runs):>8,.0f}"
                f"{median(r['cpu_us'] for r in runs):>12,.0f}  "
                f"{median(r['switches'] for r in runs):>8.1f}{ratio:>12}   "
                + ", ".join(f"{r['cpu_us']:,.0f}" for r in runs)
            )
    base, this = sides

    def cpu(side: Side, name: str) -> float:
        return median(r["cpu_us"] for r in side.runs[name])

    print()
    print(
        "work tree ÷ base, CPU a request (medians): "
        + "; ".join(f"{name} {cpu(this, name) / cpu(base, name):.2f}x" for name in names)
    )


def worktree(base: str, directory: Path) -> Path:
    # A name of its own: git names a worktree's records after its directory. (setup.cfg's
    # coverage omit matches this prefix: another revision's code is not this tree's coverage.)
    path = Path(tempfile.mkdtemp(prefix="sensorhub-compare-base-", dir=directory))
    result = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(path), base],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise BenchError(
            f"could not check out {base!r} (a git revision of {ROOT} is needed): "
            f"{result.stderr.strip()}"
        )
    return path


def main(argv=None) -> int:
    args = parse_args(argv)
    names = args.scenarios.split(",")
    try:
        wrk_path = wrk.find_wrk()
    except BenchError as error:
        print(error, file=sys.stderr)
        return 2
    plugins = list(ALL_PLUGINS)
    extra = dict(setting.split("=", 1) for setting in args.setting)
    sides: list[Side] = []
    with tempfile.TemporaryDirectory(prefix="sensorhub-compare-") as scratch:
        directory = Path(scratch)
        base_tree = None
        try:
            base_tree = worktree(args.base, directory)
            for label, code_dir in (("base", base_tree), ("this", ROOT)):
                workdir = directory / label
                workdir.mkdir()
                server = Server(
                    label,
                    plugins,
                    workdir,
                    args.threads,
                    code_dir=code_dir,
                    extra_settings=extra if label == "this" else {},
                )
                sides.append(Side(label, server, {name: [] for name in names}))
                server.start()
                server.provision_sensors(args.sensors)
            described = f"base {args.base} vs the work tree"
            if extra:
                described += " with " + ", ".join(args.setting)
            for side in sides:  # from /proc: the directory each server really runs in
                assert side.server.process is not None
                directory_of = os.readlink(PROC / str(side.server.process.pid) / "cwd")
                print(f"{side.label}: serving from {directory_of}")
            print(
                f"{described}: {sides[0].server.describe_server()}, {args.sensors} sensors, "
                f"wrk {args.wrk_threads} x {args.connections} connections, {args.rounds} rounds of "
                f"{args.duration}s per scenario and tree, order swapped every round"
            )
            for side in sides:  # warm-up, not counted
                for name in names:
                    measure(side, name, wrk_path, args, 1)
            for round_number in range(args.rounds):
                order = sides if round_number % 2 == 0 else sides[::-1]
                for side in order:
                    for name in names:
                        side.runs[name].append(measure(side, name, wrk_path, args, args.duration))
                print(
                    f"  round {round_number + 1}: "
                    + "  ".join(
                        f"{side.label} {name} {side.runs[name][-1]['cpu_us']:,.0f} µs"
                        for side in sides
                        for name in names
                    ),
                    flush=True,
                )
        except BenchError as error:
            print(f"bench.compare: {error}", file=sys.stderr)
            return 2
        finally:
            for side in sides:
                side.server.stop()
            if base_tree is not None:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)],
                    capture_output=True,
                    check=False,
                )
        report(sides, names)
    failed = [f"{side.label}: {side.errors}" for side in sides if side.errors]
    if failed:
        print("answers that were not a 2xx, or socket errors: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
