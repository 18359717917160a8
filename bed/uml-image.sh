#!/usr/bin/env bash
# Print the path of the cached ext4 image that bed/uml.sh boots under User-Mode Linux, and
# build it first if the cache has no image for the current root tree, kernel and recipe.
#
# Usage: bed/uml-image.sh
#   The last line on stdout is the image's path. Progress and errors go to stderr.
#
# The image is the root tree of bed/rootfs.sh plus:
#   - the UML kernel's modules, from /usr/lib/uml/modules/<release>, so that systemd can
#     load modules such as autofs4 through libkmod;
#   - masks for units that fail under UML because the tree has no kmod binary: the kernel
#     calls /sbin/modprobe to load binfmt_misc, and kmod-static-nodes.service runs kmod.
# It is made without mounting anything: `mkfs.ext4 -d` copies a staging tree into a new
# file system. The staging tree is a hard-link copy of the cached tree, to which only new
# files are added, so the cached tree is never changed. UML boots the image read-only
# behind a copy-on-write file (see bed/uml.sh), so one image serves every run.
#
# The cache lives at ${SDSPAWNER_BED_CACHE:-/var/cache/sdspawner-bed}/uml/<key>.ext4, where
# <key> is the sha256 of the tree's hash, the UML kernel release and this script. Older
# images are not removed: delete them by hand.
#
# Environment:
#   SDSPAWNER_BED_CACHE         cache folder (default /var/cache/sdspawner-bed)
#   SDSPAWNER_BED_LOCK_TIMEOUT  seconds to wait for another run building the same image
#                               (default 1800)
#   SDSPAWNER_BED_MIRROR, ...   see bed/rootfs.sh, which builds the root tree
#
# Needs root and, on the host: user-mode-linux (linux.uml and its modules), e2fsprogs
# (mkfs.ext4 1.43 or later, for -d), coreutils and util-linux (flock), plus what
# bed/rootfs.sh needs.
#
# Build time, measured with `time bed/uml.sh image` on a 2-core Debian bookworm VM with
# e2fsprogs 1.47.0 and the 810 MB tree: 11 to 15 s, nearly all of it in mkfs.ext4. The
# image file is 4 GiB but sparse, with about 1 GB of blocks in use.
set -euo pipefail

bed_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${SDSPAWNER_BED_CACHE:-/var/cache/sdspawner-bed}
lock_timeout=${SDSPAWNER_BED_LOCK_TIMEOUT:-1800}

# Size of the file system. Blocks that no file uses take no space in the sparse image, and
# the guest's writes land in the copy-on-write file, so the free space only bounds how much
# a job can write.
readonly IMAGE_SIZE=4G

readonly MASKED_UNITS=(
    kmod-static-nodes.service
    systemd-binfmt.service
    proc-sys-fs-binfmt_misc.automount
    proc-sys-fs-binfmt_misc.mount
)

step="start"
staging=""
partial_image=""

# Remove the staging tree and a half-built image, and name the step that failed. Runs on
# every exit.
clean_up() {
    local status=$?
    if ((status != 0)); then
        echo "bed: UML image build failed at step: $step (exit status $status)" >&2
    fi
    if [[ -n "$staging" && -e "$staging" ]]; then
        rm -rf --one-file-system "$staging"
    fi
    if [[ -n "$partial_image" && -e "$partial_image" ]]; then
        rm -f "$partial_image"
    fi
    exit "$status"
}
trap clean_up EXIT

step="check the tools and settings"
if ((EUID != 0)); then
    echo "bed: uml-image.sh must run as root (the root tree and its cache belong to root)" >&2
    exit 1
fi
for tool in linux.uml mkfs.ext4 flock sha256sum; do
    if ! command -v "$tool" >/dev/null; then
        echo "bed: $tool not found: install it (see the header of $0)" >&2
        exit 1
    fi
done
if ! [[ $lock_timeout =~ ^[1-9][0-9]*$ ]]; then
    echo "bed: SDSPAWNER_BED_LOCK_TIMEOUT=$lock_timeout is invalid: expected a whole number of seconds" >&2
    exit 1
fi

step="find the UML kernel's modules"
release=$(linux.uml --version)
modules="/usr/lib/uml/modules/$release"
if [[ ! -d $modules ]]; then
    echo "bed: $modules not found: linux.uml reports release '$release'; reinstall user-mode-linux" >&2
    exit 1
fi

step="get the root tree from bed/rootfs.sh"
tree=$("$BASH" "$bed_dir/rootfs.sh" | tail -n 1)
if [[ ! -d $tree ]]; then
    echo "bed: bed/rootfs.sh printed '$tree', which is not a folder" >&2
    exit 1
fi
# bed/rootfs.sh names the tree's folder after the hash of its recipe.
tree_hash=$(basename "$(dirname "$tree")")

step="hash the recipe"
key=$({
    echo "tree $tree_hash"
    echo "kernel $release"
    cat "${BASH_SOURCE[0]}"
} | sha256sum | cut -d' ' -f1)
image_dir="$cache_root/uml"
image="$image_dir/$key.ext4"

if [[ -f $image ]]; then
    echo "$image"
    exit 0
fi

step="lock $image.lock"
mkdir -p "$image_dir"
exec {lock_fd}>"$image.lock"
if ! flock -w "$lock_timeout" "$lock_fd"; then
    echo "bed: timed out after ${lock_timeout}s waiting for another build of $image" >&2
    exit 1
fi

# Another run may have finished the image while this one waited for the lock.
if [[ -f $image ]]; then
    echo "$image"
    exit 0
fi

# Holding the lock means that no other run builds this image, so leftovers are from a run
# that was killed before its EXIT trap ran.
step="remove leftovers of killed builds"
for stale in "$image_dir/$key".staging.* "$image_dir/$key".partial.*; do
    [[ -e "$stale" ]] || continue
    echo "bed: removing $stale, left by a killed build" >&2
    rm -rf --one-file-system "$stale"
done

echo "bed: building the UML image $image" >&2
started=$SECONDS

# cp -l links files and creates new folders, so adding files to the staging tree never
# changes the cached tree. The staging tree must be on the tree's file system for that.
step="hard-link the tree to the staging tree"
staging="$image_dir/$key.staging.$$"
cp -a -l "$tree" "$staging"

step="copy the modules of kernel $release into the staging tree"
mkdir -p "$staging/usr/lib/modules"
cp -a "$modules" "$staging/usr/lib/modules/$release"

step="mask units that fail under UML"
for unit in "${MASKED_UNITS[@]}"; do
    rm -f "$staging/etc/systemd/system/$unit"
    ln -s /dev/null "$staging/etc/systemd/system/$unit"
done

step="mkfs.ext4 -d $staging"
partial_image="$image_dir/$key.partial.$$"
mkfs.ext4 -q -F -L sdbed-uml -d "$staging" "$partial_image" "$IMAGE_SIZE" >&2

step="rename $partial_image to $image"
mv -T "$partial_image" "$image"
partial_image=""

echo "bed: built $image in $((SECONDS - started))s ($(du -h "$image" | cut -f1) in use)" >&2
echo "$image"
