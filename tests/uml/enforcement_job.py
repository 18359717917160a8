#!/usr/bin/env python3
"""Measure how the kernel enforces the limits that sdspawner sets, inside the UML guest.

bed/uml.sh runs this as root inside a User-Mode Linux guest (tests/uml/test_enforcement.py
starts it). The job creates the users alice and bob, starts the daemon /src/bin/sdspawner
as a systemd service, starts the users' servers through the daemon's socket with curl,
reads the servers' cgroup files, and writes BED_RESULTS/enforcement.json with one object
per measurement, or {"error": ...} for a measurement that failed. The host-side tests
check the numbers. The job exits 1 only when the setup fails.

It uses only the standard library, because the guest's python3 has no other packages.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

SOCKET = "/run/sdspawner/sdspawner.sock"
CGROUP_ROOT = Path("/sys/fs/cgroup")
SERVER_PROGRAM = "/usr/local/lib/sdspawner-uml/user_server.py"
UNIT_NAME_TEMPLATE = "jupyter-{USERNAME}-singleuser"
USERS = ("alice", "bob")
SLICE = "jupyterhub-users.slice"
MIB = 1 << 20

# Seconds that busy workers run before a CPU measurement, so that the forks and the start
# of python are not counted, and the length of the measurement.
CPU_WARMUP_SECONDS = 2.0
CPU_WINDOW_SECONDS = 10.0
CPU_BASELINE_SECONDS = 5.0

src = Path(os.environ.get("BED_SRC", "/src"))
results_path = Path(os.environ.get("BED_RESULTS", "/results")) / "enforcement.json"
results: dict[str, Any] = {}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def save_results() -> None:
    partial = results_path.with_suffix(".partial")
    partial.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    partial.replace(results_path)


def run(*args: str, timeout: float = 120) -> str:
    """Run a command and return its standard output; raise with its output on failure."""
    completed = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} exited with status {completed.returncode}: "
            f"{completed.stderr.strip() or completed.stdout.strip()}"
        )
    return completed.stdout


def api(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Send one request to the daemon through its Unix socket and return the JSON body."""
    # The host name in the URL only fills the Host header: curl connects to the socket.
    args = ["curl", "-sS", "--max-time", "90", "--unix-socket", SOCKET, "-X", method]
    args += ["-o", "-", "-w", "\n%{http_code}"]
    data = None
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
        data = json.dumps(body)
    args.append(f"http://localhost{path}")
    completed = subprocess.run(args, input=data, capture_output=True, text=True, timeout=120)
    if completed.returncode != 0:
        raise RuntimeError(f"curl {method} {path} failed: {completed.stderr.strip()}")
    text, _, code = completed.stdout.rpartition("\n")
    if code != "200":
        raise RuntimeError(f"{method} {path}: HTTP {code}: {text}")
    return dict(json.loads(text))


def start_server(user: str, argv: list[str], **options: Any) -> dict[str, Any]:
    """Start the user's default server with the user server program and return its status."""
    body = {
        "user": user,
        "server": "",
        "cmd": ["/usr/bin/python3", SERVER_PROGRAM, *argv],
        "env": {},
        "username_template": "{USERNAME}",
        "unit_name_template": UNIT_NAME_TEMPLATE,
        "default_shell": "/bin/bash",
        **options,
    }
    status = api("POST", "/v1/servers/start", body)
    if status["active_state"] != "active":
        raise RuntimeError(f"{user}'s server did not start: {status}")
    log(f"started {status['unit']} (main PID {status['main_pid']}): {' '.join(argv)}, {options}")
    return status


def server_status(user: str) -> dict[str, Any]:
    return api("GET", f"/v1/servers/status?user={user}&server=")


def stop_servers() -> None:
    for user in USERS:
        api("POST", "/v1/servers/stop", {"user": user, "server": "", "now": True})


def control_group(unit: str) -> Path:
    relative = run("systemctl", "show", "--value", "--property=ControlGroup", unit).strip()
    if not relative:
        raise RuntimeError(f"{unit} has no control group")
    return CGROUP_ROOT / relative.lstrip("/")


def read_keyed(path: Path) -> dict[str, int]:
    """Parse a cgroup file of "key value" lines, such as cpu.stat or memory.events."""
    values = {}
    for line in path.read_text().splitlines():
        key, value = line.split()
        values[key] = int(value)
    return values


