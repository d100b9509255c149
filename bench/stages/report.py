"""The report: medians, same-run ratios, goals, the table, the Markdown tables and the plots.

Every section is optional (bench/run.py --stages runs a subset); the goals
list only what was measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import log, median
from .directory import report_lines as directory_report

# The goals for the ratios, in one place (the report, the JSON and the Markdown quote them).
GOALS = {
    "book_slot_over_baseline": 0.7,
    "cancel_over_baseline": 0.6,
    "http_over_direct": 0.4,
    "real_over_bare": 0.9,
    # Cost as data grows, largest size against the smallest in the same rounds:
    "curve_book_slot": 0.8,      # throughput at least this share of the smallest size's
    "curve_list_p99": 1.5,       # p99 at most this multiple of the smallest size's
    "curve_rows": 1.5,           # rows a hot query's plans read: at most this multiple (+ 10 rows)
}


def summarise(runs: dict[int, list[dict]], key: str) -> dict[str, float]:
    return {str(c): median([r[key] for r in rs]) for c, rs in runs.items()}


def ratios_within_run(num: dict[int, list[dict]], den: dict[int, list[dict]], key: str) -> dict[str, float]:
    """Median over reps of num/den, each pair measured back to back."""
    return {str(c): median([a[key] / b[key] for a, b in zip(num[c], den[c], strict=True)]) for c in num}


def report(results: dict[str, Any]) -> str:
    lines = []
    s = results["sizes"]
    lines.append(f"Medbook bench ({results['profile']}): {s['practitioners']:,} practitioners, "
                 f"{s['slots']:,} slots, {results['machine']['cpus']} CPUs, PostgreSQL {results['server_version']}; "
                 f"medians of {s['reps']} runs; stages: {', '.join(results['stages'])}")
    clients = [str(c) for c in s["clients"]]
    header = f"{'':34}" + "".join(f"{c + ' cl.':>12}" for c in clients)
    lines += ["", header]

    def row(label: str, values: dict[str, float], fmt: str = "{:12.0f}") -> None:
        lines.append(f"{label:34}" + "".join(fmt.format(values.get(c, float('nan'))) for c in clients))

    d = results.get("direct")
    if d:
        row("pgbench -N (tps)", d["baseline_tps"])
        row("book_slot direct (tps)", d["book_slot_tps"])
        row("  / baseline", d["book_slot_over_baseline"], "{:12.2f}")
        row("cancel_appointment direct (tps)", d["cancel_tps"])
        row("  / baseline", d["cancel_over_baseline"], "{:12.2f}")
    h = results.get("http")
    if h and "skipped" not in h:
        row("HTTP POST /v1/appointments (req/s)", h["book_rps"])
        row("  p99 (ms)", h["book_p99_ms"], "{:12.1f}")
        row("bare Flask book_slot (req/s)", h["bare_rps"])
        row("HTTP GET slots?date= (req/s)", h["slots_rps"])
        row("  p99 (ms)", h["slots_p99_ms"], "{:12.1f}")
        row("book_slot direct, paired (tps)", h["direct_book_tps"])
        row("HTTP booking / direct book_slot", h["http_over_direct"], "{:12.2f}")
        row("real app / bare app", h["real_over_bare"], "{:12.2f}")
    elif h:
        lines.append(f"HTTP: skipped ({h['skipped']})")
    la = results.get("list_available_slots")
    if la:
        lines += ["", f"list_available_slots, one practitioner and date: p50 {la['p50_ms']:.3f} ms, "
                      f"p99 {la['p99_ms']:.3f} ms; index scan: {la['plan']['index_scan']}, "
                      f"seq scan on slots: {la['plan']['seq_scan_on_slots']}"]
    hs = results.get("hot_slot")
    if hs:
        lines.append(f"hot slot: {hs['clients']} clients x {hs['rounds']} rounds: "
                     f"{hs['rounds'] - hs['rounds_without_exactly_one_winner']} rounds with exactly one winner, "
                     f"other errors {sum(hs['other_errors'].values())}, p50 {hs['p50_ms']:.2f} ms, "
                     f"p99 {hs['p99_ms']:.2f} ms")
    if "events" in results:
        ev = results["events"]["book_slot"]
        lines.append(f"event log: book_slot at {ev['clients']} clients {ev['with_events_tps']:.0f} tps as shipped, "
                     f"{ev['notify_off_tps']:.0f} tps with the NOTIFY on commit off, {ev['without_events_tps']:.0f} "
                     f"tps without the event trigger: shipped / no trigger {ev['with_over_without']:.2f} x, shipped / "
                     f"NOTIFY off {ev['with_over_notify_off']:.2f} x, NOTIFY off / no trigger "
                     f"{ev['notify_off_over_without']:.2f} x (latency {ev['with_events_latency_ms']:.2f}, "
                     f"{ev['notify_off_latency_ms']:.2f}, {ev['without_events_latency_ms']:.2f} ms)")
        wh = results["events"]["webhooks"]
        lines.append(f"webhooks: one worker delivered {wh['events']} events in {wh['seconds']:.2f} s "
                     f"({wh['deliveries_per_second']:.0f}/s; attempt p50 {wh['attempt_p50_ms']:.0f} ms, "
                     f"p99 {wh['attempt_p99_ms']:.0f} ms; {wh['duplicates']} duplicates)")
    if h and "skipped" not in h:
        lines.append(f"HTTP errors (all kinds): {h['errors']}; of them non-2xx responses: {h['non_2xx']}")
        mib = [r / 2**20 for r in h["worker_rss_bytes"]]
        lines.append(f"API server worker RSS after the HTTP run: {', '.join(f'{m:.1f}' for m in mib)} MiB")
    if "directory" in results:
        lines += directory_report(results["directory"])
    curve = results.get("size_curve")
    if curve:
        lines += ["", f"cost as data grows (book_slot at {curve['clients']} clients{per_run(curve)}; ratios to the "
                      "smallest size, per round, median):"]
        lines.append(f"  {'slots':>12} {'load s':>7} {'slots/s':>8} {'book tps':>9} {'ratio':>6} "
                     f"{'list p99 ms':>12} {'ratio':>6}  rows read per call (list / book / cancel)")
        for p in curve["points"]:
            rows = " / ".join(str(p["plans"][n]["rows_scanned"] + p["plans"][n]["rows_removed"])
                              for n in ("list_available_slots", "book_slot", "cancel_appointment"))
            lines.append(f"  {p['slots']:>12,} {p['load_seconds']:>7.0f} {p['load_slots_per_second']:>8,} "
                         f"{p['book_slot_tps']:>9.0f} {p['book_slot_over_smallest']:>6.2f} "
                         f"{p['list_p99_ms_median']:>12.3f} {p['list_p99_over_smallest']:>6.2f}  {rows}")
    lines += ["", "goals:"]
    for goal in results["goals"]:
        lines.append(f"  {'met ' if goal['met'] else 'MISSED'}  {goal['name']}: {goal['measured']} "
                     f"(goal {goal['goal']})")
    return "\n".join(lines)


def goals(results: dict[str, Any], at: str) -> list[dict[str, Any]]:
    """Every goal that the stages run can judge, with its measured value (a ratio where the goal is one)."""
    out = []

    def ratio_goal(key: str, name: str, value: float | None, goal: float) -> None:
        if value is not None:
            out.append({"key": key, "name": name, "measured": round(value, 2), "goal": f">= {goal}",
                        "met": value >= goal})

    d = results.get("direct")
    if d:
        ratio_goal("book_slot_over_baseline", f"book_slot / pgbench -N at {at} clients",
                   d["book_slot_over_baseline"].get(at), GOALS["book_slot_over_baseline"])
        ratio_goal("cancel_over_baseline", f"cancel_appointment / pgbench -N at {at} clients",
                   d["cancel_over_baseline"].get(at), GOALS["cancel_over_baseline"])
    la = results.get("list_available_slots")
    if la:
        out.append({"key": "list_p99", "name": "list_available_slots p99 (direct)",
                    "measured": f"{la['p99_ms']:.3f} ms", "goal": "< 2 ms", "met": la["p99_ms"] < 2.0})
        out.append({"key": "list_plan", "name": "list_available_slots plan",
                    "measured": "index scan" if la["plan"]["index_scan"] else "no index scan",
                    "goal": "index scan, no seq scan",
                    "met": la["plan"]["index_scan"] and not la["plan"]["seq_scan_on_slots"]})
    hs = results.get("hot_slot")
    if hs:
        out.append({"key": "hot_slot", "name": "hot slot: one winner per round, no other errors",
                    "measured": f"{hs['rounds_without_exactly_one_winner']} bad rounds, "
                                f"{sum(hs['other_errors'].values())} other errors",
                    "goal": "0 and 0",
                    "met": hs["rounds_without_exactly_one_winner"] == 0 and not hs["other_errors"]})
    if "directory" in results:
        cases, plans = results["directory"]["cases"], results["directory"]["plans"]
        walk, fallback = cases["no filter"], cases["rare specialty (fallback)"]
        out.append({"key": "directory_walk_p99", "name": "directory first page p99, no filter (the walk)",
                    "measured": f"{walk['p99_ms']:.2f} ms", "goal": "< 5 ms", "met": walk["p99_ms"] < 5.0})
        out.append({"key": "directory_fallback_p99", "name": "directory first page p99, rare specialty (the fallback)",
                    "measured": f"{fallback['p99_ms']:.2f} ms", "goal": "< 100 ms", "met": fallback["p99_ms"] < 100.0})
        seq = [name for name, plan in plans.items() if isinstance(plan, dict) and plan["seq_scan_on_slots"]]
        out.append({"key": "directory_plans", "name": "directory plans: no seq scan on availability_slots",
                    "measured": f"seq scan in {seq}" if seq else "none", "goal": "none", "met": not seq})
    h = results.get("http")
    if h and "skipped" not in h:
        # The real app's responses; the bare app is a yardstick with no error handling.
        non_2xx = h["non_2xx"]["http_book"] + h["non_2xx"]["http_slots"]
        out.append({"key": "http_2xx", "name": "HTTP: every response of the real app 2xx",
                    "measured": f"{non_2xx} non-2xx", "goal": "0", "met": non_2xx == 0})
        ratio_goal("http_over_direct", f"HTTP booking / direct book_slot at {at} clients",
                   h["http_over_direct"].get(at), GOALS["http_over_direct"])
        ratio_goal("real_over_bare", f"real app / bare Flask app at {at} clients",
                   h["real_over_bare"].get(at), GOALS["real_over_bare"])
    curve = results.get("size_curve")
    if curve and len(curve["points"]) > 1:
        small, large = curve["points"][0], curve["points"][-1]
        span = f"{large['label']} / {small['label']} slots"
        ratio_goal("curve_book_slot", f"size curve: book_slot tps at {span}", large["book_slot_over_smallest"],
                   GOALS["curve_book_slot"])
        value = large["list_p99_over_smallest"]
        out.append({"key": "curve_list_p99", "name": f"size curve: list_available_slots p99 at {span}",
                    "measured": round(value, 2), "goal": f"<= {GOALS['curve_list_p99']}",
                    "met": value <= GOALS["curve_list_p99"]})
        grown = []
        for name, plan in small["plans"].items():
            a = plan["rows_scanned"] + plan["rows_removed"]
            b = large["plans"][name]["rows_scanned"] + large["plans"][name]["rows_removed"]
            if b > GOALS["curve_rows"] * a + 10 or large["plans"][name]["seq_scans"]:
                grown.append(f"{name} {a} -> {b} rows" + (f", seq scan on {large['plans'][name]['seq_scans']}"
                                                          if large["plans"][name]["seq_scans"] else ""))
        out.append({"key": "curve_plans", "name": f"size curve: rows the hot queries read, {span}",
                    "measured": "; ".join(grown) if grown else "flat", "goal": "flat, no seq scan",
                    "met": not grown})
    return out


def per_run(curve: dict[str, Any]) -> str:
    """The size curve's bookings per run, the same at every size (absent from older results)."""
    return f", {curve['bookings_per_run']:,} bookings per run" if "bookings_per_run" in curve else ""


