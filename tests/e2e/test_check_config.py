"""`sdspawner serve -check-config` checks a configuration file without disturbing the
running daemon."""

from __future__ import annotations

from hubbed import DAEMON_BINARY, Bed, Hub


def check_config(bed: Bed, text: str) -> tuple[int, str, str]:
    bed.write_file("/tmp/check-config.toml", text)
    result = bed.run(
        [DAEMON_BINARY, "serve", "-config", "/tmp/check-config.toml", "-check-config"],
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


def test_valid_config_with_warnings(bed: Bed, hub: Hub) -> None:
    daemon_pid = bed.unit_properties("sdspawner.service", "MainPID")["MainPID"]
    code, out, err = check_config(
        bed,
        '[properties]\nallow = ["CPUWeight", "cpuweight", "CPUWieght"]\n'
        '[accounts]\nrequired_group = "no-such-group"\n',
    )
    assert code == 0, err
    assert "configuration /tmp/check-config.toml is valid" in out
    assert 'write \\"CPUWeight\\"' in err or 'write "CPUWeight"' in err, err
    assert "CPUWieght" in err
    assert "no-such-group" in err
    # The running daemon was left alone.
    assert bed.unit_properties("sdspawner.service", "MainPID")["MainPID"] == daemon_pid


def test_invalid_site_property_fails(bed: Bed, hub: Hub) -> None:
    code, out, err = check_config(bed, '[site_properties]\nMemoryMax = "lots"\n')
    assert code == 1
    assert "MemoryMax" in err
    assert "lots" in err
    assert "is valid" not in out


def test_unknown_key_fails(bed: Bed, hub: Hub) -> None:
    code, _, err = check_config(bed, "[limits]\nbogus = 1\n")
    assert code == 1
    assert "unknown key limits.bogus" in err
