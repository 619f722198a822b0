#!/usr/bin/env bash
# Bring up a real single-node Slurm (munge + slurmctld + slurmd) for tests.
#
# Usage: scripts/slurm/up.sh [STATE_DIR]        (default STATE_DIR=/tmp/sdo-slurm)
#
# Idempotent: installs Debian packages only if missing, (re)writes
# /etc/slurm/slurm.conf from slurm.conf.in, starts whichever daemon is not
# running, and waits (bounded) until the node is usable. Re-running while
# the cluster is up is fast and harmless; if the generated config changed,
# the daemons are restarted with the new config.
#
# Environment overrides:
#   SDO_SLURM_CPUS      CPUs advertised by the node   (default 16, oversubscribed)
#   SDO_SLURM_MEM_MB    RealMemory of the node in MB  (default ~80% of MemTotal)
#   SDO_SLURM_CLUSTER   ClusterName                   (default sdo)
#   SDO_SLURM_TIMEOUT   seconds to wait for the node  (default 60)
#   SDO_SLURM_TORQUE=1  also install slurm-wlm-torque (PBS qsub/qstat/qdel wrappers)
# Must run as root (no systemd needed; no cgroups used).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${1:-${SDO_SLURM_STATE_DIR:-/tmp/sdo-slurm}}"
STATE="$(realpath -m "$STATE")"
CPUS="${SDO_SLURM_CPUS:-16}"
CLUSTER="${SDO_SLURM_CLUSTER:-sdo}"
TIMEOUT="${SDO_SLURM_TIMEOUT:-60}"
CTLD_PORT=6817
SLURMD_PORT=6818
CONF=/etc/slurm/slurm.conf
HOST="$(hostname -s)"

log() { echo "[slurm-up] $*" >&2; }

fail() {
    log "ERROR: $*"
    for f in "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" /var/log/munge/munged.log; do
        if [[ -f "$f" ]]; then
            echo "----- tail $f -----" >&2
            tail -n 25 "$f" >&2 || true
        fi
    done
    exit 1
}

[[ "$(id -u)" == 0 ]] || { echo "[slurm-up] ERROR: must run as root" >&2; exit 1; }

# ---------------------------------------------------------------- packages
PKGS=(slurmctld slurmd slurm-client munge)
[[ "${SDO_SLURM_TORQUE:-0}" == 1 ]] && PKGS+=(slurm-wlm-torque)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || fail "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || fail "apt-get install ${missing[*]} failed"
fi

# ---------------------------------------------------------------- helpers
running() {  # running PID: alive and not a zombie (PID 1 here may reap late)
    local st
    st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

pid_alive() {  # pid_alive PIDFILE EXE_BASENAME -> 0 if the pidfile names a live EXE
    local pf="$1" exe="$2" pid
    [[ -s "$pf" ]] || return 1
    pid="$(tr -dc 0-9 <"$pf")"
    [[ -n "$pid" ]] && running "$pid" || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$exe"* ]]
}

stop_pidfile() {  # stop_pidfile PIDFILE EXE_BASENAME: TERM, wait <=15 s, then KILL
    local pf="$1" exe="$2" pid i
    if pid_alive "$pf" "$exe"; then
        pid="$(tr -dc 0-9 <"$pf")"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 150; i++)); do running "$pid" || break; sleep 0.1; done
        running "$pid" && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pf"
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

node_state() { timeout 10 sinfo -h -o %t 2>/dev/null | head -n1 | tr -d '[:space:]' || true; }

# ---------------------------------------------------------------- config
if [[ -n "${SDO_SLURM_MEM_MB:-}" ]]; then
    MEM_MB="$SDO_SLURM_MEM_MB"
else
    # Derived from MemTotal (stable across runs, so the config stays unchanged).
    MEM_MB=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)
fi

mkdir -p "$STATE"/{ctld,spool,run,log} /etc/slurm
chmod 755 "$STATE"
new_conf="$(mktemp)"
trap 'rm -f "$new_conf"' EXIT
sed -e "s|@CLUSTER@|$CLUSTER|g" -e "s|@HOST@|$HOST|g" -e "s|@STATE@|$STATE|g" \
    -e "s|@CPUS@|$CPUS|g" -e "s|@MEM_MB@|$MEM_MB|g" \
    -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
    "$HERE/slurm.conf.in" >"$new_conf"

