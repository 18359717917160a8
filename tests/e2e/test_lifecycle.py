"""Restarts, crashes and concurrency: no server is lost and nothing is left behind."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from typing import Any

import pytest
from hubbed import DAEMON_BINARY, Bed, Hub
from test_hostile import call

SOCKET = "/run/sdspawner/sdspawner.sock"


def daemon_status(bed: Bed, user: str, server: str = "") -> dict[str, Any]:
    return dict(json.loads(bed.run([DAEMON_BINARY, "status", user, server]).stdout))


def wait_until(what: str, condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting until {what}")


def env_files(bed: Bed) -> list[str]:
    return bed.run("ls -A /run/sdspawner/env").stdout.split()


def start_direct(
    bed: Bed, user: str, cmd: list[str], server: str = ""
) -> tuple[int, dict[str, Any]]:
    body = {"user": user, "server": server, "cmd": cmd, "env": {"JUPYTERHUB_API_TOKEN": "t"}}
    return call(bed, "POST", "/v1/servers/start", json.dumps(body))


def stop_direct(
    bed: Bed, user: str, server: str = "", now: bool = False
) -> tuple[int, dict[str, Any]]:
    return call(
        bed, "POST", "/v1/servers/stop", json.dumps({"user": user, "server": server, "now": now})
    )


@pytest.fixture(scope="module")
def lifecycle_hub(hub: Hub) -> Hub:
    hub.reconfigure("c.SystemdSpawner.mem_limit = '1G'")
    return hub


def daemon_log(bed: Bed) -> str:
    return bed.run(["journalctl", "--no-pager", "-o", "cat", "-u", "sdspawner.service"]).stdout


def test_exit_status_and_cleanup(bed: Bed, lifecycle_hub: Hub) -> None:
    # Other modules may have ended a server of the same unit name before.
    ended_before = daemon_log(bed).count('server ended user="alice" server=""')
    code, body = start_direct(bed, "alice", ["/bin/sh", "-c", "sleep 1; exit 3"])
    assert code == 200, body
    unit = body["unit"]
    wait_until(
        "the daemon sees the exit", lambda: daemon_status(bed, "alice")["active_state"] == "failed"
    )
    status = daemon_status(bed, "alice")
    assert status["exit_status"] == 3
    wait_until("the environment file is gone", lambda: env_files(bed) == [])
    # The end is handled once; the daemon does not keep reacting to its own reset.
    time.sleep(3)
    log = daemon_log(bed)
    assert log.count('server ended user="alice" server=""') == ended_before + 1
    assert f'server ended user="alice" server="" unit="{unit}"' in log
    # A failed unit of the same name does not block the next start.
    code, body = start_direct(bed, "alice", ["/bin/sleep", "600"])
    assert code == 200, body
    assert body["unit"] == unit
    assert body["active_state"] == "active"
    code, body = stop_direct(bed, "alice")
    assert code == 200, body
    assert env_files(bed) == []


def test_killed_server_reports_signal(bed: Bed, lifecycle_hub: Hub) -> None:
    lifecycle_hub.start_server("alice")
    unit = lifecycle_hub.unit_of("alice")
    bed.run(["systemctl", "kill", "--kill-whom=main", "--signal=KILL", unit])
    wait_until(
        "the daemon sees the kill", lambda: daemon_status(bed, "alice")["active_state"] == "failed"
    )
    assert daemon_status(bed, "alice")["exit_status"] == 128 + 9
    wait_until("the environment file is gone", lambda: env_files(bed) == [])
    # The hub notices on its next poll and calls stop, which works on a dead server.
    lifecycle_hub.stop_server("alice")
    assert bed.unit_properties(unit, "LoadState")["LoadState"] == "not-found"


@pytest.mark.parametrize("signal", ["TERM", "KILL"])
def test_daemon_restart_keeps_servers(bed: Bed, lifecycle_hub: Hub, signal: str) -> None:
    lifecycle_hub.start_server("alice")
    token = lifecycle_hub.user_token("alice")
    unit = lifecycle_hub.unit_of("alice")
    # An environment file whose unit is gone, as a crash between writing it and
    # creating the unit leaves it.
    bed.run("echo 'A=\"1\"' > /run/sdspawner/env/jupyter-ghost-singleuser.service.env")

    bed.run(["systemctl", "kill", f"--signal={signal}", "sdspawner.service"])
    wait_until(
        "the daemon is down",
        lambda: bed.unit_properties("sdspawner.service", "ActiveState")["ActiveState"] != "active",
    )
    assert lifecycle_hub.server_status("alice", token).status_code == 200
    bed.run(["systemctl", "reset-failed", "sdspawner.service"], check=False)
    bed.run(["systemctl", "start", "sdspawner.service"])
    wait_until(
        "the socket is back", lambda: bed.run(["test", "-S", SOCKET], check=False).returncode == 0
    )

    status = daemon_status(bed, "alice")
    assert status["unit"] == unit
    assert status["active_state"] == "active"
    assert bed.unit_properties(unit, "ActiveState")["ActiveState"] == "active"
    assert lifecycle_hub.server_status("alice", token).status_code == 200
    assert env_files(bed) == [unit + ".env"]
    lifecycle_hub.stop_server("alice")
    assert env_files(bed) == []


def test_hub_sees_daemon_down(bed: Bed, lifecycle_hub: Hub) -> None:
    bed.run(["systemctl", "stop", "sdspawner.service"])
    try:
        started = time.monotonic()
        message = lifecycle_hub.spawn_failure("bob")
        assert "not reachable" in message
        assert SOCKET in message
        assert time.monotonic() - started < 30
    finally:
        bed.run(["systemctl", "start", "sdspawner.service"])
        wait_until(
            "the socket is back",
            lambda: bed.run(["test", "-S", SOCKET], check=False).returncode == 0,
        )


def test_systemd_reexec_keeps_tracking(bed: Bed, lifecycle_hub: Hub) -> None:
    lifecycle_hub.start_server("alice")
    unit = lifecycle_hub.unit_of("alice")
    bed.run(["systemctl", "daemon-reexec"])
    wait_until(
        "systemd is back",
        lambda: (
            bed.run(["systemctl", "is-system-running"], check=False).stdout.strip()
            in ("running", "degraded")
        ),
    )
    assert daemon_status(bed, "alice")["active_state"] == "active"
    bed.run(["systemctl", "kill", "--kill-whom=main", "--signal=KILL", unit])
    wait_until(
        "the daemon sees the kill after the re-exec",
        lambda: daemon_status(bed, "alice")["active_state"] == "failed",
    )
    wait_until("the environment file is gone", lambda: env_files(bed) == [])
    lifecycle_hub.stop_server("alice")
    log = bed.run(["journalctl", "--no-pager", "-o", "cat", "-u", "sdspawner.service"]).stdout
    assert 'reason="systemd re-executed"' in log or 'reason="systemd reloaded"' in log


def test_hub_restart_keeps_servers_without_cleanup(bed: Bed, lifecycle_hub: Hub) -> None:
    lifecycle_hub.reconfigure("", "c.JupyterHub.cleanup_servers = False")
    model = lifecycle_hub.start_server("alice")
    token = lifecycle_hub.user_token("alice")
    unit = lifecycle_hub.unit_of("alice")
    pid = bed.unit_properties(unit, "MainPID")["MainPID"]

    lifecycle_hub.reconfigure("", "c.JupyterHub.cleanup_servers = False")

    after = lifecycle_hub.api("GET", "/users/alice").json()["servers"][""]
    assert after["ready"] is True
    assert after["url"] == model["url"]
    assert bed.unit_properties(unit, "MainPID")["MainPID"] == pid
    assert lifecycle_hub.server_status("alice", token).status_code == 200
    lifecycle_hub.stop_server("alice")


def test_hub_restart_with_cleanup_stops_servers(bed: Bed, lifecycle_hub: Hub) -> None:
    lifecycle_hub.reconfigure("")
    lifecycle_hub.start_server("alice")
    unit = lifecycle_hub.unit_of("alice")
    lifecycle_hub.reconfigure("")
    assert bed.unit_properties(unit, "LoadState")["LoadState"] == "not-found"
    assert env_files(bed) == []
    lifecycle_hub.start_server("alice")
    lifecycle_hub.stop_server("alice")


def start_in_parallel(bed: Bed, users: list[str]) -> str:
    """Send one start request per user at the same moment, as the hub's user.

    Return each response followed by its HTTP status on a line of its own.
    """
    commands = []
    for i, user in enumerate(users):
        body = json.dumps({"user": user, "server": "", "cmd": ["/bin/sleep", "600"], "env": {}})
        curl = shlex.join(
            [
                "curl",
                "-sS",
                "--unix-socket",
                SOCKET,
                "-H",
                "Content-Type: application/json",
                "-w",
                "\\n%{http_code}\\n",
                "--data-binary",
                body,
                "http://sdspawner/v1/servers/start",
            ]
        )
        commands.append(f"{curl} > /tmp/parallel-{i} &")
    script = " ".join(commands) + " wait; cat /tmp/parallel-*; rm -f /tmp/parallel-*"
    return bed.run(["sh", "-c", script], user="jupyterhub").stdout


def test_concurrent_starts_yield_one_unit(bed: Bed, lifecycle_hub: Hub) -> None:
    output = start_in_parallel(bed, ["alice", "alice"])
    codes = sorted(line for line in output.splitlines() if line.isdigit())
    assert codes in (["200", "200"], ["200", "409"]), output
    if "409" in codes:
        assert "already in progress" in output
    units = bed.run("systemctl list-units --all --no-legend --plain 'jupyter-alice*'").stdout
    assert len(units.strip().splitlines()) == 1, units
    stop_direct(bed, "alice", now=True)
    assert env_files(bed) == []


def test_parallel_starts_of_different_users(bed: Bed, lifecycle_hub: Hub) -> None:
    output = start_in_parallel(bed, ["alice", "bob"])
    codes = [line for line in output.splitlines() if line.isdigit()]
    assert codes == ["200", "200"], output
    for user in ("alice", "bob"):
        assert daemon_status(bed, user)["active_state"] == "active"
        stop_direct(bed, user, now=True)
    assert env_files(bed) == []


def test_stop_grace_period_and_now(bed: Bed, lifecycle_hub: Hub) -> None:
    bed.write_file("/etc/sdspawner/config.toml", '[servers]\nstop_timeout = "2s"\n')
    bed.run("systemctl restart sdspawner.service")
    wait_until(
        "the socket is back", lambda: bed.run(["test", "-S", SOCKET], check=False).returncode == 0
    )
    try:
        stubborn = ["/bin/sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
        code, body = start_direct(bed, "alice", stubborn)
        assert code == 200, body
        assert bed.unit_properties(body["unit"], "TimeoutStopUSec")["TimeoutStopUSec"] == "2s"
        started = time.monotonic()
        code, body = stop_direct(bed, "alice")
        graceful = time.monotonic() - started
        assert code == 200, body
        assert 1.5 < graceful < 15

        code, body = start_direct(bed, "alice", stubborn)
        assert code == 200, body
        started = time.monotonic()
        code, body = stop_direct(bed, "alice", now=True)
        assert code == 200, body
        assert time.monotonic() - started < graceful
        assert env_files(bed) == []

        started = time.monotonic()
        code, body = stop_direct(bed, "alice")
        assert code == 200, body
        assert body["exists"] is False
        assert time.monotonic() - started < 5
    finally:
        bed.run("rm -f /etc/sdspawner/config.toml && systemctl restart sdspawner.service")
        wait_until(
            "the socket is back",
            lambda: bed.run(["test", "-S", SOCKET], check=False).returncode == 0,
        )


def test_bus_restart_reconnects(bed: Bed, lifecycle_hub: Hub) -> None:
    code, body = start_direct(bed, "alice", ["/bin/sleep", "600"])
    assert code == 200, body
    unit = body["unit"]
    # Restarting the bus daemon drops every bus connection, the daemon's included.
    bed.run(["systemctl", "restart", "dbus.service"])

    def reconnected() -> bool:
        log = bed.run(["journalctl", "--no-pager", "-o", "cat", "-u", "sdspawner.service"]).stdout
        return "reconnected to systemd" in log

    wait_until("the daemon reconnects", reconnected, timeout=60)
    assert daemon_status(bed, "alice")["active_state"] == "active"
    bed.run(["systemctl", "kill", "--kill-whom=main", "--signal=KILL", unit])
    wait_until(
        "the daemon sees the kill after reconnecting",
        lambda: daemon_status(bed, "alice")["active_state"] == "failed",
    )
    code, body = start_direct(bed, "alice", ["/bin/sleep", "600"])
    assert code == 200, body
    code, body = stop_direct(bed, "alice", now=True)
    assert code == 200, body
    assert env_files(bed) == []


def test_forgotten_running_unit_is_replaced(bed: Bed, lifecycle_hub: Hub) -> None:
    # A hub that lost its database starts a server that is still running.
    code, first = start_direct(bed, "alice", ["/bin/sleep", "600"])
    assert code == 200, first
    old_pid = first["main_pid"]
    code, second = start_direct(bed, "alice", ["/bin/sleep", "601"])
    assert code == 200, second
    assert second["unit"] == first["unit"]
    assert second["main_pid"] != old_pid
    assert bed.run(["kill", "-0", str(old_pid)], check=False).returncode != 0
    log = bed.run(["journalctl", "--no-pager", "-o", "cat", "-u", "sdspawner.service"]).stdout
    assert "replacing a running unit of the same server" in log
    stop_direct(bed, "alice", now=True)
    assert env_files(bed) == []


def test_check_says_not_enforced_in_nspawn(bed: Bed, lifecycle_hub: Hub) -> None:
    # The nspawn bed accepts limits but cannot enforce them, so check must report that.
    result = bed.run([DAEMON_BINARY, "check", "--json"], check=False)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["limits_enforced"] is False
    assert report["ok"] is False
    assert any("NOT enforced" in problem for problem in report["problems"])
    human = bed.run([DAEMON_BINARY, "check"], check=False)
    assert "limits are NOT enforced here" in human.stdout
    probes = bed.run("systemctl list-units --all --no-legend --plain 'sdspawner-check-*'").stdout
    assert probes.strip() == ""
