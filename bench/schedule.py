"""What runs, in what order: the benchmarks and designs chosen (--only), the alternation of the
designs compared, and the loop that repeats each run and keeps its result.
"""

from __future__ import annotations

import argparse
import functools
import uuid
from collections.abc import Callable

from attribution.config import Settings
from bench.harness import DESIGNS, PASSTHROUGH, run_burst, run_datagen, run_generator, run_latency
from bench.report import figures
from bench.workloads import CHECKOUTS_PER_SECOND, Workload, build_workload

BENCHMARKS = ("generator", "datagen", "passthrough", "burst", "latency")
PAIRED = ("burst", "latency")  # run for each design, alternating
# What "burst" and "latency" run; "models" only when named.
COMPARED_DESIGNS = ("job", "original", "original-cached")
ONLY = [*BENCHMARKS, *(f"{b}-{d}" for b in PAIRED for d in DESIGNS)]


def selection(only: list[str] | None) -> dict[str, list[str]]:
    """Benchmark -> designs to run ([""] for the others): "burst" is every design, "burst-job" one."""
    chosen: dict[str, list[str]] = {}
    for choice in only or BENCHMARKS:
        name, _, design = choice.partition("-")
        designs = ([design] if design else list(COMPARED_DESIGNS)) if name in PAIRED else [""]
        chosen[name] = [*chosen.get(name, []), *(d for d in designs if d not in chosen.get(name, []))]
    # The original first: the order of a pair is reversed every other repetition anyway.
    return {name: sorted(chosen[name], reverse=True) for name in BENCHMARKS if name in chosen}


def alternate(designs: list[str], repetition: int) -> list[str]:
    """The compared designs in one order, then in the reverse one, and so on: a drift in time hits
    each alike. The models design comes last in each repetition, so that the designs compared run
    side by side and the garbage its larger state leaves behind falls on them alike."""
    pair = [d for d in designs if d != "models"]
    return (pair if repetition % 2 == 0 else pair[::-1]) + [d for d in designs if d == "models"]


def run_all(
    settings: Settings, args: argparse.Namespace, chosen: dict[str, list[str]], workloads: list[str]
) -> tuple[dict[str, list[dict]], dict[str, dict[str, dict[int, dict]]], dict[str, dict]]:
    """Runs the chosen benchmarks, each `args.repeat` times after its warm-ups; a failed run is
    reported and left out. Returns the results by label, those of the paired designs by
    benchmark/workload, design and repetition, and each workload's description."""
    results: dict[str, list[dict]] = {}
    pairs: dict[str, dict[str, dict[int, dict]]] = {}  # "burst/synthetic" -> design -> repetition -> result
    described: dict[str, dict] = {}

    def repeat(label: str, run: Callable[[], dict], warmups: int) -> None:
        for w in range(warmups):
            try:
                print(f"{label} warm-up #{w + 1} (not counted): {figures(run())}", flush=True)
            except Exception as error:
                print(f"{label} warm-up #{w + 1}: FAILED: {error!r}", flush=True)
        for r in range(args.repeat):
            try:
                result = run()
            except Exception as error:  # keep the other runs' figures
                print(f"{label} #{r + 1}: FAILED: {error!r}", flush=True)
                continue
            results.setdefault(label, []).append(result)
            print(f"{label} #{r + 1}: {figures(result)}", flush=True)

    for name, designs in chosen.items():
        if name == "generator":
            repeat(name, lambda: run_generator(settings, args.events), 0)
        elif name == "datagen":
            repeat(name, lambda: run_datagen(settings, args.events), 0)
        elif name == "passthrough":
            # On each workload's events: the ceiling of the job's burst on the same events.
            for index, workload in enumerate(workloads):
                load = build_workload(workload, args.seed, CHECKOUTS_PER_SECOND, events=args.events)

                def run_passthrough(load: Workload = load) -> dict:
                    return run_burst(settings, PASSTHROUGH, load, f"p{uuid.uuid4().hex[:6]}", args.bursts)

                repeat(f"{name}/{workload}", run_passthrough, args.warmup if index == 0 else 0)
                del load
        else:
            run_design = functools.partial(run_burst, bursts=args.bursts) if name == "burst" else run_latency
            for index, workload in enumerate(workloads):
                if name == "burst":
                    load = build_workload(workload, args.seed, CHECKOUTS_PER_SECOND, events=args.events)
                else:
                    load = build_workload(
                        workload, args.seed, args.latency_rate, seconds=args.latency_seconds
                    )
                key = f"{name}/{workload}"
                # The fan-out of what is measured: every checkout of a burst, those after the
                # lead-in in the latency run.
                described[key] = load.describe(
                    settings.attribution_window_seconds, None if name == "burst" else 0.0
                )
                print(f"{key}: {described[key]}", flush=True)
                # Warm-up runs once per benchmark, each design: Flink's own code is compiled then.
                for w in range(args.warmup if name == "burst" and index == 0 else 0):
                    for d in designs:
                        try:
                            result = run_design(settings, DESIGNS[d], load, f"w{w}x{uuid.uuid4().hex[:6]}")
                            print(f"{key}/{d} warm-up #{w + 1} (not counted): {figures(result)}", flush=True)
                        except Exception as error:
                            print(f"{key}/{d} warm-up #{w + 1}: FAILED: {error!r}", flush=True)
                for r in range(args.repeat):
                    data_tag = f"{name[0]}{r}x{uuid.uuid4().hex[:6]}"  # the same ids for both designs
                    for d in alternate(designs, r):
                        label = f"{key}/{d}"
                        try:
                            result = run_design(settings, DESIGNS[d], load, data_tag)
                        except Exception as error:  # keep the other runs' figures
                            print(f"{label} #{r + 1}: FAILED: {error!r}", flush=True)
                            continue
                        results.setdefault(label, []).append(result)
                        pairs.setdefault(key, {}).setdefault(d, {})[r] = result
                        print(f"{label} #{r + 1}: {figures(result)}", flush=True)
                del load
    return results, pairs, described
