"""Install the .deb and the wheel in a bed and run the hub from the example unit.

The tests follow the steps of README.md's quickstart: install the package, enable
sdspawner.socket, run JupyterHub from the packaged example unit and configuration as the
unprivileged user `jupyterhub`, and spawn through the hub's REST API. Then they restart
the daemon while a server runs and while a start request is in flight. They run in file
order and share one bed, because each step builds on the last.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bed"))

from hubbed import Bed, BedError, Hub  # noqa: E402

USERS = ["alice", "bob"]
SOCKET = "/run/sdspawner/sdspawner.sock"
DOC_DIR = "/usr/share/doc/sdspawner"
ENV_DIR = "/run/sdspawner/env"

# What the test adds to the packaged example configuration. Free ports are needed because
# the bed shares the host's network, and an admin service gives access to the REST API.
# The short poll interval makes the hub poll while the daemon restarts. The paths lie in
# private home directories, which the sandboxed daemon must still be able to check.
HUB_OVERRIDES = """
c.JupyterHub.bind_url = "http://127.0.0.1:{public_port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.JupyterHub.services = [{{"name": "install-test", "api_token": {service_token!r}}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["install-test"]}}]
c.Spawner.poll_interval = 1
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.SystemdSpawner.user_workingdir = "/home/{{USERNAME}}/work"
c.SystemdSpawner.readwrite_paths = ["/home/{{USERNAME}}/data"]
"""

# A oneshot unit that takes {seconds}. The test's site_properties order every server
# after it, so a start request stays in flight that long.
SLOW_START_SECONDS = 8
RESTART = "systemctl restart sdspawner.service"
SLOW_UNIT = """\
[Unit]
Description=Holds back server starts in the install test

