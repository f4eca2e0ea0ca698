"""`Lab`: start and stop a whole simulated cloud inside the current process."""

from __future__ import annotations

import collections
import dataclasses
import errno
import os
import random
import secrets

from csaudit.lab.apiserver import ApiServer
from csaudit.lab.apiservice import ApiService
from csaudit.lab.commands import Caller
from csaudit.lab.listeners import Listeners
from csaudit.lab.relocate import relocate, second_octet, shift_octet
from csaudit.lab.roles import Role
from csaudit.lab.schema import API_FAULT_KINDS, FaultSpec, Topology
from csaudit.lab.services import API_PORT, Fault, Service, planned_services, planted_faults
from csaudit.lab.topology import default_topology
from csaudit.model.errors import ConfigError

MAX_RELOCATIONS = 8


class Lab:
    """A simulated CloudStack cloud on 127.x addresses, as a context manager.

        with Lab(default_topology()) as lab:
            CloudStack(endpoint=lab.endpoint, key=lab.key, secret=lab.secret).listZones()
    """

    def __init__(self, topology: Topology | None = None, *, max_relocations: int = MAX_RELOCATIONS,
                 served_elsewhere: frozenset[tuple[str, int]] = frozenset()):
        self.requested = topology if topology is not None else default_topology()
        self.topology = self.requested  # what is served; differs after a relocation
        self.key = self.requested.api_key or secrets.token_urlsafe(64)
        self.secret = self.requested.secret_key or secrets.token_urlsafe(64)
        self._max_relocations = max_relocations
        self.served_elsewhere = served_elsewhere  # (object name, tcp port) a real daemon serves instead (lab.real_vantages)
        self._extra_keys: list[tuple[str, str, Caller]] = []  # add_api_key's, kept across a restart or relocation
        self._service: ApiService | None = None
        self._api: ApiServer | None = None
        self._listeners: Listeners | None = None

    def __repr__(self) -> str:  # never the secret
        return f"<Lab {self.endpoint} version={self.topology.version} running={self.running}>"

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._api is not None

    def start(self) -> None:
        if self.running:
            return
        for topology in self._candidates():
            try:
                self._start_on(topology)
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise ConfigError(f"lab cannot bind its loopback addresses: {error}") from None
                continue  # something else holds one of our ports: move the whole cloud
            self.topology = topology
            return
        raise ConfigError(f"lab could not find free loopback addresses after "
                          f"{self._max_relocations} relocations (ports in use)")

    def _candidates(self):
        """The requested topology, then the same cloud in other 127.N.0.0/16 ranges."""
        yield self.requested
        home = second_octet(self.requested.management_servers[0].address)
        deltas = list(range(1, 254))
        random.shuffle(deltas)  # parallel test runs should not all try the same ranges
        for delta in deltas[:self._max_relocations]:
            if shift_octet(home, delta) != home:
                yield relocate(self.requested, delta)

    def _start_on(self, topology: Topology) -> None:
        service = ApiService(topology, self.key, self.secret)
        for key, secret, caller in self._extra_keys:
            service.add_key(key, secret, caller)
        api = ApiServer(service)
        listeners = Listeners(self._served(topology), topology.database.version) if topology.listeners else None
        try:
            for server in topology.management_servers:
                api.bind(server.address, API_PORT, integration=False)
                if topology.integration_port > 0:
                    api.bind(server.address, topology.integration_port, integration=True)
            if listeners is not None:
                listeners.bind_all()
        except BaseException:
            api.stop()
            if listeners is not None:
                listeners.close()
            raise
        api.start()
        if listeners is not None:
            listeners.start()
        self._service, self._api, self._listeners = service, api, listeners

    def _served(self, topology: Topology) -> list[Service]:
        """What the listeners serve: every planned service, less the ports a real daemon serves instead."""
        return [s for s in planned_services(topology)
                if s.protocol != "tcp" or (s.object_name, s.port) not in self.served_elsewhere]

    def plant(self, fault: FaultSpec) -> tuple[Fault, ...]:
        """Plant one more fault in the running cloud, as a firewall change or a stopped service would
        between two audits: the listeners change at once. What the API says stays as it was, and the
        API ports (the integration port among them) are not changed. `fault` names objects, and an
        address of the cloud as it is served (it may have moved). Returns what the fault made probe-able."""
        if fault.kind in API_FAULT_KINDS:
            raise ConfigError(f"a {fault.kind} fault changes what the API says, which stays as it was: "
                              "give it in the topology the lab starts with")
        if self._listeners is None:
            raise ConfigError("the lab is not running with listeners: there is no port to plant a fault on")
        topology = dataclasses.replace(self.topology, faults=(*self.topology.faults, fault))
        if self._listeners.update(self._served(topology)) == 0:
            raise ConfigError(f"the {fault.kind} fault on {', '.join(fault.objects)} changes no listener of the lab")
        self.topology = topology
        return tuple(f for f in self.faults if f.fault_id == len(topology.faults))

    def add_api_key(self, role: Role, account: str = "csaudit") -> tuple[str, str]:
        """A new API key and secret of an account with this role (the lab's own key is Root Admin's), as
        createAccount roleid= and registerUserKeys make one. Works before or after start()."""
        key, secret = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
        caller = Caller(account, role)
        self._extra_keys.append((key, secret, caller))
        if self._service is not None:
            self._service.add_key(key, secret, caller)
        return key, secret

    def stop(self) -> None:
        """Close every socket and join every thread (bounded waits)."""
        if self._listeners is not None:
            self._listeners.stop()
        if self._api is not None:
            self._api.stop()
        self._api = self._listeners = None

    # ------------------------------------------------------------ what it serves
    @property
    def endpoint(self) -> str:
        return f"http://{self.topology.management_servers[0].address}:{API_PORT}/client/api"

    @property
    def integration_endpoint(self) -> str | None:
        port = self.topology.integration_port
        if port <= 0:
            return None
        return f"http://{self.topology.management_servers[0].address}:{port}/client/api"

    @property
    def faults(self) -> tuple[Fault, ...]:
        return planted_faults(self.topology)

    @property
    def services(self) -> tuple[Service, ...]:
        """Every port the lab serves (faults applied), API ports included."""
        return tuple(planned_services(self.topology))

    @property
    def certificate(self) -> bytes | None:
        """The DER certificate the running lab's TLS ports serve, made when it started (None when stopped)."""
        return self._listeners.certificate if self._listeners is not None else None

    @property
    def relocated(self) -> bool:
        return self.topology is not self.requested

    @property
    def requests(self) -> collections.Counter:
        """Requests served per command (a snapshot), errors and refused writes included."""
        if self._service is None:
            return collections.Counter()
        return self._service.counts()[0]

    def commands_of(self, account: str) -> collections.Counter:
        """The commands the API keys of one account sent (a snapshot): "admin" for the lab's own key,
        add_api_key's account otherwise. Refused ones included: what a client really sent."""
        if self._service is None:
            return collections.Counter()
        return self._service.commands_of(account)

    @property
    def write_attempts(self) -> int:
        """How many requests tried a command that is not list*/get*/query* (all refused)."""
        if self._service is None:
            return 0
        return self._service.counts()[1]

    def write_ini(self, path: str | os.PathLike, section: str = "cloudstack",
                  key: str | None = None, secret: str | None = None) -> str:
        """A cs-style cloudstack.ini for this lab (its own key, or one of add_api_key's), readable by the
        owner only (0600)."""
        path = os.fspath(path)
        key, secret = (key, secret) if key else (self.key, self.secret)
        # ConfigParser interpolates '%': double it so any secret reads back unchanged.
        text = (f"[{section}]\nendpoint = {self.endpoint}\nkey = {key.replace('%', '%%')}\n"
                f"secret = {secret.replace('%', '%%')}\n")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(descriptor, 0o600)  # an existing file keeps its mode otherwise
            os.write(descriptor, text.encode("utf-8"))
        finally:
            os.close(descriptor)
        return path
