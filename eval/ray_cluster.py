"""A real two-node Ray cluster on this machine, for the tests and `eval.bench_ray`: `ray start --head`
and a second `ray start --address` with its own `worker_node` resource, each with one CPU.

Both are daemons that outlive `ray start`, so `stop` kills this cluster's processes itself (found by
its temp dir and GCS port; `ray stop --force` would kill every Ray on the host).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

RAY = os.path.join(os.path.dirname(sys.executable), "ray")
# Token auth is on by default since Ray 2.5x and a worker started without the head's token is
# refused; the tests' cluster is on loopback only.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_DATA_LOG_LEVEL": "ERROR"}
# A killed node is declared dead after ~2 s instead of ~14 s.
FAST_HEALTH = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "4", "RAY_health_check_timeout_ms": "500"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # Unix socket paths must stay under 108 characters: not pytest's tmp_path.
        self.temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
        self.env = {**os.environ, **RAY_ENV, **FAST_HEALTH,
                    # spread Serve's requests over both nodes' replicas rather than the proxy's own
                    "RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0"}
        self.head_raylets: set[int] = set()

    def _start_node(self, *args: str) -> None:
        """`ray start` for a node of one CPU and no GPU, with a small object store."""
        r = subprocess.run([RAY, "start", *args, "--num-cpus=1", "--num-gpus=0", "--object-store-memory=200000000",
                            "--disable-usage-stats", f"--dashboard-agent-listen-port={free_port()}"],
                           env=self.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=180)
        if r.returncode:
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{r.stdout[-3000:]}")

    def start(self) -> None:
        self._start_node("--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.temp_dir}",
                         f"--ray-client-server-port={free_port()}")
        self.head_raylets = {p.pid for p in self._raylets()}
        self.start_worker()

    def start_worker(self) -> None:
        self._start_node(f"--address={self.address}", f"--resources={json.dumps({'worker_node': 1})}")

    def _raylets(self):  # type: ignore[no-untyped-def]
        return [p for p in self.procs() if p.info["name"] == "raylet"]

    def worker_raylet(self):  # type: ignore[no-untyped-def]
        """The raylet of the node `start_worker` added (the one that is not the head's)."""
        return next(p for p in self._raylets() if p.pid not in self.head_raylets)

    def kill_worker_node(self) -> None:
        """SIGKILL the worker node's raylet and everything it started, as a machine lost would."""
        import psutil

        raylet = self.worker_raylet()
        for p in [raylet, *raylet.children(recursive=True)]:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass

    def procs(self):  # type: ignore[no-untyped-def]
        import psutil

        out = []
        for p in psutil.process_iter(["name", "cmdline"]):
            try:
                cl = p.info["cmdline"] or []
                # ray_client_server names only --address=<ip>:<gcs port>, not the temp dir
                if any(self.temp_dir in a or a.endswith(f":{self.port}") for a in cl):
                    out.append(p)
            except psutil.Error:
                pass
        return out

    def stop(self) -> None:
        import psutil

        ps = self.procs()
        for p in ps:
            try:
                for c in p.children(recursive=True):
                    c.kill()
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(ps, timeout=10)


def wait_for(predicate, timeout: float, every: float = 0.5) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every)
    return False
