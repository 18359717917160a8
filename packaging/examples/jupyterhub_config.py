"""JupyterHub configuration for a hub that runs unprivileged and spawns through sdspawner.

Goes with the example jupyterhub.service: the hub runs as the system user
`jupyterhub` and keeps its state in /var/lib/jupyterhub. Install it as
/etc/jupyterhub/jupyterhub_config.py and change the authenticator and the limits.
"""

c = get_config()  # noqa: F821

# The one line that upstream's SystemdSpawner needs changed.
c.JupyterHub.spawner_class = "sdspawner"

# The hub's state, in the unit's StateDirectory=.
c.JupyterHub.db_url = "sqlite:////var/lib/jupyterhub/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "/var/lib/jupyterhub/jupyterhub_cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "/var/lib/jupyterhub/jupyterhub-proxy.pid"

# Users' servers are systemd units that outlive the hub, so a hub restart need not
# stop them. The hub finds them again through the daemon.
c.JupyterHub.cleanup_servers = False

# The public address. Put a TLS-terminating proxy in front, or set ssl_cert and ssl_key.
c.JupyterHub.bind_url = "http://127.0.0.1:8000"

# Authentication. PAMAuthenticator, JupyterHub's default, reads /etc/shadow, which the
# unprivileged user `jupyterhub` cannot. Use an authenticator that needs no root, such
# as OAuthenticator or LDAPAuthenticator, and map its user names to local accounts.
# The daemon runs each server as the local account of the same name, which must have
# a uid of at least UID_MIN (see /etc/login.defs).
c.JupyterHub.authenticator_class = "dummy"  # for a first test only: any password works
c.Authenticator.allowed_users = {"alice", "bob"}

# The spawner's options keep upstream's names; see docs/options.md.
c.SystemdSpawner.mem_limit = "2G"
c.SystemdSpawner.cpu_limit = 1.0
c.SystemdSpawner.isolate_tmp = True
c.SystemdSpawner.disable_user_sudo = True
