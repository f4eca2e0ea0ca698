"""CSV: one row per flow, for spreadsheets and scripts. A plan (no probes) leaves out the result columns."""

from __future__ import annotations

import csv
import io

from csaudit.report.common import printable

PLAN_COLUMNS = ("id", "zone", "rule", "title", "source_role", "source_name", "source_address",
                "target_role", "target_name", "target_address", "protocol", "port", "port_end", "expect")
RESULT_COLUMNS = ("status", "observed", "reason", "vantage", "latency_ms", "waiver_reason", "waiver_expires")
TAIL_COLUMNS = ("notes", "citation")


def render_csv(flows: list[dict], results: bool = True) -> str:
    columns = PLAN_COLUMNS + (RESULT_COLUMNS if results else ()) + TAIL_COLUMNS
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for flow in flows:
        row = _row(flow)
        writer.writerow(["" if row.get(c) is None else printable(row[c]) for c in columns])
    return out.getvalue()


def _row(flow: dict) -> dict:
    waiver = flow.get("waiver") or {}
    return {
        **{k: v for k, v in flow.items() if not isinstance(v, dict | list)},
        **{f"{side}_{key}": flow[side][key] for side in ("source", "target") for key in ("role", "name", "address")},
        "waiver_reason": waiver.get("reason"),
        "waiver_expires": waiver.get("expires"),
        "notes": "; ".join(flow.get("notes") or ()),
    }
