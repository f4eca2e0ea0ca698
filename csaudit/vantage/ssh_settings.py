"""How csaudit reaches its remote vantages: options, an optional settings file, OpenSSH defaults.

Precedence, most specific last wins: the user's OpenSSH config (~/.ssh/config, applied by asyncssh
to whatever is left unset) < [defaults] < [<hypervisor>] / [ms] / [outside] < [host.<name>] /
[systemvm.<name>] / [ms.<name>] of the --ssh-settings file < command-line options. Secrets never
pass through here: only key *paths*.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping

from csaudit.model.errors import ConfigError
from csaudit.model.probes import Unverifiable
from csaudit.model.vocabulary import Gap, Hypervisor
from csaudit.vantage.remote import DEFAULT_SYSTEMVM_KEY_ON_HOST, SYSTEMVM_PORT, SYSTEMVM_USER

# The MS's own key for system VMs on VMware/Hyper-V, where the MS opens 3922 itself (VmwareManagerImpl.getSystemVMKeyFile).
MS_SYSTEMVM_KEYS = ("~cloud/.ssh/id_rsa", "/var/cloudstack/management/.ssh/id_rsa",
                    "/var/lib/cloudstack/management/.ssh/id_rsa",
                    "/usr/share/cloudstack-common/scripts/vm/systemvm/id_rsa.cloud")
DEFAULT_CONNECT_TIMEOUT = 10.0
# Vantages worked on at once, as pssh's default. Measured (bench/remote.py): 50 vantages whose probes
# wait on a port that drops SYNs take 4 waves at 16 (9.4 s), 2 at 32 (6.6 s), against 2.2 s for one.
DEFAULT_REMOTE_CONCURRENCY = 32

_SECTION_KEYS = frozenset({"user", "key", "port", "jump_host", "known_hosts", "systemvm_key", "systemvm_known_hosts"})
_OBJECT_KEYS = frozenset({"address", "port", "user", "key", "jump_host", "known_hosts", "systemvm_key"})
_OUTSIDE_KEYS = frozenset({"user", "key", "port", "jump_host", "known_hosts"})
HYPERVISORS = tuple(Hypervisor)
MS_SECTION, OUTSIDE_SECTION = "ms", "outside"  # the management servers' defaults; the outside vantage
OBJECT_KINDS = ("host", "systemvm", MS_SECTION)  # [KIND.NAME] tables


@dataclasses.dataclass(frozen=True)
class SshAccess:
    """One SSH connection from this machine. None means: as the user's OpenSSH config says."""

    address: str
    port: int | None = None
    user: str | None = None
    key: str | None = None  # a private key file on this machine; None: ~/.ssh/id_* and the agent
    known_hosts: str | None = None  # None: ~/.ssh/known_hosts (or the config's UserKnownHostsFile)
    check_host_key: bool = True
    jump_host: str | None = None  # [user@]host[:port]

    def describe(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{self.address}{port}" + (f" via {self.jump_host}" if self.jump_host else "")


@dataclasses.dataclass(frozen=True)
class RemoteSettings:
    enabled: bool = True
    user: str | None = None
    key: str | None = None
    port: int | None = None
    jump_host: str | None = None
    known_hosts: str | None = None
    systemvm_key: str | None = None  # on the host (KVM, XenServer)
    vmware_systemvm_key: str | None = None  # on this machine (VMware, Hyper-V)
    systemvm_known_hosts: str | None = None  # check VMware system VMs' host keys against this file
    outside_host: str | None = None  # [USER@]HOST[:PORT] outside the management network (--outside-host)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    concurrency: int = DEFAULT_REMOTE_CONCURRENCY
    file: tuple[tuple[str, tuple[tuple[str, object], ...]], ...] = ()  # section -> items, from --ssh-settings

    # ---------------------------------------------------------------- lookups
    def section(self, name: str) -> dict:
        return dict(dict(self.file).get(name, ()))

    def named(self, role: str, name: str) -> bool:
        """Did the operator name this object in the settings file? Then SSH wins over a local probe."""
        kind = role if role in ("host", MS_SECTION) else "systemvm"
        return f"{kind}.{name}" in dict(self.file)

    def named_esxi(self, name: str) -> bool:
        """An ESXi host is an SSH vantage only when the operator asks for it: [host.NAME] or [vmware]."""
        return self.named("host", name) or Hypervisor.VMWARE in dict(self.file)

    def _layers(self, group: str | None, entry: str) -> dict:
        """[defaults] < the group's section (a hypervisor, ms, outside) < the object's own."""
        merged = self.section("defaults")
        merged.update(self.section((group or "").lower()))
        merged.update(self.section(entry))
        return merged

    def host_access(self, name: str, address: str | None, hypervisor: str | None) -> SshAccess | Unverifiable:
        return self._login(self._layers(hypervisor, f"host.{name}"), address, f"no management address known for host {name}")

    def ms_access(self, name: str, address: str | None) -> SshAccess | Unverifiable:
        """A management server as a vantage: its flows (MySQL, peers, hosts) are probed from there."""
        return self._login(self._layers(MS_SECTION, f"{MS_SECTION}.{name}"), address,
                           f"no address known for management server {name}")

    def outside_access(self) -> SshAccess | None:
        """The outside vantage (--outside-host [USER@]HOST[:PORT]), over [defaults] < [outside]."""
        if not self.outside_host:
            return None
        user, _, rest = self.outside_host.rpartition("@")
        host, port = split_host_port(rest)
        layers = self._layers(OUTSIDE_SECTION, "")
        login = self._login(layers, host, "")
        return dataclasses.replace(login, user=user or login.user, port=port or login.port)

    def _login(self, layers: dict, address: str | None, no_address: str) -> SshAccess | Unverifiable:
        address = layers.get("address") or address
        if not address:
            return Unverifiable(no_address, Gap.NO_ADDRESS)
        return SshAccess(
            address=address,
            port=self.port or layers.get("port"),
            user=self.user or layers.get("user"),
            key=_path(self.key or layers.get("key")),
            known_hosts=_path(self.known_hosts or layers.get("known_hosts")),
            jump_host=self.jump_host or layers.get("jump_host"),
        )

    def systemvm_keys_on_ms(self, name: str) -> tuple[str, ...]:
        """Where a management server keeps its key for VMware/Hyper-V system VMs: the paths to try there."""
        given = self._layers(MS_SECTION, f"{MS_SECTION}.{name}").get("systemvm_key")
        return (given,) if given else MS_SYSTEMVM_KEYS

    def systemvm_key_on_host(self, name: str, hypervisor: str | None) -> str:
        return self.systemvm_key or self._layers(hypervisor, f"systemvm.{name}").get("systemvm_key") or DEFAULT_SYSTEMVM_KEY_ON_HOST

    def hop_address(self, name: str, linklocal: str | None) -> str | None:
        return self.section(f"systemvm.{name}").get("address") or linklocal

    def direct_access(self, name: str, address: str | None, hypervisor: str | None) -> SshAccess | Unverifiable:
        """A system VM on VMware/Hyper-V: straight to its private IP on 3922 with the MS key."""
        layers = self._layers(hypervisor, f"systemvm.{name}")
        entry = self.section(f"systemvm.{name}")
        address = entry.get("address") or address
        if not address:
            return Unverifiable(f"no private address known for system VM {name}", Gap.NO_ADDRESS)
        key = _path(self.vmware_systemvm_key or layers.get("systemvm_key"))
        if key is None:
            key = next((p for p in map(_path, MS_SYSTEMVM_KEYS) if p and os.path.exists(p)), None)
            if key is None:
                return Unverifiable("key missing: no management-server key for system VMs on this machine "
                                    f"({', '.join(MS_SYSTEMVM_KEYS)}); give one with --vmware-systemvm-key",
                                    Gap.VANTAGE_UNAVAILABLE)
        known_hosts = _path(self.systemvm_known_hosts or layers.get("systemvm_known_hosts"))
        return SshAccess(address=address, port=entry.get("port") or SYSTEMVM_PORT, user=SYSTEMVM_USER, key=key,
                         known_hosts=known_hosts, check_host_key=known_hosts is not None,
                         jump_host=self.jump_host or layers.get("jump_host"))

    def jump_access(self, jump_host: str) -> SshAccess:
        user, _, rest = jump_host.rpartition("@")
        host, port = split_host_port(rest)
        layers = self.section("defaults")
        return SshAccess(address=host, port=port, user=user or self.user or layers.get("user"),
                         key=_path(self.key or layers.get("key")),
                         known_hosts=_path(self.known_hosts or layers.get("known_hosts")))


def _path(value) -> str | None:
    return os.path.expanduser(value) if value else None


def split_host_port(text: str, what: str = "jump host") -> tuple[str, int | None]:
    if text.startswith("["):  # [v6 address]:port
        host, _, port = text[1:].partition("]")
        port = port.lstrip(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if port and not port.isdigit():
        raise ConfigError(f"{what} {text!r}: the port must be a number")
    return host, int(port) if port else None


def load_settings_file(path: str) -> tuple[tuple[str, tuple[tuple[str, object], ...]], ...]:
    """Read and check the --ssh-settings TOML; every mistake is one ConfigError (exit 2)."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read the SSH settings {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    sections: list[tuple[str, tuple[tuple[str, object], ...]]] = []
    for name, table in data.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"{path}: [{name}] must be a table")
        if name == MS_SECTION:  # [ms] holds the defaults of every MS and the [ms.NAME] tables
            own = {key: value for key, value in table.items() if not isinstance(value, Mapping)}
            sections.append((MS_SECTION, _checked(own, _SECTION_KEYS, "[ms]", path)))
            sections.extend(_objects(name, {k: v for k, v in table.items() if k not in own}, path))
        elif name in OBJECT_KINDS:
            sections.extend(_objects(name, table, path))
        elif name == OUTSIDE_SECTION:
            sections.append((name, _checked(table, _OUTSIDE_KEYS, f"[{name}]", path)))
        elif name == "defaults" or name.lower() in HYPERVISORS:
            sections.append((name.lower(), _checked(table, _SECTION_KEYS, f"[{name}]", path)))
        else:
            raise ConfigError(f"{path}: unknown section [{name}]; use [defaults], a hypervisor "
                              f"({', '.join(HYPERVISORS)}), [ms], [outside], [host.NAME], [systemvm.NAME] or [ms.NAME]")
    return tuple(sections)


def _objects(kind: str, table: Mapping, path: str) -> list[tuple[str, tuple[tuple[str, object], ...]]]:
    """[KIND.NAME] tables: one section each."""
    if not table and kind != MS_SECTION:
        raise ConfigError(f"{path}: [{kind}] must hold tables such as [{kind}.NAME]")
    return [(f"{kind}.{name}", _checked(entry, _OBJECT_KEYS, f"[{kind}.{name}]", path)) for name, entry in table.items()]


def _checked(table, allowed: frozenset[str], where: str, path: str) -> tuple[tuple[str, object], ...]:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{path}: {where} must be a table")
    for key, value in table.items():
        if key not in allowed:
            raise ConfigError(f"{path}: {where}: unknown key '{key}' (known: {', '.join(sorted(allowed))})")
        if key == "port":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
                raise ConfigError(f"{path}: {where}: port must be a number from 1 to 65535")
        elif not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: {where}: {key} must be a non-empty string")
    return tuple(sorted(table.items()))
