"""A real JupyterHub, running unprivileged, spawns servers through the daemon."""

from __future__ import annotations

import pytest
from conftest import SPAWNER_CONFIG
from hubbed import Bed, Hub


@pytest.fixture(scope="module")
def alice(hub: Hub) -> dict[str, str]:
    # Other modules reconfigure the shared hub, so this one sets its options again.
    hub.reconfigure(SPAWNER_CONFIG)
    hub.start_server("alice")
    token = hub.user_token("alice")
    unit = hub.unit_of("alice")
    return {"token": token, "unit": unit}


def test_hub_is_not_root(hub: Hub) -> None:
    assert hub.hub_uid() != 0


def test_unit_is_active_with_properties(hub: Hub, alice: dict[str, str]) -> None:
    assert alice["unit"] == "jupyter-alice-singleuser.service"
    props = hub.bed.unit_properties(
        alice["unit"],
        "ActiveState",
        "User",
        "MemoryMax",
        "CPUQuotaPerSecUSec",
        "CPUWeight",
        "PrivateTmp",
        "NoNewPrivileges",
        "OOMPolicy",
        "EnvironmentFiles",
    )
    assert props["ActiveState"] == "active"
    assert props["User"] == "alice"
    assert props["MemoryMax"] == str(1610612736)
    assert props["CPUQuotaPerSecUSec"] == "500ms"
    assert props["CPUWeight"] == "100"
    assert props["PrivateTmp"] == "yes"
    assert props["NoNewPrivileges"] == "yes"
    assert props["OOMPolicy"] == "continue"
    assert props["EnvironmentFiles"].startswith("/run/sdspawner/env/")


def test_server_answers_through_proxy(hub: Hub, alice: dict[str, str]) -> None:
    response = hub.server_status("alice", alice["token"])
    assert response.status_code == 200, response.text
    assert "last_activity" in response.json()


def test_server_process_sees_limits(hub: Hub, alice: dict[str, str]) -> None:
    pid = hub.bed.unit_properties(alice["unit"], "MainPID")["MainPID"]
    environ = hub.bed.run(["cat", f"/proc/{pid}/environ"]).stdout.split("\0")
    assert "MEM_LIMIT=1610612736" in environ
    assert "CPU_LIMIT=0.5" in environ
    assert any(entry.startswith("JUPYTERHUB_API_TOKEN=") for entry in environ)
    status = hub.bed.run(["cat", f"/proc/{pid}/status"]).stdout
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    alice_uid = hub.bed.run(["id", "-u", "alice"]).stdout.strip()
    assert uid_line.split()[1] == alice_uid


def test_token_hidden_from_other_users(hub: Hub, bed: Bed, alice: dict[str, str]) -> None:
    unit = alice["unit"]
    pid = bed.unit_properties(unit, "MainPID")["MainPID"]
    environ = bed.run(["cat", f"/proc/{pid}/environ"]).stdout.split("\0")
    token = next(e.split("=", 1)[1] for e in environ if e.startswith("JUPYTERHUB_API_TOKEN="))
    assert len(token) >= 16

    env_file = bed.unit_properties(unit, "EnvironmentFiles")["EnvironmentFiles"].split(" ")[0]
    read_env = bed.run(["cat", env_file], user="bob", check=False)
    assert read_env.returncode != 0
    assert "Permission denied" in read_env.stderr
    assert token not in read_env.stdout

    show = bed.run(["systemctl", "show", unit], user="bob")
    assert show.returncode == 0
    assert "ActiveState=active" in show.stdout
    assert token not in show.stdout

    read_environ = bed.run(["cat", f"/proc/{pid}/environ"], user="bob", check=False)
    assert read_environ.returncode != 0
    assert token not in read_environ.stdout

    ps = bed.run(["ps", "-eo", "args"], user="bob")
    assert "jupyterhub-singleuser" in ps.stdout
    assert token not in ps.stdout


def test_two_users_run_at_once(hub: Hub, alice: dict[str, str]) -> None:
    hub.start_server("bob")
    token = hub.user_token("bob")
    assert hub.server_status("bob", token).status_code == 200
    assert (
        hub.bed.unit_properties("jupyter-bob-singleuser.service", "ActiveState")["ActiveState"]
        == "active"
    )
    assert hub.server_status("alice", alice["token"]).status_code == 200
    hub.stop_server("bob")


def test_stop_removes_unit_and_env_file(hub: Hub, bed: Bed, alice: dict[str, str]) -> None:
    unit = alice["unit"]
    env_file = bed.unit_properties(unit, "EnvironmentFiles")["EnvironmentFiles"].split(" ")[0]
    assert bed.run(["test", "-f", env_file], check=False).returncode == 0

    hub.stop_server("alice")

    assert bed.unit_properties(unit, "LoadState")["LoadState"] == "not-found"
    assert bed.run(["test", "-e", env_file], check=False).returncode != 0
    assert bed.run("ls -A /run/sdspawner/env").stdout.strip() == ""