def read_int(path: Path) -> int:
    return int(path.read_text().strip())


def server_events(unit: str) -> list[str]:
    """Return the events the user server program wrote to its runtime directory."""
    events = Path("/run") / unit.removesuffix(".service") / "events"
    try:
        return events.read_text().splitlines()
    except FileNotFoundError:
        return []


def wait_for(condition: Callable[[], bool], timeout: float, description: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {description}")
        time.sleep(0.1)


def cpu_shares(cgroups: dict[str, Path], seconds: float) -> dict[str, float]:
    """Measure each cgroup's CPU time over the same window, as a fraction of one CPU."""
    before = {name: read_keyed(path / "cpu.stat")["usage_usec"] for name, path in cgroups.items()}
    started = time.monotonic()
    time.sleep(seconds)
    after = {name: read_keyed(path / "cpu.stat")["usage_usec"] for name, path in cgroups.items()}
    wall_usec = (time.monotonic() - started) * 1e6
    return {name: round((after[name] - before[name]) / wall_usec, 4) for name in cgroups}


# --- measurements -------------------------------------------------------------------------


def measure_mem_limit() -> dict[str, Any]:
    """A worker allocating past mem_limit is killed, and the server's main process stays."""
    limit = 100 * MIB
    allocation_mib = 300
    started = start_server("alice", ["alloc", str(allocation_mib)], mem_limit=limit)
    unit = started["unit"]
    cgroup = control_group(unit)

    wait_for(
        lambda: any(event.startswith("ended ") for event in server_events(unit)),
        60,
        "alice's allocating worker to end",
    )
    # Give systemd a moment to process the OOM kill, so that a unit that it would stop
    # shows up as stopping or failed.
    time.sleep(1)

    after = server_status("alice")
    events = server_events(unit)
    # The admin's view: `sdspawner ps` reads the kill from the cgroup's memory.events,
    # and the daemon logs it with the user's name the first time it reads it.
    listed = json.loads(run(str(src / "bin" / "sdspawner"), "ps", "--json"))["servers"]
    ps_alice = next(server for server in listed if server["user"] == "alice")
    oom_log = run(
        "journalctl", "--unit=sdspawner", "--no-pager", "--output=cat", "SDSPAWNER_USER=alice"
    )
    allocated = [int(event.split()[1]) for event in events if event.startswith("allocated ")]
    processes = [int(pid) for pid in (cgroup / "cgroup.procs").read_text().split()]
    return {
        "mem_limit_bytes": limit,
        "allocation_mib": allocation_mib,
        "memory_max": read_int(cgroup / "memory.max"),
        "memory_peak": read_int(cgroup / "memory.peak"),
        "oom_kill": read_keyed(cgroup / "memory.events")["oom_kill"],
        "max_allocated_mib": max(allocated, default=0),
        "worker_end": next(event for event in events if event.startswith("ended ")),
        "main_pid_before": started["main_pid"],
        "main_pid_after": after["main_pid"],
        "main_pid_in_cgroup": started["main_pid"] in processes,
        "active_state": after["active_state"],
        "sub_state": after["sub_state"],
        "ps_memory_limit_bytes": ps_alice["memory_limit_bytes"],
        "ps_memory_bytes": ps_alice["memory_bytes"],
        "ps_oom_kills": ps_alice["oom_kills"],
        "ps_tasks": ps_alice["tasks"],
        "ps_cpu_seconds": ps_alice["cpu_seconds"],
        "oom_logged": [
            line for line in oom_log.splitlines() if "more memory than its limit" in line
        ],
    }


def measure_cpu_baseline() -> dict[str, Any]:
    """CPU that one busy worker gets without a limit, out of the guest's single CPU."""
    unit = start_server("alice", ["busy", "1"])["unit"]
    cgroup = control_group(unit)
    time.sleep(CPU_WARMUP_SECONDS)
    share = cpu_shares({"alice": cgroup}, CPU_BASELINE_SECONDS)["alice"]
    return {"cpu": share, "seconds": CPU_BASELINE_SECONDS}


def measure_cpu_limit() -> dict[str, Any]:
    """One busy worker under cpu_limit=0.5 gets half a CPU."""
    cpu_limit = 0.5
    unit = start_server("alice", ["busy", "1"], cpu_limit=cpu_limit)["unit"]
    cgroup = control_group(unit)
    time.sleep(CPU_WARMUP_SECONDS)
    share = cpu_shares({"alice": cgroup}, CPU_WINDOW_SECONDS)["alice"]
    return {
        "cpu_limit": cpu_limit,
        "cpu_max": (cgroup / "cpu.max").read_text().strip(),
        "cpu_quota_per_sec": run(
            "systemctl", "show", "--value", "--property=CPUQuotaPerSecUSec", unit
        ).strip(),
        "cpu": share,
        "seconds": CPU_WINDOW_SECONDS,
        "nr_throttled": read_keyed(cgroup / "cpu.stat")["nr_throttled"],
    }


def measure_cpu_fairness() -> dict[str, Any]:
    """With default settings, 1 busy process of alice and 8 of bob share the CPU evenly."""
    workers = {"alice": 1, "bob": 8}
    cgroups = {}
    for user, count in workers.items():
        unit = start_server(user, ["busy", str(count)])["unit"]
        cgroups[user] = control_group(unit)
    time.sleep(CPU_WARMUP_SECONDS)
    shares = cpu_shares(cgroups, CPU_WINDOW_SECONDS)
    return {
        "workers": workers,
        "cpu": shares,
        "cpu_weight": {user: read_int(path / "cpu.weight") for user, path in cgroups.items()},
        "ratio_alice_to_bob": round(shares["alice"] / shares["bob"], 4),
        "seconds": CPU_WINDOW_SECONDS,
    }


def measure_cpu_fairness_without_weight() -> dict[str, Any]:
    """Control for measure_cpu_fairness: the same workers in units that systemd-run starts
    without CPU properties, before any unit with a CPU weight exists. The cpu controller is
    then off in system.slice, so the kernel shares the CPU per process, not per unit."""
    workers = {"alice": 1, "bob": 8}
    system_slice = CGROUP_ROOT / "system.slice"
    units = {user: f"uml-control-{user}.service" for user in workers}
    cgroups = {}
    try:
        for user, count in workers.items():
            run(
                "systemd-run",
                f"--unit={units[user]}",
                f"--uid={user}",
                "--property=Type=exec",
                "/usr/bin/python3",
                SERVER_PROGRAM,
                "busy",
                str(count),
            )
            cgroups[user] = control_group(units[user])
        subtree_control = (system_slice / "cgroup.subtree_control").read_text().split()
        time.sleep(CPU_WARMUP_SECONDS)
        shares = cpu_shares(cgroups, CPU_WINDOW_SECONDS)
    finally:
        run("systemctl", "stop", *units.values())
    return {
        "workers": workers,
        "cpu": shares,
        "system_slice_subtree_control": subtree_control,
        "ratio_alice_to_bob": round(shares["alice"] / shares["bob"], 4),
        "seconds": CPU_WINDOW_SECONDS,
    }


def measure_slice_memory() -> dict[str, Any]:
    """A slice's MemoryMax caps the sum of the servers in it: two users allocating 200 MiB
    each under a 300 MiB slice cannot both hold their memory."""
    cap = 300 * MIB
    allocation_mib = 200
    Path("/etc/systemd/system", SLICE).write_text(
        f"[Unit]\nDescription=JupyterHub user servers\n\n[Slice]\nMemoryMax={cap}\n"
    )
    run("systemctl", "daemon-reload")

    units = {}
    warnings = []
    first = start_server("alice", ["alloc", str(allocation_mib)], slice=SLICE)
    units["alice"] = first["unit"]
    warnings += first.get("warnings", [])
    slice_cgroup = control_group(SLICE)
    cgroups = {"alice": control_group(units["alice"])}

    def worker_done(user: str) -> bool:
        return any(e.startswith(("holding ", "ended ")) for e in server_events(units[user]))

    wait_for(lambda: worker_done("alice"), 60, "alice's worker to allocate its memory")

    second = start_server("bob", ["alloc", str(allocation_mib)], slice=SLICE)
    units["bob"] = second["unit"]
    warnings += second.get("warnings", [])
    cgroups["bob"] = control_group(units["bob"])

    # Sample the memory while bob's worker allocates, until both workers hold their memory
    # or were killed.
    max_slice = 0
    max_sum = 0
    samples = 0
    deadline = time.monotonic() + 60
    while True:
        current = {user: read_int(path / "memory.current") for user, path in cgroups.items()}
        max_sum = max(max_sum, sum(current.values()))
        max_slice = max(max_slice, read_int(slice_cgroup / "memory.current"))
        samples += 1
        if worker_done("bob") or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if not worker_done("bob"):
        raise TimeoutError("timed out after 60s waiting for bob's worker to allocate or end")
    time.sleep(1)

    return {
        "slice": SLICE,
        "cap_bytes": cap,
        "allocation_mib_each": allocation_mib,
        "slice_memory_max": read_int(slice_cgroup / "memory.max"),
        "slice_memory_peak": read_int(slice_cgroup / "memory.peak"),
        "slice_memory_current_max_sampled": max_slice,
        "servers_memory_sum_max_sampled": max_sum,
        "samples": samples,
        "slice_oom_kill": read_keyed(slice_cgroup / "memory.events")["oom_kill"],
        "oom_kill": {
            user: read_keyed(path / "memory.events")["oom_kill"] for user, path in cgroups.items()
        },
        "worker_events": {user: server_events(unit)[-1] for user, unit in units.items()},
        "active_state": {user: server_status(user)["active_state"] for user in units},
        "warnings": warnings,
    }


def measure_check() -> dict[str, Any]:
    """`sdspawner check` gives its verdict from a probe unit's cgroup files."""
    result = subprocess.run(
        [str(src / "bin" / "sdspawner"), "check", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(result.stdout)
    return {"exit_status": result.returncode, "report": report}


# The control runs first, because systemd keeps the cpu controller on in system.slice once
# a unit with a CPU weight has run there.
MEASUREMENTS: dict[str, Callable[[], dict[str, Any]]] = {
    "cpu_fairness_without_weight": measure_cpu_fairness_without_weight,
    "mem_limit": measure_mem_limit,
    "cpu_baseline": measure_cpu_baseline,
    "cpu_limit": measure_cpu_limit,
    "cpu_fairness": measure_cpu_fairness,
    "slice_memory": measure_slice_memory,
    "check": measure_check,
}


# --- setup --------------------------------------------------------------------------------


def set_up() -> None:
    """Create the users, install the user server program, and start the daemon."""
    daemon = src / "bin" / "sdspawner"
    if not daemon.is_file():
        raise RuntimeError(f"{daemon} not found: run `make build` on the host")

    # The daemon's default configuration gives the socket to the group jupyterhub.
    run("sh", "-c", "getent group jupyterhub >/dev/null || groupadd --system jupyterhub")
    for user in USERS:
        run("sh", "-c", f"id {user} >/dev/null 2>&1 || useradd --create-home {user}")

    # The users must be able to read the program, and only root may change it.
    program = Path(SERVER_PROGRAM)
    program.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "tests" / "uml" / "user_server.py", program)
    program.chmod(0o644)

    run("systemd-run", "--unit=sdspawner", "--property=Type=exec", str(daemon), "serve")
    wait_for(lambda: Path(SOCKET).is_socket(), 30, f"the daemon's socket {SOCKET}")
    results["environment"] = {
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "memory_total_kib": next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        ),
        "systemd": run("systemctl", "--version").splitlines()[0],
        "sdspawner": api("GET", "/v1/version")["version"],
    }
    log(f"environment: {results['environment']}")


def main() -> int:
    try:
        set_up()
    except Exception as error:
        traceback.print_exc()
        results["setup_error"] = f"{type(error).__name__}: {error}"
        save_results()
        return 1
    save_results()

    for name, measure in MEASUREMENTS.items():
        log(f"measuring {name}")
        started = time.monotonic()
        try:
            results[name] = measure()
        except Exception as error:
            traceback.print_exc()
            results[name] = {"error": f"{type(error).__name__}: {error}"}
        results[name]["duration_seconds"] = round(time.monotonic() - started, 1)
        log(f"{name}: {json.dumps(results[name], sort_keys=True)}")
        try:
            stop_servers()
        except Exception as error:
            # The next measurement would start on top of these servers.
            traceback.print_exc()
            results[name]["cleanup_error"] = f"{type(error).__name__}: {error}"
            save_results()
            return 1
        save_results()

    Path(results_path.parent, "sdspawner.log").write_text(
        run("journalctl", "--unit=sdspawner", "--no-pager", "--output=short-precise")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
