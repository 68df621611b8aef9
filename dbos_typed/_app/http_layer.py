"""The HTTP layer the admin server and the dashboard share: who may call, and at what cost.

Both serve a table of `Route`s from a stdlib `ThreadingHTTPServer`. Every request passes
these checks in order, and the first that fails answers it, in JSON:

1. Host names this server (one of its loopback names, its configured host or its address,
   with its port), else 421: a page that reached it through DNS rebinding names its own.
2. Origin, on every method but GET (and on a GET that changes state, `/deactivate`), is
   absent or this server's own, else 403: browsers name the page's origin, tools send
   none, so no web page can change state here. A request that changes state and says
   `Sec-Fetch-Site: cross-site` (what a browser sends for a link or an image another site
   makes it load, Origin-less on a GET) is refused with 403 too.
3. The token, where the server has one: `Authorization: Bearer <token>`, else 401. It
   guards every route that changes state, and reads too unless the server says otherwise
   (`Policy.token_for_reads`); public routes (the dashboard's static files) need none.
4. A route for the path (404) and the method (405); a route that changes state where the
   server refuses changes (the dashboard without `--allow-actions`) gets 403.
5. A body, if any: `Content-Type: application/json` (415), a valid Content-Length (400;
   chunked bodies get 411) of at most `Limits.max_body_bytes` (413), arriving within
   `Limits.request_timeout` (408), holding UTF-8 JSON (400).
6. The route checks each field it reads (400 naming the field).

A route that fails on a request it could not serve answers 404 (unknown workflow) or 400
(malformed option); any other failure is a 500 whose details go to the log, never to the
client.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from dbos_typed._app import admin_fields as read
from dbos_typed._core.context import DBOSContext
from dbos_typed.errors import (
    DBOSError,
    InitializationError,
    InvalidOptionError,
    NonExistentWorkflowError,
)

logger = logging.getLogger("dbos_typed")

#: The largest request body read, in bytes; DBOS tools send a few hundred.
MAX_BODY_BYTES = 1 << 20
#: Seconds a client has for each read of its request line and headers, and for its whole
#: body; a slower one is disconnected, so it cannot hold a handler thread.
REQUEST_TIMEOUT_SECONDS = 5.0

_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# A Host header or an origin's authority: a name or bracketed IPv6 address, then a port.
_AUTHORITY = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9._~-]+)(?::([0-9]{1,5}))?")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may cost the server.

    Attributes:
        max_body_bytes: The largest body read; a larger one is refused unread (413).
        request_timeout: Seconds allowed for each read of the request line and headers,
            and for the whole body; a slower client is disconnected.
    """

    max_body_bytes: int = MAX_BODY_BYTES
    request_timeout: float = REQUEST_TIMEOUT_SECONDS


#: The limits a server has unless it is given others.
DEFAULT_LIMITS = Limits()


