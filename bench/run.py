"""Boot a bed, run the benchmarks there, print a table with ratios, and tear down.

Usage: python3 bench/run.py [--n 200] [--rounds 3] [--poll-units 1000] [--json FILE]
                            [--profile-dir DIR]

The run has three parts. The comparison starts, polls and stops units with raw D-Bus,
systemd-run and sdspawner, in --rounds rounds with the methods in rotating order. Each
row pools the samples of all rounds, and its total is the median of the rounds' totals.
The profile part records the daemon's CPU profiles and an execution trace while it
starts servers. The memory part restarts the daemon, so that its first RSS sample is a
baseline, and then samples RSS and a heap profile with up to --poll-units servers.
Profiles and their `go tool pprof -top` output go to --profile-dir.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bed"))

from hubbed import Bed, Hub

REPO = Path(__file__).resolve().parent.parent

# Paths inside the bed: the daemon's profiling socket, and the folder for the profiles.
PPROF_SOCKET = "/run/sdspawner-pprof.sock"
BED_PROFILE_DIR = "/tmp/sdbench-profiles"

# Raises the daemon's limits for 1,000 units and the bursts, and turns its profiling
# socket on.
DAEMON_DROP_IN = f"""\
[Service]
ExecStart=
ExecStart=/src/bin/sdspawner serve --pprof-socket={PPROF_SOCKET}
LimitNOFILE=65536
"""


def table(report: dict[str, Any]) -> str:
    rows = {r["name"]: r for r in report["results"]}
    lines = [
        f"{'measurement':48} {'median ms':>10} {'p95 ms':>9} {'total s':>8}  "
        "ratio to raw D-Bus (median)"
    ]
    for name, row in rows.items():
        raw_name = name.rsplit(", ", 1)[0] + ", raw D-Bus"
        ratio = ""
        if raw_name in rows and raw_name != name and rows[raw_name]["median_ms"] > 0:
            ratio = f"{row['median_ms'] / rows[raw_name]['median_ms']:.2f}x"
            if "burst" in name and rows[raw_name].get("total_ms"):
                ratio += f" (total {row['total_ms'] / rows[raw_name]['total_ms']:.2f}x)"
        total = f"{row.get('total_ms', 0) / 1000:.2f}" if row.get("total_ms") else ""
        lines.append(f"{name:48} {row['median_ms']:10.2f} {row['p95_ms']:9.2f} {total:>8}  {ratio}")
    python = report.get("python_poll", {})
    if python:
        speedup = python["systemctl_is_active_median_ms"] / python["python_poll_median_ms"]
        lines.append(
            f"{'poll from the Python spawner':48} {python['python_poll_median_ms']:10.2f} "
            f"{python['python_poll_p95_ms']:9.2f} {'':>8}  "
            f"{speedup:.1f}x cheaper than systemctl is-active"
        )
        lines.append(
            f"{'systemctl is-active':48} {python['systemctl_is_active_median_ms']:10.2f} "
            f"{python['systemctl_is_active_p95_ms']:9.2f}"
        )
    rss = report.get("rss_mib", {})
    for phase, load in report.get("load_average", {}).items():
        lines.append(f"load average before {phase}: {load}")
    lines.append(
        "daemon RSS: " + ", ".join(f"{units} units {mib:.1f} MiB" for units, mib in rss.items())
    )
    lines.append(f"systemd {report.get('systemd', '?')}, {report.get('rounds', 1)} rounds")
    return "\n".join(lines)


def restart_daemon(bed: Bed, hub: Hub) -> int:
    """Restart the daemon, wait for its socket and return its pid."""
    bed.run("systemctl restart sdspawner.service")
    sockets = f"test -S /run/sdspawner/sdspawner.sock -a -S {PPROF_SOCKET}"
    hub.wait_for("daemon socket", lambda: bed.run(sockets, check=False).returncode == 0, 30)
    return int(bed.unit_properties("sdspawner.service", "MainPID")["MainPID"])


def load_average() -> str:
    """Return the host's 1, 5 and 15 minute load averages, which the bed shares."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def sdbench(bed: Bed, *args: str) -> dict[str, Any]:
    output = bed.run(["/src/bin/sdbench", *args], timeout=3600).stdout
    return json.loads(output) if output.strip() else {}


