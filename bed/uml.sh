#!/usr/bin/env bash
# Run a job as root inside a throwaway User-Mode Linux (UML) guest that boots the test bed's
# Debian tree with systemd, and collect its output on the host.
#
# Usage:
#   bed/uml.sh run [--results DIR] -- JOB [ARG...]
#       Boot a guest, run the executable file JOB with ARGs as root after
#       multi-user.target is up, power the guest off, and exit with JOB's exit status. The
#       guest always goes away, also on failure, timeout or Ctrl-C. The last line on stdout
#       is the results folder. The job's output is copied to stderr while it runs.
#   bed/uml.sh image
#       Build the cached image if needed and print its path (see bed/uml-image.sh).
#
# Inside the guest, the job runs with / as its working folder, and two host folders are
# mounted:
#   /src       the source folder (default: the repository root), read-only through hostfs
#   /results   the results folder, read-write through hostfs; BED_RESULTS names it
#
# --results DIR names the results folder, which must be empty or missing. Without it, the
# run creates a new folder under /tmp. The folder ends up holding what the job wrote and:
#   job.log      the job's standard output and error
#   exit-status  the job's exit status, 124 when it ran out of time
#   console.log  the guest's console: kernel and systemd messages
#   journal.log  the guest's journal
#   times        Unix times of the guest's steps (see bed/uml-guest.sh)
#
# Unlike the systemd-nspawn bed (bed/nspawn.sh), the guest runs its own kernel, so its
# systemd gets the cgroup v2 cpu, io, memory and pids controllers, and the kernel enforces
# the units' memory and CPU limits (tests/uml checks both). The guest has one CPU and no
# network interface besides loopback.
#
# Environment:
#   SDSPAWNER_UML_TIMEOUT       seconds from the start of the boot until the guest is
#                               stopped, job included (default 600)
#   SDSPAWNER_UML_BOOT_TIMEOUT  seconds until multi-user.target must be up (default 120)
#   SDSPAWNER_UML_MEM           guest memory, as UML's mem= takes it (default 1024M). UML
#                               keeps it in an unlinked temporary file, by default on
#                               /dev/shm (console.log names the folder), so it takes host
#                               memory for the pages that the guest has touched
#   SDSPAWNER_UML_RUN           folder for the runs' state (default /var/tmp); each run's
#                               copy-on-write file grows there by what the guest writes
#   SDSPAWNER_BED_SRC           host folder seen at /src (default: the parent of bed/)
#   SDSPAWNER_BED_CACHE, ...    see bed/uml-image.sh and bed/rootfs.sh
#
# Needs root and, on the host: user-mode-linux, e2fsprogs, util-linux (setsid, flock),
# coreutils, procps (ps), plus what bed/rootfs.sh needs. No hardware virtualisation is
# needed: UML runs the guest kernel as ordinary host processes.
#
# Host paths go into the kernel command line and into hostfs mount options, so the source,
# results and state folders must consist of letters, digits and . _ / + - only.
# NOTE: hostfs mounts are not confined to these folders (no hostfs= on the command line,
# because UML takes only one such root): root in the guest could mount any host path.
# The guest runs only the job it was given.
set -euo pipefail

bed_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src_dir=${SDSPAWNER_BED_SRC:-$(dirname "$bed_dir")}
timeout=${SDSPAWNER_UML_TIMEOUT:-600}
boot_timeout=${SDSPAWNER_UML_BOOT_TIMEOUT:-120}
memory=${SDSPAWNER_UML_MEM:-1024M}
run_parent=${SDSPAWNER_UML_RUN:-/var/tmp}

# Seconds that UML gets to exit after SIGTERM before the script sends SIGKILL. In a test,
# UML stopped its host processes and exited within a second of SIGTERM.
readonly TERM_GRACE=5

# shellcheck source=bed/common.sh
source "$bed_dir/common.sh"

# Print the header comment of this file as help, and exit with STATUS (2 for a usage error).
usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit "$1"
}

