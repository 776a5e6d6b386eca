"""The worker image (docker/Dockerfile.worker) run as Kubernetes Jobs on the test cluster.

``scripts/k8s/worker_image.sh`` builds it without a registry (debootstrap base, host
wheelhouse, buildah; cached by the hash of its inputs) and imports it into the cluster's
containerd; the ``worker_image`` fixture calls it once per session. Each test runs the image
as a Job (``imagePullPolicy: Never``, ``hostNetwork`` so the pod reaches the scripted LLM on
the host's loopback, the run store a hostPath mounted at the same path), the way the
kubernetes backend will: the entrypoint, the non-root user, the step's result.json, the
fetch MCP server inside the container, the `local` provider without llama.cpp, and SIGTERM
reaching Python as PID 1.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from k8s_support import IMAGE_TIMEOUT_SECONDS, build_image
from step_helpers import step_spec_dict

from agentic_orchestration.testing import ScriptedLLMServer, ToolCallReply
from agentic_orchestration.testing.fake_llm import message_text

REPO = Path(__file__).resolve().parent.parent
#: The image's non-root user (WORKER_UID in the Dockerfile, runAsUser in deploy/k8s).
WORKER_UID = 10001
RUN = "20260101T000000Z-imagetest"
ANSWER = "Bees dance to share where the flowers are."
pytestmark = [pytest.mark.kubernetes, pytest.mark.timeout(IMAGE_TIMEOUT_SECONDS + 600),
              pytest.mark.filterwarnings("ignore::ImportWarning")]


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def worker_image(k8s_cluster: Any) -> str:
    """The image reference, built (or found in the cache) and imported into the cluster."""
    ref = build_image(k8s_cluster)
    assert re.fullmatch(r"localhost/agentic-worker:[0-9a-f]{16}", ref), ref
    return ref


@pytest.fixture(scope="session")
def image_namespace(k8s_cluster: Any) -> str:
    return str(k8s_cluster.new_namespace("worker-image"))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """The run store, owned by the image's user as a PVC's files would be."""
    root = tmp_path / "store"
    (root / RUN).mkdir(parents=True)
    for path in (root, root / RUN):
        os.chown(path, WORKER_UID, WORKER_UID)
        path.chmod(0o700)
    return root


# --- helpers -------------------------------------------------------------------------------


def make_spec(store: Path, step_id: str, agent: dict[str, Any],
              mcp_providers: list[dict[str, Any]] | None = None) -> list[str]:
    """Write a v0.1 step spec where the coordinator would (``{store}/{run}/{step}-spec.json``)
    and return the worker's arguments."""
    spec = step_spec_dict(
        RUN, step_id, run_store=store, workflow_name="image-test", topic="honeybees",
        description=f"WORKER-TASK {step_id}: explain how honeybees communicate.",
        expected_output="Two sentences.", mcp_providers=mcp_providers,
        agent={"role": "Bee Persona", "goal": "Explain bees.", "backstory": "Keeps hives.",
               **agent})
    path = store / RUN / f"{step_id}-spec.json"
    path.write_text(json.dumps(spec))
    os.chown(path, WORKER_UID, WORKER_UID)
    path.chmod(0o600)
    return ["--execute-step", str(path), "--run-id", RUN, "--step-id", step_id]


def openai_agent(llm: ScriptedLLMServer) -> dict[str, Any]:
    return {"id": "fake_worker", "type": "openai", "model": "fake-model",
            "openai_base_url": llm.base_url}


def start_job(cluster: Any, namespace: str, image: str, *, args: list[str] | None = None,
              command: list[str] | None = None, store: Path | None = None,
              env: dict[str, str] | None = None, grace_seconds: int = 30) -> str:
    """A one-pod Job of the image, as the kubernetes backend builds them (no retries, the
    node's network, the run store mounted at the path the spec names)."""
    name = f"img-{uuid.uuid4().hex[:10]}"
    container: dict[str, Any] = {
        "name": "worker", "image": image, "imagePullPolicy": "Never",
        "env": [{"name": "PYTHONUNBUFFERED", "value": "1"},
                *({"name": k, "value": v} for k, v in (env or {}).items())],
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
    }
    if args is not None:
        container["args"] = args
    if command is not None:
        container["command"] = command
    pod: dict[str, Any] = {"restartPolicy": "Never", "hostNetwork": True,
                           "automountServiceAccountToken": False,
                           "terminationGracePeriodSeconds": grace_seconds,
                           "containers": [container]}
    if store is not None:
        container["volumeMounts"] = [{"name": "run-store", "mountPath": str(store)}]
        pod["volumes"] = [{"name": "run-store",
                           "hostPath": {"path": str(store), "type": "Directory"}}]
    cluster.batch().create_namespaced_job(namespace, {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {"agentic.io/test": "worker-image"}},
        "spec": {"backoffLimit": 0, "template": {"spec": pod}}})
    return name


