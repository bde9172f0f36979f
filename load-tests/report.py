#!/usr/bin/env python3
"""Prints the benchmark report of a results file and optionally writes docs/benchmarks.md.

    python3 load-tests/report.py load-tests/results/<timestamp>.json [--docs docs/benchmarks.md]

Python 3 standard library only. The budget is defined here (BUDGET); bench.py
only measures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BUDGET = {
    # Throughput over the ceiling's, same variant, same session. Keys are a scenario
    # or "scenario variant" (the more specific one wins).
    "redirect_vs_ceiling": {"redirect-hot": 0.6, "redirect-l1 uniform1k": 0.55, "redirect-l1": 0.75,
                            "redirect-l2": 0.35, "redirect-db": 0.15, "redirect-miss": 0.5},
    "p99_vs_ceiling": {"redirect-hot": 2.0, "redirect-l1 uniform1k": 2.0, "redirect-l1": 1.5},
    # The standing goal for cached redirects (redirect-hot, redirect-l1), beyond
    # this budget's lower floors for redirect-hot and redirect-l1 uniform1k.
    "redirect_goal_vs_ceiling": 0.75,
    "redirect_goal_p99_vs_ceiling": 1.5,
    "miss_db_xact_per_request": 0.05,  # at most 5 % of unknown-phrase requests reach PostgreSQL
    "miss_db_growth": 1.5,  # DB transactions/s (above idle) at the high rate vs the low rate
    "create_vs_pgbench": 0.6,
    "create_p99_ms": 50.0,
    "create_connections": 64,
    "ingest_visits_per_s": 20_000,
    "ingest_counted_within_s": 5.0,  # every 301 counted, exactly, this long after the load
    "ingest_api_xact_per_s": 10.0,  # PostgreSQL transactions/s per API process during the load
    "ingest_api_xact_flat": 1.5,  # last third of the load ≤ this × the first third ...
    "ingest_api_xact_flat_slack_per_s": 2.0,  # ... + this many transactions/s
    "rollup_stats_p99_ms": 20.0,
    "api_rss_mb": 60.0,  # at the end of the whole run, default settings
    "worker_rss_mb": 40.0,
}

REDIRECT_SCENARIOS = ["redirect-hot", "redirect-l1", "redirect-l2", "redirect-db", "redirect-miss"]


def budget_for(table: str, scenario: str, variant: str) -> float | None:
    return BUDGET[table].get(f"{scenario} {variant}", BUDGET[table].get(scenario))


def goal_note() -> str:
    below = [k for k, v in BUDGET["redirect_vs_ceiling"].items()
             if k.split()[0] in ("redirect-hot", "redirect-l1") and v < BUDGET["redirect_goal_vs_ceiling"]]
    return (f"standing goal for cached redirects (redirect-hot, redirect-l1): ≥ {BUDGET['redirect_goal_vs_ceiling']:.2f}× "
            f"ceiling throughput, p99 ≤ {BUDGET['redirect_goal_p99_vs_ceiling']:.1f}× ceiling p99; "
            f"{' and '.join(below)} are held to the lower floors below for now")


def fmt_num(x, digits: int = 0) -> str:
    if x is None:
        return "–"
    if isinstance(x, (int, float)):
        return f"{x:,.{digits}f}"
    return str(x)


def fmt_ms(x) -> str:
    if x is None:
        return "–"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def by_id(runs: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in runs}


def ratio(run: dict, index: dict[str, dict]) -> float | None:
    base = index.get(run.get("baseline") or "")
    if not base or not base.get("rps") or run.get("skipped"):
        return None
    return run["rps"] / base["rps"]


def p99_ratio(run: dict, index: dict[str, dict]) -> float | None:
    base = index.get(run.get("baseline") or "")
    try:
        return run["latency_ms"]["p99"] / base["latency_ms"]["p99"]
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def rows(data: dict) -> list[list[str]]:
    index = by_id(data["runs"])
    out = []
    for r in data["runs"]:
        name = f"{r['scenario']} {r['variant']}"
        if r.get("skipped"):
            out.append([name, r.get("target", ""), "", "", "", "", "", "", "", "", r["skipped"].split(":")[0], "", ""])
            continue
        lat = r.get("latency_ms") or {}
        rat = ratio(r, index)
        base = index.get(r.get("baseline") or "")
        vs = f"{rat:.2f}× {base['scenario'].replace('-create', '')}" if rat is not None and base else ""
        rss = r.get("rss_mb") or {}
        api_rss = f"{fmt_num(rss.get('api_before'))}→{fmt_num(rss.get('api_after'))}" if rss else ""
        worker_rss = f"{fmt_num(rss.get('worker_before'))}→{fmt_num(rss.get('worker_after'))}" if rss else ""
        target = r["target"] + (f" ({r['api_config']})" if r.get("api_config") not in (None, "default") else "")
        out.append([name, target, str(r["connections"]), fmt_num(r["rps"]), fmt_ms(lat.get("p50")),
                    fmt_ms(lat.get("p95")), fmt_ms(lat.get("p99")), fmt_ms(lat.get("max")),
                    fmt_num(r.get("socket_errors", 0)), fmt_num(r.get("unexpected", 0)), vs, api_rss, worker_rss])
    return out


HEADER = ["scenario", "target", "conns", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "sock err", "unexpected",
          "vs baseline", "API RSS MB", "worker RSS MB"]


def ceiling_noise(data: dict) -> list[str]:
    lines = []
    variants: dict[str, list[float]] = {}
    for r in data["runs"]:
        if r.get("target") == "ceiling" and not r.get("skipped"):
            variants.setdefault(r["variant"], []).append(r["rps"])
    for variant, values in variants.items():
        if len(values) > 1:
            lo, hi = min(values), max(values)
            lines.append(f"ceiling {variant}: {len(values)} runs, {fmt_num(lo)}–{fmt_num(hi)} req/s "
                         f"(spread {100 * (hi - lo) / hi:.0f} %)")
    return lines


def checks(data: dict) -> list[tuple[str, str, str, str]]:
    """(check, budget, measured, PASS/MISS/N/A)."""
    runs, index, meta = data["runs"], by_id(data["runs"]), data["meta"]
    out: list[tuple[str, str, str, str]] = []

    def verdict(ok: bool | None) -> str:
        return "N/A" if ok is None else "PASS" if ok else "MISS"

    goal, goal_p99 = BUDGET["redirect_goal_vs_ceiling"], BUDGET["redirect_goal_p99_vs_ceiling"]
    for scenario in REDIRECT_SCENARIOS:
        selected = [r for r in runs if r["scenario"] == scenario
                    and (scenario != "redirect-miss" or r.get("baseline") or r.get("skipped"))]
        if not selected:
            floor = budget_for("redirect_vs_ceiling", scenario, "")
            out.append((f"{scenario} throughput", f"≥ {floor:.2f}× ceiling", "not run", "N/A"))
        for r in selected:
            label = f"{scenario} {r['variant']}"
            floor = budget_for("redirect_vs_ceiling", scenario, r["variant"])
            floor_text = f"≥ {floor:.2f}× ceiling" + (f" (goal {goal:.2f}×)" if floor < goal and scenario in
                                                     ("redirect-hot", "redirect-l1") else "")
            if r.get("skipped"):
                out.append((f"{label} throughput", floor_text, r["skipped"], "N/A"))
                continue
            rat = ratio(r, index)
            out.append((f"{label} throughput", floor_text,
                        f"{rat:.2f}× ({fmt_num(r['rps'])} req/s)" if rat is not None else "no ceiling run",
                        verdict(None if rat is None else rat >= floor)))
            cap = budget_for("p99_vs_ceiling", scenario, r["variant"])
            if cap:
                pr = p99_ratio(r, index)
                cap_text = f"≤ {cap:.1f}× ceiling p99" + (f" (goal {goal_p99:.1f}×)" if cap > goal_p99 else "")
                out.append((f"{label} p99", cap_text,
                            f"{pr:.2f}× ({fmt_ms(r['latency_ms']['p99'])} ms)" if pr is not None else "no ceiling run",
                            verdict(None if pr is None else pr <= cap)))
            if r["unexpected"] or r.get("socket_errors"):
                out.append((f"{label} errors", "0", f"{r['unexpected']} unexpected, {r.get('socket_errors')} socket",
                            "MISS"))

    misses = [r for r in runs if r["scenario"] == "redirect-miss" and not r.get("skipped")]
    if misses:
        high = max(misses, key=lambda r: r["rps"])
        low = min(misses, key=lambda r: r["rps"])
        per_req = high["db"]["xact_per_request"]
        cap = BUDGET["miss_db_xact_per_request"]
        out.append(("redirect-miss DB transactions per request", f"≤ {cap}",
                    f"{per_req:.4f} ({fmt_num(high['db']['xact_per_s'])}/s at {fmt_num(high['rps'])} req/s)",
                    verdict(per_req <= cap)))
        if low is not high and low["rps"] > 0:
            rps_growth = high["rps"] / low["rps"]
            db_growth = max(high["db"]["xact_per_s"], 1.0) / max(low["db"]["xact_per_s"], 1.0)
            cap = BUDGET["miss_db_growth"]
            out.append(("redirect-miss DB load vs request rate", f"DB ×≤ {cap} while req/s ×{rps_growth:.1f}",
                        f"DB ×{db_growth:.2f} ({fmt_num(low['db']['xact_per_s'])}→"
                        f"{fmt_num(high['db']['xact_per_s'])} xact/s)",
                        verdict(db_growth <= cap)))

    creates = [r for r in runs if r["scenario"] == "create" and r["connections"] == BUDGET["create_connections"]]
    if not creates:
        out.append(("create throughput", f"≥ {BUDGET['create_vs_pgbench']}× pgbench", "not run", "N/A"))
    for r in creates:
        rat = ratio(r, index)
        out.append((f"create c{r['connections']} throughput", f"≥ {BUDGET['create_vs_pgbench']:.1f}× pgbench",
                    f"{rat:.2f}× ({fmt_num(r['rps'])} vs {fmt_num(index[r['baseline']]['rps'])}/s)"
                    if rat is not None else "no pgbench run", verdict(None if rat is None else rat >= BUDGET["create_vs_pgbench"])))
        p99 = r["latency_ms"]["p99"]
        out.append((f"create c{r['connections']} p99", f"≤ {BUDGET['create_p99_ms']:.0f} ms", f"{fmt_ms(p99)} ms",
                    verdict(p99 <= BUDGET["create_p99_ms"])))
        if r["unexpected"] or r.get("socket_errors"):
            out.append((f"create c{r['connections']} errors", "0",
                        f"{r['unexpected']} unexpected, {r.get('socket_errors')} socket", "MISS"))

    ingests = [r for r in runs if r["scenario"] == "visit-ingest"]
    if not ingests:
        out.append(("visit-ingest", f"≤ {BUDGET['ingest_counted_within_s']:.0f} s to count every visit", "not run",
                    "N/A"))
    for r in ingests:
        out += ingest_checks(r, verdict)

    rollups = [r for r in runs if r["scenario"] == "rollup-stats"]
    cap = BUDGET["rollup_stats_p99_ms"]
    if not rollups:
        out.append(("rollup-stats p99", f"≤ {cap:.0f} ms", "not run", "N/A"))
    for r in rollups:
        label = f"rollup-stats {r['variant']}"
        if r.get("skipped"):
            out.append((f"{label} p99", f"≤ {cap:.0f} ms", r["skipped"], "MISS" if r.get("failed") else "N/A"))
            continue
        p99 = r["latency_ms"]["p99"]
        out.append((f"{label} p99", f"≤ {cap:.0f} ms",
                    f"{fmt_ms(p99)} ms ({fmt_num(r['rps'])} req/s at {r['connections']} connections)",
                    verdict(p99 <= cap)))
        if r["unexpected"] or r.get("socket_errors"):
            out.append((f"{label} errors", "0", f"{r['unexpected']} unexpected, {r.get('socket_errors')} socket",
                        "MISS"))

    final = meta.get("final_rss_mb") or {}
    config = meta.get("final_api_config", "default")
    for proc, key in (("api", "api_rss_mb"), ("worker", "worker_rss_mb")):
        value = final.get(proc)
        note = f" ({config} settings)" if proc == "api" else ""
        out.append((f"{proc} RSS at the end", f"≤ {BUDGET[key]:.0f} MB", f"{fmt_num(value, 1)} MB{note}",
                    verdict(None if value is None else value <= BUDGET[key])))
    return out


def ingest_checks(r: dict, verdict) -> list[tuple[str, str, str, str]]:
    label = f"visit-ingest {r['variant']}"
    i = r.get("ingest") or {}
    served = i.get("served_301", 0)
    out = [(f"{label} dropped", "0", f"{fmt_num(i.get('dropped_metric'))} (offndat_visits_dropped_total)",
            verdict(None if i.get("dropped_metric") is None else i["dropped_metric"] == 0))]
    within = BUDGET["ingest_counted_within_s"]
    after = i.get("counted_after_load_s")
    if i.get("overshoot"):
        measured, ok = (f"overshoot: {fmt_num(i['visits_counted'])} counted for {fmt_num(served)} 301s "
                        f"(+{fmt_num(i['overshoot'])})"), False
    elif after is None:
        measured, ok = (f"not within {i.get('timed_out_after_s')} s ({fmt_num(i.get('visits_counted'))} of "
                        f"{fmt_num(served)})"), False
    else:
        measured, ok = f"{after:.2f} s ({fmt_num(served)} 301s, all counted)", after <= within
    out.append((f"{label} all counted", f"exactly, ≤ {within:.0f} s after the load", measured, verdict(ok)))
    db = i.get("db")
    if db:
        cap = BUDGET["ingest_api_xact_per_s"]
        api = db["api_xact_per_s_per_process"]
        out.append((f"{label} API DB transactions", f"≤ {cap:.0f}/s per API process",
                    f"{api:.1f}/s ({fmt_num(db['xact_per_s'])} total − {fmt_num(db['worker_xact_per_s'])} worker, "
                    f"{db['api_processes']} API process)", verdict(api <= cap)))
        flat = db.get("api_flat")
        factor, slack = BUDGET["ingest_api_xact_flat"], BUDGET["ingest_api_xact_flat_slack_per_s"]
        budget = f"flat: last third ≤ {factor}× first + {slack:.0f}/s"
        if flat:
            out.append((f"{label} API DB transactions flat", budget,
                        f"{flat['first_third_per_s']:.1f} → {flat['last_third_per_s']:.1f}/s "
                        f"({flat['third_s']:.0f} s thirds)",
                        verdict(flat["last_third_per_s"] <= factor * max(flat["first_third_per_s"], 0) + slack)))
        else:
            out.append((f"{label} API DB transactions flat", budget, "too short to tell", "N/A"))
    rate = i.get("sustained_visits_per_s") or 0
    out.append((f"{label} sustained", f"≥ {BUDGET['ingest_visits_per_s']:,} visits/s",
                f"{fmt_num(rate)} visits/s ({fmt_num(served)} redirects)",
                verdict(rate >= BUDGET["ingest_visits_per_s"])))
    if r.get("unexpected") or r.get("socket_errors"):
        out.append((f"{label} errors", "0", f"{r['unexpected']} unexpected, {r.get('socket_errors')} socket", "MISS"))
    return out


def table_text(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(header[i]), *(len(r[i]) for r in body)) if body else len(header[i]) for i in range(len(header))]
    numeric = {2, 3, 4, 5, 6, 7, 8, 9}
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    for r in body:
        lines.append("  ".join((c.rjust(w) if i in numeric else c.ljust(w)) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def table_markdown(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in body:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    return "\n".join(lines)


def extras(data: dict) -> list[str]:
    lines = []
    for r in data["runs"]:
        if r.get("skipped"):
            continue
        if r["scenario"] == "redirect-miss":
            d = r["db"]
            lines.append(f"redirect-miss {r['variant']}: {fmt_num(r['rps'])} req/s, PostgreSQL {fmt_num(d['xact_per_s'])} "
                         f"xact/s in the steady {d['window_s']} s (per second: "
                         f"{', '.join(fmt_num(x) for x in d['xact_per_s_series'])}), "
                         f"{d['xact_per_request']:.4f} xact per request, {fmt_num(d.get('tup_fetched_per_s'))} tuples "
                         f"fetched/s")
        if r["scenario"] == "visit-ingest" and (r.get("ingest") or {}).get("db"):
            i = r["ingest"]
            db = i["db"]
            series = ", ".join(f"{x:g}" for x in db["api_xact_per_s_series"])
            when = (f"all {i['counted_after_load_s']} s after the last redirect ({i['counted_after_basis']})"
                    if i["counted_after_load_s"] is not None else f"not all within {i['timed_out_after_s']} s")
            if i.get("overshoot"):
                when += f", {fmt_num(i['overshoot'])} more than the 301s"
            lines.append(f"visit-ingest {r['variant']}: {fmt_num(i['served_301'])} 301s in {i['load_s']} s "
                         f"(the API answered {fmt_num(i['api_answered_301'])}; then {fmt_num(i['tail_404_sent'])} "
                         f"closing 404s), {fmt_num(i['visits_counted'])} counted, {when}, "
                         f"{i['dropped_metric']} dropped, {fmt_num(i['recorded_metric'])} recorded "
                         f"→ {fmt_num(i['sustained_visits_per_s'])} visits/s sustained; database "
                         f"+{fmt_num(i['db_growth_mb'], 1)} MB = {fmt_num(i['db_mb_per_million_visits'], 1)} MB per "
                         f"million visits; PostgreSQL {fmt_num(db['xact_per_s'], 1)} xact/s = worker "
                         f"{fmt_num(db['worker_xact_per_s'], 1)} + API {fmt_num(db['api_xact_per_s'], 1)} in the "
                         f"steady {db['window_s']} s (visit flushes during the load: "
                         f"{fmt_num(i.get('flushes_during_load'))}); API xact per second: {series}")
        if r["scenario"] == "rollup-stats":
            k = r.get("check") or {}
            info = r.get("rollups") or {}
            lines.append(f"rollup-stats {r['variant']}: {k.get('path')} → {k.get('status')} in {k.get('ms')} ms "
                         f"(alone), totals.visits "
                         f"{fmt_num(k.get('visits'))}, {k.get('buckets')} buckets, {fmt_num(k.get('bytes'))} bytes; "
                         f"seeded {fmt_num(info.get('visits'))} visits over {fmt_num(info.get('hours'))} hours: "
                         f"{fmt_num(info.get('hourly_rows'))} hourly + {fmt_num(info.get('daily_rows'))} daily rows "
                         f"in {info.get('seed_s')} s, consistent: {info.get('consistent')}")
        if r["scenario"] == "create":
            lines.append(f"create {r['variant']}: {fmt_num(r.get('links_created'))} links created, outbox drained "
                         f"{r.get('outbox_drain_s')} s after the load")
        expected = {str(x) for x in r.get("expected_statuses") or []}
        if r.get("status_sample") and not set(r["status_sample"]) <= expected:
            lines.append(f"{r['scenario']} {r['variant']}: status sample {r['status_sample']}")
    return lines


def machine_lines(meta: dict) -> list[str]:
    m = meta.get("machine", {})
    return [
        f"date: {meta.get('started')} → {meta.get('finished')} (benchmark {meta.get('wall_s')} s"
        f"{', build ' + str(meta['phases']['build_s']) + ' s before it' if 'build_s' in (meta.get('phases') or {}) else ''}"
        f"{', quick mode' if meta.get('quick') else ''})",
        f"machine: {m.get('nproc')} CPUs ({m.get('cpu')}), {m.get('ram_gib')} GiB RAM, kernel {m.get('kernel')}, "
        f"load average at start {' '.join(m.get('loadavg_at_start') or [])}",
        f"tools: {m.get('rustc')}; {m.get('wrk')}; {m.get('pgbench')}",
        "settings: " + ", ".join(f"{k}={v}" for k, v in (meta.get("settings") or {}).items()),
    ]


def render_text(data: dict) -> str:
    meta = data["meta"]
    parts = ["offndat benchmark", *machine_lines(meta), "", table_text(HEADER, rows(data)), ""]
    parts += ceiling_noise(data) + extras(data)
    parts += ["", "budget (64 connections, load generator on the same cores):", f"  {goal_note()}"]
    result = checks(data)
    width = max(len(c[0]) for c in result)
    for name, budget, measured, verdict in result:
        parts.append(f"  {verdict:<4}  {name.ljust(width)}  {budget:<36}  {measured}")
    if meta.get("notes"):
        parts += ["", "notes:"] + [f"  - {n}" for n in meta["notes"]]
    return "\n".join(parts)


def render_markdown(data: dict, results_name: str) -> str:
    meta = data["meta"]
    result = checks(data)
    passed = sum(1 for c in result if c[3] == "PASS")
    missed = sum(1 for c in result if c[3] == "MISS")
    parts = [
        "# Benchmarks",
        "",
        "Written by `load-tests/run.sh` (through `load-tests/report.py`) at the end of a run; do not edit by "
        "hand. How to run it, what each scenario measures and how to read the numbers: "
        "[load-tests/README.md](../load-tests/README.md).",
        "",
        "## Latest run",
        "",
        *[f"- {line}" for line in machine_lines(meta)],
        f"- results file: `load-tests/results/{results_name}` (not committed)",
        "",
        "wrk runs on the same cores as the service, PostgreSQL, Redis and RabbitMQ, so every number is the whole "
        "system on one machine. `vs baseline` compares with the ceiling server (a bare axum handler answering from "
        "a HashMap, same load script) run in the same session, and `create` with pgbench doing the same two "
        "INSERTs. RSS columns are before→after the run, in MB.",
        "",
        table_markdown(HEADER, rows(data)),
        "",
        *[f"- {line}" for line in ceiling_noise(data) + extras(data)],
        "",
        f"## Budget: {passed} PASS, {missed} MISS",
        "",
        goal_note()[0].upper() + goal_note()[1:] + ".",
        "",
        table_markdown(["check", "budget", "measured", "verdict"], [list(c) for c in result]),
        "",
    ]
    if meta.get("notes"):
        parts += ["## Notes", "", *[f"- {n}" for n in meta["notes"]], ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="load-tests/results/<timestamp>.json (default: the newest)", nargs="?")
    parser.add_argument("--docs", help="write this Markdown file (docs/benchmarks.md)")
    args = parser.parse_args(argv)
    path = Path(args.results) if args.results else None
    if path is None:
        candidates = sorted((Path(__file__).resolve().parent / "results").glob("*.json"))
        if not candidates:
            print("report: no results yet", file=sys.stderr)
            return 2
        path = candidates[-1]
    data = json.loads(path.read_text())
    print(render_text(data))
    if args.docs:
        Path(args.docs).write_text(render_markdown(data, path.name))
        print(f"\nwrote {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
