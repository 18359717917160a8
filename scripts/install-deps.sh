#!/usr/bin/env bash
# Install everything the build, the demo and the tests need on a Debian bookworm host:
# Debian packages, Python packages for the host's python3, Go modules and staticcheck.
# Run as root. Safe to run again.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Version of staticcheck that supports the Go release in go.mod.
readonly STATICCHECK_VERSION=v0.8.2
# Version of nfpm that `make deb` builds the Debian package with.
readonly NFPM_VERSION=v2.45.2

step() { echo "==> $*" >&2; }
fail() { echo "install-deps: step failed: $current" >&2; }
current=start
trap fail ERR

((EUID == 0)) || { echo "install-deps: run as root (apt-get and the test bed need it)" >&2; exit 1; }

current="apt-get update"
step "$current"
apt-get update -qq

# systemd-container: systemd-nspawn for the bed. mmdebstrap: builds the bed's tree.
# npm: installs configurable-http-proxy into the tree. shellcheck: lints bed/*.sh.
# user-mode-linux and e2fsprogs: the guest kernel and the image of the bed that enforces
# limits. libsystemd-dev: the headers of sd-journal, which the daemon reads logs with. The
# library itself is opened at run time, so the binary needs no libsystemd to start.
packages=(systemd-container mmdebstrap shellcheck util-linux coreutils findutils mawk
    iproute2 procps gcc libc6-dev ca-certificates user-mode-linux e2fsprogs libsystemd-dev)
# Debian's npm depends on Debian's nodejs, which conflicts with a Node.js installed from
# elsewhere (NodeSource, for one); any working npm will do.
if ! command -v npm >/dev/null; then
    packages+=(npm)
fi
current="apt-get install ${packages[*]}"
step "$current"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"

current="pip install -r requirements-dev.txt"
step "$current"
# The host's python3 must accept pip installs: a virtual environment, pyenv or conda.
# Debian's own /usr/bin/python3 refuses them (PEP 668); activate a venv first there.
python3 -m pip install --quiet -r "$repo/requirements-dev.txt"

current="go mod download"
step "$current"
(cd "$repo" && go mod download)

current="go install staticcheck"
step "$current"
GOFLAGS="" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"

current="go install nfpm"
step "$current"
GOFLAGS="" go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION"

step "dependencies installed"
