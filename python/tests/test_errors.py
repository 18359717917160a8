"""Failed starts as JupyterHub shows them: REST API, error page and progress events.

The errors come from SystemdSpawner.start() against the fake daemon. They are then
raised in handlers built on JupyterHub's own APIHandler and BaseHandler, served by
tornado on a Unix socket, so that JupyterHub's write_error builds the response.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import httpx
import jupyterhub
import pytest
from conftest import FakeDaemon, make_spawner, status_body
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.objects import Hub
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_unix_socket
from tornado.web import Application, HTTPError

from sdspawner import (
    DaemonError,
    DaemonRejectedError,
    DaemonTimeoutError,
    DaemonUnreachableError,
    SdspawnerError,
    ServerNotRunningError,
)

SPAWN_EXCEPTION: type[HTTPError] | None
try:
    from jupyterhub.spawner import SpawnException as SPAWN_EXCEPTION
except ImportError:  # JupyterHub before 6.0
    SPAWN_EXCEPTION = None

try:
    from jupyterhub.utils import format_exception
except ImportError:  # JupyterHub before 5.0 formats the exception inline.
    format_exception = None

JUPYTERHUB_MAJOR = int(jupyterhub.__version__.split(".")[0])

START_PATH = "/v1/servers/start"

# Sends a POST request to a path of the hub_client fixture, whose handler raises the error.
SendToHub = Callable[[str, Exception], Awaitable[httpx.Response]]

# (HTTP status, code, message) of the daemon's rejections of a start.
REJECTIONS = [
    (
        400,
        "invalid_request",
        "mem_limit 0 is invalid: use None for no limit, or a size of at least 1M (1048576 bytes)",
    ),
    (
        403,
        "forbidden",
        "user_workingdir /etc is not under any of the daemon's paths.allowed_prefixes [/home]",
    ),
    (409, "conflict", "a start or stop of server '' of user 'alice' is already in progress"),
]


async def failed_start(fake_daemon: FakeDaemon, **spawner_options: Any) -> SdspawnerError:
    """Start a server against the fake daemon and return the error that start() raised."""
    spawner = make_spawner(fake_daemon.socket_path, **spawner_options)
    with pytest.raises(SdspawnerError) as raised:
        await spawner.start()
    return raised.value


async def daemon_error_start(
    fake_daemon: FakeDaemon, status: int, code: str, error: str
) -> DaemonError:
    """Start a server while the daemon responds with an error, and return the raised error."""
    fake_daemon.respond("POST", START_PATH, status, {"error": error, "code": code})
    raised = await failed_start(fake_daemon)
    assert isinstance(raised, DaemonError), raised
    return raised


def as_raised_by_user_spawn(error: Exception) -> Exception:
    """Change `error` as jupyterhub.user.User.spawn does before it raises it again.

    JupyterHub 4 sets `reason = "error"` on every start error, JupyterHub 5 on an
    HTTPError, and JupyterHub 6 on an HTTPError that is not a SpawnException.
    """
    if SPAWN_EXCEPTION is None or not isinstance(error, SPAWN_EXCEPTION):
        error.reason = "error"
    return error


class _RaiseStartError:
    """Handler methods that raise the start error from the settings, as JupyterHub's do."""

    settings: dict[str, Any]

    async def prepare(self) -> None:
        # Skips JupyterHub's authentication. The error page reads this attribute.
        self._jupyterhub_user = None

    async def post(self) -> None:
        raise self.settings["start_error"]


class FailingAPIHandler(_RaiseStartError, APIHandler):
    """Handler in place of POST /hub/api/users/:name/server, which awaits the start."""


class FailingPageHandler(_RaiseStartError, BaseHandler):
    """Handler in place of the spawn page, which raises the HTTPError of a quick failure."""

    def render_template(self, name: str, sync: bool = False, **namespace: Any) -> str:
        # JupyterHub's templates need a whole hub, so the page is only the message that
        # write_error passes to the template.
        return json.dumps({"template": name, "message": namespace["message"]})


