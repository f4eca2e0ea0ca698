"""Small versions of bench/ (issue 8) as correctness checks: no timing assertions here.

(a) 200 loopback targets: csaudit's local probe states agree with nmap -sT per target.
(b) ~20 targets whose SYNs nft drops inside a netns the test makes: every one ends as timeout,
    and the namespace is gone afterwards, also when the block inside fails.
(c) discovery on a small generated cloud: `csaudit run` over every zone, zone by zone, asks for
    no more pages than a perfect client (+15), and its streamed JSON report holds every flow.
(d) remote vantages: 1 and 3 real sshds, one login each, every vantage answers, and a port that
    drops SYNs ends as timeout from each.
(e) `csaudit serve` over 2 audit cycles of the demo cloud: every audit completes, every scrape parses,
    scrapes land both during an audit and between two, and SIGTERM stops it with exit 0.
(g) the terminal report on two generated clouds, one 3x the other: the same number of lines (it
    groups by rule and cause, so its length does not grow with the cloud), under 300, none over 120
    columns; bench/report.py measures it at 10 x 2,000 x 5,000.
(h) the HTML report and the diagram at scale (bench/html.py) on a small generated cloud: every flow is a
    row of the page, and graphviz renders the collapsed DOT of the same run.
(f) firewall checks (bench/firewall.py) on 50 hosts and a 200-rule ruleset loaded with nft: every flow
    from a known source gets a verdict, and the chain index agrees with a plain walk of every rule.

The checks that need nmap, root, ip, nft or sshd carry the programs, root and netns marks: without
those they skip and say why, and under CI (or CSAUDIT_TESTS_REQUIRE_ALL=1) they fail (tests/conftest.py).
"""

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # bench/ is not an installed package

from bench import nmap  # noqa: E402
from bench.loopback import LoopbackTargets  # noqa: E402
from bench.netns import DropNamespace, namespaces  # noqa: E402
from csaudit.model.probes import ProbeOptions, ProbeTarget  # noqa: E402
from csaudit.vantage.local import LocalVantage  # noqa: E402
from tests.conftest import connect_observations  # noqa: E402

XML = """<?xml version="1.0"?><nmaprun><host><address addr="127.77.0.1" addrtype="ipv4"/><ports>
<extraports state="closed" count="3"><extrareasons reason="conn-refused" count="3" proto="tcp" ports="20001-20002,20005"/></extraports>
<port protocol="tcp" portid="20003"><state state="open" reason="syn-ack"/></port>
<port protocol="tcp" portid="20004"><state state="filtered" reason="no-response"/></port>
</ports></host><host><address addr="127.77.0.2" addrtype="ipv4"/><ports>
<extraports state="closed" count="2"><extrareasons reason="conn-refused" count="2"/></extraports>
<port protocol="tcp" portid="20003"><state state="open" reason="syn-ack"/></port></ports></host></nmaprun>"""


def test_nmap_xml_reading_covers_listed_collapsed_and_legacy_ports():
    states = nmap.parse(XML)
    assert [states[("127.77.0.1", p)] for p in range(20001, 20006)] == ["closed", "closed", "open", "filtered", "closed"]
    assert states[("127.77.0.2", 20003)] == "open"
    assert states[("127.77.0.2", None)] == "closed"  # an nmap without extrareasons ports=: the single extraports state


def test_nmap_command_covers_exactly_the_targets():
    assert nmap.port_list([7, 1, 2, 3, 9, 10]) == "1-3,7,9-10"
    assert nmap.expand("1-3,7,9-10") == [1, 2, 3, 7, 9, 10]
    targets = [ProbeTarget(a, p) for a in ("127.0.0.2", "127.0.0.3") for p in (5, 6)] + [ProbeTarget("127.0.0.4", 5)]
    assert sorted(nmap.groups(targets)) == [(["127.0.0.2", "127.0.0.3"], [5, 6]), (["127.0.0.4"], [5])]
    with pytest.raises(ValueError):
        nmap.groups([ProbeTarget("127.0.0.2", 5, source="127.0.0.9")])  # nmap -sT cannot bind a source


@pytest.mark.programs("nmap")
def test_200_loopback_targets_csaudit_agrees_with_nmap_per_target():
    with LoopbackTargets(addresses=2, ports=100, open_ports=20) as lab:
        assert len(lab.targets) == 200 and len(lab.listeners) == 40
        ours = LocalVantage().probe(lab.targets, ProbeOptions())
        lab.drain()
        theirs, _ = nmap.scan(lab.targets)
        expected = lab.expected
    differ = [(t, ours[t].state, theirs[t], expected[t]) for t in lab.targets if not ours[t].state == theirs[t] == expected[t]]
    assert differ == []
    assert {ours[t].state for t in lab.targets} == {"open", "refused"}
    assert not lab.listeners  # closed on exit


@pytest.mark.netns
@pytest.mark.programs("nft")
def test_dropped_syns_in_a_netns_all_end_as_timeout_and_the_netns_is_removed():
    with DropNamespace(range(40000, 40020)) as ns:
        assert ns.exists() and ns.address.startswith("10.213.")
        results = connect_observations(ns.targets, timeout=0.5, concurrency=ProbeOptions().concurrency)
    assert [results[t].state for t in ns.targets] == ["timeout"] * 20
    assert "0.5 s" in results[ns.targets[0]].reason
    assert not ns.exists()
    assert ns.name not in namespaces()


