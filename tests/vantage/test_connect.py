"""Local probes against real loopback listeners: open, refused, a timeout that really happens."""

import dataclasses
import time

from csaudit.judge.verdict import judge_all
from csaudit.model.flows import Endpoint, Flow
from csaudit.model.probes import ProbeOptions, ProbeTarget
from csaudit.vantage import run_vantages, sample_ports
from csaudit.vantage.local import LocalVantage
from tests.conftest import connect_observations, drop_syns, free_port


def test_four_states_on_real_sockets(listener, filtered_port):
    open_port = listener("127.11.0.1")
    closed_port = free_port("127.11.0.1")
    dropped_port = filtered_port("127.11.0.2")
    targets = [
        ProbeTarget("127.11.0.1", open_port),
        ProbeTarget("127.11.0.1", closed_port),
        ProbeTarget("127.11.0.2", dropped_port),
        ProbeTarget("127.11.0.1", open_port, source="192.0.2.77"),  # not ours: bind fails, nothing is sent
    ]
    started = time.monotonic()
    results = connect_observations(targets, timeout=0.5, concurrency=8)
    elapsed = time.monotonic() - started
    assert [results[t].state for t in targets] == ["open", "refused", "timeout", "error"]
    assert "refused" in results[targets[1]].reason
    assert "0.5 s" in results[targets[2]].reason
    assert "cannot send from 192.0.2.77" in results[targets[3]].reason
    assert results[targets[0]].latency_ms is not None
    assert elapsed >= 0.5  # the timeout really happened: the SYN was dropped