@pytest.fixture
async def hub_client(short_tmp: Path) -> AsyncIterator[SendToHub]:
    """Return a function that sends a request to a handler that raises the given error."""
    settings: dict[str, Any] = {
        "db": SimpleNamespace(dirty=[], rollback=lambda: None),
        "hub": Hub(),
    }
    app = Application([("/api", FailingAPIHandler), ("/page", FailingPageHandler)], **settings)
    socket_path = str(short_tmp / "hub.sock")
    server = HTTPServer(app)
    server.add_socket(bind_unix_socket(socket_path))
    transport = httpx.AsyncHTTPTransport(uds=socket_path)
    client = httpx.AsyncClient(transport=transport, base_url="http://hub", trust_env=False)

    async def send(path: str, error: Exception) -> httpx.Response:
        app.settings["start_error"] = as_raised_by_user_spawn(error)
        return await client.post(path, content=b"")

    try:
        yield send
    finally:
        await client.aclose()
        server.stop()


@pytest.mark.parametrize(("status", "code", "error"), REJECTIONS)
async def test_rejected_start_attributes(
    fake_daemon: FakeDaemon, status: int, code: str, error: str
) -> None:
    raised = await daemon_error_start(fake_daemon, status, code, error)

    assert isinstance(raised, DaemonRejectedError)
    assert isinstance(raised, DaemonError)
    assert isinstance(raised, HTTPError)
    assert raised.status_code == status
    assert raised.reason == code
    assert raised.message == error
    assert raised.jupyterhub_message == error
    assert raised.error == error
    assert raised.code == code
    assert str(raised).startswith(error)
    assert f"HTTP {status} {code} on POST {START_PATH}" in str(raised)


@pytest.mark.skipif(SPAWN_EXCEPTION is None, reason="SpawnException is new in JupyterHub 6.0")
@pytest.mark.parametrize(("status", "code", "error"), REJECTIONS)
async def test_rejected_start_spawn_exception(
    fake_daemon: FakeDaemon, status: int, code: str, error: str
) -> None:
    raised = await daemon_error_start(fake_daemon, status, code, error)

    assert SPAWN_EXCEPTION is not None
    assert isinstance(raised, SPAWN_EXCEPTION)
    assert raised.message == error
    assert raised.reason == code
    assert raised.status_code == status
    assert raised.log_message == str(raised)
    assert raised.message_html == ""


@pytest.mark.parametrize(("status", "code", "error"), REJECTIONS)
async def test_rejected_start_api_message(
    fake_daemon: FakeDaemon, hub_client: SendToHub, status: int, code: str, error: str
) -> None:
    raised = await daemon_error_start(fake_daemon, status, code, error)

    response = await hub_client("/api", raised)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": status, "message": error}


@pytest.mark.skipif(
    JUPYTERHUB_MAJOR < 5,
    reason="JupyterHub 4's error page shows a fixed text for every start error",
)
@pytest.mark.parametrize(("status", "code", "error"), REJECTIONS)
async def test_rejected_start_error_page(
    fake_daemon: FakeDaemon, hub_client: SendToHub, status: int, code: str, error: str
) -> None:
    raised = await daemon_error_start(fake_daemon, status, code, error)

    response = await hub_client("/page", raised)

    assert response.status_code == status
    assert response.json() == {"template": f"{status}.html", "message": error}


def progress_message(error: Exception) -> str:
    """Return the message of the failed event that JupyterHub's progress API sends."""
    if format_exception is not None:
        message, _ = format_exception(error)
    else:
        # The expression of JupyterHub 4's SpawnProgressAPIHandler.
        message = getattr(error, "jupyterhub_message", str(error))
    return f"Spawn failed: {message}"


def pending_page_message(error: Exception) -> str:
    """Return the message that JupyterHub's spawn-pending page shows after a failed start."""
    if format_exception is not None:
        message, _ = format_exception(error, only_jupyterhub=True)
        return str(message)
    return str(getattr(error, "jupyterhub_message", ""))


