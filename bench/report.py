"""Medians, ratios, targets and the printed table."""

from __future__ import annotations

import statistics

from .scenarios import OVERHEADS

# The targets of issue 4, as ratios where the absolute numbers drift with the machine.
SINGLE_VS_HELLO = 0.5
SINGLE_P99_MS = 50.0
BATCH_EVENTS_PER_S = 100_000


def summarize(name: str, runs: list[dict], warmups: list[dict] = ()) -> dict:
    """One scenario's figures: medians over its runs; errors and event checks over the runs
    and the warm-ups (an error or a lost event is one whenever it happens)."""

    def med(key):
        values = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(values) if values else None

    statuses: dict[int, int] = {}
    everything = [*runs, *warmups]
    for run in everything:
        for code, count in run["statuses"].items():
            statuses[code] = statuses.get(code, 0) + count
    return {
        "scenario": name,
        "runs": len(runs),
        "req_per_s": med("req_per_s"),
        # Half the range of req/s over the runs, relative to the median: the run-to-run noise.
        "spread": (
            (max(r["req_per_s"] for r in runs) - min(r["req_per_s"] for r in runs))
            / 2
            / med("req_per_s")
        )
        if len(runs) > 1 and med("req_per_s")
        else None,
        "events_per_s": med("events_per_s"),
        "p50_ms": med("p50_ms"),
        "p99_ms": med("p99_ms"),
        "non_2xx": sum(c for code, c in statuses.items() if not 200 <= code < 300),
        "socket_errors": sum(r["socket_errors"] for r in everything),
        "statuses": statuses,
        "checks_ok": all(r["check"]["ok"] for r in everything if r.get("check")),
        "checked": any(r.get("check") for r in everything),
    }


def per_run_figures(result: dict, events_per_request: int) -> dict:
    seconds = result["duration_us"] / 1e6
    errors = result["errors"]
    return {
        "req_per_s": result["requests"] / seconds,
        "events_per_s": result["acked_events"] / seconds if events_per_request else None,
        "p50_ms": result["latency_us"]["percentiles"]["50"] / 1000,
        "p99_ms": result["latency_us"]["percentiles"]["99"] / 1000,
        "statuses": result["statuses"],
        "socket_errors": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
    }


def add_ratios(summaries: dict[str, dict]) -> None:
    hello = summaries.get("hello", {}).get("req_per_s")
    for summary in summaries.values():
        summary["x_hello"] = summary["req_per_s"] / hello if hello else None


def overheads(summaries: dict[str, dict]) -> list[dict]:
    rows = []
    for what, base, variant in OVERHEADS:
        if base not in summaries or variant not in summaries:
            continue
        b, v = summaries[base], summaries[variant]
        if not b["req_per_s"] or not v["req_per_s"]:
            continue
        rows.append(
            {
                "what": what,
                "baseline": base,
                "variant": variant,
                "throughput_ratio": v["req_per_s"] / b["req_per_s"],
                # At saturation 1/throughput is the machine time one request costs, so the
                # difference is what the variant adds per request (both cores, wrk included).
                "extra_us_per_request": (1 / v["req_per_s"] - 1 / b["req_per_s"]) * 1e6,
                "extra_p50_ms": v["p50_ms"] - b["p50_ms"],
            }
        )
    return rows


