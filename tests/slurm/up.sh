#!/usr/bin/env bash
# Bring up a real single-node SLURM on localhost for the workflow's SLURM tests.
#
#   sudo bash tests/slurm/up.sh      # idempotent: a second run reuses what is already up
#   bash tests/slurm/down.sh         # stops exactly the daemons this script started
#
# What it does, each step only when needed:
#   1. installs slurmctld, slurmd, slurm-client, munge, slurmdbd and mariadb-server with apt;
#   2. starts munged (the Debian package creates the key; otherwise it is created here);
#   3. starts a private MariaDB (data, socket and port of its own under the state dir) and
#      creates the accounting database for slurmdbd;
#   4. writes /etc/slurm/{slurm.conf,gres.conf,slurmdbd.conf}: select/cons_tres, one node
#      `localhost` with 2 CPUs, 16000 MB and one fake GPU (gres File=/dev/null), one partition;
#   5. starts slurmdbd, registers the cluster, the account and root as its user, then starts
#      slurmctld and slurmd;
#   6. waits until `sinfo` shows the node idle and `sacct` answers.
#
# The PID of every daemon it starts is recorded in $ACTPIPE_SLURM_STATE/pids/<daemon>.pid
# (default state dir /tmp/actpipe-slurm), which is all down.sh stops. Daemons it did not start
# (a munged that was already running, say) are used but never recorded.
#
# Exit codes: 0 up; 3 SLURM cannot be installed at all (no apt, packages unreachable, not root
# while packages are missing): the reason is printed; any other non-zero code is a failure.

set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/state.sh"
CLUSTER=actpipe
PARTITION=debug
ACCOUNT=actpipe
DB_PORT=${ACTPIPE_SLURM_DB_PORT:-3307}
DB_NAME=slurm_acct_db
DB_USER=slurm
DB_PASS=actpipe-slurm-test
CONF_DIR=/etc/slurm
MARKER="# Written by actpipe tests/slurm/up.sh"
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
# Commands that must exist once the packages are installed.
COMMANDS=(slurmctld slurmd slurmdbd sinfo sbatch sacct sacctmgr scontrol squeue munged munge
    unmunge mariadbd mariadb-install-db mariadb mariadb-admin setpriv)

T0=$(date +%s)

say() { echo "up.sh: $*"; }

die() {
    echo "up.sh: FAILED: $*" >&2
    exit 1
}

cannot_install() {
    echo "up.sh: SLURM cannot be installed here: $*" >&2
    exit 3
}

on_error() {
    local rc=$? line=$1
    echo "up.sh: FAILED: command \"$BASH_COMMAND\" (line $line) exited $rc" >&2
    exit "$rc"
}
trap 'on_error $LINENO' ERR

show_log() {
    # The last lines of a log, to make a failure self-explaining.
    if [[ -f $1 ]]; then
        echo "---- last lines of $1 ----" >&2
        tail -n 25 "$1" >&2 || true
        echo "----" >&2
    fi
}

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND every 0.5 s until it succeeds.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local deadline=$(($(date +%s) + secs))
    until "$@" >/dev/null 2>&1; do
        if (($(date +%s) >= deadline)); then
            return 1
        fi
        sleep 0.5
    done
    say "$what is ready"
}

# ---------------------------------------------------------------------------------------------
# 1. Packages
# ---------------------------------------------------------------------------------------------
missing_commands() {
    local c absent=()
    for c in "${COMMANDS[@]}"; do
        command -v "$c" >/dev/null 2>&1 || [[ -x /usr/sbin/$c ]] || absent+=("$c")
    done
    echo "${absent[*]}"
}

