#!/usr/bin/env bash
# Print the path of the cached Debian bookworm root tree that bed/nspawn.sh boots, and build
# it with mmdebstrap first if the cache has no tree for the current recipe.
#
# Usage: bed/rootfs.sh
#   The last line on stdout is the tree's path. Progress and errors go to stderr.
#
# The cache lives at ${SDSPAWNER_BED_CACHE:-/var/cache/sdspawner-bed}/<hash>/root, where
# <hash> is the sha256 of this script and bed/rootfs-customize.sh, so editing either builds
# a new tree on the next run. Older trees are not removed: delete their <hash> folders by hand.
#
# Environment:
#   SDSPAWNER_BED_CACHE         cache folder (default /var/cache/sdspawner-bed)
#   SDSPAWNER_BED_MIRROR        Debian mirror (default http://deb.debian.org/debian)
#   SDSPAWNER_BED_SECURITY_MIRROR  Debian security mirror (default: the mirror's URL
#                               followed by -security). Neither mirror is part of the hash.
#   SDSPAWNER_BED_LOCK_TIMEOUT  seconds to wait for another run building the same tree
#                               (default 1800)
#   SDSPAWNER_BED_BUILD_TIMEOUT seconds after which the mmdebstrap run is stopped
#                               (default 1200)
#
# Needs root and, on the host: mmdebstrap, npm (installs configurable-http-proxy into the
# tree), coreutils and util-linux (flock).
#
# Build time was measured with `time bed/rootfs.sh` on a 2-core Debian bookworm VM that
# reaches the Debian mirror, PyPI and npm through a TLS-intercepting proxy. Four builds
# took 61, 67, 72 and 80 s, of which the /opt/jupyterhub venv took 18 to 23 s and the
# /opt/jupyterhub5 venv 13 to 17 s. The tree is about 810 MB. A cache hit took 0.02 s.
set -euo pipefail

bed_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${SDSPAWNER_BED_CACHE:-/var/cache/sdspawner-bed}
mirror=${SDSPAWNER_BED_MIRROR:-http://deb.debian.org/debian}
security_mirror=${SDSPAWNER_BED_SECURITY_MIRROR:-$mirror-security}
lock_timeout=${SDSPAWNER_BED_LOCK_TIMEOUT:-1800}
build_timeout=${SDSPAWNER_BED_BUILD_TIMEOUT:-1200}

readonly PACKAGES=(
    systemd systemd-sysv dbus libpam-systemd
    python3 python3-venv
    sudo procps iproute2 curl ca-certificates
    passwd login util-linux
    nodejs
)

step="start"
partial_tree=""

# Remove a half-built tree and name the step that failed. Runs on every exit.
clean_up() {
    local status=$?
    if ((status != 0)); then
        echo "bed: rootfs build failed at step: $step (exit status $status)" >&2
    fi
    if [[ -n "$partial_tree" && -e "$partial_tree" ]]; then
        rm -rf --one-file-system "$partial_tree"
    fi
    exit "$status"
}
trap clean_up EXIT

step="check the tools and settings"
if ((EUID != 0)); then
    echo "bed: rootfs.sh must run as root (mmdebstrap builds a tree owned by root)" >&2
    exit 1
fi
for tool in mmdebstrap npm flock sha256sum timeout; do
    if ! command -v "$tool" >/dev/null; then
        echo "bed: $tool not found: install it (see the header of $0)" >&2
        exit 1
    fi
done
for setting in SDSPAWNER_BED_LOCK_TIMEOUT="$lock_timeout" SDSPAWNER_BED_BUILD_TIMEOUT="$build_timeout"; do
    if ! [[ ${setting#*=} =~ ^[1-9][0-9]*$ ]]; then
        echo "bed: $setting is invalid: expected a whole number of seconds" >&2
        exit 1
    fi
done

step="hash the recipe"
recipe_files=("$bed_dir/rootfs.sh" "$bed_dir/rootfs-customize.sh")
hash=$(cat "${recipe_files[@]}" | sha256sum | cut -d' ' -f1)
tree_dir="$cache_root/$hash"
tree="$tree_dir/root"

if [[ -d "$tree" ]]; then
    echo "$tree"
    exit 0
fi

step="lock $tree_dir.lock"
mkdir -p "$tree_dir"
exec {lock_fd}>"$tree_dir.lock"
if ! flock -w "$lock_timeout" "$lock_fd"; then
    echo "bed: timed out after ${lock_timeout}s waiting for another build of $tree" >&2
    exit 1
fi

# Another run may have finished the tree while this one waited for the lock.
if [[ -d "$tree" ]]; then
    echo "$tree"
    exit 0
fi

# Holding the lock means that no other run is building this hash, so any partial tree
# left here is from a run that was killed before its EXIT trap could remove it.
step="remove partial trees of killed builds"
for stale in "$tree_dir"/root.partial.*; do
    [[ -e "$stale" ]] || continue
    echo "bed: removing the partial tree $stale" >&2
    rm -rf --one-file-system "$stale"
done

echo "bed: building the root tree $tree" >&2
started=$SECONDS
partial_tree="$tree_dir/root.partial.$$"

# --mode=unshare as root runs the build in its own mount namespace, so mounts made inside
# the tree go away with mmdebstrap even when it is killed. The mirror lines are given
# explicitly because without them mmdebstrap reads sources from stdin when stdin is a pipe.
step="mmdebstrap (see its output above; the customize hook names its own failed step)"
packages=$(IFS=,; echo "${PACKAGES[*]}")
build_status=0
# The hook is a sh command line that mmdebstrap runs with the tree's path as $1, so it is
# single-quoted on purpose.
# shellcheck disable=SC2016
BED_CUSTOMIZE="$bed_dir/rootfs-customize.sh" timeout --kill-after=30 "$build_timeout" mmdebstrap \
    --mode=unshare \
    --variant=apt \
    --include="$packages" \
    --customize-hook='bash "$BED_CUSTOMIZE" "$1"' \
    bookworm "$partial_tree" \
    "deb $mirror bookworm main" \
    "deb $mirror bookworm-updates main" \
    "deb $security_mirror bookworm-security main" >&2 </dev/null || build_status=$?
if ((build_status == 124)); then
    step="mmdebstrap: timed out after ${build_timeout}s (set SDSPAWNER_BED_BUILD_TIMEOUT)"
fi
if ((build_status != 0)); then
    exit "$build_status"
fi

step="rename $partial_tree to $tree"
mv -T "$partial_tree" "$tree"
partial_tree=""

echo "bed: built $tree in $((SECONDS - started))s ($(du -sh "$tree" | cut -f1))" >&2
echo "$tree"
