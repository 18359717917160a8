"""A fake sdspawner daemon on a Unix socket, and spawners built as JupyterHub builds them."""

from __future__ import annotations

import json
import socketserver
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Union
from urllib.parse import parse_qs, urlsplit

import pytest
from jupyterhub import orm
from jupyterhub.objects import Hub
from traitlets.config import Config

from sdspawner import SystemdSpawner

API_TOKEN = "test-api-token-0123456789"

ResponseBody = Union[dict[str, Any], str]


@dataclass
class RecordedRequest:
    """One request as the fake daemon received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class FakeResponse:
    """The response the fake daemon sends. A str body is sent as text, not as JSON."""

    status: int
    body: ResponseBody
    delay: float = 0.0


def status_body(
    active_state: str = "active",
    exit_status: int | None = None,
    user: str = "alice",
    server: str = "",
) -> dict[str, Any]:
    """Return a status response of the shape that docs/api.md defines."""
    running = active_state in ("active", "activating", "reloading")
    return {
        "user": user,
        "server": server,
        "unit": "jupyter-alice-singleuser.service",
        "exists": active_state != "inactive" or exit_status is not None,
        "active_state": active_state,
        "sub_state": "running" if running else "dead",
        "main_pid": 4242 if running else 0,
        "exit_status": exit_status,
        "unix_user": "alice",
        "uid": 1001,
    }


# The phases of a start that ends with the server listening, as the daemon reports them.
READY_PHASES = [("accepted", 10), ("started", 40), ("waiting", 70), ("ready", 100)]


def events_body(
    phases: list[tuple[str, int]], after: int = 0, message: str = "", done: bool = True
) -> dict[str, Any]:
    """Body of GET /v1/servers/events with the events after `after` of `phases`."""
    events = [
        {
            "seq": seq,
            "time": "2026-12-04T10:00:00Z",
            "phase": phase,
            "progress": progress,
            "message": message or f"phase {phase}",
        }
        for seq, (phase, progress) in enumerate(phases, start=1)
    ]
    return {
        "user": "alice",
        "server": "",
        "unit": "jupyter-alice-singleuser.service",
        "events": events[after:],
        "done": done,
    }


@dataclass
class FakeDaemon:
    """An HTTP server on a Unix socket that records requests and replies as configured.

    `responses` maps (method, path without query) to a FakeResponse, or to a function
    of the recorded request that returns one. A response with a delay is sent once the
    delay passes or the fixture ends, whichever comes first.
    """

    socket_path: str
    requests: list[RecordedRequest] = field(default_factory=list)
    responses: dict[tuple[str, str], FakeResponse | Callable[[RecordedRequest], FakeResponse]] = (
        field(default_factory=dict)
    )
    handler_errors: list[BaseException] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def respond(
        self, method: str, path: str, status: int, body: ResponseBody, delay: float = 0.0
    ) -> None:
        self.responses[(method, path)] = FakeResponse(status, body, delay)

    def response_for(self, request: RecordedRequest) -> FakeResponse:
        configured = self.responses.get((request.method, request.path))
        if configured is None:
            return _default_response(request)
        if callable(configured):
            return configured(request)
        return configured


def _default_response(request: RecordedRequest) -> FakeResponse:
    if request.path == "/v1/version":
        return FakeResponse(200, {"version": "0.1.0", "api": 1})
    if request.path == "/v1/servers/start":
        return FakeResponse(200, status_body("active"))
    if request.path == "/v1/servers/status":
        return FakeResponse(200, status_body("active"))
    if request.path == "/v1/servers/stop":
        return FakeResponse(200, status_body("inactive"))
    if request.path == "/v1/servers/events":
        return FakeResponse(200, events_body(READY_PHASES, after=int(request.query["after"][0])))
    return FakeResponse(404, {"error": f"no route {request.path}", "code": "not_found"})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _UnixHTTPServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        # The default formats client_address[0], but a Unix socket's peer address is "".
        pass

    def _handle(self) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        request = RecordedRequest(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=json.loads(raw_body) if raw_body else None,
        )
        fake.requests.append(request)

        response = fake.response_for(request)
        if response.delay:
            fake.release.wait(response.delay)
        if isinstance(response.body, str):
            payload = response.body.encode()
            content_type = "text/plain"
        else:
            payload = json.dumps(response.body).encode()
            content_type = "application/json"
        self.send_response(response.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeDaemon

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A delayed response written after the client gave up fails with a broken pipe.
        # Keep the error for inspection instead of printing a traceback.
        error = sys.exc_info()[1]
        if error is not None:
            self.fake.handler_errors.append(error)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temp dir with a short path: a Unix socket path is limited to 107 bytes."""
    with tempfile.TemporaryDirectory(prefix="sds-") as path:
        yield Path(path)


@pytest.fixture
def fake_daemon(short_tmp: Path) -> Iterator[FakeDaemon]:
    """A fake daemon listening on a socket in a fresh temp dir."""
    fake = FakeDaemon(str(short_tmp / "sdspawner.sock"))
    server = _UnixHTTPServer(fake.socket_path, _Handler)
    server.fake = fake
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class MockUser:
    """The attributes of jupyterhub.user.User that Spawner.get_env() reads."""

    def __init__(self, name: str = "alice") -> None:
        self.name = name
        self.escaped_name = name
        self.id = 7
        self.url = f"/user/{name}/"


def make_spawner(
    socket_path: str,
    server_name: str = "",
    config: Config | None = None,
    **kwargs: Any,
) -> SystemdSpawner:
    """Build a spawner the way JupyterHub's User._new_spawner does, without a database.

    The ORM objects are real but detached, which is all Spawner needs for `name`,
    `server.base_url` and the environment.
    """
    user = MockUser()
    base_url = f"{user.url}{server_name}/" if server_name else user.url
    orm_spawner = SimpleNamespace(
        name=server_name,
        display_name=server_name,
        # Column defaults apply only on insert, so a detached row needs every value.
        server=orm.Server(proto="http", ip="", port=0, base_url=base_url, cookie_name="cookie"),
    )
    kwargs.setdefault("api_token", API_TOKEN)
    kwargs.setdefault("oauth_client_id", f"jupyterhub-user-{user.name}")
    kwargs.setdefault("socket_path", socket_path)
    return SystemdSpawner(
        user=user,
        hub=Hub(),
        orm_spawner=orm_spawner,
        config=config if config is not None else Config(),
        **kwargs,
    )