def wait_job(cluster: Any, namespace: str, name: str, *, limit: float = 180) -> dict[str, Any]:
    """Wait for the Job's pod to end; its exit code, log and the Job's condition."""
    core, batch = cluster.core(), cluster.batch()
    deadline = time.monotonic() + limit
    while True:
        job = batch.read_namespaced_job_status(name, namespace)
        done = [c.type for c in job.status.conditions or [] if c.status == "True"]
        if done:
            break
        if time.monotonic() > deadline:
            pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
            states = [(p.metadata.name, p.status.phase, p.status.container_statuses)
                      for p in pods]
            pytest.fail(f"Job {name} not finished after {limit:.0f} s: {states}\n"
                        f"kubelet:\n{cluster.component_log('kubelet', 20)}")
        time.sleep(0.2)
    (pod,) = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
    terminated = pod.status.container_statuses[0].state.terminated
    # Raw bytes: the client would parse a log that looks like JSON and return its repr.
    log = core.read_namespaced_pod_log(pod.metadata.name, namespace,
                                       _preload_content=False).data.decode()
    return {"condition": done[0], "exit_code": terminated.exit_code, "log": log}


def read_result(store: Path, step_id: str) -> dict[str, Any]:
    path = store / RUN / step_id / "result.json"
    assert path.is_file(), f"the worker wrote no {path}"
    return {**json.loads(path.read_text()), "_owner_uid": path.stat().st_uid}


# --- the image -----------------------------------------------------------------------------


def test_image_runs_as_non_root_with_pinned_crewai_and_fetch_server(
        k8s_cluster: Any, image_namespace: str, worker_image: str) -> None:
    probe = (
        "import importlib.metadata as m, importlib.util as u, json, os, shutil, subprocess, "
        "sys; fetch = shutil.which('mcp-server-fetch'); print(json.dumps({"
        "'uid': os.getuid(), 'gid': os.getgid(), 'home_writable': os.access("
        "os.environ['HOME'], os.W_OK), 'python': sys.version.split()[0], "
        "'crewai': m.version('crewai'), 'mcp': m.version('mcp'), "
        "'fetch': fetch, 'fetch_help': subprocess.run([fetch, '--help'], capture_output=True,"
        " text=True).stdout, 'llama_cpp': u.find_spec('llama_cpp') is not None, "
        "'app_writable': os.access('/app/agentic_orchestration', os.W_OK)}))")
    name = start_job(k8s_cluster, image_namespace, worker_image,
                     command=["python", "-c", probe])
    ended = wait_job(k8s_cluster, image_namespace, name)
    assert ended["exit_code"] == 0, ended["log"]
    facts = json.loads(ended["log"].strip().splitlines()[-1])
    assert (facts["uid"], facts["gid"]) == (WORKER_UID, WORKER_UID)
    assert facts["home_writable"] and not facts["app_writable"]
    lock = dict(line.split("==", 1) for line in
                (REPO / "requirements.lock").read_text().splitlines() if "==" in line)
    assert facts["crewai"] == lock["crewai"]  # the lock's pin, not whatever PyPI has now
    assert facts["mcp"] == lock["mcp"] and int(facts["mcp"].split(".")[0]) < 2
    assert facts["fetch"] == "/opt/venv/bin/mcp-server-fetch"
    assert "--allow-private-ips" in facts["fetch_help"]  # the real server, runnable
    assert not facts["llama_cpp"]  # workers use the coordinator's model over HTTP
    assert facts["python"].startswith("3.11.")


def test_invalid_spec_exits_2_through_the_entrypoint(
        k8s_cluster: Any, image_namespace: str, worker_image: str) -> None:
    """The spec's image smoke check: a spec that cannot be read is exit 2, one line."""
    name = start_job(k8s_cluster, image_namespace, worker_image,
                     args=["--execute-step", "/nonexistent/spec.json", "--run-id", RUN,
                           "--step-id", "s"])
    ended = wait_job(k8s_cluster, image_namespace, name)
    assert (ended["condition"], ended["exit_code"]) == ("Failed", 2)
    assert "error: step spec /nonexistent/spec.json" in ended["log"]


# --- steps ---------------------------------------------------------------------------------


