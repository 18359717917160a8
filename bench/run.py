"""Boot a bed, run the benchmarks there, print a table with ratios, and tear down.

Usage: python3 bench/run.py [--n 200] [--poll-units 1000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bed"))

from hubbed import Bed, Hub


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
    lines.append(
        "daemon RSS: " + ", ".join(f"{units} units {mib:.1f} MiB" for units, mib in rss.items())
    )
    lines.append(f"systemd {report.get('systemd', '?')}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--poll-units", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    started = time.monotonic()
    bed = Bed.up()
    try:
        hub = Hub(bed=bed, users=["alice"])
        hub.install()
        pid = bed.unit_properties("sdspawner.service", "MainPID")["MainPID"]
        # Enough file descriptors and tasks for 1,000 units and the burst.
        bed.run("systemctl set-property --runtime sdspawner.service LimitNOFILE=65536 || true")
        output = bed.run(
            [
                "/src/bin/sdbench",
                f"-n={args.n}",
                f"-poll-units={args.poll_units}",
                f"-daemon-pid={pid}",
            ],
            timeout=3600,
        ).stdout
        report = json.loads(output)
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
    finally:
        bed.down()
    print(table(report))
    print(f"\nbenchmark run took {time.monotonic() - started:.0f}s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
