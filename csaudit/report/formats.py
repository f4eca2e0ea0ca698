"""Renderers of a report document (csaudit/report/v1) and of a flow plan, by format name.

They work from the JSON document rather than from live objects, so a saved report renders the
same way as a fresh one. The table lives in csaudit/report.py: it reads the live results.
"""

from __future__ import annotations

from collections.abc import Callable

from csaudit.report.csvtable import render_csv
from csaudit.report.diagram import render_dot, render_mermaid
from csaudit.report.document import render_json
from csaudit.report.firewall import render_iptables, render_nft
from csaudit.report.htmlpage import render_html
from csaudit.report.junit import render_junit
from csaudit.report.markdown import render_markdown


def _prometheus(document: dict) -> str:
    from csaudit.report.prometheus import render_prometheus  # prometheus_client loads only when this format is asked for

    return render_prometheus(document)


_REPORT: dict[str, Callable[[dict], str]] = {
    "json": render_json,
    "junit": render_junit,
    "csv": lambda document: render_csv(document["flows"]),
    "markdown": render_markdown,
    "mermaid": render_mermaid,
    "dot": render_dot,
    "prometheus": _prometheus,
    "html": render_html,
}
_PLAN: dict[str, Callable[[list[dict]], str]] = {
    "json": lambda flows: render_json({"flows": flows}),
    "csv": lambda flows: render_csv(flows, results=False),
    "nft": render_nft,
    "iptables": render_iptables,
    "mermaid": lambda flows: render_mermaid({"flows": flows}),
    "dot": lambda flows: render_dot({"flows": flows}),
}
REPORT_FORMATS = ("table", *_REPORT)  # `run` and `demo`
FILE_FORMATS = tuple(_REPORT)  # each also has its own --FORMAT FILE option
PLAN_FORMATS = ("table", *_PLAN)  # `flows`


def render_report(fmt: str, document: dict) -> str:
    return _REPORT[fmt](document)


def render_plan(fmt: str, flows: list[dict]) -> str:
    return _PLAN[fmt](flows)
