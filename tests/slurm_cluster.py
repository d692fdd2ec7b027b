"""A real single-node SLURM on 127.0.0.1 for the cluster-profile test: munge, slurmctld and slurmd from Debian's
packages, with one GPU declared for scheduling (no device behind it). Needs root; its daemons are stopped by their pids.

Its config is written to /etc/slurm/ (and removed afterwards), where commands inside jobs look: the plugin's job step
clears SLURM_CONF before it calls srun. A machine that already has a SLURM config is left alone (the test is skipped).

    with slurm_cluster(tmp_path) as cluster:
        ...  # sbatch, squeue and snakemake's slurm executor reach it through SLURM_CONF
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

CONF_DIR = Path("/etc/slurm")
TOOLS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")

SLURM_CONF = """\
ClusterName=liverseg-test
SlurmctldHost=localhost
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
GresTypes=gpu
MinJobAge=3600
ReturnToService=2
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def missing() -> str | None:
    """Why a cluster cannot be started here, or None."""
    if os.geteuid() != 0:
        return "starting SLURM daemons needs root"
    absent = [tool for tool in TOOLS if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()]
    if absent:
        return f"Debian's slurmctld, slurmd, slurm-client and munge are not installed (missing: {', '.join(absent)})"
    if (CONF_DIR / "slurm.conf").exists():
        return f"{CONF_DIR / 'slurm.conf'} exists: this machine has a SLURM of its own, which the test does not touch"
    return None


def _memory_mb() -> int:
    total_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return int(total_kb / 1024 * 0.9)  # a node claiming more than the machine has is rejected


def _wait(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"SLURM test cluster: {what} did not happen within {timeout:.0f} s")
        time.sleep(0.5)


def _stop(pid_file: Path) -> None:
    """SIGTERM to the daemon of `pid_file`, then wait until it has ended."""
    if not pid_file.is_file():
        return
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    status = Path(f"/proc/{pid}/stat")

    def ended() -> bool:  # gone, or a zombie left for init to reap
        try:
            return status.read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    _wait(ended, f"the end of process {pid}", timeout=30)


@contextmanager
def slurm_cluster(root: Path):
    """Start munge, slurmctld and slurmd with their state under `root`; yield the environment that reaches them."""
    for folder in ("state", "spool"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    # munged runs as its own user, and its socket's folders must be open to all: not under pytest's private tmp
    munge_dir = Path(tempfile.mkdtemp(prefix="liverseg-munge-"))
    key, socket, munge_pid = munge_dir / "munge.key", munge_dir / "munge.socket", munge_dir / "munged.pid"
    conf = CONF_DIR / "slurm.conf"
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started = []
    try:
        os.chmod(munge_dir, 0o755)
        shutil.chown(munge_dir, "munge", "munge")
        subprocess.run(["mungekey", "--create", "--keyfile", str(key)], check=True, capture_output=True)
        shutil.chown(key, "munge", "munge")
        CONF_DIR.mkdir(exist_ok=True)
        cpus, memory_mb = len(os.sched_getaffinity(0)), _memory_mb()
        # slurm's auth/munge plugin finds this munged's socket through AuthInfo
        conf.write_text(SLURM_CONF.format(root=root, cpus=cpus, memory_mb=memory_mb) + f"AuthInfo=socket={socket}\n")
        (CONF_DIR / "gres.conf").write_text("NodeName=localhost Name=gpu File=/dev/null\n")
        munged = [
            "runuser", "-u", "munge", "--", "munged", "--key-file", str(key), "--socket", str(socket),
            "--pid-file", str(munge_pid), "--log-file", str(munge_dir / "munged.log"),
            "--seed-file", str(munge_dir / "munged.seed"),
        ]  # fmt: skip
        subprocess.run(munged, check=True, capture_output=True)
        started.append(munge_pid)
        subprocess.run(["slurmctld", "-f", str(conf)], check=True, env=env, capture_output=True)
        started.append(root / "slurmctld.pid")
        subprocess.run(["slurmd", "-f", str(conf), "-N", "localhost"], check=True, env=env, capture_output=True)
        started.append(root / "slurmd.pid")

        def node_idle() -> bool:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True)
            return state.stdout.strip() == "idle"

        _wait(node_idle, "the node becoming idle")
        yield env
    finally:
        for pid_file in reversed(started):
            _stop(pid_file)
        shutil.rmtree(munge_dir, ignore_errors=True)
        for name in ("slurm.conf", "gres.conf"):
            (CONF_DIR / name).unlink(missing_ok=True)
