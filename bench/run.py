"""``make bench`` / ``python -m bench``: load benchmark of SensorHub on 127.0.0.1 against a bare
WSGI baseline, in one go. See docs/benchmarks.md for what each figure means."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import decoders, memory, report, stored, wrk
from .integrity import EventCounter, check
from .scenarios import (
    SCALING_FLOORS,
    SCALING_SCENARIOS,
    SCENARIOS,
    SERVERS,
    STORED_SCENARIOS,
    Scenario,
    installed_plugins,
    select,
    server_plugins,
)
from .serve import SERVERS as HTTP_SERVERS
from .servers import BenchError, Sensor, Server

ROOT = Path(__file__).resolve().parent.parent
PASSES = {"main", "scaling"}  # what --skip takes; the stored pass runs when --stored asks


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        epilog="Exit status: 0 all correctness checks passed; 1 events lost/extra or errors "
        "(or, with --strict, a missed speed target); 2 the bench could not run.",
    )
    parser.add_argument(
        "--duration",
        type=int,
        default=5,
        help="whole seconds per measured run of each scenario (default 5)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        help="measured runs per scenario; figures are medians (default 3)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="seconds of unmeasured load per scenario first (default 1; 0: none)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a fast look: --runs 1 --duration 3 --warmup 1"
    )
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--server",
        choices=HTTP_SERVERS,
        help="the HTTP server every app runs on, hello included (default: waitress with "
        "--workers 1, gunicorn's gthread worker above 1)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=8,
        help="request threads per server process, the same for every server (8, SensorHub's "
        "default): waitress threads, gunicorn gthread threads, granian blocking threads",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes, the same for every server (1, SensorHub's "
        "default; pre-forked above 1, with gunicorn or granian)",
    )
    parser.add_argument(
        "--sensors", type=int, default=64, help="sensors provisioned per SensorHub server (64)"
    )
    parser.add_argument(
        "--database-url",
        help="bench on this database (e.g. a throwaway PostgreSQL) instead of "
        "a fresh SQLite file per server; it is migrated, never emptied",
    )
    parser.add_argument("--scenarios", help="comma-separated scenario names (hello always runs)")
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated passes not to run: main (the scenarios on --server x --workers), "
        "scaling (2 worker processes vs 1, on gunicorn unless --server granian)",
    )
    parser.add_argument(
        "--stored",
        type=int,
        metavar="N",
        help="also run the stored pass: single and batch ingest on a SQLite database pre-filled "
        "with N events (kept in --stored-dir) against an empty one (make bench-stored: 10M)",
    )
    parser.add_argument(
        "--stored-dir",
        default=str(stored.STORE_DIR),
        help="where the pre-filled database is kept for the next runs (var/bench)",
    )
    parser.add_argument(
        "--fresh-fill", action="store_true", help="fill the stored pass's database again"
    )
    parser.add_argument(
        "--no-decoders", action="store_true", help="skip the JSON decoder micro-benchmark"
    )
    parser.add_argument(
        "--strict", action="store_true", help="also exit 1 when a speed target is missed"
    )
    parser.add_argument(
        "--results-dir",
        default=str(ROOT / "bench" / "results"),
        help="where the JSON results go (bench/results)",
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="write the results (every figure, the targets table) here instead of --results-dir",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temp dir (inis, databases, server logs) for inspection",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.warmup = 1, 3, 1
    if args.runs < 1 or args.duration <= 0:
        parser.error("--runs must be >= 1 and --duration > 0")
    if args.threads < 1 or args.workers < 1:
        parser.error("--threads and --workers must be >= 1")
    args.skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    if args.skip - PASSES:
        parser.error(
            f"--skip takes {', '.join(sorted(PASSES))}, not {', '.join(args.skip - PASSES)}"
        )
    if args.stored is not None and args.stored < 1:
        parser.error("--stored must be >= 1")
    if args.stored is not None and args.database_url:
        parser.error("--stored fills a SQLite file: it cannot go with --database-url")
    if args.server is None:
        args.server = "gunicorn" if args.workers > 1 else "waitress"
    if args.server == "waitress" and args.workers > 1:
        parser.error(
            "waitress serves in one process: --workers above 1 needs --server "
            "gunicorn or --server granian"
        )
    return args


def say(text: str = "") -> None:
    print(text, flush=True)


def environment(wrk_path: str) -> dict:
    def git(*cmd):
        result = subprocess.run(
            ["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=False
        )
        return result.stdout.strip()

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "wrk": wrk.wrk_version(wrk_path),
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def filesystem_of(path: Path) -> str:
    result = subprocess.run(
        ["df", "--output=fstype", str(path)], capture_output=True, text=True, check=False
    )
    lines = result.stdout.split()
    return lines[-1] if result.returncode == 0 and len(lines) > 1 else "unknown"


def run_scenario(
    scenario,
    server: Server,
    counter: EventCounter | None,
    wrk_path: str,
    workdir: Path,
    args,
    duration: float,
) -> dict:
    wrk_args = {k: v for k, v in scenario.args.items()}
    if server.sensors:
        wrk_args["sensors"] = str(server.sensors_file)
    if scenario.events_per_request:
        wrk_args["nonce"] = secrets.token_hex(4)
    before = counter.settle() if counter else None
    result = wrk.run(
        wrk_path,
        server.url(),
        wrk.script_path(scenario.script, workdir),
        wrk_args,
        duration=duration,
        connections=args.connections,
        threads=args.wrk_threads,
    )
    figures = report.per_run_figures(result, scenario.events_per_request)
    figures["wrk"] = result
    if counter:
        after = counter.settle()
        figures["check"] = check(before, after, result, scenario.events_per_request).as_dict()
    return figures


def progress_line(label: str, figures: dict) -> str:
    text = f"    {label:<24}{figures['req_per_s']:>9,.0f} req/s  p99 {figures['p99_ms']:6.1f} ms"
    other = {c: n for c, n in figures["statuses"].items() if not 200 <= c < 300}
    if other or figures["socket_errors"]:
        text += f"  non-2xx {other or 0}  socket errors {figures['socket_errors']}"
    if figures.get("check"):
        c = figures["check"]
        verdict = "OK" if c["ok"] else "VIOLATION: " + "; ".join(c["problems"])
        text += (
            f"\n{'':6}check: stored {c['stored']} = acked {c['acked']} "
            f"+ {c['stored'] - c['acked']} (0..{c['in_flight_events']} in flight) "
            f"{verdict}"
        )
    return text


def _terminated(signum, _frame):
    raise SystemExit(128 + signum)


@dataclass(frozen=True)
class Cell:
    """One scenario on one server within a pass; ``group`` tells a pass's servers apart (the
    scaling pass's x1 and x2, the stored pass's empty and stored)."""

    label: str
    group: str
    scenario: Scenario
    server: Server


class Bench:
    """One go: the servers it started (all stopped by :meth:`close`, whatever happened), their
    event counters, each server's memory at start-up, and every run measured."""

    def __init__(self, args, wrk_path: str, workdir: Path):
        self.args = args
        self.wrk_path = wrk_path
        self.workdir = workdir
        self.servers: list[Server] = []
        self.counters: dict[str, EventCounter] = {}
        self.rss_at_start: dict[str, dict | None] = {}
        self.runs: dict[str, list[dict]] = {}
        self.warmups: dict[str, list[dict]] = {}

    def launch(
        self,
        server: Server,
        hosted: list[Scenario],
        sensors: list[Sensor] | None = None,
        counter: EventCounter | None = None,
    ) -> Server:
        """Start ``server`` for the ``hosted`` scenarios: its sensors (``sensors`` if it already
        has them, else provisioned) and, for ingest, its event counter."""
        self.servers.append(server)  # stopped in close() whatever happens from here
        server.start()
        assert server.process is not None
        self.rss_at_start[server.name] = memory.usage(server.process.pid, "VmRSS")
        if sensors is not None:
            server.use_sensors(sensors)
        elif any("auth" in s.requires for s in hosted):
            server.provision_sensors(self.args.sensors)
        if any(s.events_per_request for s in hosted):
            self.counters[server.name] = counter or EventCounter(server)
        say(
            f"  {server.name:<20} :{server.port}  {server.describe()}; "
            f"{server.describe_server()}"
            + (f", {len(server.sensors)} sensors" if server.sensors else "")
        )
        return server

    def measure(self, cells: list[Cell]) -> dict[str, dict[str, dict]]:
        """A warm-up round and ``--runs`` rounds over the cells, interleaved (A, B, C, … then
        again) so a burst of noise lands on several cells instead of skewing one; the summaries
        by group and scenario name."""
        args = self.args
        rounds = [("warm-up", args.warmup)] if args.warmup > 0 else []
        rounds += [(f"run {i}/{args.runs}", args.duration) for i in range(1, args.runs + 1)]
        for cell in cells:
            self.runs[cell.label], self.warmups[cell.label] = [], []
        for label, duration in rounds:
            say(f"\n{label}:")
            for cell in cells:
                counter = (
                    self.counters.get(cell.server.name)
                    if cell.scenario.events_per_request
                    else None
                )
                figures = run_scenario(
                    cell.scenario,
                    cell.server,
                    counter,
                    self.wrk_path,
                    self.workdir,
                    args,
                    duration,
                )
                say(progress_line(cell.label, figures))
                (self.warmups if label == "warm-up" else self.runs)[cell.label].append(figures)
                time.sleep(0.3)  # let in-flight work drain before the next scenario
        for server in {cell.server.name: cell.server for cell in cells}.values():
            if not server.alive():
                raise BenchError(
                    f"server {server.name} died during the bench:\n{server.log_tail()}"
                )
        # Figures come from the measured runs only; a lost event or an error counts in
        # warm-up too.
        summaries: dict[str, dict[str, dict]] = {}
        for cell in cells:
            summaries.setdefault(cell.group, {})[cell.scenario.name] = report.summarize(
                cell.scenario.name, self.runs[cell.label], self.warmups[cell.label]
            )
        return summaries

    def stop(self, servers) -> None:
        for server in servers:
            counter = self.counters.pop(server.name, None)
            if counter:
                counter.close()
            server.stop()

    def close(self) -> None:
        self.stop(self.servers)


