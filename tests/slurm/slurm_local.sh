#!/usr/bin/env bash
# A single-node Slurm "cluster" on localhost, for testing `snakemake --profile profiles/slurm`.
#
#   bash tests/slurm/slurm_local.sh start   # install (Debian packages), configure, start, wait
#   bash tests/slurm/slurm_local.sh stop    # stop the daemons
#
# Runs as root; needs neither systemd nor cgroups. Two partitions on the one node, named like
# the profile's (cpu, gpu), and one declared GPU (a generic resource without a device file),
# so jobs asking for `--gpus 1` are scheduled on a machine that has no GPU.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"  # slurmctld, munged, runuser

NODE=localhost
PIDS=(/run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid)

log() { echo "[slurm-local] $*" >&2; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_for() {  # wait_for SECONDS CMD...
  local t=$1; shift
  for _ in $(seq "$((t * 2))"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  return 1
}

install_packages() {
  local pkgs=(munge slurmctld slurmd slurm-client)
  if ! dpkg -s "${pkgs[@]}" >/dev/null 2>&1; then
    apt-cache show slurmctld >/dev/null 2>&1 || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  fi
}

start_munge() {
  alive /run/munge/munged.pid && return 0
  [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  install -d -o munge -g munge -m 755 /run/munge
  runuser -u munge -- /usr/sbin/munged
  wait_for 10 bash -c 'munge -n | unmunge' || { log "munge does not work"; exit 1; }
}

write_config() {
  local cpus mem
  cpus=$(nproc)
  mem=$(( $(free -m | awk '/^Mem:/{print $2}') - 1024 ))  # a margin, or the node drains
  install -d -o slurm -g slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=cloudfree-test
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/lib/slurm/slurmd
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
# squeue must still show finished jobs when the executor polls them
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
NodeName=$NODE CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
CONF
  cat > /etc/slurm/gres.conf <<CONF
NodeName=$NODE Name=gpu File=/dev/null Count=1
CONF
}

start_slurm() {
  alive /run/slurmctld.pid || /usr/sbin/slurmctld
  wait_for 30 scontrol ping || { log "slurmctld not up"; tail -20 /var/log/slurm/slurmctld.log; exit 1; }
  alive /run/slurmd.pid || /usr/sbin/slurmd -N "$NODE"
  if ! wait_for 60 bash -c "sinfo -h -n $NODE -o %T | grep -qx idle"; then
    scontrol update NodeName="$NODE" State=RESUME || true
    wait_for 30 bash -c "sinfo -h -n $NODE -o %T | grep -qx idle" || {
      log "node not idle"; sinfo -N -l; tail -20 /var/log/slurm/slurmd.log; exit 1; }
  fi
  log "up: $(sinfo -h -o '%P %T %G' | tr '\n' ' ')"
}

stop_all() {
  local f p
  for f in "${PIDS[@]}"; do
    [ -s "$f" ] || continue
    p=$(cat "$f")
    if kill -0 "$p" 2>/dev/null; then
      kill "$p"
      for _ in $(seq 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
    fi
    rm -f "$f"
  done
}

case "${1:-start}" in
  start) install_packages; start_munge; write_config; start_slurm ;;
  stop) stop_all ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
