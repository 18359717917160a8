"""Hostile requests sent to the daemon's socket as the hub's uid, the way a compromised
hub would send them. Each is rejected with a reason that names the offending field,
and leaves no unit, environment file or directory behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hubbed import Bed, Hub

SOCKET = "/run/sdspawner/sdspawner.sock"

POLICY = """\
[limits]
max_mem_limit = "4G"
max_cpu_limit = 2.0
max_servers_per_user = 1

[site_properties]
BindReadOnlyPaths = "/srv/site-data"
"""


def base_request(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "user": "alice",
        "server": "",
        "cmd": ["jupyterhub-singleuser"],
        "env": {"JUPYTERHUB_API_TOKEN": "hostile-suite-token-3f9a"},
    }
    request.update(changes)
    return request


def call(
    bed: Bed, method: str, path: str, body: str | None = None, user: str = "jupyterhub"
) -> tuple[int, dict[str, Any]]:
    """Send one request through the socket with curl, as user; return status and JSON."""
    args = [
        "curl",
        "-sS",
        "--max-time",
        "60",
        "--unix-socket",
        SOCKET,
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
    result = bed.run([*args, f"http://sdspawner{path}"], user=user, input=body, check=False)
    if result.returncode != 0:
        return -result.returncode, {"error": result.stderr}
    text, _, code = result.stdout.rpartition("\n")
    try:
        return int(code), json.loads(text) if text else {}
    except json.JSONDecodeError:
        return int(code), {"error": text}


def snapshot(bed: Bed) -> str:
    """List what a start may create: units, environment files, state directories."""
    return bed.run(
        "systemctl list-units --all --no-legend --plain 'jupyter-*' 'hostile*'; "
        "ls -A /run/sdspawner/env; ls -A /var/lib/private 2>/dev/null; "
        "ls -A /run | grep -i jupyter || true"
    ).stdout


@pytest.fixture(scope="module")
def daemon(bed: Bed, hub: Hub) -> Iterator[Bed]:
    bed.write_file("/etc/sdspawner/config.toml", POLICY)
    bed.run("systemctl restart sdspawner.service && sleep 0.5")
    bed.run("install -o alice -m 0755 /bin/true /tmp/alice-owned-binary && mkdir -p /srv/site-data")
    try:
        yield bed
    finally:
        bed.run("rm -f /etc/sdspawner/config.toml /tmp/alice-owned-binary")
        bed.run("systemctl restart sdspawner.service && sleep 0.5")


HOSTILE = [
    ("root account", base_request(username_template="root"), 403, "uid 0"),
    ("system account", base_request(username_template="daemon"), 403, "below accounts.min_uid"),
    ("unknown account", base_request(username_template="no-such-user"), 400, '"no-such-user"'),
    (
        "ExecStartPre",
        base_request(unit_extra_properties={"ExecStartPre": "/bin/sh -c id"}),
        403,
        "ExecStartPre",
    ),
    (
        "User property",
        base_request(unit_extra_properties={"User": "root"}),
        403,
        "User may not be set",
    ),
    (
        "Group property",
        base_request(unit_extra_properties={"Group": "root"}),
        403,
        "Group may not be set",
    ),
    (
        "capabilities",
        base_request(unit_extra_properties={"AmbientCapabilities": "CAP_SYS_ADMIN"}),
        403,
        "AmbientCapabilities",
    ),
    (
        "bounding set",
        base_request(unit_extra_properties={"CapabilityBoundingSet": "~"}),
        403,
        "CapabilityBoundingSet",
    ),
    (
        "SecureBits",
        base_request(unit_extra_properties={"SecureBits": "keep-caps"}),
        403,
        "SecureBits",
    ),
    (
        "BindPaths",
        base_request(unit_extra_properties={"BindPaths": "/etc/shadow:/tmp/shadow"}),
        403,
        "BindPaths",
    ),
    (
        "BindReadOnlyPaths",
        base_request(unit_extra_properties={"BindReadOnlyPaths": "/root"}),
        403,
        "BindReadOnlyPaths",
    ),
    (
        "Environment property",
        base_request(unit_extra_properties={"Environment": "LD_PRELOAD=/tmp/x"}),
        403,
        "Environment may not be set",
    ),
    (
        "EnvironmentFile",
        base_request(unit_extra_properties={"EnvironmentFile": "/etc/shadow"}),
        403,
        "EnvironmentFile",
    ),
    (
        "LoadCredential",
        base_request(unit_extra_properties={"LoadCredential": "x:/etc/shadow"}),
        403,
        "LoadCredential",
    ),
    (
        "SetCredential",
        base_request(unit_extra_properties={"SetCredential": "x:secret"}),
        403,
        "SetCredential",
    ),
    (
        "StandardOutput file",
        base_request(unit_extra_properties={"StandardOutput": "file:/etc/passwd"}),
        403,
        "StandardOutput",
    ),
    (
        "RootDirectory",
        base_request(unit_extra_properties={"RootDirectory": "/"}),
        403,
        "RootDirectory",
    ),
    (
        "RootImage",
        base_request(unit_extra_properties={"RootImage": "/tmp/x.img"}),
        403,
        "RootImage",
    ),
    ("Delegate", base_request(unit_extra_properties={"Delegate": "yes"}), 403, "Delegate"),
    (
        "DynamicUser property",
        base_request(unit_extra_properties={"DynamicUser": "yes"}),
        403,
        "DynamicUser",
    ),
    (
        "SupplementaryGroups",
        base_request(unit_extra_properties={"SupplementaryGroups": "sudo"}),
        403,
        "SupplementaryGroups",
    ),
    (
        "StateDirectory",
        base_request(unit_extra_properties={"StateDirectory": "../../etc"}),
        403,
        "StateDirectory",
    ),
    (
        "NoNewPrivileges=no",
        base_request(unit_extra_properties={"NoNewPrivileges": "no"}),
        403,
        "NoNewPrivileges",
    ),
    ("negative Nice", base_request(unit_extra_properties={"Nice": "-20"}), 403, "Nice=-20"),
    (
        "negative OOMScoreAdjust",
        base_request(unit_extra_properties={"OOMScoreAdjust": "-1000"}),
        403,
        "OOMScoreAdjust",
    ),
    (
        "realtime",
        base_request(unit_extra_properties={"CPUSchedulingPolicy": "fifo"}),
        403,
        "CPUSchedulingPolicy",
    ),
    (
        "devices",
        base_request(unit_extra_properties={"DeviceAllow": "/dev/sda rw"}),
        403,
        "DeviceAllow",
    ),
    ("PAMName", base_request(unit_extra_properties={"PAMName": "login"}), 403, "PAMName"),
    ("LD_PRELOAD", base_request(env={"LD_PRELOAD": "/tmp/evil.so"}), 403, "LD_PRELOAD"),
    ("LD_LIBRARY_PATH", base_request(env={"LD_LIBRARY_PATH": "/tmp"}), 403, "LD_LIBRARY_PATH"),
    (
        "NOTIFY_SOCKET",
        base_request(env={"NOTIFY_SOCKET": "/run/systemd/notify"}),
        403,
        "NOTIFY_SOCKET",
    ),
    (
        "SYSTEMD_ variable",
        base_request(env={"SYSTEMD_LOG_LEVEL": "debug"}),
        403,
        "SYSTEMD_LOG_LEVEL",
    ),
    ("env name", base_request(env={"BAD NAME": "x"}), 400, "BAD NAME"),
    ("env NUL", base_request(env={"A": "x\u0000y"}), 400, "control character"),
    ("workdir outside prefixes", base_request(user_workingdir="/etc"), 403, "user_workingdir /etc"),
    ("workdir not clean", base_request(user_workingdir="/home/../etc"), 400, "user_workingdir"),
    ("workdir relative", base_request(user_workingdir="work"), 400, "user_workingdir"),
    ("readwrite outside", base_request(readwrite_paths=["/etc"]), 403, "readwrite_paths /etc"),
    ("readonly missing", base_request(readonly_paths=["/nonexistent"]), 400, "/nonexistent"),
    (
        "user-writable command",
        base_request(cmd=["/tmp/alice-owned-binary"]),
        403,
        "writable by the unix user",
    ),
    ("relative command", base_request(cmd=["bin/jupyterhub-singleuser"]), 400, "relative path"),
    ("missing command", base_request(cmd=["no-such-command"]), 400, "no-such-command"),
    ("mem above cap", base_request(mem_limit=8 << 30), 403, "limits.max_mem_limit"),
    ("cpu above cap", base_request(cpu_limit=4.0), 403, "limits.max_cpu_limit"),
    ("mem zero", base_request(mem_limit=0), 400, "mem_limit 0"),
    ("cpu negative", base_request(cpu_limit=-1), 400, "cpu_limit -1"),
    ("user with newline", base_request(user="alice\nroot"), 400, "control character"),
    ("missing user", base_request(user=""), 400, "user is missing"),
    ("unit template injection", base_request(unit_name_template="x y"), 400, "invalid unit name"),
    ("bad slice", base_request(slice="../etc"), 400, "slice"),
    (
        "unknown property",
        base_request(unit_extra_properties={"CPUWieght": "50"}),
        400,
        "CPUWieght is not a property",
    ),
    (
        "unparsable property value",
        base_request(unit_extra_properties={"CPUWeight": "heavy"}),
        400,
        'CPUWeight value "heavy"',
    ),
    (
        "user name climbs a path",
        base_request(user="..", username_template="alice", user_workingdir="/srv/{USERNAME}"),
        400,
        "must not contain '/' or be '.' or '..'",
    ),
    # The readiness check connects only to this machine, so that the root daemon cannot
    # be used to probe other hosts or the cloud's metadata address.
    (
        "readiness on metadata address",
        base_request(ip="169.254.169.254", port=80),
        400,
        'ip "169.254.169.254" is not an address of this machine',
    ),
    ("readiness on host name", base_request(ip="example.org", port=80), 400, "not an IP address"),
    ("readiness port too large", base_request(port=70000), 400, "port 70000 is out of range"),
    ("readiness port negative", base_request(port=-1), 400, "port -1 is out of range"),
    (
        "readiness timeout too long",
        base_request(port=8888, ready_timeout=1e9),
        400,
        "ready_timeout 1e+09 is out of range",
    ),
]


@pytest.mark.parametrize(
    ("request_body", "status", "reason"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_hostile_start_rejected(
    daemon: Bed, request_body: dict[str, Any], status: int, reason: str
) -> None:
    before = snapshot(daemon)
    code, body = call(daemon, "POST", "/v1/servers/start", json.dumps(request_body))
    assert code == status, body
    assert reason in body["error"]
    assert snapshot(daemon) == before


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ('{"user":"alice","user":"bob","cmd":["x"]}', 400, '"user" is given twice'),
        ('{"user":"alice","cmd":["x"],"usr":"bob"}', 400, 'unknown field "usr"'),
        ('{"user":"alice","cmd":["x"],"env":{"A":"1","A":"2"}}', 400, '"env.A" is given twice'),
        ('{"user":"alice"} trailing', 400, "invalid JSON body"),
        ('{"user":', 400, "invalid JSON body"),
    ],
)
def test_malformed_bodies_rejected(daemon: Bed, body: str, status: int, reason: str) -> None:
    code, response = call(daemon, "POST", "/v1/servers/start", body)
    assert code == status, response
    assert reason in response["error"]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/v1/servers/events?user=alice&after=-1", 'after "-1" is not an integer'),
        ("/v1/servers/events?user=alice&wait=1e9", 'wait "1e9" is not a number of seconds'),
        ("/v1/servers/events?server=x", "query parameter user is missing"),
        ("/v1/servers/logs?user=alice&lines=100000", 'lines "100000" is not an integer'),
        ("/v1/servers/logs?user=alice&follow=sometimes", 'follow "sometimes"'),
        ("/v1/servers/logs?user=alice%0Aroot", "no server"),
    ],
)
def test_hostile_queries_rejected(daemon: Bed, path: str, reason: str) -> None:
    code, response = call(daemon, "GET", path)
    assert code in (400, 404), response
    assert reason in response["error"]


def test_read_endpoints_reject_other_users(daemon: Bed) -> None:
    """With the socket's mode opened up, alice still cannot list servers or read logs."""
    daemon.run(["chmod", "0666", SOCKET])
    try:
        for path in ("/v1/servers", "/v1/servers/logs?user=bob", "/v1/servers/events?user=bob"):
            code, response = call(daemon, "GET", path, user="alice")
            assert code == 403, (path, response)
            assert "is not allowed to use sdspawner" in response["error"]
    finally:
        daemon.run(["chmod", "0660", SOCKET])


