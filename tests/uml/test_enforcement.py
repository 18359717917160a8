"""Enforcement of the memory and CPU limits that sdspawner sets, measured under a real
kernel in a User-Mode Linux guest.

The systemd-nspawn bed cannot check these: on a host whose cgroup v1 controllers are
read-only, the container's systemd accepts the limits but the kernel does not enforce
them. bed/uml.sh boots the bed's Debian tree with its own kernel instead. One guest run
executes tests/uml/enforcement_job.py, which starts the real daemon and performs every
measurement. Each test below checks one measurement and prints its numbers.

Needs root, bin/sdspawner (`make build`) and the Debian package user-mode-linux.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
JOB = REPO / "tests" / "uml" / "enforcement_job.py"
MIB = 1 << 20

# bed/uml.sh stops the guest after SDSPAWNER_UML_TIMEOUT seconds. The fixture waits longer,
# because a first run also builds the root tree, which bed/rootfs.sh allows 1200 s.
RUN_TIMEOUT_SECONDS = int(os.environ.get("SDSPAWNER_UML_TIMEOUT", "600")) + 1200


@dataclass
class BedRun:
    returncode: int
    results_dir: Path
    measurements: dict[str, Any]

    def measurement(self, name: str) -> dict[str, Any]:
        """Return one measurement, or fail the test with the guest's error."""
        if name not in self.measurements:
            pytest.fail(f"the job wrote no {name} measurement; see {self.results_dir}/job.log")
        values = dict(self.measurements[name])
        if "error" in values:
            pytest.fail(
                f"{name} failed in the guest: {values['error']}; see {self.results_dir}/job.log"
            )
        return values


def run_bed(results_dir: Path) -> int:
    """Run the job in a UML guest and return bed/uml.sh's exit status.

    On timeout or Ctrl-C, bed/uml.sh gets SIGTERM, so that it stops the guest in its EXIT
    trap, and SIGKILL only if that takes longer than a minute.
    """
    command = [str(REPO / "bed" / "uml.sh"), "run", "--results", str(results_dir), "--", str(JOB)]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    try:
        return process.wait(timeout=RUN_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"bed/uml.sh timed out after {RUN_TIMEOUT_SECONDS}s")
    finally:
        # Also reached on Ctrl-C, which interrupts the wait above.
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def bed_run(tmp_path_factory: pytest.TempPathFactory) -> BedRun:
    if os.geteuid() != 0:
        pytest.fail("the UML tests must run as root: bed/uml.sh builds a root-owned image")
    if shutil.which("linux.uml") is None:
        pytest.fail("linux.uml not found: install the Debian package user-mode-linux")
    if not (REPO / "bin" / "sdspawner").is_file():
        pytest.fail("bin/sdspawner not found: run `make build` first")

    results_dir = tmp_path_factory.mktemp("uml")
    returncode = run_bed(results_dir)
    results_file = results_dir / "enforcement.json"
    if not results_file.is_file():
        pytest.fail(
            f"bed/uml.sh exited with status {returncode} and the job wrote no "
            f"{results_file}; see the output above and {results_dir}"
        )
    measurements = json.loads(results_file.read_text())
    print(f"UML environment: {measurements.get('environment')}")
    return BedRun(returncode=returncode, results_dir=results_dir, measurements=measurements)


def test_bed_run_succeeded(bed_run: BedRun) -> None:
    assert "setup_error" not in bed_run.measurements, bed_run.measurements["setup_error"]
    assert bed_run.returncode == 0, f"see {bed_run.results_dir}/job.log"


def test_mem_limit_kills_worker_only(bed_run: BedRun) -> None:
    m = bed_run.measurement("mem_limit")
    print(
        f"mem_limit: limit {m['mem_limit_bytes'] / MIB:.0f} MiB, worker asked for "
        f"{m['allocation_mib']} MiB and held {m['max_allocated_mib']} MiB when it ended "
        f"({m['worker_end']}); memory.peak {m['memory_peak'] / MIB:.1f} MiB, "
        f"oom_kill {m['oom_kill']}; server {m['active_state']}/{m['sub_state']}, main PID "
        f"{m['main_pid_before']} -> {m['main_pid_after']}"
    )
    assert m["memory_max"] == m["mem_limit_bytes"]
    assert m["oom_kill"] >= 1
    assert m["worker_end"].endswith("signal 9")
    assert m["max_allocated_mib"] < m["allocation_mib"]
    assert m["memory_peak"] <= m["mem_limit_bytes"]
    assert m["active_state"] == "active"
    assert m["main_pid_after"] == m["main_pid_before"]
    assert m["main_pid_in_cgroup"]


