"""The HTML report: one self-contained file that works offline from file:// and asks no host for
anything (inline CSS, JS and SVG; a Content-Security-Policy of default-src 'none' lets the browser
load nothing else, and the page's script and stylesheet run only by their hashes).

It shows the summary and coverage, the failures grouped with their remedies (report/groups.py), the
vantages and findings, the topology coloured by status (report/svgdiagram.py), and a flow table the
script filters by status, zone, rule and vantage, and sorts.

Streaming like write_json: the flows are read twice from their source (a ResultLog at scale), never
held whole. The first pass groups the failures and indexes the diagram's objects; the second writes
the table's rows and collects the diagram's edges. The rows are a compact JSON array inside a
<script type="application/json"> (not run): each text cell is written once, and later rows give the
index of that text; a flow's id is left out (0) when it is the usual rule:source->target:port/proto.
The diagram is written after the rows, and CSS `order` shows it above the table.
Everything from the API (names, reasons) is escaped: html.escape in markup, and in the JSON `<`, `>`
and `&` as \\u escapes, so no text can close the script element.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable, Iterable
from html import escape
from importlib import resources
from json.encoder import encode_basestring_ascii
from typing import TextIO

from csaudit.model.results import STATUSES
from csaudit.report.common import STATUS_COLOURS, detail, port_label, printable, zone_label
from csaudit.report.diagram import ObjectIndex
from csaudit.report.groups import UNVERIFIED_ADVICE, FlowGroup, FlowGrouper, headline, objects_lead
from csaudit.report.svgdiagram import render_svg

COLUMNS = ("id", "status", "zone", "rule", "title", "source", "source_address", "target", "target_address",
           "port", "expect", "vantage", "detail")
ROW_BATCH = 2000
SHOWN_FINDINGS = 100  # a large cloud can have thousands; the JSON report has them all
_JSON_UNSAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def _asset(name: str) -> str:
    return resources.files("csaudit.report").joinpath(f"assets/{name}").read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _text(value) -> str:
    return escape(printable("" if value is None else value), quote=True)


class _Strings:
    """The shared texts of the rows: a text is written the first time, its index after that."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}

    def cell(self, value: str) -> str:
        """The cell as JSON text. Looked up before it is cleaned: most cells repeat, and printable() is
        the costly part (two texts that clean alike are two entries, which the reader does not mind)."""
        index = self._index.get(value)
        if index is not None:
            return str(index)
        self._index[value] = len(self._index)
        return _json_text(printable(value))


def _json_text(text: str) -> str:
    return encode_basestring_ascii(text).translate(_JSON_UNSAFE)


def _row(flow: dict, strings: _Strings) -> str:
    """One row as JSON text: [id or 0, then a cell per COLUMNS[1:]]."""
    source, target = flow["source"], flow["target"]
    port = port_label(flow)
    usual_id = f"{flow['rule']}:{source['name']}->{target['name']}:{port}"
    values = (flow.get("status") or "planned", zone_label(flow), flow["rule"], flow.get("title") or "",
              source["name"], source.get("address") or "", target["name"], target.get("address") or "",
              port, flow["expect"], flow.get("vantage") or "", detail(flow))
    cells = ",".join(strings.cell(value) for value in values)
    return "[" + ("0" if flow["id"] == usual_id else _json_text(printable(flow["id"]))) + "," + cells + "]"


def render_html(document: dict) -> str:
    """The whole page from a document held in memory (saved reports, tests)."""
    buffer = io.StringIO()
    write_html({k: v for k, v in document.items() if k != "flows"}, lambda: iter(document["flows"]), buffer)
    return buffer.getvalue()


