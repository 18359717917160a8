"""JupyterHub spawner that forwards start, stop and poll to the sdspawner daemon.

The daemon runs as root and creates one transient systemd service per server. This
class only builds requests, so the hub process needs no privilege, no D-Bus access and
no user database lookups. It only has to be allowed to connect to the daemon's socket.
"""

from __future__ import annotations

import os
from typing import Any

from jupyterhub.spawner import Spawner
from jupyterhub.utils import random_port
from traitlets import Bool, Dict, Float, List, TraitError, Unicode, default, validate

from .client import DaemonClient, DaemonError, SdspawnerError, ServerStatus

# systemd active states in which the server's process is running or about to run.
# "deactivating" is not among them, because the unit is already being stopped.
RUNNING_STATES = frozenset({"active", "activating", "reloading"})

_TEMPLATE_HELP = (
    "The daemon expands {USERNAME} (the JupyterHub user name), {USERID} (the unix uid of"
    " the server's user) and {SERVERNAME} (the named server, empty for the default"
    " server)."
)


class ServerNotRunningError(SdspawnerError):
    """The daemon finished the start job, but the server's unit is not running."""


class SystemdSpawner(Spawner):
    """Start each single-user server as a transient systemd service via `sdspawner serve`.

    The hub sends the option values as they are configured, with templates unexpanded,
    and the daemon expands and checks them against the admin's policy.
    """

    socket_path = Unicode(
        "/run/sdspawner/sdspawner.sock",
        help="""
        Path of the Unix socket on which `sdspawner serve` listens.

        Both the socket file's permissions and the daemon's list of allowed callers
        must let the hub's unix user connect.
        """,
    ).tag(config=True)

    request_timeout = Float(
        60.0,
        help="""
        Seconds to wait for the daemon's response to a start or status request.

        A start returns once systemd's start job for the unit is done. JupyterHub
        itself stops waiting for a start after `Spawner.start_timeout` seconds, so
        the shorter of the two limits applies to a start. On a timeout the spawner
        raises an error that names the socket and the timeout.
        """,
    ).tag(config=True)

    stop_request_timeout = Float(
        120.0,
        help="""
        Seconds to wait for the daemon's response to a stop request.

        A stop returns once systemd's stop job is done, which includes the unit's
        grace period before processes are killed (systemd's default
        `DefaultTimeoutStopSec` is 90 seconds), so this is longer than
        `request_timeout`.
        """,
    ).tag(config=True)

    # The option names and defaults from here on follow upstream jupyterhub-systemdspawner,
    # so that an existing jupyterhub_config.py keeps working with only spawner_class changed.
    user_workingdir = Unicode(
        None,
        allow_none=True,
        help=f"""
        Working directory of each server, as an absolute path template.

        `None` (the default) starts the server in the home directory of its unix user.
        {_TEMPLATE_HELP}
        """,
    ).tag(config=True)

    username_template = Unicode(
        "{USERNAME}",
        help=f"""
        Template of the name of the unix user that each server runs as.

        The unix user must already exist on the machine that runs the daemon.
        {_TEMPLATE_HELP} Here {{USERID}} expands to an empty string, because the uid
        comes from the unix user that this template names.
        """,
    ).tag(config=True)

    default_shell = Unicode(
        help="""
        Shell that the server's terminals start, set as the `SHELL` environment
        variable of the server.

        Defaults to the `SHELL` environment variable of the hub process, or
        `/bin/bash` when it has none.
        """,
    ).tag(config=True, default_doc="`SHELL` of the hub process, else `'/bin/bash'`")

    @default("default_shell")
    def _default_shell_from_env(self) -> str:
        return os.environ.get("SHELL", "/bin/bash")

    extra_paths = List(
        Unicode(),
        help=f"""
        Directories to put in front of the server's `PATH`, as absolute path
        templates.

        The server's `PATH` is the hub's when JupyterHub passes it on, and systemd's
        default service `PATH` otherwise. JupyterHub before 5.2 passes the hub's
        `PATH` by default (`Spawner.env_keep`), JupyterHub 5.2 and later do not.
        The first element of `Spawner.cmd` is looked up on this `PATH` unless it is
        an absolute path. {_TEMPLATE_HELP}
        """,
    ).tag(config=True)

    unit_name_template = Unicode(
        "jupyter-{USERNAME}-singleuser",
        help=f"""
        Template of the systemd unit name of each server, without `.service`.

        {_TEMPLATE_HELP} Characters that are not allowed in unit names are escaped
        the way `systemd-escape` does. When the template does not contain
        {{SERVERNAME}}, the daemon appends the name of a named server, so each of a
        user's servers gets its own unit.
        """,
    ).tag(config=True)

    unit_extra_properties = Dict(
        help="""
        More systemd unit properties for each server's unit, such as
        `{"CPUWeight": "50", "ReadOnlyPaths": ["/srv/data", "/srv/models"]}`.

        Keys are property names (see `man systemd.resource-control` and
        `man systemd.exec`). Each value is a string, or a list of strings for a
        property that takes several entries, in which case the order is kept.
        Integers and floats are sent as their decimal text, and booleans as "yes"
        or "no". The daemon decides which properties it accepts.
        """,
    ).tag(config=True)

    @validate("unit_extra_properties")
    def _validate_unit_extra_properties(self, proposal: dict[str, Any]) -> dict[str, Any]:
        # Build a new dict, so that the admin's config object is never changed.
        properties: dict[str, str | list[str]] = {}
        for name, value in proposal["value"].items():
            if not isinstance(name, str):
                raise TraitError(
                    f"unit_extra_properties key {name!r} is invalid: keys are systemd"
                    " property names, given as strings"
                )
            if isinstance(value, (list, tuple)):
                properties[name] = [_property_text(name, item) for item in value]
            else:
                properties[name] = _property_text(name, value)
        return properties

    isolate_tmp = Bool(
        False,
        help="""
        Give each server its own `/tmp` and `/var/tmp`, hidden from other users and
        the rest of the system (systemd's `PrivateTmp=yes`).
        """,
    ).tag(config=True)

    isolate_devices = Bool(
        False,
        help="""
        Give each server its own minimal `/dev` with only pseudo devices such as
        `/dev/null` and `/dev/zero`, and no physical devices (systemd's
        `PrivateDevices=yes`).
        """,
    ).tag(config=True)

    disable_user_sudo = Bool(
        True,
        help="""
        Prevent the server's processes from gaining privileges, for example by `sudo`
        or other setuid programs (systemd's `NoNewPrivileges=yes`).
        """,
    ).tag(config=True)

    readonly_paths = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        help=f"""
        Paths that the server sees read-only (systemd's `ReadOnlyPaths=`), as
        absolute path templates.

        A path that starts with `-` may be missing, and every other path must
        exist. Use `readwrite_paths` to make a path below one of these writable
        again. `None` (the default) adds no such paths. {_TEMPLATE_HELP}
        """,
    ).tag(config=True)

    readwrite_paths = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        help=f"""
        Paths that the server may write to even below a read-only path (systemd's
        `ReadWritePaths=`), as absolute path templates.

        A path that starts with `-` may be missing, and every other path must
        exist. `None` (the default) adds no such paths. {_TEMPLATE_HELP}
        """,
    ).tag(config=True)

    dynamic_users = Bool(
        False,
        help="""
        Run each server as a unix user that systemd allocates when the server
        starts and releases when it stops (systemd's `DynamicUser=yes`), with a
        per-user state directory (`StateDirectory=`) that persists between starts.
        """,
    ).tag(config=True)

    slice = Unicode(
        None,
        allow_none=True,
        help="""
        systemd slice to put every server's unit in, such as `jupyterhub.slice`.

        Resource limits set on the slice apply to all servers together. `None` (the
        default) leaves the units in systemd's default slice.
        """,
    ).tag(config=True)

    unit_name = Unicode(
        "",
        help="Name of the current server's systemd unit, as the daemon reported it.",
    )

    # True when start() picked self.port, so that clear_state() picks a new one for the
    # next start, as Spawner.port's documentation promises for its default of 0.
    _port_is_random = False

    @property
    def daemon(self) -> DaemonClient:
        """Client for the daemon, built from the current socket_path and timeout."""
        return DaemonClient(self.socket_path, self.request_timeout)

    def start_request_body(self) -> dict[str, Any]:
        """Build the body of POST /v1/servers/start from the options and get_env().

        Call it after self.port is set, because get_env() puts the port into
        JUPYTERHUB_SERVICE_URL.
        """
        # Spawner.environment may hold callables whose results are not strings.
        env = {name: str(value) for name, value in self.get_env().items()}
        cmd = list(self.cmd or []) + list(self.get_args())

        return {
            "user": self.user.name,
            "server": self.name,
            "cmd": cmd,
            "env": env,
            "username_template": self.username_template,
            "unit_name_template": self.unit_name_template,
            "user_workingdir": self.user_workingdir,
            "default_shell": self.default_shell,
            "extra_paths": list(self.extra_paths),
            "mem_limit": self.mem_limit,
            "cpu_limit": self.cpu_limit,
            "isolate_tmp": self.isolate_tmp,
            "isolate_devices": self.isolate_devices,
            "disable_user_sudo": self.disable_user_sudo,
            "readonly_paths": _copy_optional_list(self.readonly_paths),
            "readwrite_paths": _copy_optional_list(self.readwrite_paths),
            "dynamic_users": self.dynamic_users,
            "slice": self.slice,
            "unit_extra_properties": {
                name: list(value) if isinstance(value, list) else value
                for name, value in self.unit_extra_properties.items()
            },
        }

    async def start(self) -> tuple[str, int]:
        """Start the server through the daemon and return the (ip, port) to reach it."""
        if not self.port:
            self.port = random_port()
            self._port_is_random = True

        body = self.start_request_body()
        self.log.info(
            "Starting server of %s on port %d through the sdspawner daemon at %s",
            self._log_name,
            self.port,
            self.socket_path,
        )
        status = await self.daemon.start_server(body)
        self.unit_name = status["unit"]

        if status["active_state"] not in RUNNING_STATES:
            raise ServerNotRunningError(
                f"unit {status['unit']} of {self._log_name} is not running after its"
                f" start job: {_describe_state(status)}. See `journalctl -u"
                f" {status['unit']}` on the daemon's machine."
            )

        self.log.info(
            "Started unit %s for %s: %s",
            status["unit"],
            self._log_name,
            _describe_state(status),
        )
        return (self.ip or "127.0.0.1", self.port)

    async def poll(self) -> int | None:
        """Return None while the server's unit runs, else its exit status (0 if unknown).

        Errors other than "not found" are raised, not taken as a stopped server, so
        that a daemon restart does not drop running servers. JupyterHub's periodic poll
        logs the error and polls again at the next interval. At hub startup, though,
        JupyterHub treats a poll that raises as a stopped server.
        """
        try:
            status = await self.daemon.server_status(self.user.name, self.name)
        except DaemonError as exc:
            if exc.code == "not_found":
                return 0
            raise

        if status["active_state"] in RUNNING_STATES:
            return None
        exit_status = status.get("exit_status")
        if exit_status is None:
            return 0
        return exit_status

    async def stop(self, now: bool = False) -> None:
        """Stop the server's unit. With `now`, the daemon skips the grace period."""
        self.log.info(
            "Stopping unit %s of %s (now=%s)", self.unit_name or "(unknown)", self._log_name, now
        )
        try:
            status = await self.daemon.stop_server(
                self.user.name, self.name, now, timeout=self.stop_request_timeout
            )
        except DaemonError as exc:
            # JupyterHub also calls stop() to clean up after a start that failed before
            # the daemon created anything, and there is nothing to stop then.
            if exc.code == "not_found":
                self.log.info("No unit to stop for %s: %s", self._log_name, exc.error)
                return
            raise
        self.log.info(
            "Stopped unit %s of %s: %s", status["unit"], self._log_name, _describe_state(status)
        )

    def get_state(self) -> dict[str, Any]:
        """Return JupyterHub's state plus the unit name."""
        state: dict[str, Any] = super().get_state()
        if self.unit_name:
            # Upstream SystemdSpawner stores its unit under the same key.
            state["unit_name"] = self.unit_name
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore the unit name saved by get_state()."""
        super().load_state(state)
        unit_name = state.get("unit_name")
        if isinstance(unit_name, str):
            self.unit_name = unit_name

    def clear_state(self) -> None:
        """Forget the unit name, and a port that start() picked."""
        super().clear_state()
        self.unit_name = ""
        if self._port_is_random:
            self.port = 0
            self._port_is_random = False


def _property_text(name: str, value: Any) -> str:
    """Return one unit_extra_properties value as the text systemd parses."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TraitError(
        f"unit_extra_properties[{name!r}] contains {value!r} of type {type(value).__name__}:"
        " each value must be a string, number or boolean, or a list of them"
    )


def _copy_optional_list(values: list[str] | None) -> list[str] | None:
    return None if values is None else list(values)


def _describe_state(status: ServerStatus) -> str:
    text = f"{status['active_state']}/{status.get('sub_state', '?')}"
    exit_status = status.get("exit_status")
    if exit_status is not None:
        text += f", exit status {exit_status}"
    return text
