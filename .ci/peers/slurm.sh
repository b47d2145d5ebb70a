# shellcheck shell=bash
# Slurm 22.05 (Debian 12 packages) with munge: one node "localhost" with 8 fake GPUs
# (character devices made with mknod, declared through gres), for the gridflex-slurm
# tests. Facts and timings: shared/reference/integration-peers.md, section 3.
# Sourced by .ci/run; needs root (slurmctld, slurmd and munged run without systemd).

SLURM_PEER_WAIT_S=${SLURM_PEER_WAIT_S:-30}

slurm_start() {
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v squeue >/dev/null || ! command -v munged >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # policy-rc.d keeps the packages' init scripts from starting the daemons: we start
    # them below with our own configuration.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurmctld slurmd slurm-client munge >/dev/null
  fi

  install -d -o munge -g munge -m 0755 /run/munge
  [ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey --create
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    local i
    for i in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  fi

  local i
  for i in 0 1 2 3 4 5 6 7; do
    [ -e "/dev/fakegpu$i" ] || mknod -m 0666 "/dev/fakegpu$i" c 195 "$i"
  done
  install -d -o slurm -g slurm /var/spool/slurmctld /var/log/slurm
  install -d /var/spool/slurmd /etc/slurm
  # A clean state: jobs or node states left by an earlier run would confuse the tests.
  rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*

  local mem
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  printf '%s\n' ClusterName=gridflex SlurmctldHost=localhost SlurmUser=slurm AuthType=auth/munge \
    StateSaveLocation=/var/spool/slurmctld SlurmdSpoolDir=/var/spool/slurmd \
    SlurmctldPidFile=/run/slurmctld.pid SlurmdPidFile=/run/slurmd.pid \
    SlurmctldLogFile=/var/log/slurm/slurmctld.log SlurmdLogFile=/var/log/slurm/slurmd.log \
    ProctrackType=proctrack/linuxproc TaskPlugin=task/none SelectType=select/cons_tres \
    SelectTypeParameters=CR_Core GresTypes=gpu AccountingStorageType=accounting_storage/none \
    JobAcctGatherType=jobacct_gather/none MpiDefault=none ReturnToService=2 KillWait=5 \
    SlurmdParameters=config_overrides \
    "NodeName=localhost NodeAddr=127.0.0.1 CPUs=8 RealMemory=$mem Gres=gpu:8 State=UNKNOWN" \
    "PartitionName=gpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP" \
    "PartitionName=batch Nodes=localhost MaxTime=INFINITE State=UP" > /etc/slurm/slurm.conf
  echo 'NodeName=localhost Name=gpu File=/dev/fakegpu[0-7]' > /etc/slurm/gres.conf

  # Daemons of an earlier run (same config paths) would hold the ports.
  slurm_kill_pidfile /run/slurmd.pid
  slurm_kill_pidfile /run/slurmctld.pid
  slurmctld -i
  slurmd -N localhost
  local up=""
  for i in $(seq $((SLURM_PEER_WAIT_S * 10))); do
    if [ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ]; then up=1; break; fi
    sleep 0.1
  done
  if [ -z "$up" ]; then
    echo "slurm: node localhost not idle after ${SLURM_PEER_WAIT_S} s:"
    sinfo -N -l 2>&1 || true
    tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log 2>&1 || true
    return 1
  fi
  # scontrol must not see a JWT (it acts but exits 1); the tests clear it too.
  unset SLURM_JWT
  export GRIDFLEX_TEST_SLURM=1
}

# Kills the daemon whose pid file is $1 and waits (bounded) until it has gone.
slurm_kill_pidfile() {
  local pid i
  [ -s "$1" ] || return 0
  pid=$(cat "$1")
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

slurm_stop() {
  local i
  if command -v scancel >/dev/null; then
    scancel --user=root 2>/dev/null || true
    # Jobs outlive the daemons: wait (bounded) until the queue holds no live job.
    for i in $(seq 150); do
      [ -z "$(squeue -h -t all -o %T 2>/dev/null | grep -v -e COMPLETED -e CANCELLED -e FAILED -e TIMEOUT)" ] && break
      sleep 0.2
    done
  fi
  slurm_kill_pidfile /run/slurmd.pid
  slurm_kill_pidfile /run/slurmctld.pid
  slurm_kill_pidfile /run/munge/munged.pid
}

peer slurm
