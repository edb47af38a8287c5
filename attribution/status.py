"""What `make status` reports: gathered once into one document (report()), printed as text for
people (text()) or as JSON for scripts (`make status FORMAT=json`; its shape is in
docs/operations.md, "Status for scripts")."""

from __future__ import annotations

import dataclasses
import time
from decimal import Decimal
from typing import Any

from attribution import health, job, keeper, metrics, stack
from attribution.config import Settings
from attribution.models import MODELS

SAMPLE_SECONDS = 2.0  # between the two readings of the counters that give a rate


def report(settings: Settings) -> dict[str, Any]:
    """Services, the keeper, every job's figures, the result rows, every enabled model's figures,
    dead letters, and the problems that need a human (attribution/health.py)."""
    intent = keeper.read_intent(settings)
    problems: list[str] = []
    document: dict[str, Any] = {
        "services": [
            {"name": name, "state": state, "pid": pid or None, "restarts": restarts}
            for name, state, pid, restarts in stack.status(settings)
        ],
        "keeper": None,
        "jobs": [],
        "postgres": None,
        "problems": problems,
    }
    if intent is not None:
        document["keeper"] = {
            "job_should_be": intent.state,
            "note": intent.note or None,
            "last_action": keeper.read_status(settings).get("last_action"),
        }
    if stack.flink_overview(settings) is not None:
        for status in job.active_jobs(settings):
            figures, found = job_figures(
                settings, status.job_id, status.state, keeper_lag(settings, status.job_id, intent)
            )
            document["jobs"].append(
                {"name": status.name, "state": status.state, "job_id": status.job_id, **figures}
            )
            problems += found
    document["postgres"] = postgres_figures(settings, intent, problems)
    if intent is not None and intent.state == keeper.FAILED:
        problems.append(f"the keeper gave up on the job: {intent.note}")
    if intent is not None and intent.unwritten:
        problems.append(f"a drain failed: {intent.unwritten}")
    return document


def keeper_lag(settings: Settings, job_id: str, intent: keeper.Intent | None) -> list[tuple[float, float]]:
    """The keeper's recent lag samples of this job (growth needs a history), else none."""
    if intent is None or intent.job_id != job_id:
        return []
    return [(t, v) for t, v in keeper.read_status(settings).get("lag", [])]


def job_figures(
    settings: Settings, job_id: str, state: str, lag_samples: list[tuple[float, float]]
) -> tuple[dict[str, Any], list[str]]:
    """Business figures from the job's counters (two readings for rates), restarts, lag and
    checkpoints; and the problems found."""
    first = metrics.business_counts(metrics.scrape(settings), job_id)
    time.sleep(SAMPLE_SECONDS)
    samples = metrics.scrape(settings)
    now = metrics.business_counts(samples, job_id)

    def total(counts: dict, metric: str) -> float:
        return sum(counts.get(metric, {}).values())

    checkouts = total(now, "checkouts")
    details = job.rest_get(settings, f"/jobs/{job_id}")
    # Subtasks that have seen no watermark yet report Long.MIN_VALUE: left out.
    watermarks = [
        float(w["value"])
        for vertex in details["vertices"]
        if vertex["name"].startswith("IntervalJoin")
        for w in job.rest_get(settings, f"/jobs/{job_id}/vertices/{vertex['id']}/watermarks")
    ]
    watermarks = [w for w in watermarks if w > 0]
    restarts = health.restarts(settings, job_id)
    lag = metrics.pending_records(samples, job_id)
    if lag is not None:
        lag_samples = [*lag_samples, (time.time(), lag)]
    checkpoints = health.checkpoints(settings, job_id)
    latest = checkpoints.latest_completed
    figures = {
        "checkouts": checkouts,
        "checkouts_per_second": (checkouts - total(first, "checkouts")) / SAMPLE_SECONDS,
        "unknown_user": now.get("checkouts", {}).get("unknown", 0),
        # A checkout counts as unattributed once event time has passed it with no click.
        "unattributed": total(now, "checkouts_unattributed"),
        "latency_seconds": {
            q: v / 1000
            for q, v in sorted(metrics.latency_quantiles(samples, job_id).items(), key=lambda i: float(i[0]))
        },
        "late_events": dict(sorted(now.get("late_events", {}).items())),
        "malformed_records": dict(sorted(now.get("malformed_records", {}).items())),
        "event_time_lag_seconds": time.time() - min(watermarks) / 1000 if watermarks else None,
        "restarts": {
            "recent": restarts.recent,
            "window_minutes": health.WINDOW_SECONDS // 60,
            "total": restarts.total,
            "last_cause": restarts.last_cause,
            "last_cause_seconds_ago": restarts.last_ago,
        },
        "consumer_lag_records": lag,
        "last_checkpoint": None
        if not latest
        else {
            "id": latest["id"],
            "seconds_ago": checkpoints.completed_ago,
            "state_size_bytes": latest["state_size"],
            "duration_ms": latest["end_to_end_duration"],
            "failed_total": checkpoints.failed_total,
            "failed_recent": checkpoints.failed_recent,
        },
    }
    return figures, health.problems(settings, state, restarts, checkpoints, lag_samples)


