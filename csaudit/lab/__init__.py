"""csaudit lab: an embedded, simulated CloudStack cloud on loopback addresses.

It serves the CloudStack API (signed port 8080 and, when enabled, the
unauthenticated integration port) and the service ports of every simulated
object, with deliberate faults, so csaudit can be tested end to end offline.
"""

from csaudit.lab.generate import generate_topology, topology_to_toml
from csaudit.lab.lifecycle import Lab
from csaudit.lab.schema import Topology
from csaudit.lab.services import Fault, Service
from csaudit.lab.topology import default_topology, load_topology, parse_topology

__all__ = ["Fault", "Lab", "Service", "Topology", "default_topology", "generate_topology",
           "load_topology", "parse_topology", "topology_to_toml"]
