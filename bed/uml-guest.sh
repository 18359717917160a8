#!/bin/bash
# Run one job inside the User-Mode Linux guest that bed/uml.sh boots, then power it off.
#
# This is not run by hand. bed/uml.sh copies it into the run's guest folder on the host,
# and the guest's systemd starts it from the kernel command line (systemd.run=) as
# kernel-command-line.service, after mounting that folder with hostfs at /bed. The folder
# holds:
#   settings  shell assignments: src_host, results_host, and deadline, the Unix time in
#             whole seconds at which bed/uml.sh stops the guest
#   job       the job, an executable file
#   args      the job's arguments, each ended by a NUL byte
#
# The runner mounts the host's source folder read-only at /src and the host's results
# folder read-write at /results, starts multi-user.target, and runs the job as root with
# BED_SRC=/src and BED_RESULTS=/results. It writes into the results folder:
#   job.log       the job's standard output and error
#   exit-status   the job's exit status, 124 when it timed out
#   times         Unix times (with fractions) of the steps, as NAME=VALUE lines
#   journal.log   the guest's journal
# and powers the guest off. bed/uml.sh reports a run without exit-status as failed.
set -uo pipefail

readonly PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

step="start"

# Messages go to the service's output, which reaches the guest's console (console.log on
# the host).
log() {
    echo "bed-guest: $*" >&2
}

# Stop the guest. systemd.run_success_action=none and systemd.run_failure_action=poweroff
# on the kernel command line mean that systemd itself powers off only when this script
# fails, so every path through it ends here.
power_off() {
    sync
    systemctl --no-block poweroff || poweroff --force
}

fail() {
    log "failed at step: $step: $*"
    if mountpoint -q /results; then
        echo "$step: $*" >>/results/guest-error
        journalctl --boot --no-pager >/results/journal.log 2>&1 || true
    fi
    power_off
    exit 1
}

record_time() {
    echo "$1=$EPOCHREALTIME" >>/results/times
}

step="read /bed/settings"
src_host=""
results_host=""
deadline=""
# shellcheck source=/dev/null
source /bed/settings || fail "cannot read /bed/settings"
[[ -n $src_host && -n $results_host && $deadline =~ ^[0-9]+$ ]] ||
    fail "src_host, results_host or deadline is missing or invalid"

step="mount the results folder $results_host at /results"
mkdir -p /results
mount -t hostfs -o "$results_host" none /results || fail "mount exited with status $?"
record_time runner_started

step="mount the source folder $src_host read-only at /src"
mkdir -p /src
mount -t hostfs -o "ro,$src_host" none /src || fail "mount exited with status $?"

# The job needs D-Bus and logind, which multi-user.target pulls in. systemd.run= makes
# kernel-command-line.service the default target, so nothing else starts them.
step="start multi-user.target"
timeout 120 systemctl start multi-user.target || fail "systemctl exited with status $?"
systemctl is-active --quiet dbus.service || fail "dbus.service is not active"
record_time multi_user_ready

step="run the job"
mapfile -d '' args </bed/args || fail "cannot read /bed/args"
# Keep 30 s for the poweroff, so that the host's timeout does not cut it short.
remaining=$((deadline - EPOCHSECONDS - 30))
((remaining > 0)) || fail "no time left for the job (deadline $deadline)"
log "running the job with a timeout of ${remaining}s"
status=0
(
    cd / &&
        exec timeout --kill-after=10 "$remaining" env BED_SRC=/src BED_RESULTS=/results \
            /bed/job "${args[@]}"
) </dev/null >>/results/job.log 2>&1 || status=$?
record_time job_finished
log "the job exited with status $status"

step="save the journal"
journalctl --boot --no-pager >/results/journal.log 2>&1 || log "journalctl exited with status $?"

echo "$status" >/results/exit-status
power_off
