"""Every upstream SystemdSpawner option, set in a real hub's config and read back from
systemd or from inside the server's unit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from hubbed import Bed, Hub

# The probe logs the server process's view of its unit, then runs jupyterhub-singleuser.
PROBE_CMD = 'c.Spawner.cmd = ["sdspawner-probe"]\n'


@dataclass
class Spawned:
    unit: str
    props: dict[str, str]
    probe: dict[str, str]


@pytest.fixture(scope="module", autouse=True)
def prepared(bed: Bed, hub: Hub) -> None:
    bed.run("install -m 0755 /src/bed/probe.sh /usr/local/bin/sdspawner-probe")
    bed.run("id jh-alice >/dev/null 2>&1 || useradd --create-home jh-alice")
    sudoers = "/etc/sudoers.d/alice"
    bed.run(f"echo 'alice ALL=(ALL) NOPASSWD: ALL' > {sudoers} && chmod 0440 {sudoers}")
    bed.run(
        "mkdir -p /srv/ro /srv/rw /srv/other /srv/work/alice /opt/extra/alice/bin && "
        "chmod 1777 /srv/ro /srv/rw /srv/other && chown alice /srv/work/alice && "
        "touch /tmp/host-marker"
    )


@contextmanager
def spawned(
    hub: Hub, config: str, user: str = "alice", name: str = "", hub_config: str = ""
) -> Iterator[Spawned]:
    """Restart the hub with config, start one server, and stop it afterwards."""
    hub.reconfigure(PROBE_CMD + config, hub_config)
    hub.start_server(user, name)
    try:
        unit = hub.unit_of(user, name)
        props = hub.bed.unit_properties(unit)
        yield Spawned(unit=unit, props=props, probe=hub.probe(unit))
    finally:
        hub.stop_server(user, name)


def assert_nothing_left(bed: Bed) -> None:
    assert bed.run("ls -A /run/sdspawner/env").stdout.strip() == ""
    units = bed.run("systemctl list-units --all --no-legend --plain 'jupyter-*' 'jhub-*'").stdout
    assert units.strip() == ""


def test_defaults(hub: Hub) -> None:
    with spawned(hub, "") as server:
        assert server.unit == "jupyter-alice-singleuser.service"
        assert server.props["MemoryMax"] == "infinity"
        assert server.props["CPUQuotaPerSecUSec"] == "infinity"
        assert server.props["CPUWeight"] == "100"
        assert server.props["OOMPolicy"] == "continue"
        assert server.props["NoNewPrivileges"] == "yes"
        assert server.props["PrivateTmp"] == "no"
        assert server.props["PrivateDevices"] == "no"
        assert server.props["WorkingDirectory"] == "/home/alice"
        assert server.props["RuntimeDirectory"] == "jupyter-alice-singleuser"
        assert server.probe["user"] == "alice"
        assert server.probe["cwd"] == "/home/alice"
        assert server.probe["shell"] == "/bin/bash"
        assert server.probe["mem_limit"] == ""
        assert server.probe["sudo"] == "denied"
        assert "host-marker" in server.probe["tmp"]
        assert "console" in server.probe["dev"]


def test_mem_limit(hub: Hub) -> None:
    with spawned(hub, 'c.SystemdSpawner.mem_limit = "1.5G"') as server:
        assert server.props["MemoryMax"] == "1610612736"
        assert server.props["MemoryAccounting"] == "yes"
        assert server.probe["mem_limit"] == "1610612736"


def test_mem_limit_zero_rejected(hub: Hub, bed: Bed) -> None:
    hub.reconfigure(PROBE_CMD + "c.SystemdSpawner.mem_limit = 0")
    message = hub.spawn_failure("alice")
    assert "mem_limit 0 is invalid" in message
    assert_nothing_left(bed)


def test_cpu_limit(hub: Hub) -> None:
    with spawned(hub, "c.SystemdSpawner.cpu_limit = 2.0") as server:
        assert server.props["CPUQuotaPerSecUSec"] == "2s"
        assert server.probe["cpu_limit"] == "2.0"


def test_cpu_limit_too_small_rejected(hub: Hub, bed: Bed) -> None:
    hub.reconfigure(PROBE_CMD + "c.SystemdSpawner.cpu_limit = 0.001")
    message = hub.spawn_failure("alice")
    assert "cpu_limit 0.001 is invalid" in message
    assert_nothing_left(bed)


def test_user_workingdir(hub: Hub) -> None:
    with spawned(hub, 'c.SystemdSpawner.user_workingdir = "/srv/work/{USERNAME}"') as server:
        assert server.props["WorkingDirectory"] == "/srv/work/alice"
        assert server.probe["cwd"] == "/srv/work/alice"


def test_username_template(hub: Hub) -> None:
    with spawned(hub, 'c.SystemdSpawner.username_template = "jh-{USERNAME}"') as server:
        assert server.props["User"] == "jh-alice"
        assert server.probe["user"] == "jh-alice"
        assert server.probe["cwd"] == "/home/jh-alice"


def test_username_template_unknown_user(hub: Hub, bed: Bed) -> None:
    hub.reconfigure(PROBE_CMD + 'c.SystemdSpawner.username_template = "nobody-{USERNAME}"')
    message = hub.spawn_failure("alice")
    assert '"nobody-alice"' in message
    assert "not found" in message
    assert_nothing_left(bed)


def test_default_shell(hub: Hub) -> None:
    with spawned(hub, 'c.SystemdSpawner.default_shell = "/bin/sh"') as server:
        assert server.probe["shell"] == "/bin/sh"


def test_extra_paths(hub: Hub) -> None:
    with spawned(hub, 'c.SystemdSpawner.extra_paths = ["/opt/extra/{USERNAME}/bin"]') as server:
        assert server.probe["path"].startswith("/opt/extra/alice/bin:")
        assert "/usr/bin" in server.probe["path"]


def hub_user_id(bed: Bed, user: str) -> str:
    """Return JupyterHub's database id of user, which upstream expands for {USERID}."""
    query = (
        "import sqlite3,sys; db=sqlite3.connect('/var/lib/jupyterhub/jupyterhub.sqlite');"
        "print(db.execute('select id from users where name=?', (sys.argv[1],)).fetchone()[0])"
    )
    return bed.run(["python3", "-c", query, user]).stdout.strip()