def postgres_figures(settings: Settings, intent: keeper.Intent | None, problems: list[str]) -> dict[str, Any]:
    """The result rows, every enabled model's figures and the dead letters; `reachable` false
    with the error's name when Postgres does not answer (a stopped database is a normal answer)."""
    try:
        import psycopg2

        with psycopg2.connect(settings.psycopg_dsn(), connect_timeout=2) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT count(*), count(click_id), count(user_name) FROM {settings.sink_table}")
            rows, attributed, named = cur.fetchall()[0]
            dead = health.dead_letters(settings, conn)
            # The models of the job `make job` started, which may not be those of this shell.
            models = model_comparison(with_job_models(settings, intent), conn)
    except Exception as error:  # status is best effort
        return {"reachable": False, "error": type(error).__name__}
    problems += health.problems(settings, "", None, None, (), dead)
    return {
        "reachable": True,
        "results": {
            "table": settings.sink_table,
            "rows": rows,
            "attributed": attributed,
            "with_user_name": named,
        },
        "models": models,
        "dead_letters": {
            "table": settings.dead_letter_table,
            "total": dead.total,
            "last_minute": dead.last_minute,
            "per_minute_before": dead.per_minute_before,
        },
    }


def with_job_models(settings: Settings, intent: keeper.Intent | None) -> Settings:
    """The settings with ATTRIBUTION_MODELS as the keeper's job was started with."""
    models = intent.env.get("ATTRIBUTION_MODELS") if intent is not None else None
    return dataclasses.replace(settings, attribution_models=models) if models else settings


MODEL_COLUMNS = (
    "model",
    "checkouts",
    "attributed_checkouts",
    "attributed_share",
    "attributed_revenue",
    "avg_minutes_click_to_checkout",
    "clicks_credited_per_checkout",
)


def model_comparison(settings: Settings, conn: Any) -> list[dict[str, Any]]:
    """The enabled models' rows of the comparison view, in the registry's order; none when the
    schema predates the view (`make up` creates it)."""
    import psycopg2

    try:
        with conn.cursor() as cur:
            cur.execute("SET statement_timeout = '5s'")  # it scans the result tables
            cur.execute(
                f"SELECT {', '.join(MODEL_COLUMNS)} FROM {settings.model_comparison_view}"
                " WHERE model = ANY(%s)",
                (list(settings.models),),
            )
            rows = {row[0]: dict(zip(MODEL_COLUMNS, row, strict=True)) for row in cur.fetchall()}
    except psycopg2.Error:
        conn.rollback()
        return []
    return [rows[model] for model in settings.models if model in rows]


# --- as text --------------------------------------------------------------------------------------
def text(document: dict[str, Any]) -> list[str]:
    """The report as `make status` prints it."""
    lines = [] if document["services"] else ["  no stack running (supervisord is not up): `make up`"]
    for service in document["services"]:
        shown = f"{service['state']} (pid {service['pid']})" if service["pid"] else service["state"]
        lines.append(f"  {service['name']:<12} {shown:<22} restarted {service['restarts']}x after dying")
    kept = document["keeper"]
    if kept is not None:
        lines.append(
            f"  keeper: job should be {kept['job_should_be']}"
            + (f" ({kept['note']})" if kept["note"] else "")
        )
        if kept["last_action"]:
            lines.append(f"          last action: {kept['last_action']}")
    for figures in document["jobs"]:
        lines.append(f"  job {figures['name']}: {figures['state']} ({figures['job_id']})")
        lines += job_text(figures)
    lines += postgres_text(document["postgres"])
    problems = document["problems"]
    lines.append("  problems: none" if not problems else "  PROBLEMS (need a human):")
    lines += [f"  ! {problem}" for problem in problems]
    return lines