require_plain_path() {
    [[ $2 =~ ^[A-Za-z0-9._/+-]+$ ]] || die "$1 $2 is invalid: it may contain only letters, digits and . _ / + - (it goes into the kernel command line)"
}

elapsed() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'
}

# --- the UML processes -----------------------------------------------------------------
# UML runs as a main process and helper processes: one per guest address space, and I/O
# threads. setsid makes the main process the leader of a new process group that contains
# all of them, and it is their parent. The script signals only these PIDs.

uml_pid=""

# Print the PIDs of the UML processes that still run, zombies left out.
uml_processes() {
    [[ -n $uml_pid ]] || return 0
    ps -e -o pid=,pgid=,stat=,comm= | awk -v group="$uml_pid" \
        '$2 == group && $3 !~ /^Z/ && $4 == "linux.uml" { print $1 }'
}

uml_running() {
    [[ -n $(uml_processes) ]]
}

# Stop the guest from the host: SIGTERM to the main process, which makes UML end its
# helper processes and exit, then SIGKILL to every UML process still running.
stop_uml() {
    uml_running || return 0
    log "stopping the guest (UML main process $uml_pid)"
    kill -TERM "$uml_pid" 2>/dev/null || true
    local deadline=$((SECONDS + TERM_GRACE))
    while uml_running && ((SECONDS < deadline)); do
        sleep 0.2
    done
    uml_running || return 0

    local pid
    kill -STOP "$uml_pid" 2>/dev/null || true
    for pid in $(uml_processes); do
        log "UML process $pid did not exit after SIGTERM: sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    done
    deadline=$((SECONDS + 10))
    while uml_running && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if uml_running; then
        log "UML processes still running after SIGKILL: $(uml_processes | tr '\n' ' ')"
        return 1
    fi
}

# --- run ------------------------------------------------------------------------------

step="start"
state=""
tail_pid=""

# Stop the guest and the log copy, remove the run's state, and name the failed step.
# Runs on every exit of `run`.
finish_run() {
    local status=$?
    trap - EXIT
    # A second Ctrl-C, or the SIGTERM that a test runner sends after it, must not cut the
    # teardown short.
    trap '' INT TERM
    if ((status != 0)) && [[ $step != "done" ]]; then
        if ((status == 130 || status == 143)); then
            log "run was interrupted at step: $step"
        else
            log "run failed at step: $step (exit status $status)"
        fi
    fi
    stop_uml || status=1
    if [[ -n $tail_pid ]] && kill -0 "$tail_pid" 2>/dev/null; then
        kill -TERM "$tail_pid" 2>/dev/null || true
        wait "$tail_pid" 2>/dev/null || true
    fi
    if [[ -n $state && -d $state ]]; then
        rm -rf --one-file-system "$state"
    fi
    exit "$status"
}

# Print the last lines of a log file to stderr, indented.
show_tail() {
    local file=$1 lines=$2
    [[ -s $file ]] || return 0
    log "last lines of $file:"
    tail -n "$lines" "$file" | sed 's/^/    /' >&2
}

# Read NAME's Unix time from the guest's times file, or print nothing.
guest_time() {
    sed -n "s/^$1=//p" "$results/times" 2>/dev/null | tail -n 1
}