def test_unit_name_template(hub: Hub) -> None:
    with spawned(hub, 'c.SystemdSpawner.unit_name_template = "jhub-{USERID}-{USERNAME}"') as server:
        assert server.unit == f"jhub-{hub_user_id(hub.bed, 'alice')}-alice.service"
        assert server.props["ActiveState"] == "active"


def test_unit_extra_properties(hub: Hub) -> None:
    config = """\
c.SystemdSpawner.unit_extra_properties = {
    "CPUWeight": "50",
    "TimeoutStopSec": "20",
    "MemoryHigh": "1G",
    "ReadOnlyPaths": ["/srv/ro", "/srv/work/{USERNAME}"],
    "SyslogIdentifier": "jupyter-{USERNAME}-{literal}",
}
c.Spawner.environment = {"SDSPAWNER_PROBE_WRITE": "/srv/ro /srv/rw"}
"""
    with spawned(hub, config) as server:
        assert server.props["CPUWeight"] == "50"
        assert server.props["TimeoutStopUSec"] == "20s"
        assert server.props["MemoryHigh"] == "1073741824"
        assert server.props["ReadOnlyPaths"] == "/srv/ro /srv/work/alice"
        assert server.props["SyslogIdentifier"] == "jupyter-alice-{literal}"
        assert server.probe["write:/srv/ro"] == "denied"
        assert server.probe["write:/srv/rw"] == "ok"


def test_unit_extra_properties_forbidden(hub: Hub, bed: Bed) -> None:
    hub.reconfigure(PROBE_CMD + 'c.SystemdSpawner.unit_extra_properties = {"User": "root"}')
    message = hub.spawn_failure("alice")
    assert "User may not be set from the hub" in message
    assert_nothing_left(bed)


def test_isolate_tmp(hub: Hub) -> None:
    with spawned(hub, "c.SystemdSpawner.isolate_tmp = True") as server:
        assert server.props["PrivateTmp"] == "yes"
        assert "host-marker" not in server.probe["tmp"]