def job_text(figures: dict[str, Any]) -> list[str]:
    checkouts, unattributed = figures["checkouts"], figures["unattributed"]
    lines = [
        f"    checkouts: {checkouts:.0f} ({figures['checkouts_per_second']:.0f}/s), "
        f"unknown user {figures['unknown_user']:.0f}"
    ]
    if checkouts:
        attributed = checkouts - unattributed
        lines.append(
            f"    attributed: {attributed:.0f} ({100 * attributed / checkouts:.1f} %),"
            f" unattributed {unattributed:.0f}"
        )
    if figures["latency_seconds"]:
        shown = ", ".join(f"p{float(q) * 100:g} {v:.2f} s" for q, v in figures["latency_seconds"].items())
        lines.append(f"    end-to-end latency (datetime_occured to sink, last 10,000 rows): {shown}")
    for kind in ("late_events", "malformed_records"):
        counted = ", ".join(f"{k} {v:.0f}" for k, v in figures[kind].items()) or "none"
        lines.append(f"    {'late events' if kind == 'late_events' else 'malformed'}: {counted}")
    if figures["event_time_lag_seconds"] is not None:
        lines.append(
            f"    event-time lag (now - watermark into the join): {figures['event_time_lag_seconds']:.1f} s"
        )
    restarts = figures["restarts"]
    cause = ""
    if restarts["last_cause"]:
        cause = f"; last cause ({restarts['last_cause_seconds_ago']:.0f} s ago): {restarts['last_cause']}"
    lines.append(
        f"    restarts: {restarts['recent']} in the last {restarts['window_minutes']} min,"
        f" {restarts['total']} in all{cause}"
    )
    if figures["consumer_lag_records"] is not None:
        lines.append(f"    consumer lag: {figures['consumer_lag_records']:,.0f} records")
    latest = figures["last_checkpoint"]
    if latest:
        lines.append(
            f"    last checkpoint: #{latest['id']} {latest['seconds_ago']:.0f} s ago, "
            f"{latest['state_size_bytes'] / 2**20:.1f} MiB, {latest['duration_ms']} ms; "
            f"failed {latest['failed_total']} ({latest['failed_recent']} in the last "
            f"{figures['restarts']['window_minutes']} min)"
        )
    return lines


def postgres_text(figures: dict[str, Any]) -> list[str]:
    if not figures["reachable"]:
        return [f"  postgres: not reachable ({figures['error']})"]
    results, dead = figures["results"], figures["dead_letters"]
    lines = [
        f"  {results['table']}: {results['rows']} rows, {results['attributed']} attributed, "
        f"{results['with_user_name']} with user_name"
    ]
    lines += [f"  {model_line(**row)}" for row in figures["models"]]
    lines.append(
        f"  {dead['table']}: {dead['total']} rows, {dead['last_minute']} in the last minute "
        f"({dead['per_minute_before']:.1f}/min in the ten before)"
    )
    return lines


def model_line(
    model: str,
    checkouts: int | None,
    attributed_checkouts: int | None,
    attributed_share: Decimal | None,
    attributed_revenue: Decimal | None,
    avg_minutes_click_to_checkout: Decimal | None,
    clicks_credited_per_checkout: Decimal | None = None,
) -> str:
    """One model's figures, e.g. "last_click: 62.0% of 1,234 checkouts attributed, revenue 12,345.67,
    click 31.2 min before checkout" (a touches model: every touch, on average)."""
    touches = MODELS[model].shape == "touches"
    if checkouts:
        shown = f"{model}: {100 * (attributed_share or 0):.1f}% of {checkouts:,} checkouts attributed"
    elif attributed_checkouts:
        # Touches alone: no row for an unattributed checkout, so no denominator.
        one_click = " or ".join(m.name for m in MODELS.values() if m.shape == "one_click")
        shown = f"{model}: {attributed_checkouts:,} checkouts attributed (a share needs {one_click})"
    else:
        return f"{model}: no checkouts yet"
    shown += f", revenue {attributed_revenue or 0:,.2f}"
    if avg_minutes_click_to_checkout is not None:
        # The mean over attributed checkouts; a touches model's over every touch.
        shown += (
            f", {'touches' if touches else 'click'} {avg_minutes_click_to_checkout:.1f} min before checkout"
        )
    if touches and clicks_credited_per_checkout is not None:
        shown += f", {clicks_credited_per_checkout:.2f} clicks share each"
    return shown


def as_json(value: Any) -> Any:
    """For json.dumps: Postgres's decimals as numbers."""
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")
