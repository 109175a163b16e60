#!/usr/bin/env bash
# Stop the local test SLURM that tests/slurm/up.sh brought up.
#
# Only daemons whose PIDs up.sh recorded in $ACTPIPE_SLURM_STATE/pids/ (default
# /tmp/actpipe-slurm) are stopped, and only while each PID still runs the program recorded for
# it. Jobs still queued or running on that test cluster are cancelled first. Everything else
# (a munged that up.sh found running, packages, configuration, the accounting data) is left as
# it is, so the next up.sh is quick. Safe to run when nothing is up.

set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/state.sh"
say() { echo "down.sh: $*"; }

if [[ ! -d $STATE/pids ]]; then
    say "nothing to stop (no $STATE/pids)"
    exit 0
fi

# Cancel the test cluster's jobs while its controller (ours) still runs.
if pid_of_ours slurmctld >/dev/null; then
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null | xargs || true)
    if [[ -n $jobs ]]; then
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null || true
        say "cancelled jobs: $jobs"
    fi
fi

# stop_group NAME...: SIGTERM to each recorded daemon of the group at once, then wait for all
# of them (SIGKILL after 15 s).
status=0
stop_group() {
    local name f pid
    local -A pids=()
    for name in "$@"; do
        f=$STATE/pids/$name.pid
        [[ -f $f ]] || continue
        if ! pid=$(pid_of_ours "$name"); then
            say "$name (pid $(<"$f")) is no longer running"
            rm -f "$f"
            continue
        fi
        pids[$name]=$pid
        kill -TERM "$pid" 2>/dev/null || true
    done
    for _ in $(seq 1 60); do
        local alive=0
        for name in "${!pids[@]}"; do
            kill -0 "${pids[$name]}" 2>/dev/null && alive=1
        done
        ((alive)) || break
        sleep 0.25
    done
    for name in "${!pids[@]}"; do
        pid=${pids[$name]}
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            say "killed $name (pid $pid): it ignored SIGTERM for 15 s"
        else
            say "stopped $name (pid $pid)"
        fi
        if kill -0 "$pid" 2>/dev/null && [[ $(<"/proc/$pid/comm") == "$name" ]]; then
            say "could not stop $name (pid $pid)" >&2
            status=1
        else
            rm -f "$STATE/pids/$name.pid"
        fi
    done
}

# SLURM's daemons first, then what they use: the database and munge.
stop_group slurmd slurmctld slurmdbd
stop_group mariadbd munged
exit "$status"