[Service]
Type=oneshot
ExecStart=/bin/sleep {seconds}
"""


def package_files() -> tuple[Path, Path]:
    """Return the .deb and the wheel that `make deb python-dist` built."""
    pyproject = tomllib.loads((REPO / "python" / "pyproject.toml").read_text())
    version = pyproject["project"]["version"]
    debs = sorted((REPO / "dist").glob(f"sdspawner_{version}_*.deb"))
    wheels = sorted((REPO / "dist" / "python").glob(f"sdspawner-{version}-*.whl"))
    if len(debs) != 1 or len(wheels) != 1:
        pytest.fail(
            f"expected one .deb and one wheel of version {version} in dist/, found "
            f"{[p.name for p in debs]} and {[p.name for p in wheels]}: run `make deb python-dist`"
        )
    return debs[0], wheels[0]


def wait_until(what: str, condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting until {what}")


def in_bed(path: Path) -> str:
    """Return the path of a repository file inside the bed, where /src is the repository."""
    return "/src/" + str(path.relative_to(REPO))


def prop(bed: Bed, unit: str, name: str) -> str:
    return bed.unit_properties(unit, name)[name]


def daemon_status(bed: Bed, user: str) -> dict[str, object]:
    output = bed.run(["sdspawner", "status", user]).stdout
    return dict(json.loads(output))


def env_files(bed: Bed) -> list[str]:
    return bed.run(["ls", "-A", ENV_DIR]).stdout.split()


def server_units(bed: Bed) -> list[str]:
    output = bed.run("systemctl list-units --all --plain --no-legend 'jupyter-*'").stdout
    return [line.split()[0] for line in output.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def bed() -> Iterator[Bed]:
    booted = Bed.up()
    try:
        yield booted
    finally:
        booted.down()


@pytest.fixture(scope="module")
def hub(bed: Bed) -> Hub:
    return install_and_start_hub(bed)


def install_and_start_hub(bed: Bed) -> Hub:
    """Install everything as README.md describes, and start the hub from the example unit."""
    deb, wheel = package_files()
    bed.run(["apt-get", "install", "-y", "-q", in_bed(deb)], timeout=300)
    bed.run(
        ["/opt/jupyterhub/bin/pip", "install", "--quiet", "--no-deps", "--no-index", in_bed(wheel)],
        timeout=300,
    )
    bed.run(
        "useradd --system --gid jupyterhub --home-dir /var/lib/jupyterhub "
        "--shell /usr/sbin/nologin jupyterhub"
    )
    for user in USERS:
        bed.run(
            f"useradd --create-home {user} && chmod 0700 /home/{user} && "
            f"install -d -o {user} -g {user} /home/{user}/work /home/{user}/data"
        )

    installed = Hub(bed=bed, users=USERS)
    overrides = HUB_OVERRIDES.format(
        public_port=installed.public_port,
        hub_port=installed.hub_port,
        proxy_api_port=installed.proxy_api_port,
        service_token=installed.service_token,
    )
    bed.run(
        f"install -d /etc/jupyterhub && "
        f"cp {DOC_DIR}/examples/jupyterhub_config.py /etc/jupyterhub/jupyterhub_config.py && "
        f"cat >> /etc/jupyterhub/jupyterhub_config.py && "
        f"cp {DOC_DIR}/examples/jupyterhub.service /etc/systemd/system/jupyterhub.service",
        input=overrides,
    )
    bed.run("systemctl enable --now sdspawner.socket")
    bed.run("systemctl daemon-reload && systemctl enable --now jupyterhub.service")
    installed.wait_for("hub API", installed._hub_answers, 90)
    return installed


def test_package_enables_nothing(bed: Bed) -> None:
    deb, _ = package_files()
    bed.run(["dpkg", "-i", in_bed(deb)], timeout=120)
    assert bed.run(["getent", "group", "jupyterhub"], check=False).returncode == 0
    for unit in ("sdspawner.socket", "sdspawner.service"):
        enabled = bed.run(["systemctl", "is-enabled", unit], check=False).stdout.strip()
        assert enabled == "disabled", unit
        assert prop(bed, unit, "ActiveState") == "inactive", unit
    assert bed.run(["test", "-e", SOCKET], check=False).returncode != 0
    assert bed.run(["test", "-f", "/etc/sdspawner/config.toml"], check=False).returncode == 0


def test_hub_spawns_through_socket(bed: Bed, hub: Hub) -> None:
    socket_mode = bed.run(["stat", "-c", "%a %U %G", SOCKET]).stdout.split()
    assert socket_mode == ["660", "root", "jupyterhub"]
    assert hub.hub_uid() != 0

    hub.start_server("alice")
    status = daemon_status(bed, "alice")
    assert status["active_state"] == "active"
    assert prop(bed, str(status["unit"]), "User") == "alice"
    assert prop(bed, str(status["unit"]), "WorkingDirectory") == "/home/alice/work"
    assert hub.server_status("alice", hub.user_token("alice")).status_code == 200
    # The first connection started the daemon.
    assert prop(bed, "sdspawner.service", "ActiveState") == "active"


def test_daemon_runs_sandboxed(bed: Bed, hub: Hub) -> None:
    pid = prop(bed, "sdspawner.service", "MainPID")
    status = bed.run(["cat", f"/proc/{pid}/status"]).stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    # CAP_DAC_READ_SEARCH is capability 2, so the bounding set is bit 2 alone.
    assert fields["CapBnd"].strip() == "0000000000000004"
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"
    assert prop(bed, "sdspawner.service", "ProtectSystem") == "strict"
    assert prop(bed, "sdspawner.service", "ProtectHome") == "read-only"


def test_sandboxed_daemon_reads_logs_and_usage(bed: Bed, hub: Hub) -> None:
    """The sandbox leaves the daemon what ps, logs and the readiness check need."""
    servers = json.loads(bed.run(["sdspawner", "ps", "--json"]).stdout)["servers"]
    alice = next(server for server in servers if server["user"] == "alice")
    assert alice["active_state"] == "active"
    assert alice["uptime_seconds"] > 0
    logs = bed.run(["sdspawner", "logs", "-n", "50", "alice"]).stdout
    assert "jupyter" in logs.lower(), logs
    # The readiness check reached the server's port from inside the sandbox.
    events = json.loads(
        bed.run(
            [
                "curl",
                "-sS",
                "--unix-socket",
                SOCKET,
                "http://sdspawner/v1/servers/events?user=alice",
            ]
        ).stdout
    )
    assert events["events"][-1]["phase"] == "ready", events


def test_log_has_journal_fields(bed: Bed, hub: Hub) -> None:
    output = bed.run(
        "journalctl --no-pager -o json -u sdspawner.service SDSPAWNER_USER=alice"
    ).stdout
    records = [json.loads(line) for line in output.splitlines()]
    started = [r for r in records if r["MESSAGE"].startswith("server started")]
    assert started, output
    assert started[0]["SDSPAWNER_UNIT"] == "jupyter-alice-singleuser.service"
    assert started[0]["SDSPAWNER_LEVEL"] == "INFO"
    assert started[0]["PRIORITY"] == "6"


def test_restart_keeps_running_server(bed: Bed, hub: Hub) -> None:
    unit = str(daemon_status(bed, "alice")["unit"])
    server_pid = prop(bed, unit, "MainPID")
    daemon_pid = prop(bed, "sdspawner.service", "MainPID")
    token = hub.user_token("alice")

    bed.run("systemctl restart sdspawner.service")

    assert prop(bed, "sdspawner.service", "MainPID") != daemon_pid
    assert prop(bed, unit, "ActiveState") == "active"
    assert prop(bed, unit, "MainPID") == server_pid
    assert daemon_status(bed, "alice")["active_state"] == "active"
    # The hub polls every second; give it a few polls against the new daemon.
    time.sleep(4)
    model = hub.api("GET", "/users/alice").json()
    assert model["servers"][""]["ready"] is True
    assert hub.server_status("alice", token).status_code == 200
    assert env_files(bed) == [unit + ".env"]


def test_upgrade_restarts_daemon(bed: Bed, hub: Hub) -> None:
    # Installing the package over itself runs the same maintainer scripts as an upgrade.
    unit = str(daemon_status(bed, "alice")["unit"])
    server_pid = prop(bed, unit, "MainPID")
    daemon_pid = prop(bed, "sdspawner.service", "MainPID")
    deb, _ = package_files()

    bed.run(["dpkg", "-i", in_bed(deb)], timeout=120)

    assert prop(bed, "sdspawner.service", "ActiveState") == "active"
    assert prop(bed, "sdspawner.service", "MainPID") != daemon_pid
    assert prop(bed, unit, "MainPID") == server_pid
    assert daemon_status(bed, "alice")["active_state"] == "active"
    assert bed.run(["systemctl", "is-enabled", "sdspawner.socket"]).stdout.strip() == "enabled"


def test_restart_drops_no_connection(bed: Bed, hub: Hub) -> None:
    # Status requests every 50 ms while the daemon restarts. With the socket held by
    # systemd, each one gets a response, from the old daemon or after a wait from the new one.
    script = f"""
        systemctl restart sdspawner.service &
        for i in $(seq 60); do
            curl -sS -o /dev/null -w '%{{http_code}}\\n' --max-time 60 \\
                --unix-socket {SOCKET} 'http://sdspawner/v1/servers/status?user=alice&server=' \\
                || echo "curl exit $?"
            sleep 0.05
        done
        wait
    """
    codes = bed.run(script, user="jupyterhub", check=False).stdout.split("\n")
    codes = [code for code in codes if code]
    assert codes == ["200"] * 60


def test_socket_mismatch_warning(bed: Bed, hub: Hub) -> None:
    bed.run(
        "groupadd hubs && "
        'sed -i \'s/^group = "jupyterhub"/group = "hubs"/\' /etc/sdspawner/config.toml && '
        "systemctl restart sdspawner.service"
    )
    try:
        log = bed.run("journalctl --no-pager -o cat -u sdspawner.service").stdout
        assert (
            "the group of the socket passed by systemd differs from socket.group; "
            "set SocketGroup= in sdspawner.socket to change it "
            f'socket="{SOCKET}" group="jupyterhub" socket.group="hubs"'
        ) in log
        assert daemon_status(bed, "alice")["active_state"] == "active"
    finally:
        bed.run(
            'sed -i \'s/^group = "hubs"/group = "jupyterhub"/\' /etc/sdspawner/config.toml && '
            "systemctl restart sdspawner.service"
        )


def test_stopped_daemon_starts_on_connect(bed: Bed, hub: Hub) -> None:
    bed.run("systemctl stop sdspawner.service")
    assert prop(bed, "sdspawner.service", "ActiveState") == "inactive"
    assert daemon_status(bed, "alice")["active_state"] == "active"
    assert prop(bed, "sdspawner.service", "ActiveState") == "active"


def restart_during_start(
    bed: Bed, hub: Hub, user: str, seconds: int, restart_command: str = RESTART
) -> tuple[str, float, str]:
    """Restart the daemon while a start of user's server waits seconds for systemd.

    Return how the spawn ended ("ready" or "failed"), how long the restart took, and
    the daemon's journal.
    """
    bed.write_file("/etc/systemd/system/sdslow.service", SLOW_UNIT.format(seconds=seconds))
    # An earlier test's sdslow.service may still run, with its own duration.
    bed.run(
        "systemctl daemon-reload && systemctl stop sdslow.service && "
        "cat >> /etc/sdspawner/config.toml && systemctl restart sdspawner.service",
        input='\n[site_properties]\nAfter = ["sdslow.service"]\nWants = ["sdslow.service"]\n',
    )
    # The hub responds to the start request only after up to 10 s (its
    # slow_spawn_timeout), so it is sent from another thread.
    unit = f"jupyter-{user}-singleuser.service"
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        request = pool.submit(hub.request_start, user)
        try:
            # The unit is loaded once the daemon has created it, and its start job
            # then waits for sdslow.service.
            wait_until(
                f"the start of {user}'s server waits for sdslow.service",
                lambda: (
                    prop(bed, unit, "LoadState") == "loaded"
                    and prop(bed, "sdslow.service", "ActiveState") == "activating"
                ),
            )
        except AssertionError as err:
            raise AssertionError(f"{err}\n{hub.diagnostics()}") from None
        started = time.monotonic()
        restart = bed.run(restart_command, check=False, timeout=120)
        restart_seconds = time.monotonic() - started
        assert restart.returncode == 0, restart.stderr

        # A start that fails within the hub's slow_spawn_timeout fails the request itself.
        response = request.result(timeout=120)
        outcome = "failed"
        if response.status_code in (201, 202):
            outcome = wait_for_spawn_end(hub, user)
        log = bed.run("journalctl --no-pager -o short-precise -u sdspawner.service").stdout
        print(f"start in flight during the restart: {outcome}, restart took {restart_seconds:.1f}s")
        return outcome, restart_seconds, log
    finally:
        pool.shutdown(wait=True)
        bed.run(
            "sed -i '/^\\[site_properties\\]/,$d' /etc/sdspawner/config.toml && "
            "systemctl restart sdspawner.service"
        )


def test_restart_during_start(bed: Bed, hub: Hub) -> None:
    outcome, restart_seconds, log = restart_during_start(bed, hub, "bob", SLOW_START_SECONDS)

    # The old daemon finished the start before it exited, and the new one serves it.
    assert outcome == "ready", log
    assert restart_seconds < SLOW_START_SECONDS + 5, log
    assert "stopping: finishing requests in progress" in log
    assert "jupyter-bob-singleuser.service" in server_units(bed)
    assert "jupyter-bob-singleuser.service.env" in env_files(bed)
    assert daemon_status(bed, "bob")["active_state"] == "active"
    assert hub.server_status("bob", hub.user_token("bob")).status_code == 200
    hub.stop_server("bob")


def test_restart_during_overlong_start(bed: Bed, hub: Hub) -> None:
    # A start that outlasts the daemon's 30 s for finishing requests is canceled. It
    # rolls back, so neither its unit nor its environment file is left behind, and the
    # hub receives an error with the reason.
    outcome, restart_seconds, log = restart_during_start(bed, hub, "bob", 40)

    assert outcome == "failed", log
    assert restart_seconds >= 30, log
    assert "requests still running after the shutdown timeout" in log
    assert "jupyter-bob-singleuser.service" not in server_units(bed), log
    assert "jupyter-bob-singleuser.service.env" not in env_files(bed), log
    hub_log = bed.run("journalctl --no-pager -o cat -u jupyterhub.service").stdout
    assert "the daemon is stopping and canceled this request after waiting 30s" in hub_log


def test_killed_daemon_keeps_queued_start(bed: Bed, hub: Hub) -> None:
    # SIGKILL gives the daemon no time to finish the start. The hub's request fails,
    # but systemd's start job goes on, and the restarted daemon must keep the unit's
    # environment file for it. The server then runs, as operations.md describes.
    unit = "jupyter-bob-singleuser.service"
    outcome, _, log = restart_during_start(
        bed, hub, "bob", SLOW_START_SECONDS, "systemctl kill -s KILL sdspawner.service"
    )

    assert outcome == "failed", log
    wait_until("bob's unit runs", lambda: prop(bed, unit, "ActiveState") == "active", 60)
    assert unit + ".env" in env_files(bed), log
    assert daemon_status(bed, "bob")["active_state"] == "active"
    bed.run(["sdspawner", "stop", "bob"])
    assert unit not in server_units(bed)
    assert unit + ".env" not in env_files(bed)


def wait_for_spawn_end(hub: Hub, user: str, timeout: float = 120) -> str:
    """Wait until the hub's spawn of user's server is ready or gone; return which."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = hub.api("GET", f"/users/{user}").json()
        server = model.get("servers", {}).get("")
        if server and server.get("ready"):
            return "ready"
        if not server and not model.get("pending"):
            return "failed"
        time.sleep(0.5)
    raise BedError(f"the spawn of {user}'s server did not end\n{hub.diagnostics()}")