def write_html(head: dict, flows: Callable[[], Iterable[dict]], out: TextIO, groups: list[FlowGroup] | None = None) -> None:
    """`flows`: a function giving the flows afresh each call (it is called twice). `groups`: the
    failure groups when the caller has them already (a ResultLog groups as the run appends)."""
    grouper = FlowGrouper() if groups is None else None
    objects = ObjectIndex()
    for flow in flows():
        if grouper is not None:
            grouper.add(flow)
        objects.add(flow)
    groups = grouper.groups() if grouper is not None else groups
    edges = objects.layout(head)
    # the status colours are the diagrams' (report/common.py), so the page's and the SVG's agree
    style = _asset("report.css") + "".join(f".s-{status}{{color:{colour}}}" for status, (colour, _) in STATUS_COLOURS.items())
    script = _asset("report.js")
    cloud = head.get("cloud", {})
    title = f"csaudit report: {cloud.get('endpoint') or '(offline)'}"
    out.write(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        f"style-src {_csp_hash(style)}; script-src {_csp_hash(script)}\">\n"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{_text(title)}</title>\n"
        f"<style>{style}</style></head>\n<body>\n")
    out.write(_header(head))
    out.write(_groups_section(groups))
    out.write(_vantages_section(head))
    out.write(_table_section())
    out.write('<script type="application/json" id="flow-data">{"columns":'
              + json.dumps(COLUMNS) + ',"rows":[\n')
    strings, batch, first = _Strings(), [], True
    for flow in flows():
        edges.add(flow)
        batch.append(_row(flow, strings))
        if len(batch) >= ROW_BATCH:
            out.write(("" if first else ",\n") + ",\n".join(batch))
            batch, first = [], False
    if batch:
        out.write(("" if first else ",\n") + ",\n".join(batch))
    out.write("\n]}</script>\n")
    diagram = edges.diagram()
    out.write(f'<section id="diagram" class="diagram"><h2>Topology</h2><p class="legend">{_text(diagram.legend())}. '
              "Hover an edge or a box for its flows; a box's border is the worst status of its flows.</p>"
              f'<div class="scroll">{render_svg(diagram)}</div></section>\n')
    out.write(f"<script>{script}</script>\n</body></html>\n")


def _header(head: dict) -> str:
    cloud, summary = head.get("cloud", {}), head.get("summary", {})
    cells = "".join(f'<td class="count s-{status}" data-status="{status}">{summary.get(status, 0):,}</td>' for status in STATUSES)
    names = "".join(f'<th class="s-{status}">{status}</th>' for status in STATUSES)
    zones = ", ".join(_text(z["name"]) + (f" (listing failed: {_text(z.get('error'))})" if z.get("state") == "error" else "")
                      for z in head.get("zones", []))
    text = (f'<header id="summary" class="summary"><h1>csaudit report</h1>'
            f"<p>Cloud {_text(cloud.get('endpoint') or '(offline)')}, version {_text(cloud.get('version') or 'unknown')} "
            f"({_text(cloud.get('api_mode') or 'offline')} API), generated {_text(head.get('generated_at', ''))} "
            f"by csaudit {_text(head.get('tool_version', ''))}"
            + (f" in {head['duration_seconds']:g} s" if head.get("duration_seconds") is not None else "")
            + (f". Zones: {zones}" if zones else "") + ".</p>"
            f'<table class="counts"><tr>{names}</tr><tr>{cells}</tr></table>')
    coverage = summary.get("coverage") or {}
    if coverage.get("flows"):
        share = 100 * coverage["verified"] / coverage["flows"]
        text += (f'<p id="coverage">Coverage: <b>{coverage["verified"]:,}</b> of <b>{coverage["flows"]:,}</b> '
                 f"flows verified ({share:.0f} %).</p><ul>")
        text += "".join(f"<li>{count:,} {_text(gap)}: {_text(UNVERIFIED_ADVICE.get(gap, gap))}</li>"
                        for gap, count in coverage.get("unverified", {}).items())
        text += "</ul>"
    return text + "</header>\n"


