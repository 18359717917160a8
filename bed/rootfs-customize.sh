#!/usr/bin/env bash
# Customize the bed's root tree: JupyterHub venvs, configurable-http-proxy, and boot trimming.
#
# bed/rootfs.sh runs this as an mmdebstrap --customize-hook, with the tree's path as $1.
# mmdebstrap has mounted /proc, /sys and /dev inside the tree and copied the host's
# /etc/resolv.conf, so `chroot "$1"` can run the tree's own programs with network access.
# This file is part of the recipe hash in bed/rootfs.sh: editing it makes the next run
# build a new tree.
set -euo pipefail

root=${1:?usage: rootfs-customize.sh ROOT_TREE}

# Pins for what is fetched from PyPI and the npm registry. Changing one changes this file's
# hash, so the next run builds a new tree.
readonly JUPYTERHUB6_SPEC='jupyterhub>=6,<7'
readonly JUPYTERHUB5_SPEC='jupyterhub>=5,<6'
# configurable-http-proxy is pinned to the newest 5.x whose dependencies all declare support
# for bookworm's nodejs 18.20. Release 5.2.0 declares "node": ">= 20", and 5.3.0 depends on
# commander 15, which declares "node": ">=22.12.0". A hand check found that 5.3.0 still
# starts on node 18, takes a route through its REST API and proxies a request.
readonly CHP_SPEC='configurable-http-proxy@5.1.0'

# Units that cannot work, or only add noise and boot time, in a container that lives for
# minutes. Masking (a symlink to /dev/null) keeps a unit from starting even when something
# enables it or pulls it in.
readonly MASKED_UNITS=(
    # No one logs in on the container console, and nspawn's --console=read-only forwards no
    # input to it.
    getty.target
    console-getty.service
    container-getty@.service
    getty@.service
    serial-getty@.service
    # Debian does not enable these, but the container shares the host's network namespace,
    # where systemd-networkd would manage the host's interfaces.
    systemd-networkd.service
    systemd-networkd.socket
    systemd-networkd-wait-online.service
    # Periodic maintenance, enabled by the apt, dpkg, util-linux and systemd packages.
    apt-daily.timer
    apt-daily-upgrade.timer
    apt-daily.service
    apt-daily-upgrade.service
    dpkg-db-backup.timer
    fstrim.timer
    systemd-tmpfiles-clean.timer
)

# Steps update this, so the ERR trap can name the step that failed.
step="start"
build_ca="/tmp/bed-build-ca.pem"

report_failure() {
    echo "bed: rootfs customize step failed: $step" >&2
}
trap report_failure ERR

remove_build_ca() {
    rm -f "$root$build_ca"
}
trap remove_build_ca EXIT

# Run a command inside the tree with a clean environment. mmdebstrap passes the caller's
# environment to hooks, and host settings such as PIP_FIND_LINKS=/opt/wheels would point
# pip at host paths that do not exist in the tree.
run_in_tree() {
    chroot "$root" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 "$@"
}

# Run pip inside the tree. The host's CA bundle is copied in only for the build, because
# the host may reach PyPI through a TLS proxy whose CA the tree's own bundle lacks.
# The EXIT trap removes the copy, so the cached tree trusts only Debian's CAs.
run_pip_in_tree() {
    local venv=$1
    shift
    local cert_env=()
    if [[ -s "$root$build_ca" ]]; then
        cert_env=(PIP_CERT="$build_ca")
    fi
    run_in_tree "${cert_env[@]}" PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
        PIP_DEFAULT_TIMEOUT=120 "$venv/bin/pip" install --no-input --quiet "$@"
}

# Create a venv at VENV with the tree's python3 and install the requirements into it.
make_venv() {
    local venv=$1
    shift
    local started=$SECONDS
    step="create venv $venv"
    run_in_tree python3 -m venv "$venv"
    step="pip install into $venv: $*"
    run_pip_in_tree "$venv" "$@"
    echo "bed: venv $venv took $((SECONDS - started))s and $(du -sh "$root$venv" | cut -f1)" >&2
}

step="copy the host CA bundle into the tree"
if [[ -s /etc/ssl/certs/ca-certificates.crt ]]; then
    cp /etc/ssl/certs/ca-certificates.crt "$root$build_ca"
fi

step="resolve pypi.org inside the tree (check the host's /etc/resolv.conf)"
run_in_tree python3 -c 'import socket; socket.getaddrinfo("pypi.org", 443)'

make_venv /opt/jupyterhub "$JUPYTERHUB6_SPEC" jupyter-server httpx hatchling pytest
# pytest is added here too, so that tests can run against JupyterHub 5 with this venv alone.
make_venv /opt/jupyterhub5 "$JUPYTERHUB5_SPEC" jupyter-server httpx hatchling pytest

step="link the JupyterHub 6 commands into /usr/local/bin"
for command in jupyterhub jupyterhub-singleuser jupyter jupyter-server; do
    ln -sfn "/opt/jupyterhub/bin/$command" "$root/usr/local/bin/$command"
done

# npm runs on the host because bookworm's npm package depends on about 330 node-* packages.
# configurable-http-proxy is plain JavaScript, so the host's node version does not matter
# for the install, and the check below runs it with the tree's node.
step="npm install $CHP_SPEC into /opt/chp (on the host)"
mkdir -p "$root/opt/chp"
npm install --prefix "$root/opt/chp" --omit=dev --no-audit --no-fund --no-update-notifier \
    "$CHP_SPEC" >&2
ln -sfn /opt/chp/node_modules/.bin/configurable-http-proxy \
    "$root/usr/local/bin/configurable-http-proxy"

step="set the hostname"
echo sdbed >"$root/etc/hostname"
# sudo looks up the hostname and warns on every call when it cannot resolve it.
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	sdbed
::1		localhost ip6-localhost ip6-loopback
EOF

step="mask units that do not belong in the container"
for unit in "${MASKED_UNITS[@]}"; do
    ln -sfn /dev/null "$root/etc/systemd/system/$unit"
done

step="keep the journal in memory"
mkdir -p "$root/etc/systemd/journald.conf.d"
cat >"$root/etc/systemd/journald.conf.d/sdspawner-bed.conf" <<'EOF'
# A bed lives for minutes, and its overlay upper layer is deleted on `down`.
[Journal]
Storage=volatile
EOF

# The tree must not carry the build host's DNS setup. systemd-nspawn's default
# --resolv-conf=auto puts the host's resolv.conf in place when the container boots.
step="reset /etc/resolv.conf"
: >"$root/etc/resolv.conf"

step="check the installed commands with the tree's programs"
run_in_tree jupyterhub --version
run_in_tree jupyterhub-singleuser --version
run_in_tree jupyter-server --version
run_in_tree /opt/jupyterhub5/bin/jupyterhub --version
run_in_tree node --version
run_in_tree configurable-http-proxy --version
