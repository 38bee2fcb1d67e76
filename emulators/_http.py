"""HTTPS plumbing shared by the emulators: request/response types, routing, faults, TLS server.

Each emulator is a ``Service``: it maps a request to a route id plus a handler,
and knows how to phrase an error in its own wire format (so injected faults
look exactly like the real service's errors).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from .world import Fault, World

Handler = Callable[["Request"], "Response"]


@dataclass
class Request:
    method: str
    path: str  # percent-decoded, without the query string
    raw_path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    base_url: str  # https://host:port of this emulator
    context: dict[str, Any] = field(default_factory=dict)

    def q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        if not self.body:
            return None
        return json.loads(self.body)

    def header(self, name: str) -> str:
        return str(self.headers.get(name, "") or "")


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, obj: Any, headers: dict[str, str] | None = None, content_type: str = "") -> Response:
    body = json.dumps(obj, separators=(",", ":")).encode()
    out = {"Content-Type": content_type or "application/json; charset=utf-8"}
    out.update(headers or {})
    return Response(status, body, out)


def empty(status: int = 204, headers: dict[str, str] | None = None) -> Response:
    return Response(status, b"", dict(headers or {}))


# What a gateway in front of a service (Azure Application Gateway, Front Door) answers when the
# service behind it fails: an HTML page, not the service's JSON error (guessed page).
_GATEWAY_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>Microsoft-Azure-Application-Gateway/v2</center>"
    "\r\n</body>\r\n</html>\r\n"
)


def gateway_html_response(status: int, retry_after: float | None = None) -> Response:
    """A fault with ``html=True``: the gateway's HTML page, ``Content-Type: text/html``."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    headers = {"Content-Type": "text/html"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after_value(retry_after)
    return Response(status, _GATEWAY_PAGE.format(status=status, reason=reason).encode(), headers)


def retry_after_value(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


class HttpError(Exception):
    """Raised by handlers to answer an error in the service's own format."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.details = details  # Graph's error.details, when the real answer has them


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    route_id: str
    handler: Callable[..., Response]


class Service:
    """Base of every emulator: a route table and the service's error format."""

    name: ClassVar[str] = "service"

    def __init__(self, world: World) -> None:
        self.world = world
        self.base_url = ""
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, route_id: str, handler: Callable[..., Response]) -> None:
        self.routes.append(Route(method, re.compile(pattern + r"\Z"), route_id, handler))

    def match(self, req: Request) -> tuple[str, Handler]:
        """The route id and a zero-argument-bound handler; unknown paths get '<service>.unknown'."""
        allowed: list[str] = []
        for route in self.routes:
            m = route.pattern.match(req.path)
            if not m:
                continue
            if route.method != req.method:
                allowed.append(route.method)
                continue
            return route.route_id, functools.partial(route.handler, **m.groupdict())
        if allowed:
            return f"{self.name}.method_not_allowed", lambda r: self.error_response(
                r, 405, "MethodNotAllowed", f"The HTTP method '{r.method}' is not allowed for this resource."
            )
        return f"{self.name}.unknown", self.unknown_route

    def unknown_route(self, req: Request) -> Response:
        return self.error_response(req, 404, "NotFound", f"The resource '{req.path}' was not found.")

    def error_response(
        self, req: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        return json_response(status, {"error": {"code": code, "message": message}}, headers)

    def default_code(self, status: int) -> str:
        return {
            400: "BadRequest",
            401: "Unauthorized",
            403: "Forbidden",
            404: "NotFound",
            409: "Conflict",
            429: "TooManyRequests",
            500: "InternalServerError",
            502: "BadGateway",
            503: "ServiceUnavailable",
            504: "GatewayTimeout",
        }.get(status, "Error")

    def answer_fault(self, req: Request, route_id: str, fault: Fault) -> Response:
        """The answer to a fault that answers: a gateway's HTML page (``html``), else the service's own
        error format (``fault_response``)."""
        if fault.html:
            return gateway_html_response(fault.status or 502, fault.retry_after)
        return self.fault_response(req, route_id, fault)

    def fault_response(self, req: Request, route_id: str, fault: Fault) -> Response:
        status = fault.status or 500
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = retry_after_value(fault.retry_after)
        code = fault.error_code or self.default_code(status)
        return self.error_response(req, status, code, f"Injected fault on {route_id}.", headers)

    def decorate(self, req: Request, resp: Response) -> None:
        """Add headers every answer of this service carries (request ids...)."""


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], ctx: ssl.SSLContext) -> None:
        self._ctx = ctx
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The handshake happens later in the connection's own thread so a slow client cannot stall accept().
        wrapped = self._ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._open_lock:
            self._open.add(wrapped)
        return wrapped, addr

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up, failed handshakes and dropped connections are normal here; stay quiet.
        return

    def close_all(self) -> None:
        with self._open_lock:
            conns = list(self._open)
            self._open.clear()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()


