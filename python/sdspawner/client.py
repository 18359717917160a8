"""Client for the HTTP/JSON API that `sdspawner serve` serves on its Unix socket.

The API is version 1, described in docs/api.md of the sdspawner repository. Every call
opens and closes its own connection, so no connection outlives the event loop that made
it. Requests are rare (a start, a stop, a poll every `Spawner.poll_interval` seconds), so
the extra connect on a local socket costs little.
"""

from __future__ import annotations

from typing import Any, TypedDict

import httpx

API_PREFIX = "/v1"

# Any host name works because the transport connects to the socket. It only appears in
# the Host header, and "localhost" keeps the daemon's logs unsurprising.
_BASE_URL = "http://localhost"

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


class SdspawnerError(Exception):
    """Base class of the errors raised while talking to the sdspawner daemon."""


class DaemonUnreachableError(SdspawnerError):
    """The daemon's socket is missing, or the connection to it failed."""


class DaemonTimeoutError(SdspawnerError):
    """The daemon did not send its response within the timeout."""


class DaemonError(SdspawnerError):
    """The daemon returned an error response.

    `status` is the HTTP status, `code` the daemon's error code (such as
    "invalid_request" or "not_found") and `error` the daemon's message.
    """

    def __init__(self, status: int, code: str, error: str, request: str) -> None:
        self.status = status
        self.code = code
        self.error = error
        self.request = request
        # The daemon's message comes first because JupyterHub shows str(exception) to
        # the user after "Spawn failed: ".
        super().__init__(f"{error} (sdspawner daemon: HTTP {status} {code} on {request})")


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

        Raises DaemonError for an error response, DaemonUnreachableError when the socket
        cannot be connected to, DaemonTimeoutError when `timeout` (default: the client's)
        runs out, and SdspawnerError for any other failure.
        """
        if timeout is None:
            timeout = self.timeout
        full_path = API_PREFIX + path
        request_name = f"{method} {full_path}"

        transport = httpx.AsyncHTTPTransport(uds=self.socket_path)
        # trust_env=False keeps proxy variables and .netrc of the hub's environment out
        # of a request that never leaves this machine.
        client = httpx.AsyncClient(
            transport=transport, base_url=_BASE_URL, timeout=timeout, trust_env=False
        )
        try:
            async with client:
                # httpx's json= also sets "Content-Type: application/json", which the
                # daemon requires on every request with a body.
                response = await client.request(method, full_path, params=params, json=body)
        except httpx.TimeoutException as exc:
            raise DaemonTimeoutError(
                f"sdspawner daemon at {self.socket_path} did not respond to {request_name}"
                f" within {timeout:g} seconds ({type(exc).__name__}). Check the log of"
                " `sdspawner serve`, or raise the timeout if the daemon is only slow."
            ) from exc
        except httpx.ConnectError as exc:
            raise DaemonUnreachableError(
                f"sdspawner daemon not reachable at {self.socket_path}: {exc}. Is"
                " `sdspawner serve` running, and is the hub's user allowed to use the"
                " socket?"
            ) from exc
        except httpx.TransportError as exc:
            raise SdspawnerError(
                f"{request_name} to the sdspawner daemon at {self.socket_path} failed:"
                f" {type(exc).__name__}: {exc}"
            ) from exc

        return _decode_response(response, request_name)


def _shorten(text: str) -> str:
    if len(text) > _MAX_QUOTED_BODY:
        return text[:_MAX_QUOTED_BODY] + "..."
    return text


def _quote_body(response: httpx.Response) -> str:
    return repr(_shorten(response.text.strip()))


def _decode_response(response: httpx.Response, request_name: str) -> dict[str, Any]:
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
