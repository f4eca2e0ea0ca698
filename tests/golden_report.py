"""A fixed report for the renderers' golden files: every status, both zones and the management
tier, a port range, UDP, IPv6, an unknown address, a host name, and names full of characters
that each format must escape. Built through the real report_document, with a fixed time."""

from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib

from csaudit.model.flows import Endpoint, Flow, Remedy
from csaudit.model.inventory import Inventory, Zone
from csaudit.model.results import FlowResult, Waiver
from csaudit.model.vocabulary import Failure, Gap
from csaudit.report.document import report_document

GOLDEN = pathlib.Path(__file__).parent / "data" / "golden"
GENERATED_AT = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC)
ODD_NAME = 'sec "nfs" <west> & co|*x*'  # quotes, markup, a table bar, emphasis


def assert_golden(name: str, text: str) -> None:
    """`text` must equal tests/data/golden/NAME. With CSAUDIT_UPDATE_GOLDEN=1 a file that differs is rewritten,
    and the test still fails: accepting a change is a step of its own (review the diff, run again)."""
    path = GOLDEN / name
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if current != text and os.environ.get("CSAUDIT_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        raise AssertionError(f"{name}: golden file rewritten; review `git diff {path}`, then run again without CSAUDIT_UPDATE_GOLDEN")
    assert current is not None, f"no golden file {path}: run with CSAUDIT_UPDATE_GOLDEN=1 and review it"
    assert text == current, f"{name} differs from its golden file"


def endpoint(role, name, address):
    return Endpoint(role, name, address)


USER = endpoint("user", "this machine", None)
MS1 = endpoint("ms", "ms1", "192.0.2.11")
DB = endpoint("db", "db1", None)
KVM01 = endpoint("host", "kvm01", "192.0.2.21")
KVM02 = endpoint("host", "kvm02", "192.0.2.22")
XEN01 = endpoint("host", "xen01", "192.0.2.31")
CPVM = endpoint("cpvm", "v-2-VM", "192.0.2.102")
POOL = endpoint("primary-storage", "ps-1", "192.0.2.41")
SSVM_WEST = endpoint("ssvm", "s-5-VM", "198.51.100.101")
ODD_STORE = endpoint("secondary-storage", ODD_NAME, "198.51.100.40")
VCENTER = endpoint("vcenter", "vc.example.org", "vc.example.org")
KVM_V6 = endpoint("host", "kvm-v6", "2001:db8::21")
POOL_V6 = endpoint("primary-storage", "ps-v6", "2001:db8::41")


def flow(rule, title, zone, source, target, port, protocol="tcp", expect="open", port_end=None, notes=(), citation=None,
         remedy=None):
    ports = f"{port}-{port_end}" if port_end else str(port)
    return Flow(f"{rule}:{source.name}->{target.name}:{ports}/{protocol}", rule, title, zone, source, target, protocol,
                port, port_end, expect, "tcp", citation or f"docs: {rule.lower()}.rst L1", tuple(notes), remedy=remedy)


# Two rules carry a remedy (the others show that a report without one still renders); one has the odd name's characters.
SSH_REMEDY = Remedy(on="the KVM host", check="sshd listens on 22 and the firewall accepts the MS",
                    commands=("systemctl status sshd", "ss -ltnp 'sport = :22'"), citation="docs: network_setup.rst L951")
NFS_REMEDY = Remedy(on="the NFS server <nfs> & co|*x*", check="the export allows the SSVM, and `nfsd` listens on 2049",
                    commands=("exportfs -v", "rpcinfo -p | grep -w nfs"), citation="docs: _nfs.rst L175")


WAIVER = Waiver(reason="xen01 is retired in April (CHG-1234)", expires=datetime.date(2099, 4, 30), rule="F12",
                where="waivers.toml:1")


def golden_results() -> tuple[FlowResult, ...]:
    refused = "{}:{} refused the connection (nothing listens, or a firewall rejects)"
    return (
        FlowResult(flow("F01", "UI and API", None, USER, MS1, 8080), "pass", "open",
                   "192.0.2.11:8080 accepted the connection", "local", 0.42),
        FlowResult(flow("D01", "unauthenticated integration API", None, USER, MS1, 8096, expect="closed"), "fail", "open",
                   "must be closed, but 192.0.2.11:8096 accepted the connection", "local", 0.31, failure=Failure.EXPOSED),
        FlowResult(flow("F04", "MS to MySQL", None, MS1, DB, 3306, notes=("database address: unknown; pass --db-host",)),
                   "unverified", None, "no address known for db db1", gap=Gap.NO_ADDRESS),
        FlowResult(flow("F08", "agent to MS", "zone-east", KVM01, MS1, 8250), "pass", "open",
                   "192.0.2.11:8250 accepted the connection", "local", 1.5),
        FlowResult(flow("F11", "MS to KVM host SSH", "zone-east", MS1, KVM02, 22, remedy=SSH_REMEDY), "fail", "refused",
                   "must be open, but " + refused.format("192.0.2.22", 22), "local", 0.2, failure=Failure.REFUSED),
        FlowResult(flow("F12", "MS to XenServer XAPI", "zone-east", MS1, XEN01, 443), "waived", "timeout",
                   "must be open, but no answer within 1 s (packets dropped?)", "local", 1000.0, waiver=WAIVER,
                   failure=Failure.TIMEOUT),
        FlowResult(flow("F34", "console proxy to VNC", "zone-east", CPVM, KVM02, 5900, port_end=6100), "error", "error",
                   "cannot send from 192.0.2.102: Cannot assign requested address", "local", failure=Failure.PROBE_ERROR),
        FlowResult(flow("F46", "host to NFS portmapper", "zone-east", KVM01, POOL, 111, protocol="udp"), "unverified", None,
                   "UDP cannot be judged by a connect; it needs a protocol probe", gap=Gap.NOT_JUDGEABLE),
        FlowResult(flow("D05", "hypervisor ports from outside", "zone-east", USER, KVM02, 22, expect="closed"), "pass",
                   "refused", refused.format("192.0.2.22", 22), "local", 0.1),
        FlowResult(flow("F43", "host to primary storage", "zone-east", KVM_V6, POOL_V6, 2049), "pass", "open",
                   "2001:db8::41:2049 accepted the connection", "local", 0.3),
        FlowResult(flow("F23", "SSVM to secondary storage", "zone-west", SSVM_WEST, ODD_STORE, 2049,
                        citation='src: "NfsSecondaryStorageResource.java" <mount> & co', remedy=NFS_REMEDY), "fail", "refused",
                   "must be open, but " + refused.format("198.51.100.40", 2049), "local", 0.25, failure=Failure.REFUSED),
        FlowResult(flow("F15", "MS to vCenter", "zone-west", MS1, VCENTER, 443), "error", "error",
                   "cannot resolve vc.example.org: Name or service not known", "local", failure=Failure.PROBE_ERROR),
    )


def golden_inventory() -> Inventory:
    return Inventory(endpoint="http://192.0.2.11:8080/client/api", api_mode="signed", version="4.19.1.0",
                     zones=(Zone("z-east", "zone-east"), Zone("z-west", "zone-west")))


def golden_document(results=None) -> dict:
    # the version is pinned so that a release does not rewrite every golden file
    return {**report_document(results or golden_results(), golden_inventory(), now=GENERATED_AT), "tool_version": "0.0.0"}


def later_document() -> dict:
    """The report of a later run: F11 fixed, F08 broken, F46 verified, D01 waived, F15 gone, one flow new."""
    results = {r.flow.id: r for r in golden_results()}
    by_rule = {r.flow.rule: r for r in results.values()}
    changes = {
        "F11": dataclasses.replace(by_rule["F11"], status="pass", observed="open", reason="192.0.2.22:22 accepted the connection",
                                   failure=None),
        "F08": dataclasses.replace(by_rule["F08"], status="fail", observed="timeout",
                                   reason="must be open, but no answer within 1 s (packets dropped?)", failure=Failure.TIMEOUT),
        "F46": dataclasses.replace(by_rule["F46"], status="pass", observed="open", reason="answered"),
        "D01": dataclasses.replace(by_rule["D01"], status="waived", waiver=WAIVER),
    }
    later = [changes.get(r.flow.rule, r) for r in results.values() if r.flow.rule != "F15"]
    later.append(FlowResult(flow("F40", "host to host migration", "zone-east", KVM01, KVM02, 16514), "fail", "refused",
                            "must be open, but 192.0.2.22:16514 refused the connection", "local", 0.2, failure=Failure.REFUSED))
    return golden_document(tuple(later)) | {"generated_at": (GENERATED_AT + datetime.timedelta(days=1)).isoformat()}