def test_stop_leaves_nothing(bed: Bed, hub: Hub) -> None:
    for user in USERS:
        model = hub.api("GET", f"/users/{user}").json()
        if "" in model.get("servers", {}):
            hub.stop_server(user)
    assert server_units(bed) == []
    assert env_files(bed) == []


def test_package_removal(bed: Bed, hub: Hub) -> None:
    bed.run("systemctl stop jupyterhub.service")
    bed.run(["dpkg", "--purge", "sdspawner"], timeout=120)
    for unit in ("sdspawner.socket", "sdspawner.service"):
        assert prop(bed, unit, "LoadState") == "not-found", unit
    assert bed.run(["test", "-e", "/usr/bin/sdspawner"], check=False).returncode != 0
    assert bed.run(["test", "-e", "/etc/sdspawner/config.toml"], check=False).returncode != 0
    assert bed.run(["test", "-e", SOCKET], check=False).returncode != 0


def test_make_install_staged(tmp_path: Path) -> None:
    subprocess.run(
        ["make", "-C", str(REPO), "install", f"DESTDIR={tmp_path}", "PREFIX=/usr"],
        check=True,
        capture_output=True,
    )
    unit = (tmp_path / "usr/lib/systemd/system/sdspawner.service").read_text()
    assert "ExecStart=/usr/bin/sdspawner serve" in unit
    assert (tmp_path / "usr/bin/sdspawner").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "usr/lib/systemd/system/sdspawner.socket").is_file()
    assert (tmp_path / "etc/sdspawner/config.toml").is_file()
    assert (tmp_path / "usr/share/doc/sdspawner/examples/jupyterhub.service").is_file()
    assert (tmp_path / "usr/share/doc/sdspawner/docs/config.md").is_file()

    local = tmp_path / "local"
    subprocess.run(
        ["make", "-C", str(REPO), "install", f"DESTDIR={local}"],
        check=True,
        capture_output=True,
    )
    unit = (local / "usr/local/lib/systemd/system/sdspawner.service").read_text()
    assert "ExecStart=/usr/local/bin/sdspawner serve" in unit


