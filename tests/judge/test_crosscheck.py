"""The cross-check's CloudStack evidence: routers' failed health checks, redundant pairs with two MASTERs
or none, and agents whose state disagrees with their own connection to the MS (pure functions)."""

import dataclasses

from csaudit.judge.crosscheck import cross_check, router_evidence
from csaudit.judge.verdict import judge
from csaudit.model.flows import Endpoint, Flow
from csaudit.model.inventory import HealthCheck, Host, Inventory, ManagementServer, Router, SystemVm, Zone
from csaudit.model.probes import Observation, VantageState
from csaudit.model.results import FINDING_KINDS

NET = "127.61.0"


def router(number, state="Running", redundant_state=None, network=None, vpc=None, failed=(), run=None):
    return Router(f"r{number}", f"r-{number}-VM", "z1", "h1", "KVM", f"{NET}.{number}", None, None, state,
                  redundant_state or "UNKNOWN", redundant_state is not None, network, network and f"{network}-name",
                  vpc, vpc and f"{vpc}-name", run if run is not None else (len(failed) + 1 if failed else None),
                  tuple(failed))


def inventory(*routers, vm_agent="Up", host_state="Up"):
    return Inventory(
        endpoint=None, api_mode=None, version="4.19.1.0", zones=(Zone("z1", "east"), Zone("z2", "west")),
        hosts=(Host("h1", "kvm01", "z1", None, "c1", "KVM", f"{NET}.21", host_state),),
        management_servers=(ManagementServer("m1", "ms1", f"{NET}.10", "serviceip", "Up"),
                            ManagementServer("m2", "ms2", f"{NET}.11", "serviceip", "Up")),
        system_vms=(SystemVm("s1", "s-1-VM", "ssvm", "z1", "h1", "KVM", f"{NET}.101", f"{NET}.201", None, "Running",
                             vm_agent),),
        routers=routers, settings={"port": "8250"})


def evidence(*routers):
    return {(f.kind, f.role, f.name, f.members) for f in router_evidence(inventory(*routers), "z1")}


GATEWAY = HealthCheck("gateways_check.py", "basic", "2024-06-01T10:00:00+0000", "Unreachable gateways are: 10.1.1.1")


def test_a_healthy_pair_and_passing_checks_give_no_finding():
    assert evidence(router(1, redundant_state="MASTER", network="n1"), router(2, redundant_state="BACKUP", network="n1"),
                    router(3, redundant_state="PRIMARY", vpc="v1"), router(4, redundant_state="BACKUP", vpc="v1"),
                    router(5, run=10), router(6)) == set()


def test_a_failed_health_check_is_a_finding_with_what_the_router_said():
    [finding] = router_evidence(inventory(router(1, failed=(GATEWAY,), run=12)))
    assert (finding.kind, finding.role, finding.name, finding.api_state) == ("vr-health-check-failed", "vr", "r-1-VM", "Running")
    assert finding.message == ("CloudStack's own health checks of vr r-1-VM fail (1 of 12): gateways_check.py "
                               "(basic, at 2024-06-01T10:00:00+0000): Unreachable gateways are: 10.1.1.1")
    # A stopped router's results are from before it stopped.
    assert evidence(router(1, state="Stopped", failed=(GATEWAY,))) == set()


def test_two_masters_are_a_split_brain_under_either_name_of_the_state():
    pair = evidence(router(1, redundant_state="MASTER", network="n1"), router(2, redundant_state="PRIMARY", network="n1"))
    assert pair == {("vr-pair-split-brain", "guest network", "n1-name", ("r-1-VM", "r-2-VM"))}
    [finding] = router_evidence(inventory(router(1, redundant_state="MASTER", network="n1"),
                                          router(2, redundant_state="MASTER", network="n1")))
    assert finding.api_state == "r-1-VM MASTER, r-2-VM MASTER"
    assert "VRRP (IP protocol 112) and conntrackd multicast between the pair (F54) cannot be probed" in finding.message


def test_a_vpc_pair_is_tied_by_its_vpc_not_by_the_tier_each_shows():
    first = dataclasses.replace(router(1, redundant_state="BACKUP", vpc="v1"), guest_network_id="tier-a")
    second = dataclasses.replace(router(2, redundant_state="BACKUP", vpc="v1"), guest_network_id="tier-b")
    assert evidence(first, second) == {("vr-pair-no-master", "vpc", "v1-name", ("r-1-VM", "r-2-VM"))}


