"""The attribution models: one record each, the only list of them.

Config (ATTRIBUTION_MODELS), the SQL templates (code/process/_attribution_models.sql, code/sink/
models.sql), the schema (postgres/init.sql), `make status`, the comparison view, the bench and the
tests all iterate over MODELS. Adding a model: docs/models.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# one_click: one row per checkout, the winning click or NULL (upserted by checkout_id).
# touches: one row per qualifying click of a checkout (none when no click qualifies); a view of
# the written table adds each touch's credit when it is read.
Shape = Literal["one_click", "touches"]


@dataclass(frozen=True)
class Model:
    name: str  # its ATTRIBUTION_MODELS value, its SQL macro and the pipeline view of its rows
    shape: Shape
    table: str  # the table or view users read, in the schema of SINK_TABLE
    written_table: str  # the table the job writes (and the name of its Flink sink table)
    summary: str
    # one_click: which click wins, by (click_time, click_id); the trigger that keeps the better
    # attribution in Postgres compares the same way.
    order: Literal["ASC", "DESC"] | None = None


# In the order their statements are rendered; the first enabled one is timed by the latency metric.
MODELS: dict[str, Model] = {
    model.name: model
    for model in (
        Model(
            "first_click",
            "one_click",
            table="attributed_checkouts",
            written_table="attributed_checkouts",
            summary="the earliest qualifying click (ties: the smallest click_id)",
            order="ASC",
        ),
        Model(
            "last_click",
            "one_click",
            table="attributed_checkouts_last_click",
            written_table="attributed_checkouts_last_click",
            summary="the latest qualifying click (ties: the largest click_id)",
            order="DESC",
        ),
        Model(
            "linear",
            "touches",
            table="attribution_touches",
            written_table="attribution_touches_clicks",
            summary="every qualifying click, an equal share of total_amount",
        ),
        Model(
            "position_based",
            "touches",
            table="attribution_touches_position_based",
            written_table="attribution_touches_position_based_clicks",
            summary="40 % to the first click, 40 % to the last, 20 % shared by those between",
        ),
        Model(
            "time_decay",
            "touches",
            table="attribution_touches_time_decay",
            written_table="attribution_touches_time_decay_clicks",
            summary="each click's weight halves every TIME_DECAY_HALF_LIFE_SECONDS before the checkout",
        ),
    )
}

# SINK_TABLE, the original project's setting, names the primary model's table; every other
# model's table is in the same schema.
PRIMARY = "first_click"
