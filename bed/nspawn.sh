#!/usr/bin/env bash
# Manage throwaway systemd containers ("beds") for testing sdspawner against a real systemd.
#
# Usage:
#   bed/nspawn.sh up
#       Boot a new bed and print BED_NAME=... and BED_PID=... (the container's PID 1 as seen
#       from the host) on stdout. The same lines, with BED_ROOT and BED_CONSOLE_LOG, are
#       written to <run dir>/<name>/env.
#   bed/nspawn.sh exec [--user USER] NAME -- CMD [ARG...]
#       Run CMD inside the bed as root, or as USER, with a clean environment and / as the
#       working folder. Standard input, output and error are passed through, and the exit
#       status is CMD's. CMD joins the bed's namespaces but stays in the caller's host
#       cgroup, so the bed's systemd does not list it in any unit: use systemd-run inside
#       for that.
#   bed/nspawn.sh down NAME | --all
#       Power the bed off and remove its mount, cgroups and state. Does nothing for a bed
#       that is not up. --all tears down every bed in the run dir, for example after a crash.
#   bed/nspawn.sh with -- CMD [ARG...]
#       Boot a bed, run CMD on the host with BED_NAME, BED_PID, BED_ROOT and
#       BED_CONSOLE_LOG exported, tear the bed down (also on failure or Ctrl-C), and exit
#       with CMD's status.
#
# Environment:
#   SDSPAWNER_BED_RUN           run dir for bed state (default /run/sdspawner-bed)
#   SDSPAWNER_BED_SRC           host folder mounted read-only at /src in the bed
#                               (default: the repository root, the parent of bed/)
#   SDSPAWNER_BED_BOOT_TIMEOUT  seconds to wait for the boot (default 60)
#   SDSPAWNER_BED_DOWN_TIMEOUT  seconds to wait for the poweroff before SIGKILL (default 30)
#   SDSPAWNER_BED_CACHE, ...    see bed/rootfs.sh, which builds the root tree
#
# Needs root and, on the host: systemd-container (systemd-nspawn), util-linux (nsenter,
# setsid, mount, flock), coreutils, findutils, mawk or gawk, plus what bed/rootfs.sh needs.
#
# Each bed is an overlayfs mount on <run dir>/<name>/merged, with the cached root tree as
# its read-only lower layer and a fresh upper layer, so beds never change the cached tree
# and several can run at once. A bed shares the host's network namespace: a server that
# listens on 127.0.0.1 inside is reachable on 127.0.0.1 from the host, and ports are shared.
#
# The host does not need systemd as PID 1. This script was run on a host with the cgroup v1
# layout: name=systemd at /sys/fs/cgroup/systemd, all controllers bound to v1, and a
# controller-less cgroup2 at /sys/fs/cgroup/unified.
# NOTE: a host with only cgroup2 was not tried. There the bed cgroups are created at the
# root of /sys/fs/cgroup, where a host systemd would not expect them.
set -euo pipefail

bed_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
run_root=${SDSPAWNER_BED_RUN:-/run/sdspawner-bed}
src_dir=${SDSPAWNER_BED_SRC:-$(dirname "$bed_dir")}
boot_timeout=${SDSPAWNER_BED_BOOT_TIMEOUT:-60}
down_timeout=${SDSPAWNER_BED_DOWN_TIMEOUT:-30}

readonly CONTAINER_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Name of the cgroup, under each host hierarchy, that contains one cgroup per bed.
readonly CGROUP_PARENT=sdspawner-bed

# shellcheck source=bed/common.sh
source "$bed_dir/common.sh"

# Print the header comment of this file as help, and exit with STATUS (2 for a usage error).
usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit "$1"
}

require_root_and_tools() {
    ((EUID == 0)) || die "nspawn.sh must run as root (it mounts overlayfs and runs systemd-nspawn)"
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool not found: install it (see the header of $0)"
    done
}

