"""SystemdSpawner against a fake daemon: requests sent, results returned, state kept."""

from __future__ import annotations

import copy
import logging
import pwd
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import API_TOKEN, FakeDaemon, FakeResponse, RecordedRequest, make_spawner, status_body
from jupyterhub.spawner import Spawner
from traitlets import TraitError
from traitlets.config import Config

from sdspawner import DaemonError, ServerNotRunningError

# Every field of the start request in docs/api.md.
START_FIELDS = {
    "user",
    "user_id",
    "server",
    "cmd",
    "env",
    "username_template",
    "unit_name_template",
    "user_workingdir",
    "default_shell",
    "extra_paths",
    "mem_limit",
    "cpu_limit",
    "isolate_tmp",
    "isolate_devices",
    "disable_user_sudo",
    "readonly_paths",
    "readwrite_paths",
    "dynamic_users",
    "slice",
    "unit_extra_properties",
    "ip",
    "port",
    "ready_timeout",
}


def only_request(fake: FakeDaemon) -> RecordedRequest:
    """The one request other than the progress events that start() waits on."""
    requests = [r for r in fake.requests if r.path != "/v1/servers/events"]
    assert len(requests) == 1, fake.requests
    return requests[0]


def admin_config() -> Config:
    """A configuration with every option changed from its default, as an admin writes it."""
    config = Config()
    config.Spawner.cmd = ["/opt/jupyterhub/bin/jupyterhub-singleuser"]
    config.Spawner.args = ["--debug"]
    config.Spawner.mem_limit = "2G"
    config.Spawner.cpu_limit = 1.5
    config.Spawner.environment = {"TEAM": "physics"}
    config.SystemdSpawner.username_template = "jh-{USERNAME}"
    config.SystemdSpawner.unit_name_template = "jupyter-{USERNAME}-{SERVERNAME}"
    config.SystemdSpawner.user_workingdir = "/srv/work/{USERNAME}"
    config.SystemdSpawner.default_shell = "/bin/zsh"
    config.SystemdSpawner.extra_paths = ["/opt/conda/bin", "/home/{USERNAME}/.local/bin"]
    config.SystemdSpawner.isolate_tmp = True
    config.SystemdSpawner.isolate_devices = True
    config.SystemdSpawner.disable_user_sudo = False
    config.SystemdSpawner.readonly_paths = ["/", "-/srv/optional"]
    config.SystemdSpawner.readwrite_paths = ["/home/{USERNAME}"]
    config.SystemdSpawner.dynamic_users = True
    config.SystemdSpawner.slice = "jupyterhub.slice"
    config.SystemdSpawner.unit_extra_properties = {
        "CPUWeight": "50",
        "BindReadOnlyPaths": ["/srv/data", "/srv/models"],
    }
    return config


async def test_start_sends_every_contract_field(fake_daemon: FakeDaemon) -> None:
    spawner = make_spawner(fake_daemon.socket_path)

    await spawner.start()

    request = only_request(fake_daemon)
    assert request.method == "POST"
    assert request.path == "/v1/servers/start"
    assert request.headers["content-type"] == "application/json"
    assert request.body is not None
    assert set(request.body) == START_FIELDS


