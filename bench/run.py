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
from pathlib import Path

from . import decoders, report, wrk
from .integrity import EventCounter, check
from .scenarios import SERVERS, installed_plugins, select, server_plugins
from .serve import SERVERS as HTTP_SERVERS
from .servers import BenchError, Server

ROOT = Path(__file__).resolve().parent.parent


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


def progress_line(label: str, name: str, figures: dict) -> str:
    text = f"    {name:<24}{figures['req_per_s']:>9,.0f} req/s  p99 {figures['p99_ms']:6.1f} ms"
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


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        wrk_path = wrk.find_wrk()
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    installed = installed_plugins()
    names = [n.strip() for n in args.scenarios.split(",")] if args.scenarios else None
    chosen, skipped = select(names, installed)
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

    results: dict = {
        "started_at": started.isoformat(),
        "command": ["python", "-m", "bench", *sys.argv[1:]],
        "args": vars(args),
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
    servers: dict[str, Server] = {}
    counters: dict[str, EventCounter] = {}
    runs: dict[str, list[dict]] = {s.name: [] for s in chosen}
    warmups: dict[str, list[dict]] = {s.name: [] for s in chosen}
    try:
        needed = {s.server for s in chosen}
        say("\nservers:")
        for spec in SERVERS:
            if spec.name not in needed:
                continue
            server = Server(
                spec.name,
                server_plugins(spec, installed),
                workdir,
                args.threads,
                args.database_url,
                args.workers,
                args.server,
            )
            servers[spec.name] = server  # stopped in `finally` whatever happens from here
            server.start()
            hosted = [s for s in chosen if s.server == spec.name]
            if any("auth" in s.requires for s in hosted):
                server.provision_sensors(args.sensors)
            if any(s.events_per_request for s in hosted):
                counters[spec.name] = EventCounter(server)
            say(
                f"  {spec.name:<20} :{server.port}  {server.describe()}"
                + (f", {len(server.sensors)} sensors" if server.sensors else "")
            )
        say(
            f"  (inis, databases and server output in {workdir}, on "
            f"{env['workdir_filesystem']}: fsync costs what it costs there)"
        )

        passes = [("warm-up", args.warmup)] if args.warmup > 0 else []
        passes += [(f"run {i}/{args.runs}", args.duration) for i in range(1, args.runs + 1)]
        for label, duration in passes:
            say(f"\n{label}:")
            for scenario in chosen:
                server = servers[scenario.server]
                counter = counters.get(scenario.server) if scenario.events_per_request else None
                figures = run_scenario(scenario, server, counter, wrk_path, workdir, args, duration)
                say(progress_line("", scenario.name, figures))
                (warmups if label == "warm-up" else runs)[scenario.name].append(figures)
                time.sleep(0.3)  # let in-flight work drain before the next scenario
        for server in servers.values():
            if not server.alive():
                raise BenchError(
                    f"server {server.name} died during the bench:\n{server.log_tail()}"
                )
    except BenchError as error:
        print(f"\nbench: {error}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut this short
        for counter in counters.values():
            counter.close()
        for server in servers.values():
            server.stop()
        signal.signal(signal.SIGTERM, previous_sigterm)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    # Figures come from the measured runs only; a lost event or an error counts in warm-up too.
    summaries = {
        name: report.summarize(name, measured, warmups[name])
        for name, measured in runs.items()
        if measured
    }
    report.add_ratios(summaries)
    overheads = report.overheads(summaries)
    targets = report.targets(summaries, {s.name for s, _ in skipped})
    env["loadavg_at_end"] = os.getloadavg()

    say(
        f"\nmedians of {args.runs} run(s), {args.duration}s each, on {args.server} x "
        f"{args.workers}; x hello = req/s ratio to the bare WSGI app on the same server in this "
        "run; +/- = half the req/s range over "
        "the runs; load average "
        + " ".join(f"{x:.2f}" for x in env["loadavg_at_start"])
        + " at start, "
        + " ".join(f"{x:.2f}" for x in env["loadavg_at_end"])
        + " at end"
    )
    say(report.table(summaries, [s.name for s in chosen if s.name in summaries]))
    if overheads:
        say("\nwhat each layer costs (variant vs baseline, same run):")
        say(report.overheads_table(overheads))
    say("\ntargets (issue 4):")
    say(report.targets_table(targets))

    failed_correctness = any(t["verdict"] == "FAIL" and t["correctness"] for t in targets)
    failed_speed = any(t["verdict"] == "FAIL" and not t["correctness"] for t in targets)
    results.update(
        {
            "servers": {
                n: {
                    "plugins": s.plugins,
                    "server": s.http_server,
                    "threads": s.threads,
                    "workers": s.workers,
                }
                for n, s in servers.items()
            },
            "runs": runs,
            "warmups": warmups,
            "summaries": summaries,
            "overheads": overheads,
            "targets": targets,
            "finished_at": dt.datetime.now(dt.UTC).isoformat(),
        }
    )
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
