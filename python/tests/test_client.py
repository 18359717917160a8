"""DaemonClient errors: unreachable socket, timeouts and malformed responses."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from conftest import FakeDaemon, make_spawner, status_body

from sdspawner import DaemonError, DaemonTimeoutError, DaemonUnreachableError, SdspawnerError
from sdspawner.client import DaemonClient


async def test_version_request(fake_daemon: FakeDaemon) -> None:
    client = DaemonClient(fake_daemon.socket_path, timeout=5)

    assert await client.version() == {"version": "0.1.0", "api": 1}
    assert fake_daemon.requests[0].path == "/v1/version"


async def test_missing_socket_names_path(short_tmp: Path) -> None:
    socket_path = str(short_tmp / "missing.sock")
    spawner = make_spawner(socket_path)

    with pytest.raises(DaemonUnreachableError) as raised:
        await spawner.start()

    message = str(raised.value)
    assert f"not reachable at {socket_path}" in message
    assert "No such file or directory" in message
    assert "sdspawner serve" in message


async def test_refused_socket_names_path(short_tmp: Path) -> None:
    # A bound socket that never listens rejects connections with ECONNREFUSED, as the
    # socket file left behind by a stopped daemon does.
    socket_path = str(short_tmp / "stale.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(socket_path)
    try:
        spawner = make_spawner(socket_path)
        with pytest.raises(DaemonUnreachableError) as raised:
            await spawner.poll()
    finally:
        stale.close()

    message = str(raised.value)
    assert socket_path in message
    assert "Connection refused" in message


async def test_timeout_names_socket_and_limit(fake_daemon: FakeDaemon) -> None:
    fake_daemon.respond("POST", "/v1/servers/start", 200, status_body("active"), delay=10)
    spawner = make_spawner(fake_daemon.socket_path, request_timeout=0.2)

    started = time.monotonic()
    with pytest.raises(DaemonTimeoutError) as raised:
        await spawner.start()
    elapsed = time.monotonic() - started

    message = str(raised.value)
    assert fake_daemon.socket_path in message
    assert "within 0.2 seconds" in message
    assert "POST /v1/servers/start" in message
    assert elapsed < 5


async def test_stop_timeout_uses_stop_limit(fake_daemon: FakeDaemon) -> None:
    fake_daemon.respond("POST", "/v1/servers/stop", 200, status_body("inactive"), delay=10)
    spawner = make_spawner(fake_daemon.socket_path, request_timeout=30, stop_request_timeout=0.2)

    with pytest.raises(DaemonTimeoutError, match=r"within 0\.2 seconds"):
        await spawner.stop()


async def test_error_without_json_body(fake_daemon: FakeDaemon) -> None:
    fake_daemon.respond("GET", "/v1/servers/status", 502, "Bad Gateway")
    spawner = make_spawner(fake_daemon.socket_path)

    with pytest.raises(DaemonError) as raised:
        await spawner.poll()

    assert raised.value.status == 502
    assert "HTTP 502" in str(raised.value)
    assert "Bad Gateway" in str(raised.value)


async def test_success_body_not_object(fake_daemon: FakeDaemon) -> None:
    fake_daemon.respond("GET", "/v1/servers/status", 200, "active")
    spawner = make_spawner(fake_daemon.socket_path)

    with pytest.raises(SdspawnerError, match="not a JSON object"):
        await spawner.poll()


async def test_status_missing_fields(fake_daemon: FakeDaemon) -> None:
    fake_daemon.respond("GET", "/v1/servers/status", 200, {"unit": "x.service"})
    spawner = make_spawner(fake_daemon.socket_path)

    with pytest.raises(SdspawnerError, match="active_state is not a string"):
        await spawner.poll()


async def test_status_exit_status_not_integer(fake_daemon: FakeDaemon) -> None:
    body = status_body("failed")
    body["exit_status"] = "1"
    fake_daemon.respond("GET", "/v1/servers/status", 200, body)
    spawner = make_spawner(fake_daemon.socket_path)

    with pytest.raises(SdspawnerError, match="exit_status is neither an integer nor null"):
        await spawner.poll()