validate_name() {
    [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "bed name '$1' is invalid: expected letters, digits, '.', '_' or '-'"
}

# --- processes ------------------------------------------------------------------------
# PIDs are stored with the process start time (field 22 of /proc/PID/stat, in clock ticks
# since boot), so a PID that the kernel reused for another process is never signalled.

process_start_time() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    # The command name (field 2) can contain spaces, so split after its closing parenthesis.
    stat=${stat##*) }
    local fields
    read -r -a fields <<<"$stat"
    echo "${fields[19]}"
}

# Succeed while the process recorded as "PID START_TIME" in FILE runs. A zombie counts as
# gone, because it uses no resources and its parent reaps it. Once `up` has exited, that
# parent is the host's PID 1, which took up to 2 s to reap on the test host.
recorded_process_alive() {
    local file=$1 pid start state
    [[ -r $file ]] || return 1
    read -r pid start <"$file" || return 1
    [[ $(process_start_time "$pid" 2>/dev/null) == "$start" ]] || return 1
    state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ $state != Z ]]
}

recorded_pid() {
    local pid _
    read -r pid _ <"$1"
    echo "$pid"
}

record_process() {
    local pid=$1 file=$2 start
    start=$(process_start_time "$pid") || return 1
    echo "$pid $start" >"$file"
}

