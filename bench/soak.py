"""Soak run: steady traffic for minutes while sampling Flink's own metrics, to show that state and
heap stay flat once the attribution window is full.

The generator runs on a simulated clock that is --time-scale times faster than the wall clock, so
the one-hour attribution window fills in 60/time-scale minutes and the run then shows whether
anything still grows. Needs the embedded stack and the job (`make up job`). Not a test: it prints
a table and writes JSON under STACK_DIR/bench/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2

from attribution import job
from attribution.config import Settings, settings_or_exit


def taskmanager_metrics(settings: Settings, wanted: Callable[[str], bool]) -> dict[str, float]:
    """The TaskManager metrics whose names are wanted, summed over TaskManagers."""
    totals: dict[str, float] = {}
    for tm in job.rest_get(settings, "/taskmanagers")["taskmanagers"]:
        path = f"/taskmanagers/{tm['id']}/metrics"
        names = [m["id"] for m in job.rest_get(settings, path) if wanted(m["id"])]
        for metric in job.rest_get(settings, f"{path}?get={','.join(names)}") if names else []:
            totals[metric["id"]] = totals.get(metric["id"], 0.0) + float(metric["value"])
    return totals


def taskmanager_heap(settings: Settings) -> float:
    """Heap used in MiB, summed over TaskManagers."""
    heap = "Status.JVM.Memory.Heap.Used"
    return taskmanager_metrics(settings, lambda name: name == heap).get(heap, 0.0) / 2**20


def taskmanager_gc(settings: Settings) -> dict[str, float]:
    """Garbage collections so far, summed over TaskManagers: {collector.Count|Time: value}."""
    prefix = "Status.JVM.GarbageCollector."
    metrics = taskmanager_metrics(
        settings, lambda name: name.startswith(prefix) and name.endswith((".Count", ".Time"))
    )
    return {name.removeprefix(prefix): value for name, value in metrics.items()}


def gc_during(before: dict[str, float], after: dict[str, float]) -> dict[str, dict[str, float]]:
    """{collector: {count, mean_pause_ms}} between two taskmanager_gc() readings."""
    result = {}
    for key in after:
        if key.endswith(".Count") and not key.startswith("All."):
            collector = key.removesuffix(".Count")
            count = after[key] - before.get(key, 0.0)
            time_ms = after[f"{collector}.Time"] - before.get(f"{collector}.Time", 0.0)
            result[collector] = {"count": count, "mean_pause_ms": round(time_ms / count, 1) if count else 0.0}
    return result


def sample(settings: Settings, job_id: str, since: float) -> dict:
    checkpoints = job.rest_get(settings, f"/jobs/{job_id}/checkpoints")
    latest = (checkpoints.get("latest") or {}).get("completed") or {}
    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT count(*), max(checkout_time) FILTER (WHERE updated_at > to_timestamp(%s)) "
            f"FROM {settings.sink_table}",
            (since,),
        )
        rows, newest = cur.fetchall()[0]
    conn.close()
    return {
        "at": time.time(),
        "checkpoint_id": latest.get("id"),
        "state_mib": round(latest.get("state_size", 0) / 2**20, 2),
        "checkpointed_mib": round(latest.get("checkpointed_size", 0) / 2**20, 2),
        "checkpoint_ms": latest.get("end_to_end_duration"),
        "heap_mib": round(taskmanager_heap(settings), 1),
        "gc": taskmanager_gc(settings),
        "rows": rows,
        "event_time": newest.isoformat(sep=" ") if newest else None,
    }


def state_by_operator(settings: Settings, job_id: str) -> dict[str, float]:
    """MiB of state per job vertex in the latest completed checkpoint (for docs/scaling.md)."""
    latest = (job.rest_get(settings, f"/jobs/{job_id}/checkpoints").get("latest") or {}).get("completed")
    if not latest:
        return {}
    names = {v["id"]: v["name"] for v in job.rest_get(settings, f"/jobs/{job_id}")["vertices"]}
    details = job.rest_get(settings, f"/jobs/{job_id}/checkpoints/details/{latest['id']}")
    return {
        names.get(vertex, vertex)[:60]: round(task.get("state_size", 0) / 2**20, 2)
        for vertex, task in details.get("tasks", {}).items()
        if task.get("state_size")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the run (default 10)")
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second (default 1000)")
    parser.add_argument("--time-scale", type=float, default=30.0, help="simulated seconds per second (30)")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples (default 30)")
    parser.add_argument(
        "--seed", type=int, default=99, help="generator seed; change it between runs on one table"
    )
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    running = job.active_jobs(settings, settings.job_name)
    if not running:
        print("no running job: start it with `make up job`", file=sys.stderr)
        return 1
    job_id = running[0].job_id
    start = (datetime.now(UTC) - timedelta(hours=12)).replace(tzinfo=None)
    generator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "datagen",
            "--rate",
            str(args.rate),
            "--time-scale",
            str(args.time_scale),
            "--start-time",
            start.isoformat(),
            "--seed",
            str(args.seed),
        ],
        stdout=subprocess.DEVNULL,
    )
    samples = []
    since = time.time()
    gc_before = taskmanager_gc(settings)
    deadline = time.monotonic() + args.minutes * 60
    try:
        header = ("min", "event time", "rows", "state MiB", "ckpt MiB", "ckpt ms", "heap MiB")
        print("{:>5} {:>23} {:>9} {:>9} {:>8} {:>7} {:>8}".format(*header))
        began = time.monotonic()
        while time.monotonic() < deadline and generator.poll() is None:
            time.sleep(args.every)
            s = sample(settings, job_id, since)
            samples.append(s)
            print(
                f"{(time.monotonic() - began) / 60:5.1f} {s['event_time'] or '-':>23} {s['rows']:9d} "
                f"{s['state_mib']:9.2f} {s['checkpointed_mib']:8.2f} {s['checkpoint_ms'] or 0:7d} "
                f"{s['heap_mib']:8.1f}",
                flush=True,
            )
    finally:
        generator.terminate()
        generator.wait(30)
    window_full = samples[len(samples) // 2 :]  # the second half of the run
    summary = {
        "args": vars(args),
        "samples": samples,
        "second_half_state_mib": {
            "min": min(s["state_mib"] for s in window_full),
            "median": statistics.median(s["state_mib"] for s in window_full),
            "max": max(s["state_mib"] for s in window_full),
        },
        "second_half_heap_mib_median": statistics.median(s["heap_mib"] for s in window_full),
        "gc_during_run": gc_during(gc_before, samples[-1]["gc"]),
        "state_mib_by_operator_at_end": state_by_operator(settings, job_id),
    }
    out = Path(settings.stack_dir) / "bench" / f"soak-{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(
        f"second half: state {summary['second_half_state_mib']} MiB, heap median "
        f"{summary['second_half_heap_mib_median']} MiB\n"
        f"garbage collections during the run: {summary['gc_during_run']}\n"
        f"state by operator at the end (MiB): {summary['state_mib_by_operator_at_end']}\nsaved {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