class Refusal(Exception):
    """A request answered with an error status without running its route."""

    def __init__(
        self, status: HTTPStatus, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class Raw:
    """An answer that is not JSON: a static file."""

    data: bytes
    content_type: str
    headers: Mapping[str, str]


RouteFn = Callable[["Handler", dict[str, str], Any], tuple[int, Any]]
#: "public" needs no token (static files); "read" changes nothing; "write" changes state.
RouteKind = Literal["public", "read", "write"]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: a method, a path pattern (its named groups are parameters), a handler."""

    method: str
    path: re.Pattern[str]
    run: RouteFn
    kind: RouteKind = "read"


def route(method: str, path: str, run: RouteFn, kind: RouteKind = "read") -> Route:
    """A `Route` whose path is a regular expression matched against the whole path."""
    return Route(method, re.compile(path), run, kind)


@dataclass(frozen=True, slots=True)
class Policy:
    """What one server accepts; shared, read-only, by its handler threads."""

    #: Shown in log lines ("admin server", "dashboard").
    label: str
    token: bytes | None
    #: Whether reads need the token too (writes always do, where there is one).
    token_for_reads: bool
    # The (name, port) pairs a Host header may give; None when the server listens on every
    # address and cannot know its names (it then requires a token, and the token decides).
    hosts: frozenset[tuple[str, int]] | None
    limits: Limits
    #: Why routes that change state are refused here (403), or None where they run.
    writes_refused: str | None = None
    #: The largest `limit` a listing accepts here (None: any).
    max_page_size: int | None = None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise Refusal(HTTPStatus.BAD_REQUEST, "the body is not UTF-8 text") from None
    except RecursionError:
        raise Refusal(HTTPStatus.BAD_REQUEST, "the body's JSON nests too deeply") from None
    except ValueError as exc:  # malformed JSON, NaN or Infinity, an int of 4300+ digits
        raise Refusal(HTTPStatus.BAD_REQUEST, f"the body is not valid JSON: {exc}") from None


def _authority(value: str) -> tuple[str, int] | None:
    """The (name, port) a Host header or an origin names; None if it is malformed."""
    match = _AUTHORITY.fullmatch(value.strip().lower())
    return None if match is None else (match[1], int(match[2] or 80))


def bracketed(host: str) -> str:
    """An IPv6 address in brackets, as URLs and Host headers write it; other hosts as given."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class Handler(BaseHTTPRequestHandler):
    """Answers one connection's request through the checks above, then its route."""

    ctx: DBOSContext  # these three are set on the subclass made for each server
    policy: Policy
    routes: tuple[Route, ...]
    timeout = REQUEST_TIMEOUT_SECONDS  # applied to the socket by StreamRequestHandler
    # HTTP/1.0 (the base class's default): one request per connection, so a refused request
    # whose body was left unread cannot be taken for the next one.
    protocol_version = "HTTP/1.0"
    # The version assumed until the request line is parsed; the base class's HTTP/0.9
    # would answer a malformed line with a bare body and no status line.
    default_request_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(f"{self.policy.label}: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def parse_request(self) -> bool:
        # Other methods go through the same dispatcher, so they get a JSON 405 (or 404, or
        # whichever check fails first) instead of the base class's HTML 501.
        if not super().parse_request():
            return False
        if self.command in ("GET", "POST"):
            return True
        self._dispatch()
        return False

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer a request the base class could not parse, in JSON like every answer."""
        self.log_error("code %d, message %s", code, message)
        text = message or HTTPStatus(code).phrase
        self._reply(code, {"error": text}, {"Connection": "close"})

    def query_parameters(self) -> dict[str, str]:
        """The query string's parameters (the last value of each), checked as text."""
        parsed = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        return {key: read.text(values[-1], key) for key, values in parsed.items()}

    def _dispatch(self) -> None:
        started = time.perf_counter()
        try:
            status, payload = self._answer()
        except Refusal as refusal:
            headers = {"Connection": "close", **refusal.headers}
            self._reply(refusal.status, {"error": str(refusal)}, headers)
            return
        # How long the server took, for the browser's network panel and for measurements.
        elapsed = (time.perf_counter() - started) * 1000
        self._reply(status, payload, {"Server-Timing": f"app;dur={elapsed:.1f}"})

    def _answer(self) -> tuple[int, Any]:
        self._check_host()
        found, params, miss = self._route()
        self._check_origin(found)
        self._check_token(found)
        if found is None:
            assert miss is not None
            raise miss
        if found.kind == "write" and self.policy.writes_refused is not None:
            raise Refusal(HTTPStatus.FORBIDDEN, self.policy.writes_refused)
        body = self._body()
        return self._run(found, params, body)

    def _check_host(self) -> None:
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1:
            raise Refusal(HTTPStatus.BAD_REQUEST, "expected one Host header")
        allowed = self.policy.hosts
        if allowed is not None and _authority(hosts[0]) not in allowed:
            raise Refusal(
                HTTPStatus.MISDIRECTED_REQUEST, f"this server does not answer to {hosts[0]!r}"
            )

    def _check_origin(self, found: Route | None) -> None:
        # Browsers send Origin with every cross-origin request that can change state; tools
        # send none. Reads by GET are left alone: without CORS headers no page can read the
        # answer. A GET that changes state is a link away from any page, so it is checked
        # too, and refused when the browser says another site made it.
        writes = found is not None and found.kind == "write"
        if writes and self.headers.get("Sec-Fetch-Site", "").strip().lower() == "cross-site":
            raise Refusal(HTTPStatus.FORBIDDEN, "cross-site requests cannot change state here")
        origin = self.headers.get("Origin")
        if (self.command == "GET" and not writes) or origin is None or self._own_origin(origin):
            return
        raise Refusal(HTTPStatus.FORBIDDEN, f"requests from origin {origin!r} are refused")

    def _own_origin(self, origin: str) -> bool:
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        if parts.scheme != "http" or "@" in parts.netloc or parts.path or parts.query:
            return False
        if self.policy.hosts is None:
            # Names unknown: the origin must be the one the request itself was sent to.
            return parts.netloc.lower() == str(self.headers.get("Host", "")).strip().lower()
        return _authority(parts.netloc) in self.policy.hosts

    def _check_token(self, found: Route | None) -> None:
        expected = self.policy.token
        if expected is None:
            return
        # An unknown path is treated as a read, so it tells a caller without the token
        # nothing about which paths exist.
        kind = "read" if found is None else found.kind
        if kind == "public" or (kind == "read" and not self.policy.token_for_reads):
            return
        scheme, _, supplied = str(self.headers.get("Authorization", "")).strip().partition(" ")
        # compare_digest takes as long whatever the first differing byte: no timing oracle.
        given = supplied.strip().encode("latin-1", "replace")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, expected):
            raise Refusal(
                HTTPStatus.UNAUTHORIZED,
                f"this {self.policy.label} requires Authorization: Bearer <token>",
                {"WWW-Authenticate": 'Bearer realm="dbos-admin"'},
            )

    def _route(self) -> tuple[Route | None, dict[str, str], Refusal | None]:
        path = urlsplit(self.path).path
        allowed: list[str] = []
        for candidate in self.routes:
            match = candidate.path.fullmatch(path)
            if match is None:
                continue
            if candidate.method == self.command:
                return candidate, {k: unquote(v) for k, v in match.groupdict().items()}, None
            allowed.append(candidate.method)
        if allowed:
            return (
                None,
                {},
                Refusal(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    f"{self.command} is not allowed on {path}; use {' or '.join(allowed)}",
                    {"Allow": ", ".join(allowed)},
                ),
            )
        return None, {}, Refusal(HTTPStatus.NOT_FOUND, f"no route for {self.command} {path}")

    def _body(self) -> Any:
        """The request's JSON body (None without one), within the size and time limits."""
        if "Transfer-Encoding" in self.headers:
            raise Refusal(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length, not a chunked body")
        length = self._content_length()
        if length == 0:
            return None
        if "Content-Type" not in self.headers or (
            self.headers.get_content_type() != "application/json"
        ):
            # Also a guard: a page can send text/plain anywhere without asking, but not JSON.
            raise Refusal(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as Content-Type: application/json"
            )
        limit = self.policy.limits.max_body_bytes
        if length > limit:
            raise Refusal(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the body has {length} bytes; at most {limit} are accepted",
            )
        return _parse_json(self._read(length))

    def _content_length(self) -> int:
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return 0
        if len(set(values)) != 1 or not _CONTENT_LENGTH.fullmatch(values[0].strip()):
            raise Refusal(
                HTTPStatus.BAD_REQUEST, "invalid Content-Length: expected one non-negative integer"
            )
        return int(values[0])

    def _read(self, length: int) -> bytes:
        # One deadline for the whole body, and one socket read at a time against it: a
        # client trickling a byte at a time cannot hold the thread past the timeout.
        timeout = self.policy.limits.request_timeout
        deadline = time.monotonic() + timeout
        chunks: list[bytes] = []
        remaining = length
        try:
            while remaining:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.connection.settimeout(left)
                chunk = self.rfile.read1(min(remaining, 1 << 16))
                if not chunk:
                    raise Refusal(HTTPStatus.BAD_REQUEST, "the body ended before Content-Length")
                chunks.append(chunk)
                remaining -= len(chunk)
        except TimeoutError:
            raise Refusal(
                HTTPStatus.REQUEST_TIMEOUT, f"the body did not arrive within {timeout:g} s"
            ) from None
        finally:
            self.connection.settimeout(timeout)
        return b"".join(chunks)

    def _run(self, found: Route, params: dict[str, str], body: Any) -> tuple[int, Any]:
        label = self.policy.label
        try:
            checked = {key: read.text(value, key) for key, value in params.items()}
            return found.run(self, checked, body)
        except NonExistentWorkflowError as exc:
            return HTTPStatus.NOT_FOUND, {"error": str(exc)}
        except InvalidOptionError as exc:
            return HTTPStatus.BAD_REQUEST, {"error": str(exc)}
        except Refusal as refusal:
            return refusal.status, {"error": str(refusal)}
        except DBOSError as exc:
            logger.warning("%s: %s %s failed: %s", label, self.command, self.path, exc)
            return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc)}
        except Exception:
            # A defect here, not in the request: the log gets the traceback, the client not.
            logger.exception("%s: %s %s failed", label, self.command, self.path)
            return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error; see the log"}

    def _reply(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        sent = {"X-Content-Type-Options": "nosniff", **(headers or {})}
        if isinstance(payload, Raw):
            data, content_type = payload.data, payload.content_type
            sent.update(payload.headers)
        else:
            data = b"" if payload is None else json.dumps(payload).encode()
            content_type = "application/json" if payload is not None else ""
            # Workflow data changes by the second: no cache may keep an old answer.
            sent.setdefault("Cache-Control", "no-store")
        self.send_response(status)
        for name, value in sent.items():
            self.send_header(name, value)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    label = "server"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-answer is routine; anything else is a defect worth a
        # traceback in the log (never on stderr, where the base class prints it).
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            logger.debug("%s: connection from %s ended: %s", self.label, client_address, error)
        else:
            logger.error("%s: unexpected error", self.label, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


@dataclass(frozen=True, slots=True)
class Naming:
    """How a server's errors name it and its settings, so a message says what to change."""

    server: str  # "the admin server"
    host_setting: str  # "admin_host"
    port_setting: str  # "admin_port"
    token_fix: str  # "set admin_token"


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).version == 6
    except ValueError:
        return False


def _addresses(host: str, port: int, family: socket.AddressFamily, naming: Naming) -> list[str]:
    """The addresses binding to `host` may use."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, family, socket.SOCK_STREAM)
    except OSError as exc:
        raise InitializationError(
            f"{naming.server} cannot resolve {naming.host_setting} {host!r}: {exc}"
        ) from exc
    return [str(info[4][0]).split("%", 1)[0] for info in infos]


class Listener:
    """A bound server socket; `serve_forever` answers requests on it until `shutdown`.

    The port is bound when it is made, so a taken port is known before anything starts.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        has_token: bool,
        naming: Naming,
    ) -> None:
        """Bind to `host`:`port`.

        Raises:
            InitializationError: the host is not a loopback one and there is no token, the
                host does not resolve, or the port cannot be bound (taken, or not allowed).
        """
        family = socket.AF_INET6 if _is_ipv6(host) else socket.AF_INET
        addresses = _addresses(host, port, family, naming)
        if not has_token and not all(ipaddress.ip_address(a).is_loopback for a in addresses):
            raise InitializationError(
                f"{naming.server} would listen on {host!r}, which is not a loopback address, "
                f"without a token: {naming.token_fix}, or keep {naming.host_setting} "
                "on 127.0.0.1"
            )
        server_class = _Server6 if family == socket.AF_INET6 else _Server
        try:
            self.server = server_class((host.strip("[]"), port), Handler)
        except OSError as exc:
            raise InitializationError(
                f"{naming.server} cannot listen on {host}:{port} ({naming.port_setting} {port}): "
                f"{exc.strerror or exc}; free the port or choose another {naming.port_setting}"
            ) from exc
        self.server.label = naming.server.removeprefix("the ")
        bound = str(self.server.server_address[0])
        self.port = int(self.server.server_address[1])
        self.host = bracketed(bound)
        self.hosts = _allowed_hosts(host, bound, self.port)

    @property
    def url(self) -> str:
        """The base URL the server listens on."""
        return f"http://{self.host}:{self.port}"

    def handle_with(self, ctx: DBOSContext, policy: Policy, routes: tuple[Route, ...]) -> None:
        """Answer requests with these routes, for this context, under this policy."""
        attributes = {
            "ctx": ctx,
            "policy": policy,
            "routes": routes,
            "timeout": policy.limits.request_timeout,
        }
        self.server.RequestHandlerClass = type("BoundHandler", (Handler,), attributes)


def _allowed_hosts(host: str, bound: str, port: int) -> frozenset[tuple[str, int]] | None:
    if ipaddress.ip_address(bound).is_unspecified:
        return None
    names = {*_LOOPBACK_NAMES, bracketed(host.lower()), bracketed(bound)}
    return frozenset((name, port) for name in names)