def test_ps_and_log_show_oom_kill(bed_run: BedRun) -> None:
    """`sdspawner ps` reports the cgroup's usage and OOM kills; the daemon logs the kill."""
    m = bed_run.measurement("mem_limit")
    print(
        f"ps: memory {m['ps_memory_bytes']} of {m['ps_memory_limit_bytes']} bytes, "
        f"oom_kills {m['ps_oom_kills']}, tasks {m['ps_tasks']}, cpu {m['ps_cpu_seconds']} s; "
        f"daemon log: {m['oom_logged']}"
    )
    assert m["ps_memory_limit_bytes"] == m["mem_limit_bytes"]
    assert 0 < m["ps_memory_bytes"] <= m["mem_limit_bytes"]
    assert m["ps_oom_kills"] == m["oom_kill"]
    assert m["ps_tasks"] >= 1
    assert m["ps_cpu_seconds"] > 0
    # One line per sample that saw new kills: usually one, and never none.
    assert m["oom_logged"]
    assert 'user="alice"' in m["oom_logged"][0]


def test_cpu_limit_half_cpu(bed_run: BedRun) -> None:
    m = bed_run.measurement("cpu_limit")
    baseline = bed_run.measurements.get("cpu_baseline", {})
    print(
        f"cpu_limit: {m['cpu_limit']} -> cpu.max '{m['cpu_max']}', one busy worker got "
        f"{m['cpu']:.3f} CPU over {m['seconds']:.0f} s, throttled {m['nr_throttled']} times; "
        f"without a limit it got {baseline.get('cpu', 'n/a')} CPU"
    )
    assert m["cpu_max"] == "50000 100000"
    assert m["seconds"] >= 5
    assert 0.45 <= m["cpu"] <= 0.55


def test_cpu_fairness_default_weight(bed_run: BedRun) -> None:
    m = bed_run.measurement("cpu_fairness")
    print(
        f"cpu_fairness: alice with {m['workers']['alice']} busy process got "
        f"{m['cpu']['alice']:.3f} CPU, bob with {m['workers']['bob']} got "
        f"{m['cpu']['bob']:.3f} CPU over {m['seconds']:.0f} s, ratio "
        f"{m['ratio_alice_to_bob']:.3f}; cpu.weight {m['cpu_weight']}"
    )
    assert m["cpu_weight"] == {"alice": 100, "bob": 100}
    assert 0.8 <= m["ratio_alice_to_bob"] <= 1.25


def test_cpu_fairness_control_is_unfair(bed_run: BedRun) -> None:
    # Without this, a fair split in the test above could come from the bed, not from the
    # CPU weight that the daemon sets.
    m = bed_run.measurement("cpu_fairness_without_weight")
    print(
        f"cpu_fairness control (systemd-run, no CPU properties): alice "
        f"{m['cpu']['alice']:.3f} CPU, bob {m['cpu']['bob']:.3f} CPU, ratio "
        f"{m['ratio_alice_to_bob']:.3f}; system.slice subtree_control "
        f"{m['system_slice_subtree_control']}"
    )
    assert "cpu" not in m["system_slice_subtree_control"]
    assert m["ratio_alice_to_bob"] < 0.5


def test_slice_caps_sum_of_servers(bed_run: BedRun) -> None:
    m = bed_run.measurement("slice_memory")
    cap = m["cap_bytes"]
    print(
        f"slice_memory: {m['slice']} MemoryMax {cap / MIB:.0f} MiB, two servers asked for "
        f"{m['allocation_mib_each']} MiB each; slice memory.peak "
        f"{m['slice_memory_peak'] / MIB:.1f} MiB, max sampled slice memory.current "
        f"{m['slice_memory_current_max_sampled'] / MIB:.1f} MiB, max sampled sum of the "
        f"servers {m['servers_memory_sum_max_sampled'] / MIB:.1f} MiB ({m['samples']} "
        f"samples); oom_kill slice {m['slice_oom_kill']}, per server {m['oom_kill']}; "
        f"workers {m['worker_events']}; servers {m['active_state']}"
    )
    assert m["warnings"] == []
    assert m["slice_memory_max"] == cap
    assert m["slice_memory_peak"] <= cap
    assert m["servers_memory_sum_max_sampled"] <= cap
    assert m["slice_oom_kill"] >= 1
    assert sum(m["oom_kill"].values()) >= 1
    assert m["active_state"] == {"alice": "active", "bob": "active"}


def test_check_says_enforced(bed_run: BedRun) -> None:
    m = bed_run.measurement("check")
    report = m["report"]
    print(
        f"check: exit {m['exit_status']}, cgroups {report['cgroup_mode']}, controllers "
        f"{' '.join(report['controllers'])}, memory enforced {report['memory_limit_enforced']}, "
        f"CPU enforced {report['cpu_limit_enforced']}"
    )
    assert report["limits_enforced"] is True
    assert report["ok"] is True
    assert m["exit_status"] == 0