def markdown_tables(results: dict[str, Any]) -> str:
    """The tables of docs/PERFORMANCE.md, from this run: paste them over the old ones."""
    s = results["sizes"]
    clients = [str(c) for c in s["clients"]]
    out = [f"<!-- bench/run.py, profile {results['profile']}, started {results['started']}, "
           f"stages {', '.join(results['stages'])} -->", ""]

    def table(rows: list[tuple[str, dict[str, float], str]]) -> None:
        out.append("| | " + " | ".join(f"{c} client{'s' if c != '1' else ''}" for c in clients) + " |")
        out.append("|---|" + "---:|" * len(clients))
        for label, values, fmt in rows:
            out.append(f"| {label} | " + " | ".join(fmt.format(values[c]) if c in values else "" for c in clients)
                       + " |")
        out.append("")

    rows: list[tuple[str, dict[str, float], str]] = []
    d = results.get("direct")
    if d:
        rows += [("`pgbench -N` baseline (tps)", d["baseline_tps"], "{:.0f}"),
                 ("`book_slot` direct (tps)", d["book_slot_tps"], "{:.0f}"),
                 ("  ratio to the baseline run just before (median of pairs)", d["book_slot_over_baseline"],
                  "{:.2f}"),
                 ("`cancel_appointment` direct (tps)", d["cancel_tps"], "{:.0f}"),
                 ("  ratio to the baseline (of the medians)", d["cancel_over_baseline"], "{:.2f}")]
    h = results.get("http")
    if h and "skipped" not in h:
        both = {c: f"{h['book_p50_ms'][c]:.1f} / {h['book_p99_ms'][c]:.1f}" for c in h["book_p50_ms"]}
        slots = {c: f"{h['slots_p50_ms'][c]:.1f} / {h['slots_p99_ms'][c]:.1f}" for c in h["slots_p50_ms"]}
        rows += [("`book_slot` direct, run just before the HTTP runs (tps)", h["direct_book_tps"], "{:.0f}"),
                 ("`POST /v1/appointments`, real app (req/s)", h["book_rps"], "{:.0f}"),
                 ("  p50 / p99 (ms)", both, "{}"),
                 ("  ratio to the direct run just before (median of pairs)", h["http_over_direct"], "{:.2f}"),
                 ("bare Flask `book_slot` (req/s)", h["bare_rps"], "{:.0f}"),
                 ("  real app / bare app (median of pairs)", h["real_over_bare"], "{:.2f}"),
                 ("`GET /v1/practitioners/{id}/slots?date=` (req/s)", h["slots_rps"], "{:.0f}"),
                 ("  p50 / p99 (ms)", slots, "{}")]
    if rows:
        table(rows)
    curve = results.get("size_curve")
    if curve:
        out.append(f"Cost as data grows (`book_slot` at {curve['clients']} clients{per_run(curve)}, "
                   "`list_available_slots` p99 over one-client runs; ratios to the smallest size in the same round, "
                   "median):")
        out.append("")
        out.append("| slots | practitioners x days | load (s) | slots/s loaded | database | `book_slot` (tps) "
                   "| ratio | `list_available_slots` p50 / p99 (ms) | p99 ratio "
                   "| rows read per call (buffers): list / book / cancel |")
        out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for p in curve["points"]:
            rows_read = " / ".join(f'{p["plans"][n]["rows_scanned"] + p["plans"][n]["rows_removed"]} '
                                   f'({p["plans"][n]["buffers"]})'
                                   for n in ("list_available_slots", "book_slot", "cancel_appointment"))
            out.append(f"| {p['slots']:,} | {p['practitioners']:,} x {p['days']} | {p['load_seconds']:.0f} | "
                       f"{p['load_slots_per_second']:,} | {p['database_bytes'] / 2**30:.1f} GiB | "
                       f"{p['book_slot_tps']:.0f} | {p['book_slot_over_smallest']:.2f} | "
                       f"{median(p['list_p50_ms']):.3f} / {p['list_p99_ms_median']:.3f} | "
                       f"{p['list_p99_over_smallest']:.2f} | {rows_read} |")
        out.append("")
    if results.get("goals"):
        out.append("| Goal | Measured | Met |")
        out.append("|---|---|---|")
        for goal in results["goals"]:
            out.append(f"| {goal['name']} ({goal['goal']}) | {goal['measured']} | "
                       f"{'yes' if goal['met'] else '**no**'} |")
        out.append("")
    return "\n".join(out)


