"""JUnit XML: one testsuite per zone (the management tier is its own), one testcase per flow.

fail -> <failure>, error -> <error>, unverified and waived -> <skipped>, each with the reason,
so a CI server shows what failed and why, and counts only real failures.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from csaudit.report.common import detail, endpoint_label, port_label, printable, zone_label, zone_order

_COUNTED = {"fail": "failures", "error": "errors", "unverified": "skipped", "waived": "skipped"}


def render_junit(document: dict) -> str:
    flows = document["flows"]
    root = ET.Element("testsuites", name="csaudit")
    cloud = document.get("cloud", {})
    for zone in zone_order(document, flows):
        members = [f for f in flows if zone_label(f) == zone]
        suite = ET.SubElement(root, "testsuite", name=zone, **_counts(members),
                              timestamp=str(document.get("generated_at", "")))
        properties = ET.SubElement(suite, "properties")
        for name, value in (("cloud.endpoint", cloud.get("endpoint")), ("cloud.version", cloud.get("version")),
                            ("csaudit.version", document.get("tool_version"))):
            ET.SubElement(properties, "property", name=name, value=printable(value or ""))
        for flow in members:
            _testcase(suite, flow, zone)
    root.attrib.update(_counts(flows))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _counts(flows: list[dict]) -> dict[str, str]:
    counts = {"tests": len(flows), "failures": 0, "errors": 0, "skipped": 0}
    for flow in flows:
        if flow.get("status") in _COUNTED:
            counts[_COUNTED[flow["status"]]] += 1
    seconds = sum((f.get("latency_ms") or 0) for f in flows) / 1000
    return {**{k: str(v) for k, v in counts.items()}, "time": f"{seconds:.3f}"}


def _testcase(suite: ET.Element, flow: dict, zone: str) -> None:
    case = ET.SubElement(suite, "testcase", classname=printable(f"csaudit.{zone}.{flow['rule']}"),
                         name=printable(f"{flow['id']} ({flow['title']})"),
                         time=f"{(flow.get('latency_ms') or 0) / 1000:.3f}")
    status = flow.get("status")
    reason = printable(flow.get("reason") or "")
    if status in ("fail", "error"):
        outcome = ET.SubElement(case, "failure" if status == "fail" else "error", message=reason, type=status)
        outcome.text = printable(_facts(flow))
    elif status == "unverified":
        ET.SubElement(case, "skipped", message=f"unverified: {reason}")
    elif status == "waived":
        ET.SubElement(case, "skipped", message=printable(detail(flow)))


def _facts(flow: dict) -> str:
    return "\n".join([
        f"{endpoint_label(flow['source'])} -> {endpoint_label(flow['target'])} {port_label(flow)}",
        f"expect {flow['expect']}, observed {flow.get('observed')} (vantage {flow.get('vantage')})",
        *(f"note: {n}" for n in flow.get("notes") or ()),
        f"citation: {flow.get('citation', '')}",
    ])