def test_isolate_devices(hub: Hub) -> None:
    with spawned(hub, "c.SystemdSpawner.isolate_devices = True") as server:
        assert server.props["PrivateDevices"] == "yes"
        assert "console" not in server.probe["dev"].split()
        assert "null" in server.probe["dev"].split()


def test_disable_user_sudo_false(hub: Hub) -> None:
    with spawned(hub, "c.SystemdSpawner.disable_user_sudo = False") as server:
        assert server.props["NoNewPrivileges"] == "no"
        assert server.probe["sudo"] == "ok"


def test_readonly_and_readwrite_paths(hub: Hub) -> None:
    config = """\
c.SystemdSpawner.readonly_paths = ["/srv/ro", "-/srv/missing-{USERNAME}"]
c.SystemdSpawner.readwrite_paths = ["/srv/rw"]
c.SystemdSpawner.unit_extra_properties = {"ProtectSystem": "strict"}
c.Spawner.environment = {"SDSPAWNER_PROBE_WRITE": "/srv/ro /srv/rw /srv/other"}
"""
    with spawned(hub, config) as server:
        assert server.props["ReadOnlyPaths"] == "/srv/ro -/srv/missing-alice"
        assert server.props["ReadWritePaths"] == "/srv/rw"
        assert server.probe["write:/srv/ro"] == "denied"
        assert server.probe["write:/srv/rw"] == "ok"
        assert server.probe["write:/srv/other"] == "denied"


def test_readonly_path_missing_rejected(hub: Hub, bed: Bed) -> None:
    hub.reconfigure(PROBE_CMD + 'c.SystemdSpawner.readonly_paths = ["/srv/missing"]')
    message = hub.spawn_failure("alice")
    assert '"/srv/missing" does not exist' in message
    assert_nothing_left(bed)


def test_dynamic_users(hub: Hub, bed: Bed) -> None:
    config = """\
c.SystemdSpawner.dynamic_users = True
c.Spawner.environment = {"SDSPAWNER_PROBE_KEEP": "1"}
"""
    with spawned(hub, config) as server:
        assert server.props["DynamicUser"] == "yes"
        assert server.props["StateDirectory"] == "alice"
        assert server.probe["home"] == "/var/lib/alice"
        # /var/lib/alice is systemd's link to /var/lib/private/alice.
        assert server.probe["cwd"] in ("/var/lib/alice", "/var/lib/private/alice")
        assert int(server.probe["uid"]) >= 61184
        assert server.probe["keep"] == "new"
    hub.start_server("alice")
    try:
        assert hub.probe(hub.unit_of("alice"))["keep"] == "found"
    finally:
        hub.stop_server("alice")


def test_slice_without_unit_file_warns(hub: Hub, bed: Bed) -> None:
    # Like systemd-run --slice, a name without the suffix gets ".slice".
    with spawned(hub, 'c.SystemdSpawner.slice = "jupyterhub-users"') as server:
        assert server.props["Slice"] == "jupyterhub-users.slice"
        log = bed.run("journalctl --no-pager -u jupyterhub.service -o cat").stdout
        assert "jupyterhub-users.slice has no unit file" in log


def test_named_servers_get_own_units(hub: Hub, bed: Bed) -> None:
    hub.reconfigure(PROBE_CMD, "c.JupyterHub.allow_named_servers = True")
    hub.start_server("alice")
    hub.start_server("alice", "gpu")
    try:
        assert hub.unit_of("alice") == "jupyter-alice-singleuser.service"
        assert hub.unit_of("alice", "gpu") == "jupyter-alice-singleuser:gpu.service"
        token = hub.user_token("alice")
        assert hub.server_status("alice", token, "gpu").status_code == 200
        assert hub.server_status("alice", token).status_code == 200
    finally:
        hub.stop_server("alice", "gpu")
        hub.stop_server("alice")
    assert_nothing_left(bed)