def test_make_install_runs() -> None:
    # The staged tree lies under the repository, which the bed mounts read-only at /src.
    stage = REPO / "dist" / "make-install"
    subprocess.run(["rm", "-rf", str(stage)], check=True)
    subprocess.run(
        ["make", "-C", str(REPO), "install", f"DESTDIR={stage}"], check=True, capture_output=True
    )
    bed = Bed.up()
    try:
        bed.run(f"cp -a {in_bed(stage)}/. / && groupadd --system jupyterhub")
        bed.run("systemctl daemon-reload && systemctl enable --now sdspawner.socket")
        assert prop(bed, "sdspawner.service", "FragmentPath") == (
            "/usr/local/lib/systemd/system/sdspawner.service"
        )
        version = bed.run(
            ["curl", "-sS", "--unix-socket", SOCKET, "http://sdspawner/v1/version"],
            user="nobody",
            check=False,
        )
        # nobody is not in the socket's group.
        assert version.returncode != 0
        version = bed.run(["curl", "-sS", "--unix-socket", SOCKET, "http://sdspawner/v1/version"])
        assert json.loads(version.stdout)["api"] == 1
        assert prop(bed, "sdspawner.service", "ActiveState") == "active"
        assert prop(bed, "sdspawner.service", "ExecStart").startswith(
            "{ path=/usr/local/bin/sdspawner ; argv[]=/usr/local/bin/sdspawner serve"
        )
    finally:
        bed.down()
        subprocess.run(["rm", "-rf", str(stage)], check=False)
