"""Drive a throwaway systemd bed with the sdspawner daemon and a real JupyterHub in it.

The end-to-end tests and `make demo` both use this module from the host. The bed is booted
by bed/nspawn.sh and shares the host's network namespace, so the hub's public port is
reached on 127.0.0.1 from the host. The repository is mounted read-only at /src inside.
"""

from __future__ import annotations

import json
import secrets
import shlex
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

REPO = Path(__file__).resolve().parent.parent
NSPAWN = REPO / "bed" / "nspawn.sh"

# Path of the daemon binary inside the bed: the host's build, mounted through /src.
DAEMON_BINARY = "/src/bin/sdspawner"


class BedError(RuntimeError):
    """A step of setting up or using the bed failed; the message names the step."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now.

    The bed shares the host's network namespace, so a port free on the host is free in
    the bed too. Another process may take it before it is used; the window is short.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Bed:
    """One booted systemd container."""

    name: str
    pid: int

    @classmethod
    def up(cls) -> Bed:
        """Boot a new bed with bed/nspawn.sh up."""
        result = subprocess.run(
            [str(NSPAWN), "up"], capture_output=True, text=True, timeout=600, check=False
        )
        if result.returncode != 0:
            raise BedError(f"bed: boot failed (exit {result.returncode}):\n{result.stderr}")
        values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        try:
            return cls(name=values["BED_NAME"], pid=int(values["BED_PID"]))
        except (KeyError, ValueError) as err:
            raise BedError(
                f"bed: nspawn.sh up printed no BED_NAME/BED_PID: {result.stdout!r}"
            ) from err

    def down(self) -> None:
        """Power the bed off and remove it."""
        subprocess.run([str(NSPAWN), "down", self.name], timeout=120, check=False)

    def run(
        self,
        command: str | Sequence[str],
        *,
        user: str | None = None,
        check: bool = True,
        input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the bed; a string runs through /bin/sh -c."""
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        prefix = [str(NSPAWN), "exec"]
        if user is not None:
            prefix += ["--user", user]
        result = subprocess.run(
            [*prefix, self.name, "--", *argv],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            shown = command if isinstance(command, str) else shlex.join(command)
            raise BedError(
                f"in bed {self.name}: `{shown}` exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def write_file(self, path: str, content: str, mode: str = "0644") -> None:
        """Write a file inside the bed."""
        quoted = shlex.quote(path)
        self.run(
            f"mkdir -p $(dirname {quoted}) && cat > {quoted} && chmod {mode} {quoted}",
            input=content,
        )

    def unit_properties(self, unit: str, *names: str) -> dict[str, str]:
        """Read unit properties as systemd reports them (systemctl show)."""
        args = ["systemctl", "show", unit]
        for name in names:
            args += ["-p", name]
        output = self.run(args).stdout
        return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


HUB_UNIT = """\
[Unit]
Description=JupyterHub, unprivileged, spawning through sdspawner
After=sdspawner.service
Wants=sdspawner.service

[Service]
User=jupyterhub
Group=jupyterhub
WorkingDirectory=/var/lib/jupyterhub
Environment=PATH={venv}/bin:/usr/local/bin:/usr/bin:/bin
ExecStart={venv}/bin/jupyterhub -f /etc/jupyterhub/jupyterhub_config.py
"""

DAEMON_UNIT = """\
[Unit]
Description=sdspawner daemon
After=dbus.service

[Service]
ExecStart={binary} serve
"""

HUB_CONFIG = """\
c = get_config()  # noqa: F821
c.JupyterHub.spawner_class = "sdspawner"
c.JupyterHub.bind_url = "http://127.0.0.1:{public_port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = "/var/lib/jupyterhub/proxy.pid"
c.JupyterHub.db_url = "sqlite:////var/lib/jupyterhub/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "/var/lib/jupyterhub/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {users!r}
c.JupyterHub.services = [{{"name": "e2e", "api_token": {service_token!r}}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["e2e"]}}]
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
{spawner_config}
"""


@dataclass
class Hub:
    """A JupyterHub running as the unprivileged user `jupyterhub` inside a bed."""

    bed: Bed
    users: list[str]
    venv: str = "/opt/jupyterhub"
    spawner_config: str = ""
    public_port: int = field(default_factory=free_port)
    hub_port: int = field(default_factory=free_port)
    proxy_api_port: int = field(default_factory=free_port)
    service_token: str = field(default_factory=lambda: secrets.token_hex(24))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    def install(self) -> None:
        """Install sdspawner, create the accounts, and start the daemon and the hub."""
        bed = self.bed
        # Installing from a copy keeps the read-only /src untouched by the build.
        bed.run(
            "rm -rf /tmp/sdspawner-python && cp -r /src/python /tmp/sdspawner-python && "
            f"{self.venv}/bin/pip install --quiet --no-deps --no-build-isolation --no-index "
            "/tmp/sdspawner-python",
            timeout=300,
        )
        bed.run(
            "getent group jupyterhub >/dev/null || groupadd --system jupyterhub; "
            "id jupyterhub >/dev/null 2>&1 || useradd --system --gid jupyterhub "
            "--home-dir /var/lib/jupyterhub --create-home --shell /usr/sbin/nologin jupyterhub"
        )
        for user in self.users:
            name = shlex.quote(user)
            bed.run(f"id {name} >/dev/null 2>&1 || useradd --create-home {name}")

        bed.write_file(
            "/etc/systemd/system/sdspawner.service", DAEMON_UNIT.format(binary=DAEMON_BINARY)
        )
        bed.write_file("/etc/systemd/system/jupyterhub.service", HUB_UNIT.format(venv=self.venv))
        self._write_hub_config()
        bed.run("systemctl daemon-reload")
        bed.run("systemctl start sdspawner.service")
        self.wait_for(
            "daemon socket",
            lambda: bed.run("test -S /run/sdspawner/sdspawner.sock", check=False).returncode == 0,
            30,
        )
        bed.run("systemctl start jupyterhub.service")
        self.wait_for("hub API", self._hub_answers, 90)

    def reconfigure(self, spawner_config: str, hub_config: str = "") -> None:
        """Rewrite the hub's configuration with other spawner options and restart the hub.

        Servers still running are stopped first, so each configuration starts clean.
        """
        self.spawner_config = spawner_config + "\n" + hub_config
        self.bed.run("systemctl stop jupyterhub.service")
        self._write_hub_config()
        self.bed.run("systemctl start jupyterhub.service")
        self.wait_for("hub API", self._hub_answers, 90)

    def _write_hub_config(self) -> None:
        self.bed.write_file(
            "/etc/jupyterhub/jupyterhub_config.py",
            HUB_CONFIG.format(
                public_port=self.public_port,
                hub_port=self.hub_port,
                proxy_api_port=self.proxy_api_port,
                users=set(self.users),
                service_token=self.service_token,
                spawner_config=self.spawner_config,
            ),
        )

    def _hub_answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/hub/api/", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_for(self, what: str, ready: Any, timeout: float) -> None:
        """Poll ready() until it is true, or raise BedError naming what timed out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.5)
        raise BedError(
            f"timed out after {timeout:.0f}s waiting for the {what}\n{self.diagnostics()}"
        )

    def diagnostics(self) -> str:
        """Return the last journal lines of the daemon and the hub, for error messages."""
        result = self.bed.run(
            "journalctl --no-pager -n 40 -u sdspawner.service -u jupyterhub.service", check=False
        )
        return result.stdout + result.stderr

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the hub's REST API as the admin service."""
        headers = {"Authorization": f"token {self.service_token}"}
        return httpx.request(
            method, f"{self.url}/hub/api{path}", headers=headers, timeout=60, **kwargs
        )

    def server_path(self, user: str, name: str = "") -> str:
        """Return the REST API path of a user's default or named server."""
        return (
            f"/users/{quote(user, safe='')}/servers/{quote(name, safe='')}"
            if name
            else (f"/users/{quote(user, safe='')}/server")
        )

    def request_start(self, user: str, name: str = "") -> httpx.Response:
        """Ask the hub to start a server, without waiting for it."""
        return self.api("POST", self.server_path(user, name))

    def start_server(self, user: str, name: str = "", timeout: float = 120) -> dict[str, Any]:
        """Start a user's server through the REST API and wait until it is ready."""
        response = self.request_start(user, name)
        if response.status_code not in (201, 202):
            raise BedError(
                f"start of {user}'s server {name!r}: HTTP {response.status_code} "
                f"{response.text}\n{self.diagnostics()}"
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{quote(user, safe='')}").json()
            server = model.get("servers", {}).get(name)
            if server and server.get("ready"):
                return dict(server)
            if not server:
                raise BedError(
                    f"{user}'s server {name!r} stopped while starting: "
                    f"{self.spawn_failure(user, name)}\n{self.diagnostics()}"
                )
            time.sleep(0.5)
        raise BedError(
            f"timed out after {timeout:.0f}s waiting for {user}'s server\n{self.diagnostics()}"
        )

    def spawn_failure(self, user: str, name: str = "", timeout: float = 120) -> str:
        """Start a server that is expected to fail, and return the failure message.

        The message is what the hub shows the user on the spawn-pending page: from the
        start request's error response when the spawn fails at once, else from the
        spawn's progress events.
        """
        response = self.request_start(user, name)
        if response.status_code >= 400:
            return str(response.json().get("message", response.text))
        progress = self.server_path(user, name) + "/progress"
        with httpx.stream(
            "GET",
            f"{self.url}/hub/api{progress}",
            headers={"Authorization": f"token {self.service_token}"},
            timeout=timeout,
        ) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[len("data:") :])
                if event.get("failed"):
                    return str(event.get("message", ""))
                if event.get("ready"):
                    raise BedError(f"{user}'s server {name!r} started, but a failure was expected")
        raise BedError(f"the progress events of {user}'s server ended without a failure")

    def stop_server(self, user: str, name: str = "", timeout: float = 120) -> None:
        """Stop a user's server through the REST API and wait until it is gone."""
        response = self.api("DELETE", self.server_path(user, name))
        if response.status_code not in (202, 204):
            raise BedError(f"stop of {user}'s server: HTTP {response.status_code} {response.text}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{quote(user, safe='')}").json()
            if name not in model.get("servers", {}) and not model.get("pending"):
                return
            time.sleep(0.5)
        raise BedError(f"timed out after {timeout:.0f}s waiting for {user}'s server to stop")

    def user_token(self, user: str) -> str:
        """Create an API token for user."""
        response = self.api("POST", f"/users/{quote(user, safe='')}/tokens", json={"note": "e2e"})
        if response.status_code != 201:
            raise BedError(f"token for {user}: HTTP {response.status_code} {response.text}")
        return str(response.json()["token"])

    def server_status(self, user: str, token: str, name: str = "") -> httpx.Response:
        """Fetch a server's /api/status through the proxy, with the user's token."""
        prefix = f"/user/{quote(user, safe='')}/" + (f"{quote(name, safe='')}/" if name else "")
        return httpx.get(
            f"{self.url}{prefix}api/status",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )

    def unit_of(self, user: str, name: str = "") -> str:
        """Return the unit name of a user's server, as the daemon reports it."""
        output = self.bed.run([DAEMON_BINARY, "status", user, name]).stdout
        return str(json.loads(output)["unit"])

    def probe(self, unit: str) -> dict[str, str]:
        """Return the PROBE lines that bed/probe.sh logged in unit, as a dict."""
        output = self.bed.run(["journalctl", "--no-pager", "-o", "cat", "-u", unit]).stdout
        values: dict[str, str] = {}
        for line in output.splitlines():
            if line.startswith("PROBE "):
                key, _, value = line[len("PROBE ") :].partition("=")
                values[key] = value
        return values

    def hub_uid(self) -> int:
        """Return the uid of the hub's main process."""
        pid = self.bed.unit_properties("jupyterhub.service", "MainPID")["MainPID"]
        status = self.bed.run(["cat", f"/proc/{pid}/status"]).stdout
        for line in status.splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
        raise BedError(f"no Uid line in /proc/{pid}/status of the hub")