def launch_servers(
    bench: Bench,
    scenarios: list[Scenario],
    installed: set[str],
    workers: int,
    http_server: str,
    suffix: str = "",
) -> dict[str, Server]:
    """Start the servers ``scenarios`` run on, by spec name (each started as ``<name><suffix>``).

    A server that serves another's database (the bare-driver app) starts after that one, on
    its database and as its sensors; the other is started for it if no scenario of its own
    needs it."""
    args = bench.args
    hosted = {spec.name: [s for s in scenarios if s.server == spec.name] for spec in SERVERS}
    for spec in SERVERS:
        if spec.database_of and hosted[spec.name]:
            hosted[spec.database_of] += hosted[spec.name]
    servers: dict[str, Server] = {}
    for spec in SERVERS:
        if not hosted[spec.name]:
            continue
        source = servers[spec.database_of] if spec.database_of else None
        servers[spec.name] = bench.launch(
            Server(
                spec.name + suffix,
                server_plugins(spec, installed),
                bench.workdir,
                args.threads,
                source.database if source else args.database_url,
                workers,
                http_server,
                app=spec.app,
            ),
            hosted[spec.name],
            sensors=source.sensors if source else None,
        )
    return servers


def main_pass(bench: Bench, chosen: list[Scenario], installed: set[str]) -> tuple[dict, dict]:
    """Every chosen scenario on --server x --workers; the sensorhub server's memory."""
    args = bench.args
    say(f"\nmain pass: {args.server} x {args.workers} for every server\nservers:")
    servers = launch_servers(bench, chosen, installed, args.workers, args.server)
    summaries = bench.measure([Cell(s.name, "main", s, servers[s.server]) for s in chosen])
    usage = {}
    main_server = servers.get("sensorhub")
    if main_server is not None and main_server.process is not None:
        # After every scenario of the pass: VmHWM is the peak over all of them.
        usage = {
            "start": bench.rss_at_start.get("sensorhub"),
            "peak": memory.usage(main_server.process.pid, "VmHWM"),
        }
    bench.stop(servers.values())
    return summaries.get("main", {}), usage


