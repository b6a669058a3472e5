"""A two-node Ray cluster on this machine, for tests/test_ray.py: a head and a worker node,
each `ray start --block` with one CPU, on loopback, their files in a temporary folder.

    python tests/ray_cluster.py     # start one and wait: give the address it prints

Each node runs in a process group of its own, so that `kill_worker()` ends the worker node at
once, as a machine that dies, and `stop()` ends both.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")  # the CLI of the Ray that this Python imports


def missing() -> str | None:
    """Why no cluster can start here, or None."""
    try:
        import hydra_plugins.hydra_ray_launcher  # noqa: F401
    except ImportError:
        return 'hydra-ray-launcher is not installed: pip install -e ".[ray]"'
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayCluster:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="t2s-ray-"))  # short: Ray's sockets live here
        self.address = f"127.0.0.1:{_free_port()}"
        self.nodes: dict[str, subprocess.Popen] = {}

    def start(self) -> RayCluster:
        try:
            self._node("head", "--head", f"--port={self.address.split(':')[1]}",
                       f"--temp-dir={self.dir}", "--include-dashboard=false")
            self._wait_for_nodes(1)
            self._node("worker", f"--address={self.address}")
            self._wait_for_nodes(2)
        except BaseException:
            self.stop()
            raise
        return self

    def node_ids(self) -> dict[str, str]:
        """{"head": its node id, "worker": ...} of the nodes alive."""
        return {("head" if "node:__internal_head__" in node["Resources"] else "worker"):
                node["NodeID"] for node in self._alive()}

    def kill_worker(self) -> None:
        self._kill("worker")

    def stop(self) -> None:
        for name in reversed(list(self.nodes)):
            self._kill(name)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _kill(self, name: str) -> None:
        """End a node at once, as a machine that dies; the Ray workers it started (each in a
        session of its own) end when they find their node gone."""
        node = self.nodes.pop(name)
        os.killpg(node.pid, signal.SIGKILL)
        node.wait()

    def __enter__(self) -> RayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _node(self, name: str, *args: str) -> None:
        log = open(self.dir / f"{name}.out", "wb")
        self.nodes[name] = subprocess.Popen(
            [str(RAY), "start", "--block", "--num-cpus=1", "--num-gpus=0",
             "--node-ip-address=127.0.0.1", "--object-store-memory=100000000",
             "--disable-usage-stats", *args],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})

    def _alive(self) -> list[dict]:
        """The cluster's live nodes, as ray.nodes() lists them (asked by a process of its own)."""
        ask = ("import json, ray\n"
               f"ray.init(address={self.address!r}, logging_level='ERROR')\n"
               "print(json.dumps([n for n in ray.nodes() if n['Alive']]))")
        done = subprocess.run([sys.executable, "-c", ask], capture_output=True, text=True,
                              timeout=120)
        return json.loads(done.stdout.splitlines()[-1]) if done.returncode == 0 else []

    def _wait_for_nodes(self, count: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self._alive()) < count:
            ended = [name for name, node in self.nodes.items() if node.poll() is not None]
            if ended or time.monotonic() > deadline:
                logs = {p.name: p.read_text()[-2000:] for p in self.dir.glob("*.out")}
                raise RuntimeError(f"waiting for {count} Ray nodes: "
                                   f"{'ended: ' + ', '.join(ended) if ended else 'timed out'}"
                                   f"\n{logs}")
            time.sleep(1)


if __name__ == "__main__":
    with RayCluster() as cluster:
        print(f"hydra.launcher.ray.init.address={cluster.address}   # Ctrl+C stops the cluster",
              flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
