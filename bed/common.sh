# Helpers shared by the bed scripts; source it after setting bed_dir.
# shellcheck shell=bash

log() {
    echo "bed: $*" >&2
}

die() {
    log "$*"
    exit 1
}

# Exit with an error unless $2, the value of the setting named $1, is a positive whole
# number of seconds.
require_seconds() {
    [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1=$2 is invalid: expected a whole number of seconds"
}
