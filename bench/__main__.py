"""Benchmarks of the embedded stack (`make bench`): generator, pass-through, and the job against the
original design it replaces (burst throughput, latency), each repeated; prints medians, ratios and
whether the targets are met, and saves JSON under STACK_DIR/bench/. Not a test: it measures, it
does not assert.

  generator    events/s from one process into the broker (pre-serialised events, one producer)
  datagen      the real generator (datagen/gen_fake_data.py), unthrottled and held to 5,000/s
  passthrough  a burst of each workload read, parsed and validated by a job that writes valid
               records to a blackhole sink and rejected ones to dead_letters, as the job does;
               from the first send until end markers sent last on every partition are visible
               in dead_letters. The job's burst over it, on the same events, is its ceiling
  burst        N events produced as fast as possible, from the first send to the last checkout
               row visible in Postgres
  latency      100 checkouts/s (and their clicks) in real time for a while; produce -> row
               visible, for attributed checkouts (updated_at minus the time the checkout was sent)

Burst and latency run three designs on the same events: "job", this project's job as `make job`
runs it (ATTRIBUTION_MODELS=first_click); "original", the original project's SQL ported to Flink
2.0 with the minimum fixes (bench/original/, its README lists them), writing to
commerce.original_attributed_checkouts; and "original-cached", the fair baseline: that design
with the lookup cache Flink's docs recommend, sized by the job's settings
(bench/original/cached/users.sql), writing to commerce.original_cached_attributed_checkouts.
They run in one order, then in the reverse one, in the same run, so that drift of the machine hits
each alike, and the ratio job/baseline of each repetition is reported for both baselines, with the
targets against the fair one: warm burst throughput >= 1.5x, cold burst >= 1.0x, p99 latency
<= 0.33x and <= 0.5 s. `--only burst-job` (or burst-original-cached, ...) runs one design only. A
fourth design, "models" (the job with every attribution model in one statement set; its runs end
when the first_click table is complete), runs only when asked for (`--only burst-models`,
`--only latency-models`), last in each repetition, and is reported as models/job: the garbage its
larger state leaves in the TaskManager would otherwise fall on the others.

Workloads (--workload; default original-traffic and datagen-traffic, those the targets are judged
on), each at 100 checkouts per second of event time:
  synthetic         3 clicks 1-3 s before each checkout; users cycle over 5,000 ids and products
                    over 500, so a checkout finds ~16 qualifying clicks (repeat purchases)
  original-traffic  the original project's generator: 100 users, a new product per session, one
                    click, then while a coin (51 %) says so another click and a checkout; Faker
                    values (user agents, URLs, addresses) as its payloads carry
  datagen-traffic   this project's generator (TrafficShape: 1,000 users, 200 products, sessions of
                    1-3 clicks, checkouts up to 60 s later, orphan, stale and repeat purchases,
                    timestamps up to 5 s out of order), in steady state; its first 2 minutes are
                    a lead-in, sent but not measured by the latency run (which lasts 2 min more)
Each workload's join fan-out (qualifying clicks per checkout) is printed and saved.

Each burst and pass-through run submits its own job on fresh topics, on the running stack
(`make up`; started if absent), and sends it two bursts: "cold", right after submission, while the
JVM is still compiling the job's generated code, and "warm", once event time has passed all of the
first burst, its state is gone and the TaskManager is idle: the throughput of a running job.
`--bursts N` sends N - 2 more warm bursts the same way and reports the last one too ("last burst"):
how the job warms up, since each new job recompiles its operators' hot code.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from attribution.config import settings_or_exit
from bench import report
from bench.harness import prepare
from bench.schedule import ONLY, PAIRED, run_all, selection
from bench.workloads import WORKLOADS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="events per burst (default 200000)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="repetitions of each run (default 3; of each design in burst and latency)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="unmeasured runs of passthrough and burst (each design) first (default 1): a TaskManager "
        "that has just started is still compiling Flink's own code",
    )
    parser.add_argument(
        "--bursts",
        type=int,
        default=2,
        help="bursts per burst and pass-through job (default 2: cold, warm); more add later warm ones, "
        "reported as `last` (how a job warms up: each new job recompiles its operators' hot code)",
    )
    parser.add_argument("--latency-seconds", type=float, default=60.0, help="length of the latency run (60)")
    parser.add_argument(
        "--latency-rate", type=float, default=100.0, help="checkouts/s in the latency run (default 100)"
    )
    parser.add_argument(
        "--only",
        choices=ONLY,
        action="append",
        help="run only these (repeatable); burst and latency run the job and both baselines (original, "
        "original-cached), burst-<design> and latency-<design> one; burst-models and latency-models add "
        "the job with every attribution model",
    )
    parser.add_argument(
        "--workload",
        choices=list(WORKLOADS),
        action="append",
        help="traffic of the pass-through, burst and latency runs (repeatable; default: original-traffic and "
        "datagen-traffic, those the targets are judged on)",
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the generated workloads (default 42)")
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    # Killed (a timeout, `kill`): unwind as Ctrl-C does, so each run's `finally` cancels its job
    # and deletes its topics instead of leaving them running on the stack.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chosen = selection(args.only)
    workloads = args.workload or ["original-traffic", "datagen-traffic"]
    machine_info = report.machine(settings)
    print(f"machine: {report.describe_machine(machine_info)}", flush=True)
    if machine_info["load_average_at_start"] > 0.5 * (machine_info["cores"] or 1):
        print("WARNING: the machine is busy before the benchmark starts; figures will be low", flush=True)
    prepare(settings, original=any("original" in chosen.get(name, []) for name in PAIRED))

    results, pairs, described = run_all(settings, args, chosen, workloads)

    machine_info["load_average_at_end"] = round(os.getloadavg()[0], 2)
    medians = report.print_medians(results, args.repeat)
    comparison = report.compare(pairs, args.latency_rate)
    if comparison:
        report.print_comparison(comparison, described, machine_info)
    out = report.save(
        settings,
        {
            "args": vars(args),
            "machine": machine_info,
            "workloads": described,
            "runs": results,
            "medians": medians,
            "comparison": comparison,
        },
    )
    print(f"\nsaved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
