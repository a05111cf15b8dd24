#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, from Debian's packages (slurm-wlm, munge), and
# the proof that sweeps run on it: the `tiny` profile's `ablate all` as a 4-task job array on
# one shared results folder, assembled with --cache-only, must give the tables of a
# sequential run (every row but the wall-clock ones: train_s, step_ms, images_per_s,
# throughput_vs_softmax). Run as root on a fresh Debian/Ubuntu machine:
#
#   sudo scripts/slurm/local-cluster.sh
#
# Exits non-zero on any failure. Idempotent: packages, key and daemons already there are
# reused; the daemons are left running (`scontrol shutdown; pkill munged` stops them).
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() { echo "local-cluster.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (it installs packages and starts daemons)"

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || fail "apt-get update failed"
  apt-get install -y -qq slurm-wlm munge >/dev/null || fail "cannot install slurm-wlm and munge"
fi

# munge: the authentication Slurm's daemons and clients share
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged || fail "munged did not start"
fi
munge -n | unmunge >/dev/null || fail "munge does not authenticate"

# slurm.conf for this host: one node, one partition, no accounting, no cgroups
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
conf_dir=/etc/slurm
install -d "$conf_dir" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > "$conf_dir/slurm.conf" <<CONF
ClusterName=gmmseg-local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
pgrep -x slurmctld >/dev/null || slurmctld || fail "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
pgrep -x slurmd >/dev/null || slurmd || fail "slurmd did not start (see /var/log/slurm/slurmd.log)"
for _ in $(seq 60); do
  state=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
  case "$state" in idle|mix|alloc) break ;; esac
  scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
  sleep 1
done
case "$(sinfo -h -n "$host" -o %t 2>/dev/null)" in
  idle|mix|alloc) ;;
  *) fail "node $host did not become idle (sinfo: $(sinfo -h 2>&1 | tr '\n' ' '))" ;;
esac
echo "slurm: node $host up ($cpus CPUs)"

# the binary, and two results folders: the array's and a sequential run's
[ -x target/release/gmmseg ] || cargo build --release --locked >/dev/null || fail "cargo build failed"
work=$(mktemp -d /tmp/gmmseg-slurm.XXXXXX)
export GMMSEG_BIN=$PWD/target/release/gmmseg
echo "array: sbatch --array=1-4 scripts/slurm/ablate-array.sbatch all tiny synthscapes (results in $work/array)"
GMMSEG_RESULTS_DIR=$work/array sbatch --wait --array=1-4 --output="$work/task-%a.out" \
  scripts/slurm/ablate-array.sbatch all tiny synthscapes >/dev/null \
  || { tail -n 5 "$work"/task-*.out >&2; fail "the job array failed"; }
GMMSEG_RESULTS_DIR=$work/array bash scripts/slurm/assemble.sh all tiny synthscapes >"$work/assemble.out" \
  || { cat "$work/assemble.out" >&2; fail "assembling the array's results failed"; }
echo "sequential: gmmseg ablate all --profile tiny (results in $work/sequential)"
GMMSEG_RESULTS_DIR=$work/sequential "$GMMSEG_BIN" ablate all --profile tiny --dataset synthscapes \
  >"$work/sequential.out" || fail "the sequential run failed"
python3 scripts/slurm/compare_results.py "$work/array/tiny" "$work/sequential/tiny" \
  || fail "the array's tables differ from the sequential run's"
echo "local-cluster.sh: OK — the 4-task array wrote the sequential run's tables ($work)"
