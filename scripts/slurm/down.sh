#!/usr/bin/env bash
# Stop the single-node test Slurm started by up.sh.
#
# Usage: scripts/slurm/down.sh [STATE_DIR]      (default STATE_DIR=/tmp/sdo-slurm)
#
# Cancels all jobs, then stops slurmd, slurmctld and munged (TERM, bounded
# wait, then KILL). Harmless when nothing is running. STATE_DIR is kept
# (remove it yourself for a fully fresh start).
set -uo pipefail

STATE="${1:-${SDO_SLURM_STATE_DIR:-/tmp/sdo-slurm}}"
STATE="$(realpath -m "$STATE")"
CONF=/etc/slurm/slurm.conf

log() { echo "[slurm-down] $*" >&2; }

running() {  # running PID: alive and not a zombie (PID 1 here may reap late)
    local st
    st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

pid_alive() {
    local pf="$1" exe="$2" pid
    [[ -s "$pf" ]] || return 1
    pid="$(tr -dc 0-9 <"$pf")"
    [[ -n "$pid" ]] && running "$pid" || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$exe"* ]]
}

term_pidfile() {  # term_pidfile PIDFILE EXE_BASENAME: send TERM, echo the pid
    local pf="$1" exe="$2" pid
    if pid_alive "$pf" "$exe"; then
        pid="$(tr -dc 0-9 <"$pf")"
        log "stopping $exe (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        echo "$pid"
    fi
}

wait_pids() {  # wait_pids PID...: wait <=15 s for all to exit, then KILL the rest
    local i pid alive
    for ((i = 0; i < 150; i++)); do
        alive=0
        for pid in "$@"; do running "$pid" && alive=1; done
        ((alive)) || return 0
        sleep 0.1
    done
    for pid in "$@"; do
        if running "$pid"; then
            log "pid $pid did not exit in 15 s; sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

# Pid files as configured (falls back to STATE_DIR layout).
ctld_pf="$STATE/run/slurmctld.pid"
d_pf="$STATE/run/slurmd.pid"
if [[ -f "$CONF" ]]; then
    v="$(sed -n 's/^SlurmctldPidFile=//p' "$CONF")"; [[ -n "$v" ]] && ctld_pf="$v"
    v="$(sed -n 's/^SlurmdPidFile=//p' "$CONF")"; [[ -n "$v" ]] && d_pf="$v"
fi

# Cancel all jobs while the controller is still up; wait (<=20 s) for them to leave.
if pid_alive "$ctld_pf" slurmctld && timeout 5 scontrol ping 2>/dev/null | grep -q UP; then
    jobs="$(timeout 10 squeue -h -o %i 2>/dev/null | tr '\n' ' ')"
    if [[ -n "${jobs// /}" ]]; then
        log "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            [[ -z "$(timeout 5 squeue -h -t R,CG,PD -o %i 2>/dev/null)" ]] && break
            sleep 0.2
        done
    fi
fi

# slurmd and slurmctld shut down in parallel (each takes ~1.5 s), then munged.
pids=()
pid="$(term_pidfile "$d_pf" slurmd)" && [[ -n "$pid" ]] && pids+=("$pid")
pid="$(term_pidfile "$ctld_pf" slurmctld)" && [[ -n "$pid" ]] && pids+=("$pid")
((${#pids[@]})) && wait_pids "${pids[@]}"
rm -f "$d_pf" "$ctld_pf"
pid="$(term_pidfile /run/munge/munged.pid munged)" && [[ -n "$pid" ]] && wait_pids "$pid"
log "slurm is down"
exit 0