def save_profiles(bed: Bed, profile_dir: Path) -> dict[str, str]:
    """Copy the profiles out of the bed and return each one's `go tool pprof -top`."""
    profile_dir.mkdir(parents=True, exist_ok=True)
    names = bed.run(["ls", BED_PROFILE_DIR]).stdout.split()
    tops: dict[str, str] = {}
    for name in names:
        encoded = bed.run(["base64", "-w0", f"{BED_PROFILE_DIR}/{name}"]).stdout
        path = profile_dir / name
        path.write_bytes(base64.b64decode(encoded))
        if name.startswith("trace"):
            tops.update(trace_tops(path))
            continue
        flags = ["-sample_index=inuse_space"] if name.startswith("heap") else []
        tops[name] = pprof_top(path, *flags)
    return tops


def pprof_top(path: Path, *flags: str) -> str:
    """Return `go tool pprof -top` of a profile, and save it next to the profile."""
    binary = str(REPO / "bin" / "sdspawner")
    top = subprocess.run(
        ["go", "tool", "pprof", "-top", "-nodecount=25", *flags, binary, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    text = top.stdout if top.returncode == 0 else top.stderr
    path.with_name(path.name.split(".")[0] + ".top.txt").write_text(text)
    return text


def trace_tops(path: Path) -> dict[str, str]:
    """Return the top waits of an execution trace: on the network (the socket and
    D-Bus), in system calls, and on locks and channels."""
    tops: dict[str, str] = {}
    for kind in ("net", "syscall", "sync"):
        profile = path.with_name(f"{path.stem}-{kind}.pb.gz")
        with profile.open("wb") as out:
            subprocess.run(
                ["go", "tool", "trace", f"-pprof={kind}", str(path)], stdout=out, check=False
            )
        tops[profile.name] = pprof_top(profile, "-cum")
    return tops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of the comparison, in rotating order"
    )
    parser.add_argument("--poll-units", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--profile-dir", type=Path, default=REPO / "bench" / "profiles")
    args = parser.parse_args()

    started = time.monotonic()
    report: dict[str, Any] = {"load_average": {}}
    bed = Bed.up()
    try:
        hub = Hub(bed=bed, users=["alice"])
        hub.install()
        bed.write_file("/etc/systemd/system/sdspawner.service.d/bench.conf", DAEMON_DROP_IN)
        bed.run("systemctl daemon-reload")
        restart_daemon(bed, hub)

        report["load_average"]["comparison"] = load_average()
        report.update(sdbench(bed, "-mode=compare", f"-n={args.n}", f"-rounds={args.rounds}"))

        report["load_average"]["profiles"] = load_average()
        bed.run(["mkdir", "-p", BED_PROFILE_DIR])
        sdbench(
            bed,
            "-mode=profile",
            f"-n={args.n}",
            f"-pprof-socket={PPROF_SOCKET}",
            f"-profile-dir={BED_PROFILE_DIR}",
        )

        # A fresh daemon, so that the first RSS sample contains no garbage of the runs above.
        pid = restart_daemon(bed, hub)
        report["load_average"]["memory"] = load_average()
        memory = sdbench(
            bed,
            "-mode=memory",
            f"-poll-units={args.poll_units}",
            f"-daemon-pid={pid}",
            f"-pprof-socket={PPROF_SOCKET}",
            f"-profile-dir={BED_PROFILE_DIR}",
        )
        report["results"] += memory["results"]
        report["rss_mib"] = memory["rss_mib"]

        report["load_average"]["Python poll"] = load_average()
        python = bed.run(
            [
                f"{hub.venv}/bin/python3",
                "/src/bench/poll_python.py",
                "bench0",
                "jupyter-bench0-singleuser.service",
                "2000",
            ],
            timeout=600,
        ).stdout
        report["python_poll"] = json.loads(python)
        report["profiles"] = save_profiles(bed, args.profile_dir)
    finally:
        bed.down()
    print(table(report))
    for name, top in report["profiles"].items():
        print(f"\n{name}:\n{top}")
    print(f"\nbenchmark run took {time.monotonic() - started:.0f}s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