def plot(results: dict[str, Any], path: Path, sizes_path: Path) -> list[Path]:
    """The throughput plot (path) and the size curve (sizes_path), for what was measured."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed: no plot")
        return []
    written = []
    clients = results["sizes"]["clients"]
    series = []
    if "direct" in results:
        series += [("pgbench -N (baseline)", results["direct"]["baseline_tps"], "0.6", "--"),
                   ("book_slot, direct (pgbench)", results["direct"]["book_slot_tps"], "tab:blue", "-"),
                   ("cancel_appointment, direct", results["direct"]["cancel_tps"], "tab:cyan", "-")]
    h = results.get("http")
    if h and "skipped" not in h:
        series += [("POST /v1/appointments, HTTP", h["book_rps"], "tab:red", "-"),
                   ("bare Flask book_slot, HTTP", h["bare_rps"], "tab:orange", ":"),
                   ("GET slots?date=, HTTP", h["slots_rps"], "tab:green", "-")]
    if series:
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
        for label, values, color, style in series:
            ax.plot(clients, [values[str(c)] for c in clients], marker="o", label=label, color=color,
                    linestyle=style)
        ax.set_xscale("log", base=2)
        ax.set_xticks(clients, [str(c) for c in clients])
        ax.set_xlabel("concurrent clients (pgbench clients / wrk connections)")
        ax.set_ylabel("transactions or requests per second")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.set_title(f"Medbook booking throughput, {results['machine']['cpus']} CPUs, medians of "
                     f"{results['sizes']['reps']} runs", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    curve = results.get("size_curve")
    if curve:
        points = curve["points"]
        slots = [p["slots"] for p in points]
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8), dpi=110)
        for p in points:
            left.scatter([p["slots"]] * len(p["book_slot"]), p["book_slot"], color="tab:blue", alpha=0.35, s=14)
            right.scatter([p["slots"]] * len(p["list_p99_ms"]), p["list_p99_ms"], color="tab:green", alpha=0.35,
                          s=14)
        left.plot(slots, [p["book_slot_tps"] for p in points], marker="o", color="tab:blue", label="median")
        right.plot(slots, [p["list_p99_ms_median"] for p in points], marker="o", color="tab:green",
                   label="p99, median of runs")
        right.plot(slots, [median(p["list_p50_ms"]) for p in points], marker="s", color="tab:olive",
                   linestyle=":", label="p50, median of runs")
        for ax, title, unit in ((left, f"book_slot, {curve['clients']} clients", "transactions per second"),
                                (right, "list_available_slots latency, 1 client", "milliseconds")):
            ax.set_xscale("log")
            ax.set_xticks(slots, [p["label"] for p in points])
            ax.set_xlabel("availability slots in the database")
            ax.set_ylabel(unit)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.set_title(title, fontsize=10)
            ax.legend(fontsize=8)
        fig.suptitle(f"Cost as data grows ({results['machine']['cpus']} CPUs; dots: single runs)", fontsize=10)
        fig.tight_layout()
        fig.savefig(sizes_path)
        plt.close(fig)
        written.append(sizes_path)
    return written
