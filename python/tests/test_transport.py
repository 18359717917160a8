"""The keep-alive HTTP/1.1 client on asyncio streams, against a scripted server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
from conftest import FakeDaemon

from sdspawner import SdspawnerError, _transport
from sdspawner._transport import (
    ConnectError,
    ReadTimeout,
    RemoteProtocolError,
    UnixHTTPClient,
)
from sdspawner.client import DaemonClient

# A handler reads one request's head and body from the connection and writes the
# response; returning False closes the connection.
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[bool]]


def json_response(body: object, extra_headers: str = "") -> bytes:
    payload = json.dumps(body).encode()
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n{extra_headers}\r\n"
    ).encode() + payload


async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> bool:
    writer.write(json_response({"ok": True}))
    return True


@dataclass
class ScriptedServer:
    """A Unix socket server that responds to each request with the next handler."""

    socket_path: str
    handlers: list[Handler] = field(default_factory=list)
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = 0
                for line in head.decode().split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                self.heads.append(head)
                self.bodies.append(await reader.readexactly(length))
                handler = self.handlers.pop(0) if self.handlers else ok
                keep_open = await handler(reader, writer, head)
                await writer.drain()
                if not keep_open:
                    return
        finally:
            writer.close()


@pytest.fixture
async def server(short_tmp: Path) -> AsyncIterator[ScriptedServer]:
    scripted = ScriptedServer(str(short_tmp / "scripted.sock"))
    unix_server = await asyncio.start_unix_server(scripted.serve, scripted.socket_path)
    try:
        yield scripted
    finally:
        unix_server.close()


def new_client(server: ScriptedServer) -> UnixHTTPClient:
    return UnixHTTPClient(server.socket_path, asyncio.get_running_loop())


async def test_transport_reuses_connection(server: ScriptedServer) -> None:
    client = new_client(server)

    for _ in range(3):
        response = await client.request("GET", "/v1/version", timeout=5)
        assert response.json() == {"ok": True}

    assert server.connections == 1
    assert len(server.heads) == 3
    client.close()


async def test_transport_sends_query_and_json_body(server: ScriptedServer) -> None:
    client = new_client(server)

    await client.request(
        "GET", "/v1/servers/status", params={"user": "a b", "server": ""}, timeout=5
    )
    await client.request("POST", "/v1/servers/stop", body={"user": "é", "now": True}, timeout=5)

    assert server.heads[0].startswith(b"GET /v1/servers/status?user=a+b&server= HTTP/1.1\r\n")
    assert b"Content-Type: application/json\r\n" in server.heads[1]
    assert json.loads(server.bodies[1]) == {"user": "é", "now": True}
    client.close()


async def test_transport_decodes_chunked_body(server: ScriptedServer) -> None:
    async def chunked(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
    ) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'4\r\n{"a"\r\n5;ext=1\r\n: 12}\r\n0\r\nX-Trailer: 1\r\n\r\n'
        )
        return True

    server.handlers = [chunked]
    client = new_client(server)

    response = await client.request("GET", "/", timeout=5)
    assert response.json() == {"a": 12}
    # The connection is still in step: the next response is read whole.
    assert (await client.request("GET", "/", timeout=5)).json() == {"ok": True}
    assert server.connections == 1
    client.close()


async def test_transport_honours_connection_close(server: ScriptedServer) -> None:
    async def closing(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
    ) -> bool:
        writer.write(json_response({"n": 1}, "Connection: close\r\n"))
        return False

    server.handlers = [closing]
    client = new_client(server)

    assert (await client.request("GET", "/", timeout=5)).json() == {"n": 1}
    assert (await client.request("GET", "/", timeout=5)).json() == {"ok": True}
    assert server.connections == 2
    client.close()


async def test_transport_reads_body_until_eof(server: ScriptedServer) -> None:
    async def unsized(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
    ) -> bool:
        writer.write(b'HTTP/1.1 500 Internal Server Error\r\n\r\n{"error": "x"}')
        return False

    server.handlers = [unsized]
    client = new_client(server)

    response = await client.request("GET", "/", timeout=5)
    assert response.status_code == 500
    assert response.text == '{"error": "x"}'
    client.close()


async def test_transport_retries_get_on_closed_idle_connection(server: ScriptedServer) -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> bool:
        return False

    # The second request reaches a connection that the server closes without a response,
    # as when the daemon's idle timeout closes it at the same moment.
    server.handlers = [ok, drop]
    client = new_client(server)

    await client.request("GET", "/", timeout=5)
    response = await client.request("GET", "/", timeout=5)

    assert response.json() == {"ok": True}
    assert server.connections == 2
    assert len(server.heads) == 3
    client.close()


async def test_transport_does_not_retry_post(server: ScriptedServer) -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> bool:
        return False

    server.handlers = [ok, drop]
    client = new_client(server)

    await client.request("GET", "/", timeout=5)
    with pytest.raises(RemoteProtocolError, match="without a response"):
        await client.request("POST", "/v1/servers/start", body={}, timeout=5)

    assert len(server.heads) == 2
    client.close()


async def test_transport_skips_connection_closed_while_idle(server: ScriptedServer) -> None:
    async def close_after(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
    ) -> bool:
        writer.write(json_response({"n": 1}))
        return False

    server.handlers = [close_after]
    client = new_client(server)

    await client.request("POST", "/", body={}, timeout=5)
    # Let the event loop see the server's close on the idle connection.
    await asyncio.sleep(0.05)
    response = await client.request("POST", "/", body={}, timeout=5)

    assert response.json() == {"ok": True}
    assert server.connections == 2
    client.close()


async def test_transport_drops_connection_idle_too_long(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_transport, "IDLE_SECONDS", 0.0)
    client = new_client(server)

    await client.request("GET", "/", timeout=5)
    await client.request("GET", "/", timeout=5)

    assert server.connections == 2
    client.close()


async def test_transport_timeout_closes_connection(server: ScriptedServer) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> bool:
        await asyncio.sleep(1)
        writer.write(json_response({"late": True}))
        return True

    server.handlers = [slow]
    client = new_client(server)

    with pytest.raises(ReadTimeout):
        await client.request("GET", "/", timeout=0.1)
    # The late response is not mistaken for the next request's.
    assert (await client.request("GET", "/", timeout=5)).json() == {"ok": True}
    assert server.connections == 2
    client.close()


async def test_transport_cancel_closes_connection(server: ScriptedServer) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> bool:
        await asyncio.sleep(1)
        writer.write(json_response({"late": True}))
        return True

    server.handlers = [slow]
    client = new_client(server)

    task = asyncio.ensure_future(client.request("GET", "/", timeout=5))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert (await client.request("GET", "/", timeout=5)).json() == {"ok": True}
    assert server.connections == 2
    client.close()


async def test_transport_rejects_invalid_status_line(server: ScriptedServer) -> None:
    async def garbage(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
    ) -> bool:
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        return False

    server.handlers = [garbage]
    client = new_client(server)

    with pytest.raises(RemoteProtocolError, match="invalid status line"):
        await client.request("GET", "/", timeout=5)
    client.close()


async def test_transport_cut_body_is_error(server: ScriptedServer) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
        return False

    server.handlers = [cut]
    client = new_client(server)

    with pytest.raises(RemoteProtocolError, match="reading the response body failed"):
        await client.request("GET", "/", timeout=5)
    client.close()


async def test_transport_missing_socket_is_connect_error(short_tmp: Path) -> None:
    client = UnixHTTPClient(str(short_tmp / "missing.sock"), asyncio.get_running_loop())

    with pytest.raises(ConnectError, match="No such file or directory"):
        await client.request("GET", "/", timeout=5)


async def test_daemon_client_shares_connection(fake_daemon: FakeDaemon) -> None:
    # Two DaemonClients of one socket share the connections of the running loop.
    first = DaemonClient(fake_daemon.socket_path, timeout=5)
    second = DaemonClient(fake_daemon.socket_path, timeout=5)

    await first.version()
    await second.server_status("alice", "")

    shared = _transport.client_for(fake_daemon.socket_path)
    assert len(shared._idle) == 1


async def test_daemon_client_cut_response_is_sdspawner_error(server: ScriptedServer) -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> bool:
        return False

    server.handlers = [drop]
    client = DaemonClient(server.socket_path, timeout=5)

    with pytest.raises(SdspawnerError, match="RemoteProtocolError"):
        await client.stop_server("alice", "", now=False)
