"""The sandbox payment provider's HTTP server: routing, limits, auth, lifecycle (configuration:
sandboxpay/config.py).

Why the stdlib `http.server.ThreadingHTTPServer`: the sandbox is a test double with a handful of
JSON endpoints; no HTTP framework is a runtime dependency of the project (uv.lock has werkzeug
only as a dev tool's dependency), and the stdlib server, with the bounds added here, is enough:
- at most `max_connections` requests at once (beyond: 503 at once, no thread started), a socket
  timeout per request, bodies capped (413), HTTP/1.0 (one request per connection, so a stop
  never waits on idle keep-alive connections);
- JSON errors `{"error": {"type", "code", "message"}}` for everything, including the errors
  http.server raises itself (its default HTML pages would echo the request line);
- a graceful stop: no new connections, in-flight requests finish, due webhooks are flushed.
Logs carry the request id, method, path, status and time; never a body (cards are in bodies).
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import http
import json
import logging
import re
import secrets
import socketserver
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import urlsplit

from fitcore.clock import Clock
from fitcore.config import Env
from fitcore.logs import request_id_var
from fitcore.settings import clock_from_env
from sandboxpay.api import Api, Request, Response
from sandboxpay.config import SandboxConfig
from sandboxpay.store import ApiError, Store
from sandboxpay.webhooks import WebhookSender

log = logging.getLogger("sandboxpay")

_DRAIN_LIMIT: Final = 1024 * 1024
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True)
class Route:
    template: str  # "{id}" stands for an id
    # method -> (Api method name, needs the API key)
    methods: dict[str, tuple[str, bool]]

    @property
    def pattern(self) -> re.Pattern[str]:
        return _pattern(self.template)


@functools.cache
def _pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.escape(template).replace(r"\{id\}", r"([A-Za-z0-9_]{1,64})"))


ROUTES: Final = (
    Route("/health", {"GET": ("health", False)}),
    Route("/v1/tokens", {"POST": ("create_token", False)}),
    Route("/v1/charges", {"POST": ("create_charge", True)}),
    Route("/v1/charges/{id}", {"GET": ("get_charge", True)}),
    Route("/v1/charges/{id}/confirm", {"POST": ("confirm_charge", False)}),
    Route("/v1/refunds", {"POST": ("create_refund", True)}),
)


def error_body(code: str, message: str, type_: str, param: str | None = None) -> bytes:
    error: dict[str, Any] = {"type": type_, "code": code, "message": message}
    if param:
        error["param"] = param
    return json.dumps({"error": error}).encode()


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    _allow = ""  # the Allow header of a 405
    protocol_version = "HTTP/1.0"
    server_version = "sandboxpay"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        # A slow client holds a thread for at most this long per read.
        self.connection.settimeout(self.server.sandbox.config.request_timeout)

    # Every method goes through the router: a known path with another method is a 405.
    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        started = time.monotonic()
        rid = self.headers.get("X-Request-Id", "")
        rid = rid if _REQUEST_ID.fullmatch(rid) else secrets.token_hex(8)
        context = request_id_var.set(rid)
        path = urlsplit(self.path).path
        route, match = next(
            ((r, m) for r in ROUTES if (m := r.pattern.fullmatch(path))), (None, None)
        )
        try:
            status, payload = self._answer(route, match)
            body = json.dumps(payload).encode()
        except ApiError as exc:
            status = exc.status
            body = error_body(exc.code, exc.message, exc.type, exc.param)
        except Exception:
            log.exception("unexpected error")
            status = 500
            body = error_body("internal_error", f"internal error (request {rid})", "api_error")
        try:
            self._send(status, body, rid)
        except OSError:  # the client went away
            self.close_connection = True
        # The route's template, not the path: a path is whatever the client typed.
        log.info(
            "request",
            extra={
                "method": self.command,
                "route": route.template if route else "-",
                "status": status,
                "ms": round((time.monotonic() - started) * 1000, 1),
            },
        )
        request_id_var.reset(context)

    def _answer(self, route: Route | None, match: re.Match[str] | None) -> Response:
        if route is None or match is None:
            raise ApiError(404, "invalid_request_error", "not_found", "no such endpoint")
        if self.command not in route.methods:
            self._allow = ", ".join(route.methods)
            raise ApiError(405, "invalid_request_error", "method_not_allowed", "wrong method")
        endpoint, needs_key = route.methods[self.command]
        body = self._body()
        if needs_key:
            self._authenticate()
        headers = {header.lower(): value for header, value in self.headers.items()}
        request = Request(match.groups(), headers, body)
        answer: Response = getattr(self.server.sandbox.api, endpoint)(request)
        return answer

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise ApiError(411, "invalid_request_error", "length_required", "send Content-Length")
        raw = self.headers.get("Content-Length", "0")
        if not raw.isascii() or not raw.isdigit():
            raise ApiError(400, "invalid_request_error", "bad_request", "bad Content-Length")
        length = int(raw)
        if length > self.server.sandbox.config.max_body_bytes:
            self._discard(length)
            raise ApiError(413, "invalid_request_error", "body_too_large", "the body is too large")
        try:
            return self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            raise ApiError(
                408, "invalid_request_error", "timeout", "the body came too slowly"
            ) from None

    def _discard(self, length: int) -> None:
        """Read (and drop) a moderately oversized body, so that closing the connection does not
        reset it before the client has read the 413; a huge one is simply cut off."""
        if length <= _DRAIN_LIMIT:
            while length > 0 and (chunk := self.rfile.read(min(length, 65536))):
                length -= len(chunk)

    def _authenticate(self) -> None:
        scheme, _, presented = self.headers.get("Authorization", "").partition(" ")
        expected = self.server.sandbox.config.api_key.encode()
        # Constant time, and on bytes so non-ASCII input is compared rather than rejected.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode("utf-8", "replace"), expected
        ):
            raise ApiError(
                401,
                "authentication_error",
                "invalid_api_key",
                "a valid API key is required (Authorization: Bearer <key>)",
            )

    def _send(self, status: int, body: bytes, rid: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Request-Id", rid)
        if status == 405:
            self.send_header("Allow", self._allow)
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, headers too long...) as JSON, without
        repeating what was sent."""
        phrase = http.HTTPStatus(code).phrase
        body = error_body(phrase.lower().replace(" ", "_"), phrase, "invalid_request_error")
        self.close_connection = True
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _dispatch logs every request, without the query string

    def log_message(self, format: str, *args: Any) -> None:
        # Only http.server's own complaints (a timed-out request) come here; their arguments
        # may echo what the client sent, so only the format's words are logged.
        log.warning("http protocol error", extra={"kind": format.partition("%")[0].strip(" :,")})


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for in-flight requests (graceful stop)
    block_on_close = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._slots = threading.BoundedSemaphore(sandbox.config.max_connections)
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN (a DNS lookup); nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            body = error_body("overloaded", "too many requests at once", "api_error")
            head = f"HTTP/1.0 503 Service Unavailable\r\nContent-Length: {len(body)}\r\n"
            with contextlib.suppress(OSError):
                request.sendall(head.encode() + b"Content-Type: application/json\r\n\r\n" + body)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback to stderr; a dropped connection is not worth one.
        log.warning("connection error", extra={"error": type(sys.exc_info()[1]).__name__})

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class Sandbox:
    """The running provider: store, webhook sender and HTTP server."""

    def __init__(self, config: SandboxConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.sender = WebhookSender(
            config.webhook_url,
            config.webhook_secret,
            lambda: int(clock.now().timestamp()),
            policy=config.retry,
            chaos=config.make_chaos(),
            capacity=config.webhook_queue,
            timeout=config.webhook_timeout,
        )
        self.store = Store(self.sender.emit, config.capacity)
        self.api = Api(self.store, clock, lambda: self.base_url)
        self.httpd = _HttpServer((config.host, config.port), self)
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="sandboxpay-http"
        )

    @property
    def address(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{host!s}:{port}"

    @property
    def base_url(self) -> str:
        return self.config.public_url or f"http://{self.address}"

    def start(self) -> None:
        self.sender.start()
        self._thread.start()
        log.info(
            "sandbox payment provider listening",
            extra={"address": self.address, "webhook_url": self.config.webhook_url},
        )

    def stop(self) -> None:
        """Stop accepting, finish in-flight requests, flush due webhooks."""
        log.info("sandbox payment provider stopping")
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
        self.sender.stop(self.config.grace_seconds)


def build(env: Env) -> Sandbox:
    return Sandbox(SandboxConfig.from_env(env), clock_from_env(env))