async def test_start_sends_upstream_defaults(
    fake_daemon: FakeDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHELL", "/bin/fish")
    spawner = make_spawner(fake_daemon.socket_path)

    await spawner.start()

    body = only_request(fake_daemon).body
    assert body is not None
    assert body["user"] == "alice"
    assert body["server"] == ""
    assert body["cmd"] == ["jupyterhub-singleuser"]
    assert body["username_template"] == "{USERNAME}"
    assert body["unit_name_template"] == "jupyter-{USERNAME}-singleuser"
    assert body["user_workingdir"] is None
    assert body["default_shell"] == "/bin/fish"
    assert body["extra_paths"] == []
    assert body["mem_limit"] is None
    assert body["cpu_limit"] is None
    assert body["isolate_tmp"] is False
    assert body["isolate_devices"] is False
    assert body["disable_user_sudo"] is True
    assert body["readonly_paths"] is None
    assert body["readwrite_paths"] is None
    assert body["dynamic_users"] is False
    assert body["slice"] is None
    assert body["unit_extra_properties"] == {}


async def test_start_sends_hub_user_id(fake_daemon: FakeDaemon) -> None:
    spawner = make_spawner(fake_daemon.socket_path)
    spawner.user.id = 4242

    await spawner.start()

    body = only_request(fake_daemon).body
    assert body is not None
    # JupyterHub's id of the user, for {USERID}, not the unix uid that the daemon finds.
    assert body["user_id"] == 4242
    assert type(body["user_id"]) is int


async def test_default_shell_without_shell_env(
    fake_daemon: FakeDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHELL", raising=False)
    spawner = make_spawner(fake_daemon.socket_path)

    await spawner.start()

    body = only_request(fake_daemon).body
    assert body is not None
    assert body["default_shell"] == "/bin/bash"


async def test_start_sends_configured_options_raw(fake_daemon: FakeDaemon) -> None:
    spawner = make_spawner(fake_daemon.socket_path, config=admin_config())

    await spawner.start()

    body = only_request(fake_daemon).body
    assert body is not None
    assert body["cmd"] == ["/opt/jupyterhub/bin/jupyterhub-singleuser", "--debug"]
    assert body["username_template"] == "jh-{USERNAME}"
    assert body["unit_name_template"] == "jupyter-{USERNAME}-{SERVERNAME}"
    assert body["user_workingdir"] == "/srv/work/{USERNAME}"
    assert body["default_shell"] == "/bin/zsh"
    assert body["extra_paths"] == ["/opt/conda/bin", "/home/{USERNAME}/.local/bin"]
    assert body["mem_limit"] == 2 * 1024**3
    assert body["cpu_limit"] == 1.5
    assert body["isolate_tmp"] is True
    assert body["isolate_devices"] is True
    assert body["disable_user_sudo"] is False
    assert body["readonly_paths"] == ["/", "-/srv/optional"]
    assert body["readwrite_paths"] == ["/home/{USERNAME}"]
    assert body["dynamic_users"] is True
    assert body["slice"] == "jupyterhub.slice"
    assert body["unit_extra_properties"] == {
        "CPUWeight": "50",
        "BindReadOnlyPaths": ["/srv/data", "/srv/models"],
    }
    assert body["env"]["TEAM"] == "physics"


async def test_start_leaves_admin_config_unchanged(fake_daemon: FakeDaemon) -> None:
    config = admin_config()
    config.SystemdSpawner.unit_extra_properties["TasksMax"] = 512
    before = copy.deepcopy(config)
    spawner = make_spawner(fake_daemon.socket_path, config=config)

    await spawner.start()
    body = only_request(fake_daemon).body
    assert body is not None
    # Changing the spawner's values must not reach the admin's objects either.
    spawner.extra_paths.append("/changed")
    spawner.unit_extra_properties["BindReadOnlyPaths"].append("/changed")

    assert config == before
    assert config.SystemdSpawner.unit_extra_properties["TasksMax"] == 512
    assert body["unit_extra_properties"]["TasksMax"] == "512"


async def test_start_env_carries_port_and_token(fake_daemon: FakeDaemon) -> None:
    spawner = make_spawner(fake_daemon.socket_path)

    _, port = await spawner.start()

    body = only_request(fake_daemon).body
    assert body is not None
    env = body["env"]
    assert env["JUPYTERHUB_SERVICE_URL"] == f"http://127.0.0.1:{port}/user/alice/"
    assert env["JUPYTERHUB_API_TOKEN"] == API_TOKEN
    assert env["JUPYTERHUB_USER"] == "alice"
    assert env["JUPYTERHUB_SERVER_NAME"] == ""
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/user/alice/"
    assert all(isinstance(value, str) for value in env.values())


async def test_start_env_values_become_strings(fake_daemon: FakeDaemon) -> None:
    def gpu_count(spawner: Spawner) -> int:
        return 2

    spawner = make_spawner(
        fake_daemon.socket_path, environment={"GPU_COUNT": gpu_count, "DEBUG": 1}
    )

    await spawner.start()

    body = only_request(fake_daemon).body
    assert body is not None
    assert body["env"]["GPU_COUNT"] == "2"
    assert body["env"]["DEBUG"] == "1"


async def test_start_returns_loopback_and_random_port(fake_daemon: FakeDaemon) -> None:
    spawner = make_spawner(fake_daemon.socket_path)

    ip, port = await spawner.start()

    assert ip == "127.0.0.1"
    assert isinstance(port, int)
    assert 0 < port < 65536
    assert spawner.port == port


async def test_start_empty_ip_returns_loopback(fake_daemon: FakeDaemon) -> None:
    spawner = make_spawner(fake_daemon.socket_path, ip="")

    ip, _ = await spawner.start()

    assert ip == "127.0.0.1"


async def test_start_keeps_configured_ip_and_port(fake_daemon: FakeDaemon) -> None:
    spawner = make_spawner(fake_daemon.socket_path, ip="127.0.0.5", port=8888)

    result = await spawner.start()

    assert result == ("127.0.0.5", 8888)
    body = only_request(fake_daemon).body
    assert body is not None
    assert body["env"]["JUPYTERHUB_SERVICE_URL"] == "http://127.0.0.5:8888/user/alice/"

    spawner.clear_state()
    assert spawner.port == 8888


async def test_clear_state_frees_random_port(fake_daemon: FakeDaemon) -> None:
    spawner = make_spawner(fake_daemon.socket_path)
    await spawner.start()

    spawner.clear_state()

    assert spawner.port == 0


async def test_start_named_server(fake_daemon: FakeDaemon) -> None:
    spawner = make_spawner(fake_daemon.socket_path, server_name="gpu")

    _, port = await spawner.start()

    body = only_request(fake_daemon).body
    assert body is not None
    assert body["server"] == "gpu"
    assert body["env"]["JUPYTERHUB_SERVER_NAME"] == "gpu"
    assert body["env"]["JUPYTERHUB_SERVICE_URL"] == f"http://127.0.0.1:{port}/user/alice/gpu/"


async def test_start_makes_no_privileged_calls(
    fake_daemon: FakeDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the spawner must leave users and processes to the daemon")

    monkeypatch.setattr(subprocess, "Popen", forbidden)
    monkeypatch.setattr(pwd, "getpwnam", forbidden)
    monkeypatch.setattr(pwd, "getpwuid", forbidden)
    spawner = make_spawner(fake_daemon.socket_path)

    await spawner.start()
    await spawner.poll()
    await spawner.stop()


async def test_start_unit_not_running_raises(fake_daemon: FakeDaemon) -> None:
    fake_daemon.respond("POST", "/v1/servers/start", 200, status_body("failed", exit_status=203))
    spawner = make_spawner(fake_daemon.socket_path)

    with pytest.raises(ServerNotRunningError) as raised:
        await spawner.start()

    message = str(raised.value)
    assert "jupyter-alice-singleuser.service" in message
    assert "failed" in message
    assert "203" in message


async def test_start_error_text_surfaces(fake_daemon: FakeDaemon) -> None:
    error = "mem_limit 0 is invalid: use None for no limit, or a size of at least 1M"
    fake_daemon.respond(
        "POST", "/v1/servers/start", 400, {"error": error, "code": "invalid_request"}
    )
    spawner = make_spawner(fake_daemon.socket_path)

    with pytest.raises(DaemonError) as raised:
        await spawner.start()

    assert raised.value.error == error
    assert raised.value.status == 400
    assert raised.value.code == "invalid_request"
    assert str(raised.value).startswith(error)
    assert "HTTP 400" in str(raised.value)
    assert API_TOKEN not in str(raised.value)


SLICE_WARNING = (
    "slice jupyterhub.slice has no unit file, so systemd creates it without limits;"
    " add /etc/systemd/system/jupyterhub.slice to set them"
)


def warning_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


async def test_start_logs_daemon_warnings(
    fake_daemon: FakeDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    body = status_body("active")
    body["warnings"] = [SLICE_WARNING, "second warning"]
    fake_daemon.respond("POST", "/v1/servers/start", 200, body)
    spawner = make_spawner(fake_daemon.socket_path)

    with caplog.at_level(logging.WARNING):
        await spawner.start()

    messages = warning_messages(caplog)
    assert len(messages) == 2, messages
    assert SLICE_WARNING in messages[0]
    assert "jupyter-alice-singleuser.service" in messages[0]
    assert "alice" in messages[0]
    assert "second warning" in messages[1]


async def test_start_without_warnings_logs_none(
    fake_daemon: FakeDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    spawner = make_spawner(fake_daemon.socket_path)

    with caplog.at_level(logging.WARNING):
        await spawner.start()

    assert warning_messages(caplog) == []


async def test_start_invalid_warnings_still_starts(
    fake_daemon: FakeDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    body = status_body("active")
    body["warnings"] = "not a list"
    fake_daemon.respond("POST", "/v1/servers/start", 200, body)
    spawner = make_spawner(fake_daemon.socket_path)

    with caplog.at_level(logging.WARNING):
        ip, port = await spawner.start()

    assert ip == "127.0.0.1"
    assert port == spawner.port
    messages = warning_messages(caplog)
    assert len(messages) == 1, messages
    assert "invalid warnings field" in messages[0]
    assert "'not a list'" in messages[0]


async def test_poll_ignores_warnings(
    fake_daemon: FakeDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    body = status_body("active")
    body["warnings"] = [SLICE_WARNING]
    fake_daemon.respond("GET", "/v1/servers/status", 200, body)
    spawner = make_spawner(fake_daemon.socket_path)

    with caplog.at_level(logging.WARNING):
        assert await spawner.poll() is None

    assert warning_messages(caplog) == []


@pytest.mark.parametrize(
    ("active_state", "exit_status", "expected"),
    [
        ("active", None, None),
        ("activating", None, None),
        ("reloading", None, None),
        ("deactivating", None, 0),
        ("inactive", None, 0),
        ("inactive", 0, 0),
        ("failed", 1, 1),
        ("failed", 143, 143),
        ("failed", None, 0),
    ],
)
async def test_poll_maps_active_state(
    fake_daemon: FakeDaemon,
    active_state: str,
    exit_status: int | None,
    expected: int | None,
) -> None:
    fake_daemon.respond(
        "GET", "/v1/servers/status", 200, status_body(active_state, exit_status=exit_status)
    )
    spawner = make_spawner(fake_daemon.socket_path)

    assert await spawner.poll() == expected


async def test_poll_sends_user_and_server(fake_daemon: FakeDaemon) -> None:
    spawner = make_spawner(fake_daemon.socket_path)

    await spawner.poll()

    request = only_request(fake_daemon)
    assert request.method == "GET"
    assert request.path == "/v1/servers/status"
    assert request.query == {"user": ["alice"], "server": [""]}


async def test_poll_named_server_query(fake_daemon: FakeDaemon) -> None:
    spawner = make_spawner(fake_daemon.socket_path, server_name="gpu")

    await spawner.poll()

    assert only_request(fake_daemon).query == {"user": ["alice"], "server": ["gpu"]}


async def test_poll_not_found_returns_zero(fake_daemon: FakeDaemon) -> None:
    fake_daemon.respond(
        "GET", "/v1/servers/status", 404, {"error": "no such server", "code": "not_found"}
    )
    spawner = make_spawner(fake_daemon.socket_path)

    assert await spawner.poll() == 0


async def test_poll_daemon_failure_raises(fake_daemon: FakeDaemon) -> None:
    fake_daemon.respond(
        "GET",
        "/v1/servers/status",
        503,
        {"error": "cannot reach systemd: connection refused", "code": "unavailable"},
    )
    spawner = make_spawner(fake_daemon.socket_path)

    with pytest.raises(DaemonError, match="cannot reach systemd"):
        await spawner.poll()


@pytest.mark.parametrize("now", [False, True])
async def test_stop_sends_now(fake_daemon: FakeDaemon, now: bool) -> None:
    spawner = make_spawner(fake_daemon.socket_path, server_name="gpu")

    await spawner.stop(now=now)

    request = only_request(fake_daemon)
    assert request.method == "POST"
    assert request.path == "/v1/servers/stop"
    assert request.headers["content-type"] == "application/json"
    assert request.body == {"user": "alice", "server": "gpu", "now": now}


async def test_stop_default_is_graceful(fake_daemon: FakeDaemon) -> None:
    spawner = make_spawner(fake_daemon.socket_path)

    await spawner.stop()

    body = only_request(fake_daemon).body
    assert body is not None
    assert body["now"] is False


async def test_stop_waits_stop_request_timeout(fake_daemon: FakeDaemon) -> None:
    fake_daemon.respond("POST", "/v1/servers/stop", 200, status_body("inactive"), delay=0.5)
    spawner = make_spawner(fake_daemon.socket_path, request_timeout=0.1, stop_request_timeout=5.0)

    await spawner.stop()

    assert len(fake_daemon.requests) == 1


async def test_stop_error_text_surfaces(fake_daemon: FakeDaemon) -> None:
    fake_daemon.respond(
        "POST",
        "/v1/servers/stop",
        409,
        {"error": "a start of alice's server is in progress", "code": "conflict"},
    )
    spawner = make_spawner(fake_daemon.socket_path)

    with pytest.raises(DaemonError, match="a start of alice's server is in progress") as raised:
        await spawner.stop()

    assert raised.value.status == 409
    assert raised.value.code == "conflict"


async def test_stop_not_found_succeeds(fake_daemon: FakeDaemon) -> None:
    fake_daemon.respond(
        "POST", "/v1/servers/stop", 404, {"error": "no such server", "code": "not_found"}
    )
    spawner = make_spawner(fake_daemon.socket_path)

    await spawner.stop()

    assert len(fake_daemon.requests) == 1


async def test_state_round_trip(fake_daemon: FakeDaemon) -> None:
    def start_response(request: RecordedRequest) -> FakeResponse:
        body = status_body("active")
        body["unit"] = "jupyter-alice-singleuser:gpu.service"
        return FakeResponse(200, body)

    fake_daemon.responses[("POST", "/v1/servers/start")] = start_response
    spawner = make_spawner(fake_daemon.socket_path, server_name="gpu")
    await spawner.start()

    state = spawner.get_state()
    assert state == {"unit_name": "jupyter-alice-singleuser:gpu.service"}

    restored = make_spawner(fake_daemon.socket_path, server_name="gpu")
    restored.load_state(state)
    assert restored.unit_name == "jupyter-alice-singleuser:gpu.service"
    assert restored.get_state() == state

    restored.clear_state()
    assert restored.unit_name == ""
    assert restored.get_state() == {}


def test_state_empty_before_start(short_tmp: Path) -> None:
    spawner = make_spawner(str(short_tmp / "unused.sock"))

    spawner.load_state({})

    assert spawner.get_state() == {}


def test_state_keeps_base_class_state(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[dict[str, Any]] = []
    monkeypatch.setattr(Spawner, "get_state", lambda self: {"from_base": 1})
    monkeypatch.setattr(Spawner, "load_state", lambda self, state: loaded.append(state))
    spawner = make_spawner(str(short_tmp / "unused.sock"))
    state = {"from_base": 1, "unit_name": "jupyter-alice-singleuser.service"}

    spawner.load_state(state)

    assert loaded == [state]
    assert spawner.get_state() == state


def test_start_request_body_is_a_copy(short_tmp: Path) -> None:
    spawner = make_spawner(str(short_tmp / "unused.sock"), config=admin_config())
    spawner.port = 8888

    body = spawner.start_request_body()
    body["cmd"].append("--changed")
    body["extra_paths"].append("/changed")
    body["readonly_paths"].append("/changed")
    body["readwrite_paths"].append("/changed")
    body["unit_extra_properties"]["BindReadOnlyPaths"].append("/changed")
    body["unit_extra_properties"]["New"] = "changed"

    assert "--changed" not in spawner.cmd
    assert "/changed" not in spawner.extra_paths
    assert "/changed" not in spawner.readonly_paths
    assert "/changed" not in spawner.readwrite_paths
    assert spawner.unit_extra_properties == {
        "CPUWeight": "50",
        "BindReadOnlyPaths": ["/srv/data", "/srv/models"],
    }


def test_unit_extra_properties_become_text(short_tmp: Path) -> None:
    properties = {"TasksMax": 512, "CPUWeight": 2.5, "Delegate": True, "Foo": ["a", 1]}
    spawner = make_spawner(str(short_tmp / "unused.sock"), unit_extra_properties=properties)

    assert spawner.unit_extra_properties == {
        "TasksMax": "512",
        "CPUWeight": "2.5",
        "Delegate": "yes",
        "Foo": ["a", "1"],
    }
    assert properties == {"TasksMax": 512, "CPUWeight": 2.5, "Delegate": True, "Foo": ["a", 1]}


def test_unit_extra_properties_rejects_nested(short_tmp: Path) -> None:
    with pytest.raises(TraitError, match=r"unit_extra_properties\['Environment'\]"):
        make_spawner(
            str(short_tmp / "unused.sock"),
            unit_extra_properties={"Environment": {"A": "1"}},
        )