@pytest.mark.netns
@pytest.mark.programs("nft")
def test_the_netns_is_removed_when_the_benchmark_fails_inside():
    with pytest.raises(KeyboardInterrupt):  # what Ctrl-C (and SIGTERM, in bench/run) raises
        with DropNamespace(range(40000, 40002)) as ns:
            assert ns.exists()
            raise KeyboardInterrupt
    assert not ns.exists()
    assert ns.name not in namespaces()


def test_small_discovery_at_scale_pages_once_and_reports_every_flow(monkeypatch):
    from bench import scale

    reports = []
    real_run = scale.subprocess.run

    def keep_report(argv, **kwargs):
        done = real_run(argv, **kwargs)
        output = argv[argv.index("--output") + 1]
        reports.append(json.loads(pathlib.Path(output).read_text()))
        return done

    monkeypatch.setattr(scale.subprocess, "run", keep_report)
    result = scale.discovery_at_scale(3, 30, 60, timeout=0.5)
    assert result["exit"] in (0, 1), result["stderr"]
    assert result["requests"] <= result["pages_needed"] + 15
    [report] = reports
    coverage = report["summary"].pop("coverage")
    assert len(report["flows"]) == int(result["flows"]) == sum(report["summary"].values()) == coverage["flows"]
    assert [z["name"] for z in report["zones"]] == sorted(z["name"] for z in report["zones"])
    zones_in_order = [f["zone"] or "" for f in report["flows"]]
    assert zones_in_order == sorted(zones_in_order)  # management tier first, then zone by zone


@pytest.mark.root
@pytest.mark.programs("sshd")
def test_small_remote_vantages_one_login_each(capsys):
    from bench import remote

    # It raises unless every vantage answered, and unless each probe of the port that drops SYNs timed out.
    assert remote.main(["--hosts", "1", "3", "--concurrency", "2", "--waiting-concurrency", "3"]) == 0
    rows = [line.split("  ") for line in capsys.readouterr().out.splitlines()[2:]]
    rows = [[cell.strip() for cell in row if cell.strip()] for row in rows]
    assert [(row[0], row[1], row[6]) for row in rows] == [  # workload, vantages, SSH logins
        ("instant", "1", "1"), ("instant", "1", "1"), ("instant", "3", "3"), ("waits 2 s", "1", "1"), ("waits 2 s", "3", "3"),
        # a run in three parts (the management tier, two zones): two MSs and the outside vantage, one login each
        ("3 parts", "3", "3"), ("3 parts + 2 MS + outside", "6", "6")]


@pytest.mark.root
def test_small_serve_benchmark_completes_every_cycle_and_stops_cleanly(capsys):
    from bench import serve

    assert serve.main(["--cycles", "2", "--interval", "4"]) == 0  # 4 s: an audit of the demo takes ~2.7 s, the rest is idle; 1 if an audit failed, a scrape broke or the exit was not 0
    table = {row.split("|")[1].strip(): row.split("|")[2].strip() for row in capsys.readouterr().out.splitlines()[3:]}
    [cycles] = [value for name, value in table.items() if name.startswith("audit cycles (demo cloud, ")]
    assert cycles.startswith("2 in ")  # the demo cloud's flows, probed from here
    assert {"CPU per cycle (cycles 1 to last)", "resident memory at cycle 1", "resident memory at cycle 2"} <= set(table)
    assert table["/metrics while an audit runs: median / p95 / max (n)"] != "-" != table["/metrics while idle: median / p95 / max (n)"]


@pytest.mark.netns
@pytest.mark.programs("nft")
def test_firewall_benchmark_small_every_flow_gets_a_verdict_and_the_index_agrees_with_the_plain_walk():
    from bench import firewall

    result = firewall.measure(hosts=50, rules=200, routers=50)
    table, ok, notes = firewall.table_of(result)
    assert ok, notes
    assert result["flows"] > 1000 and all(run["sample_agrees"] for run in result["runs"])
    big = result["runs"][1]
    assert big["rules"] >= 190 and {"accepted", "dropped", "rejected"} <= set(big["verdicts"])
    assert big["verdicts"].get("unknown from a known source", 0) == 0


def test_the_terminal_report_does_not_grow_with_the_cloud(cli, tmp_path, monkeypatch):
    from csaudit.lab import Lab
    from csaudit.lab.generate import generate_topology

    monkeypatch.delenv("COLUMNS", raising=False)
    lengths = []
    for zones, hosts, routers in ((2, 10, 20), (3, 30, 60)):  # the same kinds of hosts, 2 zones or more (F28 crosses zones)
        with Lab(generate_topology(zones, hosts, routers)) as lab:
            lab.write_ini(tmp_path / "cloudstack.ini")
            result = cli("run", "--no-remote", "--timeout", "0.5")
        lines = result.stdout.splitlines()
        assert result.exit_code == 1 and lines[-1].startswith("summary: "), result.stderr
        assert max(map(len, lines)) <= 120 and any(line.startswith("FAIL F08 ") for line in lines)
        lengths.append(len(lines))
    assert lengths[0] == lengths[1] < 300


@pytest.mark.programs("dot")
def test_the_html_benchmark_reads_back_every_flow_and_renders_the_diagram():
    from bench import html

    result = html.html_at_scale(1, 3, 20)
    assert result["flows"] > 100 and result["dot_svg_bytes"]
    assert 0 < result["rows_bytes"] < result["size"]["html"] < result["size"]["json"]
    table, ok, _ = html.rows(1, 3, 20)
    assert ok and table[-1][5] == "yes"

