"""Fixtures that boot a throwaway systemd bed with the daemon and an unprivileged hub."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bed"))

from hubbed import Bed, Hub

USERS = ["alice", "bob"]

# The spawner options of the first-spawn tests; the values are read back from systemd.
SPAWNER_CONFIG = """\
c.SystemdSpawner.mem_limit = "1.5G"
c.SystemdSpawner.cpu_limit = 0.5
c.SystemdSpawner.isolate_tmp = True
c.SystemdSpawner.disable_user_sudo = True
"""


@pytest.fixture(scope="session")
def bed() -> Iterator[Bed]:
    booted = Bed.up()
    try:
        yield booted
    finally:
        booted.down()


@pytest.fixture(scope="session")
def hub(bed: Bed) -> Hub:
    # SDSPAWNER_E2E_VENV picks the JupyterHub install in the bed: /opt/jupyterhub has
    # the latest 6.x, /opt/jupyterhub5 the latest 5.x.
    venv = os.environ.get("SDSPAWNER_E2E_VENV", "/opt/jupyterhub")
    installed = Hub(bed=bed, users=USERS, venv=venv, spawner_config=SPAWNER_CONFIG)
    installed.install()
    return installed
