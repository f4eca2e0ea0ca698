"""The words the stages share, each defined once. They are strings (StrEnum), so reports, saved
inventories and the catalogue keep their text, and a member compares equal to its value."""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    """A flow's verdict."""

    PASS = "pass"
    FAIL = "fail"
    UNVERIFIED = "unverified"
    ERROR = "error"  # the probe itself failed (no route, a local limit): neither pass nor fail
    WAIVED = "waived"  # a failure an operator accepted with a reason until a date


class State(enum.StrEnum):
    """What a probe observed of its port."""

    OPEN = "open"
    OPEN_FILTERED = "open|filtered"  # UDP without a reply: open or filtered, unconfirmed
    REFUSED = "refused"
    TIMEOUT = "timeout"
    ERROR = "error"


class VantageStatus(enum.StrEnum):
    """How a place probes run from fared."""

    OK = "ok"
    UNREACHABLE = "unreachable"
    DENIED = "denied"
    UNUSABLE = "unusable"
    ERROR = "error"
    NOT_RUN = "not-run"


class Failure(enum.StrEnum):
    """What went wrong with a flow that failed (or whose probe did): its reason in one word, for code
    and for bounded labels (a waived flow keeps the failure it waives)."""

    TIMEOUT = "timeout"  # must be open, but no answer: packets dropped
    REFUSED = "refused"  # must be open, but refused: nothing listens, or a firewall rejects
    EXPOSED = "exposed"  # must be closed, but the port accepts
    WRONG_SERVICE = "wrong-service"  # the port is open, but another service (or none) answers
    SERVICE_PROBLEM = "service-problem"  # the right service answers, but is unusable (an expired certificate)
    PROBE_ERROR = "probe-error"  # the probe itself failed (no route, a local limit): status error


class Gap(enum.StrEnum):
    """Why a flow stays unverified: what is missing for a verdict."""

    NO_VANTAGE = "no-vantage"  # nothing here can stand for the flow's source
    VANTAGE_UNAVAILABLE = "vantage-unavailable"  # its vantage exists but could not be used (SSH refused, a key missing)
    NEEDS_OUTSIDE = "needs-outside"  # a deny rule meant for a vantage outside the management network
    NO_ADDRESS = "no-address"  # the API does not say where an endpoint is
    NOT_JUDGEABLE = "not-judgeable"  # a connect cannot judge this flow
    UNCONFIRMED = "unconfirmed"  # UDP without a reply: open or filtered
    NOT_PROBED = "not-probed"  # interrupted, or the --deadline passed, before its probe ran
    ZONE_LISTING_FAILED = "zone-listing-failed"  # the API could not list the zone's objects


class ProbeKind(enum.StrEnum):
    """The catalogue's `probe`: which service must answer (tcp: a connect is enough; none: not probed)."""

    TCP = "tcp"
    NONE = "none"
    SSH = "ssh"
    TLS = "tls"
    HTTP_API = "http-api"
    MYSQL = "mysql"
    RPCBIND = "rpcbind"
    NFS = "nfs"
    VNC = "vnc"
    DNS = "dns"
    NTP = "ntp"
    HTTP = "http"
    SMTP = "smtp"
    LDAP = "ldap"
    IPMI = "ipmi"
    VXLAN = "vxlan"
    PROMETHEUS = "prometheus"


class Protocol(enum.StrEnum):
    TCP = "tcp"
    UDP = "udp"


class Role(enum.StrEnum):
    """What an endpoint of a flow is."""

    USER = "user"  # this machine, standing for an operator, an API client, a browser
    OUTSIDE = "outside"  # a machine outside the management network: --outside-host, or this one with --outside
    MS = "ms"
    DB = "db"
    HOST = "host"
    SSVM = "ssvm"
    CPVM = "cpvm"
    VR = "vr"
    SECONDARY_STORAGE = "secondary-storage"
    PRIMARY_STORAGE = "primary-storage"
    VCENTER = "vcenter"
    INTERNAL_DNS = "internal-dns"
    DNS = "dns"
    NTP = "ntp"
    # Services the API or a setting names by address (parse.py, SERVICE_SOURCES): each is its own role.
    USAGE = "usage"  # the usage server (listUsageServerMetrics hostname)
    TEMPLATE_HOST = "template-host"  # the host:port of a registered template or ISO URL (listTemplates / listIsos)
    HTTP_PROXY = "http-proxy"  # setting secstorage.proxy
    SMTP = "smtp"  # setting alert.smtp.host / alert.smtp.port
    LDAP = "ldap"  # listLdapConfigurations hostname / port
    BMC = "bmc"  # a host's out-of-band management address (listHosts outofbandmanagement)
    API_ENDPOINT = "api-endpoint"  # setting endpoint.url


class Hypervisor(enum.StrEnum):
    """Hypervisors as the catalogue and the settings name them (lower case of the API's)."""

    KVM = "kvm"
    LXC = "lxc"
    XENSERVER = "xenserver"
    VMWARE = "vmware"
    HYPERV = "hyperv"
    SIMULATOR = "simulator"


ANY_HYPERVISOR = "any"  # a catalogue rule that applies whatever the hypervisor

# Which probe kinds run over which protocol.
TCP_KINDS = frozenset({ProbeKind.SSH, ProbeKind.TLS, ProbeKind.HTTP_API, ProbeKind.MYSQL, ProbeKind.RPCBIND, ProbeKind.NFS,
                       ProbeKind.VNC, ProbeKind.DNS, ProbeKind.HTTP, ProbeKind.SMTP, ProbeKind.LDAP, ProbeKind.PROMETHEUS})
UDP_KINDS = frozenset({ProbeKind.RPCBIND, ProbeKind.DNS, ProbeKind.NTP, ProbeKind.IPMI, ProbeKind.VXLAN})
# System VMs reached over their host's link-local bridge (cloud0, xapi0); on the others the MS opens 3922 itself.
LINK_LOCAL_CONTROL = frozenset({Hypervisor.KVM, Hypervisor.LXC, Hypervisor.XENSERVER})