export PATH="$PATH:/usr/sbin:/sbin"
missing=$(missing_commands)
if [[ -n $missing ]]; then
    say "missing commands: $missing; installing ${PACKAGES[*]}"
    [[ $(id -u) -eq 0 ]] || cannot_install "packages missing ($missing) and not running as root"
    command -v apt-get >/dev/null 2>&1 || cannot_install "no apt-get on this machine"
    if ! timeout 600 apt-get update >"/tmp/actpipe-slurm-apt-update.log" 2>&1; then
        tail -n 5 /tmp/actpipe-slurm-apt-update.log >&2 || true
        cannot_install "apt-get update failed (log: /tmp/actpipe-slurm-apt-update.log)"
    fi
    if ! DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y --no-install-recommends \
        "${PACKAGES[@]}" >"/tmp/actpipe-slurm-apt-install.log" 2>&1; then
        tail -n 5 /tmp/actpipe-slurm-apt-install.log >&2 || true
        cannot_install "apt-get install ${PACKAGES[*]} failed" \
            "(log: /tmp/actpipe-slurm-apt-install.log)"
    fi
    missing=$(missing_commands)
    [[ -z $missing ]] || cannot_install "still missing after apt-get install: $missing"
    say "installed ${PACKAGES[*]}"
else
    say "packages already installed ($(slurmctld -V 2>/dev/null || echo slurm))"
fi

[[ $(id -u) -eq 0 ]] || die "must run as root (the daemons run as root, munge and mysql)"

mkdir -p "$STATE"/{pids,log,run,ctld,spool}
chmod 755 "$STATE"

# ---------------------------------------------------------------------------------------------
# PID bookkeeping: a recorded daemon counts as ours only while its PID still runs that program.
# ---------------------------------------------------------------------------------------------
# pid_of_ours NAME: see state.sh.

record() {
    # record NAME PID: remember that this script started daemon NAME as PID.
    echo "$2" >"$STATE/pids/$1.pid"
    say "started $1 (pid $2)"
}

foreign_pids() {
    # PIDs of processes named $1 that are not the one recorded as ours.
    local ours
    ours=$(pid_of_ours "$1" || true)
    pgrep -x "$1" | grep -vx "${ours:-none}" || true
}

# start_daemon NAME LOG COMMAND...: start COMMAND (which must stay in the foreground) in a
# session of its own, its output appended to LOG, and record its PID. With no job control,
# setsid execs COMMAND in the same process, so $! is the daemon's PID.
start_daemon() {
    local name=$1 log=$2
    shift 2
    setsid "$@" >>"$log" 2>&1 </dev/null &
    local pid=$!
    record "$name" "$pid"
}

stop_ours() {
    local name=$1 pid
    pid=$(pid_of_ours "$name") || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$STATE/pids/$name.pid"
    say "stopped $name (pid $pid) to restart it"
}

# ---------------------------------------------------------------------------------------------
# 2. munge
# ---------------------------------------------------------------------------------------------
munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key
    say "created /etc/munge/munge.key"
fi
chown munge:munge /etc/munge /etc/munge/munge.key
chmod 700 /etc/munge
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
chmod 755 /run/munge
chmod 700 /var/lib/munge /var/log/munge

if munge_works; then
    if pid_of_ours munged >/dev/null; then
        say "munged already running (ours, pid $(pid_of_ours munged))"
    else
        say "munged already running (not started by up.sh: used, never stopped)"
    fi
else
    [[ -z $(foreign_pids munged) ]] ||
        die "a munged is running (pid $(foreign_pids munged | xargs)) but munge does not work"
    rm -f /run/munge/munged.pid
    start_daemon munged "$STATE/log/munged.out" \
        setpriv --reuid=munge --regid=munge --init-groups munged --foreground
    wait_for 20 "munge" munge_works || {
        show_log /var/log/munge/munged.log
        show_log "$STATE/log/munged.out"
        die "munged did not come up"
    }
fi

# ---------------------------------------------------------------------------------------------
# 3. A private MariaDB for slurmdbd (own data dir, socket and port: the system's is untouched)
# ---------------------------------------------------------------------------------------------
DB_DIR=$STATE/mysql
DB_SOCK=$STATE/run/mariadb.sock
db() { mariadb --no-defaults --socket="$DB_SOCK" -u root; }
db_up() { mariadb-admin --no-defaults --socket="$DB_SOCK" -u root ping; }

