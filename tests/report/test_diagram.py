"""Diagrams that render at real size (issue 16, item 5): objects of one role beyond a threshold in a
zone are drawn as one node, and graphviz ranks with newrank. The large test audits a generated cloud
of 2 zones with 620 routers through the embedded lab and renders its DOT with the real `dot`."""

import subprocess
import xml.etree.ElementTree as ET

import pytest

from csaudit.report.diagram import COLLAPSE_ABOVE, build_diagram, render_dot, render_mermaid
from tests.conftest import find_program

MERMAID_MAX_TEXT, MERMAID_MAX_EDGES = 50_000, 500  # mermaid's maxTextSize and maxEdges defaults


def router_flows(routers: int, zone: str = "zone-a") -> list[dict]:
    """Each router of a zone to the one MS on 3922 (a fail for the first three), and the MS to the router."""
    flows = []
    for n in range(routers):
        vr = {"role": "vr", "name": f"r-{n}-VM", "address": f"192.0.2.{n + 1}"}
        ms = {"role": "ms", "name": "ms1", "address": "198.51.100.1"}
        flows.append({"id": f"F1:{n}", "rule": "F1", "zone": zone, "source": ms, "target": vr, "protocol": "tcp",
                      "port": 3922, "port_end": None, "expect": "open", "status": "fail" if n < 3 else "pass"})
        flows.append({"id": f"F2:{n}", "rule": "F2", "zone": zone, "source": vr, "target": ms, "protocol": "tcp",
                      "port": 8096, "port_end": None, "expect": "closed", "status": "pass"})
    return flows


def test_a_role_up_to_the_threshold_keeps_its_objects():
    diagram = build_diagram({"flows": router_flows(COLLAPSE_ABOVE)})
    assert sorted(n.name for n in diagram.nodes if n.role == "vr") == sorted(f"r-{n}-VM" for n in range(COLLAPSE_ABOVE))
    assert all(n.members == 1 for n in diagram.nodes) and not any(e.collapsed for e in diagram.edges)
    assert "drawn as one" not in diagram.legend()


def test_a_role_beyond_the_threshold_is_one_node_with_the_flows_counted_on_its_edges():
    diagram = build_diagram({"flows": router_flows(COLLAPSE_ABOVE + 1)})
    routers = [n for n in diagram.nodes if n.role == "vr"]
    assert [(n.name, n.members, n.group) for n in routers] == [(f"vr × {COLLAPSE_ABOVE + 1}", COLLAPSE_ABOVE + 1, "zone-a")]
    ms = next(n for n in diagram.nodes if n.role == "ms")
    assert ms.members == 1 and ms.group == "management tier"
    labels = {(e.source, e.target, e.status): e.label for e in diagram.edges}
    assert labels == {(ms.id, routers[0].id, "fail"): "3922/tcp (3 flows)",
                      (ms.id, routers[0].id, "pass"): f"3922/tcp ({COLLAPSE_ABOVE - 2} flows)",
                      (routers[0].id, ms.id, "pass"): f"deny 8096/tcp ({COLLAPSE_ABOVE + 1} flows)"}
    assert sum(e.flows for e in diagram.edges) == 2 * (COLLAPSE_ABOVE + 1)
    assert "role × N: N objects drawn as one" in diagram.legend()


def test_each_zone_collapses_its_own_objects():
    flows = router_flows(20, "zone-a") + router_flows(5, "zone-b")
    for flow in flows[40:]:  # zone-b's routers would share zone-a's names: rename them
        for side in ("source", "target"):
            if flow[side]["role"] == "vr":
                flow[side] = {**flow[side], "name": flow[side]["name"] + "-b"}
    diagram = build_diagram({"flows": flows, "zones": [{"name": "zone-a"}, {"name": "zone-b"}]})
    assert diagram.groups[:2] == ("zone-a", "zone-b") and set(diagram.groups) == {"zone-a", "zone-b", "management tier"}
    routers = sorted((n.group, n.name) for n in diagram.nodes if n.role == "vr")
    assert routers[0] == ("zone-a", "vr × 20") and len(routers) == 6 and all(g == "zone-b" for g, _ in routers[1:])


@pytest.mark.programs("dot")
def test_two_zones_with_620_routers_render_with_graphviz(cli, tmp_path):
    from csaudit.lab import Lab, generate_topology

    with Lab(generate_topology(2, 1, 310)) as lab:
        lab.write_ini(tmp_path / "cloudstack.ini")
        result = cli("run", "--no-remote", "--timeout", "1", "--format", "dot",
                     "--json", str(tmp_path / "report.json"), "--mermaid", str(tmp_path / "report.mmd"))
    assert result.exit_code == 1, result.stderr  # nothing listens on the generated cloud: failures
    document = __import__("json").loads((tmp_path / "report.json").read_text())
    assert len(document["flows"]) > 3000
    assert render_dot(document) == result.stdout
    rendered = subprocess.run([find_program("dot"), "-Tsvg"], input=result.stdout, capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr[:2000]
    assert "trouble in init_rank" not in rendered.stderr
    svg = ET.fromstring(rendered.stdout)
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert texts.count("vr × 310") == 2  # one node of routers per zone
    assert 'stroke="#c62828"' in rendered.stdout  # the failures are drawn red
    diagram = build_diagram(document)
    assert sum(e.flows for e in diagram.edges) == len(document["flows"])  # every flow is on an edge
    assert len(diagram.nodes) < 50
    mermaid = (tmp_path / "report.mmd").read_text()
    assert mermaid == render_mermaid(document)
    assert len(mermaid) < MERMAID_MAX_TEXT and len(diagram.edges) < MERMAID_MAX_EDGES