def test_no_master_among_the_running_routers():
    # One BACKUP left running while its peer is stopped: nobody forwards.
    assert evidence(router(1, redundant_state="BACKUP", network="n1"),
                    router(2, state="Stopped", redundant_state="MASTER", network="n1")) == {
        ("vr-pair-no-master", "guest network", "n1-name", ("r-1-VM", "r-2-VM"))}
    # FAULT or UNKNOWN next to a MASTER: CloudStack's own alerts cover it, the pair still forwards.
    assert evidence(router(1, redundant_state="MASTER", network="n1"), router(2, redundant_state="FAULT", network="n1")) == set()
    # A lone redundant router (its peer not listed, or in another network) is no pair.
    assert evidence(router(1, redundant_state="BACKUP", network="n1"), router(2, redundant_state="BACKUP", network="n2")) == set()
    # Non-redundant routers that share a network are not a pair either.
    assert evidence(dataclasses.replace(router(1), guest_network_id="n1"), dataclasses.replace(router(2), guest_network_id="n1")) == set()


def test_only_the_zone_checked_and_every_kind_is_declared():
    west = dataclasses.replace(router(9, failed=(GATEWAY,)), zone_id="z2")
    assert router_evidence(inventory(west), "z1") == ()
    assert [f.name for f in router_evidence(inventory(west), "z2")] == ["r-9-VM"]
    assert {"vr-health-check-failed", "vr-pair-split-brain", "vr-pair-no-master", "agent-up-unconnected"} <= set(FINDING_KINDS)


def agent_flow(source_role, source_name, source_address, ms, ms_address, port=8250, rule="F09"):
    return Flow(f"{rule}:{source_name}->{ms}:{port}/tcp", rule, "agent connects to the MS", "east",
                Endpoint(source_role, source_name, source_address), Endpoint("ms", ms, ms_address), "tcp", port,
                None, "open", "tls", "c")


def probed(flow, state, vantage="ssh:systemvm/s-1-VM"):
    return judge(flow, Observation(state, "r"), vantage)


SSVM_OK = VantageState("ssh:systemvm/s-1-VM", "ok", 2, "", "ssvm", "s-1-VM")


def kinds(found):
    return {(f.kind, f.name) for f in found}


def test_an_agent_up_whose_ms_port_fails_from_its_own_machine_is_a_finding():
    cut = (probed(agent_flow("ssvm", "s-1-VM", f"{NET}.101", "ms1", f"{NET}.10"), "refused"),
           probed(agent_flow("ssvm", "s-1-VM", f"{NET}.101", "ms2", f"{NET}.11"), "timeout"))
    [finding] = cross_check(inventory(), cut, (SSVM_OK,), "z1")
    assert (finding.kind, finding.name, finding.api_state) == ("agent-up-unconnected", "s-1-VM", "Running (agent Up)")
    assert finding.message.endswith("from it the agent's port 8250 on no management server answers "
                                    "(F09 to ms1 refused, F09 to ms2 timeout)")
    # One MS answering is enough: the agent connects to one of them.
    one_open = (cut[0], probed(agent_flow("ssvm", "s-1-VM", f"{NET}.101", "ms2", f"{NET}.11"), "open"))
    assert cross_check(inventory(), one_open, (SSVM_OK,), "z1") == ()
    # Another port to the MS is not the agent's.
    other = (probed(agent_flow("ssvm", "s-1-VM", f"{NET}.101", "ms1", f"{NET}.10", port=8080, rule="F99"), "refused"),)
    assert cross_check(inventory(), other, (SSVM_OK,), "z1") == ()


def test_an_agent_down_whose_ms_port_answers_adds_that_to_the_one_finding():
    passed = (probed(agent_flow("ssvm", "s-1-VM", f"{NET}.101", "ms1", f"{NET}.10"), "open"),)
    [finding] = cross_check(inventory(vm_agent="Disconnected"), passed, (SSVM_OK,), "z1")
    assert finding.kind == "api-down-answers" and finding.api_state == "Running (agent Disconnected)"
    assert finding.message == ("the API says ssvm s-1-VM is Running (agent Disconnected), but csaudit logged in to it "
                               "(ssh:systemvm/s-1-VM) and from it the agent's port 8250 on the MS answers: F09 to ms1")


def test_a_kvm_host_agent_is_checked_the_same_way():
    host_ok = VantageState("ssh:host/kvm01", "ok", 1, "", "host", "kvm01")
    cut = (probed(agent_flow("host", "kvm01", f"{NET}.21", "ms1", f"{NET}.10", rule="F08"), "refused", "ssh:host/kvm01"),)
    assert kinds(cross_check(inventory(), cut, (host_ok,), "z1")) == {("agent-up-unconnected", "kvm01")}
    passed = (probed(cut[0].flow, "open", "ssh:host/kvm01"),)
    assert kinds(cross_check(inventory(host_state="Disconnected"), passed, (host_ok,), "z1")) == {("api-down-answers", "kvm01")}


def test_an_agent_flow_probed_without_a_remote_vantage_counts_too():
    # This machine held the SSVM's address (the embedded cloud): the API-up-silent check and the agent check
    # are two findings about two things.
    cut = (probed(agent_flow("ssvm", "s-1-VM", f"{NET}.101", "ms1", f"{NET}.10"), "refused", "local"),)
    assert kinds(cross_check(inventory(), cut, (), "z1")) == {("agent-up-unconnected", "s-1-VM")}
