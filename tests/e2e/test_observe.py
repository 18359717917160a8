"""What admins and users see: progress events, failure reasons, ps, logs and metrics."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import SPAWNER_CONFIG
from hubbed import DAEMON_BINARY, NSPAWN, Bed, Hub, free_port

MISSING_MODULE = "jupyterhub_missing_module"


def progress_events(hub: Hub, user: str, timeout: float = 120) -> list[dict[str, Any]]:
    """Start user's server and return every progress event the hub sends for it."""
    response = hub.request_start(user)
    assert response.status_code in (201, 202), response.text
    events: list[dict[str, Any]] = []
    with httpx.stream(
        "GET",
        f"{hub.url}/hub/api{hub.server_path(user)}/progress",
        headers={"Authorization": f"token {hub.service_token}"},
        timeout=timeout,
    ) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[len("data:") :]))
    return events


def sdspawner(bed: Bed, *args: str) -> str:
    return bed.run([DAEMON_BINARY, *args]).stdout


@pytest.fixture(scope="module")
def metrics_port(hub: Hub, bed: Bed) -> Iterator[int]:
    """Serve the daemon's metrics for this module's tests, then go back to no metrics."""
    port = free_port()
    bed.write_file("/etc/sdspawner/config.toml", f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    bed.run("systemctl restart sdspawner.service")
    hub.wait_for(
        "daemon socket",
        lambda: bed.run([DAEMON_BINARY, "ps"], check=False).returncode == 0,
        30,
    )
    yield port
    bed.run("rm -f /etc/sdspawner/config.toml && systemctl restart sdspawner.service")


@pytest.fixture(scope="module")
def alice_events(hub: Hub, metrics_port: int) -> Iterator[list[dict[str, Any]]]:
    # The server waits before it starts listening, so that the progress stream opens
    # while the daemon still waits for the port and every event is sent.
    slow_start = ["/bin/sh", "-c", 'sleep 3; exec jupyterhub-singleuser "$@"', "sh"]
    # slow_spawn_timeout 0 makes the hub respond to the start request at once, instead of
    # waiting up to 10 seconds for the spawn to finish.
    hub.reconfigure(
        SPAWNER_CONFIG + f"c.Spawner.cmd = {slow_start!r}\n",
        'c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}\n',
    )
    events = progress_events(hub, "alice")
    yield events
    hub.stop_server("alice")


def test_progress_events_in_order(alice_events: list[dict[str, Any]]) -> None:
    messages = [str(event.get("message", "")) for event in alice_events]
    expected = [
        "sdspawner accepted the start",
        "is running (main PID",
        "Waiting for the server to listen on 127.0.0.1:",
        "Server is listening on 127.0.0.1:",
    ]
    positions = []
    for text in expected:
        found = [i for i, message in enumerate(messages) if text in message]
        assert found, f"no progress event with {text!r} in {messages}"
        positions.append(found[0])
    assert positions == sorted(positions), messages
    progress = [event["progress"] for event in alice_events if "progress" in event]
    assert progress == sorted(progress), alice_events
    assert alice_events[-1].get("ready"), alice_events[-1]


def test_ps_json_shows_limits(bed: Bed, alice_events: list[dict[str, Any]]) -> None:
    servers = json.loads(sdspawner(bed, "ps", "--json"))["servers"]
    alice = next(server for server in servers if server["user"] == "alice")
    assert alice["unit"] == "jupyter-alice-singleuser.service"
    assert alice["active_state"] == "active"
    assert alice["memory_limit_bytes"] == 1610612736
    assert alice["cpu_limit"] == 0.5
    assert alice["uptime_seconds"] > 0
    assert alice["unix_user"] == "alice"
    # The table names the same server; usage columns show "-" where this container's
    # cgroup controllers give no counters.
    table = sdspawner(bed, "ps")
    assert table.splitlines()[0].split()[:3] == ["USER", "SERVER", "STATE"]
    assert any(line.split()[:3] == ["alice", "-", "running"] for line in table.splitlines())


def test_logs_show_server_output(bed: Bed, alice_events: list[dict[str, Any]]) -> None:
    output = sdspawner(bed, "logs", "-n", "200", "alice")
    assert "jupyter" in output.lower(), output
    assert len(output.splitlines()) <= 200
    lines = sdspawner(bed, "logs", "--json", "-n", "3", "alice").splitlines()
    assert len(lines) == 3
    assert all(json.loads(line)["message"] for line in lines)


def test_logs_follow_streams_new_lines(
    hub: Hub, bed: Bed, alice_events: list[dict[str, Any]]
) -> None:
    """`logs -f` prints the tail at once, then a line the server logs later."""
    token = hub.user_token("alice")
    follow = subprocess.Popen(
        [
            str(NSPAWN),
            "exec",
            bed.name,
            "--",
            "timeout",
            "8",
            DAEMON_BINARY,
            "logs",
            "-f",
            "-n",
            "1",
            "alice",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)
    # The server logs a request that fails at warning level; successes only at debug.
    missing = httpx.get(
        f"{hub.url}/user/alice/api/e2e-follow-marker",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert missing.status_code == 404
    output, _ = follow.communicate(timeout=60)
    assert len(output.splitlines()) >= 2, output
    assert "e2e-follow-marker" in output, output


def test_unknown_user_logs_error(bed: Bed, metrics_port: int) -> None:
    result = bed.run([DAEMON_BINARY, "logs", "nobody-here"], check=False)
    assert result.returncode == 1
    assert 'no server "" of user "nobody-here"' in result.stderr


def test_metrics(bed: Bed, metrics_port: int, alice_events: list[dict[str, Any]]) -> None:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text
    assert (
        'sdspawner_server_state{active_state="active",server="",'
        'unit="jupyter-alice-singleuser.service",user="alice"} 1'
    ) in text
    assert (
        'sdspawner_server_memory_limit_bytes{server="",'
        'unit="jupyter-alice-singleuser.service",user="alice"} 1.610612736e+09'
    ) in text
    assert 'sdspawner_requests_total{action="start",result="ok"} 1' in text
    assert "sdspawner_start_duration_seconds_count 1" in text
    assert "sdspawner_servers_tracked 1" in text


def test_failure_reason_reaches_user_and_admin(hub: Hub, bed: Bed, metrics_port: int) -> None:
    """A server whose Python fails at import: the user sees the traceback, and so do
    `sdspawner ps` and `sdspawner logs`."""
    hub.reconfigure(
        SPAWNER_CONFIG
        + f'c.Spawner.cmd = ["{hub.venv}/bin/python3", "-c", "import {MISSING_MODULE}"]\n'
    )
    message = hub.spawn_failure("alice")
    assert f"No module named '{MISSING_MODULE}'" in message, message
    assert "exited with status 1" in message, message

    servers = json.loads(sdspawner(bed, "ps", "--json"))["servers"]
    alice = next(server for server in servers if server["user"] == "alice")
    assert alice["active_state"] == "failed"
    assert f"No module named '{MISSING_MODULE}'" in alice["failure"]
    assert f"No module named '{MISSING_MODULE}'" in sdspawner(bed, "ps")
    assert f"No module named '{MISSING_MODULE}'" in sdspawner(bed, "logs", "alice")

    # A restarted daemon has forgotten the failed start, but the journal fields of the
    # server's unit still lead `sdspawner logs` to its log.
    bed.run("systemctl restart sdspawner.service")
    hub.wait_for(
        "daemon socket",
        lambda: bed.run([DAEMON_BINARY, "ps"], check=False).returncode == 0,
        30,
    )
    assert f"No module named '{MISSING_MODULE}'" in sdspawner(bed, "logs", "-n", "50", "alice")
