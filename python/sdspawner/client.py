"""Client for the HTTP/JSON API that `sdspawner serve` serves on its Unix socket.

The API is version 1, described in docs/api.md of the sdspawner repository. Requests go
through the keep-alive HTTP/1.1 client in `_transport`, which keeps its connections per
event loop, so no connection outlives the event loop that made it.
"""

from __future__ import annotations

from typing import Any, TypedDict

from tornado.web import HTTPError

from . import _transport

try:
    from jupyterhub.spawner import SpawnException
except ImportError:  # JupyterHub before 6.0 has no SpawnException.
    _SPAWN_EXCEPTION_BASES: tuple[type[HTTPError], ...] = ()
else:
    _SPAWN_EXCEPTION_BASES = (SpawnException,)

API_PREFIX = "/v1"

# Maximum number of characters of an unexpected response body or value that a message quotes.
_MAX_QUOTED_BODY = 200


class _RequiredStatusFields(TypedDict):
    user: str
    server: str
    unit: str
    exists: bool
    active_state: str
    sub_state: str
    main_pid: int
    exit_status: int | None
    unix_user: str
    uid: int


class ServerStatus(_RequiredStatusFields, total=False):
    """The status of one server, returned by start, stop and status.

    `warnings` lists problems that did not stop the request, and is missing when there
    are none.
    """

    warnings: list[str]


class ProgressEvent(TypedDict):
    """One step of a server's start, as the daemon reports it.

    `phase` is "accepted", "started", "waiting", "ready", "failed", "stopped" or
    "timeout"; the last four end the start.
    """

    seq: int
    time: str
    phase: str
    progress: int
    message: str


class EventsResponse(TypedDict):
    """The progress events of a server's latest start after a given one."""

    user: str
    server: str
    unit: str
    events: list[ProgressEvent]
    done: bool


class SdspawnerError(HTTPError):
    """Base class of the errors raised while talking to the sdspawner daemon.

    It is a tornado HTTPError, because JupyterHub hides the text of other exceptions
    from users. JupyterHub responds with `status_code` to a request that fails with this
    error, and shows `message` in the REST API's JSON error, on the error page and in
    the spawn's progress events. `str()` returns `log_text`, which may add details for
    the hub's log.

    NOTE: JupyterHub 4 shows a fixed text on the error page of a start that fails
    within a second, whatever the exception.
    """

    def __init__(self, message: str, *, status_code: int = 500, log_text: str = "") -> None:
        # The message goes into `args`, because JupyterHub before 6.0 shows
        # `log_message % args`, and a "%" in a message of its own would break that.
        HTTPError.__init__(self, status_code, "%s", message)
        self.message = message
        self.log_text = log_text or message
        # JupyterHub 4 and later show this attribute on the spawn-pending page and in
        # progress events, and JupyterHub 5 and later also on the error page.
        self.jupyterhub_message = message

    def __str__(self) -> str:
        return self.log_text


class DaemonUnreachableError(SdspawnerError):
    """The daemon's socket is missing, or the connection to it failed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status_code=503)


class DaemonTimeoutError(SdspawnerError):
    """The daemon did not send its response within the timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status_code=503)


class DaemonError(SdspawnerError):
    """The daemon returned an error response.

    `status` is the HTTP status, `code` the daemon's error code (such as
    "invalid_request" or "not_found") and `error` the daemon's message, which is also
    the message that JupyterHub shows to the user. JupyterHub responds with the
    daemon's status, or with 500 when that is not an error status.
    """

    def __init__(self, status: int, code: str, error: str, request: str) -> None:
        self.status = status
        self.code = code
        self.error = error
        self.request = request
        super().__init__(
            error,
            status_code=status if 400 <= status <= 599 else 500,
            log_text=f"{error} (sdspawner daemon: HTTP {status} {code} on {request})",
        )


class DaemonRejectedError(DaemonError, *_SPAWN_EXCEPTION_BASES):
    """The daemon rejected the request with a 4xx status, such as an invalid option.

    With JupyterHub 6.0 and later it is also a SpawnException with the daemon's code as
    `reason`. JupyterHub then records a start that fails with it under the status
    "failure" and that reason in its spawn metrics, and does not count it towards
    `Spawner.consecutive_failure_limit`.
    """

    def __init__(self, status: int, code: str, error: str, request: str) -> None:
        super().__init__(status, code, error, request)
        if _SPAWN_EXCEPTION_BASES:
            # DaemonError's constructor does not reach SpawnException's, whose
            # arguments differ, so it is called here to set its attributes.
            SpawnException.__init__(
                self, error, reason=code, log_message=self.log_text, status_code=self.status_code
            )
        else:
            self.reason = code


