"""What the benchmarks report: each run's figures, the machine they ran on, the medians, the
comparison of the job with the original design against the issue's targets, and the JSON saved
under STACK_DIR/bench/.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from attribution.config import Settings
from attribution.models import MODELS
from bench.harness import BASELINES, DESIGNS, PHASES

# Targets of issue 13, judged on the medians of the per-pair ratios job / original.
# The targets are against the fair baseline: the original design with the lookup cache (#29).
FAIR_BASELINE = "original-cached"
TARGET_BURST_RATIO = 1.5  # warm burst throughput, at least this times the baseline's
TARGET_COLD_RATIO = 1.0  # the first (cold) burst, at least the baseline's
TARGET_P99_RATIO = 0.33  # p99 latency at 100 checkouts/s, at most this times the baseline's
TARGET_P99_SECONDS = 0.5  # and at most this


def figures(result: dict) -> dict[str, float]:
    """The numbers of a run's result (not the per-process and per-thread breakdowns)."""
    return {k: v for k, v in result.items() if isinstance(v, int | float)}


def machine(settings: Settings) -> dict[str, Any]:
    """What the figures were measured on: they move by 2x between days and machines."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "parallelism": settings.parallelism,
        "state_backend": settings.state_backend,
    }


def describe_machine(m: dict[str, Any]) -> str:
    end = f", {m['load_average_at_end']} at the end" if "load_average_at_end" in m else ""
    return (
        f"{m['cores']} cores, {m['cpu']}, {m['memory_gib']} GiB; {m['date']}; "
        f"load average {m['load_average_at_start']} at the start{end}"
    )


COMPARED = {
    "burst": (
        ("warm_events_per_s", "warm burst, events/s"),
        ("cold_events_per_s", "cold burst, events/s"),
        ("last_events_per_s", "last burst, events/s"),
    ),
    "latency": (("p99_s", "p99 latency, s"), ("p95_s", "p95 latency, s"), ("p50_s", "p50 latency, s")),
}


def compare(pairs: dict[str, dict[str, dict[int, dict]]], latency_rate: float) -> dict[str, dict]:
    """Per benchmark and workload: each design's median, and the ratio job/original as the median
    of the ratios of the pairs that ran next to each other; then the targets."""
    out: dict[str, dict] = {}
    for key, by_design in pairs.items():
        name = key.split("/", 1)[0]
        entry: dict[str, Any] = {}
        for metric, _ in COMPARED[name]:
            if not all(metric in r for runs in by_design.values() for r in runs.values()):
                continue  # last_events_per_s: only with --bursts > 2
            medians = {
                d: statistics.median(r[metric] for r in runs.values())
                for d, runs in by_design.items()
                if runs
            }
            # job / each baseline: the median of the ratios of the runs of one repetition.
            ratios = {
                baseline: [
                    round(by_design["job"][r][metric] / by_design[baseline][r][metric], 3)
                    for r in sorted(by_design.get("job", {}).keys() & by_design.get(baseline, {}).keys())
                    if by_design[baseline][r][metric]
                ]
                for baseline in BASELINES
            }
            # Every model in one job against the job's model alone, paired the same way.
            with_models = sorted(by_design.get("job", {}).keys() & by_design.get("models", {}).keys())
            models_ratios = [
                round(by_design["models"][r][metric] / by_design["job"][r][metric], 3)
                for r in with_models
                if by_design["job"][r][metric]
            ]
            entry[metric] = {
                **medians,
                "ratios": {b: round(statistics.median(r), 3) if r else None for b, r in ratios.items()},
                "pair_ratios": ratios,
                "models_ratio": round(statistics.median(models_ratios), 3) if models_ratios else None,
            }
        targets: list[dict[str, Any]] = []
        if name == "burst":
            for metric, least in (
                ("warm_events_per_s", TARGET_BURST_RATIO),
                ("cold_events_per_s", TARGET_COLD_RATIO),
            ):
                ratio = entry.get(metric, {}).get("ratios", {}).get(FAIR_BASELINE)
                if ratio is not None:
                    targets.append(
                        {
                            "target": f"{metric.split('_')[0]} burst, events/s >= {least}x {FAIR_BASELINE}'s",
                            "value": ratio,
                            "met": ratio >= least,
                        }
                    )
        if name == "latency":
            at = (
                ""
                if latency_rate == 100
                else f" (measured at {latency_rate:g} checkouts/s; the target is at 100)"
            )
            ratio = entry["p99_s"]["ratios"][FAIR_BASELINE]
            if ratio is not None:
                targets.append(
                    {
                        "target": f"p99 latency <= {TARGET_P99_RATIO}x {FAIR_BASELINE}'s{at}",
                        "value": ratio,
                        "met": ratio <= TARGET_P99_RATIO,
                    }
                )
            if "job" in entry["p99_s"]:
                p99 = entry["p99_s"]["job"]
                targets.append(
                    {
                        "target": f"p99 latency <= {TARGET_P99_SECONDS} s{at}",
                        "value": p99,
                        "met": p99 <= TARGET_P99_SECONDS,
                    }
                )
        entry["targets"] = targets
        out[key] = entry
    return out


def _number(value: float) -> str:
    """Events/s as a whole number with separators, seconds with three decimals."""
    return f"{round(value):,}" if value >= 100 else f"{value:.3f}"


def print_comparison(
    comparison: dict[str, dict], workloads: dict[str, dict], machine_info: dict[str, Any]
) -> None:
    print(
        "\nThe job against the original design (bench/original/) and the fair baseline, that design with"
        " the job's lookup cache: same stack, same run, same events"
    )
    print(f"  measured on: {describe_machine(machine_info)}")
    print("  ratio = job / baseline: the median of the ratios of the runs of one repetition [each one]")
    for key, entry in comparison.items():
        name, workload = key.split("/", 1)
        w = workloads.get(key, {})
        size = (
            f"{w.get('events', 0):,} events, {w.get('checkouts', 0):,} checkouts"
            if name == "burst"
            else f"{w.get('measured_checkouts', 0):,} checkouts measured"
        )
        print(
            f"\n  {name}, {workload}: {size}; fan-out {w.get('fanout_mean', 0)} qualifying clicks per "
            f"checkout (p99 {w.get('fanout_p99', 0)}, max {w.get('fanout_max', 0)}), "
            f"{w.get('attributable_pct', 0)} % attributable"
        )
        for metric, label in COMPARED[name]:
            if metric not in entry:
                continue
            m = entry[metric]
            shown = "   ".join(f"{d} {_number(m[d]) if d in m else '-':>9}" for d in ("job", *BASELINES))
            print(f"    {label:<22} {shown}")
            for baseline in BASELINES:
                ratio = m["ratios"][baseline]
                pairs = " / ".join(f"{r:.2f}" for r in m["pair_ratios"][baseline])
                print(f"    {'':<22} job / {baseline}: {'-' if ratio is None else f'{ratio:.2f}'}  [{pairs}]")
            if m.get("models_ratio") is not None:
                print(
                    f"    {'':<22} all {len(MODELS)} models in one job {_number(m['models'])}: "
                    f"{m['models_ratio']:.2f}x {DESIGNS['job'].models} alone"
                )
        for t in entry["targets"]:
            print(f"    target: {t['target']}: {'MET' if t['met'] else 'NOT MET'} ({t['value']})")


def print_medians(results: dict[str, list[dict]], repeat: int) -> dict[str, Any]:
    """Prints each run's medians, the burst/pass-through ratio, and the breakdowns (per process, per
    TaskManager thread) of the last run of each; returns the medians."""
    print("\nMedians over", repeat, "runs:")
    medians: dict[str, Any] = {}
    for label, rs in results.items():
        medians[label] = {k: statistics.median(r[k] for r in rs) for k in figures(rs[0])}
        print(f"  {label:<32} " + "  ".join(f"{k}={v}" for k, v in medians[label].items()))
    # The ceiling: how close the job's burst comes to parsing and validating the same events alone.
    for label in results:
        if not label.startswith("passthrough/"):
            continue
        workload = label.removeprefix("passthrough/")
        job_burst = medians.get(f"burst/{workload}/job")
        if job_burst:
            for phase, _ in PHASES:
                key = f"{phase}_events_per_s"
                ratio = round(job_burst[key] / medians[label][key], 2)
                medians[f"burst_over_passthrough/{workload}/{phase}"] = ratio
                print(f"  burst ({workload}, job) / passthrough throughput, {phase}: {ratio:.2f}")
    print("\nCPU (% of one core, mean) and peak RSS (MiB) per process, last run of each (its last burst):")
    for label, rs in results.items():
        print(f"  {label}:")
        for proc, res in rs[-1].get("resources", {}).items():
            print(f"    {proc:<18} cpu {res['cpu_pct']:6.1f}%  rss {res['peak_rss_mib']:6d} MiB")
    for label, rs in results.items():
        if "taskmanager_us_per_event" in rs[-1]:
            print(f"\nTaskManager CPU per event (µs) by thread, last {label} run (its last burst):")
            for kind, us in rs[-1]["taskmanager_us_per_event"].items():
                print(f"    {us:6.2f}  {kind}")
    return medians


def save(settings: Settings, record: dict[str, Any]) -> Path:
    """The run's record as JSON under STACK_DIR/bench/; returns its path."""
    out = Path(settings.stack_dir) / "bench" / f"bench-{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    return out