if [[ ! -d $DB_DIR/mysql ]]; then
    mkdir -p "$DB_DIR"
    chown mysql:mysql "$DB_DIR"
    mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DIR" --skip-test-db \
        --auth-root-authentication-method=socket >"$STATE/log/mariadb-install-db.log" 2>&1 || {
        show_log "$STATE/log/mariadb-install-db.log"
        die "mariadb-install-db failed"
    }
    say "initialised the accounting database directory $DB_DIR"
fi
chown mysql:mysql "$STATE/run"

if pid_of_ours mariadbd >/dev/null && db_up >/dev/null 2>&1; then
    say "mariadbd already running (ours, pid $(pid_of_ours mariadbd))"
else
    stop_ours mariadbd
    if (exec 3<>"/dev/tcp/127.0.0.1/$DB_PORT") 2>/dev/null; then
        die "port $DB_PORT is taken by another program; set ACTPIPE_SLURM_DB_PORT to a free one"
    fi
    start_daemon mariadbd "$STATE/log/mariadb.log" \
        mariadbd --no-defaults --user=mysql --datadir="$DB_DIR" --socket="$DB_SOCK" \
        --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$STATE/run/mariadbd.pid" \
        --innodb-buffer-pool-size=64M --skip-log-bin
    wait_for 60 "mariadbd (127.0.0.1:$DB_PORT)" db_up || {
        show_log "$STATE/log/mariadb.log"
        die "mariadbd did not come up"
    }
fi

db <<SQL
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL

# ---------------------------------------------------------------------------------------------
# 4. Configuration files
# ---------------------------------------------------------------------------------------------
mkdir -p "$CONF_DIR"
for f in slurm.conf gres.conf slurmdbd.conf; do
    if [[ -f $CONF_DIR/$f ]] && ! grep -qF "$MARKER" "$CONF_DIR/$f"; then
        die "$CONF_DIR/$f exists and was not written by up.sh; refusing to overwrite it" \
            "(move it away to use the local test cluster)"
    fi
done

CONFIG_CHANGED=0
# write_conf FILE MODE: write stdin to FILE when its content differs.
write_conf() {
    local file=$1 mode=$2 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
    else
        install -m "$mode" -o root -g root "$tmp" "$file"
        rm -f "$tmp"
        CONFIG_CHANGED=1
        say "wrote $file"
    fi
}

write_conf "$CONF_DIR/slurm.conf" 644 <<EOF
$MARKER: a single-node test cluster on localhost.
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
# No cgroups here: track processes by PID, no task containment.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# cons_tres is what lets jobs ask for --gpus.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
GresTypes=gpu
# Use the configured CPUs/memory whatever the hardware reports.
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
# Accounting through slurmdbd: sacct (the executor plugin's status check) needs it.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
# Keep sbatch --comment (the executor plugin puts the rule name there) for sacct.
AccountingStoreFlags=job_comment
# Jobs must run under an existing account, as on a real cluster.
AccountingStorageEnforce=associations
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=16000 Gres=gpu:1 State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

write_conf "$CONF_DIR/gres.conf" 644 <<EOF
$MARKER: one fake GPU (a scheduling token only: no CUDA runs).
# File= is needed, or the node is drained as INVAL; /dev/null stands in for the device.
NodeName=localhost Name=gpu File=/dev/null Count=1
EOF

write_conf "$CONF_DIR/slurmdbd.conf" 600 <<EOF
$MARKER: accounting for the test cluster.
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF

if ((CONFIG_CHANGED)); then
    # Daemons of ours that run with an older configuration are restarted below.
    stop_ours slurmd
    stop_ours slurmctld
    stop_ours slurmdbd
fi