class DaemonClient:
    """Send requests to the sdspawner daemon on the Unix socket at `socket_path`.

    `timeout` is the default limit, in seconds, for connecting, sending and receiving.
    """

    def __init__(self, socket_path: str, timeout: float) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    async def version(self) -> dict[str, Any]:
        """Fetch the daemon's version and API version."""
        return await self.request("GET", "/version")

    async def start_server(self, body: dict[str, Any]) -> ServerStatus:
        """Start a server and return its status once systemd's start job is done."""
        response = await self.request("POST", "/servers/start", body=body)
        return _check_status(response, "POST /v1/servers/start")

    async def server_status(self, user: str, server: str) -> ServerStatus:
        """Fetch the status of the server `server` ("" for the default) of `user`."""
        response = await self.request(
            "GET", "/servers/status", params={"user": user, "server": server}
        )
        return _check_status(response, "GET /v1/servers/status")

    async def server_events(
        self, user: str, server: str, after: int, wait: float
    ) -> EventsResponse:
        """Fetch the progress events of the latest start of a server after event `after`.

        When there are none yet, the daemon waits up to `wait` seconds for one.
        """
        response = await self.request(
            "GET",
            "/servers/events",
            params={"user": user, "server": server, "after": str(after), "wait": f"{wait:g}"},
            timeout=wait + self.timeout,
        )
        events = response.get("events")
        if not isinstance(events, list) or not isinstance(response.get("done"), bool):
            raise SdspawnerError(
                "GET /v1/servers/events to the sdspawner daemon returned a body without"
                f" events and done: {_shorten(repr(response))}"
            )
        return response  # type: ignore[return-value]

    async def stop_server(
        self, user: str, server: str, now: bool, timeout: float | None = None
    ) -> ServerStatus:
        """Stop a server. With `now`, the daemon skips the grace period."""
        response = await self.request(
            "POST",
            "/servers/stop",
            body={"user": user, "server": server, "now": now},
            timeout=timeout,
        )
        return _check_status(response, "POST /v1/servers/stop")

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one request to `API_PREFIX + path` and return the decoded JSON object.

        Raises DaemonError for an error response (DaemonRejectedError for a 4xx one),
        DaemonUnreachableError when the socket cannot be connected to, DaemonTimeoutError
        when `timeout` (default: the client's) runs out, and SdspawnerError for any other
        failure.
        """
        if timeout is None:
            timeout = self.timeout
        full_path = API_PREFIX + path
        request_name = f"{method} {full_path}"

        client = _transport.client_for(self.socket_path)
        try:
            response = await client.request(
                method, full_path, params=params, body=body, timeout=timeout
            )
        except _transport.TransportTimeout as exc:
            raise DaemonTimeoutError(
                f"sdspawner daemon at {self.socket_path} did not respond to {request_name}"
                f" within {timeout:g} seconds ({type(exc).__name__}). Check the log of"
                " `sdspawner serve`, or raise the timeout if the daemon is only slow."
            ) from exc
        except _transport.ConnectError as exc:
            raise DaemonUnreachableError(
                f"sdspawner daemon not reachable at {self.socket_path}: {exc}. Is"
                " `sdspawner serve` running, and is the hub's user allowed to use the"
                " socket?"
            ) from exc
        except _transport.TransportError as exc:
            raise SdspawnerError(
                f"{request_name} to the sdspawner daemon at {self.socket_path} failed:"
                f" {type(exc).__name__}: {exc}"
            ) from exc

        return _decode_response(response, request_name)


def _shorten(text: str) -> str:
    if len(text) > _MAX_QUOTED_BODY:
        return text[:_MAX_QUOTED_BODY] + "..."
    return text


def _quote_body(response: _transport.Response) -> str:
    return repr(_shorten(response.text.strip()))


def _decode_response(response: _transport.Response, request_name: str) -> dict[str, Any]:
    """Return the JSON object of a success response, or raise the error it carries."""
    try:
        decoded: Any = response.json()
    except ValueError:
        decoded = None

    if response.is_success:
        if not isinstance(decoded, dict):
            raise SdspawnerError(
                f"sdspawner daemon returned HTTP {response.status_code} on {request_name}"
                f" with a body that is not a JSON object: {_quote_body(response)}"
            )
        return decoded

    error = decoded.get("error") if isinstance(decoded, dict) else None
    code = decoded.get("code") if isinstance(decoded, dict) else None
    if not isinstance(error, str) or not isinstance(code, str):
        # Not the daemon's error shape: keep the start of the body for diagnosis.
        error = f"unexpected error response {_quote_body(response)}"
        code = "unknown"
    if response.is_client_error:
        raise DaemonRejectedError(response.status_code, code, error, request_name)
    raise DaemonError(response.status_code, code, error, request_name)


def _check_status(response: dict[str, Any], request_name: str) -> ServerStatus:
    """Check the fields of a status response that the spawner relies on."""
    problems = []
    if not isinstance(response.get("unit"), str):
        problems.append("unit is not a string")
    if not isinstance(response.get("active_state"), str):
        problems.append("active_state is not a string")
    exit_status = response.get("exit_status")
    if exit_status is not None and (
        not isinstance(exit_status, int) or isinstance(exit_status, bool)
    ):
        problems.append("exit_status is neither an integer nor null")
    if problems:
        raise SdspawnerError(
            f"sdspawner daemon returned an invalid status on {request_name}: {', '.join(problems)}"
        )

    # The daemon sends a start response after it created the unit, so a malformed
    # warnings field becomes a warning itself instead of an error that fails the start.
    warnings = response.get("warnings")
    if warnings is not None and not (
        isinstance(warnings, list) and all(isinstance(item, str) for item in warnings)
    ):
        response["warnings"] = [
            f"the daemon's response to {request_name} has an invalid warnings field"
            f" (expected a list of strings): {_shorten(repr(warnings))}"
        ]
    return response  # type: ignore[return-value]