def test_oversized_body_rejected(daemon: Bed) -> None:
    body = json.dumps(base_request(env={"BIG": "x" * (2 << 20)}))
    code, response = call(daemon, "POST", "/v1/servers/start", body)
    assert code == 413, response
    assert "larger than" in response["error"]


def test_slow_client_dropped(daemon: Bed) -> None:
    script = (
        "import socket,time\n"
        f"s=socket.socket(socket.AF_UNIX); s.connect({SOCKET!r})\n"
        "s.sendall(b'POST /v1/servers/start HTTP/1.1\\r\\nHost: x\\r\\n')\n"
        "time.sleep(8)\n"
        "try:\n"
        "    s.sendall(b'Content-Length: 2\\r\\n\\r\\n{}'); data=s.recv(100)\n"
        "except OSError as e:\n"
        "    data=b''\n"
        "print('closed' if not data or b' 408 ' in data or b' 400 ' in data else data)\n"
    )
    result = daemon.run(["python3", "-c", script], user="jupyterhub", timeout=60)
    assert result.stdout.strip() == "closed"


def test_caller_not_allowed(daemon: Bed) -> None:
    # The socket's mode keeps bob out at the file-system level...
    code, response = call(daemon, "GET", "/v1/version", user="bob")
    assert code < 0
    assert "Permission denied" in response["error"] or "Couldn't connect" in response["error"]
    # ...and with the mode opened up, SO_PEERCRED still rejects him.
    daemon.run(["chmod", "0666", SOCKET])
    try:
        code, response = call(
            daemon, "POST", "/v1/servers/start", json.dumps(base_request(user="bob")), user="bob"
        )
    finally:
        daemon.run(["chmod", "0660", SOCKET])
    uid = daemon.run(["id", "-u", "bob"]).stdout.strip()
    assert code == 403, response
    assert f"uid {uid} is not allowed" in response["error"]