def _groups_section(groups: list[FlowGroup]) -> str:
    if not groups:
        return '<section id="groups" class="groups"><h2>What is wrong</h2><p>Nothing: every flow passed.</p></section>\n'
    parts = ['<section id="groups" class="groups"><h2>What is wrong, grouped by rule and cause</h2>']
    for group in groups:
        names = ", ".join(_text(name) for name in group.objects) + (f", … +{group.more:,} more" if group.more else "")
        reason = group.example.get("reason") or ""
        parts.append(
            f'<details class="group s-{group.status}" data-status="{group.status}" data-rule="{_text(group.rule)}"'
            f'{" open" if group.status in ("fail", "error") else ""}>'
            f'<summary><span class="tag s-{group.status}">{group.status.upper()}</span> {_text(headline(group))}</summary>'
            f"<p>{_text(objects_lead(group))}: {names}</p>"
            + (f'<p class="example">e.g. {_text(reason)}</p>' if reason else "")
            + _remedy(group)
            + f'<button type="button" class="show" data-status="{group.status}" data-rule="{_text(group.rule)}">'
              "show these flows in the table</button></details>")
    return "".join(parts) + "</section>\n"


def _remedy(group: FlowGroup) -> str:
    if group.advice:
        return f'<p class="advice">To verify them: {_text(group.advice)}</p>'
    remedy = group.remedy
    if not remedy:
        return ""
    commands = "\n".join(remedy.get("commands") or ())
    return ('<div class="remedy"><p><b>What to do</b> on ' + _text(remedy.get("on")) + ": " + _text(remedy.get("check")) + "</p>"
            + (f"<pre><code>{_text(commands)}</code></pre>" if commands else "")
            + (f'<p class="citation">Source: {_text(remedy.get("citation"))}</p>' if remedy.get("citation") else "") + "</div>")


def _vantages_section(head: dict) -> str:
    parts = ['<section id="vantages" class="vantages"><h2>Vantages</h2>']
    vantages = head.get("vantages") or []
    if vantages:
        parts.append("<table><tr><th>vantage</th><th>state</th><th>probes</th><th>detail</th></tr>")
        parts += [f"<tr><td>{_text(v['name'])}</td><td>{_text(v['state'])}</td><td>{v.get('probes', 0):,}</td>"
                  f"<td>{_text(v.get('reason') or (('ran with ' + v['engine']) if v.get('engine') else ''))}</td></tr>"
                  for v in vantages]
        parts.append("</table>")
    else:
        parts.append("<p>None recorded.</p>")
    findings = head.get("findings") or []
    if findings:
        parts.append(f"<h3>Findings: the API and the network disagree ({len(findings):,})</h3><ul>")
        parts += [f"<li>{_text(f['message'])}</li>" for f in findings[:SHOWN_FINDINGS]]
        parts.append("</ul>" + (f"<p>+{len(findings) - SHOWN_FINDINGS:,} more in the JSON report.</p>"
                                if len(findings) > SHOWN_FINDINGS else ""))
    return "".join(parts) + "</section>\n"


def _table_section() -> str:
    filters = "".join(f'<label>{name} <select id="filter-{name}" data-column="{name}"><option value="">any</option></select></label>'
                      for name in ("status", "zone", "rule", "vantage"))
    headings = "".join(f'<th data-sort="{name}" tabindex="0">{name.replace("_", " ")}</th>'
                       for name in ("status", "zone", "rule", "source", "target", "port", "expect", "vantage", "detail", "id"))
    return ('<section id="flows" class="flows"><h2>Flows</h2>'
            f'<form id="filters" class="filters">{filters}'
            '<label>text <input id="filter-text" type="search" placeholder="name, address, reason"></label></form>'
            '<p class="pager"><span id="shown"></span> <button type="button" id="previous">previous</button> '
            '<button type="button" id="next">next</button></p>'
            f'<table id="flow-table"><thead><tr>{headings}</tr></thead><tbody></tbody></table>'
            '<noscript><p>The flow table needs JavaScript; the JSON report has every flow.</p></noscript></section>\n')

