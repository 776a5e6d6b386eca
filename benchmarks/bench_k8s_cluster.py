"""The local test cluster (scripts/k8s/cluster.sh): Job latencies and component memory.

Measured with watches (timestamps taken on this host when the event arrives):

- Job create -> its pod Running, and create -> Job Complete, for N tiny Jobs one after
  another (hostNetwork, the `tiny` image that exits at once), then P at once;
- Job create -> Job Failed for a container exiting 3;
- resident memory (VmRSS) of each component;
- with ``--restart``: ``cluster.sh down`` then a cached ``cluster.sh up`` until Node Ready
  (this stops the cluster under anyone else using it: opt in).

Run as root, the cluster up (``scripts/k8s/cluster.sh up``):
    .venv/bin/python benchmarks/bench_k8s_cluster.py [--jobs 10] [--parallel 5] [--restart]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLUSTER_SH = REPO / "scripts" / "k8s" / "cluster.sh"


def _sh(*args: str) -> str:
    proc = subprocess.run(["bash", str(CLUSTER_SH), *args], capture_output=True, text=True,
                          timeout=3600, check=False)
    if proc.returncode != 0:
        sys.exit(f"cluster.sh {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr


def _env() -> dict[str, str]:
    env = {}
    for line in _sh("env").splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


class Watcher:
    """First time each Job's pod was seen Running and each Job finished, by job name."""

    def __init__(self, batch, core, namespace: str) -> None:
        self.running: dict[str, float] = {}
        self.finished: dict[str, tuple[float, str]] = {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._pods, args=(core, namespace), daemon=True),
                         threading.Thread(target=self._jobs, args=(batch, namespace), daemon=True)]
        for t in self._threads:
            t.start()

    def _pods(self, core, namespace: str) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            for ev in watch.Watch().stream(core.list_namespaced_pod, namespace, timeout_seconds=5):
                pod = ev["object"]
                job = (pod.metadata.labels or {}).get("job-name")
                started = any(s.state.running or s.state.terminated
                              for s in pod.status.container_statuses or [])
                if job and started and job not in self.running:
                    self.running[job] = time.monotonic()

    def _jobs(self, batch, namespace: str) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            for ev in watch.Watch().stream(batch.list_namespaced_job, namespace, timeout_seconds=5):
                job = ev["object"]
                for cond in job.status.conditions or []:
                    if (cond.type in ("Complete", "Failed") and cond.status == "True"
                            and job.metadata.name not in self.finished):
                        self.finished[job.metadata.name] = (time.monotonic(), cond.type)

    def wait(self, names: list[str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not all(n in self.finished for n in names):
            if time.monotonic() > deadline:
                sys.exit(f"Jobs not finished after {timeout} s: "
                         f"{[n for n in names if n not in self.finished]}")
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()


def _job(name: str, image: str, code: int) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never", "hostNetwork": True,
                "containers": [{"name": "tiny", "image": image, "imagePullPolicy": "Never",
                                "args": [str(code)]}]}}}}


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    return (f"median {statistics.median(values):.2f} s  min {min(values):.2f}  "
            f"max {max(values):.2f}  (n={len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10, help="Jobs one after another")
    parser.add_argument("--parallel", type=int, default=5, help="Jobs created at once")
    parser.add_argument("--restart", action="store_true",
                        help="also time `down` and a cached `up` (stops the cluster!)")
    args = parser.parse_args()

    if args.restart:
        t0 = time.monotonic()
        _sh("down")
        t1 = time.monotonic()
        out = _sh("up")
        t2 = time.monotonic()
        print(f"cluster.sh down: {t1 - t0:.1f} s")
        print(f"cluster.sh up (cached) to Node Ready: {t2 - t1:.1f} s   "
              f"[{out.strip().splitlines()[-1]}]")
    _sh("up")
    env = _env()

    from kubernetes import client, config

    api = config.new_client_from_config(config_file=env["KUBECONFIG"])
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    while not any(sa.metadata.name == "default" and sa.secrets
                  for sa in core.list_namespaced_service_account(ns).items):
        time.sleep(0.05)
    watcher = Watcher(batch, core, ns)
    image = env["AO_K8S_TINY_IMAGE"]
    try:
        created: dict[str, float] = {}
        seq = [f"seq-{i}" for i in range(args.jobs)]
        for name in seq:
            created[name] = time.monotonic()
            batch.create_namespaced_job(ns, _job(name, image, 0))
            watcher.wait([name])
        par = [f"par-{i}" for i in range(args.parallel)]
        t_par = time.monotonic()
        for name in par:
            created[name] = time.monotonic()
            batch.create_namespaced_job(ns, _job(name, image, 0))
        watcher.wait(par)
        par_wall = max(watcher.finished[n][0] for n in par) - t_par
        created["fail"] = time.monotonic()
        batch.create_namespaced_job(ns, _job("fail", image, 3))
        watcher.wait(["fail"])

        print(f"Job create -> pod Running    : "
              f"{_fmt([watcher.running[n] - created[n] for n in seq if n in watcher.running])}")
        print(f"Job create -> Complete       : "
              f"{_fmt([watcher.finished[n][0] - created[n] for n in seq])}")
        print(f"{args.parallel} Jobs at once -> all Complete: {par_wall:.2f} s")
        when, kind = watcher.finished["fail"]
        print(f"Job create -> {kind} (exit 3) : {when - created['fail']:.2f} s")
    finally:
        watcher.stop()
        core.delete_namespace(ns, propagation_policy="Background")

    total = 0
    print("memory (VmRSS):")
    for pid_file in sorted(Path(env["AO_K8S_STATE_DIR"], "pids").glob("*.pid")):
        status = Path(f"/proc/{pid_file.read_text().strip()}/status")
        rss = next((int(line.split()[1]) for line in status.read_text().splitlines()
                    if line.startswith("VmRSS:")), 0) if status.exists() else 0
        total += rss
        print(f"  {pid_file.stem:<24} {rss / 1024:7.0f} MiB")
    print(f"  {'total':<24} {total / 1024:7.0f} MiB")


if __name__ == "__main__":
    main()
