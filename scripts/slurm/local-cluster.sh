#!/usr/bin/env bash
# A one-node Slurm on this machine, for tests, CI and trying the sbatch
# scripts (shared/specs/slurm.md): munge, slurmctld and slurmd, with every
# file (config, state, logs, pids, munge socket) under one folder, so
# nothing in /etc changes and the daemons are stopped by their own pids.
#
#   scripts/slurm/local-cluster.sh start [DIR]   # prints: export SLURM_CONF=DIR/slurm.conf
#   scripts/slurm/local-cluster.sh stop [DIR]
#
# DIR defaults to $FACEKIT_SLURM_DIR, else /tmp/facekit-slurm. The ports
# are the first free pair from 6817 (FACEKIT_SLURMCTLD_PORT sets the
# controller's; slurmd takes the next). Needs root
# (the daemons run as root here) and `apt-get install slurm-wlm munge`.
# Clients (sbatch, squeue) find the cluster through SLURM_CONF.
set -euo pipefail

cmd="${1:-}"
dir="${2:-${FACEKIT_SLURM_DIR:-/tmp/facekit-slurm}}"

# Whether a process runs (a zombie, dead but not reaped, does not).
alive() {
    [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]
}

stop() {
    # slurmd before slurmctld before munged: each needs the next.
    for name in slurmd slurmctld munged; do
        pidfile="$dir/$name.pid"
        [ -f "$pidfile" ] || continue
        pid="$(cat "$pidfile")"
        if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
            for _ in $(seq 50); do
                alive "$pid" || break
                sleep 0.1
            done
        fi
        rm -f "$pidfile"
    done
}

# Whether something listens on this TCP port.
busy() {
    (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null
}

start() {
    for tool in munged slurmctld slurmd sinfo; do
        command -v "$tool" >/dev/null || {
            echo "local-cluster: $tool not found; apt-get install -y slurm-wlm munge" >&2
            exit 1
        }
    done
    # A cluster left by an earlier run of this script goes first.
    stop
    mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
    chmod 700 "$dir/munge"
    [ -f /etc/munge/munge.key ] || {
        echo "local-cluster: /etc/munge/munge.key missing (the munge package makes it)" >&2
        exit 1
    }
    munged --force --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" \
        --seed-file="$dir/munge/seed" 2>>"$dir/munged.log"

    host="$(hostname -s)"
    # Two clusters on one machine (two CI runs) take different ports.
    port="${FACEKIT_SLURMCTLD_PORT:-}"
    if [ -z "$port" ]; then
        port=6817
        while busy "$port" || busy $((port + 1)); do
            port=$((port + 2))
        done
    fi
    # Slurm drains a node that has less memory than it declares.
    mem="$(awk '/MemTotal/ { print int($2 / 1024 / 2) }' /proc/meminfo)"
    [ "$mem" -le 4000 ] || mem=4000
    cat >"$dir/slurm.conf" <<CONF
ClusterName=facekit
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
JobCompType=jobcomp/none
MpiDefault=none
NodeName=$host CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    export SLURM_CONF="$dir/slurm.conf"
    slurmctld -f "$SLURM_CONF"
    slurmd -f "$SLURM_CONF"
    for _ in $(seq 60); do
        if sinfo -h -o '%t' 2>/dev/null | grep -qx 'idle'; then
            echo "export SLURM_CONF=$SLURM_CONF"
            return 0
        fi
        sleep 0.5
    done
    echo "local-cluster: the node did not come up idle in 30 s; see $dir/slurmctld.log and $dir/slurmd.log" >&2
    stop
    exit 1
}

case "$cmd" in
start) start ;;
stop) stop ;;
*)
    echo "usage: $0 start|stop [DIR]" >&2
    exit 2
    ;;
esac
