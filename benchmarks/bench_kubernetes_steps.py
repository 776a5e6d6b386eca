"""Per-step cost of the kubernetes backend on the local cluster, beside in-process and warm
subprocess workers, printed side by side in one run.

Real parts: the test cluster (``scripts/k8s/cluster.sh``), the worker image
(``scripts/k8s/worker_image.sh``), a hostPath volume as the run store, pods on
``hostNetwork``; the LLM is the scripted server on loopback (its busy time is subtracted).

Measured, per step Job (N single-step runs through ``KubernetesLauncher``, each timestamp
taken on this host; pods share its clock):

- Job create -> container running (the pod watch's first "running" event): scheduling,
  sandbox, container start (the image is already on the node: ``imagePullPolicy Never``);
- container running -> step started in the worker (``result.json`` ``timing.started_at``):
  Python, ``import crewai``, spec checks;
- worker done -> the coordinator has the result (worker's ``timing.finished_at``, just
  before it writes ``result.json`` and its container exits -> the result read back). The
  handle ends the step when ``result.json`` appears on the volume; the pod watch alone saw
  the exit about 0.8 s later (interpreter teardown, then the 1.20 kubelet's once-a-second
  relist). Target: under 250 ms;
- total overhead per step of a 5-step plan = (wall - time inside the LLM server) / steps,
  for in-process, warm subprocess and kubernetes.

For scale: the Kubernetes pod-startup SLO is 5 s at p99; Argo's default requeue adds up to
10 s per step.

Run (the cluster up, KUBECONFIG set or ``scripts/k8s/cluster.sh env`` usable):
    .venv/bin/python benchmarks/bench_kubernetes_steps.py [--jobs 5]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
STEPS = 5


def _sh(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def cluster_env() -> dict[str, str]:
    """KUBECONFIG (and what else the cluster script exports), starting nothing itself."""
    if os.environ.get("KUBECONFIG"):
        return {"KUBECONFIG": os.environ["KUBECONFIG"]}
    env = {}
    for line in _sh(str(REPO / "scripts" / "k8s" / "cluster.sh"), "env").splitlines():
        line = line.removeprefix("export ").strip()
        if "=" in line:
            key, _, value = line.partition("=")
            env[key] = value.strip("'\"")
    return env


class Volume:
    """A namespace with a hostPath PV + PVC ``run-store`` bound to a fresh host folder."""

    def __init__(self, api) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api)
        self.namespace = f"ao-bench-{secrets.token_hex(3)}"
        self.store = Path(tempfile.mkdtemp(prefix="ao-bench-store-"))
        self.pv = f"{self.namespace}-store"
        self.core.create_namespace(client.V1Namespace(
            metadata=client.V1ObjectMeta(name=self.namespace)))
        self.core.create_persistent_volume(client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=self.pv), spec=client.V1PersistentVolumeSpec(
                capacity={"storage": "1Gi"}, access_modes=["ReadWriteMany"],
                storage_class_name="manual",
                host_path=client.V1HostPathVolumeSource(path=str(self.store)),
                claim_ref=client.V1ObjectReference(namespace=self.namespace,
                                                   name="run-store"))))
        self.core.create_namespaced_persistent_volume_claim(
            self.namespace, client.V1PersistentVolumeClaim(
                metadata=client.V1ObjectMeta(name="run-store"),
                spec=client.V1PersistentVolumeClaimSpec(
                    access_modes=["ReadWriteMany"], storage_class_name="manual",
                    volume_name=self.pv, resources=client.V1ResourceRequirements(
                        requests={"storage": "1Gi"}))))
        while self.core.read_namespaced_persistent_volume_claim(
                "run-store", self.namespace).status.phase != "Bound":
            time.sleep(0.1)

    def close(self) -> None:
        self.core.delete_namespace(self.namespace)
        self.core.delete_persistent_volume(self.pv)


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def per_job(launcher, base_url: str, store_root: Path, jobs: int) -> list[dict[str, float]]:
    """``jobs`` single-step Jobs, one after the other, with the breakdown above."""
    from agentic_orchestration.orchestration.backends import _kubernetes_handle as handle_mod
    from agentic_orchestration.orchestration.backends.base import StepPaths, StepSpec, TaskSpec
    from agentic_orchestration.orchestration.run_store import FileSystemRunStore

    running_seen: dict[str, float] = {}
    original = handle_mod.JobHandle._record_pod

    def record(self, pod):  # note when the watch first saw the container running
        status = handle_mod.container_status(pod)
        if status is not None and status.state and (status.state.running or
                                                    status.state.terminated):
            running_seen.setdefault(self.ref, time.time())
        return original(self, pod)

    handle_mod.JobHandle._record_pod = record
    store = FileSystemRunStore(store_root)
    rows = []
    for i in range(jobs):
        spec = StepSpec(run_id=f"bench-{secrets.token_hex(4)}", step_id="one", step_index=0,
                        workflow_name="bench",
                        task=TaskSpec(description=f"STEP{i} about tea", expected_output="x"),
                        agent_provider={"id": "fake_writer", "type": "openai",
                                        "model": "fake-model", "openai_base_url": base_url,
                                        "role": "W", "goal": "G", "backstory": "B"},
                        paths=StepPaths(run_store="/run/store"))
        store.write_spec(spec)
        t0 = time.time()
        handle = launcher.launch(spec, spec_path=store.spec_path(spec.run_id, "one"),
                                 log_path=store.step_dir(spec.run_id, "one") / "worker.log")
        outcome = handle.wait(600)
        result = store.read_result(spec.run_id, "one")
        t_result = time.time()
        handle.terminate()
        assert outcome is not None and result is not None and result.ok, (outcome, result)
        started, finished = (_seconds(result.timing.started_at),
                             _seconds(result.timing.finished_at))
        running = running_seen.get(handle.ref, float("nan"))
        rows.append({"create_to_running": running - t0, "running_to_step": started - running,
                     "step": finished - started, "exit_to_result": t_result - finished,
                     "total": t_result - t0})
    handle_mod.JobHandle._record_pod = original
    return rows


def plan_overhead(backend_name: str, server, config_dir: Path, env: dict[str, str]) -> float:
    """Overhead ms/step of a 5-step plan: (wall - server busy) / steps, second round."""
    os.environ.update(env)
    os.environ["AGENTIC_CONFIG_DIR"] = str(config_dir)
    from agentic_orchestration.catalogs import WorkflowConfig, load_catalog
    from agentic_orchestration.orchestration.backends.base import RunOptions

    if backend_name == "inprocess":
        from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend

        backend, launcher = CrewAIExecutionBackend(live_progress=False), None
    elif backend_name == "warm":
        from agentic_orchestration.orchestration.backends.subprocess import (
            SubprocessExecutionBackend,
        )
        from agentic_orchestration.orchestration.backends.warm_launcher import WarmLauncher

        launcher = WarmLauncher(env=dict(os.environ))
        launcher.start()
        launcher.wait_ready()
        backend = SubprocessExecutionBackend(launcher=launcher)
    else:
        from agentic_orchestration.orchestration.backends.kubernetes import (
            KubernetesExecutionBackend,
        )

        backend, launcher = KubernetesExecutionBackend(), None
    config = WorkflowConfig(name="bench", topic="tea", steps=[
        {"agent_provider": "fake_writer", "description": f"STEP{i} write about {{topic}}"}
        for i in range(STEPS)])
    overheads = []
    for _ in range(2):  # the first round pays first-kickoff costs in-process
        busy = server.busy_seconds
        began = time.perf_counter()
        result = backend.execute_config(config, catalog=load_catalog(), options=RunOptions(
            emit_progress_lines=False, emit_stdout_summary=False))
        wall = time.perf_counter() - began
        assert result.ok, result.error
        overheads.append((wall - (server.busy_seconds - busy)) / STEPS * 1000)
    if launcher is not None:
        launcher.close()
    return overheads[-1]


def _stats(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return (f"median {statistics.median(ms):7.0f}  min {ms[0]:7.0f}  max {ms[-1]:7.0f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5)
    args = parser.parse_args()
    os.environ.update({"CREWAI_DISABLE_TELEMETRY": "true", "OTEL_SDK_DISABLED": "true",
                       "CREWAI_DISABLE_VERSION_CHECK": "true", "AGENTIC_PROGRESS": "0"})
    env = cluster_env()
    os.environ.update(env)
    image = _sh(str(REPO / "scripts" / "k8s" / "worker_image.sh")).strip().splitlines()[-1]
    from kubernetes import config

    from agentic_orchestration.log import configure_logging
    from agentic_orchestration.orchestration.backends._kubernetes_job import K8sSettings
    from agentic_orchestration.orchestration.backends.kubernetes_runner import (
        KubernetesLauncher,
    )
    from agentic_orchestration.testing import ScriptedLLMServer
    from agentic_orchestration.testing.catalog import write_writer_catalog

    configure_logging()
    api = config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
    volume = Volume(api)
    k8s_env = {"AGENTIC_K8S_NAMESPACE": volume.namespace, "AGENTIC_K8S_WORKER_IMAGE": image,
               "AGENTIC_K8S_IMAGE_PULL_POLICY": "Never", "AGENTIC_K8S_RUN_STORE_PVC":
               "run-store", "AGENTIC_K8S_HOST_NETWORK": "1",
               "AGENTIC_RUN_STORE_PATH": str(volume.store)}
    try:
        with tempfile.TemporaryDirectory() as tmp, ScriptedLLMServer(
                default="Final Answer: a short paragraph about tea.") as server:
            config_dir = write_writer_catalog(Path(tmp) / "config", server.base_url)
            launcher = KubernetesLauncher(K8sSettings.load({**os.environ, **k8s_env}),
                                          api_client=api)
            rows = per_job(launcher, server.base_url, volume.store, args.jobs)
            overhead = {}
            for name, extra in (("inprocess", {}), ("warm", {"AGENTIC_RUN_STORE_PATH": str(
                    Path(tmp) / "store")}), ("kubernetes", k8s_env)):
                overhead[name] = plan_overhead(name, server, config_dir, extra)
    finally:
        volume.close()
    print(f"\nPer step Job ({args.jobs} Jobs, one at a time, ms):")
    for key, label in (("create_to_running", "Job create -> container running"),
                       ("running_to_step", "container running -> step started (Python, "
                                           "CrewAI import)"),
                       ("step", "step in the worker (LLM scripted)"),
                       ("exit_to_result", "worker done (result.json) -> coordinator has it"),
                       ("total", "Job create -> coordinator has the result")):
        print(f"  {label:<62} {_stats([r[key] for r in rows])}")
    exit_ms = statistics.median(r["exit_to_result"] for r in rows) * 1000
    print(f"  target worker done -> result < 250 ms: {'met' if exit_ms < 250 else 'NOT met'} "
          f"({exit_ms:.0f} ms median)")
    print(f"\nOverhead per step of a {STEPS}-step plan (wall - LLM time, second round):")
    for name in ("inprocess", "warm", "kubernetes"):
        print(f"  {name:<11} {overhead[name]:8.0f} ms/step")
    print("\nFor scale: Kubernetes pod-startup SLO 5 s p99; Argo's requeue up to 10 s/step.")


if __name__ == "__main__":
    main()
