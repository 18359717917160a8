"""Readiness and progress: start() waits for the daemon's check, progress() relays it."""

from __future__ import annotations

import asyncio
import logging

import pytest
from conftest import (
    READY_PHASES,
    FakeDaemon,
    FakeResponse,
    RecordedRequest,
    events_body,
    make_spawner,
    status_body,
)

from sdspawner import DaemonError, ServerNotRunningError

EVENTS_PATH = "/v1/servers/events"

TRACEBACK = (
    "The server's process exited with status 1. Last lines of its log:\n"
    "Traceback (most recent call last):\n"
    "ModuleNotFoundError: No module named 'jupyterhub_missing'"
)


def events_requests(fake: FakeDaemon) -> list[RecordedRequest]:
    return [r for r in fake.requests if r.path == EVENTS_PATH]


async def test_start_sends_readiness_fields(fake_daemon: FakeDaemon) -> None:
    spawner = make_spawner(fake_daemon.socket_path, ip="127.0.0.1", port=9876)
    spawner.start_timeout = 120
    assert await spawner.start() == ("127.0.0.1", 9876)
    start = next(r for r in fake_daemon.requests if r.path == "/v1/servers/start")
    assert start.body is not None
    assert (start.body["ip"], start.body["port"], start.body["ready_timeout"]) == (
        "127.0.0.1",
        9876,
        120.0,
    )
    # One events request was enough: its events ended with "ready".
    [events] = events_requests(fake_daemon)
    assert events.query["user"] == ["alice"]
    assert events.query["after"] == ["0"]


async def test_start_waits_across_event_requests(fake_daemon: FakeDaemon) -> None:
    """Events arrive in several responses, and each request is for those after the last seen."""

    def respond(request: RecordedRequest) -> FakeResponse:
        after = int(request.query["after"][0])
        if after < 3:
            return FakeResponse(
                200, events_body(READY_PHASES[: after + 1], after=after, done=False)
            )
        return FakeResponse(200, events_body(READY_PHASES, after=after))

    fake_daemon.responses[("GET", EVENTS_PATH)] = respond
    spawner = make_spawner(fake_daemon.socket_path, port=9876)
    await spawner.start()
    assert [r.query["after"][0] for r in events_requests(fake_daemon)] == ["0", "1", "2", "3"]


@pytest.mark.parametrize("phase", ["failed", "timeout", "stopped"])
async def test_start_fails_with_daemon_reason(fake_daemon: FakeDaemon, phase: str) -> None:
    phases = [*READY_PHASES[:3], (phase, 100)]
    fake_daemon.respond("GET", EVENTS_PATH, 200, events_body(phases, message=TRACEBACK))
    spawner = make_spawner(fake_daemon.socket_path, port=9876)
    with pytest.raises(ServerNotRunningError) as raised:
        await spawner.start()
    # The user sees the daemon's reason, traceback included, on the spawn-pending page.
    assert "No module named 'jupyterhub_missing'" in raised.value.jupyterhub_message
    assert "exited with status 1" in raised.value.jupyterhub_message
    assert raised.value.jupyterhub_message.startswith("The server of alice did not start.")


async def test_start_without_daemon_progress_leaves_check_to_hub(
    fake_daemon: FakeDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    """A daemon restarted after the start has no events: the hub's HTTP check decides."""
    fake_daemon.respond(
        "GET",
        EVENTS_PATH,
        404,
        {"error": "no start of server '' of user 'alice'", "code": "not_found"},
    )
    spawner = make_spawner(fake_daemon.socket_path, port=9876)
    with caplog.at_level(logging.WARNING):
        assert await spawner.start() == ("127.0.0.1", 9876)
    assert "no progress for alice" in caplog.text


async def test_start_raises_other_event_errors(fake_daemon: FakeDaemon) -> None:
    fake_daemon.respond("GET", EVENTS_PATH, 500, {"error": "boom", "code": "internal"})
    spawner = make_spawner(fake_daemon.socket_path, port=9876)
    with pytest.raises(DaemonError, match="boom"):
        await spawner.start()


async def test_events_body_without_events_is_an_error(fake_daemon: FakeDaemon) -> None:
    fake_daemon.respond("GET", EVENTS_PATH, 200, {"done": True})
    spawner = make_spawner(fake_daemon.socket_path, port=9876)
    with pytest.raises(Exception, match="without events and done"):
        await spawner.start()


async def test_wait_until_listening_off(fake_daemon: FakeDaemon) -> None:
    spawner = make_spawner(fake_daemon.socket_path, port=9876, wait_until_listening=False)
    await spawner.start()
    assert events_requests(fake_daemon) == []
    start = next(r for r in fake_daemon.requests if r.path == "/v1/servers/start")
    assert start.body is not None
    assert start.body["port"] == 0


async def test_progress_relays_events_in_order(fake_daemon: FakeDaemon) -> None:
    spawner = make_spawner(fake_daemon.socket_path, port=9876)
    # Before any start there is nothing to report.
    assert [event async for event in spawner.progress()] == []

    async def collect() -> list[dict[str, object]]:
        return [event async for event in spawner.progress()]

    await spawner.start()
    events = await asyncio.wait_for(collect(), timeout=10)
    assert [e["progress"] for e in events] == [10, 40, 70, 100]
    assert [e["message"] for e in events] == [f"phase {p}" for p, _ in READY_PHASES]


async def test_progress_waits_for_start_answer(fake_daemon: FakeDaemon) -> None:
    """progress() called while the start request is in flight reads no older start's events."""
    fake_daemon.responses[("POST", "/v1/servers/start")] = FakeResponse(
        200, status_body("active"), delay=0.3
    )
    spawner = make_spawner(fake_daemon.socket_path, port=9876)
    start = asyncio.ensure_future(spawner.start())
    await asyncio.sleep(0.1)
    events = [event async for event in spawner.progress()]
    await start
    assert events[-1]["progress"] == 100
    first_events = min(i for i, r in enumerate(fake_daemon.requests) if r.path == EVENTS_PATH)
    first_start = min(
        i for i, r in enumerate(fake_daemon.requests) if r.path == "/v1/servers/start"
    )
    assert first_start < first_events


async def test_start_of_unit_ended_at_once_gives_reason(fake_daemon: FakeDaemon) -> None:
    """A server that exits before the start's response: the reason still comes from the log."""
    fake_daemon.respond("POST", "/v1/servers/start", 200, status_body("failed", exit_status=1))
    phases = [*READY_PHASES[:3], ("failed", 100)]
    fake_daemon.respond("GET", EVENTS_PATH, 200, events_body(phases, message=TRACEBACK))
    spawner = make_spawner(fake_daemon.socket_path, port=9876)
    with pytest.raises(ServerNotRunningError, match="jupyterhub_missing"):
        await spawner.start()
