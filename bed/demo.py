"""Run the main job: an unprivileged JupyterHub spawns two real servers through sdspawner.

Boots a throwaway systemd bed and starts the daemon as root and JupyterHub as the system
user `jupyterhub`. Starts the servers of two local users through the hub's REST API and
fetches each server's /api/status through the proxy. Prints the units as systemd reports
them, stops the servers and tears the bed down, also when a step fails.
"""

from __future__ import annotations

import sys
import time

from hubbed import DAEMON_BINARY, Bed, BedError, Hub

USERS = ["alice", "bob"]

SPAWNER_CONFIG = """\
c.SystemdSpawner.mem_limit = "1G"
c.SystemdSpawner.cpu_limit = 0.5
c.SystemdSpawner.isolate_tmp = True
"""


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def print_units(hub: Hub) -> None:
    columns = ["unit", "user", "state", "MemoryMax", "CPUQuota", "CPUWeight", "MainPID"]
    rows = []
    for user in USERS:
        unit = hub.unit_of(user)
        props = hub.bed.unit_properties(
            unit,
            "User",
            "ActiveState",
            "SubState",
            "MemoryMax",
            "CPUQuotaPerSecUSec",
            "CPUWeight",
            "MainPID",
        )
        rows.append(
            [
                unit,
                props["User"],
                f"{props['ActiveState']}/{props['SubState']}",
                props["MemoryMax"],
                props["CPUQuotaPerSecUSec"] + "/s",
                props["CPUWeight"],
                props["MainPID"],
            ]
        )
    widths = [max(len(str(row[i])) for row in [columns, *rows]) for i in range(len(columns))]
    for row in [columns, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))


def main() -> int:
    started = time.monotonic()
    current = "boot the bed"
    step(current)
    try:
        bed = Bed.up()
    except BedError as err:
        print(f"demo failed at step: {current}\n{err}", file=sys.stderr)
        return 1
    try:
        current = "install sdspawner, start the daemon (root) and JupyterHub (user jupyterhub)"
        step(current)
        hub = Hub(bed=bed, users=USERS, spawner_config=SPAWNER_CONFIG)
        hub.install()
        print(f"hub at {hub.url}, hub process uid {hub.hub_uid()}")

        for user in USERS:
            current = f"start {user}'s server through the hub's REST API"
            step(current)
            hub.start_server(user)

        for user in USERS:
            current = f"fetch /user/{user}/api/status through the proxy"
            step(current)
            response = hub.server_status(user, hub.user_token(user))
            response.raise_for_status()
            print(f"{user}: HTTP {response.status_code} {response.text}")

        current = "read the units back from systemd"
        step(current)
        print_units(hub)

        current = "list the servers as an admin sees them (sdspawner ps)"
        step(current)
        print(bed.run([DAEMON_BINARY, "ps"]).stdout, end="")

        for user in USERS:
            current = f"stop {user}'s server"
            step(current)
            hub.stop_server(user)
        left = bed.run("systemctl list-units --all --no-legend 'jupyter-*'").stdout.strip()
        print(f"units left after stop: {left or 'none'}")
    except Exception as err:
        print(f"demo failed at step: {current}\n{err}", file=sys.stderr)
        return 1
    finally:
        step("tear the bed down")
        bed.down()
    print(f"demo finished in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
