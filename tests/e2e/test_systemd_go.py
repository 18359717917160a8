"""Run the Go tests that need a real systemd (internal/systemd, tag bedtest) in the bed."""

from __future__ import annotations

from hubbed import Bed


def test_go_systemd_package(bed: Bed) -> None:
    result = bed.run(
        ["/src/bin/systemd-bed.test", "-test.v", "-test.count=1"], check=False, timeout=300
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--- FAIL" not in result.stdout
    assert result.stdout.count("--- PASS") >= 5