@pytest.mark.parametrize(("status", "code", "error"), REJECTIONS)
async def test_rejected_start_progress_message(
    fake_daemon: FakeDaemon, status: int, code: str, error: str
) -> None:
    raised = as_raised_by_user_spawn(await daemon_error_start(fake_daemon, status, code, error))

    assert progress_message(raised) == f"Spawn failed: {error}"
    assert pending_page_message(raised) == error


async def test_percent_in_message_shown(fake_daemon: FakeDaemon, hub_client: SendToHub) -> None:
    # JupyterHub before 6.0 shows `log_message % args`, which breaks on a bare "%".
    error = "unit_extra_properties: CPUQuota=150% is above the daemon's cap of 100%"
    raised = await daemon_error_start(fake_daemon, 403, "forbidden", error)

    response = await hub_client("/api", raised)

    assert response.json() == {"status": 403, "message": error}


async def test_daemon_failure_not_spawn_exception(
    fake_daemon: FakeDaemon, hub_client: SendToHub
) -> None:
    error = "create unit jupyter-alice-singleuser.service: connection to systemd lost"
    raised = await daemon_error_start(fake_daemon, 500, "internal", error)

    assert isinstance(raised, DaemonError)
    assert not isinstance(raised, DaemonRejectedError)
    if SPAWN_EXCEPTION is not None:
        # JupyterHub 6 leaves a SpawnException out of Spawner.consecutive_failure_limit,
        # which should count a failure of the daemon.
        assert not isinstance(raised, SPAWN_EXCEPTION)
    assert raised.status_code == 500
    assert raised.jupyterhub_message == error
    response = await hub_client("/api", raised)
    assert response.status_code == 500
    assert response.json() == {"status": 500, "message": error}


async def test_daemon_non_error_status_gives_500(fake_daemon: FakeDaemon) -> None:
    fake_daemon.respond("POST", START_PATH, 302, "moved")

    raised = await failed_start(fake_daemon)

    assert isinstance(raised, DaemonError)
    assert raised.status_code == 500
    assert "HTTP 302" in str(raised)


async def test_unreachable_daemon_shown(short_tmp: Path, hub_client: SendToHub) -> None:
    socket_path = str(short_tmp / "missing.sock")
    spawner = make_spawner(socket_path)
    with pytest.raises(DaemonUnreachableError) as raised:
        await spawner.start()

    assert raised.value.status_code == 503
    assert raised.value.jupyterhub_message == str(raised.value)
    response = await hub_client("/api", raised.value)
    assert response.status_code == 503
    message = response.json()["message"]
    assert f"not reachable at {socket_path}" in message
    assert progress_message(raised.value) == f"Spawn failed: {message}"


async def test_daemon_timeout_shown(fake_daemon: FakeDaemon, hub_client: SendToHub) -> None:
    fake_daemon.respond("POST", START_PATH, 200, status_body("active"), delay=10)

    raised = await failed_start(fake_daemon, request_timeout=0.2)

    assert isinstance(raised, DaemonTimeoutError)
    # JupyterHub would take a TimeoutError for its own start_timeout running out, and log
    # that the server did not start within start_timeout seconds.
    assert not isinstance(raised, TimeoutError)
    assert raised.status_code == 503
    response = await hub_client("/api", raised)
    assert response.status_code == 503
    assert "within 0.2 seconds" in response.json()["message"]


async def test_unit_not_running_shown(fake_daemon: FakeDaemon, hub_client: SendToHub) -> None:
    fake_daemon.respond("POST", START_PATH, 200, status_body("failed", exit_status=203))

    raised = await failed_start(fake_daemon)

    assert isinstance(raised, ServerNotRunningError)
    assert raised.status_code == 500
    response = await hub_client("/api", raised)
    assert response.status_code == 500
    message = response.json()["message"]
    assert "jupyter-alice-singleuser.service" in message
    assert "exit status 203" in message


async def test_plain_exception_text_hidden(hub_client: SendToHub) -> None:
    # The reason why the spawner raises HTTPErrors: JupyterHub hides the text of other
    # exceptions behind the status.
    response = await hub_client("/api", RuntimeError("daemon text"))

    assert response.status_code == 500
    assert "daemon text" not in response.json()["message"]
