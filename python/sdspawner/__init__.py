"""JupyterHub spawner that starts single-user servers through the sdspawner daemon.

Select it with `c.JupyterHub.spawner_class = "sdspawner"`.
"""

from .client import (
    DaemonError,
    DaemonRejectedError,
    DaemonTimeoutError,
    DaemonUnreachableError,
    SdspawnerError,
)
from .spawner import ServerNotRunningError, SystemdSpawner

__all__ = [
    "DaemonError",
    "DaemonRejectedError",
    "DaemonTimeoutError",
    "DaemonUnreachableError",
    "SdspawnerError",
    "ServerNotRunningError",
    "SystemdSpawner",
]
