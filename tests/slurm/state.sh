# Sourced by up.sh and down.sh: where the test SLURM keeps its state, and which daemons are ours.
#
# The PID of every daemon up.sh starts is recorded in $STATE/pids/<daemon>.pid; a recorded
# daemon counts as ours only while its PID still runs that program.

STATE=${ACTPIPE_SLURM_STATE:-/tmp/actpipe-slurm}

pid_of_ours() {
    # Prints the recorded PID of daemon $1 if that process is alive and still is $1.
    local f=$STATE/pids/$1.pid pid
    [[ -f $f ]] || return 1
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/comm && $(<"/proc/$pid/comm") == "$1" ]] || return 1
    echo "$pid"
}
