"""A one-node SLURM cluster on this machine, for tests/test_slurm.py.

munged, MariaDB and slurmdbd (job accounting: submitit follows its jobs with `sacct`),
slurmctld and slurmd, all on loopback ports that were free, with their files in one temporary
folder; the node has this machine's CPUs, the partition `debug` a 10-minute limit. Needs root
and Debian's packages (.ci/run installs them):

    apt-get install --no-install-recommends slurmctld slurmd slurmdbd slurm-client munge mariadb-server

    python tests/slurm_cluster.py     # start one and wait: export the SLURM_CONF it prints

Clients (sbatch, sacct, scontrol, ...) find it through `SLURM_CONF`, which `env()` sets; jobs
inherit it. `stop()` ends every daemon it started.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PROGRAMS = ("munged", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd",
            "sbatch", "sacct", "scontrol", "scancel", "sinfo", "squeue")
PARTITION = "debug"
UNFINISHED = {"PENDING", "RUNNING", "COMPLETING", "REQUEUED", "SUSPENDED"}


def missing() -> str | None:
    """Why no cluster can start here, or None."""
    absent = [name for name in PROGRAMS if not shutil.which(name, path=_PATH)]
    if absent:
        return (f"SLURM is not installed ({', '.join(absent)} missing): apt-get install "
                "slurmctld slurmd slurmdbd slurm-client munge mariadb-server")
    if os.geteuid() != 0:
        return "the test cluster's daemons run as root"
    return None


_PATH = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="text2sign-slurm-"))
        self.dir.chmod(0o755)  # munged: its socket's folder must be searchable by all
        for folder in ("state", "spool"):
            (self.dir / folder).mkdir()
        self.host = platform.node().split(".")[0]
        self.ports = {name: _free_port() for name in ("db", "dbd", "ctld", "d")}
        self.processes: list[subprocess.Popen] = []

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment whose SLURM clients use this cluster."""
        return {**(os.environ if base is None else base), "SLURM_CONF": str(self.conf),
                "PATH": _PATH}

    @property
    def conf(self) -> Path:
        return self.dir / "slurm.conf"

    def start(self) -> SlurmCluster:
        try:
            self._start_munge()
            self._start_mariadb()
            self._write_configs()
            self._daemon("slurmdbd", "-D")
            self._wait(lambda: self._connects(self.ports["dbd"]), "slurmdbd")
            self._daemon("slurmctld", "-D", "-i")
            self._daemon("slurmd", "-D", "-N", self.host)
            self._wait(self._node_idle, "the node to be idle")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Cancel the jobs left, end the daemons, newest first, and remove the folder."""
        if self.processes and self.processes[-1].poll() is None:  # slurmd (and slurmctld)
            self.run("scancel", f"--partition={PARTITION}", check=False)
            deadline = time.monotonic() + 60
            while self.run("squeue", "--noheader", check=False).strip() and (
                    time.monotonic() < deadline):
                time.sleep(1)
        for process in reversed(self.processes):
            process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run(self, *command: str, check: bool = True) -> str:
        """A SLURM client command's output (sacct, scontrol, squeue, ...)."""
        done = subprocess.run(command, env=self.env(), capture_output=True, text=True, timeout=60)
        if check and done.returncode:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
        return done.stdout

    def job_states(self, timeout_s: float = 60) -> dict[str, str]:
        """The state of every job (array tasks as ARRAYJOB_TASK) in accounting, once every
        job has ended (a job's process may end a moment after its result is written)."""
        deadline = time.monotonic() + timeout_s
        while True:
            out = self.run("sacct", "--allocations", "--noheader", "--parsable2",
                           "--starttime=now-1days", "--format=JobID,State")
            states = dict(line.split("|", 1) for line in out.splitlines())
            if not set(states.values()) & UNFINISHED or time.monotonic() > deadline:
                return states
            time.sleep(1)

    def _daemon(self, *command: str) -> None:
        log = open(self.dir / f"{Path(command[0]).name}.out", "wb")
        self.processes.append(subprocess.Popen(command, env=self.env(), stdout=log,
                                               stderr=subprocess.STDOUT))

    def _start_munge(self) -> None:
        key = self.dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self._daemon("munged", "--foreground", "--force", f"--socket={self.dir / 'munge.sock'}",
                     f"--key-file={key}", f"--pid-file={self.dir / 'munged.pid'}",
                     f"--log-file={self.dir / 'munged.log'}", f"--seed-file={self.dir / 'munge.seed'}")
        self._wait((self.dir / "munge.sock").exists, "munged")

    def _start_mariadb(self) -> None:
        data = self.dir / "mariadb"
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)
        self._daemon("mariadbd", "--no-defaults", f"--datadir={data}", "--user=root",
                     f"--socket={self.dir / 'mariadb.sock'}", "--bind-address=127.0.0.1",
                     f"--port={self.ports['db']}", f"--pid-file={self.dir / 'mariadb.pid'}",
                     "--skip-name-resolve")
        self._wait(lambda: self._connects(self.ports["db"]), "mariadbd")

    def _write_configs(self) -> None:
        auth = f"AuthType=auth/munge\nAuthInfo=socket={self.dir / 'munge.sock'}"
        cpus = len(os.sched_getaffinity(0))
        memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 - 1024
        # cred_expire: also how long a requeued job waits before it may start again (120 s)
        self.conf.write_text(f"""{auth},cred_expire=10
ClusterName=text2sign-test
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={self.ports['ctld']}
SlurmdPort={self.ports['d']}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={self.dir / 'state'}
SlurmdSpoolDir={self.dir / 'spool'}
SlurmctldPidFile={self.dir / 'slurmctld.pid'}
SlurmdPidFile={self.dir / 'slurmd.pid'}
SlurmctldLogFile={self.dir / 'slurmctld.log'}
SlurmdLogFile={self.dir / 'slurmd.log'}
CredType=cred/munge
MailProg=/bin/true
MpiDefault=none
# no cgroups in a container: track a job's processes through /proc, bind them to their CPUs
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={self.ports['dbd']}
AccountingStoragePass={self.dir / 'munge.sock'}
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
# a job that asks for more than its partition allows is refused, not left pending for ever
EnforcePartLimits=ALL
# a test's jobs start within seconds, not at the next minute's scheduling pass
SchedulerParameters=sched_interval=2,bf_interval=2
KillWait=10
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=10 State=UP
""")
        dbd = self.dir / "slurmdbd.conf"
        dbd.write_text(f"""{auth}
DbdHost={self.host}
DbdAddr=127.0.0.1
DbdPort={self.ports['dbd']}
SlurmUser=root
PidFile={self.dir / 'slurmdbd.pid'}
LogFile={self.dir / 'slurmdbd.log'}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.ports['db']}
StorageUser=root
StorageLoc=slurm_acct_db
""")
        dbd.chmod(0o600)

    def _connects(self, port: int) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    def _node_idle(self) -> bool:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.env(), capture_output=True,
                             text=True, timeout=30)
        return out.stdout.strip() == "idle"

    def _wait(self, ready, what: str, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            dead = [p.args[0] for p in self.processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = {p.name: p.read_text()[-1500:] for p in self.dir.glob("*.log")}
                logs.update({p.name: p.read_text()[-1500:] for p in self.dir.glob("*.out")})
                raise RuntimeError(f"waiting for {what}: "
                                   f"{'ended: ' + ', '.join(dead) if dead else 'timed out'}\n{logs}")
            time.sleep(0.5)


if __name__ == "__main__":
    with SlurmCluster() as cluster:
        print(f"export SLURM_CONF={cluster.conf}   # Ctrl+C stops the cluster", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
