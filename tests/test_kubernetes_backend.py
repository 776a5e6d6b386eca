"""The kubernetes backend on the real single-node cluster the test command starts (K3.8).

Real parts throughout: the apiserver, the kubelet running real containers from the worker
image (``scripts/k8s/worker_image.sh``), a hostPath PersistentVolume as the run store, the
official client. The only fake is the LLM (``ScriptedLLMServer`` on the host's loopback;
step pods use ``hostNetwork`` to reach it). Each module gets its own namespace and volume.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentic_orchestration.catalogs import WorkflowConfig, load_catalog
from agentic_orchestration.orchestration.backends.base import RunOptions
from agentic_orchestration.orchestration.backends.launcher import CancelToken
from tests.conftest import write_catalog
from tests.flows import GATHER_DRAFT_FLOW
from tests.k8s_support import build_image
from tests.test_mcp_tools import call_then_echo

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.kubernetes, pytest.mark.filterwarnings("ignore::ImportWarning")]

FLOW = GATHER_DRAFT_FLOW


# --- the namespace, volume and image of this module ----------------------------------------


@dataclass
class Cluster:
    """One namespace with a run store volume, and what a coordinator needs to use it."""

    kubeconfig: str
    namespace: str
    store: Path
    image: str
    api: object  # kubernetes.client.ApiClient (admin)

    def env(self, **extra: str) -> dict[str, str]:
        return {"KUBECONFIG": self.kubeconfig, "AGENTIC_EXECUTION_BACKEND": "kubernetes",
                "AGENTIC_K8S_NAMESPACE": self.namespace, "AGENTIC_K8S_WORKER_IMAGE": self.image,
                "AGENTIC_K8S_IMAGE_PULL_POLICY": "Never",
                "AGENTIC_K8S_RUN_STORE_PVC": "run-store", "AGENTIC_K8S_HOST_NETWORK": "1",
                "AGENTIC_RUN_STORE_PATH": str(self.store), **extra}

    def jobs(self, run_id: str | None = None) -> list:
        from kubernetes import client

        selector = f"run_id={run_id}" if run_id else ""
        return client.BatchV1Api(self.api).list_namespaced_job(
            self.namespace, label_selector=selector).items

    def pods(self, selector: str = "") -> list:
        from kubernetes import client

        return client.CoreV1Api(self.api).list_namespaced_pod(
            self.namespace, label_selector=selector).items


@pytest.fixture(scope="module")
def worker_image(k8s_cluster) -> str:
    return build_image(k8s_cluster)


@pytest.fixture(scope="module")
def cluster(k8s_cluster, worker_image, tmp_path_factory) -> Cluster:
    return cluster_with_run_store(k8s_cluster, worker_image,
                                  tmp_path_factory.mktemp("k8s-run-store"))


def cluster_with_run_store(k8s_cluster, worker_image: str, store: Path,
                           prefix: str = "ao-k8s") -> Cluster:
    """A fresh namespace whose PVC ``run-store`` is bound to a hostPath volume at ``store``."""
    from kubernetes import client

    namespace = k8s_cluster.new_namespace(prefix)
    pv_name = f"{namespace}-store"
    k8s_cluster.create_pv(pv_name, store, claim_namespace=namespace, claim_name="run-store")
    core = k8s_cluster.core()
    core.create_namespaced_persistent_volume_claim(namespace, client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="run-store"),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteMany"], storage_class_name="manual",
            volume_name=pv_name, resources=client.V1ResourceRequirements(
                requests={"storage": "1Gi"}))))
    for _ in range(300):  # bound within a few seconds (platform notes: < 3 s)
        claim = core.read_namespaced_persistent_volume_claim("run-store", namespace)
        if claim.status.phase == "Bound":
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"PVC run-store in {namespace} never bound: {claim.status}")
    return Cluster(str(k8s_cluster.kubeconfig), namespace, store, worker_image,
                   k8s_cluster.api_client())


@pytest.fixture
def flow(tmp_path, fake_config, scripted_llm) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW)
    scripted_llm.add_rule(r"DRAFT", "A draft using Fact one.")
    scripted_llm.add_rule(r"GATHER", "Fact one. Fact two.")
    return path


def main_py(*args: str, env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "main.py"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env}, **kwargs)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def run_dir(cluster: Cluster, out: str) -> Path:
    run_id = out.rsplit("Run ", 1)[1].split()[0]
    return cluster.store / run_id


def stall_first(scripted_llm, pattern: str, reply: str) -> threading.Event:
    """The first request matching ``pattern`` hangs 60 s (later ones answer ``reply``); the
    event is set when it arrives."""
    reached = threading.Event()
    calls = {"n": 0}

    def stall(request):
        calls["n"] += 1
        if calls["n"] == 1:
            reached.set()
            time.sleep(60)
            return "late"
        return reply

    scripted_llm.rules = [r for r in scripted_llm.rules if pattern not in r[0].pattern]
    scripted_llm.add_rule(pattern, stall)
    return reached


# --- a goal end to end ---------------------------------------------------------------------


def test_two_steps_give_the_same_outputs_as_in_process(cluster, flow, tmp_path, scripted_llm):
    prompts = {}
    outs = {}
    for backend, env in (("inprocess", {"AGENTIC_EXECUTION_BACKEND": "inprocess"}),
                         ("kubernetes", cluster.env(AGENTIC_LOG_FORMAT="json",
                                                    AGENTIC_LOG_LEVEL="INFO"))):
        scripted_llm.requests.clear()
        code, out, err = finish(main_py("--workflow", str(flow), "tea", env=env))
        assert code == 0, out + err
        prompts[backend] = scripted_llm.user_texts()
        outs[backend] = (out, err)
    assert prompts["kubernetes"] == prompts["inprocess"]
    out, err = outs["kubernetes"]
    assert "A draft using Fact one." in out
    folder = run_dir(cluster, out)
    run_id = folder.name
    jobs = {job.metadata.labels["step_id"]: job for job in cluster.jobs(run_id)}
    assert set(jobs) == {"gather", "draft"}  # kept until their TTL, labelled
    for step in ("gather", "draft"):
        result = json.loads((folder / step / "result.json").read_text())
        assert result["exit_code"] == 0
        k8s = result["k8s"]
        assert k8s["job_name"] == jobs[step].metadata.name
        assert k8s["namespace"] == cluster.namespace
        assert k8s["pod_name"].startswith(k8s["job_name"]) and k8s["node_name"]
        assert k8s["exit_code"] == 0 and k8s["started_at"] and k8s["finished_at"]
        assert "step started" in (folder / step / "worker.log").read_text()
    spec = json.loads((folder / "draft-spec.json").read_text())
    assert spec["paths"]["run_store"] == "/run/store"
    # The coordinator's INFO events, as JSON with the ids, one query per run.
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    mine = [e for e in events if e.get("run_id") == run_id]
    messages = " | ".join(e["message"] for e in mine)
    for needle in ("started: 2 step(s) on the kubernetes backend", "attempt 1 started",
                   f"Job {jobs['gather'].metadata.name} created",
                   f"Job {jobs['draft'].metadata.name} ended: exited (exit code 0)",
                   "attempt 1 finished", f"run {run_id} finished: ok"):
        assert needle in messages
    created = [e for e in mine if "created in namespace" in e["message"]]
    assert {e["step_id"] for e in created} == {"gather", "draft"}
    assert {e["job"] for e in created} == {j.metadata.name for j in jobs.values()}
    session = json.loads(max((tmp_path / "sessions").glob("*.json"),
                             key=lambda p: p.stat().st_mtime).read_text())
    assert [s["k8s"]["job_name"] for s in session["steps"]] == [
        jobs["gather"].metadata.name, jobs["draft"].metadata.name]


def test_fetch_url_runs_inside_the_worker_pod(cluster, tmp_path, scripted_llm, web_page,
                                              monkeypatch):
    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url, mcps=(
        "- id: fetch_url\n  stdio: {command: mcp-server-fetch, args: [--allow-private-ips]}\n"))
    seen: list[list[str]] = []
    scripted_llm.default = call_then_echo("_fetch", {"url": web_page}, seen)
    flow = tmp_path / "fetch.yaml"
    flow.write_text("steps:\n  - id: fetch\n    agent_provider: fake_researcher\n"
                    "    mcp_providers: [fetch_url]\n    description: FETCH the page\n")
    code, out, err = finish(main_py("--workflow", str(flow), "tea", env=cluster.env(
        AGENTIC_CONFIG_DIR=str(root))))
    assert code == 0, out + err
    assert seen == [["fetch_url_fetch"]]
    assert "oolong-lighthouse-73" in out  # the page, fetched in the pod, via the LLM
    result = json.loads((run_dir(cluster, out) / "fetch" / "result.json").read_text())
    assert result["k8s"]["pod_name"]


# --- faults ---------------------------------------------------------------------------------


def test_worker_pod_deleted_mid_step_is_retried(cluster, flow, scripted_llm):
    from kubernetes import client

    reached = stall_first(scripted_llm, "DRAFT", "A draft using Fact one.")
    proc = main_py("--workflow", str(flow), "tea", env=cluster.env())
    assert reached.wait(240), "the draft step never called the LLM"
    [pod] = [p for p in cluster.pods("step_id=draft")
             if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
    client.CoreV1Api(cluster.api).delete_namespaced_pod(pod.metadata.name, cluster.namespace)
    code, out, err = finish(proc)
    assert code == 0, out + err
    folder = run_dir(cluster, out)
    first, second = (json.loads((folder / "draft" / "attempts" / f"{n}.json").read_text())
                     for n in (1, 2))
    assert first["exit_code"] != 0 and first["recovery_hint"] == "worker_retry"
    assert first["k8s"]["pod_name"] == pod.metadata.name
    assert second["exit_code"] == 0 and second["k8s"]["job_name"] != first["k8s"]["job_name"]


def test_resume_after_the_coordinator_is_killed(cluster, flow, scripted_llm):
    reached = stall_first(scripted_llm, "DRAFT", "A draft using Fact one.")
    proc = main_py("--workflow", str(flow), "tea", env=cluster.env())
    assert reached.wait(240)
    store_runs = sorted(p for p in cluster.store.iterdir() if p.is_dir())
    run_id = max(store_runs, key=lambda p: p.stat().st_mtime).name
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    [orphan] = [j for j in cluster.jobs(run_id) if j.metadata.labels["step_id"] == "draft"]
    gathers = sum("GATHER" in t and "DRAFT" not in t for t in scripted_llm.user_texts())
    code, out, err = finish(main_py("--resume", run_id, env=cluster.env()))
    assert code == 0, out + err
    assert "A draft using Fact one." in out
    assert sum("GATHER" in t and "DRAFT" not in t for t in scripted_llm.user_texts()) == \
        gathers  # the finished step was not run again
    names = {j.metadata.name for j in cluster.jobs(run_id)}
    assert orphan.metadata.name not in names  # the killed coordinator's Job was removed


def test_cancel_mid_step_leaves_no_job(cluster, flow, scripted_llm, monkeypatch):
    from agentic_orchestration.orchestration.backends.kubernetes import (
        KubernetesExecutionBackend,
    )

    for name, value in cluster.env().items():
        monkeypatch.setenv(name, value)
    reached = stall_first(scripted_llm, "DRAFT", "never")
    token = CancelToken()
    threading.Thread(target=lambda: reached.wait(240) and token.cancel("test cancel"),
                     daemon=True).start()
    options = RunOptions(run_id=f"cancel-{secrets.token_hex(3)}", cancel=token,
                         emit_progress_lines=False, emit_stdout_summary=False,
                         log_terminal_execution_failure=False)
    config = WorkflowConfig.model_validate({"name": "c", "topic": "tea", "steps": [
        {"id": "draft", "agent_provider": "fake_writer", "description": "DRAFT {topic}"}]})
    result = KubernetesExecutionBackend().execute_config(config, options=options,
                                                         catalog=load_catalog())
    assert result.status == "cancelled" and result.exit_code == 130
    assert cluster.jobs(options.run_id) == []  # deleted, and gone before the run returned
    assert cluster.pods(f"run_id={options.run_id}") == []
    [entry] = result.k8s_jobs
    assert entry["step_id"] == "draft" and entry["job_name"]


# --- how a Job ends, told apart (the launcher alone) ----------------------------------------


def launcher_for(cluster: Cluster, api=None, **env: str):
    from agentic_orchestration.orchestration.backends._kubernetes_job import K8sSettings
    from agentic_orchestration.orchestration.backends.kubernetes_runner import (
        KubernetesLauncher,
    )

    config = K8sSettings.load({**cluster.env(), **env})
    return KubernetesLauncher(config, api_client=api or cluster.api, api_retry_seconds=5)


def one_spec(cluster: Cluster, base_url: str, *, write: bool = True, provider="fake_researcher"):
    from agentic_orchestration.orchestration.backends.base import StepPaths, StepSpec, TaskSpec
    from agentic_orchestration.orchestration.run_store import FileSystemRunStore

    spec = StepSpec(run_id=f"l-{secrets.token_hex(4)}", step_id="one", step_index=0,
                    workflow_name="l", task=TaskSpec(description="ONE", expected_output="x"),
                    agent_provider={"id": provider, "type": "openai", "model": "fake-model",
                                    "openai_base_url": base_url, "role": "R", "goal": "G",
                                    "backstory": "B"},
                    paths=StepPaths(run_store="/run/store"))
    store = FileSystemRunStore(cluster.store)
    if write:
        store.write_spec(spec)
    return spec, store


def launch(launcher, spec, store):
    return launcher.launch(spec, spec_path=store.spec_path(spec.run_id, spec.step_id),
                           log_path=store.step_dir(spec.run_id, spec.step_id) / "worker.log")


def test_container_failure_has_exit_code_and_last_log_lines(cluster, scripted_llm):
    from agentic_orchestration.orchestration.backends.base import StepTiming
    from agentic_orchestration.orchestration.backends.launcher import result_from_exit

    spec, store = one_spec(cluster, scripted_llm.base_url, write=False)  # no spec file
    handle = launch(launcher_for(cluster), spec, store)
    outcome = handle.wait(180)
    handle.terminate()
    assert outcome is not None and (outcome.reason, outcome.exit_code) == ("exited", 2)
    assert outcome.k8s.exit_code == 2 and outcome.k8s.job_name == handle.ref
    tail = handle.log_tail()
    assert f"/run/store/{spec.run_id}/one-spec.json: file not found" in tail
    result = result_from_exit(spec, outcome, None, timing=StepTiming(started_at="a",
                                                                      finished_at="b"),
                              log_tail=tail)
    assert result.error.startswith("worker exited with code 2 without writing result.json; "
                                   "last log lines: ")
    assert not result.recoverable  # a rejected spec does not get better by retrying


def test_missing_image_is_reported_and_final(cluster, scripted_llm):
    spec, store = one_spec(cluster, scripted_llm.base_url)
    handle = launch(launcher_for(cluster, AGENTIC_K8S_WORKER_IMAGE="localhost/ao-nope:0"),
                    spec, store)
    outcome = handle.wait(120)
    handle.terminate()
    assert outcome is not None and outcome.reason == "lost" and outcome.permanent
    assert outcome.detail.startswith("ErrImageNeverPull: image not present on the node")
    assert cluster.jobs(spec.run_id) == []  # nothing ran: the Job is deleted


def test_unschedulable_after_the_schedule_timeout(cluster, scripted_llm):
    spec, store = one_spec(cluster, scripted_llm.base_url, provider="gpu_model")
    handle = launch(launcher_for(cluster, AGENTIC_K8S_GPU_PROVIDER_IDS="gpu_model",
                                 AGENTIC_K8S_GPU_NODE_SELECTOR='{"gpu": "h100"}',
                                 AGENTIC_K8S_SCHEDULE_TIMEOUT_SECONDS="3"), spec, store)
    outcome = handle.wait(120)
    handle.terminate()
    assert outcome is not None and outcome.reason == "lost" and outcome.permanent
    assert outcome.detail.startswith("unschedulable for ")
    # The scheduler's own words: "node selector" before 1.21 (and on some 1.20 builds),
    # "Pod's node affinity" since (a nodeSelector is checked as node affinity).
    assert re.search(r"node\(s\) didn't match (node selector|Pod's node affinity)",
                     outcome.detail), outcome.detail


def test_job_deleted_from_outside(cluster, scripted_llm):
    from kubernetes import client

    reached = stall_first(scripted_llm, "ONE", "late")
    spec, store = one_spec(cluster, scripted_llm.base_url)
    handle = launch(launcher_for(cluster), spec, store)
    assert reached.wait(240)
    client.BatchV1Api(cluster.api).delete_namespaced_job(
        handle.ref, cluster.namespace, body=client.V1DeleteOptions(
            propagation_policy="Background"))
    outcome = handle.wait(60)
    handle.terminate()
    assert outcome is not None and outcome.reason == "lost"
    assert outcome.detail in (f"Job {handle.ref} was deleted from outside the coordinator",
                              f"pod {outcome.k8s.pod_name} was deleted mid-step")


def test_api_unreachable_is_one_line_after_a_bounded_retry(cluster, scripted_llm):
    from kubernetes import client

    from agentic_orchestration.errors import BackendError

    configuration = client.Configuration()
    configuration.host = "https://127.0.0.1:9"  # nothing listens there
    spec, store = one_spec(cluster, scripted_llm.base_url)
    launcher = launcher_for(cluster, api=client.ApiClient(configuration))
    launcher.api_retry_seconds = 2
    began = time.monotonic()
    with pytest.raises(BackendError) as err:
        launch(launcher, spec, store)
    assert str(err.value).startswith("Kubernetes API unreachable: cannot create Job ao-one-")
    assert "(tried for 2s)" in str(err.value) and time.monotonic() - began < 30


# --- manifests and least privilege ----------------------------------------------------------


def manifest_docs(namespace: str | None = None) -> list[dict]:
    import yaml

    docs = []
    for path in sorted((REPO / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            if namespace and doc["kind"] != "Namespace":
                doc["metadata"]["namespace"] = namespace
                for subject in doc.get("subjects", []):
                    subject["namespace"] = namespace
            docs.append(doc)
    return docs


def test_manifests_pass_server_side_dry_run(cluster):
    from kubernetes import utils

    for doc in manifest_docs(cluster.namespace):
        if doc["kind"] == "Namespace":
            doc["metadata"]["name"] = cluster.namespace + "-dry"
        utils.create_from_dict(cluster.api, doc, dry_run="All")
    assert cluster.jobs() == [] or all(j.metadata.name != "ao-gather-3f2a1c-example"
                                       for j in cluster.jobs())


def test_coordinator_service_account_runs_a_goal_and_nothing_more(
        k8s_cluster, cluster, flow, scripted_llm, monkeypatch):
    from kubernetes import client, utils
    from kubernetes.client.exceptions import ApiException

    from agentic_orchestration.orchestration.backends.kubernetes import (
        KubernetesExecutionBackend,
    )

    for doc in manifest_docs(cluster.namespace):
        if doc["kind"] in ("ServiceAccount", "Role", "RoleBinding"):
            try:
                utils.create_from_dict(cluster.api, doc)
            except utils.FailToCreateError as exc:
                if not all(e.status == 409 for e in exc.api_exceptions):
                    raise
    api = k8s_cluster.api_client(
        impersonate=f"system:serviceaccount:{cluster.namespace}:agentic-coordinator")
    for name, value in cluster.env().items():
        monkeypatch.setenv(name, value)
    config_ = WorkflowConfig.model_validate({"name": "sa", "topic": "tea", "steps": [
        {"id": "gather", "agent_provider": "fake_researcher", "description": "GATHER {topic}"},
        {"id": "draft", "agent_provider": "fake_writer", "description": "DRAFT {topic}"}]})
    result = KubernetesExecutionBackend(api_client=api).execute_config(
        config_, catalog=load_catalog(), options=RunOptions(
            run_id=f"sa-{secrets.token_hex(3)}", emit_progress_lines=False,
            emit_stdout_summary=False))
    assert result.ok, result.error
    assert [s.result_text for s in result.step_results] == ["Fact one. Fact two.",
                                                            "A draft using Fact one."]
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    refused = {
        "pods/exec": lambda: core.connect_post_namespaced_pod_exec(
            "any", cluster.namespace, command=["true"], stdout=True),
        "secrets list": lambda: core.list_namespaced_secret(cluster.namespace),
        "other namespace": lambda: batch.list_namespaced_job("default"),
        "pods create": lambda: core.create_namespaced_pod(cluster.namespace, client.V1Pod(
            metadata=client.V1ObjectMeta(name="x"),
            spec=client.V1PodSpec(containers=[client.V1Container(name="x", image="x")]))),
    }
    for what, call in refused.items():
        with pytest.raises(ApiException) as err:
            call()
        assert err.value.status == 403, what