# ---------------------------------------------------------------------------------------------
# 5. slurmdbd, cluster/account/user, slurmctld, slurmd
# ---------------------------------------------------------------------------------------------
for d in slurmdbd slurmctld slurmd; do
    if ! pid_of_ours "$d" >/dev/null && [[ -n $(foreign_pids "$d") ]]; then
        die "a $d not started by up.sh is running (pid $(foreign_pids "$d" | xargs));" \
            "stop it first (or run down.sh if it is left over from an earlier bring-up)"
    fi
done

dbd_up() { sacctmgr -n -P show cluster format=cluster; }
if pid_of_ours slurmdbd >/dev/null; then
    say "slurmdbd already running (ours, pid $(pid_of_ours slurmdbd))"
else
    start_daemon slurmdbd "$STATE/log/slurmdbd.out" slurmdbd -D
    wait_for 30 "slurmdbd" dbd_up || {
        show_log "$STATE/log/slurmdbd.log"
        show_log "$STATE/log/slurmdbd.out"
        die "slurmdbd did not come up"
    }
fi

if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
    say "registered cluster $CLUSTER"
fi
if ! sacctmgr -n -P show account "$ACCOUNT" format=account | grep -qx "$ACCOUNT"; then
    sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description="actpipe tests" \
        Organization=actpipe >/dev/null
    say "added account $ACCOUNT"
fi
if ! sacctmgr -n -P show assoc cluster="$CLUSTER" user=root account="$ACCOUNT" format=user |
    grep -qx root; then
    sacctmgr -i add user root Account="$ACCOUNT" DefaultAccount="$ACCOUNT" \
        Cluster="$CLUSTER" >/dev/null
    say "added user root to account $ACCOUNT"
fi

if pid_of_ours slurmctld >/dev/null; then
    say "slurmctld already running (ours, pid $(pid_of_ours slurmctld))"
else
    start_daemon slurmctld "$STATE/log/slurmctld.out" slurmctld -D
    wait_for 30 "slurmctld" scontrol ping || {
        show_log "$STATE/log/slurmctld.log"
        show_log "$STATE/log/slurmctld.out"
        die "slurmctld did not come up"
    }
fi

if pid_of_ours slurmd >/dev/null; then
    say "slurmd already running (ours, pid $(pid_of_ours slurmd))"
else
    start_daemon slurmd "$STATE/log/slurmd.out" slurmd -D -N localhost
fi

# ---------------------------------------------------------------------------------------------
# 6. Ready: node idle, sacct answering
# ---------------------------------------------------------------------------------------------
node_state() { sinfo -h -N -n localhost -o %T 2>/dev/null | head -n 1; }
node_idle() { [[ $(node_state) == idle ]]; }
deadline=$(($(date +%s) + 60))
resumed=0
until node_idle; do
    state=$(node_state)
    if ((!resumed)) && [[ $state =~ ^(drained|draining|down)$ ]] && pid_of_ours slurmd >/dev/null &&
        scontrol ping >/dev/null 2>&1 && (($(date +%s) > deadline - 50)); then
        # A node left down or drained by an earlier bring-up's saved state: put it back.
        scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
        resumed=1
        say "resumed node localhost (was $state)"
    fi
    if (($(date +%s) >= deadline)); then
        scontrol show node localhost >&2 || true
        show_log "$STATE/log/slurmd.log"
        show_log "$STATE/log/slurmctld.log"
        die "node localhost is not idle after 60 s (state: ${state:-unknown})"
    fi
    sleep 0.5
done
say "node localhost is idle"

wait_for 30 "sacct" sacct -n -X || {
    show_log "$STATE/log/slurmdbd.log"
    die "sacct does not answer"
}

say "SLURM is up in $(($(date +%s) - T0)) s: cluster $CLUSTER, partition $PARTITION," \
    "account $ACCOUNT, node localhost (2 CPUs, 16000 MB, gpu:1); state and logs in $STATE"
sinfo