def test_unusual_user_names_get_distinct_units(hub: Hub, bed: Bed) -> None:
    # Names as authenticators deliver them; all run as the unix user alice here.
    # The last two give unit names too long for a private /tmp directory's name, so the
    # daemon shortens them. The Chinese name's escaped form is 12 bytes per character.
    long_names = ["z" * 230, "数据科学家" * 4]
    names = ["ann@example.org", "ann.example.org", "dom\\dd", "john doe", *long_names]
    hub.users = [*hub.users, *names]
    hub.reconfigure(
        PROBE_CMD
        + 'c.SystemdSpawner.username_template = "alice"\nc.SystemdSpawner.isolate_tmp = True'
    )
    units = {}
    try:
        for name in names:
            hub.start_server(name)
            units[name] = hub.unit_of(name)
            props = bed.unit_properties(units[name], "ActiveState", "User")
            assert props["ActiveState"] == "active"
            assert props["User"] == "alice"
    finally:
        for name in names:
            hub.stop_server(name)
    assert units["ann@example.org"] == "jupyter-ann\\x40example.org-singleuser.service"
    for name in long_names:
        assert len(units[name].encode()) <= 199, units[name]
        assert "\\h" in units[name], units[name]
    assert units["dom\\dd"] == "jupyter-dom\\x5cdd-singleuser.service"
    assert units["john doe"] == "jupyter-john\\x20doe-singleuser.service"
    assert len(set(units.values())) == len(names)
    assert_nothing_left(bed)


def test_upstream_config_with_every_option(hub: Hub, bed: Bed) -> None:
    # A jupyterhub_config.py written for upstream SystemdSpawner, unchanged but for
    # spawner_class, which the harness sets.
    config = """\
c.SystemdSpawner.mem_limit = "2G"
c.SystemdSpawner.cpu_limit = 1.5
c.SystemdSpawner.user_workingdir = "/srv/work/{USERNAME}"
c.SystemdSpawner.username_template = "{USERNAME}"
c.SystemdSpawner.default_shell = "/bin/sh"
c.SystemdSpawner.extra_paths = ["/opt/extra/{USERNAME}/bin"]
c.SystemdSpawner.unit_name_template = "jupyter-{USERNAME}-singleuser"
c.SystemdSpawner.unit_extra_properties = {"TasksMax": "500", "LimitNOFILE": "4096"}
c.SystemdSpawner.isolate_tmp = True
c.SystemdSpawner.isolate_devices = True
c.SystemdSpawner.disable_user_sudo = True
c.SystemdSpawner.readonly_paths = ["/srv/ro"]
c.SystemdSpawner.readwrite_paths = ["/srv/rw"]
c.SystemdSpawner.dynamic_users = False
c.SystemdSpawner.slice = "system.slice"
"""
    with spawned(hub, config) as server:
        props = server.props
        assert props["ActiveState"] == "active"
        assert props["MemoryMax"] == str(2 << 30)
        assert props["CPUQuotaPerSecUSec"] == "1.500000s"
        assert props["WorkingDirectory"] == "/srv/work/alice"
        assert props["User"] == "alice"
        assert props["TasksMax"] == "500"
        assert props["LimitNOFILE"] == "4096"
        assert props["PrivateTmp"] == "yes"
        assert props["PrivateDevices"] == "yes"
        assert props["NoNewPrivileges"] == "yes"
        assert props["ReadOnlyPaths"] == "/srv/ro"
        assert props["ReadWritePaths"] == "/srv/rw"
        assert props["Slice"] == "system.slice"
        assert server.probe["shell"] == "/bin/sh"
        assert server.probe["path"].startswith("/opt/extra/alice/bin:")
    assert_nothing_left(bed)


def test_dynamic_users_long_and_odd_names(hub: Hub, bed: Bed) -> None:
    # systemd limits user names to 31 characters; the dynamic user's name is derived.
    names = ["a-very-long-jupyterhub-user-name-indeed", "ann@example.org"]
    hub.users = [*hub.users, *names]
    hub.reconfigure(PROBE_CMD + "c.SystemdSpawner.dynamic_users = True")
    try:
        for name in names:
            hub.start_server(name)
            unit = hub.unit_of(name)
            assert int(hub.probe(unit)["uid"]) >= 61184
            user = bed.unit_properties(unit, "User")["User"]
            assert user.startswith("jh-")
            assert len(user) <= 31
    finally:
        for name in names:
            hub.stop_server(name)
    assert_nothing_left(bed)
