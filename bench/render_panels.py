"""Renders panels of the Grafana dashboard (grafana/dashboards/checkout-attribution.json) from the
embedded stack's Prometheus into a PNG, for places where Grafana cannot run: the same queries,
over the last --minutes of a real run. Only the Prometheus time series: the table of the
attribution models reads Postgres (`make status` prints it).

    .venv/bin/python bench/render_panels.py --minutes 15 --out docs/dashboard.png
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import UTC, datetime

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import requests

from attribution.config import PROJECT_ROOT, Settings, settings_or_exit

DASHBOARD = PROJECT_ROOT / "grafana" / "dashboards" / "checkout-attribution.json"


def query_range(settings: Settings, expr: str, start: float, end: float, step: int) -> list[dict]:
    response = requests.get(
        f"http://127.0.0.1:{settings.prometheus_port}/api/v1/query_range",
        params={"query": expr, "start": str(start), "end": str(end), "step": str(step)},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["data"]["result"]


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), template)[:40]


def prometheus_panels(dashboard: dict) -> list[dict]:
    """The time series panels with their Prometheus queries (as "prometheus_targets"). Other panels
    (rows, the Postgres table "Attribution models") have nothing to draw from Prometheus: left out."""
    panels = []
    for panel in dashboard["panels"]:
        panel_source = panel.get("datasource") or {"type": "prometheus"}  # the default data source
        targets = [
            t
            for t in panel.get("targets", [])
            if (t.get("datasource") or panel_source).get("type") == "prometheus" and t.get("expr")
        ]
        if panel["type"] == "timeseries" and targets:
            panels.append({**panel, "prometheus_targets": targets})
    return panels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=15)
    parser.add_argument("--out", default=str(PROJECT_ROOT / "docs" / "dashboard.png"))
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    panels = prometheus_panels(json.loads(DASHBOARD.read_text()))
    end = time.time()
    start = end - args.minutes * 60
    cols = 3
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        for target in panel["prometheus_targets"]:
            for series in query_range(settings, target["expr"], start, end, 10):
                times = [datetime.fromtimestamp(float(t), UTC) for t, _ in series["values"]]
                values = [float(v) for _, v in series["values"]]
                ax.plot(times, values, label=legend(target.get("legendFormat", ""), series["metric"]))
        ax.set_title(f"{panel['title']} [{panel['fieldConfig']['defaults']['unit']}]", fontsize=9)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="upper left")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle("Checkout attribution: dashboard panels from Prometheus (embedded stack, UTC)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