cmd_run() {
    local results=""
    while (($# > 0)); do
        case $1 in
        --results)
            (($# >= 2)) || usage 2
            results=$2
            shift 2
            ;;
        --results=*)
            results=${1#--results=}
            shift
            ;;
        --)
            shift
            break
            ;;
        *) usage 2 ;;
        esac
    done
    (($# > 0)) || die "run needs a job after --"
    local job=$1
    shift

    ((EUID == 0)) || die "uml.sh must run as root (the image cache and the root tree belong to root)"
    local tool
    for tool in linux.uml setsid ps awk; do
        command -v "$tool" >/dev/null || die "$tool not found: install it (see the header of $0)"
    done
    require_seconds SDSPAWNER_UML_TIMEOUT "$timeout"
    require_seconds SDSPAWNER_UML_BOOT_TIMEOUT "$boot_timeout"
    [[ $memory =~ ^[1-9][0-9]*[KkMmGg]?$ ]] || die "SDSPAWNER_UML_MEM=$memory is invalid: give a size such as 1024M"
    [[ -f $job && -x $job ]] || die "job $job is not an executable file"
    [[ -d $src_dir ]] || die "SDSPAWNER_BED_SRC=$src_dir is not a folder"
    [[ -d $run_parent ]] || die "SDSPAWNER_UML_RUN=$run_parent is not a folder"
    src_dir=$(cd "$src_dir" && pwd)
    run_parent=$(cd "$run_parent" && pwd)
    require_plain_path "source folder" "$src_dir"
    require_plain_path "state folder" "$run_parent"

    trap finish_run EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    step="create the results folder"
    if [[ -z $results ]]; then
        results=$(mktemp -d /tmp/sdspawner-uml-results.XXXXXX)
    else
        mkdir -p "$results"
        results=$(cd "$results" && pwd)
        [[ -z $(ls -A "$results") ]] || die "results folder $results is not empty"
    fi
    require_plain_path "results folder" "$results"
    # The guest writes as its root, which is the host's root too, so the folder needs no
    # other permissions.
    : >"$results/job.log"

    step="get the image from bed/uml-image.sh"
    local image
    image=$("$BASH" "$bed_dir/uml-image.sh" | tail -n 1) || die "bed/uml-image.sh failed (see above)"
    [[ -f $image ]] || die "bed/uml-image.sh printed '$image', which is not a file"
    require_plain_path "image" "$image"

    step="create the state folder"
    state=$(mktemp -d "$run_parent/sdspawner-uml.XXXXXX")
    mkdir "$state/guest" "$state/uml"
    cp "$bed_dir/uml-guest.sh" "$state/guest/runner.sh"
    cp "$job" "$state/guest/job"
    chmod 0755 "$state/guest/job"
    if (($# > 0)); then
        printf '%s\0' "$@" >"$state/guest/args"
    else
        : >"$state/guest/args"
    fi
    local started=$EPOCHREALTIME
    local deadline=$((EPOCHSECONDS + timeout))
    {
        printf 'src_host=%q\n' "$src_dir"
        printf 'results_host=%q\n' "$results"
        printf 'deadline=%q\n' "$deadline"
    } >"$state/guest/settings"

    # Kernel arguments, and why each is set:
    #   umid, uml_dir    keep UML's pid file and control socket in the state folder,
    #                    instead of ~/.uml, so that they go away with it.
    #   mem              the guest's memory.
    #   ubd0             the root disk: writes go to a new copy-on-write file and the
    #                    cached image stays unchanged, so runs can share it.
    #   con, con0        no console windows; console 0 (the kernel's and systemd's
    #                    messages) goes to console.log through UML's stdout.
    #   noreboot         a reboot of the guest ends UML instead of booting again.
    #   systemd.unified_cgroup_hierarchy=1  cgroup v2 with all controllers, which is
    #                    bookworm's default, set here so that the bed does not depend on it.
    #   systemd.run      run the runner as kernel-command-line.service after
    #                    sysinit.target. The guest folder must be mounted first, so the
    #                    command mounts it at /bed with hostfs.
    #   systemd.run_success_action=none  the default, poweroff, would power off as soon
    #                    as the runner exits; the runner saves the journal and then
    #                    powers off itself.
    #   systemd.run_failure_action=poweroff  power off when the runner fails.
    local uml_args=(
        "umid=sdbed" "uml_dir=$state/uml"
        "mem=$memory"
        "ubd0=$state/root.cow,$image" root=/dev/ubda rw
        con=null "con0=null,fd:1"
        noreboot
        systemd.unified_cgroup_hierarchy=1
        "systemd.run=\"/bin/sh -ec 'mkdir -p /bed && mount -t hostfs -o ro,$state/guest none /bed && exec /bin/bash /bed/runner.sh'\""
        systemd.run_success_action=none
        systemd.run_failure_action=poweroff
    )

    step="boot the guest"
    log "booting the UML guest (mem=$memory, timeout ${timeout}s); console log: $results/console.log"
    # Without job control, this background process is not a process group leader, so
    # setsid does not fork and $! is UML's main process.
    setsid linux.uml "${uml_args[@]}" </dev/null >"$results/console.log" 2>&1 &
    uml_pid=$!
    # A forked setsid would make $! the wrong process, and the teardown would miss UML.
    sleep 0.2
    if [[ $(ps -o pgid= -p "$uml_pid" 2>/dev/null | tr -d ' ') != "$uml_pid" ]] && kill -0 "$uml_pid" 2>/dev/null; then
        die "UML process $uml_pid is not the leader of its own process group"
    fi

    tail -F --pid="$uml_pid" -n +1 "$results/job.log" >&2 2>/dev/null &
    tail_pid=$!

    step="wait for multi-user.target in the guest"
    local boot_deadline=$((SECONDS + boot_timeout))
    while [[ -z $(guest_time multi_user_ready) ]]; do
        if ! kill -0 "$uml_pid" 2>/dev/null || [[ -e $results/guest-error ]]; then
            show_tail "$results/console.log" 30
            die "the guest stopped during the boot (console log: $results/console.log)"
        fi
        if ((SECONDS >= boot_deadline)); then
            show_tail "$results/console.log" 30
            die "boot timed out after ${boot_timeout}s (set SDSPAWNER_UML_BOOT_TIMEOUT; console log: $results/console.log)"
        fi
        sleep 0.5
    done
    log "the guest is up after $(elapsed "$started" "$(guest_time multi_user_ready)")s; running the job"

    step="wait for the job and the poweroff"
    while kill -0 "$uml_pid" 2>/dev/null; do
        if ((EPOCHSECONDS >= deadline)); then
            show_tail "$results/console.log" 30
            die "timed out after ${timeout}s (set SDSPAWNER_UML_TIMEOUT; console log: $results/console.log)"
        fi
        sleep 0.5
    done
    local uml_status=0
    wait "$uml_pid" || uml_status=$?
    local stopped=$EPOCHREALTIME
    # UML ends its helper processes as it exits, and stop_uml in the EXIT trap checks that.
    # tail exits within a second of UML, after copying the job's last lines.
    wait "$tail_pid" 2>/dev/null || true
    tail_pid=""

    step="read the job's exit status"
    if [[ -e $results/guest-error ]]; then
        show_tail "$results/console.log" 30
        die "the guest runner failed: $(cat "$results/guest-error")"
    fi
    if [[ ! -s $results/exit-status ]]; then
        show_tail "$results/console.log" 30
        die "the guest stopped (UML exit status $uml_status) without the job's exit status; console log: $results/console.log"
    fi
    local job_status
    job_status=$(cat "$results/exit-status")
    [[ $job_status =~ ^[0-9]+$ ]] || die "$results/exit-status contains '$job_status', not an exit status"

    local job_started job_finished
    job_started=$(guest_time multi_user_ready)
    job_finished=$(guest_time job_finished)
    log "timings: boot $(elapsed "$started" "$job_started")s, job $(elapsed "$job_started" "$job_finished")s, poweroff $(elapsed "$job_finished" "$stopped")s, total $(elapsed "$started" "$stopped")s"
    if ((job_status == 124)); then
        log "the job timed out inside the guest: it gets SDSPAWNER_UML_TIMEOUT less the boot and 30 s for the poweroff"
    fi
    log "the job exited with status $job_status; results in $results"
    echo "$results"
    step="done"
    return "$job_status"
}

cmd_image() {
    (($# == 0)) || usage 2
    "$BASH" "$bed_dir/uml-image.sh"
}

main() {
    (($# > 0)) || usage 2
    local subcommand=$1
    shift
    case $subcommand in
    run) cmd_run "$@" ;;
    image) cmd_image "$@" ;;
    -h | --help | help) usage 0 ;;
    *) usage 2 ;;
    esac
}

main "$@"
