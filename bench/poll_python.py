"""Time one poll as the hub does it: the Python spawner's client over the daemon's socket,
against `systemctl is-active` for the same unit. Runs inside the bed with the hub's venv."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time

from sdspawner.client import DaemonClient


async def main(user: str, unit: str, count: int) -> None:
    client = DaemonClient("/run/sdspawner/sdspawner.sock", timeout=30)
    client_ms = []
    for _ in range(count):
        started = time.perf_counter()
        await client.server_status(user, "")
        client_ms.append((time.perf_counter() - started) * 1000)
    systemctl_ms = []
    for _ in range(max(count // 10, 20)):
        started = time.perf_counter()
        subprocess.run(["systemctl", "is-active", "--quiet", unit], check=False)
        systemctl_ms.append((time.perf_counter() - started) * 1000)
    print(
        json.dumps(
            {
                "python_poll_median_ms": statistics.median(client_ms),
                "python_poll_p95_ms": statistics.quantiles(client_ms, n=20)[18],
                "systemctl_is_active_median_ms": statistics.median(systemctl_ms),
                "systemctl_is_active_p95_ms": statistics.quantiles(systemctl_ms, n=20)[18],
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
