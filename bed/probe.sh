#!/bin/sh
# Report a server process's view from inside its unit, then run the real server.
# The end-to-end tests set Spawner.cmd to this script and read the PROBE lines from the
# unit's journal. SDSPAWNER_PROBE_WRITE lists directories to try writing to.
echo "PROBE uid=$(id -u)"
echo "PROBE user=$(id -un 2>/dev/null)"
echo "PROBE cwd=$(pwd)"
echo "PROBE home=$HOME"
echo "PROBE shell=$SHELL"
echo "PROBE path=$PATH"
echo "PROBE mem_limit=${MEM_LIMIT:-}"
echo "PROBE cpu_limit=${CPU_LIMIT:-}"
if sudo -n true 2>/dev/null; then echo "PROBE sudo=ok"; else echo "PROBE sudo=denied"; fi
for dir in ${SDSPAWNER_PROBE_WRITE:-}; do
    if touch "$dir/probe-$$" 2>/dev/null; then
        rm -f "$dir/probe-$$"
        echo "PROBE write:$dir=ok"
    else
        echo "PROBE write:$dir=denied"
    fi
done
echo "PROBE dev=$(find /dev -mindepth 1 -maxdepth 1 -printf '%f ')"
echo "PROBE tmp=$(find /tmp -mindepth 1 -maxdepth 1 -printf '%f ')"
if [ -n "${SDSPAWNER_PROBE_KEEP:-}" ]; then
    if [ -e "$HOME/keep" ]; then echo "PROBE keep=found"; else echo "PROBE keep=new"; fi
    date > "$HOME/keep"
fi
exec jupyterhub-singleuser "$@"