def test_bound_source_address_is_the_one_the_listener_sees(listener):
    import socket

    server = socket.socket()
    server.bind(("127.11.1.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    try:
        results = connect_observations([ProbeTarget("127.11.1.1", port, source="127.11.1.99")], 1.0, 4)
        assert next(iter(results.values())).state == "open"
        conn, peer = server.accept()
        conn.close()
        assert peer[0] == "127.11.1.99"
    finally:
        server.close()


def test_many_targets_with_small_concurrency_all_end(listener):
    port = listener("127.11.2.1", backlog=128)
    targets = [ProbeTarget("127.11.2.1", port if i % 2 else free_port("127.11.2.1")) for i in range(300)]
    results = connect_observations(targets, timeout=1.0, concurrency=7)
    assert set(results) == set(targets)
    assert {r.state for r in results.values()} <= {"open", "refused"}


def test_unresolvable_name_is_an_error_not_a_crash():
    target = ProbeTarget("no-such-host.invalid", 80)
    assert connect_observations([target], 0.5, 2)[target].state == "error"


def flow(source_role="ms", source_address="127.11.3.1", target_address="127.11.3.2", port=9, protocol="tcp", probe="tcp", notes=()):
    return Flow(id=f"X:{source_role}->{target_address}:{port}/{protocol}", rule="F99", title="t", zone=None,
                source=Endpoint(source_role, "src", source_address), target=Endpoint("db", "dst", target_address),
                protocol=protocol, port=port, port_end=None, expect="open", probe=probe,
                citation="c", notes=notes)


def test_local_vantage_plans_or_says_why_not():
    vantage = LocalVantage()
    options = ProbeOptions()
    assert vantage.plan(flow(source_role="user", source_address=None), options) == ProbeTarget("127.11.3.2", 9)
    assert vantage.plan(flow(), options) == ProbeTarget("127.11.3.2", 9, source="127.11.3.1")
    assert "no vantage for ms src (192.0.2.1)" in vantage.plan(flow(source_address="192.0.2.1"), options)
    assert "UDP" in vantage.plan(flow(protocol="udp"), options)
    assert vantage.plan(flow(probe="none", notes=("qemu listens only during migration",)), options) == "qemu listens only during migration"
    assert "no address known for db dst" in vantage.plan(flow(target_address=None), options)
    # Run on the MS a "closed to all but its own tools" rule targets: not judged from there (the others judge it);
    # a loopback target is the embedded cloud on this machine, which stands for a client apart from it.
    vantage._owned["192.0.2.10"] = True  # as if this machine were that MS (bind() would succeed there)
    exempt = dataclasses.replace(flow(source_role="user", source_address=None, target_address="192.0.2.10"),
                                 expect="closed", self_allowed=True)
    assert "whose own tools the rule allows" in vantage.plan(exempt, options)
    assert vantage.plan(exempt, options).gap == "not-judgeable"
    assert isinstance(vantage.plan(dataclasses.replace(exempt, self_allowed=False), options), ProbeTarget)
    assert isinstance(vantage.plan(dataclasses.replace(exempt, target=Endpoint("ms", "lab", "127.11.3.9")), options), ProbeTarget)
    outside = vantage.plan(flow(source_role="outside", source_address=None), options)
    assert "--outside-host" in outside and "--outside" in outside and outside.gap == "needs-outside"
    assert vantage.plan(flow(source_role="outside", source_address=None), ProbeOptions(outside=True)) == ProbeTarget("127.11.3.2", 9)


def test_flows_sharing_a_probe_are_probed_once(listener):
    port = listener("127.11.4.1")
    flows = [flow(source_role="user", source_address=None, target_address="127.11.4.1", port=port),
             flow(source_role="user", source_address=None, target_address="127.11.4.1", port=port, protocol="tcp", probe="tcp", notes=("x",))]
    flows[1] = dataclasses.replace(flows[1], id="other")

    class Counting(LocalVantage):
        batches = []

        def probe(self, targets, options):
            self.batches.append(list(targets))
            return super().probe(targets, options)

    vantage = Counting()
    run = run_vantages(flows, [vantage], ProbeOptions(timeout=1))
    observed, unverified = run.observed, run.unverified
    assert len(vantage.batches) == 1 and len(vantage.batches[0]) == 1
    assert {fid: obs.state for fid, (_, obs) in observed.items()} == {flows[0].id: "open", "other": "open"}
    assert unverified == {}


# ---------------------------------------------------------------- port ranges: a sample of the range, judged together
def test_a_range_is_sampled_first_last_and_between():
    assert sample_ports(5900, 6100) == (5900, 5950, 6000, 6050, 6100)
    assert sample_ports(49152, 49216) == (49152, 49168, 49184, 49200, 49216)
    assert sample_ports(8000, 8002) == (8000, 8001, 8002)
    assert sample_ports(22, None) == (22,)


def _bound_range(address: str, span: int = 200, attempts: int = 20):
    """A first port with a listener, and the sampled ports of first..first+span free on `address`."""
    import socket

    for _ in range(attempts):  # bounded: ports picked at random may be taken
        first = free_port(address)
        if first + span > 65535:
            continue
        sockets = []
        try:
            for port in sample_ports(first, first + span):
                sock = socket.socket()
                sock.bind((address, port))
                sockets.append(sock)
        except OSError:
            for sock in sockets:
                sock.close()
            continue
        sockets[0].listen(16)
        return first, sockets
    raise AssertionError(f"no free range of {span} ports on {address} after {attempts} attempts")


def test_a_range_opened_only_at_its_start_fails_on_the_port_that_is_dropped():
    address = "127.11.6.1"
    first, sockets = _bound_range(address)
    dropped = sockets[2]
    fillers = drop_syns(dropped)
    try:
        ranged = dataclasses.replace(flow(source_role="user", source_address=None, target_address=address, port=first),
                                     port_end=first + 200)
        run = run_vantages([ranged], [LocalVantage()], ProbeOptions(timeout=0.5))
        (result,) = judge_all([ranged], run.observed, run.unverified, run.ranges)
    finally:
        for sock in sockets + fillers:
            sock.close()
    sampled = sample_ports(first, first + 200)
    assert [port for port, _ in result.ports] == list(sampled)
    assert dict(result.ports) == {sampled[0]: "open", sampled[1]: "refused", sampled[2]: "timeout",
                                  sampled[3]: "refused", sampled[4]: "refused"}
    assert (result.status, result.observed) == ("fail", "timeout")
    assert result.reason.startswith(f"port {sampled[2]}: must be open, but no answer within 0.5 s (packets dropped?)")
    assert f"(ports {first}-{first + 200} sampled: {sampled[0]} open, {sampled[1]} refused, {sampled[2]} timeout" in result.reason


def test_a_range_that_must_be_closed_fails_when_any_sampled_port_accepts():
    address = "127.11.6.2"
    first, sockets = _bound_range(address)
    sockets[0].close()  # the first port: closed
    sockets[3].listen(4)  # one in the middle accepts
    try:
        ranged = dataclasses.replace(flow(source_role="user", source_address=None, target_address=address, port=first),
                                     port_end=first + 200, expect="closed")
        run = run_vantages([ranged], [LocalVantage()], ProbeOptions(timeout=0.5))
        (result,) = judge_all([ranged], run.observed, run.unverified, run.ranges)
    finally:
        for sock in sockets:
            sock.close()
    middle = sample_ports(first, first + 200)[3]
    assert (result.status, result.observed) == ("fail", "open")
    assert result.reason.startswith(f"port {middle}: must be closed, but {address}:{middle} accepted the connection")