def test_cli_names_socket_permission(daemon: Bed) -> None:
    """The admin CLI run by a user outside the socket's group names the reason."""
    result = daemon.run(["/src/bin/sdspawner", "ps"], user="bob", check=False)
    assert result.returncode == 1
    assert f"permission denied on the sdspawner socket {SOCKET}" in result.stderr
    assert "member of the socket's group" in result.stderr


def test_foreign_units_untouched(daemon: Bed) -> None:
    # A unit name the hub picks that already belongs to a system service.
    code, response = call(
        daemon,
        "POST",
        "/v1/servers/start",
        json.dumps(base_request(unit_name_template="systemd-journald")),
    )
    assert code == 409, response
    assert "does not belong" in response["error"]
    # Stopping a "server" whose name is a system service's does nothing to that service.
    code, response = call(
        daemon, "POST", "/v1/servers/stop", json.dumps({"user": "systemd-journald", "server": ""})
    )
    assert code == 200, response
    assert response["exists"] is False
    assert (
        daemon.unit_properties("systemd-journald.service", "ActiveState")["ActiveState"] == "active"
    )


def test_server_cap_per_user(daemon: Bed) -> None:
    code, response = call(daemon, "POST", "/v1/servers/start", json.dumps(base_request()))
    assert code == 200, response
    try:
        # The admin's site_properties apply to every unit.
        binds = daemon.unit_properties(response["unit"], "BindReadOnlyPaths")["BindReadOnlyPaths"]
        assert "/srv/site-data" in binds
        second = base_request(server="gpu")
        code, response = call(daemon, "POST", "/v1/servers/start", json.dumps(second))
        assert code == 403, response
        assert "limits.max_servers_per_user" in response["error"]
    finally:
        call(
            daemon,
            "POST",
            "/v1/servers/stop",
            json.dumps({"user": "alice", "server": "", "now": True}),
        )