def test_worker_job_writes_the_step_result(
        k8s_cluster: Any, image_namespace: str, worker_image: str, store: Path,
        scripted_llm: ScriptedLLMServer) -> None:
    scripted_llm.add_rule("WORKER-TASK job_step", ANSWER)
    args = make_spec(store, "job_step", openai_agent(scripted_llm))
    name = start_job(k8s_cluster, image_namespace, worker_image, args=args, store=store)
    ended = wait_job(k8s_cluster, image_namespace, name)
    assert (ended["condition"], ended["exit_code"]) == ("Complete", 0), ended["log"]
    result = read_result(store, "job_step")
    assert (result["exit_code"], result["error"]) == (0, None)
    assert result["result_text"] == ANSWER
    assert result["_owner_uid"] == WORKER_UID  # written by the image's non-root user
    prompt = json.dumps(scripted_llm.requests[-1]["messages"])
    assert "Bee Persona" in prompt and "explain how honeybees communicate" in prompt


def test_local_provider_runs_without_llama_cpp_through_the_model_url(
        k8s_cluster: Any, image_namespace: str, worker_image: str, store: Path,
        scripted_llm: ScriptedLLMServer) -> None:
    """The image has no llama.cpp: a `local` step uses AGENTIC_LOCAL_LLM_URL (the
    coordinator's embedded-model server; here the scripted one)."""
    scripted_llm.add_rule("WORKER-TASK local_step", ANSWER)
    args = make_spec(store, "local_step", {"id": "local_writer", "type": "local"})
    name = start_job(k8s_cluster, image_namespace, worker_image, args=args, store=store,
                     env={"AGENTIC_LOCAL_LLM_URL": scripted_llm.base_url})
    ended = wait_job(k8s_cluster, image_namespace, name)
    assert ended["exit_code"] == 0, ended["log"]
    assert read_result(store, "local_step")["result_text"] == ANSWER


def test_fetch_url_mcp_runs_inside_the_worker(
        k8s_cluster: Any, image_namespace: str, worker_image: str, store: Path,
        scripted_llm: ScriptedLLMServer, web_page: str) -> None:
    """The catalog's fetch_url (stdio, command `mcp-server-fetch`) started in the pod."""
    offered: list[list[str]] = []

    def reply(request: dict[str, Any]) -> Any:
        tool_results = [m for m in request.get("messages", []) if m.get("role") == "tool"]
        if tool_results:
            return "TOOL SAID: " + message_text(tool_results[-1])
        names = [tool["function"]["name"] for tool in request.get("tools") or []]
        offered.append(names)
        return ToolCallReply("fetch_url_fetch", {"url": web_page})

    scripted_llm.add_rule("WORKER-TASK fetch_step", reply)
    fetch = {"id": "fetch_url", "resolved": {"stdio": {
        "command": "mcp-server-fetch", "args": ["--allow-private-ips"], "env": {}}}}
    args = make_spec(store, "fetch_step", openai_agent(scripted_llm), [fetch])
    name = start_job(k8s_cluster, image_namespace, worker_image, args=args, store=store)
    ended = wait_job(k8s_cluster, image_namespace, name)
    assert ended["exit_code"] == 0, ended["log"]
    assert offered == [["fetch_url_fetch"]]
    text = read_result(store, "fetch_step")["result_text"]
    assert "oolong-lighthouse-73" in text and "Brewing notes" in text


def test_sigterm_to_the_pod_writes_an_interrupted_result(
        k8s_cluster: Any, image_namespace: str, worker_image: str, store: Path,
        scripted_llm: ScriptedLLMServer) -> None:
    """Python is PID 1 in the container: SIGTERM is delivered only because the worker
    handles it. Deleting the Job (as cancel does) must leave an interrupted result.json
    well inside the grace period, not a SIGKILL after it with nothing written."""
    in_llm, release = threading.Event(), threading.Event()

    def stall(request: dict[str, Any]) -> str:
        in_llm.set()
        release.wait(120)
        return "too late"

    scripted_llm.add_rule("WORKER-TASK sigterm_step", stall)
    args = make_spec(store, "sigterm_step", openai_agent(scripted_llm))
    grace = 300  # past the wait below: a result can only come from the SIGTERM handler
    name = start_job(k8s_cluster, image_namespace, worker_image, args=args, store=store,
                     grace_seconds=grace)
    try:
        assert in_llm.wait(120), "the worker never called the LLM"
        k8s_cluster.batch().delete_namespaced_job(
            name, image_namespace, propagation_policy="Foreground")
        path = store / RUN / "sigterm_step" / "result.json"
        deadline = time.monotonic() + 90
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        release.set()
    result = read_result(store, "sigterm_step")
    assert result["exit_code"] == 130
    assert result["error"] == "interrupted by SIGTERM"
    assert result["recovery_hint"] == "worker_retry"
