"""JupyterHub spawner that forwards start, stop and poll to the sdspawner daemon.

The daemon runs as root and creates one transient systemd service per server. This
class only builds requests, so the hub process needs no privilege, no D-Bus access and
no user database lookups. It only has to be allowed to connect to the daemon's socket.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from jupyterhub.spawner import Spawner
from jupyterhub.utils import random_port
from traitlets import Bool, Dict, Float, List, TraitError, Unicode, default, validate

from .client import DaemonClient, DaemonError, SdspawnerError, ServerStatus

# systemd active states in which the server's process is running or about to run.
# "deactivating" is not among them, because the unit is already being stopped.
RUNNING_STATES = frozenset({"active", "activating", "reloading"})

# Sentences shared by several help texts. They are inserted into indented help texts, so
# they contain no line break: the line after one would start unindented, and dedenting the
# help text for docs/options.md and `jupyterhub --help-all` would then remove nothing.
_TEMPLATE_HELP = (
    "The daemon expands {USERNAME} (the JupyterHub user name), {USERID} (JupyterHub's id of"
    " the user, as in upstream SystemdSpawner, not the unix uid) and {SERVERNAME} (the named"
    " server, empty for the default server)."
)

_PATH_TEMPLATE_HELP = (
    _TEMPLATE_HELP + " The result must be a clean absolute path. Because names are inserted"
    " unescaped, a start fails when the template contains {USERNAME} or {SERVERNAME} and that"
    " name contains `/` or is `.` or `..`."
)

_ALLOWED_PREFIXES_HELP = (
    "The daemon rejects a path that, after symlinks are resolved, does not lie under one of"
    " the directories in `paths.allowed_prefixes` of its configuration (by default `/home`,"
    " `/srv`, `/data`, `/mnt`, `/media`, `/opt`, `/scratch`, `/tmp`, `/var/lib` and `/var/tmp`)."
)


class ServerNotRunningError(SdspawnerError):
    """The server's unit is not running after its start, or ended before it listened.

    The message describes how its process ended and quotes the last lines of its log, such as
    a Python traceback, so that the user sees the reason on the spawn-pending page.
    """


class SystemdSpawner(Spawner):
    """Start each single-user server as a transient systemd service via `sdspawner serve`.

    The hub sends the option values as they are configured, with templates unexpanded,
    and the daemon expands and checks them against the admin's policy.
    """

    # The `example` metadata is the Python source of a value, shown in docs/options.md as
    # `c.SystemdSpawner.<name> = <example>`. tests/test_docs.py checks that each one is
    # accepted by the trait.
    socket_path = Unicode(
        "/run/sdspawner/sdspawner.sock",
        help="""
        Path of the Unix socket on which `sdspawner serve` listens.

        Both the socket file's permissions and the daemon's list of allowed callers
        must let the hub's unix user connect.
        """,
    ).tag(config=True, example='"/run/sdspawner/sdspawner.sock"')

    request_timeout = Float(
        60.0,
        help="""
        Seconds to wait for the daemon's response to a start or status request.

        A start returns once systemd's start job for the unit is done. JupyterHub
        itself stops waiting for a start after `Spawner.start_timeout` seconds, so
        the shorter of the two limits applies to a start. On a timeout the spawner
        raises an error that names the socket and the timeout.
        """,
    ).tag(config=True, example="90.0")

    stop_request_timeout = Float(
        120.0,
        help="""
        Seconds to wait for the daemon's response to a stop request.

        A stop returns once systemd's stop job is done, which includes the unit's
        grace period before processes are killed (systemd's default
        `DefaultTimeoutStopSec` is 90 seconds), so this is longer than
        `request_timeout`. Raise it when `unit_extra_properties` sets a longer
        `TimeoutStopSec`.
        """,
    ).tag(config=True, example="300.0")

    wait_until_listening = Bool(
        True,
        help="""
        Whether a start waits until the server accepts connections on its port.

        The daemon checks the port itself and reports each step (start accepted, unit
        running, waiting for the port, listening) as a progress event on the hub's
        spawn-pending page. When the server's process exits before it listens, the
        start fails at once with the exit status and the last lines of the server's
        log, such as a Python traceback, instead of a timeout after
        `Spawner.http_timeout`. The wait is bounded by `Spawner.start_timeout`.

        Set it to False for a server that does not listen on `Spawner.port` itself;
        JupyterHub then checks the server over HTTP as usual.
        """,
    ).tag(config=True, example="False")

    # The option names and defaults from here on follow upstream jupyterhub-systemdspawner,
    # so that an existing jupyterhub_config.py keeps working with only spawner_class changed.
    user_workingdir = Unicode(
        None,
        allow_none=True,
        help=f"""
        Working directory of each server, as a path template.

        `None` (the default) or an empty string starts the server in the home
        directory of its unix user. The directory must exist, or the unit fails to
        start. {_ALLOWED_PREFIXES_HELP} Ignored with `dynamic_users`, where the server
        starts in its state directory. {_PATH_TEMPLATE_HELP}
        """,
    ).tag(config=True, example='"/srv/work/{USERNAME}"')

    username_template = Unicode(
        "{USERNAME}",
        help=f"""
        Template of the name of the existing unix user that each server runs as.

        {_TEMPLATE_HELP} The daemon rejects root and every uid below its
        `accounts.min_uid` (by default `UID_MIN` from `/etc/login.defs`). Ignored
        with `dynamic_users`.
        """,
    ).tag(config=True, example='"jupyter-{USERNAME}"')

    default_shell = Unicode(
        help="""
        Shell that the server's terminals start, set as the `SHELL` environment
        variable of the server.

        Defaults to the `SHELL` environment variable of the hub process, or
        `/bin/bash` when it has none. An empty string also gives `/bin/bash`.
        """,
    ).tag(
        config=True,
        default_doc="`SHELL` of the hub process, else `'/bin/bash'`",
        example='"/bin/zsh"',
    )

    @default("default_shell")
    def _default_shell_from_env(self) -> str:
        return os.environ.get("SHELL", "/bin/bash")

    extra_paths = List(
        Unicode(),
        help=f"""
        Directories to put in front of the server's `PATH`, as path templates.

        The rest of `PATH` is the `PATH` of the server's environment (from
        `Spawner.env_keep` or `Spawner.environment`), or
        `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` when that
        has none. JupyterHub before 5.2 passes the hub's `PATH` by default, and
        JupyterHub 5.2 and later do not. The daemon looks up the first element of
        `Spawner.cmd` on the resulting `PATH` unless it is an absolute path.
        {_PATH_TEMPLATE_HELP}
        """,
    ).tag(config=True, example='["/opt/conda/bin", "/home/{USERNAME}/.local/bin"]')

    unit_name_template = Unicode(
        "jupyter-{USERNAME}-singleuser",
        help=f"""
        Template of the systemd unit name of each server, without `.service`.

        {_TEMPLATE_HELP} In the inserted values, every byte outside
        `[A-Za-z0-9_.-]`, and a leading `.`, is escaped as `\\xNN`, the way
        `systemd-escape` does, so `alice@example.org` becomes
        `alice\\x40example.org`. The text of the template itself may only contain
        characters that systemd allows in unit names, without `@`.

        When the template does not contain {{SERVERNAME}}, the daemon appends `:`
        and the escaped name of a named server, so each of a user's servers gets
        its own unit, and the default server keeps the plain name. A name longer
        than 199 bytes is cut and ends in `\\h` and 16 hex digits of a SHA-256 hash
        of the whole name. The limit leaves room for the name of the unit's private
        /tmp directory within systemd's limit of 255 bytes for a file name. A start
        fails when a unit of that name exists that sdspawner did not create for the
        same server.
        """,
    ).tag(config=True, example='"jupyterhub-{USERNAME}"')

    unit_extra_properties = Dict(
        help="""
        More systemd properties for each server's unit, as a dict from property
        name to value.

        A value is a string, or a list of strings for a property that takes
        several entries, in which case the order is kept. Numbers are sent as
        Python's `str()` writes them, and booleans as "yes" or "no". The daemon
        expands {USERNAME}, {USERID} and {SERVERNAME} in every value, list entries
        included, without escaping them.

        Names are written as in unit files (`TimeoutStopSec`, `CPUQuota`, see
        `man systemd.exec` and `man systemd.resource-control`) or as systemd's
        D-Bus property names (`TimeoutStopUSec`). The daemon asks the running
        systemd for each property's type and rejects names it does not know. It
        reads time spans such as "30s" or "5min", sizes such as "512M" (K, M, G
        and T are powers of 1024), percentages for `CPUQuota`, and "infinity". A
        property set here replaces the one that an option sets, such as
        `MemoryMax` from `mem_limit`.

        The daemon accepts only the properties on its allow-list (`properties.allow`
        in its configuration). By default these are limits, accounting and
        sandboxing properties, listed at the end of sdspawner's `docs/options.md`.
        They include `OOMPolicy`, so `{"OOMPolicy": "stop"}` stops the whole server
        when the kernel kills one of its processes for lack of memory.
        Properties that would grant privileges or break sdspawner's bookkeeping,
        such as `ExecStartPre`, `User`, `Environment`, `BindPaths` or `KillMode`,
        are always rejected, and so are `NoNewPrivileges=no` and negative `Nice`
        or `OOMScoreAdjust` values.
        """,
    ).tag(
        config=True,
        type_doc="dict of str to str or list of str",
        example='{"TimeoutStopSec": "30s", "TasksMax": "512", "ReadOnlyPaths": ["/srv/data"]}',
    )

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
        the rest of the system and removed when the server stops (systemd's
        `PrivateTmp=yes`).
        """,
    ).tag(config=True, example="True")

    isolate_devices = Bool(
        False,
        help="""
        Give each server its own minimal `/dev` with only pseudo devices such as
        `/dev/null` and `/dev/zero`, and no physical devices (systemd's
        `PrivateDevices=yes`).
        """,
    ).tag(config=True, example="True")

    disable_user_sudo = Bool(
        True,
        help="""
        Prevent the server's processes from gaining privileges, for example by `sudo`
        or other setuid programs (systemd's `NoNewPrivileges=yes`). `False` sets
        `NoNewPrivileges=no`.
        """,
    ).tag(config=True, example="False")

    readonly_paths = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        help=f"""
        Paths that the server sees read-only (systemd's `ReadOnlyPaths=`), as path
        templates.

        Every path must exist when the server starts, or the start fails with an
        error that names it, unless it is written with a leading `-`
        (`"-/srv/optional"`), which systemd skips when it is missing. Use
        `readwrite_paths` to make a path below one of these writable again. `None`
        (the default) adds no such paths. {_PATH_TEMPLATE_HELP}
        """,
    ).tag(config=True, example='["/srv/datasets", "-/srv/archive"]')

    readwrite_paths = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        help=f"""
        Paths that the server may write to even below a read-only path (systemd's
        `ReadWritePaths=`), as path templates.

        This does not grant write permission that the unix user lacks. Every path
        must exist when the server starts, or the start fails with an error that
        names it, unless it is written with a leading `-`. {_ALLOWED_PREFIXES_HELP}
        `None` (the default) adds no such paths. {_PATH_TEMPLATE_HELP}
        """,
    ).tag(config=True, example='["/home/{USERNAME}"]')

    dynamic_users = Bool(
        False,
        help="""
        Run each server as a unix user that systemd allocates when the server
        starts and releases when it stops (systemd's `DynamicUser=yes`), instead
        of an existing user.

        Each JupyterHub user gets a state directory (`StateDirectory=`) named after
        the user name, escaped as in `unit_name_template`, that persists between
        starts and is shared by the user's servers. The server starts in
        `/var/lib/<that name>`, which is also its `HOME`. `username_template` and
        `user_workingdir` are ignored. The daemon rejects the start unless its
        configuration allows dynamic users (`accounts.dynamic_users`, on by
        default).
        """,
    ).tag(config=True, example="True")

    slice = Unicode(
        None,
        allow_none=True,
        help="""
        systemd slice to put every server's unit in, such as `jupyterhub.slice`, so
        that limits set on the slice apply to all servers together.

        The daemon appends `.slice` to a name without that suffix, as
        `systemd-run --slice` does, so `jupyterhub` also selects
        `jupyterhub.slice`. When the slice has no unit file, systemd creates it
        without limits: the start still succeeds, and the daemon returns a
        warning that the spawner logs. `None` (the default) or an empty string
        leaves the units in systemd's default slice, `system.slice`.
        """,
    ).tag(config=True, example='"jupyterhub.slice"')

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
            # JupyterHub's id of the user, which the daemon expands for {USERID}.
            "user_id": self.user.id,
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
            "ip": self.ip,
            # With port 0 the daemon skips the readiness check.
            "port": self.port if self.wait_until_listening else 0,
            "ready_timeout": float(self.start_timeout),
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
        self._progress_started = asyncio.Event()
        try:
            status = await self.daemon.start_server(body)
        finally:
            # Once the daemon has responded, its events are about this start.
            self._progress_started.set()
        self.unit_name = status["unit"]

        if status["active_state"] not in RUNNING_STATES:
            if self.wait_until_listening:
                # The daemon's readiness check reports why the server ended, with the
                # last lines of its log.
                await self._wait_until_listening()
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
        # Warnings are problems that did not stop the start, such as a slice without a
        # unit file, so only the hub's log shows them to the admin.
        for warning in status.get("warnings", []):
            self.log.warning(
                "sdspawner daemon warning for unit %s of %s: %s",
                status["unit"],
                self._log_name,
                warning,
            )
        if self.wait_until_listening:
            await self._wait_until_listening()
        return (self.ip or "127.0.0.1", self.port)

    # Set by start() once the daemon has responded to its start request. progress() waits
    # for it, because until then the daemon's events are those of an earlier start.
    _progress_started: asyncio.Event | None = None

    # Maximum wait of one events request, in seconds.
    _EVENTS_WAIT = 30.0

    async def _wait_until_listening(self) -> None:
        """Wait for the daemon's readiness check, raising if the server failed it."""
        after = 0
        while True:
            try:
                response = await self.daemon.server_events(
                    self.user.name, self.name, after, self._EVENTS_WAIT
                )
            except DaemonError as exc:
                if exc.code != "not_found":
                    raise
                # The daemon restarted since the start and lost its events; JupyterHub's
                # own HTTP check still finds out whether the server came up.
                self.log.warning(
                    "sdspawner daemon has no progress for %s (%s); leaving the check to the hub",
                    self._log_name,
                    exc.error,
                )
                return
            for event in response["events"]:
                after = event["seq"]
                phase = event["phase"]
                if phase == "ready":
                    self.log.info("Server of %s is ready: %s", self._log_name, event["message"])
                    return
                if phase in ("failed", "stopped", "timeout"):
                    raise ServerNotRunningError(
                        f"The server of {self._log_name} did not start. {event['message']}",
                    )
            if response["done"]:
                return

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """Yield the daemon's events of the current start for the spawn-pending page."""
        started = self._progress_started
        if started is None:
            return
        await started.wait()
        after = 0
        while True:
            try:
                response = await self.daemon.server_events(
                    self.user.name, self.name, after, self._EVENTS_WAIT
                )
            except SdspawnerError as exc:
                self.log.debug("No progress events for %s: %s", self._log_name, exc)
                return
            for event in response["events"]:
                after = event["seq"]
                yield {"progress": event["progress"], "message": event["message"]}
            if response["done"]:
                return

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