def test_audit_log_records_decisions_without_secrets(daemon: Bed) -> None:
    call(daemon, "POST", "/v1/servers/start", json.dumps(base_request(username_template="root")))
    records = daemon.run(
        [
            "journalctl",
            "--no-pager",
            "-o",
            "json",
            "SDSPAWNER_ACTION=start",
            "SDSPAWNER_DECISION=reject",
        ]
    ).stdout.splitlines()
    assert records, "no audit record of a rejected start"
    last = json.loads(records[-1])
    assert last["SDSPAWNER_USER"] == "alice"
    assert "uid 0" in last["SDSPAWNER_REASON"]
    assert last["SDSPAWNER_CALLER_UID"] == daemon.run(["id", "-u", "jupyterhub"]).stdout.strip()
    journal = daemon.run(["journalctl", "--no-pager", "-o", "verbose"]).stdout
    assert "hostile-suite-token-3f9a" not in journal


def test_required_group(daemon: Bed) -> None:
    daemon.run("getent group jupyter-users >/dev/null || groupadd jupyter-users")
    daemon.run("usermod -a -G jupyter-users bob")
    daemon.write_file(
        "/etc/sdspawner/config.toml", POLICY + '\n[accounts]\nrequired_group = "jupyter-users"\n'
    )
    daemon.run("systemctl restart sdspawner.service && sleep 0.5")
    try:
        code, body = call(daemon, "POST", "/v1/servers/start", json.dumps(base_request()))
        assert code == 403, body
        assert 'not a member of the group "jupyter-users"' in body["error"]
        code, body = call(daemon, "POST", "/v1/servers/start", json.dumps(base_request(user="bob")))
        assert code == 200, body
        call(
            daemon,
            "POST",
            "/v1/servers/stop",
            json.dumps({"user": "bob", "server": "", "now": True}),
        )
    finally:
        daemon.write_file("/etc/sdspawner/config.toml", POLICY)
        daemon.run("systemctl restart sdspawner.service && sleep 0.5")