def make_handler(service: Service) -> type[BaseHTTPRequestHandler]:
    world = service.world

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "emulator"

        def version_string(self) -> str:
            return self.server_version

        def setup(self) -> None:
            conn = self.request
            if isinstance(conn, ssl.SSLSocket):
                conn.do_handshake()
            super().setup()

        def log_message(self, format: str, *args: Any) -> None:
            # Access lines go to world.call_log instead; stderr stays clean and secret-free.
            return

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

        def do_PATCH(self) -> None:
            self._handle()

        def do_DELETE(self) -> None:
            self._handle()

        def do_HEAD(self) -> None:
            self._handle()

        def _read_body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _handle(self) -> None:
            body = self._read_body()
            parts = urlsplit(self.path)
            host = self.headers.get("Host") or "localhost"
            req = Request(
                method=self.command,
                path=unquote(parts.path),
                raw_path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers=self.headers,
                body=body,
                base_url=service.base_url or f"https://{host}",
            )
            route_id, handler = service.match(req)
            world.count_call(route_id)
            fault = world.faults.take(route_id)
            delay = world.latency + (fault.latency if fault else 0.0)
            if delay > 0:
                time.sleep(delay)  # outside the world lock: latency must not serialise other callers
            if fault is not None and fault.kill_pid is not None:
                if fault.phase == "after":
                    self._process(req, handler)  # the write lands, then the caller dies before the answer
                world.kill(fault.kill_pid)
                self._drop(req, route_id)
                return
            answers = fault is not None and bool(fault.drop or fault.status or fault.html)
            faulted = False
            if fault is not None and answers and fault.phase == "before":
                if fault.drop:
                    self._drop(req, route_id)
                    return
                resp, faulted = service.answer_fault(req, route_id, fault), True
            else:
                resp = self._process(req, handler)
                if fault is not None and answers and fault.phase == "after":
                    if fault.drop:
                        self._drop(req, route_id)
                        return
                    resp, faulted = service.answer_fault(req, route_id, fault), True
            if not (faulted and fault is not None and fault.html):
                # A gateway's page carries none of the service's own headers (request ids...).
                service.decorate(req, resp)
            world.record_call(route_id, req.method, req.path, resp.status)
            self._send(resp)

        def _process(self, req: Request, handler: Handler) -> Response:
            try:
                with world.lock:
                    return handler(req)
            except HttpError as err:
                if err.details is not None:
                    req.context["error_details"] = err.details
                return service.error_response(req, err.status, err.code, err.message, err.headers)
            except (ValueError, json.JSONDecodeError) as err:
                return service.error_response(req, 400, service.default_code(400), f"Malformed request: {err}")
            except Exception as err:  # an emulator bug must surface as a 500, not a hung connection
                message = f"Emulator error: {type(err).__name__}"
                return service.error_response(req, 500, service.default_code(500), message)

        def _drop(self, req: Request, route_id: str) -> None:
            world.record_call(route_id, req.method, req.path, 0)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)

        def _send(self, resp: Response) -> None:
            try:
                reason = HTTPStatus(resp.status).phrase
            except ValueError:
                reason = ""
            lines = [
                f"{self.protocol_version} {resp.status} {reason}",
                f"Server: {self.version_string()}",
                f"Date: {self.date_time_string()}",
            ]
            lines += [f"{k}: {v}" for k, v in resp.headers.items() if k.lower() != "content-length"]
            lines.append(f"Content-Length: {len(resp.body)}")
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
            # Headers and body in one write: two small writes trip Nagle + delayed ACK (~40 ms a request).
            self.wfile.write(head + (resp.body if self.command != "HEAD" else b""))
            self.wfile.flush()

    return _Handler


def new_request_id() -> str:
    return str(uuid.uuid4())


class RunningServer:
    """One service on one port, served from a daemon thread."""

    def __init__(self, service: Service, host: str, port: int, ctx: ssl.SSLContext) -> None:
        self.service = service
        self.httpd = _TLSServer((host, port), make_handler(service), ctx)
        self.port = int(self.httpd.server_address[1])
        self.base_url = f"https://{host}:{self.port}"
        service.base_url = self.base_url
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, name=f"emulator-{service.name}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.close_all()
        self.httpd.server_close()
        self.thread.join(timeout=5)