conf_changed=0
if ! cmp -s "$new_conf" "$CONF"; then
    conf_changed=1
    # Stop daemons started from the old config (its pid files may live elsewhere).
    if [[ -f "$CONF" ]]; then
        old_ctld_pf="$(sed -n 's/^SlurmctldPidFile=//p' "$CONF")"
        old_d_pf="$(sed -n 's/^SlurmdPidFile=//p' "$CONF")"
        [[ -n "$old_d_pf" ]] && stop_pidfile "$old_d_pf" slurmd
        [[ -n "$old_ctld_pf" ]] && stop_pidfile "$old_ctld_pf" slurmctld
    fi
    install -m 644 "$new_conf" "$CONF"
    log "wrote $CONF (node $HOST: CPUs=$CPUS RealMemory=${MEM_MB}MB, state $STATE)"
fi
# Debian ships no cgroup.conf; plugins we use do not need one.

# slurmctld refuses to start if ClusterName in its state dir differs: wipe it.
if [[ -f "$STATE/ctld/clustername" ]] && [[ "$(cat "$STATE/ctld/clustername")" != "$CLUSTER" ]]; then
    log "ClusterName changed; wiping $STATE/ctld"
    stop_pidfile "$STATE/run/slurmctld.pid" slurmctld
    rm -rf "$STATE/ctld" && mkdir -p "$STATE/ctld"
fi

# ---------------------------------------------------------------- munge
KEY=/etc/munge/munge.key
if ! munge_ok; then
    # Stale munged (pid file without a working socket)?
    stop_pidfile /run/munge/munged.pid munged
    if [[ ! -f "$KEY" ]] || [[ "$(stat -c %s "$KEY")" -ne 1024 ]]; then
        log "creating 1024-byte munge key"
        mkdir -p /etc/munge
        dd if=/dev/urandom of="$KEY" bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge "$KEY"
    chmod 700 /etc/munge
    chmod 400 "$KEY"
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 755 /run/munge
    chmod 711 /var/lib/munge
    chmod 700 /var/log/munge
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --force || fail "munged failed to start"
    for ((i = 0; i < 50; i++)); do munge_ok && break; sleep 0.1; done
    munge_ok || fail "munge -n | unmunge does not work"
fi

# ---------------------------------------------------------------- slurm daemons
started=0
if ! pid_alive "$STATE/run/slurmctld.pid" slurmctld; then
    rm -f "$STATE/run/slurmctld.pid"   # stale pid file breaks restarts
    log "starting slurmctld"
    /usr/sbin/slurmctld || fail "slurmctld failed to start"
    started=1
fi
for ((i = 0; i < 100; i++)); do
    timeout 5 scontrol ping 2>/dev/null | grep -q UP && break
    # slurmctld writes its pid file after daemonizing; give it ~2 s to appear.
    ((i > 20)) && ! pid_alive "$STATE/run/slurmctld.pid" slurmctld && fail "slurmctld exited"
    sleep 0.1
done
timeout 5 scontrol ping 2>/dev/null | grep -q UP || fail "slurmctld is not responding"

if ! pid_alive "$STATE/run/slurmd.pid" slurmd; then
    rm -f "$STATE/run/slurmd.pid"
    log "starting slurmd"
    /usr/sbin/slurmd || fail "slurmd failed to start"
    started=1
fi

# ---------------------------------------------------------------- wait for node
deadline=$((SECONDS + TIMEOUT))
resumed=0
while :; do
    st="$(node_state)"
    case "$st" in
        idle | mix | alloc | comp) break ;;
        down* | drain* | drng* | fail*)
            # e.g. "Node unexpectedly rebooted" or low-memory drain after a config change.
            if ((!resumed)); then
                scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
                resumed=1
            fi
            ;;
    esac
    if ((SECONDS >= deadline)); then
        sinfo -N -l >&2 || true
        scontrol show node "$HOST" >&2 || true
        fail "node $HOST not ready after ${TIMEOUT}s (state: '${st:-none}')"
    fi
    sleep 0.3
done

((started || conf_changed)) && log "slurm is up" || log "slurm already up"
sinfo -o "%P %a %l %D %t %c %m %N"
