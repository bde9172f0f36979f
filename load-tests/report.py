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
    "redirect_vs_ceiling": {"redirect-hot": 0.75, "redirect-l1": 0.75, "redirect-l2": 0.35, "redirect-db": 0.15,
                            "redirect-miss": 0.5},
    "p99_vs_ceiling": {"redirect-hot": 1.5, "redirect-l1": 1.5},
    "miss_db_xact_per_request": 0.05,  # at most 5 % of unknown-phrase requests reach PostgreSQL
    "miss_db_growth": 1.5,  # DB transactions/s (above idle) at the high rate vs the low rate
    "create_vs_pgbench": 0.6,
    "create_p99_ms": 50.0,
    "create_connections": 64,
    "ingest_visits_per_s": 20_000,
    "ingest_counted_within_s": 10.0,
    "api_rss_mb": 80.0,
    "worker_rss_mb": 40.0,
}


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

    for scenario, floor in BUDGET["redirect_vs_ceiling"].items():
        selected = [r for r in runs if r["scenario"] == scenario
                    and (scenario != "redirect-miss" or r.get("baseline") or r.get("skipped"))]
        if not selected:
            out.append((f"{scenario} throughput", f"≥ {floor:.2f}× ceiling", "not run", "N/A"))
        for r in selected:
            label = f"{scenario} {r['variant']}"
            if r.get("skipped"):
                out.append((f"{label} throughput", f"≥ {floor:.2f}× ceiling", r["skipped"], "N/A"))
                continue
            rat = ratio(r, index)
            out.append((f"{label} throughput", f"≥ {floor:.2f}× ceiling",
                        f"{rat:.2f}× ({fmt_num(r['rps'])} req/s)" if rat is not None else "no ceiling run",
                        verdict(None if rat is None else rat >= floor)))
            cap = BUDGET["p99_vs_ceiling"].get(scenario)
            if cap:
                pr = p99_ratio(r, index)
                out.append((f"{label} p99", f"≤ {cap:.1f}× ceiling p99",
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
        out.append(("visit-ingest", f"≥ {BUDGET['ingest_visits_per_s']:,} visits/s", "not run", "N/A"))
    for r in ingests:
        i = r["ingest"]
        rate = i["sustained_visits_per_s"] or 0
        out.append(("visit-ingest sustained", f"≥ {BUDGET['ingest_visits_per_s']:,} visits/s",
                    f"{fmt_num(rate)} visits/s ({fmt_num(i['served_301'])} redirects)",
                    verdict(rate >= BUDGET["ingest_visits_per_s"])))
        lost = i["dropped_metric"] + i["rows_missing"]
        out.append(("visit-ingest dropped", "0",
                    f"{i['dropped_metric']} dropped (metric), {i['rows_missing']} rows missing", verdict(lost == 0)))
        after = i["counted_after_load_s"]
        out.append(("visit-ingest all counted", f"≤ {BUDGET['ingest_counted_within_s']:.0f} s after the load",
                    f"{after} s" if after is not None else
                    f"not within {i['timed_out_after_s']} s ({fmt_num(i['visits_counted'])} of {fmt_num(i['served_301'])})",
                    verdict(after is not None and after <= BUDGET["ingest_counted_within_s"])))

    final = meta.get("final_rss_mb") or {}
    for proc, key in (("api", "api_rss_mb"), ("worker", "worker_rss_mb")):
        value = final.get(proc)
        out.append((f"{proc} RSS at the end", f"≤ {BUDGET[key]:.0f} MB", f"{fmt_num(value, 1)} MB",
                    verdict(None if value is None else value <= BUDGET[key])))
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
        if r["scenario"] == "visit-ingest":
            i = r["ingest"]
            lines.append(f"visit-ingest: {fmt_num(i['served_301'])} redirects in {i['load_s']} s, "
                         f"{fmt_num(i['visits_counted'])} counted / {fmt_num(i['visit_rows'])} visit rows, "
                         f"{i['dropped_metric']} dropped, all counted {i['counted_after_load_s']} s after the load "
                         f"→ {fmt_num(i['sustained_visits_per_s'])} visits/s sustained")
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
    parts += ["", "budget (64 connections, load generator on the same cores):"]
    result = checks(data)
    width = max(len(c[0]) for c in result)
    for name, budget, measured, verdict in result:
        parts.append(f"  {verdict:<4}  {name.ljust(width)}  {budget:<28}  {measured}")
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