def scaling_pass(bench: Bench, chosen: list[Scenario], installed: set[str]) -> dict:
    """The scaling scenarios on 1 and on 2 worker processes of the same pre-fork server, so the
    ratio is the second process's gain alone (waitress has no second process)."""
    args = bench.args
    kind = args.server if args.server != "waitress" else "gunicorn"
    scenarios = [s for s in chosen if s.name in SCALING_SCENARIOS + SCALING_FLOORS]
    say(f"\nscaling pass: {kind} x 1 vs {kind} x 2 (both pre-fork; the main pass's {args.server}")
    say(f"x {args.workers} is not the 1-process figure here)\nservers:")
    servers: dict[tuple[str, int], Server] = {}
    for workers in (1, 2):
        launched = launch_servers(bench, scenarios, installed, workers, kind, f"-x{workers}")
        servers.update({(name, workers): server for name, server in launched.items()})
    cells = [
        Cell(f"{s.name} x{workers}", f"x{workers}", s, servers[s.server, workers])
        for s in scenarios
        for workers in (1, 2)
    ]
    summaries = bench.measure(cells)
    bench.stop(servers.values())
    return {"server": kind, **summaries}


def stored_pass(bench: Bench, chosen: list[Scenario], installed: set[str]) -> dict:
    """Single and batch ingest on a database pre-filled with --stored events and on an empty
    one, side by side."""
    args = bench.args
    scenarios = [s for s in chosen if s.name in STORED_SCENARIOS]
    plugins = server_plugins(next(spec for spec in SERVERS if spec.name == "sensorhub"), installed)
    assert plugins is not None
    say(f"\nstored pass: {args.stored:,} stored events vs an empty database")
    fill = stored.prepare(
        args.stored,
        args.sensors,
        plugins,
        Path(args.stored_dir),
        bench.workdir,
        args.threads,
        args.fresh_fill,
        say,
    )
    say("servers:")

    def server(name: str, database_url: str | None) -> Server:
        return Server(
            name, plugins, bench.workdir, args.threads, database_url, args.workers, args.server
        )

    empty = bench.launch(server("sensorhub-empty", None), scenarios)
    full = server("sensorhub-stored", fill.url)
    bench.launch(
        full,
        scenarios,
        sensors=fill.sensors,
        counter=EventCounter(full, above_id=fill.max_id, prefilled=fill.events),
    )
    cells = [
        Cell(f"{s.name} {group}", group, s, target)
        for s in scenarios
        for group, target in (("empty", empty), ("stored", full))
    ]
    summaries = bench.measure(cells)
    bench.stop([empty, full])
    return {"events": args.stored, "database": str(fill.database), **summaries}


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        wrk_path = wrk.find_wrk()
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    installed = installed_plugins()
    names = [n.strip() for n in args.scenarios.split(",")] if args.scenarios else None
    chosen, skipped = select(names, installed, sqlite=args.database_url is None)
    env = environment(wrk_path)
    started = dt.datetime.now(dt.UTC)
    say(
        f"SensorHub bench {started:%Y-%m-%d %H:%M:%S}Z  commit {env['git_commit'][:10]}"
        f"{' (dirty)' if env['git_dirty'] else ''}  {env['cpus']} CPUs  load "
        + " ".join(f"{x:.2f}" for x in env["loadavg_at_start"])
    )
    say(
        f"{env['wrk']}; {args.wrk_threads} threads, {args.connections} connections, "
        f"{args.duration:g}s x {args.runs} runs (+{args.warmup:g}s warm-up) per scenario; "
        f"{args.server} {args.threads} threads x {args.workers} worker process(es) for every "
        "server; server and wrk share this machine"
    )
    for scenario, reason in skipped:
        say(f"  skip {scenario.name}: {reason}")
    why_not = {s.name: r for s, r in skipped}
    left_out = [s for s in SCENARIOS if s not in chosen and s.name not in why_not]
    why_not.update({s.name: "not in --scenarios" for s in left_out})
    for name in args.skip:
        why_not[name] = f"--skip {name}"
    if "main" in args.skip:
        why_not.update({s.name: "--skip main" for s in chosen})
        why_not["memory"] = "--skip main"
    if args.stored is None:
        why_not["stored"] = "run make bench-stored"

    results: dict = {
        "started_at": started.isoformat(),
        "command": ["python", "-m", "bench", *sys.argv[1:]],
        "args": {**vars(args), "skip": sorted(args.skip)},
        "environment": env,
        "installed_plugins": sorted(installed),
        "skipped": {s.name: r for s, r in skipped},
    }

    if not args.no_decoders:
        say("\nJSON decoding micro-benchmark (before the servers start):")
        results["decoders"] = decoders.run()
        say(report.decoders_table(results["decoders"]))

    # SIGTERM to the bench unwinds like Ctrl-C, so `finally` below stops every server it started.
    previous_sigterm = signal.signal(signal.SIGTERM, _terminated)
    workdir = Path(tempfile.mkdtemp(prefix="sensorhub-bench-"))
    env["workdir_filesystem"] = filesystem_of(workdir)
    say(
        f"\ninis, databases and server output in {workdir}, on {env['workdir_filesystem']}: "
        "fsync costs what it costs there"
    )
    bench = Bench(args, wrk_path, workdir)
    main_summaries: dict[str, dict] = {}
    usage: dict = {}
    scaling = stored_results = None
    try:
        if "main" not in args.skip:
            main_summaries, usage = main_pass(bench, chosen, installed)
        if "scaling" not in args.skip:
            scaling = scaling_pass(bench, chosen, installed)
        if args.stored is not None:
            stored_results = stored_pass(bench, chosen, installed)
    except BenchError as error:
        print(f"\nbench: {error}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut this short
        bench.close()
        signal.signal(signal.SIGTERM, previous_sigterm)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    report.add_ratios(main_summaries)
    overheads = report.overheads(main_summaries)
    scaling_groups = {k: v for k, v in (scaling or {}).items() if k in ("x1", "x2")}
    stored_groups = {k: v for k, v in (stored_results or {}).items() if k in ("empty", "stored")}
    targets = report.targets(main_summaries, scaling_groups, stored_groups, usage, why_not)
    floors = report.floors(main_summaries, scaling_groups, usage)
    env["loadavg_at_end"] = os.getloadavg()

    say(
        f"\nmedians of {args.runs} run(s), {args.duration}s each; load average "
        + " ".join(f"{x:.2f}" for x in env["loadavg_at_start"])
        + " at start, "
        + " ".join(f"{x:.2f}" for x in env["loadavg_at_end"])
        + " at end"
    )
    if main_summaries:
        say(
            f"\nmain pass on {args.server} x {args.workers}; x hello = req/s ratio to the bare "
            "WSGI app on the same server in this run; +/- = half the req/s range over the runs"
        )
        say(report.table(main_summaries, [s.name for s in chosen if s.name in main_summaries]))
    if overheads:
        say("\nwhat each layer costs (with vs without it, same run):")
        say(report.overheads_table(overheads))
    if scaling_groups:
        kind = scaling["server"] if scaling else ""
        say(f"\nscaling pass: both columns on {kind} (1 process is {kind} x 1, not the main pass)")
        say(
            report.pair_table(
                "scenario", f"{kind} x1", f"{kind} x2", scaling_groups["x1"], scaling_groups["x2"]
            )
        )
    if stored_groups:
        say(f"\nstored pass: an empty database vs {args.stored:,} stored events")
        say(
            report.pair_table(
                "scenario", "empty", "stored", stored_groups["empty"], stored_groups["stored"]
            )
        )
    say("\ntargets (issue 14, every figure from this run):")
    say(report.targets_table(targets))
    if floors:
        say("\nfloors measured in the same run:")
        say(report.floors_table(floors))

    failed_correctness = any(t["verdict"] == "FAIL" and t["correctness"] for t in targets)
    failed_speed = any(t["verdict"] == "FAIL" and not t["correctness"] for t in targets)
    results.update(
        {
            "servers": {
                s.name: {
                    "plugins": s.plugins,
                    "server": s.http_server,
                    "threads": s.threads,
                    "workers": s.workers,
                    "database_url": s.settings()["sensorhub.database.url"]
                    if s.plugins is not None
                    else None,
                }
                for s in bench.servers
            },
            "runs": bench.runs,
            "warmups": bench.warmups,
            "summaries": main_summaries,
            "overheads": overheads,
            "scaling": scaling,
            "stored": stored_results,
            "memory": {**usage, "rss_at_start_by_server": bench.rss_at_start},
            "targets": targets,
            "floors": floors,
            "finished_at": dt.datetime.now(dt.UTC).isoformat(),
        }
    )
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
    else:
        results_dir = Path(args.results_dir)
        results_dir.mkdir(parents=True, exist_ok=True)
        out = results_dir / f"{started:%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(results, indent=1, default=str))
    say(f"\nresults: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    if failed_correctness:
        say("bench: FAILED: events lost/extra or errors (see above)")
        return 1
    if failed_speed and args.strict:
        say("bench: FAILED: a speed target was missed (--strict)")
        return 1
    return 0
