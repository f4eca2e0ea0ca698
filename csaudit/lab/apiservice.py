"""What one API request means: authentication, counting, dispatch, serialisation.

Two entry points mirror the two real front doors of a management server:
`signed()` is the ApiServlet on 8080 (signature checked, query + form body), and
`integration()` is the unauthenticated integration port (query string only, no
checks, runs as the SYSTEM account).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import threading
from collections.abc import Iterable
from urllib.parse import parse_qsl

from csaudit.lab import signing
from csaudit.lab.commands import (
    CS_SERVER_API,
    LIST_APIS,
    UNSUPPORTED_ACTION,
    ApiFailure,
    Caller,
    CommandContext,
    Request,
    execute,
    is_api_name,
    is_read_only,
)
from csaudit.lab.discovery import list_apis
from csaudit.lab.resolved import Inventory
from csaudit.lab.schema import Topology
from csaudit.lab.xmlrender import to_xml

log = logging.getLogger("csaudit.lab")

UNAUTHORIZED = 401
VERIFY_FAILED = "unable to verify user credentials and/or request signature"
ADMIN, SYSTEM = Caller("admin"), Caller("system")


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def first_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Servlet getParameter(): the first value of each name wins."""
    params: dict[str, str] = {}
    for name, value in pairs:
        params.setdefault(name, value)
    return params


def parse_query(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True, max_num_fields=1000)


class ApiService:
    def __init__(self, topology: Topology, api_key: str, secret_key: str):
        self.context = CommandContext(Inventory(topology))
        self.version = topology.version
        self._secrets = {api_key: secret_key}
        self._callers = {api_key: ADMIN}  # api key -> its account and role
        self.json_type = topology.settings.get("json.content.type",
                                               "application/json; charset=UTF-8")
        self._lock = threading.Lock()
        self.requests: collections.Counter[str] = collections.Counter()
        self.write_attempts: collections.Counter[str] = collections.Counter()
        # per account of a known API key: the commands it sent (signed or not, refused or not)
        self.by_account: collections.defaultdict[str, collections.Counter[str]] = \
            collections.defaultdict(collections.Counter)

    # ------------------------------------------------------------ bookkeeping
    def _count(self, command: str) -> None:
        with self._lock:
            self.requests[command] += 1
            if not is_read_only(command):
                self.write_attempts[command] += 1

    def commands_of(self, account: str) -> collections.Counter[str]:
        with self._lock:
            return collections.Counter(self.by_account.get(account, {}))

    def counts(self) -> tuple[collections.Counter, int]:
        """(requests per command, total write attempts), consistent with each other."""
        with self._lock:
            return collections.Counter(self.requests), sum(self.write_attempts.values())

    def add_key(self, api_key: str, secret_key: str, caller: Caller) -> None:
        """Another API key, of an account whose role decides what it may call."""
        with self._lock:
            self._secrets[api_key] = secret_key
            self._callers[api_key] = caller

    # ------------------------------------------------------------ front doors
    def signed(self, query: str, form_body: str | None) -> Response:
        """ApiServlet: parameters from the query and the form body (POST)."""
        pairs = parse_query(query) + (parse_query(form_body) if form_body else [])
        params = first_values(pairs)
        command = params.get("command", "")
        self._count(command)
        as_json = params.get("response", "").lower() == "json"
        if not command:
            return self._error(ApiFailure(400, "no command specified", generic_envelope=True),
                               None, as_json)
        caller = self._callers.get(next((v for k, v in params.items() if k.lower() == "apikey"), ""))
        if caller is not None:
            with self._lock:
                self.by_account[caller.account][command] += 1
        served = self.context.knows(command)
        # ApiServer.verifyRequest: a command the server does not have is refused like a bad signature
        # (401), in the errorresponse envelope (getSerializedApiError finds no command class for it).
        if not served and (is_read_only(command) or not is_api_name(command)):
            return self._error(ApiFailure(UNAUTHORIZED, VERIFY_FAILED, generic_envelope=True), command, as_json)
        # Then, for a known key and before its signature is checked, commandAvailable: a command the
        # account's role lacks is UnavailableCommandException, HTTP 432 in errorresponse. The lab serves
        # no write command, so its own key's role lacks every write.
        if caller is not None and not (served and caller.may_call(command)):
            return self._error(ApiFailure(UNSUPPORTED_ACTION, f"The API [{command}] does not exist or is not "
                                          f"available for the account {caller.account}.", CS_SERVER_API,
                                          generic_envelope=True), command, as_json)
        if caller is None or not signing.verify(params, self._secrets):
            return self._error(ApiFailure(UNAUTHORIZED, VERIFY_FAILED), command, as_json)
        return self._run(command, params, caller, as_json)

    def integration(self, query: str) -> Response:
        """The integration port: query string only (POST bodies are ignored), no auth."""
        params = first_values(parse_query(query))
        command = params.get("command", "")
        self._count(command)
        as_json = params.get("response", "").lower() == "json"
        if not command:
            return self._error(ApiFailure(UNSUPPORTED_ACTION, "Invalid request, no command sent",
                                          generic_envelope=True), None, as_json)
        if not self.context.knows(command):  # includes every write command
            return self._error(ApiFailure(UNSUPPORTED_ACTION, f"Unknown API command: {command}",
                                          generic_envelope=True), command, as_json)
        return self._run(command, params, SYSTEM, as_json)

    # ------------------------------------------------------------ helpers
    def _run(self, command: str, params: dict[str, str], caller: Caller, as_json: bool) -> Response:
        lowered = {name.lower(): value for name, value in params.items()}
        request = Request(command, lowered, caller)
        try:
            if command == LIST_APIS:
                status, document = 200, {f"{request.short_name}response": list_apis(self.context, request)}
            else:
                status, document = execute(self.context, request)
        except ApiFailure as failure:
            return self._error(failure, command, as_json)
        except Exception:  # a lab bug must still answer like a server, and be visible
            log.exception("lab API failed on %s", command)
            return self._error(ApiFailure(530, "Internal error executing command, please "
                                          "contact your system administrator", 4250),
                               command, as_json)
        return self._render(status, document, as_json)

    def _error(self, failure: ApiFailure, command: str | None, as_json: bool) -> Response:
        response = self._render(failure.status, failure.body(command), as_json)
        # ApiServlet also puts the text in a header
        return dataclasses.replace(response, headers=(("X-Description", failure.text),))

    def _render(self, status: int, document: dict, as_json: bool) -> Response:
        if as_json:
            body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            return Response(status, self.json_type, body)
        return Response(status, "text/xml; charset=UTF-8", to_xml(document, self.version))
