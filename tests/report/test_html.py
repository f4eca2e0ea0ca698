"""The HTML report without a browser: escaping of everything from the API, the compact rows read back
the way the page's script reads them, the Content-Security-Policy hashes, and streaming (two passes
over a source of flows, never a list). tests/test_html_browser.py opens it in a real Chromium."""

import base64
import dataclasses
import hashlib
import io
import json
import re

from csaudit.model.flows import Endpoint
from csaudit.report.htmlpage import COLUMNS, render_html, write_html
from tests.golden_report import ODD_NAME, golden_document, golden_results

HOSTILE = '<script>alert("x")</script><img src=http://198.51.100.9/x.png>'


def decode_rows(page: str) -> list[dict]:
    """The flow rows as report/assets/report.js decodes them (a text the first time, its index after)."""
    data = re.search(r'<script type="application/json" id="flow-data">(.*?)</script>', page, re.S).group(1)
    table = json.loads(data)
    assert table["columns"] == list(COLUMNS)
    strings, flows = [], []
    for row in table["rows"]:
        flow = {}
        for name, cell in zip(COLUMNS[1:], row[1:], strict=True):
            if isinstance(cell, str):
                strings.append(cell)
            else:
                cell = strings[cell]
            flow[name] = cell
        flow["id"] = row[0] or f"{flow['rule']}:{flow['source']}->{flow['target']}:{flow['port']}"
        flows.append(flow)
    return flows


def hostile_document() -> dict:
    results = []
    for result in golden_results():
        flow = result.flow
        hostile_target = Endpoint(flow.target.role, HOSTILE, flow.target.address)
        results.append(dataclasses.replace(result, flow=dataclasses.replace(flow, target=hostile_target, id=flow.id + HOSTILE),
                                           reason=HOSTILE + " & </script>"))
    return golden_document(tuple(results))


def test_every_flow_reads_back_from_the_compact_rows():
    document = golden_document()
    flows = decode_rows(render_html(document))
    assert [f["id"] for f in flows] == [f["id"] for f in document["flows"]]
    assert [f["status"] for f in flows] == [f["status"] for f in document["flows"]]
    odd = next(f for f in flows if f["target"] == ODD_NAME)
    assert odd["zone"] == "zone-west" and odd["rule"] == "F23" and odd["port"] == "2049/tcp"
    assert next(f for f in flows if f["rule"] == "F34")["port"] == "5900-6100/tcp"
    assert next(f for f in flows if f["status"] == "waived")["detail"].startswith("waived until 2099-04-30")


def test_nothing_from_the_api_becomes_markup_or_leaves_the_data():
    document = hostile_document()
    page = render_html(document)
    assert "<script>alert" not in page and "<img" not in page
    assert page.count("<script") == 2 and page.count("</script>") == 2  # the data and the page's own script, nothing else
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page  # the failure groups name the target, escaped
    flows = decode_rows(page)
    assert all(f["target"] == HOSTILE and f["id"].endswith(HOSTILE) for f in flows)
    assert all(f["detail"].startswith(HOSTILE) for f in flows if f["status"] != "waived")


def test_the_policy_allows_only_the_pages_own_script_and_style():
    page = render_html(golden_document())
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert policy.startswith("default-src 'none'; ")

    def digest(text):
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    script = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert len(script) == 1
    assert f"style-src {digest(style)}" in policy and f"script-src {digest(script[0])}" in policy
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing by URL (the SVG namespace is an attribute, not a load)


def test_the_groups_carry_their_remedies_and_the_diagram_its_colours():
    page = render_html(golden_document())
    assert page.index('id="summary"') < page.index('id="groups"') < page.index('id="flows"')
    assert "exportfs -v" in page and "the NFS server &lt;nfs&gt; &amp; co|*x*" in page  # NFS_REMEDY, escaped
    assert 'class="count s-fail" data-status="fail">3<' in page
    svg = re.search(r"<svg .*?</svg>", page, re.S).group(0)
    assert 'stroke="#c62828"' in svg and 'stroke="#2e7d32"' in svg and 'stroke-dasharray' in svg


def test_the_flows_stream_from_a_source_read_twice():
    document = golden_document()
    head = {k: v for k, v in document.items() if k != "flows"}
    calls = []

    def flows():
        calls.append(1)
        return (flow for flow in document["flows"])  # a generator: read once, like a ResultLog reader

    buffer = io.StringIO()
    write_html(head, flows, buffer)
    assert len(calls) == 2 and buffer.getvalue() == render_html(document)
