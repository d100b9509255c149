"""The report: medians, same-run ratios, goals, the table and the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import log, median
from .directory import report_lines as directory_report


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
                 f"medians of {s['reps']} runs")
    d = results["direct"]
    clients = [str(c) for c in s["clients"]]
    header = f"{'':34}" + "".join(f"{c + ' cl.':>12}" for c in clients)
    lines += ["", header]

    def row(label: str, values: dict[str, float], fmt: str = "{:12.0f}") -> None:
        lines.append(f"{label:34}" + "".join(fmt.format(values.get(c, float('nan'))) for c in clients))

    row("pgbench -N (tps)", d["baseline_tps"])
    row("book_slot direct (tps)", d["book_slot_tps"])
    row("  / baseline", d["book_slot_over_baseline"], "{:12.2f}")
    row("cancel_appointment direct (tps)", d["cancel_tps"])
    row("  / baseline", d["cancel_over_baseline"], "{:12.2f}")
    h = results["http"]
    if "skipped" not in h:
        row("HTTP POST /v1/appointments (req/s)", h["book_rps"])
        row("  p99 (ms)", h["book_p99_ms"], "{:12.1f}")
        row("bare Flask book_slot (req/s)", h["bare_rps"])
        row("HTTP GET slots?date= (req/s)", h["slots_rps"])
        row("  p99 (ms)", h["slots_p99_ms"], "{:12.1f}")
        row("book_slot direct, paired (tps)", h["direct_book_tps"])
        row("HTTP booking / direct book_slot", h["http_over_direct"], "{:12.2f}")
        row("real app / bare app", h["real_over_bare"], "{:12.2f}")
    else:
        lines.append(f"HTTP: skipped ({h['skipped']})")
    la = results["list_available_slots"]
    lines += ["", f"list_available_slots, one practitioner and date: p50 {la['p50_ms']:.3f} ms, "
                  f"p99 {la['p99_ms']:.3f} ms; index scan: {la['plan']['index_scan']}, "
                  f"seq scan on slots: {la['plan']['seq_scan_on_slots']}"]
    hs = results["hot_slot"]
    lines.append(f"hot slot: {hs['clients']} clients x {hs['rounds']} rounds: "
                 f"{hs['rounds'] - hs['rounds_without_exactly_one_winner']} rounds with exactly one winner, "
                 f"other errors {sum(hs['other_errors'].values())}, p50 {hs['p50_ms']:.2f} ms, "
                 f"p99 {hs['p99_ms']:.2f} ms")
    ev = results["events"]["book_slot"]
    lines.append(f"event log: book_slot at {ev['clients']} clients {ev['with_events_tps']:.0f} tps with the "
                 f"event trigger, {ev['without_events_tps']:.0f} tps without: {ev['with_over_without']:.2f} x "
                 f"(latency {ev['with_events_latency_ms']:.2f} vs {ev['without_events_latency_ms']:.2f} ms)")
    wh = results["events"]["webhooks"]
    lines.append(f"webhooks: one worker delivered {wh['events']} events in {wh['seconds']:.2f} s "
                 f"({wh['deliveries_per_second']:.0f}/s; attempt p50 {wh['attempt_p50_ms']:.0f} ms, "
                 f"p99 {wh['attempt_p99_ms']:.0f} ms; {wh['duplicates']} duplicates)")
    if "skipped" not in h:
        lines.append(f"HTTP errors (all kinds): {h['errors']}; of them non-2xx responses: {h['non_2xx']}")
        mib = [r / 2**20 for r in h["worker_rss_bytes"]]
        lines.append(f"API server worker RSS after the HTTP run: {', '.join(f'{m:.1f}' for m in mib)} MiB")
    if "directory" in results:
        lines += directory_report(results["directory"])
    lines += ["", "goals:"]
    for goal in results["goals"]:
        lines.append(f"  {'met ' if goal['met'] else 'MISSED'}  {goal['name']}: {goal['measured']} "
                     f"(goal {goal['goal']})")
    return "\n".join(lines)


def goals(results: dict[str, Any], at: str) -> list[dict[str, Any]]:
    out = []
    d, la, hs, h = results["direct"], results["list_available_slots"], results["hot_slot"], results["http"]
    ratio = d["book_slot_over_baseline"].get(at)
    if ratio is not None:
        out.append({"name": f"book_slot / pgbench -N at {at} clients", "measured": round(ratio, 2),
                    "goal": ">= 0.9", "met": ratio >= 0.9})
    out.append({"name": "list_available_slots p99 (direct)", "measured": f"{la['p99_ms']:.3f} ms",
                "goal": "< 2 ms", "met": la["p99_ms"] < 2.0})
    out.append({"name": "list_available_slots plan", "measured": "index scan" if la["plan"]["index_scan"]
                else "no index scan", "goal": "index scan, no seq scan",
                "met": la["plan"]["index_scan"] and not la["plan"]["seq_scan_on_slots"]})
    out.append({"name": "hot slot: one winner per round, no other errors",
                "measured": f"{hs['rounds_without_exactly_one_winner']} bad rounds, "
                            f"{sum(hs['other_errors'].values())} other errors",
                "goal": "0 and 0", "met": hs["rounds_without_exactly_one_winner"] == 0 and not hs["other_errors"]})
    if "directory" in results:
        cases, plans = results["directory"]["cases"], results["directory"]["plans"]
        walk, fallback = cases["no filter"], cases["rare specialty (fallback)"]
        out.append({"name": "directory first page p99, no filter (the walk)", "measured": f"{walk['p99_ms']:.2f} ms",
                    "goal": "< 5 ms", "met": walk["p99_ms"] < 5.0})
        out.append({"name": "directory first page p99, rare specialty (the fallback)",
                    "measured": f"{fallback['p99_ms']:.2f} ms", "goal": "< 100 ms", "met": fallback["p99_ms"] < 100.0})
        seq = [name for name, plan in plans.items() if isinstance(plan, dict) and plan["seq_scan_on_slots"]]
        out.append({"name": "directory plans: no seq scan on availability_slots",
                    "measured": f"seq scan in {seq}" if seq else "none", "goal": "none", "met": not seq})
    if "skipped" not in h:
        # The real app's responses; the bare app is a yardstick with no error handling.
        non_2xx = h["non_2xx"]["http_book"] + h["non_2xx"]["http_slots"]
        out.append({"name": "HTTP: every response of the real app 2xx", "measured": f"{non_2xx} non-2xx",
                    "goal": "0", "met": non_2xx == 0})
    if "skipped" not in h and at in h["http_over_direct"]:
        for key, name, goal in (("http_over_direct", "HTTP booking / direct book_slot", 0.4),
                                ("real_over_bare", "real app / bare Flask app", 0.85)):
            value = h[key][at]
            out.append({"name": f"{name} at {at} clients", "measured": round(value, 2), "goal": f">= {goal}",
                        "met": value >= goal})
    return out


def plot(results: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed: no plot")
        return False
    clients = results["sizes"]["clients"]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    series = [("pgbench -N (baseline)", results["direct"]["baseline_tps"], "0.6", "--"),
              ("book_slot, direct (pgbench)", results["direct"]["book_slot_tps"], "tab:blue", "-"),
              ("cancel_appointment, direct", results["direct"]["cancel_tps"], "tab:cyan", "-")]
    if "skipped" not in results["http"]:
        series += [("POST /v1/appointments, HTTP", results["http"]["book_rps"], "tab:red", "-"),
                   ("bare Flask book_slot, HTTP", results["http"]["bare_rps"], "tab:orange", ":"),
                   ("GET slots?date=, HTTP", results["http"]["slots_rps"], "tab:green", "-")]
    for label, values, color, style in series:
        ax.plot(clients, [values[str(c)] for c in clients], marker="o", label=label, color=color, linestyle=style)
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
    return True