# Wait until the process recorded in FILE is gone. Returns 1 on timeout.
wait_for_exit() {
    local file=$1 timeout=$2
    local deadline=$((SECONDS + timeout))
    while recorded_process_alive "$file"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# --- cgroups --------------------------------------------------------------------------
# systemd-nspawn --keep-unit puts the container in a "payload" cgroup and itself in a
# "supervisor" cgroup, both below the cgroup that it was started in. Started from the
# host's root cgroup, two beds would share one payload cgroup, so each bed's nspawn is
# started in its own cgroup under CGROUP_PARENT. These cgroups contain only the processes
# of that bed.

# Print the host hierarchies in which nspawn looks up and creates its cgroups: the cgroup2
# mount, and the name=systemd v1 hierarchy on hosts that have one.
host_cgroup_hierarchies() {
    if [[ $(stat -f -c %T /sys/fs/cgroup) == cgroup2fs ]]; then
        echo /sys/fs/cgroup
        return
    fi
    local dir
    for dir in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd; do
        if [[ -d $dir && $(stat -f -c %T "$dir") == cgroup* ]]; then
            echo "$dir"
        fi
    done
}

bed_cgroups() {
    local hierarchy
    for hierarchy in $(host_cgroup_hierarchies); do
        echo "$hierarchy/$CGROUP_PARENT/$1"
    done
}

# Remove a bed's cgroups, children first. rmdir fails on a cgroup that still has processes,
# which means something of the bed still runs.
remove_bed_cgroups() {
    local cgroup
    for cgroup in $(bed_cgroups "$1"); do
        [[ -d $cgroup ]] || continue
        if ! find "$cgroup" -depth -type d -exec rmdir {} + 2>/dev/null; then
            log "cannot remove the cgroup $cgroup: processes are still in it:"
            find "$cgroup" -name cgroup.procs -exec cat {} + >&2
            return 1
        fi
        # The parent is shared by all beds, so it stays while another bed uses it.
        rmdir "$(dirname "$cgroup")" 2>/dev/null || true
    done
}

# --- up -------------------------------------------------------------------------------

up_name=""
up_step=""

# On a failed `up`, name the step, keep a copy of the console log, and tear the bed down.
finish_up() {
    local status=$?
    trap - EXIT
    if ((status != 0)) && [[ -n $up_name ]]; then
        if ((status == 130 || status == 143)); then
            log "up was interrupted at step: $up_step"
        else
            log "up failed at step: $up_step"
        fi
        # A container that did not boot rarely reacts to the poweroff signal, so the wait
        # before SIGKILL is kept short.
        if ((down_timeout > 10)); then
            down_timeout=10
        fi
        local console="$run_root/$up_name/console.log"
        if [[ -s $console ]]; then
            local kept="${TMPDIR:-/tmp}/$up_name-console.log"
            cp "$console" "$kept"
            log "last lines of the console log (full log kept in $kept):"
            tail -n 20 "$kept" | sed 's/^/    /' >&2
        fi
        teardown "$up_name" || log "teardown of $up_name failed: run bed/nspawn.sh down $up_name"
    fi
    exit "$status"
}

# Start systemd-nspawn in the background, in the bed's own cgroups, with its console
# written to console.log. Records the nspawn process in nspawn.pid.
launch_nspawn() {
    local name=$1 state=$2
    local cgroups
    mapfile -t cgroups < <(bed_cgroups "$name")
    ((${#cgroups[@]} > 0)) || die "no cgroup hierarchy found under /sys/fs/cgroup"
    mkdir -p "${cgroups[@]}"

    # Flags, and why each is set:
    #   --boot               run the tree's systemd as PID 1.
    #   --register=no        do not register with systemd-machined: the host has no systemd
    #                        as PID 1, so there is no machined (and no D-Bus) to talk to.
    #   --keep-unit          do not ask the host's systemd for a scope unit, for the same
    #                        reason. nspawn then uses the cgroup it was started in.
    #   --directory          the overlayfs mount, so the cached tree stays unchanged.
    #   --machine            names the bed in nspawn's own messages.
    #   --hostname=sdbed     the name that /etc/hosts in the tree resolves.
    #   --console=read-only  nspawn forwards the container's console to its stdout (the
    #                        console log) and forwards no input, which suits a background
    #                        process whose stdin is /dev/null.
    #   --link-journal=no    keep the container's journal out of the host's /var/log/journal.
    #   --bind-ro            the repository at /src.
    # No --private-network: the bed must share the host's network namespace, so that
    # servers on 127.0.0.1 inside are reachable from the host.
    local flags=(
        --boot
        --register=no
        --keep-unit
        --directory="$state/merged"
        --machine="$name"
        --hostname=sdbed
        --console=read-only
        --link-journal=no
        --bind-ro="$src_dir:/src"
    )

    # Environment, and why each variable is set:
    #   SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1  give the container a pure cgroup2 /sys/fs/cgroup,
    #       as on current systemd hosts. The host's cgroup2 has no controllers (they are all
    #       bound to v1), so unit properties such as MemoryMax are accepted but not enforced.
    #   SYSTEMD_NSPAWN_LOCK=0  skip the image lock under /run/systemd/nspawn/locks on the
    #       host. Each bed has its own overlay, so there is nothing to lock.
    #   TERM=dumb  plain console output, without colour codes, in console.log.
    # env -i keeps the caller's environment, such as PIP_* settings, away from nspawn.
    #
    # setsid puts nspawn in its own session, so a Ctrl-C meant for `with` does not reach it:
    # `down` shuts the bed down in order. The subshell is not a process group leader, so
    # setsid does not fork, and $! is nspawn's PID once the execs are done.
    (
        for cgroup in "${cgroups[@]}"; do
            echo "$BASHPID" >"$cgroup/cgroup.procs"
        done
        exec setsid env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb \
            SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 SYSTEMD_NSPAWN_LOCK=0 \
            systemd-nspawn "${flags[@]}"
    ) </dev/null >>"$state/console.log" 2>&1 &
    local pid=$!
    # Without disown, bash prints a job status line when `down` kills nspawn.
    disown "$pid"
    record_process "$pid" "$state/nspawn.pid"

    # Wait for the exec chain to reach systemd-nspawn, so nspawn.pid names it.
    local deadline=$((SECONDS + 10))
    until [[ $(cat "/proc/$pid/comm" 2>/dev/null) == systemd-nspawn ]]; do
        recorded_process_alive "$state/nspawn.pid" || die "systemd-nspawn exited right after its start"
        ((SECONDS < deadline)) || die "timed out after 10s waiting for process $pid to become systemd-nspawn"
        sleep 0.05
    done
    record_process "$pid" "$state/nspawn.pid"
}

# Print the PID of the container's systemd: the child of nspawn that runs in another PID
# namespace and has executed systemd. With systemd 252, the container's PID 1 is a direct
# child of the nspawn process.
find_container_leader() {
    local nspawn_pid=$1 child
    local host_pid_ns
    host_pid_ns=$(readlink /proc/self/ns/pid)
    local children=()
    { read -r -a children <"/proc/$nspawn_pid/task/$nspawn_pid/children"; } 2>/dev/null || true
    for child in "${children[@]}"; do
        [[ $(cat "/proc/$child/comm" 2>/dev/null) == systemd ]] || continue
        [[ $(readlink "/proc/$child/ns/pid" 2>/dev/null) != "$host_pid_ns" ]] || continue
        echo "$child"
        return 0
    done
    return 1
}

# Print the output of `systemctl is-system-running` inside the bed, or "unreachable".
system_state() {
    local state
    state=$(timeout 5 nsenter --target "$1" --all --root --wd \
        /usr/bin/env -i PATH="$CONTAINER_PATH" systemctl is-system-running 2>/dev/null) || true
    echo "${state:-unreachable}"
}

cmd_up() {
    (($# == 0)) || usage 2
    require_root_and_tools systemd-nspawn nsenter setsid mount mountpoint flock timeout
    require_seconds SDSPAWNER_BED_BOOT_TIMEOUT "$boot_timeout"
    require_seconds SDSPAWNER_BED_DOWN_TIMEOUT "$down_timeout"
    [[ -d $src_dir ]] || die "SDSPAWNER_BED_SRC=$src_dir is not a folder"
    src_dir=$(cd "$src_dir" && pwd)
    # nspawn splits --bind-ro at ':', and overlayfs splits its options at ','.
    [[ $src_dir != *:* ]] || die "source folder $src_dir contains ':', which --bind-ro cannot take"

    local started=$EPOCHREALTIME
    up_step="get the root tree from bed/rootfs.sh"
    local tree
    tree=$("$BASH" "$bed_dir/rootfs.sh" | tail -n 1) || die "bed/rootfs.sh failed (see above)"
    [[ -d $tree ]] || die "bed/rootfs.sh printed '$tree', which is not a folder"

    local name state
    name="sdbed-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
    state="$run_root/$name"
    up_name=$name
    trap finish_up EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    up_step="create $state"
    [[ $tree$state != *[,:]* ]] || die "paths $tree and $state must not contain ',' or ':' (overlayfs options)"
    mkdir -p "$state/upper" "$state/work" "$state/merged"

    up_step="mount overlayfs on $state/merged"
    mount -t overlay overlay \
        -o "lowerdir=$tree,upperdir=$state/upper,workdir=$state/work" "$state/merged"

    up_step="start systemd-nspawn"
    launch_nspawn "$name" "$state"

    up_step="find the container's PID 1"
    local deadline=$((SECONDS + boot_timeout)) leader=""
    until leader=$(find_container_leader "$(recorded_pid "$state/nspawn.pid")"); do
        recorded_process_alive "$state/nspawn.pid" || die "systemd-nspawn exited during boot; console log: $state/console.log"
        ((SECONDS < deadline)) || die "boot timed out after ${boot_timeout}s waiting for the container's systemd to start; console log: $state/console.log"
        sleep 0.1
    done
    record_process "$leader" "$state/leader.pid"

    up_step="wait for systemctl is-system-running"
    local system=""
    while :; do
        system=$(system_state "$leader")
        case $system in
        running | degraded) break ;;
        maintenance | stopping)
            die "the container's systemd is '$system' instead of booting; console log: $state/console.log"
            ;;
        esac
        recorded_process_alive "$state/nspawn.pid" || die "systemd-nspawn exited during boot; console log: $state/console.log"
        ((SECONDS < deadline)) || die "boot timed out after ${boot_timeout}s waiting for systemctl is-system-running (last output: $system); console log: $state/console.log"
        sleep 0.2
    done
    if [[ $system == degraded ]]; then
        log "$name booted degraded; failed units:"
        nsenter --target "$leader" --all --root --wd /usr/bin/env -i PATH="$CONTAINER_PATH" \
            systemctl --failed --no-legend --no-pager >&2 || true
    fi

    up_step="write $state/env"
    {
        printf 'BED_NAME=%q\n' "$name"
        printf 'BED_PID=%q\n' "$leader"
        printf 'BED_ROOT=%q\n' "$state/merged"
        printf 'BED_CONSOLE_LOG=%q\n' "$state/console.log"
    } >"$state/env"

    trap - EXIT INT TERM
    log "$name is $system after $(elapsed_since "$started")s (leader PID $leader)"
    echo "BED_NAME=$name"
    echo "BED_PID=$leader"
}

elapsed_since() {
    local now=$EPOCHREALTIME
    awk -v a="$1" -v b="$now" 'BEGIN { printf "%.1f", b - a }'
}

# --- exec -----------------------------------------------------------------------------

cmd_exec() {
    local user="" name=""
    while (($# > 0)); do
        case $1 in
        --user)
            (($# >= 2)) || usage 2
            user=$2
            shift 2
            ;;
        --user=*)
            user=${1#--user=}
            shift
            ;;
        --)
            shift
            break
            ;;
        -*) usage 2 ;;
        *)
            [[ -z $name ]] || usage 2
            name=$1
            shift
            ;;
        esac
    done
    [[ -n $name ]] || usage 2
    (($# > 0)) || die "exec needs a command after --"
    validate_name "$name"
    require_root_and_tools nsenter

    local state="$run_root/$name"
    [[ -r $state/leader.pid ]] || die "bed $name is not up (no $state/leader.pid)"
    recorded_process_alive "$state/leader.pid" || die "bed $name is not running (its PID 1 is gone): run bed/nspawn.sh down $name"
    local leader
    leader=$(recorded_pid "$state/leader.pid")

    # env -i drops the caller's environment, so host settings such as PIP_FIND_LINKS do not
    # reach the bed.
    local inner_command=()
    if [[ -z $user ]]; then
        inner_command=(/usr/bin/env -i "TERM=${TERM:-dumb}" LANG=C.UTF-8 PATH="$CONTAINER_PATH"
            HOME=/root USER=root LOGNAME=root "$@")
    else
        # setpriv switches uid, gid and supplementary groups without PAM, so no login
        # session is opened. --reset-env sets HOME, SHELL, USER and LOGNAME from the user's
        # passwd entry. `id -g` fails with "no such user" for an unknown USER.
        # shellcheck disable=SC2016
        inner_command=(/usr/bin/env -i "TERM=${TERM:-dumb}" BED_PATH="$CONTAINER_PATH" /bin/sh -c '
            user=$1
            shift
            gid=$(id -g -- "$user") || exit 1
            exec setpriv --reuid="$user" --regid="$gid" --init-groups --reset-env \
                /usr/bin/env LANG=C.UTF-8 PATH="$BED_PATH" "$@"
        ' sh "$user" "$@")
    fi
    # nsenter forks into the container's PID namespace, waits for the command and exits
    # with its status (or dies from the same signal).
    exec nsenter --target "$leader" --all --root --wd -- "${inner_command[@]}"
}

# --- down -----------------------------------------------------------------------------

# Power a bed off and remove everything `up` created for it. Succeeds for a bed that is
# already gone.
teardown() {
    local name=$1
    local state="$run_root/$name"

    if [[ ! -d $state ]]; then
        local leftover
        for leftover in $(bed_cgroups "$name"); do
            if [[ -d $leftover ]]; then
                remove_bed_cgroups "$name" || return 1
                log "removed the leftover cgroups of $name"
                return 0
            fi
        done
        log "$name is not up: nothing to tear down"
        return 0
    fi

    # Serialize teardowns of one bed, for example a `with` trap and a `down --all`.
    local lock_fd
    exec {lock_fd}<"$state"
    flock -w $((down_timeout + 30)) "$lock_fd" || {
        log "timed out waiting for another teardown of $name"
        return 1
    }

    stop_container "$name" "$state" || return 1

    if mountpoint -q "$state/merged"; then
        local tries=0
        until umount "$state/merged"; do
            tries=$((tries + 1))
            if ((tries >= 10)); then
                log "unmounting $state/merged failed (still in use?); run bed/nspawn.sh down $name again"
                return 1
            fi
            sleep 0.5
        done
    fi

    remove_bed_cgroups "$name" || return 1

    # nspawn creates this folder for `machinectl bind` and removes it on a clean exit, but
    # not after SIGKILL.
    if [[ -d /run/systemd/nspawn/propagate/$name ]]; then
        rm -rf --one-file-system "/run/systemd/nspawn/propagate/$name"
    fi

    if mountpoint -q "$state/merged"; then
        log "$state/merged is still mounted; not removing $state"
        return 1
    fi
    rm -rf --one-file-system "$state"
    exec {lock_fd}<&-
    log "$name is down"
}

# Stop a bed's container: poweroff through its systemd, then SIGKILL after down_timeout.
# This also stops a bed whose nspawn was killed, because the container's PID 1 and its
# processes keep running without nspawn.
stop_container() {
    local name=$1 state=$2
    local nspawn_file="$state/nspawn.pid" leader_file="$state/leader.pid"

    if recorded_process_alive "$leader_file"; then
        # SIGRTMIN+4 makes systemd start poweroff.target, with no D-Bus call needed.
        kill -s RTMIN+4 "$(recorded_pid "$leader_file")" 2>/dev/null || true
    elif recorded_process_alive "$nspawn_file"; then
        # Before the container's systemd started, SIGTERM makes nspawn stop the container.
        kill -TERM "$(recorded_pid "$nspawn_file")" 2>/dev/null || true
    else
        return 0
    fi

    local deadline=$((SECONDS + down_timeout))
    while recorded_process_alive "$nspawn_file" || recorded_process_alive "$leader_file"; do
        if ((SECONDS >= deadline)); then
            kill_container "$name" "$state"
            return
        fi
        sleep 0.2
    done
}

# Send SIGKILL to a bed's container and its nspawn, after a poweroff timed out.
kill_container() {
    local name=$1 state=$2
    local nspawn_file="$state/nspawn.pid" leader_file="$state/leader.pid"
    log "poweroff of $name timed out after ${down_timeout}s; sending SIGKILL to the container's PID 1 and to systemd-nspawn"

    # Killing a PID namespace's init kills every process in that namespace.
    if recorded_process_alive "$leader_file"; then
        kill -KILL "$(recorded_pid "$leader_file")" 2>/dev/null || true
    fi
    if recorded_process_alive "$nspawn_file"; then
        kill -KILL "$(recorded_pid "$nspawn_file")" 2>/dev/null || true
    fi

    if ! wait_for_exit "$leader_file" 10 || ! wait_for_exit "$nspawn_file" 10; then
        log "the container's PID 1 or systemd-nspawn of $name is still running after SIGKILL"
        return 1
    fi
}

cmd_down() {
    (($# == 1)) || usage 2
    require_root_and_tools mountpoint umount flock
    require_seconds SDSPAWNER_BED_DOWN_TIMEOUT "$down_timeout"
    if [[ $1 == --all ]]; then
        local dir failed=0
        for dir in "$run_root"/*/; do
            [[ -d $dir ]] || continue
            teardown "$(basename "$dir")" || failed=1
        done
        # Cgroups of beds whose state folder is already gone.
        local hierarchy cgroup
        for hierarchy in $(host_cgroup_hierarchies); do
            for cgroup in "$hierarchy/$CGROUP_PARENT"/*/; do
                [[ -d $cgroup ]] || continue
                teardown "$(basename "$cgroup")" || failed=1
            done
        done
        return "$failed"
    fi
    validate_name "$1"
    if ! teardown "$1"; then
        die "down $1 failed (see above); state left in $run_root/$1"
    fi
}

# --- with -----------------------------------------------------------------------------

with_name=""

finish_with() {
    local status=$?
    trap - EXIT
    if [[ -n $with_name ]]; then
        if ! "$BASH" "$bed_dir/nspawn.sh" down "$with_name"; then
            log "teardown of $with_name failed"
            ((status != 0)) || status=1
        fi
    fi
    exit "$status"
}

cmd_with() {
    [[ ${1:-} == -- ]] || usage 2
    shift
    (($# > 0)) || die "with needs a command after --"

    trap finish_with EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    local output
    output=$("$BASH" "$bed_dir/nspawn.sh" up) || die "up failed (see above)"
    with_name=$(sed -n 's/^BED_NAME=//p' <<<"$output")
    [[ -n $with_name ]] || die "up printed no BED_NAME line"

    # shellcheck source=/dev/null
    source "$run_root/$with_name/env"
    export BED_NAME BED_PID BED_ROOT BED_CONSOLE_LOG

    local status=0
    "$@" || status=$?
    exit "$status"
}

main() {
    (($# > 0)) || usage 2
    local subcommand=$1
    shift
    case $subcommand in
    up) cmd_up "$@" ;;
    exec) cmd_exec "$@" ;;
    down) cmd_down "$@" ;;
    with) cmd_with "$@" ;;
    -h | --help | help) usage 0 ;;
    *) usage 2 ;;
    esac
}

main "$@"