def targets(summaries: dict[str, dict], skipped: set[str]) -> list[dict]:
    rows = []

    def add(name, scenario, ok, measured, correctness=False):
        if scenario and scenario not in summaries:
            rows.append(
                {
                    "target": name,
                    "verdict": "SKIP",
                    "measured": f"{scenario} not run"
                    + (" (plugin missing)" if scenario in skipped else ""),
                    "correctness": correctness,
                }
            )
            return
        rows.append(
            {
                "target": name,
                "verdict": "PASS" if ok else "FAIL",
                "measured": measured,
                "correctness": correctness,
            }
        )

    single = summaries.get("ingest_single")
    add(
        f"single-event ingest >= {SINGLE_VS_HELLO}x hello req/s",
        "ingest_single",
        single and single["x_hello"] is not None and single["x_hello"] >= SINGLE_VS_HELLO,
        single and f"{single['x_hello']:.2f}x ({single['req_per_s']:,.0f} req/s)",
    )
    add(
        f"single-event ingest p99 <= {SINGLE_P99_MS:g} ms",
        "ingest_single",
        single and single["p99_ms"] <= SINGLE_P99_MS,
        single and f"{single['p99_ms']:.1f} ms",
    )
    batch = summaries.get("ingest_batch100")
    add(
        f"100-event batches >= {BATCH_EVENTS_PER_S:,} events/s",
        "ingest_batch100",
        batch and batch["events_per_s"] >= BATCH_EVENTS_PER_S,
        batch and f"{batch['events_per_s']:,.0f} events/s",
    )
    errors = {n: s["non_2xx"] + s["socket_errors"] for n, s in summaries.items()}
    bad = {n: e for n, e in errors.items() if e}
    add(
        "no errors (non-2xx, socket errors, timeouts)",
        None,
        not bad,
        ", ".join(f"{n}: {e}" for n, e in bad.items()) or "0 in every run",
        correctness=True,
    )
    checked = [s for s in summaries.values() if s["checked"]]
    lost = [s["scenario"] for s in checked if not s["checks_ok"]]
    if checked:
        add(
            "no lost or extra events",
            None,
            not lost,
            ("violations in " + ", ".join(lost))
            if lost
            else f"every check passed ({len(checked)} ingest scenarios)",
            correctness=True,
        )
    else:
        add("no lost or extra events", "ingest_single", False, "", correctness=True)
    return rows


def _fmt(value, spec: str, blank: str = "-") -> str:
    return blank if value is None else format(value, spec)


def table(summaries: dict[str, dict], order: list[str]) -> str:
    header = (
        f"{'scenario':<24}{'req/s':>10}{'+/-':>6}{'events/s':>12}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'non-2xx':>9}{'sock err':>9}{'x hello':>9}"
    )
    lines = [header, "-" * len(header)]
    for name in order:
        s = summaries[name]
        lines.append(
            f"{name:<24}{_fmt(s['req_per_s'], ',.0f'):>10}{_fmt(s['spread'], '.0%'):>6}"
            f"{_fmt(s['events_per_s'], ',.0f'):>12}{_fmt(s['p50_ms'], '.1f'):>9}"
            f"{_fmt(s['p99_ms'], '.1f'):>9}{s['non_2xx']:>9}{s['socket_errors']:>9}"
            f"{_fmt(s['x_hello'], '.2f'):>9}"
        )
    return "\n".join(lines)


def overheads_table(rows: list[dict]) -> str:
    lines = [f"{'cost of':<38}{'req/s ratio':>12}{'+us/request':>13}{'+p50 ms':>9}"]
    for row in rows:
        lines.append(
            f"{row['what']:<38}{row['throughput_ratio']:>12.2f}"
            f"{row['extra_us_per_request']:>13,.0f}{row['extra_p50_ms']:>9.1f}"
        )
    return "\n".join(lines)


def targets_table(rows: list[dict]) -> str:
    return "\n".join(f"  {row['verdict']:<5} {row['target']:<48} {row['measured']}" for row in rows)


def decoders_table(result: dict) -> str:
    lines = [
        f"{'100-event body, ' + str(result['body_bytes']) + ' bytes':<48}"
        f"{'us/body':>9}{'events/s':>12}{'x stdlib':>10}"
    ]
    for row in result["results"]:
        lines.append(
            f"{row['case']:<48}{row['us_per_body']:>9.1f}"
            f"{row['events_per_s']:>12,.0f}{row['x_stdlib_decode']:>10.2f}"
        )
    lines.append("  (x stdlib: speed relative to decoding alone with the stdlib json)")
    lines += [f"  note: {note}" for note in result["notes"]]
    return "\n".join(lines)
